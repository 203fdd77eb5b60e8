"""Tests of recipes/esc50_prepare.py and focalnet_lobes.data.download on generated data and a local HTTP server."""

import hashlib
import json
import re
import socket
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import soundfile

import esc50_prepare
from esc50_prepare import ESC50NotFoundError, main, prepare_esc50
from focalnet_lobes.data import download
from focalnet_lobes.data.download import DownloadError, UnsafeArchiveError, download_file, safe_extract_zip
from helpers_data import ESC50_CLASSES, make_esc50_zip, make_fake_esc50

# Three ESC-10 classes and one that is not (pig, target 2).
CLASSES = (0, 41, 2, 10)


@pytest.fixture
def fake_data(tmp_path):
    """One 0.25 s stereo 44.1 kHz clip per class and fold (5 folds x 4 classes)."""
    root = tmp_path / "data"
    make_fake_esc50(root, n_per_class=1, classes=CLASSES, sample_rate=44100, channels=2, duration_s=0.25)
    return root


def read_json(path):
    return json.loads(path.read_text(encoding="utf-8"))


def manifests(save_folder):
    return {split: read_json(save_folder / f"{split}.json") for split in ("train", "valid", "test")}


# ---------------------------------------------------------------- manifests


def test_manifests_content_and_counts(fake_data, tmp_path):
    save = tmp_path / "save"
    paths = prepare_esc50(fake_data, save, download=False)
    assert set(paths) == {"train", "valid", "test", "classes", "skipped"}
    data = manifests(save)
    assert {split: len(entries) for split, entries in data.items()} == {"train": 12, "valid": 4, "test": 4}
    assert {entry["fold"] for entry in data["train"].values()} == {1, 2, 3}
    assert {entry["fold"] for entry in data["test"].values()} == {5}
    entry = data["valid"]["4-100013-A-41"]
    assert entry == {
        "wav": str(fake_data / "audio" / "4-100013-A-41.wav"),
        "class_name": "chainsaw",
        "label": 41,
        "esc50_target": 41,
        "fold": 4,
        "length": pytest.approx(0.25),
    }
    classes = read_json(save / "classes.json")
    assert len(classes) == 50
    assert (classes[0], classes[2], classes[10], classes[41]) == ("dog", "pig", "rain", "chainsaw")
    assert classes[1] == "target_1"  # rooster is not in this generated dataset
    for entries in data.values():
        for clip_id, item in entries.items():
            assert item["wav"].endswith(f"/{clip_id}.wav")
            assert ESC50_CLASSES[item["label"]] == item["class_name"]
    assert (save / "skipped_files.txt").read_text() == ""
    options = read_json(save / "prepare_options.json")
    assert options["options"]["train_folds"] == [1, 2, 3]
    assert options["counts"] == {"train": 12, "valid": 4, "test": 4}


def test_esc10_encoding(fake_data, tmp_path):
    save = tmp_path / "save"
    prepare_esc50(fake_data, save, esc10=True, download=False)
    data = manifests(save)
    assert {split: len(entries) for split, entries in data.items()} == {"train": 9, "valid": 3, "test": 3}
    assert read_json(save / "classes.json") == ["dog", "rain", "chainsaw"]
    pairs = {(item["esc50_target"], item["label"], item["class_name"]) for item in data["train"].values()}
    assert pairs == {(0, 0, "dog"), (10, 1, "rain"), (41, 2, "chainsaw")}


def test_folds_as_int_and_empty_split(fake_data, tmp_path, caplog):
    save = tmp_path / "save"
    prepare_esc50(fake_data, save, train_folds=[1, 2], valid_folds=3, test_folds=[], download=False)
    data = manifests(save)
    assert (len(data["train"]), len(data["valid"]), data["test"]) == (8, 4, {})
    assert any("No usable clips in test" in message for message in caplog.messages)


def test_bad_files_are_skipped_and_reported(fake_data, tmp_path, caplog):
    audio = fake_data / "audio"
    corrupt = audio / "1-100000-A-0.wav"
    corrupt.write_bytes(b"RIFF....WAVEfmt garbage, definitely not audio" * 20)
    empty = audio / "1-100001-A-41.wav"
    soundfile.write(empty, np.zeros((0, 2)), 44100)
    zero_bytes = audio / "2-100004-A-0.wav"
    zero_bytes.write_bytes(b"")
    missing = audio / "2-100005-A-41.wav"
    missing.unlink()
    silent = audio / "3-100008-A-0.wav"
    soundfile.write(silent, np.zeros((11025, 2)), 44100)
    soundfile.write(audio / "1-999999-A-0.wav", np.ones(100) * 0.1, 44100)  # not in the CSV
    save = tmp_path / "save"
    prepare_esc50(fake_data, save, download=False)
    data = manifests(save)
    assert len(data["train"]) == 12 - 4
    assert "3-100008-A-0" in data["train"]  # a silent clip is valid
    assert "1-999999-A-0" not in data["train"]
    report = dict(line.split("\t") for line in (save / "skipped_files.txt").read_text().splitlines())
    assert set(report) == {str(corrupt), str(empty), str(zero_bytes), str(missing)}
    assert report[str(missing)] == "file not found"
    assert report[str(empty)] == "empty audio (0 frames)"
    assert report[str(corrupt)].startswith("unreadable or corrupt audio")
    assert report[str(zero_bytes)].startswith("unreadable or corrupt audio")
    warned = " ".join(caplog.messages)
    for path in (corrupt, empty, zero_bytes, missing):
        assert str(path) in warned


def test_no_redo_then_redo_on_change(fake_data, tmp_path, monkeypatch):
    save = tmp_path / "save"
    inspected = []
    real_inspect = esc50_prepare.inspect_audio_file

    def spy(path, *args, **kwargs):
        inspected.append(path)
        return real_inspect(path, *args, **kwargs)

    monkeypatch.setattr(esc50_prepare, "inspect_audio_file", spy)
    prepare_esc50(fake_data, save, download=False)
    assert len(inspected) == 20
    stamps = {path.name: path.stat().st_mtime_ns for path in save.iterdir()}

    inspected.clear()
    prepare_esc50(fake_data, save, download=False)  # same options, same data
    assert inspected == []
    assert {path.name: path.stat().st_mtime_ns for path in save.iterdir()} == stamps

    prepare_esc50(fake_data, save, esc10=True, download=False)  # changed option
    assert len(inspected) == 15
    assert len(read_json(save / "classes.json")) == 3

    inspected.clear()
    prepare_esc50(fake_data, save, esc10=True, train_folds=(1, 2), valid_folds=(3,), download=False)
    assert len(inspected) == 12
    assert read_json(save / "prepare_options.json")["counts"]["valid"] == 3

    inspected.clear()
    (fake_data / "audio" / "1-100000-A-0.wav").write_bytes(b"garbage")  # changed data
    prepare_esc50(fake_data, save, esc10=True, train_folds=(1, 2), valid_folds=(3,), download=False)
    assert len(inspected) == 12
    assert "1-100000-A-0.wav" in (save / "skipped_files.txt").read_text()

    inspected.clear()
    prepare_esc50(fake_data, save, esc10=True, train_folds=(1, 2), valid_folds=(3,), download=False)
    assert inspected == []
    prepare_esc50(
        fake_data, save, esc10=True, train_folds=(1, 2), valid_folds=(3,), download=False, skip_if_prepared=False
    )
    assert len(inspected) == 12


@pytest.mark.parametrize(
    "folds, message",
    [
        (dict(train_folds=(1, 2, 3), valid_folds=(3,)), "overlap"),
        (dict(valid_folds=(4,), test_folds=(4, 5)), "overlap"),
        (dict(train_folds=(1, 6)), r"fold numbers in \(1, 2, 3, 4, 5\), got \[6\]"),
        (dict(test_folds=("five",)), "test_folds"),
    ],
)
def test_bad_folds_raise(fake_data, tmp_path, folds, message):
    with pytest.raises(ValueError, match=message):
        prepare_esc50(fake_data, tmp_path / "save", download=False, **folds)
    assert not (tmp_path / "save").exists()


def test_metadata_missing_column(fake_data, tmp_path):
    csv_path = fake_data / "meta" / "esc50.csv"
    lines = csv_path.read_text().splitlines()
    csv_path.write_text("\n".join(line.rsplit(",", 3)[0] for line in lines) + "\n")  # drop esc10,src,take
    with pytest.raises(ValueError, match="missing required column.*esc10"):
        prepare_esc50(fake_data, tmp_path / "save", download=False)


def test_metadata_bad_value_names_line(fake_data, tmp_path):
    csv_path = fake_data / "meta" / "esc50.csv"
    lines = csv_path.read_text().splitlines()
    lines[3] = lines[3].replace(",1,", ",one,", 1)
    csv_path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="line 4"):
        prepare_esc50(fake_data, tmp_path / "save", download=False)


def test_cli(fake_data, tmp_path, capsys):
    save = tmp_path / "save"
    assert main(["--data_folder", str(fake_data), "--save_folder", str(save), "--esc10", "--no-download"]) == 0
    assert "train: 9 clips" in capsys.readouterr().out
    assert read_json(save / "classes.json") == ["dog", "rain", "chainsaw"]
    assert main(["--data_folder", str(tmp_path / "none"), "--save_folder", str(save), "--no-download"]) == 1
    assert "esc50.csv" in capsys.readouterr().err


# ---------------------------------------------------------------- missing data, offline


def test_missing_data_without_download(tmp_path):
    start = time.monotonic()
    with pytest.raises(ESC50NotFoundError) as info:
        prepare_esc50(tmp_path / "data", tmp_path / "save", download=False)
    assert time.monotonic() - start < 1
    message = str(info.value)
    assert "download=False" in message
    assert esc50_prepare.ESC50_URL in message
    assert str(tmp_path / "data" / "meta" / "esc50.csv") in message
    assert str(tmp_path / "data" / "audio" / "*.wav") in message


def test_offline_fails_fast(tmp_path):
    url = "http://127.0.0.1:9/ESC-50-master.zip"  # discard port: nothing listens
    start = time.monotonic()
    with pytest.raises(ESC50NotFoundError) as info:
        prepare_esc50(tmp_path / "data", tmp_path / "save", url=url)
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert f"download from {url} failed" in message
    assert "cannot connect" in message
    assert f"1. download {url}" in message
    assert "unzip" in message and str(tmp_path / "data" / "meta" / "esc50.csv") in message
    assert isinstance(info.value.__cause__, DownloadError)
    assert not (tmp_path / "save").exists()


def test_silent_server_times_out(tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # connections complete in the kernel, but nothing ever answers
    port = listener.getsockname()[1]
    try:
        start = time.monotonic()
        with pytest.raises(DownloadError, match="timed out"):
            download_file(f"http://127.0.0.1:{port}/a.zip", tmp_path / "a.zip", timeout=0.3, max_attempts=1)
        assert time.monotonic() - start < 3
        assert not (tmp_path / "a.zip").exists() and not (tmp_path / "a.zip.part").exists()
    finally:
        listener.close()


# ---------------------------------------------------------------- download through a local server


class ServerState:
    """What the test server serves, how it misbehaves, and the Range headers it received."""

    def __init__(self, payload):
        self.payload = payload
        self.support_range = True
        self.drops = 0  # how many transfers to cut short
        self.drop_after = None  # bytes sent before cutting a transfer short
        self.extra_announced = 0  # Content-Length larger than the body by this much
        self.ranges = []


class ArchiveHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        state = self.server.state
        if self.path == "/redirect.zip":
            self.send_response(302)
            self.send_header("Location", "/ESC-50-master.zip")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path != "/ESC-50-master.zip":
            self.send_error(404)
            return
        range_header = self.headers.get("Range")
        state.ranges.append(range_header)
        payload, start = state.payload, 0
        if range_header and state.support_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", range_header).group(1))
            if start >= len(payload):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(payload)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(payload) - 1}/{len(payload)}")
        else:
            self.send_response(200)
        body = payload[start:]
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(body) + state.extra_announced))
        self.end_headers()
        if state.drops > 0:
            state.drops -= 1
            body = body[: state.drop_after]
        self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True


@pytest.fixture
def server():
    """A local HTTP server on 127.0.0.1; set ``server.state`` before use."""
    http_server = ThreadingHTTPServer(("127.0.0.1", 0), ArchiveHandler)
    http_server.state = ServerState(b"")
    http_server.url = f"http://127.0.0.1:{http_server.server_address[1]}"
    thread = threading.Thread(target=http_server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield http_server
    http_server.shutdown()
    http_server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def no_retry_wait(monkeypatch):
    monkeypatch.setattr(download, "RETRY_WAIT_S", 0.0)


def test_download_cut_short_is_never_the_destination(server, tmp_path):
    """SpeechBrain's downloader does not resume: a transfer cut short is deleted, the next call starts over."""
    payload = bytes(range(256)) * 400
    server.state = ServerState(payload)
    server.state.drops, server.state.drop_after = 1, 30000
    destination = tmp_path / "archive.zip"
    with pytest.raises(DownloadError, match="after 30000 of 102400 bytes; run again"):
        download_file(server.url + "/ESC-50-master.zip", destination, max_attempts=1)
    assert not destination.exists()
    assert not (tmp_path / "archive.zip.part").exists()
    download_file(server.url + "/ESC-50-master.zip", destination, max_attempts=1)
    assert server.state.ranges == [None, None]  # no Range request: the second transfer is whole
    assert destination.read_bytes() == payload
    assert not (tmp_path / "archive.zip.part").exists()


def test_download_retries_within_one_call(server, tmp_path, no_retry_wait):
    payload = bytes(range(256)) * 100
    server.state = ServerState(payload)
    server.state.drops, server.state.drop_after = 2, 5000
    download_file(server.url + "/redirect.zip", tmp_path / "a.zip", max_attempts=3)
    assert server.state.ranges == [None, None, None]
    assert (tmp_path / "a.zip").read_bytes() == payload  # not 5000 bytes three times


def test_download_stale_part_is_replaced(server, tmp_path):
    """A .part file left by an earlier run (even a complete-looking one) is never taken as the download."""
    payload = b"x" * 1000
    server.state = ServerState(payload)
    (tmp_path / "a.zip.part").write_bytes(b"stale" * 300)
    download_file(server.url + "/ESC-50-master.zip", tmp_path / "a.zip")
    assert server.state.ranges == [None]
    assert (tmp_path / "a.zip").read_bytes() == payload


def test_download_size_mismatch_detected(server, tmp_path, no_retry_wait):
    server.state = ServerState(b"y" * 4000)
    server.state.support_range = False
    server.state.extra_announced = 100  # announces 4100 bytes, sends 4000
    with pytest.raises(DownloadError, match="after 4000 of 4100 bytes"):
        download_file(server.url + "/ESC-50-master.zip", tmp_path / "a.zip", max_attempts=2)
    assert not (tmp_path / "a.zip").exists()
    assert not (tmp_path / "a.zip.part").exists()
    assert len(server.state.ranges) == 2


def test_download_checksum(server, tmp_path):
    payload = b"checked content"
    server.state = ServerState(payload)
    good = hashlib.sha256(payload).hexdigest()
    download_file(server.url + "/ESC-50-master.zip", tmp_path / "good.zip", expected_sha256=good.upper())
    assert (tmp_path / "good.zip").read_bytes() == payload
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download_file(server.url + "/ESC-50-master.zip", tmp_path / "bad.zip", expected_sha256="0" * 64)
    assert not (tmp_path / "bad.zip").exists()
    assert not (tmp_path / "bad.zip.part").exists()


def test_download_http_error(server, tmp_path):
    server.state = ServerState(b"payload")
    start = time.monotonic()
    with pytest.raises(DownloadError, match="HTTP error 404"):
        download_file(server.url + "/missing.zip", tmp_path / "x.zip", max_attempts=3)
    assert time.monotonic() - start < 2  # not retried
    assert not (tmp_path / "x.zip").exists()


@pytest.fixture
def esc50_zip(tmp_path):
    """A generated ESC-50 dataset zipped in GitHub's layout, and its CSV rows."""
    source = tmp_path / "source"
    rows = make_fake_esc50(source, n_per_class=1, classes=(0, 41, 3), folds=(1, 2, 3, 4, 5), duration_s=0.2)
    return make_esc50_zip(tmp_path / "ESC-50-master.zip", source).read_bytes(), rows


def test_prepare_downloads_retries_and_extracts(server, tmp_path, esc50_zip):
    payload, rows = esc50_zip
    server.state = ServerState(payload)
    server.state.drops, server.state.drop_after = 1, len(payload) // 3
    data, save = tmp_path / "data", tmp_path / "save"
    url = server.url + "/redirect.zip"
    with pytest.raises(ESC50NotFoundError, match="incomplete after 1 attempt.*run again") as info:
        prepare_esc50(data, save, url=url, download_attempts=1)
    first_line = str(info.value).splitlines()[0]
    assert url in first_line and "1. download" in str(info.value)
    assert list(data.iterdir()) == []  # nothing half-written left to be taken for the archive
    paths = prepare_esc50(data, save, url=url, download_attempts=1)
    assert server.state.ranges == [None, None]
    assert sorted(path.name for path in data.iterdir()) == ["audio", "meta"]  # archive and temp removed
    assert len(list((data / "audio").glob("*.wav"))) == len(rows) == 15
    assert (data / "meta" / "esc50.csv").is_file()
    assert len(read_json(paths["train"])) == 9
    assert read_json(paths["valid"])["4-100009-A-0"]["wav"] == str(data / "audio" / "4-100009-A-0.wav")


def test_prepare_rejects_path_traversal_archive(server, tmp_path, esc50_zip):
    source = tmp_path / "source"
    evil = make_esc50_zip(tmp_path / "evil.zip", source, extra_members=[("ESC-50-master/../../escaped.txt", b"x")])
    server.state = ServerState(evil.read_bytes())
    data = tmp_path / "deep" / "data"
    with pytest.raises(ESC50NotFoundError, match="unsafe member") as info:
        prepare_esc50(data, tmp_path / "save", url=server.url + "/ESC-50-master.zip")
    assert isinstance(info.value.__cause__, UnsafeArchiveError)
    assert not (tmp_path / "deep" / "escaped.txt").exists()
    assert not (data / "meta").exists()
    assert [path.name for path in data.iterdir()] == ["ESC-50-master.zip"]  # temp folder removed


@pytest.mark.parametrize(
    "name, reason",
    [
        ("../evil.txt", "parent-directory"),
        ("top/../../evil.txt", "parent-directory"),
        ("/tmp/evil_absolute.txt", "absolute"),
        ("C:/evil.txt", "absolute"),
        ("top\\..\\..\\evil.txt", "parent-directory"),
    ],
)
def test_safe_extract_rejects_before_writing(tmp_path, name, reason):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("top/good.txt", "fine")
        handle.writestr(name, "evil")
    with pytest.raises(UnsafeArchiveError, match=reason):
        safe_extract_zip(archive, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_safe_extract_rejects_symlink(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        link = zipfile.ZipInfo("top/link")
        link.external_attr = (0o120777 << 16)
        handle.writestr(link, "/etc/passwd")
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        safe_extract_zip(archive, tmp_path / "out")


def test_prepare_corrupt_archive_is_deleted(server, tmp_path):
    server.state = ServerState(b"this is not a zip file" * 50)
    data = tmp_path / "data"
    with pytest.raises(ESC50NotFoundError, match="corrupt"):
        prepare_esc50(data, tmp_path / "save", url=server.url + "/ESC-50-master.zip")
    assert list(data.iterdir()) == []


# ---------------------------------------------------------------- real data


@pytest.mark.real_data
def test_real_esc10_dev(esc50_dev, tmp_path):
    save = tmp_path / "save"
    prepare_esc50(esc50_dev, save, esc10=True, download=False)
    data = manifests(save)
    assert {split: len(entries) for split, entries in data.items()} == {"train": 240, "valid": 80, "test": 0}
    classes = read_json(save / "classes.json")
    assert classes == [
        "dog", "rooster", "rain", "sea_waves", "crackling_fire",
        "crying_baby", "sneezing", "clock_tick", "helicopter", "chainsaw",
    ]
    labels = [entry["label"] for entry in data["train"].values()]
    assert sorted(set(labels)) == list(range(10))
    assert all(labels.count(label) == 24 for label in range(10))
    assert all(entry["length"] == pytest.approx(5.0) for entry in data["valid"].values())
    assert (save / "skipped_files.txt").read_text() == ""

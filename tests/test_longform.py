"""Long recordings over sliding windows, streamed (focalnet_lobes.inference.longform)."""

import json
import tracemalloc

import numpy as np
import pytest
import soundfile
import torch

from focalnet_lobes.data.audio import AudioError
from focalnet_lobes.inference.classifiers import AudioClassifier, write_demo_model
from focalnet_lobes.inference.longform import (
    OverlapAddWriter,
    classify_long_file,
    interpret_long_file,
    iter_windows,
    stream_mono,
)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    torch.manual_seed(0)
    folder = write_demo_model(tmp_path_factory.mktemp("demo_model"))
    return AudioClassifier.from_hparams(source=str(folder))


def _noise_file(path, seconds, rate, channels=1, seed=0, level=0.1):
    generator = np.random.default_rng(seed)
    frames = int(round(seconds * rate))
    time = np.arange(frames) / rate
    # a tone whose level changes over time, plus noise: windows differ in level
    signal = (0.5 + 0.4 * np.sin(2 * np.pi * time / 7.0)) * np.sin(2 * np.pi * 440 * time)
    data = level * (signal[:, None] + 0.3 * generator.standard_normal((frames, channels)))
    soundfile.write(str(path), data.astype(np.float32), rate, subtype="PCM_16")
    return path


@pytest.mark.parametrize("length,window,hop", [(11, 4, 3), (12, 4, 4), (3, 4, 2), (40, 7, 2), (7, 7, 3)])
def test_windows_are_full_and_cover_every_sample(length, window, hop):
    signal = np.arange(length, dtype=np.float32)
    chunks = [signal[i:i + 5] for i in range(0, length, 5)]
    windows = list(iter_windows(chunks, window, hop))
    covered = np.zeros(length, dtype=bool)
    for start, samples, _ in windows:
        assert samples.tolist() == signal[start:start + samples.size].tolist()
        assert samples.size == min(window, length)
        covered[start:start + samples.size] = True
    assert covered.all()
    starts = [start for start, _, _ in windows]
    regular = [s for s in range(0, length - window + 1, hop)] or [0]
    assert starts[:len(regular)] == regular
    assert starts[-1] + windows[-1][1].size == length
    assert len(starts) == len(set(starts))


def test_stream_mono_matches_a_whole_file_resampling(tmp_path):
    import soxr

    path = _noise_file(tmp_path / "a.wav", 3.3, 44100, channels=2)
    streamed = np.concatenate(list(stream_mono(path, 16000, block_frames=1000)))
    data, _ = soundfile.read(str(path), dtype="float32")
    whole = soxr.resample(data.mean(axis=1), 44100, 16000)
    assert abs(streamed.size - 3.3 * 16000) <= 1
    assert streamed.size == whole.size
    assert np.abs(streamed - whole).max() < 1e-4


def test_each_window_is_classified_as_a_clip(classifier, tmp_path):
    """At the model's rate, window i's probabilities are classify_batch of that slice."""
    path = _noise_file(tmp_path / "long.wav", 7.5, 16000)
    result = classify_long_file(classifier, path, window=2.0, hop=1.5, top_k=2)
    data, _ = soundfile.read(str(path), dtype="float32")
    assert [w["start_s"] for w in result.windows] == [0.0, 1.5, 3.0, 4.5, 5.5]
    for entry, row in zip(result.windows, result.probabilities):
        start, end = int(entry["start_s"] * 16000), int(entry["end_s"] * 16000)
        expected = classifier.classify_batch(torch.from_numpy(data[start:end])[None])[0][0]
        assert np.allclose(row, expected.numpy(), atol=1e-5)
        assert entry["top_k"][0]["index"] == int(np.argmax(row)) and len(entry["top_k"]) == 2
    mean = result.probabilities.mean(axis=0)
    assert result.predicted["index"] == int(np.argmax(mean))
    assert result.predicted["score"] == pytest.approx(float(mean.max()), abs=1e-6)
    assert result.duration_s == pytest.approx(7.5)


@pytest.mark.parametrize("hop", [1.0, 0.4])
def test_full_mask_joins_back_into_the_input(classifier, tmp_path, hop):
    """quantile 0 keeps every bin: the joined interpretation is the input, at its level."""
    path = _noise_file(tmp_path / "long.wav", 4.3, 16000)
    out = tmp_path / "out"
    result = interpret_long_file(classifier, path, out, window=1.0, hop=hop, quantile=0.0)
    joined, rate = soundfile.read(result.files["wav"], dtype="float32")
    data, _ = soundfile.read(str(path), dtype="float32")
    assert rate == 16000 and joined.shape == data.shape
    assert np.abs(joined - data).max() < 2e-3 * np.abs(data).max()
    assert all(w["mask_fraction"] == 1.0 for w in result.windows)


def test_interpretation_files(classifier, tmp_path):
    path = _noise_file(tmp_path / "field.wav", 6.2, 44100, channels=2)
    result = interpret_long_file(classifier, path, tmp_path / "out", name="sub/field",
                                 window=1.0, hop=0.5, quantile=0.8, top_k=3)
    assert set(result.files) == {"wav", "png", "json", "csv"}
    assert all(str(tmp_path / "out" / "sub") in p for p in result.files.values())
    info = soundfile.info(result.files["wav"])
    assert info.samplerate == 16000 and abs(info.frames - 6.2 * 16000) <= 1
    joined, _ = soundfile.read(result.files["wav"])
    assert np.isfinite(joined).all() and 0 < np.abs(joined).max() < 1.0
    document = json.loads(open(result.files["json"]).read())
    assert document["num_windows"] == len(document["windows"]) == 12
    assert document["aggregation"] == "mean of the probabilities of the windows that are not silent"
    assert document["silent"] is False and not any(w["silent"] for w in document["windows"])
    assert len(document["top_k"]) == 3 and document["quantile"] == 0.8
    for window in document["windows"]:
        assert 0.15 <= window["mask_fraction"] <= 0.25
    lines = open(result.files["csv"]).read().splitlines()
    assert len(lines) == 13 and lines[0].startswith("window,start_s,end_s,predicted,score")
    assert open(result.files["png"], "rb").read(4) == b"\x89PNG"
    assert not list((tmp_path / "out").rglob("*.partial"))


def test_errors_name_the_file(classifier, tmp_path):
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF....WAVEfmt garbage")
    with pytest.raises(AudioError, match="corrupt.wav"):
        classify_long_file(classifier, corrupt)
    with pytest.raises(AudioError, match="missing.wav': file not found"):
        classify_long_file(classifier, tmp_path / "missing.wav")
    path = _noise_file(tmp_path / "ok.wav", 2.0, 16000)
    with pytest.raises(ValueError, match="--hop must be in"):
        classify_long_file(classifier, path, window=1.0, hop=2.0)
    # a failed interpretation leaves no half-written WAV behind
    with pytest.raises(ValueError, match="quantile"):
        interpret_long_file(classifier, path, tmp_path / "o", window=1.0, quantile=1.5)
    assert not list((tmp_path / "o").glob("*"))


def test_overlap_add_writer_is_exact_under_one_window(tmp_path):
    path = tmp_path / "x.wav"
    writer = OverlapAddWriter(path, 100, window=10)
    writer.add(0, np.full(10, 0.5), final_before=0)
    writer.add(5, np.full(10, 0.25), final_before=5)
    writer.close(total=16)
    data, _ = soundfile.read(str(path))
    assert np.allclose(data[:5], 0.5, atol=1e-6) and np.allclose(data[10:15], 0.25, atol=1e-6)
    assert data[15] == 0.0 and np.all((data[5:10] <= 0.5 + 1e-6) & (data[5:10] >= 0.25 - 1e-6))
    assert np.all(np.diff(data[4:11]) <= 1e-7)  # a smooth, monotone cross-fade


def _numpy_peak(function):
    """Peak bytes of NumPy/Python allocations while ``function`` runs (tracemalloc)."""
    tracemalloc.start()
    try:
        function()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_the_length(classifier, tmp_path):
    """A file 8 times longer needs no more memory: the file is never held whole.

    (The whole 160 s file, read at 22.05 kHz stereo as float32, is 28 MB; resampled
    to 16 kHz, 10 MB.) Windows of 5 s with a 5 s hop keep the test fast."""
    short = _noise_file(tmp_path / "short.wav", 20.0, 22050, channels=2)
    long = _noise_file(tmp_path / "long.wav", 160.0, 22050, channels=2, seed=1)
    peaks = {}
    for name, path in (("short", short), ("long", long)):
        peaks[name] = _numpy_peak(lambda: interpret_long_file(
            classifier, path, tmp_path / name, window=5.0, hop=5.0))
        assert soundfile.info(str(tmp_path / name / f"{path.stem}_interpretation.wav")).frames \
            == pytest.approx(soundfile.info(str(path)).duration * 16000, abs=1)
    assert peaks["long"] < peaks["short"] + 1_000_000, peaks
    whole_file = 160 * 22050 * 2 * 4  # the long file as float32 samples
    assert peaks["long"] < whole_file / 2, peaks

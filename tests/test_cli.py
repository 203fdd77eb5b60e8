"""The focalnet-audio command line (focalnet_lobes.inference.cli)."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from conftest import recipe_env
from focalnet_lobes.data.audio import load_audio
from focalnet_lobes.inference.cli import main

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_folder(trained_runs, tmp_path_factory):
    from focalnet_lobes.inference.export import export_classifier

    folder = tmp_path_factory.mktemp("cli_model") / "focalnet-cpu-esc10"
    export_classifier(trained_runs("focalnet_cpu.yaml"), folder, verify=False)
    return folder


@pytest.fixture(scope="module")
def clip(fake_esc10):
    """A generated 44.1 kHz stereo clip of the test fold."""
    return sorted((fake_esc10 / "audio").glob("5-*.wav"))[0]


def _cli(*args):
    """Run ``python -m focalnet_lobes.inference.cli`` in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "focalnet_lobes.inference.cli", *map(str, args)],
        cwd=REPO, env=recipe_env(), capture_output=True, text=True, timeout=300,
    )


def _check_outputs(out_dir, stem, audio_path, top_k):
    document = json.loads((out_dir / f"{stem}_interpretation.json").read_text())
    wav, rate = soundfile.read(document["wav"])
    assert rate == 16000 and wav.shape == (load_audio(audio_path, 16000).numel(),)
    assert np.isfinite(wav).all() and np.abs(wav).max() > 1e-4
    assert pathlib.Path(document["png"]).read_bytes()[:4] == b"\x89PNG"
    scores = [entry["score"] for entry in document["top_k"]]
    assert len(scores) == top_k and scores == sorted(scores, reverse=True)
    assert 0.0 < sum(scores) <= 1.0 + 1e-6
    assert document["predicted"] == document["top_k"][0]
    return document


def test_interpret_writes_wav_png_and_json(model_folder, clip, tmp_path, capsys):
    out_dir = tmp_path / "out"
    status = main(["interpret", str(clip), "--source", str(model_folder), "--out", str(out_dir),
                   "--top_k", "3", "--quantile", "0.8"])
    assert status == 0
    document = _check_outputs(out_dir, clip.stem, clip, top_k=3)
    assert document["quantile"] == 0.8
    assert 0.17 <= document["mask_fraction"] <= 0.23
    assert document["predicted"]["label"] in capsys.readouterr().out


def test_classify_prints_the_top_k(model_folder, clip, capsys):
    from focalnet_lobes.inference.classifiers import AudioClassifier

    assert main(["classify", str(clip), "--source", str(model_folder), "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    labels = AudioClassifier.from_hparams(source=str(model_folder)).classify_file(clip)[3]
    assert len(result["top_k"]) == 5 and result["top_k"][0]["label"] == labels[0]


@pytest.mark.parametrize("problem", ["missing", "corrupt", "no_model", "not_a_source", "quantile"])
def test_errors_are_one_line(problem, model_folder, clip, tmp_path, capsys):
    source, audio, extra = str(model_folder), str(clip), []
    expected = {
        "missing": "missing.wav': file not found",
        "corrupt": "corrupt.wav': unreadable or corrupt audio",
        "no_model": "is not a model folder: it has no hyperparams.yaml",
        "not_a_source": "neither a model folder",
        "quantile": "--quantile must be in [0, 1)",
    }[problem]
    if problem == "missing":
        audio = str(tmp_path / "missing.wav")
    elif problem == "corrupt":
        audio = str(tmp_path / "corrupt.wav")
        pathlib.Path(audio).write_bytes(b"RIFF....WAVEfmt garbage")
    elif problem == "no_model":
        source = str(tmp_path)
    elif problem == "not_a_source":
        source = str(tmp_path / "nowhere")
    else:
        extra = ["--quantile", "1.5"]
    status = main(["interpret", audio, "--source", source, "--out", str(tmp_path / "o"), *extra])
    error = capsys.readouterr().err
    assert status == 1
    assert error.count("\n") == 1 and error.startswith("focalnet-audio: error: ")
    assert expected in error


def test_module_entry_point_fails_cleanly(tmp_path):
    """``python -m focalnet_lobes.inference.cli``: a bad source ends with one line, no traceback."""
    result = _cli("classify", tmp_path / "missing.wav", "--source", tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert "missing.wav" in result.stderr
    assert _cli("--help").returncode == 0


@pytest.mark.real_data
def test_cli_interprets_a_real_clip(esc50_dev, model_folder, tmp_path):
    """The command line on a real ESC-10 clip (5 s, 44.1 kHz): WAV, PNG and JSON.

    A clip of continuous sound (rain): many ESC-50 clips are mostly digital silence,
    where the map of this model (trained on generated tones) may well fall, giving
    a silent interpretation."""
    import csv

    with open(esc50_dev / "meta" / "esc50.csv", newline="") as fin:
        rows = [row for row in csv.DictReader(fin) if row["category"] == "rain"]
    audio = esc50_dev / "audio" / sorted(row["filename"] for row in rows)[0]
    out_dir = tmp_path / "real"
    result = _cli("interpret", audio, "--source", model_folder, "--out", out_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    document = _check_outputs(out_dir, audio.stem, audio, top_k=5)
    assert document["duration_s"] == pytest.approx(5.0, abs=0.01)
    assert str(audio) in result.stdout

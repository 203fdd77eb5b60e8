"""recipes/cross_validate.py end to end on generated 3-fold data: folds, resume, pooled table
(the fold plan itself is checked on 3, 4 and 5 folds)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, load_benchmark, recipe_env, run_recipe
from focalnet_lobes.training.cross_validation import fold_plan

pytestmark = pytest.mark.slow

FOLDS = [1, 2, 3]  # the generated data's; fewer folds, the same code paths, a shorter test
CLIPS_PER_FOLD = 10  # 10 ESC-10 classes x 1 clip


@pytest.fixture(scope="module")
def three_folds(tmp_path_factory):
    from helpers_data import make_fake_esc50

    root = tmp_path_factory.mktemp("fake_esc50_cv")
    make_fake_esc50(root, n_per_class=1, sample_rate=16000, channels=1, duration_s=1.0, folds=FOLDS)
    return root


def cv_command(data_folder, cv_folder, cv_hparams):
    # fmt: off
    return [
        sys.executable, str(REPO / "recipes" / "cross_validate.py"),
        str(REPO / "hparams" / "focalnet_cpu.yaml"),
        "--data_folder", str(data_folder), "--cv_folder", str(cv_folder),
        "--cv_hparams", str(cv_hparams),
        "--interpret", "[by_design, interpret_energy.yaml]",
        "--interpret_override", "overlap_pairs=2",
        "--interpret_override", "num_examples=0",
        "--interpret_override", "bootstrap_resamples=199",
        # the same overrides as train.py (tiny data: 1 s clips, batch 8, 1 epoch)
        "--esc10", "True", "--clip_seconds", "1.0", "--batch_size", "8",
        "--number_of_epochs", "1",
    ]
    # fmt: on


def test_fold_plan_never_validates_or_trains_on_the_held_out_fold():
    for folds in ([1, 2, 3], [1, 2, 3, 4], [1, 2, 3, 4, 5]):
        plan = fold_plan(folds)
        assert [p["test_fold"] for p in plan] == folds
        for p in plan:
            assert p["valid_fold"] != p["test_fold"]
            assert p["test_fold"] not in p["train_folds"] and p["valid_fold"] not in p["train_folds"]
            assert sorted(p["train_folds"] + [p["valid_fold"], p["test_fold"]]) == folds
        # every fold validates exactly one model
        assert sorted(p["valid_fold"] for p in plan) == folds


def test_cross_validation_runs_resumes_and_pools(three_folds, tmp_path):
    cv_hparams = tmp_path / "cv.yaml"
    text = (REPO / "hparams" / "cross_validation.yaml").read_text()
    cv_hparams.write_text(text.replace("bootstrap_resamples: 9999", "bootstrap_resamples: 199"))
    cv_folder = tmp_path / "cv"
    command = cv_command(three_folds, cv_folder, cv_hparams)
    env = recipe_env()

    # first run: killed (with its training subprocess) once fold 1 is finished
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    marker = cv_folder / "fold_1" / "fold_done.json"
    deadline = time.time() + 900
    while not marker.is_file() and process.poll() is None and time.time() < deadline:
        time.sleep(0.5)
    assert marker.is_file(), process.stdout.read().decode()[-3000:] if process.poll() else "timeout"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    first_output = process.stdout.read().decode()
    # the default (validation: none): every other fold trains, the last epoch is kept
    assert ("[fold 1/3, held out 1] training on folds [2, 3], a fixed schedule "
            "(no validation, last epoch kept)") in first_output
    assert "[fold 1/3, held out 1] epoch: 1" in first_output  # progress: fold and epoch
    assert not (cv_folder / "cv_results.json").exists()
    checkpoint_times = {
        p: p.stat().st_mtime_ns for p in (cv_folder / "fold_1" / "model" / "save").rglob("*.ckpt")
    }
    assert checkpoint_times
    marker_time = marker.stat().st_mtime_ns

    # second run: fold 1 is skipped, the others run, the table is written
    result = run_recipe(command)
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-3000:]
    assert "[fold 1/3, held out 1] finished earlier" in result.stdout
    assert "[fold 1/3, held out 1] training" not in result.stdout
    assert "[fold 3/3, held out 3] done" in result.stdout
    assert marker.stat().st_mtime_ns == marker_time
    for path, stamp in checkpoint_times.items():
        assert path.stat().st_mtime_ns == stamp, path  # not retrained

    report = json.loads((cv_folder / "cv_results.json").read_text())
    assert [f["test_fold"] for f in report["folds"]] == FOLDS
    assert [f["clips"] for f in report["folds"]] == [CLIPS_PER_FOLD] * len(FOLDS)
    accuracies = [f["accuracy"] for f in report["folds"]]
    assert report["accuracy"]["mean"] == pytest.approx(sum(accuracies) / len(FOLDS))
    pooled = report["accuracy"]["pooled"]
    assert pooled["n"] == len(FOLDS) * CLIPS_PER_FOLD  # every clip evaluated once
    assert pooled["low"] <= pooled["mean"] <= pooled["high"]
    assert pooled["mean"] == pytest.approx(report["accuracy"]["mean"])  # equal fold sizes
    # each fold's accuracy is its train.py test accuracy on the held-out fold
    for fold in report["folds"]:
        test = json.loads((Path(fold["model_folder"]) / "test_results.json").read_text())
        assert test["accuracy"] == pytest.approx(fold["accuracy"])
        assert test["num_clips"] == CLIPS_PER_FOLD
    assert report["methods"] == ["focalnet", "energy"]
    for method in report["methods"]:
        for q in ("0.5", "0.9"):
            ci = report["metrics"][method][q]["fid_i"]
            assert ci["n"] == len(FOLDS) * CLIPS_PER_FOLD and ci["low"] <= ci["mean"] <= ci["high"]
    (difference,) = report["paired_differences"]
    assert (difference["label"], difference["reference"]) == ("energy", "focalnet")
    assert difference["clips"] == len(FOLDS) * CLIPS_PER_FOLD
    markdown = (cv_folder / "cv_results.md").read_text()
    assert "mean ± std over folds" in markdown and "## q = 0.9" in markdown
    assert "| energy − focalnet |" in markdown
    assert (cv_folder / "cv_results.png").stat().st_size > 10_000

    # benchmarks/tta_and_ensembles.py on this CV: its unshifted predictions are the CV's,
    # an ensemble of a model with itself is the model, the TTA's first shift is none
    levers = load_benchmark("tta_and_ensembles")
    run = levers.evaluate_cross_validation(cv_folder, shifts=2)
    assert run["recorded_agreement"] == 1.0
    assert run["probabilities"].shape == (2, len(FOLDS) * CLIPS_PER_FOLD, 10)
    correct = levers.lever_correctness([run, run])
    assert (correct["ensemble"][0] == correct["single"][0]).all()
    result = levers.compare_levers(correct, n_resamples=199)
    assert result["single"]["accuracy"] == pytest.approx(pooled["mean"])
    assert result["ensemble"]["difference"]["mean"] == 0.0


def test_cross_validation_errors_are_one_line(tmp_path):
    command = [
        sys.executable, str(REPO / "recipes" / "cross_validate.py"),
        str(REPO / "hparams" / "focalnet_cpu.yaml"),
        "--data_folder", str(tmp_path), "--cv_folder", str(tmp_path / "cv"),
    ]  # fmt: skip
    result = run_recipe(command)
    assert result.returncode != 0
    assert "not an ESC-50-layout folder" in result.stderr and "Traceback" not in result.stderr
    result = run_recipe(command[:-4] + ["--data_folder", str(tmp_path), "--cv_folder",
                                        str(tmp_path / "cv"), "--output_folder", "x"])
    assert result.returncode != 0
    assert "--output_folder is set by the cross-validation, not overridable" in result.stderr
    assert "Traceback" not in result.stderr
    result = run_recipe(command[:-4] + ["--data_folder", str(tmp_path), "--cv_folder",
                                        str(tmp_path / "cv"), "--checkpoint_selection", "valid_error"])
    assert result.returncode != 0
    assert "--checkpoint_selection is set by the cross-validation, not overridable" in result.stderr

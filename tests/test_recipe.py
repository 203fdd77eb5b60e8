"""The classification recipe end to end on a generated dataset in the ESC-50 layout.

Prepare -> train 2 epochs -> test, resume after a kill during epoch 2, and the
test report (accuracy, per-class accuracy, confusion matrix as text and PNG).
"""

import json
import re
import time
from pathlib import Path

import pytest
import torch


from conftest import (
    REPO, kill_after_first_checkpoint, real_training_command, run_recipe as run,
    training_command as recipe_command,
)

pytestmark = pytest.mark.slow


def epochs_logged(train_log):
    lines = Path(train_log).read_text().splitlines()
    return [int(line.split("epoch: ")[1].split(",")[0]) for line in lines if line.startswith("epoch: ")]


@pytest.mark.parametrize("hparams", ["focalnet_cpu.yaml", "vit_cpu.yaml"])
def test_train_and_test_end_to_end(trained_runs, hparams):
    output = trained_runs(hparams)
    assert epochs_logged(output / "train_log.txt") == [1, 2]
    summary = json.loads((output / "test_results.json").read_text())
    assert summary["num_clips"] == 20
    assert len(summary["confusion_matrix"]) == 10
    assert sum(map(sum, summary["confusion_matrix"])) == 20
    assert 0.0 <= summary["accuracy"] <= 1.0
    assert (output / "test_confusion.png").stat().st_size > 1000
    assert "accuracy" in (output / "test_confusion.txt").read_text()
    assert "Test accuracy" in (output / "log.txt").read_text()
    # The default (checkpoint_selection: last_epoch) keeps one checkpoint, the last
    # epoch's, and tests it; fold 4 is only watched.
    checkpoints = list((output / "save").glob("CKPT+*"))
    assert len(checkpoints) == 1 and (checkpoints[0] / "model.ckpt").is_file()
    assert "epoch: 2" in (checkpoints[0] / "CKPT.yaml").read_text()
    assert "Epoch loaded: 2" in (output / "train_log.txt").read_text()
    assert ("checkpoint_selection last_epoch: a fixed schedule of 2 epochs, the validation folds "
            "are only watched") in (output / "log.txt").read_text()


def test_trained_classifier_reloads_with_the_recipe_accuracy(trained_runs):
    """The best checkpoint rebuilt from the output folder reproduces the test accuracy."""
    from focalnet_lobes.data.audio import fix_length, load_audio
    from focalnet_lobes.inference.trained import load_trained_classifier

    output = trained_runs("focalnet_cpu.yaml")
    trained = load_trained_classifier(output)
    manifest = json.loads(trained.manifest("test").read_text())
    wavs = torch.stack([fix_length(load_audio(e["wav"]), 16000) for e in manifest.values()])
    labels = torch.tensor([e["label"] for e in manifest.values()])
    with torch.no_grad():
        predictions = trained.model(trained.frontend(wavs)).argmax(-1)
    summary = json.loads((output / "test_results.json").read_text())
    assert float((predictions == labels).float().mean()) == pytest.approx(summary["accuracy"])
    assert trained.class_names[0] == "dog"


def test_not_a_training_folder_is_a_clear_error(tmp_path):
    from focalnet_lobes.inference.trained import TrainedClassifierError, load_trained_classifier

    with pytest.raises(TrainedClassifierError, match="hyperparams.yaml is missing"):
        load_trained_classifier(tmp_path)


def test_rerun_after_finish_does_not_retrain(fake_esc10, tmp_path):
    output = tmp_path / "out"
    command = recipe_command("focalnet_cpu.yaml", fake_esc10, output, epochs=1)
    assert run(command).returncode == 0
    assert run(command).returncode == 0
    assert epochs_logged(output / "train_log.txt") == [1]


def final_model_state(output):
    (checkpoint,) = (output / "save").glob("CKPT+*")
    return torch.load(checkpoint / "model.ckpt", map_location="cpu", weights_only=True)


def test_resume_after_kill_during_epoch_two_is_bit_identical(trained_runs, fake_esc10, tmp_path):
    """Killed during epoch 2 and run again, training resumes from epoch 1's checkpoint and
    ends with exactly the weights and test results of the same run never interrupted: the
    random-number state (SpecAugment, Mixup, the faithfulness terms' quantile) is
    checkpointed with the model (``random_state.ckpt``). Without it the resumed epoch draws
    other augmentations and the weights differ."""
    output = tmp_path / "out"
    command = recipe_command("focalnet_cpu.yaml", fake_esc10, output)  # trained_runs' command
    train_log = output / "train_log.txt"
    kill_after_first_checkpoint(command, output)
    assert epochs_logged(train_log) == [1]
    (checkpoint,) = (output / "save").glob("CKPT+*")
    assert (checkpoint / "random_state.ckpt").is_file()

    result = run(command)
    assert result.returncode == 0, result.stderr[-4000:]
    # Epoch 1 is not redone: training resumed from its checkpoint.
    assert epochs_logged(train_log) == [1, 2]
    whole = trained_runs("focalnet_cpu.yaml")
    expected, state = final_model_state(whole), final_model_state(output)
    assert sorted(state) == sorted(expected)
    assert [key for key in expected if not torch.equal(state[key], expected[key])] == []
    summaries = [json.loads((o / "test_results.json").read_text()) for o in (whole, output)]
    assert summaries[0] == summaries[1]


def test_resume_with_other_settings_stops_with_one_line_before_writing(fake_esc10, tmp_path):
    """A run started in the folder of a run with other settings (front end, mel bands)
    stops with what differs, before it overwrites anything; the same settings resume."""
    output = tmp_path / "out"
    pcen = ("--compression", "pcen")
    result = run(recipe_command("focalnet_cpu.yaml", fake_esc10, output, *pcen, epochs=1))
    assert result.returncode == 0, result.stderr[-4000:]
    (checkpoint,) = (output / "save").glob("CKPT+*")
    frontend = torch.load(checkpoint / "compute_features.ckpt", weights_only=True)
    assert sorted(frontend) == ["pcen.alpha", "pcen.delta", "pcen.ema._weights", "pcen.root"]
    saved = (output / "hyperparams.yaml").read_bytes()
    other_pcen = ("--pcen_options",
                  "{alpha: 0.9, smooth_coef: 0.0286, delta: 2.0, root: 2.0, floor: 1.0e-6}")
    cases = {
        "only the checkpoint has pcen.alpha, pcen.delta, pcen.ema._weights and 1 more"
        " (YAML: compression, pcen_options)":
            ("--compression", "log1p"),
        "compute_features: fixed values differ for pcen.alpha (checkpoint 0.98, run 0.9)"
        " (YAML: compression, pcen_options)":
            (*pcen, *other_pcen),
        "model: shapes differ (checkpoint vs run) for normalizer.mean (64,) vs (80,)":
            (*pcen, "--n_mels", "80"),
    }
    for expected, extra in cases.items():
        result = run(recipe_command("focalnet_cpu.yaml", fake_esc10, output, *extra, epochs=2))
        assert result.returncode != 0
        message = result.stderr.strip().splitlines()[-1]
        assert message.startswith(f"error: {checkpoint}: this run's settings differ"), message
        assert expected in message and "choose another output_folder" in message, message
        assert "Traceback" not in result.stderr, result.stderr[-2000:]
        assert (output / "hyperparams.yaml").read_bytes() == saved
        assert epochs_logged(output / "train_log.txt") == [1]
    result = run(recipe_command("focalnet_cpu.yaml", fake_esc10, output, *pcen, epochs=2))
    assert result.returncode == 0, result.stderr[-4000:]
    assert epochs_logged(output / "train_log.txt") == [1, 2]


def test_fixed_schedule_without_validation_keeps_and_tests_the_last_epoch(fake_esc10, tmp_path):
    from focalnet_lobes.inference.trained import load_trained_classifier

    output = tmp_path / "out"
    command = recipe_command(
        "focalnet_cpu.yaml", fake_esc10, output, "--train_folds", "[1, 2, 3, 4]",
        "--valid_folds", "[]", "--checkpoint_selection", "last_epoch",
    )
    result = run(command)
    assert result.returncode == 0, result.stderr[-4000:]
    assert epochs_logged(output / "train_log.txt") == [1, 2]
    assert "Epoch loaded: 2" in (output / "train_log.txt").read_text()
    checkpoints = list((output / "save").glob("CKPT+*"))
    assert len(checkpoints) == 1
    assert "epoch: 2" in (checkpoints[0] / "CKPT.yaml").read_text()
    # saved with the epoch's step count reset, as a validated run's checkpoint is
    assert "step: 0\n" in (checkpoints[0] / "brain.ckpt").read_text()
    assert "No validation folds: a fixed schedule of 2 epochs" in (output / "log.txt").read_text()
    assert json.loads((output / "save" / "valid.json").read_text()) == {}
    assert (output / "test_results.json").is_file()
    assert Path(load_trained_classifier(output).checkpoint) == checkpoints[0]


def test_selection_on_validation_error_keeps_and_tests_the_best_epoch(fake_esc10, tmp_path):
    from conftest import kept_checkpoints

    output = tmp_path / "out"
    command = recipe_command("focalnet_cpu.yaml", fake_esc10, output,
                             "--checkpoint_selection", "valid_error", epochs=3)
    result = run(command)
    assert result.returncode == 0, result.stderr[-4000:]
    text = (output / "train_log.txt").read_text()
    errors = [float(e) for e in re.findall(r"valid error: ([0-9.e+-]+)", text)]
    assert len(errors) == 3
    kept = kept_checkpoints(output / "save")  # the best and the most recent at most
    best = min(meta["error"] for _, meta in kept)
    assert best == pytest.approx(min(errors), abs=1e-6)
    # the test stage loads an epoch of lowest validation error
    loaded = int(re.search(r"Epoch loaded: (\d+)", text).group(1))
    assert errors[loaded - 1] == min(errors)


def test_masked_in_term_trains(fake_esc10, tmp_path):
    """The term trains, starting after --masked_start_epoch; the log has its mean per epoch."""
    from focalnet_lobes.training.logs import read_train_log

    output = tmp_path / "out"
    command = recipe_command("focalnet_cpu.yaml", fake_esc10, output, "--masked_in_weight", "0.5",
                             "--masked_start_epoch", "1")
    result = run(command)
    assert result.returncode == 0, result.stderr[-4000:]
    assert epochs_logged(output / "train_log.txt") == [1, 2]
    assert (output / "test_results.json").is_file()
    terms = [row["train faithfulness term"] for row in read_train_log(output / "train_log.txt")]
    assert terms[0] == 0.0 and terms[1] > 0.1  # epoch 1: plain; epoch 2: 0.5 x a cross-entropy


def test_between_class_mixing_of_waveforms_trains(fake_esc10, tmp_path):
    """Lever B (wav_mix_probability 1.0, feature Mixup off): the mixes bypass the feature
    cache and train; the defaults leave it off."""
    from hyperpyyaml import load_hyperpyyaml

    output = tmp_path / "out"
    command = recipe_command("focalnet_cpu.yaml", fake_esc10, output,
                             "--wav_mix_probability", "1.0", "--mixup_alpha", "0.0")
    result = run(command)
    assert result.returncode == 0, result.stderr[-4000:]
    assert epochs_logged(output / "train_log.txt") == [1, 2]
    assert (output / "test_results.json").is_file()
    saved = (output / "hyperparams.yaml").read_text()
    assert "wav_mix_probability: 1.0" in saved and "mixup_alpha: 0.0" in saved
    with open(REPO / "hparams" / "focalnet_cpu.yaml", encoding="utf-8") as fin:
        defaults = load_hyperpyyaml(fin, {"data_folder": str(tmp_path)})
    assert defaults["wav_mix"].probability == 0.0 and defaults["mixup"].alpha == 0.4


def averaged_run_state(output):
    """The kept checkpoint's model and weight average, and the training clips per epoch."""
    checkpoints = list((output / "save").glob("CKPT+*"))
    assert len(checkpoints) == 1
    model = torch.load(checkpoints[0] / "model.ckpt", weights_only=True)
    average = torch.load(checkpoints[0] / "weight_average.ckpt", weights_only=True)
    train_clips = len(json.loads((output / "save" / "train.json").read_text()))
    return model, average, train_clips


def test_weight_average_becomes_the_kept_and_tested_model(fake_esc10, tmp_path):
    """Lever W: the EMA of the steps after the start epoch replaces the model after the
    last epoch; the test stage and every loader of the run take it."""
    from focalnet_lobes.inference.trained import load_trained_classifier

    runs = {}
    for name, extra in (("plain", ()), ("averaged", ("--weight_average_decay", "0.5"))):
        output = tmp_path / name
        command = recipe_command("focalnet_cpu.yaml", fake_esc10, output, "--valid_folds", "[]",
                                 "--weight_average_start_epoch", "1", *extra, epochs=3)
        result = run(command)
        assert result.returncode == 0, result.stderr[-4000:]
        runs[name] = output
    model, average, train_clips = averaged_run_state(runs["averaged"])
    steps = train_clips // 8  # batch 8, drop_last
    assert int(average["average.n_averaged"]) == 2 * steps  # epochs 2 and 3
    assert f"average of its weights (decay 0.5; {2 * steps} optimiser steps averaged)" in (runs["averaged"] / "log.txt").read_text()
    for key, value in model.items():
        assert torch.equal(value, average[f"average.module.{key}"]), key
    plain = next((runs["plain"] / "save").glob("CKPT+*"))
    assert not (plain / "weight_average.ckpt").exists()  # off by default
    plain = torch.load(plain / "model.ckpt", weights_only=True)
    # same seed and data: the same steps, but the averaged run keeps other weights
    assert any(not torch.equal(plain[k], model[k]) for k in model if model[k].is_floating_point())
    trained = load_trained_classifier(runs["averaged"])
    for key, value in trained.model.state_dict().items():
        assert torch.equal(value, model[key]), key


def test_last_validation_sees_the_averaged_model(fake_esc10, tmp_path):
    """With validation folds (the YAML's default), the average replaces the model before
    the last epoch's validation: its logged loss is the kept (averaged) model's."""
    from focalnet_lobes.data.audio import fix_length, load_audio
    from focalnet_lobes.inference.trained import load_trained_classifier
    from focalnet_lobes.training.losses import SoftTargetCrossEntropy

    output = tmp_path / "out"
    command = recipe_command("focalnet_cpu.yaml", fake_esc10, output, "--weight_average_decay", "0.5",
                             "--weight_average_start_epoch", "1", epochs=3)
    result = run(command)
    assert result.returncode == 0, result.stderr[-4000:]
    logged = [float(v) for v in re.findall(r"valid loss: ([0-9.e+-]+)", (output / "train_log.txt").read_text())]
    assert len(logged) == 3
    trained = load_trained_classifier(output)
    manifest = list(json.loads(trained.manifest("valid").read_text()).values())
    cost = SoftTargetCrossEntropy(label_smoothing=0.1)
    losses = []
    for start in range(0, len(manifest), 8):  # the recipe's valid batches (batch 8), in bf16
        batch = manifest[start:start + 8]
        wavs = torch.stack([fix_length(load_audio(e["wav"]), 16000) for e in batch])
        labels = torch.tensor([e["label"] for e in batch])
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            logits = trained.model(trained.frontend(wavs))
        losses.append(float(cost(logits.float(), labels)))
    # the log keeps 3 significant digits
    assert sum(losses) / len(losses) == pytest.approx(logged[-1], abs=0.006)


def test_averaging_starts_on_a_run_checkpointed_without_it(fake_esc10, tmp_path):
    """Continuing a finished run with --weight_average_decay: no saved average to load,
    a new one starts (its first update copies the weights), and a warning names the
    epochs it leaves out (here epoch 1: averaging was asked from epoch 0 on)."""
    output = tmp_path / "out"
    first = recipe_command("focalnet_cpu.yaml", fake_esc10, output, "--valid_folds", "[]", epochs=1)
    assert run(first).returncode == 0
    more = recipe_command("focalnet_cpu.yaml", fake_esc10, output, "--valid_folds", "[]",
                          "--weight_average_decay", "0.5", "--weight_average_start_epoch", "0", epochs=3)
    result = run(more)
    assert result.returncode == 0, result.stderr[-4000:]
    assert epochs_logged(output / "train_log.txt") == [1, 2, 3]
    model, average, train_clips = averaged_run_state(output)
    assert int(average["average.n_averaged"]) == 2 * (train_clips // 8)
    assert ("The checkpoint (after epoch 1) holds no weight average: the average starts now "
            "and leaves out epoch 1 (weight_average_start_epoch, or number_of_epochs x "
            "weight_average_start_fraction: averaging after epoch 0)") in (output / "log.txt").read_text()


def test_weight_average_survives_a_kill_and_resumes(fake_esc10, tmp_path):
    """Killed during epoch 2, the rerun continues the average saved with epoch 1's checkpoint:
    it averages all three epochs' steps, not only those after the restart."""
    output = tmp_path / "out"
    command = recipe_command("focalnet_cpu.yaml", fake_esc10, output, "--valid_folds", "[]",
                             "--weight_average_decay", "0.5", "--weight_average_start_epoch", "0",
                             epochs=3)
    kill_after_first_checkpoint(command, output)
    assert epochs_logged(output / "train_log.txt") == [1]
    result = run(command)
    assert result.returncode == 0, result.stderr[-4000:]
    assert epochs_logged(output / "train_log.txt") == [1, 2, 3]
    model, average, train_clips = averaged_run_state(output)
    assert int(average["average.n_averaged"]) == 3 * (train_clips // 8)
    assert "holds no weight average" not in (output / "log.txt").read_text()  # the average was recovered
    for key, value in model.items():
        assert torch.equal(value, average[f"average.module.{key}"]), key


@pytest.mark.parametrize("extra, message", [
    (["--valid_folds", "[]", "--checkpoint_selection", "valid_error"],
     "valid_folds is empty: .* --checkpoint_selection last_epoch"),
    (["--checkpoint_selection", "best"], "checkpoint_selection must be one of valid_error, last_epoch, got 'best'"),
    (["--checkpoint_selection", "valid_error", "--weight_average_decay", "0.99"],
     "weight_average_decay needs checkpoint_selection last_epoch .* got 'valid_error'"),
    (["--weight_average_decay", "1.5"], r"weight_average_decay must be in \[0, 1\) or null, got 1.5"),
    (["--weight_average_decay", "0.9", "--weight_average_start_fraction", "1.0"],
     "weight_average_start_epoch is 2, but the epochs after it are averaged and the run has 2"),
    (["--freq_warp_window", "32"],  # checked against the front end's 64 bands before any work
     r"warp_window \(YAML: freq_warp_window\) 32 needs more than 64 frequency bins; the features have 64$"),
    (["--freq_warp_window", "-1"],
     r"warp_window \(YAML: freq_warp_window\) must be an integer >= 0 \(0: off\), got -1$"),
])
def test_checkpoint_selection_errors_are_one_line(fake_esc10, tmp_path, extra, message):
    output = tmp_path / "runs" / "out"
    result = run(recipe_command("focalnet_cpu.yaml", fake_esc10, output, *extra))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert re.search(message, result.stderr.strip().splitlines()[-1])
    assert not (tmp_path / "runs").exists()  # the folders the YAML's load created are removed


def test_mismatched_class_count_is_a_clear_error(fake_esc10, tmp_path):
    output = tmp_path / "out"
    command = recipe_command("focalnet_cpu.yaml", fake_esc10, output, "--n_classes", "7")
    result = run(command)
    assert result.returncode != 0
    assert "n_classes=7" in result.stdout + result.stderr


@pytest.mark.real_data
def test_real_esc10_one_epoch(esc50_dev, tmp_path):
    """The real ESC-10 clips (folds 1-3 train, 4 valid; no fold 5) go through the recipe."""
    output = tmp_path / "out"
    result = run(real_training_command("focalnet_cpu.yaml", esc50_dev, output, epochs=1))
    assert result.returncode == 0, result.stderr[-4000:]
    assert epochs_logged(output / "train_log.txt") == [1]
    assert "test manifest is empty" in (output / "log.txt").read_text()


def test_empty_data_folder_fails_fast_with_manual_steps(tmp_path):
    """No ESC-50 and no download: a short message with the URL and the manual steps."""
    empty = tmp_path / "empty"
    empty.mkdir()
    command = recipe_command("focalnet_cpu.yaml", empty, tmp_path / "out", "--download", "False")
    start = time.time()
    result = run(command)
    assert time.time() - start < 60
    assert result.returncode != 0
    assert "github.com/karolpiczak/ESC-50" in result.stderr
    assert "meta/esc50.csv" in result.stderr
    assert "Traceback" not in result.stderr


def test_corrupt_clip_is_reported_and_skipped(tmp_path):
    """A corrupt WAV in audio/ is listed in skipped_files.txt; training goes on without it."""
    from helpers_data import make_fake_esc50

    data = tmp_path / "data"
    make_fake_esc50(data, n_per_class=1, sample_rate=44100, duration_s=1.0, folds=(1, 2, 3, 4))
    corrupt = sorted((data / "audio").glob("1-*.wav"))[0]
    corrupt.write_bytes(b"RIFF not really a wave file")
    output = tmp_path / "out"
    result = run(recipe_command("focalnet_cpu.yaml", data, output, epochs=1))
    assert result.returncode == 0, result.stderr[-4000:]
    skipped = (output / "save" / "skipped_files.txt").read_text()
    assert corrupt.name in skipped
    train = json.loads((output / "save" / "train.json").read_text())
    assert len(train) == 29 and corrupt.stem not in train


@pytest.mark.parametrize("yaml_name", ["focalnet_cpu.yaml", "vit_cpu.yaml"])
def test_folders_to_create_are_the_missing_output_and_save_folders(tmp_path, yaml_name):
    """Read without loading the YAML (nothing is created); an existing folder is not listed,
    and an unreadable file lists nothing (the load reports it)."""
    from focalnet_lobes.training.plan import folders_to_create, remove_empty_folders

    hparams = Path(__file__).resolve().parents[1] / "hparams" / yaml_name
    output = tmp_path / "a" / "b"
    overrides = {"data_folder": str(tmp_path), "output_folder": str(output)}
    folders = folders_to_create(hparams, overrides)
    assert folders == [str(output / "save"), str(output), str(tmp_path / "a")]
    assert not (tmp_path / "a").exists()
    output.mkdir(parents=True)
    (output / "kept.txt").write_text("earlier work")
    assert folders_to_create(hparams, overrides) == [str(output / "save")]
    remove_empty_folders(folders)
    assert (output / "kept.txt").read_text() == "earlier work"
    assert folders_to_create(hparams, {"output_folder": str(output)}) == []  # data_folder unset
    assert folders_to_create(tmp_path / "missing.yaml", overrides) == []

"""L-MAC, the post-hoc listenable-map baseline: modules on the trained CPU FocalNet and ViT, and the recipe.

Modules: mask shapes on 431 x 64 and 87 x 64 features and range [0, 1], the
masking on the linear grid, one optimisation step lowering the loss on a fixed
batch without touching the frozen classifier, the signs of the masked-in /
masked-out / L1 terms. Recipe: train on the shared FocalNet run, killed after
its first checkpoint and resumed, rerun without retraining, lmac_training.json,
and L-MAC evaluated by recipes/interpret.py and listed by compare.py.
"""

import json
import math
import sys
from pathlib import Path

import pytest
import torch

from conftest import REPO, kill_after_first_checkpoint, run_recipe
from focalnet_lobes.data.features import SpectrogramFrontend
from focalnet_lobes.interpretation.lmac import (
    LMACFolderError,
    LMACInterpreter,
    LMACLoss,
    load_lmac_interpreter,
    load_training_cost,
    masked_features,
)
from focalnet_lobes.interpretation.piq import representation_channels


@pytest.fixture(scope="module")
def classifiers(trained_runs):
    """The trained FocalNet and ViT classifiers of the shared 2-epoch runs."""
    from focalnet_lobes.inference.trained import load_trained_classifier

    return {
        name: load_trained_classifier(trained_runs(f"{name}_cpu.yaml"))
        for name in ("focalnet", "vit")
    }


def make_interpreter(trained):
    return LMACInterpreter(
        representation_channels(trained.model), len(trained.class_names), decoder_channels=(16, 8)
    )


def clips(trained, batch, seconds, seed=0):
    """Waveforms, their STFT magnitude and features through the classifier's front end."""
    generator = torch.Generator().manual_seed(seed)
    wavs = torch.randn(batch, int(16000 * seconds), generator=generator)
    wavs = wavs * torch.linspace(0.1, 1.0, batch).unsqueeze(1)
    magnitude = trained.frontend.spectrum(wavs).abs()
    return wavs, magnitude, trained.frontend.features_from_magnitude(magnitude)


@pytest.mark.parametrize("backbone", ["focalnet", "vit"])
@pytest.mark.parametrize("seconds, frames", [(5.0, 431), (1.0, 87)])
def test_masks_on_the_feature_grid_in_unit_range(classifiers, backbone, seconds, frames):
    trained = classifiers[backbone]
    _, _, features = clips(trained, 2, seconds)
    assert features.shape == (2, 1, frames, 64)
    interpreter = make_interpreter(trained).eval()
    with torch.no_grad():
        logits, maps = interpreter(trained.model, features)
        expected_logits = trained.model(features)
    assert maps.shape == (2, 1, frames, 64)
    assert 0.0 <= float(maps.min()) and float(maps.max()) <= 1.0
    assert float(maps.std()) > 0  # a map, not a constant
    torch.testing.assert_close(logits, expected_logits)
    # The listenable output of the mask: the input's length, silent where M = 0.
    wavs = clips(trained, 2, seconds)[0]
    assert trained.frontend.listenable(wavs, maps).shape == wavs.shape


@pytest.mark.parametrize("scale", [1.0, 1000.0])
def test_log_magnitude_masking_multiplies_the_features_on_the_linear_grid(scale):
    """On linear-frequency features (M_lin = M) the log-magnitude domain masks the
    classifier's own features: features(expm1(M log1p(C |X|)) / C) = M log1p(C |X|)."""
    frontend = SpectrogramFrontend(log1p_scale=scale)
    magnitude = frontend.spectrum(torch.randn(1, 4000)).abs()
    features = frontend.features_from_magnitude(magnitude)
    mask = torch.rand_like(features)
    torch.testing.assert_close(
        masked_features(frontend, magnitude, mask, "log_magnitude"), mask * features, atol=1e-4, rtol=1e-4
    )


def test_masking_lives_on_the_linear_grid():
    frontend = SpectrogramFrontend(n_mels=16)
    magnitude = frontend.spectrum(torch.randn(2, 8000)).abs()
    features = frontend.features_from_magnitude(magnitude)
    mask = torch.rand(2, 1, features.shape[2], 16)
    linear = frontend.mask_to_linear(mask).squeeze(1)
    # magnitude domain: the features of M_lin |X| (what the listenable output plays)
    torch.testing.assert_close(
        masked_features(frontend, magnitude, mask),
        frontend.features_from_magnitude(linear * magnitude),
    )
    # SpeechBrain's recipe: expm1(M_lin log1p|X|)
    torch.testing.assert_close(
        masked_features(frontend, magnitude, mask, "log_magnitude"),
        frontend.features_from_magnitude(torch.expm1(linear * torch.log1p(magnitude))),
    )
    # masked-in and masked-out linear masks are complements
    torch.testing.assert_close(frontend.mask_to_linear(1 - mask).squeeze(1), 1 - linear)
    torch.testing.assert_close(masked_features(frontend, magnitude, torch.ones_like(mask)), features)
    assert float(masked_features(frontend, magnitude, torch.zeros_like(mask)).abs().max()) == 0.0
    with pytest.raises(ValueError, match="unknown mask_domain"):
        masked_features(frontend, magnitude, mask, "power")
    with pytest.raises(ValueError, match="does not match"):
        masked_features(frontend, magnitude[:, :-1], mask)


@pytest.mark.parametrize("backbone", ["focalnet", "vit"])
def test_one_step_lowers_the_loss_and_leaves_the_classifier(classifiers, backbone):
    trained = classifiers[backbone]
    trained.model.requires_grad_(False)  # frozen, as recipes/train_lmac.py does
    torch.manual_seed(0)
    interpreter = make_interpreter(trained).train()
    loss_fn = LMACLoss()
    _, magnitude, features = clips(trained, 4, 1.0)
    before_state = {k: v.clone() for k, v in trained.model.state_dict().items()}
    optimizer = torch.optim.Adam(interpreter.parameters(), lr=1e-4)

    def loss_value():
        output = interpreter.lmac_forward(trained.model, features)
        return loss_fn(trained.model, trained.frontend, magnitude, output.mask_logits, output.logits)

    terms = loss_value()
    terms["loss"].backward()
    for parameter in interpreter.parameters():
        assert parameter.grad is not None and float(parameter.grad.abs().sum()) > 0
    optimizer.step()
    with torch.no_grad():
        after = loss_value()["loss"]
    assert float(after) < float(terms["loss"].detach())
    assert all(p.grad is None for p in trained.model.parameters())
    for key, value in trained.model.state_dict().items():
        assert torch.equal(value, before_state[key]), key


class EnergyClassifier(torch.nn.Module):
    """Class 0's logit is the input's mean feature, class 1's a constant."""

    def __init__(self, constant):
        super().__init__()
        self.constant = float(constant)

    def forward(self, features):
        energy = features.flatten(1).mean(dim=1)
        return torch.stack([energy, torch.full_like(energy, self.constant)], dim=1)


def test_masked_in_and_masked_out_terms_have_the_documented_signs():
    """loss = in_w CE(f(X M)) - out_w CE(f(X (1 - M))) + l1_w mean M."""
    frontend = SpectrogramFrontend(n_mels=16)
    magnitude = frontend.spectrum(torch.randn(2, 8000, generator=torch.Generator().manual_seed(0))).abs()
    features = frontend.features_from_magnitude(magnitude)
    classifier = EnergyClassifier(0.5 * float(features.mean()))
    logits = classifier(features)
    assert logits.argmax(dim=1).tolist() == [0, 0]  # y_hat: the energy class
    mask_logits = torch.zeros(2, 1, magnitude.shape[1], 16)

    terms = LMACLoss(in_weight=4.0, out_weight=0.2, l1_weight=0.4)(
        classifier, frontend, magnitude, mask_logits, logits
    )
    torch.testing.assert_close(terms["masked_in"], 4.0 * terms["in"])
    torch.testing.assert_close(terms["masked_out"], -0.2 * terms["out"])
    torch.testing.assert_close(
        terms["loss"], terms["masked_in"] + terms["masked_out"] + 0.4 * terms["l1"]
    )
    assert float(terms["in"]) > 0 and float(terms["out"]) > 0

    def mask_gradient(**weights):
        logit = mask_logits.clone().requires_grad_(True)
        LMACLoss(**weights)(classifier, frontend, magnitude, logit, logits)["loss"].backward()
        return logit.grad

    # Keeping more of the evidence in the masked-in input lowers its CE: the
    # masked-in term pushes the mask up (negative gradient) ...
    masked_in = mask_gradient(in_weight=1.0, out_weight=0.0, l1_weight=0.0)
    assert float(masked_in.max()) <= 0 and float(masked_in.min()) < 0
    # ... and so does the masked-out term, with its minus sign: removing the
    # evidence from the masked-out input raises its CE, which lowers the loss.
    masked_out = mask_gradient(in_weight=0.0, out_weight=1.0, l1_weight=0.0)
    assert float(masked_out.max()) <= 0 and float(masked_out.min()) < 0
    # The L1 term pushes every bin of the mask down.
    l1 = mask_gradient(in_weight=0.0, out_weight=0.0, l1_weight=1.0)
    assert float(l1.min()) > 0
    # A mask keeping everything beats one removing everything on both terms.
    full = LMACLoss(l1_weight=0.0)(classifier, frontend, magnitude, mask_logits + 20, logits)
    empty = LMACLoss(l1_weight=0.0)(classifier, frontend, magnitude, mask_logits - 20, logits)
    assert float(full["in"]) < float(empty["in"]) and float(full["out"]) > float(empty["out"])
    assert float(full["loss"]) < float(empty["loss"])

    for bad in ({"in_weight": -1.0}, {"mask_domain": "power"}):
        with pytest.raises(ValueError):
            LMACLoss(**bad)


def test_interpreter_mismatch_is_a_clear_error(classifiers):
    trained = classifiers["vit"]
    _, _, features = clips(trained, 1, 1.0)
    channels = representation_channels(trained.model)
    with pytest.raises(ValueError, match="trained for 3 classes"):
        LMACInterpreter(channels, 3)(trained.model, features)
    with pytest.raises(ValueError, match="16-channel"):
        LMACInterpreter(16, len(trained.class_names))(trained.model, features)
    with pytest.raises(LMACFolderError, match="hyperparams.yaml is missing"):
        load_lmac_interpreter(Path("/nonexistent"))


def epochs_logged(train_log):
    lines = Path(train_log).read_text().splitlines()
    return [line for line in lines if line.startswith("epoch: ")]


@pytest.mark.slow
def test_recipe_resumes_after_a_kill_and_is_evaluated_by_interpret(trained_runs, tmp_path):
    classifier_folder = trained_runs("focalnet_cpu.yaml")
    output = tmp_path / "lmac"
    command = [
        sys.executable, str(REPO / "recipes" / "train_lmac.py"),
        str(REPO / "hparams" / "lmac_focalnet_cpu.yaml"),
        "--classifier_folder", str(classifier_folder),
        "--output_folder", str(output),
        "--number_of_epochs", "3", "--batch_size", "8", "--device", "cpu",
    ]
    kill_after_first_checkpoint(command, output)
    assert [line.split(",")[0] for line in epochs_logged(output / "train_log.txt")] == ["epoch: 1"]
    assert not (output / "lmac_training.json").exists()
    (first,) = (output / "save").glob("CKPT+*")
    assert (first / "random_state.ckpt").is_file()  # keep_random_state, as train.py

    result = run_recipe(command)
    assert result.returncode == 0, result.stderr[-3000:]
    epochs = epochs_logged(output / "train_log.txt")
    assert [line.split(",")[0] for line in epochs] == ["epoch: 1", "epoch: 2", "epoch: 3"]
    assert "valid fidelity" in epochs[0] and "train masked_out: -" in epochs[0]
    assert "Epoch loaded: 3 - test loss" in (output / "train_log.txt").read_text()
    cost = load_training_cost(output)
    assert cost["method"] == "lmac" and cost["epochs"] == 3
    assert 0 < cost["seconds"] < 600
    assert cost["seconds_per_epoch"] == pytest.approx(cost["seconds"] / 3)
    interpreter = load_lmac_interpreter(output, classifier_folder=classifier_folder)
    assert isinstance(interpreter, LMACInterpreter) and not interpreter.training
    assert cost["params"] == sum(p.numel() for p in interpreter.parameters())
    assert interpreter.num_classes == 10
    checkpoints = sorted(p.name for p in (output / "save").glob("CKPT+*"))

    # Rerunning the finished run recovers and does not train again.
    result = run_recipe(command)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(epochs_logged(output / "train_log.txt")) == 3
    assert sorted(p.name for p in (output / "save").glob("CKPT+*")) == checkpoints
    assert load_training_cost(output) == cost

    # Rerun with another interpreter size: one line naming the checkpoint, nothing written.
    saved = (output / "hyperparams.yaml").read_bytes()
    result = run_recipe([*command, "--decoder_channels", "[32, 16, 8, 4]"])
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith(f"error: {output / 'save' / checkpoints[-1]}: this run's settings "
                              "differ from the checkpoint's (interpreter: shapes differ"), message
    assert (output / "hyperparams.yaml").read_bytes() == saved

    # L-MAC through the common evaluator, with the interface of the issue.
    options = {
        "max_clips": 8, "num_examples": 1, "overlap_pairs": 2, "latency_clips": 2,
        "latency_repeats": 1,
    }
    arguments = [item for key, value in options.items() for item in (f"--{key}", str(value))]
    result = run_recipe([
        sys.executable, str(REPO / "recipes" / "interpret.py"),
        str(REPO / "hparams" / "interpret_lmac.yaml"),
        "--classifier_folder", str(classifier_folder), "--lmac_folder", str(output),
        "--output_folder", str(tmp_path / "interpretation" / "lmac"), "--device", "cpu",
        "--split", "test", *arguments,
    ])
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "interpretation" / "lmac" / "metrics.json").read_text())
    assert metrics["method"] == "lmac" and metrics["interpreter"] == "LMACInterpreter"
    assert metrics["num_clips"] == 8 and metrics["training_cost"] == cost
    for values in metrics["quantiles"].values():
        assert all(math.isfinite(values[key]) for key in ("fid_i", "fa", "ff", "ai", "ad"))
        assert 0.0 <= values["fid_i"] <= 1.0
    assert list((tmp_path / "interpretation" / "lmac").rglob("*_interpretation.wav"))

    from focalnet_lobes.interpretation.comparison import find_metrics_files, load_result, write_comparison

    write_comparison(
        [load_result(path) for path in find_metrics_files(tmp_path / "interpretation")],
        tmp_path / "comparison",
    )
    table = json.loads((tmp_path / "comparison" / "comparison.json").read_text())
    assert [row["method"] for row in table["rows"]] == ["lmac"] * 6

    # AudioClassifier and the command line can use the trained L-MAC.
    from focalnet_lobes.inference.cli import main
    from focalnet_lobes.inference.export import export_classifier
    from focalnet_lobes.inference.classifiers import AudioClassifier

    model_folder = tmp_path / "model"
    export_classifier(classifier_folder, model_folder, verify=False)
    classifier = AudioClassifier.from_hparams(source=str(model_folder))
    wavs = torch.randn(2, 16000, generator=torch.Generator().manual_seed(1))
    by_design = classifier.interpret_batch(wavs, quantile=0.9)
    lmac = classifier.use_lmac(output).interpret_batch(wavs, quantile=0.9)
    with torch.no_grad():  # the features of the (peak-normalised) clips it interpreted
        _, expected = interpreter(classifier.mods.model, lmac.features)
    torch.testing.assert_close(lmac.maps, expected)
    assert not torch.allclose(lmac.maps, by_design.maps)
    torch.testing.assert_close(lmac.probabilities, by_design.probabilities)
    assert lmac.listenable.shape == wavs.shape
    restored = classifier.use_lmac(None).interpret_batch(wavs, quantile=0.9)
    torch.testing.assert_close(restored.maps, by_design.maps)

    audio = tmp_path / "clip.wav"
    import soundfile

    soundfile.write(audio, wavs[0].numpy(), 16000)
    status = main(["interpret", str(audio), "--source", str(model_folder),
                   "--out", str(tmp_path / "cli"), "--method", "lmac", "--lmac_source", str(output)])
    assert status == 0
    document = json.loads((tmp_path / "cli" / "clip_interpretation.json").read_text())
    assert document["method"] == "lmac" and Path(document["wav"]).is_file()
    status = main(["interpret", str(audio), "--source", str(model_folder),
                   "--out", str(tmp_path / "cli"), "--method", "lmac",
                   "--lmac_source", str(tmp_path / "missing")])
    assert status == 1


@pytest.fixture(scope="module")
def classifier_without_validation(fake_esc10, tmp_path_factory):
    """A 1-epoch FocalNet trained with no validation folds (a fixed schedule, the CV default)."""
    from conftest import training_command

    folder = tmp_path_factory.mktemp("no_validation") / "classifier"
    result = run_recipe(training_command(
        "focalnet_cpu.yaml", fake_esc10, folder, "--valid_folds", "[]", epochs=1
    ))
    assert result.returncode == 0, result.stderr[-3000:]
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("method", ["lmac", "piq"])
def test_posthoc_on_a_classifier_without_validation_keeps_its_last_epoch(
    classifier_without_validation, tmp_path, method
):
    """The interpreter of a fixed-schedule classifier trains a fixed schedule too."""
    from focalnet_lobes.interpretation.piq import load_piq_interpreter, load_training_cost as piq_cost

    classifier_folder = classifier_without_validation
    output = tmp_path / method
    command = [
        sys.executable, str(REPO / "recipes" / f"train_{method}.py"),
        str(REPO / "hparams" / f"{method}_focalnet_cpu.yaml"),
        "--classifier_folder", str(classifier_folder), "--output_folder", str(output),
        "--number_of_epochs", "2", "--batch_size", "8", "--device", "cpu",
    ]
    result = run_recipe(command)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "trains a fixed schedule of 2 epochs and keeps the last" in (output / "log.txt").read_text()
    epochs = epochs_logged(output / "train_log.txt")
    assert [line.split(",")[0] for line in epochs] == ["epoch: 1", "epoch: 2"]
    assert all("train loss" in line and "valid" not in line for line in epochs)
    (checkpoint,) = (output / "save").glob("CKPT+*")  # the last epoch's only
    assert "step: 0\n" in (checkpoint / "brain.ckpt").read_text()  # no step count carried over
    assert "Epoch loaded: 2 - test loss" in (output / "train_log.txt").read_text()
    cost = (load_training_cost if method == "lmac" else piq_cost)(output)
    assert cost["checkpoint_selection"] == "last_epoch" and cost["best_valid_loss"] is None
    assert cost["epochs"] == 2 and cost["seconds"] > 0
    load = load_lmac_interpreter if method == "lmac" else load_piq_interpreter
    interpreter = load(output, classifier_folder=classifier_folder)
    saved = torch.load(checkpoint / "interpreter.ckpt", weights_only=True)
    for name, value in interpreter.state_dict().items():
        assert torch.equal(value, saved[name]), name


def test_posthoc_training_without_training_clips_is_a_one_line_error(tmp_path):
    from focalnet_lobes.interpretation.posthoc import train_posthoc
    from focalnet_lobes.training.plan import TrainingPlanError

    class Trained:
        folder = tmp_path / "classifier"

        def manifest(self, split):
            return self.folder / "save" / f"{split}.json"

    with pytest.raises(TrainingPlanError) as error:
        train_posthoc(None, {}, {}, Trained(), {"train": None, "valid": None, "test": None},
                      "lmac", "lmac_training.json")
    assert str(error.value) == (
        f"The classifier in {tmp_path / 'classifier'} has no training clips in its manifests "
        f"({tmp_path / 'classifier' / 'save' / 'train.json'})"
    )


def test_cli_lmac_options_are_checked_before_loading(tmp_path, capsys):
    import soundfile

    from focalnet_lobes.inference.cli import main

    audio = tmp_path / "clip.wav"
    soundfile.write(audio, torch.zeros(1600).numpy(), 16000)
    common = ["interpret", str(audio), "--source", str(tmp_path / "no_model"), "--out", str(tmp_path)]
    assert main(common + ["--method", "lmac"]) == 1
    assert "--method lmac needs --lmac_source" in capsys.readouterr().err
    assert main(common + ["--lmac_source", str(tmp_path)]) == 1
    assert "only used with --method lmac" in capsys.readouterr().err


@pytest.mark.parametrize("recipe, hparams", [
    ("train_lmac.py", "lmac_focalnet_cpu.yaml"), ("train_piq.py", "piq_focalnet_cpu.yaml"),
])
def test_posthoc_recipe_stopped_by_its_yaml_leaves_no_empty_folder(trained_runs, tmp_path, recipe, hparams):
    """An object built after the YAML's Checkpointer (which creates <output_folder>/save at
    once) that rejects its value stops the run with one line and removes the folders the load
    created; a folder that held earlier work is left as it was."""
    yaml = tmp_path / hparams
    yaml.write_text((REPO / "hparams" / hparams).read_text() + (
        "\nlate_blocks: 1\nlate_object: !new:focalnet_lobes.models.stems.ConvStem\n"
        "    strided_blocks: !ref <late_blocks>\n"
    ))
    assert yaml.read_text().index("checkpointer:") < yaml.read_text().index("late_object:")
    output = tmp_path / "runs" / "posthoc"
    command = [
        sys.executable, str(REPO / "recipes" / recipe), str(yaml),
        "--classifier_folder", str(trained_runs("focalnet_cpu.yaml")),
        "--output_folder", str(output), "--late_blocks", "5", "--device", "cpu",
    ]
    result = run_recipe(command)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {yaml}")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists()

    output.mkdir(parents=True)
    (output / "notes.txt").write_text("earlier work")
    result = run_recipe(command)
    assert result.returncode == 1
    assert sorted(p.name for p in output.iterdir()) == ["notes.txt"]  # save/ was new: removed
    assert (output / "notes.txt").read_text() == "earlier work"

"""recipes/export.py and focalnet_lobes.inference.export: a training run -> hub-ready folder -> AudioClassifier.from_hparams."""

import json
import pathlib

import pytest
import torch
from hyperpyyaml import load_hyperpyyaml, resolve_references

from export import main
from focalnet_lobes.inference.export import (
    ExportError,
    drop_pretrained_initialisation,
    export_classifier,
    extract_definitions,
    render_inference_yaml,
    write_label_encoder,
)
from focalnet_lobes.data.audio import fix_length, load_audio
from focalnet_lobes.inference.classifiers import AudioClassifier
from focalnet_lobes.inference.trained import load_trained_classifier

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run_folder(trained_runs):
    return trained_runs("focalnet_cpu.yaml")


@pytest.fixture(scope="module")
def exported(run_folder, tmp_path_factory):
    folder = tmp_path_factory.mktemp("hub") / "focalnet-cpu-esc10"
    summary = export_classifier(run_folder, folder)
    return folder, summary


def test_export_writes_a_hub_ready_folder(exported, run_folder):
    folder, summary = exported
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md", "hyperparams.yaml", "label_encoder.txt", "model.ckpt",
    ]
    assert summary["kind"] == "focalnet" and summary["classes"] == 10
    assert summary["max_logit_difference"] <= 1e-5  # the export's own check ran
    card = (folder / "README.md").read_text()
    accuracy = json.loads((run_folder / "test_results.json").read_text())["accuracy"]
    assert f"{100 * accuracy:.2f}%" in card
    assert "AudioClassifier.from_hparams" in card and "focalnet-audio interpret" in card
    assert "license: cc-by-nc-3.0" in card and "non-commercial use only" in card  # ESC-50's license
    assert "times the input spectrogram" in card  # interpret_focalnet.yaml's map
    assert "PCEN" not in card  # log1p features: no caveat
    text = (folder / "hyperparams.yaml").read_text()
    # interpret_focalnet.yaml's map: the class-specific map times the input
    assert "InputWeightedInterpreter" in text and "ModulationContributionInterpreter" in text
    assert "data_folder" not in text
    assert "checkpointer" not in text and "epoch_counter" not in text


def test_round_trip_gives_the_brain_predictions(exported, run_folder, tmp_path):
    """export -> from_hparams -> the logits of the trained classifier on the test fold,
    and the Brain's test accuracy (test_results.json)."""
    folder, _ = exported
    classifier = AudioClassifier.from_hparams(source=str(folder), savedir=str(tmp_path / "sd"))
    trained = load_trained_classifier(run_folder)
    manifest = json.loads(trained.manifest("test").read_text())
    sample_rate = trained.hparams["sample_rate"]
    num_samples = int(sample_rate * trained.hparams["clip_seconds"])
    wavs = torch.stack([
        fix_length(load_audio(entry["wav"], sample_rate), num_samples)
        for entry in manifest.values()
    ])
    with torch.no_grad():
        reference = trained.model(trained.frontend(wavs))
    logits = classifier(wavs)
    assert (logits - reference).abs().max() <= 1e-5
    assert torch.equal(logits.argmax(-1), reference.argmax(-1))
    assert classifier.class_names == trained.class_names
    # The Brain's test accuracy exactly, and the same labels file by file.
    labels = classifier.classify_batch(wavs)[3]
    entries = list(manifest.values())
    correct = [label == entry["class_name"] for label, entry in zip(labels, entries)]
    brain = json.loads((run_folder / "test_results.json").read_text())
    assert sum(correct) / len(correct) == pytest.approx(brain["accuracy"])
    for label, entry in list(zip(labels, entries))[:3]:
        assert classifier.classify_file(entry["wav"])[3] == [label]


def test_model_card_shows_interpretation_metrics(run_folder, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(run_folder, run, symlinks=True)
    (run / "interpretation" / "focalnet").mkdir(parents=True, exist_ok=True)  # other tests may have interpreted it
    metrics = {
        "method": "focalnet", "split": "test", "num_clips": 20, "accuracy": 0.65,
        "quantiles": {"0.9": {"fid_i": 0.8125, "fa": 0.0625, "ff": 0.25, "clips": 20}},
        "overlap": {"pairs": 8, "keeps_s1_rate": 0.75},
    }
    (run / "interpretation" / "focalnet" / "metrics.json").write_text(json.dumps(metrics))
    # The copied hyperparams.yaml points to the original save folder: fine for export.
    export_classifier(run, tmp_path / "hub", verify=False)
    card = (tmp_path / "hub" / "README.md").read_text()
    assert "| 0.9 | 0.8125 | 0.0625 | 0.25 |" in card
    assert "75.0% of 8 pairs" in card


def test_vit_run_exports_with_attention_interpreter(tmp_path):
    """The ViT CPU config (random weights, no training): the exported YAML picks the
    class-token attention interpreter and loads."""
    with open(REPO / "hparams" / "vit_cpu.yaml") as fin:
        train_yaml = resolve_references(
            fin, {"data_folder": str(tmp_path), "esc10": True}
        ).getvalue()
    text = render_inference_yaml(train_yaml, "vit", quantile=0.8, pad_to_seconds=5.0)
    folder = tmp_path / "vit"
    folder.mkdir()
    (folder / "hyperparams.yaml").write_text(text)
    hparams = load_hyperpyyaml(text, {"pretrained_path": str(folder)})
    torch.save(hparams["model"].state_dict(), folder / "model.ckpt")
    write_label_encoder([f"c{i}" for i in range(10)], folder / "label_encoder.txt")
    classifier = AudioClassifier.from_hparams(source=str(folder))
    assert type(classifier.mods.interpreter).__name__ == "AttentionInterpreter"
    assert classifier.hparams.quantile == 0.8 and classifier.pad_to_samples == 80000
    result = classifier.interpret_batch(torch.randn(1, 16000))
    assert result.mask.shape == (1, 1, 87, 64) and result.listenable.shape == (1, 16000)
    assert 0.18 <= float(result.mask.mean()) <= 0.22  # over the clip, not its padding


def test_extract_definitions_follows_aliases_and_references():
    text = (
        "seed: 3\n"
        "sample_rate: 16000\n"
        "channels: &id001 [8, 16]\n"
        "width: 4\n"
        "# the front end\n"
        "compute_features: !new:focalnet_lobes.data.features.SpectrogramFrontend\n"
        "    sample_rate: !ref <sample_rate>\n"
        "\n"
        "unused: !new:torch.nn.ReLU\n"
        "model: !new:torch.nn.Sequential\n"
        "    - !new:torch.nn.Linear [!ref <width> * 2, 2]\n"
        "    - *id001\n"
        "opt: !name:torch.optim.Adam\n"
    )
    kept = extract_definitions(text, ["compute_features", "model"])
    assert [line.split(":")[0] for line in kept.splitlines() if line and line[0].isalpha()] == [
        "sample_rate", "channels", "width", "compute_features", "model",
    ]
    assert "# the front end" in kept and "unused" not in kept and "seed" not in kept
    with pytest.raises(ExportError, match="does not define"):
        extract_definitions(text, ["compute_features", "missing"])
    with pytest.raises(ExportError, match="<nothing>"):
        extract_definitions("model: !ref <nothing>\n", ["model"])


def test_log1p_scale_is_carried_into_the_inference_yaml():
    """A run trained with --log1p_scale exports a front end with the same C (it is a
    reference of compute_features, so extract_definitions keeps it)."""
    train_yaml = (REPO / "hparams" / "focalnet_cpu.yaml").read_text(encoding="utf-8")
    assert "\nlog1p_scale: 1.0\n" in train_yaml
    train_yaml = train_yaml.replace("\nlog1p_scale: 1.0\n", "\nlog1p_scale: 1000.0\n")
    kept = extract_definitions(train_yaml, ["compute_features"])
    assert "\nlog1p_scale: 1000.0\n" in kept
    assert load_hyperpyyaml(kept)["compute_features"].log1p_scale == 1000.0


def test_template_keys_cannot_be_redefined():
    train_yaml = (
        "sample_rate: 16000\nquantile: 0.5\n"
        "compute_features: !new:focalnet_lobes.data.features.SpectrogramFrontend\n"
        "model: !new:torch.nn.Linear [!ref <quantile>, 2]\n"
    )
    with pytest.raises(ExportError, match="quantile"):
        render_inference_yaml(train_yaml, "other")


def test_imagenet_initialisation_is_not_exported():
    text = (
        "backbone: !apply:focalnet_lobes.models.pretrained_init.load_pretrained_backbone\n"
        "  model: !new:torch.nn.Linear [2, 2]\n"
        "  path: /somewhere/imagenet.pth\n"
        "  source: timm\n"
        "other: {path: keep}\n"
    )
    cleaned = drop_pretrained_initialisation(text)
    assert "imagenet.pth" not in cleaned and "path: null" in cleaned
    assert "other: {path: keep}" in cleaned
    assert load_hyperpyyaml(cleaned)["backbone"].weight.shape == (2, 2)


def test_export_command_reports_errors(tmp_path, capsys):
    assert main(["--classifier_folder", str(tmp_path), "--output_folder", str(tmp_path / "o")]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "hyperparams.yaml is missing" in error


def export_and_load(output, tmp_path):
    """Export the run in ``output`` to ``tmp_path/hub`` (its logits checked) and load it with
    ``from_hparams``: ``(folder, classifier)``."""
    folder = tmp_path / "hub"
    assert export_classifier(output, folder)["max_logit_difference"] <= 1e-5
    return folder, AudioClassifier.from_hparams(source=str(folder), savedir=str(tmp_path / "sd"))


def read_test_clips(trained, count):
    """The first ``count`` test clips of a trained run, read as the recipe reads them (B, samples)."""
    manifest = json.loads(trained.manifest("test").read_text())
    num_samples = int(trained.hparams["sample_rate"] * trained.hparams["clip_seconds"])
    return torch.stack([
        fix_length(load_audio(entry["wav"], trained.hparams["sample_rate"]), num_samples)
        for entry in list(manifest.values())[:count]
    ])


def test_pcen_run_trains_exports_and_loads_with_pcen(fake_esc10, tmp_path):
    """``--compression pcen``: the run trains on PCEN features, and the exported folder
    carries the compression and its options, so from_hparams gives the trained logits."""
    from conftest import run_recipe, training_command

    output = tmp_path / "run"
    result = run_recipe(training_command("focalnet_cpu.yaml", fake_esc10, output, "--compression", "pcen",
                                         "--pcen_options", "{alpha: 0.9, smooth_coef: 0.05}", epochs=1))
    assert result.returncode == 0, result.stderr[-4000:]
    trained = load_trained_classifier(output)
    assert trained.frontend.compression == "pcen"
    assert torch.allclose(dict(trained.frontend.named_parameters())["pcen.alpha"], torch.tensor(0.9))
    folder, classifier = export_and_load(output, tmp_path)
    text = (folder / "hyperparams.yaml").read_text()
    assert "compression: pcen" in text and "smooth_coef: 0.05" in text
    assert "Its features are PCEN" in (folder / "README.md").read_text()
    assert classifier.mods.compute_features.compression == "pcen"
    wavs = read_test_clips(trained, 4)
    frontend = trained.frontend
    with torch.no_grad():
        reference = trained.model(frontend(wavs))
        on_log1p = trained.model(torch.log1p(frontend.project(frontend.spectrum(wavs).abs())).unsqueeze(1))
    assert (classifier(wavs) - reference).abs().max() <= 1e-5
    assert (on_log1p - reference).abs().max() > 1e-2  # the model's input was PCEN's, not log1p's


def test_linear_freq_scale_run_trains_exports_and_loads_with_its_bands(fake_esc10, tmp_path):
    """``--freq_scale linear``: the run's checkpoint holds the linear filterbank, the export
    names it and carries the key, and from_hparams gives the trained logits (a mel front
    end would not: the model's input bands are the linear ones)."""
    from conftest import run_recipe, training_command

    from focalnet_lobes.data.features import SpectrogramFrontend

    output = tmp_path / "run"
    result = run_recipe(training_command("focalnet_cpu.yaml", fake_esc10, output, "--freq_scale", "linear",
                                         epochs=1))
    assert result.returncode == 0, result.stderr[-4000:]
    trained = load_trained_classifier(output)
    assert trained.frontend.freq_scale == "linear"
    folder, classifier = export_and_load(output, tmp_path)
    assert "freq_scale: linear" in (folder / "hyperparams.yaml").read_text()
    assert "frequency bands are equally spaced in Hz" in (folder / "README.md").read_text()
    assert classifier.mods.compute_features.freq_scale == "linear"
    wavs = read_test_clips(trained, 2)
    mel = SpectrogramFrontend(n_mels=64)
    with torch.no_grad():
        reference = trained.model(trained.frontend(wavs))
        on_mel = trained.model(mel(wavs))
    assert (classifier(wavs) - reference).abs().max() <= 1e-5
    assert (on_mel - reference).abs().max() > 1e-2

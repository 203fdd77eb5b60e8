"""PIQ, the post-hoc baseline: modules on the trained CPU FocalNet and ViT, and the recipe.

Modules: mask shapes on 431 x 64 and 87 x 64 features, mask in [0, 1], gradients
reach PIQ (through the straight-through quantiser) and never the frozen
classifier, the codebook's class partitioning. Recipe: train 2 epochs on the
shared FocalNet run, rerun without retraining, piq_training.json, and PIQ
evaluated by recipes/interpret.py (binary and soft masks).
"""

import json
import math
import sys
from pathlib import Path

import pytest
import torch

from conftest import REPO, run_recipe
from focalnet_lobes.interpretation.piq import (
    GridMaskDecoder,
    PIQInterpreter,
    PIQLoss,
    PIQNetwork,
    classifier_representation,
    representation_channels,
)

QUANTILE_KEYS = ("fid_i", "fa", "ff", "ai", "ad", "ag", "sparsity", "complexity")


@pytest.fixture(scope="module")
def classifiers(trained_runs):
    """The trained FocalNet and ViT classifiers of the shared 2-epoch runs."""
    from focalnet_lobes.inference.trained import load_trained_classifier

    return {
        name: load_trained_classifier(trained_runs(f"{name}_cpu.yaml"))
        for name in ("focalnet", "vit")
    }


def make_interpreter(trained, codebook_size=40):
    network = PIQNetwork(
        representation_channels(trained.model),
        len(trained.class_names),
        codebook_size=codebook_size,
        decoder_channels=(16, 8),
    )
    return PIQInterpreter(network)


def log1p_features(batch, frames, bins=64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.log1p(5 * torch.rand(batch, 1, frames, bins, generator=generator))


@pytest.mark.parametrize("backbone, stride", [("focalnet", 16), ("vit", 16)])
@pytest.mark.parametrize("frames", [431, 87])
def test_masks_on_the_input_grid(classifiers, backbone, stride, frames):
    trained = classifiers[backbone]
    features = log1p_features(2, frames)
    with torch.no_grad():
        logits, representation, grid_stride = classifier_representation(trained.model, features)
        expected_logits = trained.model(features)
    assert grid_stride == (stride, stride)
    assert representation.shape == (
        2,
        representation_channels(trained.model),
        math.ceil(frames / stride),
        math.ceil(64 / stride),
    )
    torch.testing.assert_close(logits, expected_logits)

    interpreter = make_interpreter(trained).eval()
    with torch.no_grad():
        interpreter_logits, maps = interpreter(trained.model, features)
    assert maps.shape == (2, 1, frames, 64)
    assert 0.0 <= float(maps.min()) and float(maps.max()) <= 1.0
    assert float(maps.std()) > 0  # a map, not a constant
    torch.testing.assert_close(interpreter_logits, expected_logits)


@pytest.mark.parametrize("backbone", ["focalnet", "vit"])
def test_gradients_reach_piq_and_not_the_frozen_classifier(classifiers, backbone):
    trained = classifiers[backbone]
    interpreter = make_interpreter(trained).train()
    before = {k: v.clone() for k, v in trained.model.state_dict().items()}
    features = log1p_features(2, 87)
    output = interpreter.piq_forward(trained.model, features)
    terms = PIQLoss()(output.mask_logits, features, output.encoded, output.quantized)

    # The reconstruction term alone reaches the adapter through the
    # straight-through quantiser, and the decoder.
    terms["reconstruction"].backward(retain_graph=True)
    network = interpreter.network
    assert float(network.adapter.block[0].weight.grad.abs().sum()) > 0
    for parameter in network.decoder.parameters():
        assert parameter.grad is not None and float(parameter.grad.abs().sum()) > 0
    assert network.codebook.embedding.weight.grad is None  # only the VQ term trains the keys
    terms["codebook"].backward()
    codebook_grad = network.codebook.embedding.weight.grad
    used_keys = codebook_grad.abs().sum(dim=1) > 0
    assert 1 <= int(used_keys.sum()) <= 2 * output.encoded.shape[-2] * output.encoded.shape[-1]

    assert all(p.grad is None for p in trained.model.parameters())
    for key, value in trained.model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_class_partitioning(classifiers):
    """Keys are split into contiguous per-class blocks; a clip uses its predicted class's block."""
    trained = classifiers["focalnet"]
    num_classes = len(trained.class_names)
    channels = representation_channels(trained.model)
    network = PIQNetwork(channels, num_classes, codebook_size=30).eval()
    keys = network.class_keys(torch.arange(num_classes))
    assert keys.sum(dim=1).tolist() == [3] * num_classes  # 30 keys / 10 classes
    assert keys.sum(dim=0).tolist() == [1] * 30  # disjoint and covering
    assert keys.nonzero()[:, 1].view(num_classes, 3).tolist() == [
        [3 * c, 3 * c + 1, 3 * c + 2] for c in range(num_classes)
    ]

    features = log1p_features(4, 87)
    with torch.no_grad():
        logits, representation, stride = classifier_representation(trained.model, features)
        labels = torch.tensor([0, 3, 3, 9])
        _, encoded, quantized = network(representation, labels, (87, 64), stride)
        indices = network.codebook_indices(encoded, labels)
    for clip, label in enumerate(labels.tolist()):
        assert set(indices[clip].unique().tolist()) <= {3 * label, 3 * label + 1, 3 * label + 2}
        rows = network.codebook.embedding.weight[indices[clip].flatten()]
        torch.testing.assert_close(quantized[clip].flatten(1).T, rows)
    # Same vectors, different predicted classes: disjoint keys.
    same = encoded[1:2].expand(2, -1, -1, -1)
    pair = network.codebook_indices(same, torch.tensor([1, 2]))
    assert not set(pair[0].unique().tolist()) & set(pair[1].unique().tolist())

    # Without partitioning every clip takes its nearest key among all of them.
    free = PIQNetwork(network.in_channels, num_classes, codebook_size=30, class_partitioning=False)
    free.load_state_dict(network.state_dict())
    free_indices = free.eval().codebook_indices(encoded, labels)
    weight = network.codebook.embedding.weight
    vectors = encoded.permute(0, 2, 3, 1).reshape(-1, weight.shape[1])
    nearest = torch.cdist(vectors, weight).argmin(dim=1)
    assert free_indices.flatten().tolist() == nearest.tolist()

    # Shared keys, as SpeechBrain implements them: unused in training, open to all in eval.
    shared = PIQNetwork(8, 3, codebook_size=12, shared_keys=2, decoder_channels=(4,))
    assert shared.train().class_keys(torch.tensor([0]))[0, -2:].tolist() == [False, False]
    assert shared.eval().class_keys(torch.tensor([0]))[0, -2:].tolist() == [True, True]


def test_decoder_any_grid_and_clear_errors(classifiers):
    decoder = GridMaskDecoder(8, channels=(4, 4))
    assert decoder(torch.randn(1, 8, 27, 33), (431, 513), stride=16).shape == (1, 1, 431, 513)
    assert decoder(torch.randn(1, 8, 6, 4), (87, 64)).shape == (1, 1, 87, 64)
    with pytest.raises(ValueError, match="does not cover"):
        decoder(torch.randn(1, 8, 6, 4), (87, 64), stride=8)
    with pytest.raises(ValueError, match="at least one key per class"):
        PIQNetwork(8, 10, codebook_size=5)
    with pytest.raises(ValueError, match="at least 2 x 2"):
        PIQNetwork(8, 2, codebook_size=4, reduce_grid=True)(
            torch.randn(1, 8, 1, 4), torch.tensor([0]), (16, 64)
        )
    trained = classifiers["vit"]
    channels = representation_channels(trained.model)
    wrong_classes = PIQInterpreter(PIQNetwork(channels, 3, codebook_size=6))
    with pytest.raises(ValueError, match="trained for 3 classes"):
        wrong_classes(trained.model, log1p_features(1, 87))
    wrong_channels = PIQInterpreter(PIQNetwork(16, len(trained.class_names), codebook_size=20))
    with pytest.raises(ValueError, match="16-channel"):
        wrong_channels(trained.model, log1p_features(1, 87))
    with pytest.raises(ValueError, match="FocalNet or ViT"):
        not_a_backbone = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(87 * 64, 10))
        wrong_channels(not_a_backbone, log1p_features(1, 87))


def epochs_logged(train_log):
    lines = Path(train_log).read_text().splitlines()
    return [line for line in lines if line.startswith("epoch: ")]


def test_recipe_trains_resumes_and_is_evaluated_by_interpret(trained_runs, tmp_path):
    from focalnet_lobes.interpretation.piq import PIQFolderError, load_piq_interpreter, load_training_cost

    classifier_folder = trained_runs("focalnet_cpu.yaml")
    output = tmp_path / "piq"
    command = [
        sys.executable, str(REPO / "recipes" / "train_piq.py"),
        str(REPO / "hparams" / "piq_focalnet_cpu.yaml"),
        "--classifier_folder", str(classifier_folder),
        "--output_folder", str(output),
        "--number_of_epochs", "2", "--batch_size", "8", "--device", "cpu",
    ]
    result = run_recipe(command)
    assert result.returncode == 0, result.stderr[-3000:]
    epochs = epochs_logged(output / "train_log.txt")
    assert [line.split(",")[0] for line in epochs] == ["epoch: 1", "epoch: 2"]
    train_losses = [float(line.split("train loss: ")[1].split(",")[0]) for line in epochs]
    assert train_losses[1] < train_losses[0]
    assert "valid fidelity" in epochs[0]
    assert "Epoch loaded: 2 - test loss" in (output / "train_log.txt").read_text()
    cost = json.loads((output / "piq_training.json").read_text())
    assert cost["method"] == "piq" and cost["epochs"] == 2
    assert 0 < cost["seconds"] < 300
    assert cost["seconds_per_epoch"] == pytest.approx(cost["seconds"] / 2)
    interpreter = load_piq_interpreter(output)
    assert isinstance(interpreter, PIQInterpreter) and not interpreter.training
    assert cost["params"] == sum(p.numel() for p in interpreter.parameters())
    assert (interpreter.network.num_classes, interpreter.network.codebook_size) == (10, 256)
    checkpoints = sorted(p.name for p in (output / "save").glob("CKPT+*"))

    # Rerunning the finished run recovers and does not train again.
    result = run_recipe(command)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(epochs_logged(output / "train_log.txt")) == 2
    assert sorted(p.name for p in (output / "save").glob("CKPT+*")) == checkpoints
    assert load_training_cost(output) == cost

    with pytest.raises(PIQFolderError, match="hyperparams.yaml is missing"):
        load_piq_interpreter(tmp_path)

    # PIQ through the common evaluator: binary masks from the command line, then
    # soft masks through the same function in-process (saves a start-up).
    from interpret import run_interpretation

    options = {
        "max_clips": 8, "num_examples": 1, "overlap_pairs": 2, "latency_clips": 2,
        "latency_repeats": 1,
    }
    arguments = [item for key, value in options.items() for item in (f"--{key}", str(value))]
    result = run_recipe([
        sys.executable, str(REPO / "recipes" / "interpret.py"),
        str(REPO / "hparams" / "interpret_piq.yaml"),
        "--classifier_folder", str(classifier_folder), "--piq_folder", str(output),
        "--output_folder", str(tmp_path / "binary"), "--device", "cpu", *arguments,
    ])
    assert result.returncode == 0, result.stderr[-3000:]
    binary = json.loads((tmp_path / "binary" / "metrics.json").read_text())
    soft = run_interpretation(
        REPO / "hparams" / "interpret_piq.yaml",
        dict(options, classifier_folder=str(classifier_folder), piq_folder=str(output),
             output_folder=str(tmp_path / "soft"), soft_mask=True),
    )
    assert json.loads((tmp_path / "soft" / "metrics.json").read_text())["soft"] is True
    for metrics, is_soft in ((binary, False), (soft, True)):
        assert metrics["method"] == "piq" and metrics["interpreter"] == "PIQInterpreter"
        assert metrics["soft"] is is_soft and metrics["num_clips"] == 8
        assert sorted(map(float, metrics["quantiles"])) == [0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
        for values in metrics["quantiles"].values():
            assert all(math.isfinite(values[key]) for key in QUANTILE_KEYS)
            assert 0.0 <= values["fid_i"] <= 1.0
        assert metrics["latency_ms_per_clip"]["clips"] == 2
    # Same maps: the soft mask is the binary mask times the normalised map in [0, 1].
    for q, values in binary["quantiles"].items():
        assert soft["quantiles"][q]["mask_area"] <= values["mask_area"] + 1e-6

    # ... and the comparison table gains PIQ rows (one per quantile, binary and soft).
    from focalnet_lobes.interpretation.comparison import load_result, write_comparison

    write_comparison(
        [load_result(tmp_path / kind / "metrics.json") for kind in ("binary", "soft")],
        tmp_path / "comparison",
    )
    table = json.loads((tmp_path / "comparison" / "comparison.json").read_text())
    assert [row["method"] for row in table["rows"]] == ["piq"] * 12
    assert (tmp_path / "comparison" / "comparison.md").read_text().count("| piq") >= 12


def test_recipe_without_test_clips_skips_the_test_stage(trained_runs, tmp_path):
    """A classifier prepared without test clips (ESC-50-dev has no fold 5): PIQ still trains."""
    import shutil

    classifier = tmp_path / "classifier"
    shutil.copytree(trained_runs("focalnet_cpu.yaml"), classifier)
    (classifier / "save" / "test.json").write_text("{}")
    output = tmp_path / "piq"
    result = run_recipe([
        sys.executable, str(REPO / "recipes" / "train_piq.py"),
        str(REPO / "hparams" / "piq_focalnet_cpu.yaml"),
        "--classifier_folder", str(classifier), "--output_folder", str(output),
        "--number_of_epochs", "1", "--batch_size", "8", "--device", "cpu",
    ])
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "test manifest is empty" in (output / "log.txt").read_text()
    assert json.loads((output / "piq_training.json").read_text())["epochs"] == 1

"""Starting from ImageNet weights: focalnet_lobes.models.pretrained_init (no download: the
reference models are built with random weights and saved to disk)."""

from pathlib import Path

import pytest
import torch
from hyperpyyaml import load_hyperpyyaml

from focalnet_lobes.models.focalnet import FocalNet
from focalnet_lobes.models.pretrained_init import load_pretrained_backbone
from focalnet_lobes.models.vit import VisionTransformer, resample_position_embedding

FOCALNET = dict(embed_dim=16, depths=(1, 2), focal_levels=(2, 2), focal_windows=(3, 3))


@pytest.fixture(scope="module")
def transformers_focalnet(tmp_path_factory):
    """A FocalNetForImageClassification (5 classes) and its saved state dict."""
    from transformers import FocalNetConfig, FocalNetForImageClassification

    torch.manual_seed(0)
    config = FocalNetConfig(embed_dim=16, depths=[1, 2], focal_levels=[2, 2],
                            focal_windows=[3, 3], hidden_sizes=[32, 32], num_labels=5)
    model = FocalNetForImageClassification(config).eval()
    path = tmp_path_factory.mktemp("focalnet") / "pytorch_model.bin"
    torch.save(model.state_dict(), path)
    return model, path


def test_transformers_focalnet_into_a_one_channel_backbone(transformers_focalnet):
    """Summing the RGB filters: our 1-channel model on x equals the reference on x
    repeated over 3 channels."""
    reference, path = transformers_focalnet
    model = FocalNet(in_chans=1, num_classes=0, **FOCALNET).eval()
    assert load_pretrained_backbone(model, path, "transformers") is model
    x = torch.randn(2, 1, 40, 36)
    with torch.no_grad():
        expected = reference.focalnet(x.expand(-1, 3, -1, -1)).pooler_output
        assert (model(x) - expected).abs().max() <= 1e-5


def test_three_channel_model_keeps_the_classifier(transformers_focalnet):
    reference, path = transformers_focalnet
    model = FocalNet(in_chans=3, num_classes=5, **FOCALNET).eval()
    load_pretrained_backbone(model, path, "transformers")
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert (model(x) - reference(x).logits).abs().max() <= 1e-5


def test_timm_vit_with_a_new_position_grid(tmp_path):
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(0)
    reference = timm.models.vision_transformer.VisionTransformer(
        img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=10
    ).eval()
    path = tmp_path / "model.safetensors"
    save_file(reference.state_dict(), str(path))
    same_grid = VisionTransformer(in_chans=1, num_classes=0, patch_size=8, embed_dim=32, depth=2,
                                  num_heads=2, pos_embed_grid=4).eval()
    load_pretrained_backbone(same_grid, path, "timm")
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        expected = reference.forward_head(
            reference.forward_features(x.expand(-1, 3, -1, -1)), pre_logits=True
        )
        assert (same_grid(x) - expected).abs().max() <= 1e-5
    audio_grid = VisionTransformer(in_chans=1, num_classes=0, patch_size=8, embed_dim=32,
                                   depth=2, num_heads=2, pos_embed_grid=(6, 3))
    load_pretrained_backbone(audio_grid, path, "timm")
    expected_positions = resample_position_embedding(reference.pos_embed, (6, 3), (4, 4))
    assert torch.allclose(audio_grid.pos_embed, expected_positions)


def test_wrapped_checkpoint_and_yaml_usage(transformers_focalnet, tmp_path):
    """A {"model": ...} file (microsoft/FocalNet style wrapper), loaded from a YAML."""
    _, path = transformers_focalnet
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"model": torch.load(path, weights_only=True), "epoch": 300}, wrapped)
    hparams = load_hyperpyyaml(f"""
pretrained_backbone: {wrapped}
backbone: !apply:focalnet_lobes.models.pretrained_init.load_pretrained_backbone
    model: !new:focalnet_lobes.models.focalnet.FocalNet
        in_chans: 1
        num_classes: 0
        embed_dim: 16
        depths: [1, 2]
    path: !ref <pretrained_backbone>
    source: transformers
""")
    direct = load_pretrained_backbone(FocalNet(in_chans=1, num_classes=0, **FOCALNET), path,
                                      "transformers")
    for key, value in direct.state_dict().items():
        assert torch.equal(hparams["backbone"].state_dict()[key], value), key


def test_no_path_means_training_from_scratch():
    model = FocalNet(in_chans=1, num_classes=0, **FOCALNET)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert load_pretrained_backbone(model, None, "timm") is model
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_mismatches_are_reported(transformers_focalnet, tmp_path):
    _, path = transformers_focalnet
    cnn_stem = FocalNet(in_chans=1, num_classes=0, stem="cnn", **FOCALNET)
    with pytest.raises(
        ValueError,
        match=r"does not fit FocalNet: settings differ: stem: checkpoint has patch, model has cnn.*"
        r"missing \['patch_embed.proj",
    ):
        load_pretrained_backbone(cnn_stem, path, "transformers")
    wider = FocalNet(in_chans=1, num_classes=0, embed_dim=24, depths=(1, 2))
    with pytest.raises(ValueError, match="shape mismatch"):
        load_pretrained_backbone(wider, path, "transformers")
    with pytest.raises(ValueError, match="not a 'timm' checkpoint"):
        load_pretrained_backbone(FocalNet(in_chans=1, num_classes=0, **FOCALNET), path, "timm")
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_pretrained_backbone(cnn_stem, tmp_path / "missing.pth", "timm")
    with pytest.raises(ValueError, match="Unknown source"):
        load_pretrained_backbone(cnn_stem, path, "imagenet")


def test_paper_yaml_starts_from_imagenet_weights(tmp_path):
    """hparams/focalnet.yaml's pretrained_init (as train.py runs it) loads a timm checkpoint."""
    import timm
    from hyperpyyaml import load_hyperpyyaml

    from focalnet_lobes import convert_state_dict

    reference = timm.create_model("focalnet_tiny_srf", pretrained=False)
    path = tmp_path / "focalnet_tiny_srf.pth"
    torch.save(reference.state_dict(), path)
    repo = Path(__file__).resolve().parents[1]
    with open(repo / "hparams" / "focalnet.yaml", encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, {
            "data_folder": str(tmp_path), "backbone_name": "focalnet_tiny_srf",
            "pretrained_backbone": str(path), "pretrained_source": "timm",
        })
    from focalnet_lobes.models.pretrained_init import initialise_new_run

    assert initialise_new_run(hparams["pretrained_init"], hparams["backbone"], hparams["checkpointer"])
    expected = convert_state_dict(reference.state_dict(), "timm")
    loaded = hparams["model"].backbone.state_dict()
    deep_keys = [k for k in loaded if "modulation" in k and k in expected]
    assert len(deep_keys) > 20
    for key in deep_keys:
        assert torch.equal(loaded[key], expected[key]), key
    # The RGB patch embedding is summed into the single input channel.
    stem = [k for k in loaded if loaded[k].dim() == 4 and loaded[k].shape[1] == 1][0]
    assert torch.allclose(loaded[stem], expected[stem].sum(1, keepdim=True))


def test_pretrained_init_runs_when_a_run_starts_not_when_the_yaml_is_read(
    transformers_focalnet, tmp_path
):
    """The YAML names the loader (!name:); train.py applies it to a new run only, so a
    trained run's hyperparams.yaml reloads after the ImageNet file is gone."""
    from speechbrain.utils.checkpoints import Checkpointer

    from focalnet_lobes.models.pretrained_init import initialise_new_run

    _, path = transformers_focalnet
    imagenet = tmp_path / "imagenet.bin"
    imagenet.write_bytes(path.read_bytes())
    text = f"""
pretrained_backbone: {imagenet}
backbone: !new:focalnet_lobes.models.focalnet.FocalNet
    in_chans: 1
    num_classes: 0
    embed_dim: 16
    depths: [1, 2]
    focal_levels: [2, 2]
    focal_windows: [3, 3]
pretrained_init: !name:focalnet_lobes.models.pretrained_init.load_pretrained_backbone
    path: !ref <pretrained_backbone>
    source: transformers
"""
    direct = load_pretrained_backbone(FocalNet(in_chans=1, num_classes=0, **FOCALNET), path,
                                      "transformers")
    hparams = load_hyperpyyaml(text)
    key = next(iter(direct.state_dict()))
    assert not torch.equal(hparams["backbone"].state_dict()[key], direct.state_dict()[key])
    checkpointer = Checkpointer(tmp_path / "save", {"backbone": hparams["backbone"]})
    assert initialise_new_run(hparams["pretrained_init"], hparams["backbone"], checkpointer)
    for name, value in direct.state_dict().items():
        assert torch.equal(hparams["backbone"].state_dict()[name], value), name
    checkpointer.save_checkpoint()

    imagenet.unlink()  # the trained run no longer needs it
    reloaded = load_hyperpyyaml(text)
    checkpointer = Checkpointer(tmp_path / "save", {"backbone": reloaded["backbone"]})
    assert not initialise_new_run(reloaded["pretrained_init"], reloaded["backbone"], checkpointer)
    checkpointer.recover_if_possible()
    assert torch.equal(reloaded["backbone"].state_dict()[key], direct.state_dict()[key])
    # a new run with the file gone: the loader's one-line error
    fresh = load_hyperpyyaml(text)
    with pytest.raises((ValueError, FileNotFoundError)):
        initialise_new_run(fresh["pretrained_init"], fresh["backbone"], None)


@pytest.mark.parametrize("config", ["focalnet", "vit"])
def test_full_size_yamls_read_without_their_imagenet_file(config, tmp_path):
    with open(Path(__file__).resolve().parents[1] / "hparams" / f"{config}.yaml") as fin:
        hparams = load_hyperpyyaml(fin, {
            "data_folder": str(tmp_path), "pretrained_backbone": str(tmp_path / "missing.bin"),
        })
    assert callable(hparams["pretrained_init"])
    assert "load_pretrained_backbone" not in str(type(hparams["backbone"]))

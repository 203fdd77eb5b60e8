"""Tests of the ViT lobe: sizes, parity with timm and transformers, attentions, pooling, stem."""

import pytest
import torch
import torch.nn.functional as F

import focalnet_lobes.models.vit  # noqa: F401  (registers the vit_* configs)
from focalnet_lobes.models.convert import convert_state_dict, convert_vit
from focalnet_lobes.models.registry import create_model
from focalnet_lobes.models.vit import VisionTransformer

SMALL = dict(patch_size=16, embed_dim=64, depth=2, num_heads=4)


def _perturb(module, seed=0):
    """Add noise to every parameter so that no zero bias or unit LayerNorm hides a bug."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator))
    return module


def _max_diff(a, b):
    return (a - b).abs().max().item()


# --- sizes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, expected_millions, timm_count",
    [
        ("vit_tiny_patch16", 5.7, 5_717_416),
        ("vit_small_patch16", 22.1, 22_050_664),
        ("vit_base_patch16", 86.6, 86_567_656),
    ],
)
def test_parameter_counts(name, expected_millions, timm_count):
    with torch.device("meta"):
        model = create_model(name, num_classes=1000, in_chans=3)
    count = sum(p.numel() for p in model.parameters())
    assert count == timm_count  # timm's vit_*_patch16_224, 1000 classes
    assert abs(count / 1e6 - expected_millions) / expected_millions < 0.01


def test_audio_config():
    model = create_model("vit_audio_small", num_classes=50, in_chans=1)
    assert model.stem is not None and model.total_stride == 8
    assert (model.embed_dim, len(model.blocks), model.num_heads) == (192, 6, 3)
    assert model.grid_size(431, 513) == model.pos_embed_grid == (54, 65)
    assert model.global_pool == "avg"


# --- timm parity ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def timm_pair():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    reference = timm.models.vision_transformer.VisionTransformer(
        img_size=224, num_classes=10, dynamic_img_size=True, dynamic_img_pad=True, **SMALL
    )
    reference = _perturb(reference).eval()
    ours = VisionTransformer(num_classes=10, pos_embed_grid=(14, 14), **SMALL).eval()
    ours.load_state_dict(convert_state_dict(reference.state_dict(), "timm"), strict=True)
    return reference, ours


def _timm_attentions(reference, x):
    """Run timm with explicit attention and capture the probabilities at attn_drop."""
    captured, handles = [], []
    for block in reference.blocks:
        block.attn.fused_attn = False
        handles.append(
            block.attn.attn_drop.register_forward_hook(lambda m, inp, out: captured.append(inp[0]))
        )
    try:
        logits = reference(x)
    finally:
        for handle in handles:
            handle.remove()
        for block in reference.blocks:
            block.attn.fused_attn = True
    return logits, captured


@pytest.mark.parametrize("size", [(224, 224), (100, 150), (431 // 2, 96)])
def test_timm_parity(timm_pair, size):
    reference, ours = timm_pair
    x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected_logits, expected_attentions = _timm_attentions(reference, x)
        fused_logits = reference(x)
        tokens, attentions = ours.forward_features(x, return_attentions=True)
        logits = ours(x)
    assert expected_logits.abs().max() > 0.1  # not a degenerate comparison
    assert _max_diff(logits, expected_logits) <= 1e-4
    assert _max_diff(logits, fused_logits) <= 1e-4
    assert _max_diff(ours.forward_head(tokens), expected_logits) <= 1e-4
    assert tokens.shape[1] == 1 + ours.grid_size(*size)[0] * ours.grid_size(*size)[1]
    assert len(attentions) == len(expected_attentions) == SMALL["depth"]
    for ours_layer, reference_layer in zip(attentions, expected_attentions):
        assert ours_layer.shape == reference_layer.shape
        assert _max_diff(ours_layer, reference_layer) <= 1e-5


def test_timm_unsupported_keys_raise(timm_pair):
    reference, _ = timm_pair
    state_dict = dict(reference.state_dict())
    state_dict["fc_norm.weight"] = torch.ones(SMALL["embed_dim"])
    with pytest.raises(ValueError, match="fc_norm"):
        convert_state_dict(state_dict, "timm")


# --- transformers parity -------------------------------------------------------------


def _hf_config(**overrides):
    transformers = pytest.importorskip("transformers")
    config = dict(
        hidden_size=SMALL["embed_dim"],
        num_hidden_layers=SMALL["depth"],
        num_attention_heads=SMALL["num_heads"],
        intermediate_size=4 * SMALL["embed_dim"],
        image_size=224,
        patch_size=16,
        num_channels=3,
        layer_norm_eps=1e-12,
        qkv_bias=True,
        attn_implementation="eager",
    )
    config.update(overrides)
    return transformers.ViTConfig(**config)


def _to_hub_layout(state_dict):
    """transformers>=5 module names -> the names stored in hub checkpoints."""
    renames = [
        ("layers.", "encoder.layer."),
        ("attention.q_proj", "attention.attention.query"),
        ("attention.k_proj", "attention.attention.key"),
        ("attention.v_proj", "attention.attention.value"),
        ("attention.o_proj", "attention.output.dense"),
        ("mlp.fc1", "intermediate.dense"),
        ("mlp.fc2", "output.dense"),
    ]
    converted = {}
    for key, tensor in state_dict.items():
        for old, new in renames:
            key = key.replace(old, new)
        converted[key] = tensor
    return converted


@pytest.fixture(scope="module")
def hf_model():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    return _perturb(transformers.ViTModel(_hf_config()), seed=2).eval()


@pytest.mark.parametrize("layout", ["module", "hub"])
def test_transformers_vitmodel_parity(hf_model, layout):
    state_dict = hf_model.state_dict()
    assert any(key.startswith("pooler.") for key in state_dict)
    if layout == "hub":
        state_dict = _to_hub_layout(state_dict)
        assert "encoder.layer.0.attention.attention.query.weight" in state_dict
    ours = VisionTransformer(num_classes=0, layer_norm_eps=1e-12, **SMALL).eval()
    ours.load_state_dict(convert_state_dict(state_dict, "transformers"), strict=True)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = hf_model(x, output_attentions=True)
        tokens, attentions = ours.forward_features(x, return_attentions=True)
        pooled = ours(x)
    assert _max_diff(tokens, expected.last_hidden_state) <= 1e-4
    assert _max_diff(pooled, expected.last_hidden_state[:, 0]) <= 1e-4
    assert len(attentions) == len(expected.attentions) == SMALL["depth"]
    for ours_layer, reference_layer in zip(attentions, expected.attentions):
        assert ours_layer.shape == reference_layer.shape == (2, 4, 197, 197)
        assert _max_diff(ours_layer, reference_layer) <= 1e-5


def test_transformers_interpolated_position_embeddings(hf_model):
    """Non-square input: HF's interpolate_pos_encoding is bicubic without antialias."""
    ours = VisionTransformer(
        num_classes=0, layer_norm_eps=1e-12, pos_embed_antialias=False, **SMALL
    ).eval()
    ours.load_state_dict(convert_vit(hf_model.state_dict(), "transformers"), strict=True)
    x = torch.randn(2, 3, 96, 160, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        expected = hf_model(x, interpolate_pos_encoding=True).last_hidden_state
        tokens = ours.forward_features(x)
    assert tokens.shape == expected.shape == (2, 1 + 6 * 10, SMALL["embed_dim"])
    assert _max_diff(tokens, expected) <= 1e-4


def test_transformers_classification_parity():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    reference = transformers.ViTForImageClassification(_hf_config(num_labels=7))
    reference = _perturb(reference, seed=5).eval()
    state_dict = reference.state_dict()
    assert any(key.startswith("vit.") for key in state_dict)
    ours = VisionTransformer(num_classes=7, layer_norm_eps=1e-12, **SMALL).eval()
    ours.load_state_dict(convert_state_dict(state_dict, "transformers"), strict=True)
    for converted in (state_dict, _to_hub_layout(state_dict)):
        ours.load_state_dict(convert_vit(converted, "transformers"), strict=True)
        x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(6))
        with torch.no_grad():
            expected = reference(x).logits
            logits = ours(x)
        assert expected.abs().max() > 0.1
        assert _max_diff(logits, expected) <= 1e-4


def test_convert_vit_errors(hf_model):
    with pytest.raises(ValueError, match="microsoft"):
        convert_vit(hf_model.state_dict(), "microsoft")
    with pytest.raises(ValueError, match="Unknown"):
        convert_vit(hf_model.state_dict(), "keras")
    broken = dict(hf_model.state_dict())
    broken["decoder.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match="decoder.weight"):
        convert_vit(broken, "transformers")
    incomplete = {k: v for k, v in hf_model.state_dict().items() if "k_proj" not in k}
    with pytest.raises(ValueError, match="query, key and value"):
        convert_vit(incomplete, "transformers")


# --- attentions, pooling, inputs -----------------------------------------------------


def _spectrogram_model(**overrides):
    config = dict(in_chans=1, num_classes=5, patch_size=16, embed_dim=32, depth=2, num_heads=4)
    config.update(overrides)
    torch.manual_seed(0)
    return VisionTransformer(**config)


def test_attentions_on_a_spectrogram():
    model = _spectrogram_model().eval()
    x = torch.randn(2, 1, 431, 513, requires_grad=True)
    tokens, attentions = model.forward_features(x, return_attentions=True)
    height, width = model.grid_size(431, 513)
    assert (height, width) == (27, 33)
    num_tokens = 1 + height * width
    assert tokens.shape == (2, num_tokens, 32)
    assert len(attentions) == 2
    for layer in attentions:
        assert layer.shape == (2, 4, num_tokens, num_tokens)
        assert torch.allclose(layer.sum(-1), torch.ones(2, 4, num_tokens), atol=1e-5)
        assert layer.min() >= 0 and layer.requires_grad
    # gradients flow from the class token's attention map to the input
    attentions[-1][:, :, 0, 1:].square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_explicit_and_fused_attention_agree():
    model = _spectrogram_model().eval()
    x = torch.randn(2, 1, 64, 80)
    with torch.no_grad():
        fused = model.forward_features(x)
        explicit, _ = model.forward_features(x, return_attentions=True)
    assert _max_diff(fused, explicit) <= 1e-5


def test_unfused_attention_is_the_same_function_with_the_same_gradients():
    """fused_attention=False (vit_cpu.yaml) trains the same function through the explicit softmax."""
    torch.manual_seed(0)
    fused = create_model("vit_audio_small", num_classes=3, in_chans=1, drop_path_rate=0.0)
    explicit = create_model(
        "vit_audio_small", num_classes=3, in_chans=1, drop_path_rate=0.0, fused_attention=False
    )
    explicit.load_state_dict(fused.state_dict())
    assert all(not block.attn.fused_attention for block in explicit.blocks)
    assert all(block.attn.fused_attention for block in fused.blocks)
    x = torch.randn(2, 1, 64, 32)
    fused.train(), explicit.train()
    out_fused, out_explicit = fused(x), explicit(x)
    assert _max_diff(out_fused, out_explicit) <= 1e-5
    out_fused.square().sum().backward()
    out_explicit.square().sum().backward()
    for (name, a), b in zip(fused.named_parameters(), explicit.parameters()):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-5, rtol=1e-4, msg=name)
    # returned attentions do not depend on the switch
    with torch.no_grad():
        _, attn_fused = fused.eval().forward_features(x, return_attentions=True)
        _, attn_explicit = explicit.eval().forward_features(x, return_attentions=True)
    assert _max_diff(attn_fused[-1], attn_explicit[-1]) <= 1e-6


def test_strided_stem_keeps_the_token_grid():
    model = create_model("vit_audio_small", num_classes=5, in_chans=1, stem_strided_blocks=1)
    vgg = create_model("vit_audio_small", num_classes=5, in_chans=1)
    assert type(model.stem.blocks[0]).__name__ == "StridedConvBlock"
    assert type(model.stem.blocks[1]).__name__ == "ConvBlock"
    assert model.grid_size(501, 64) == vgg.grid_size(501, 64) == (63, 8)
    with torch.no_grad():
        tokens = model.eval().forward_features(torch.randn(1, 1, 501, 64))
    assert tokens.shape == (1, 1 + 63 * 8, 192)
    for bad in ("maybe", 1, None):
        with pytest.raises(ValueError, match="fused_attention must be True or False"):
            create_model("vit_audio_small", num_classes=5, in_chans=1, fused_attention=bad)
    with pytest.raises(ValueError, match="stem_strided_blocks needs stem='cnn'"):
        VisionTransformer(in_chans=1, patch_size=8, embed_dim=32, depth=1, num_heads=4,
                          stem_strided_blocks=1)


def test_padding_is_right_and_bottom():
    model = _spectrogram_model().eval()
    x = torch.randn(1, 1, 40, 50)
    with torch.no_grad():
        padded = model(F.pad(x, (0, 64 - 50, 0, 48 - 40)))
        assert model.grid_size(40, 50) == (3, 4)
        assert _max_diff(model(x), padded) <= 1e-6
        # padding on the left would move the patches: a different result
        assert _max_diff(model(F.pad(x, (64 - 50, 0, 48 - 40, 0))), padded) > 1e-4


def test_global_pool_avg_is_the_mean_of_all_tokens():
    token_model = _spectrogram_model(num_classes=0).eval()
    avg_model = _spectrogram_model(num_classes=0, global_pool="avg").eval()
    avg_model.load_state_dict(token_model.state_dict(), strict=True)
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        tokens = avg_model.forward_features(x)
        pooled_avg, pooled_token = avg_model(x), token_model(x)
    assert pooled_avg.shape == pooled_token.shape == (2, avg_model.num_features)
    assert torch.allclose(pooled_avg, tokens.mean(dim=1), atol=1e-6)
    assert torch.allclose(pooled_token, tokens[:, 0], atol=1e-6)
    assert _max_diff(pooled_avg, pooled_token) > 1e-3
    assert torch.allclose(avg_model.forward_head(tokens, pre_logits=True), pooled_avg)


def test_cnn_stem():
    model = create_model("vit_audio_small", num_classes=5, in_chans=1).eval()
    x = torch.randn(2, 1, 501, 64)
    with torch.no_grad():
        logits = model(x)
        tokens, attentions = model.forward_features(x, return_attentions=True)
    height, width = model.grid_size(501, 64)
    assert (height, width) == (63, 8)  # ceil(ceil(501 / 4) / 2), 64 / 8
    assert logits.shape == (2, 5) and torch.isfinite(logits).all()
    assert tokens.shape == (2, 1 + 63 * 8, 192)
    assert attentions[0].shape == (2, 3, 1 + 63 * 8, 1 + 63 * 8)
    # the stem is in the graph: its weights get gradients
    model.train()
    model(x).sum().backward()
    assert model.stem.blocks[0].conv1.weight.grad.abs().sum() > 0


def test_position_embeddings_are_resampled_not_truncated():
    model = _spectrogram_model(pos_embed_grid=(4, 4))
    assert model.position_embedding((4, 4)) is model.pos_embed
    resampled = model.position_embedding((8, 2))
    assert resampled.shape == (1, 1 + 16, 32)
    assert torch.equal(resampled[:, 0], model.pos_embed[:, 0])  # class token entry kept
    # a constant embedding stays constant under interpolation
    with torch.no_grad():
        model.pos_embed.fill_(0.5)
    assert torch.allclose(model.position_embedding((7, 9)), torch.full((1, 64, 32), 0.5), atol=1e-5)


def test_bad_inputs_raise_value_errors():
    model = _spectrogram_model()
    with pytest.raises(ValueError, match="shape"):
        model(torch.randn(2, 431, 513))
    with pytest.raises(ValueError, match="shape"):
        model(torch.randn(2, 3, 64, 64))
    with pytest.raises(ValueError, match="global_pool"):
        VisionTransformer(global_pool="max")
    with pytest.raises(ValueError, match="divisible"):
        VisionTransformer(embed_dim=30, num_heads=4)
    with pytest.raises(ValueError, match="stem"):
        VisionTransformer(stem="resnet")
    with pytest.raises(ValueError, match="class_token"):
        VisionTransformer(class_token=False)


def test_without_class_token():
    model = _spectrogram_model(class_token=False, global_pool="avg", num_classes=0).eval()
    x = torch.randn(1, 1, 32, 48)
    tokens, attentions = model.forward_features(x, return_attentions=True)
    assert tokens.shape == (1, 2 * 3, 32) and attentions[0].shape == (1, 4, 6, 6)
    assert torch.allclose(model(x), tokens.mean(1), atol=1e-6)


def test_num_classes_zero_and_reset_classifier():
    model = _spectrogram_model(num_classes=0).eval()
    x = torch.randn(2, 1, 32, 32)
    assert model(x).shape == (2, model.num_features) == (2, 32)
    model.reset_classifier(3)
    assert model(x).shape == (2, 3)

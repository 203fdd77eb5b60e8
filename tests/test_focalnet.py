"""Tests of the FocalNet lobe: sizes, parity with timm / transformers / microsoft
layouts, modulators, any-size inputs (padding), gradients, CNN stem, errors.

Parity tests build small randomly initialised reference models, perturb every
parameter (so that no zero bias or unit LayerNorm hides a mapping bug), convert their
state dict with :func:`convert_state_dict` and compare outputs in float32 eval mode.
The microsoft/FocalNet layout is tested without the microsoft code: a timm state dict
is renamed to microsoft's parameter names by :func:`_timm_to_microsoft` (the inverse
of timm's own ``checkpoint_filter_fn``, which the test uses to check the renaming).
"""

import copy
import math

import pytest
import torch

import focalnet_lobes.models.focalnet  # noqa: F401  (registers the focalnet_* configs)
from focalnet_lobes.models.convert import convert_focalnet, convert_state_dict
from focalnet_lobes.models.focalnet import FocalModulation, FocalNet
from focalnet_lobes.models.registry import create_model, list_models

TOL = 1e-4
SMALL = dict(embed_dim=16, depths=(1, 1, 2, 1))


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Run this module's small models on one thread (restored afterwards): on a shared
    2-core machine, two OpenMP threads waiting on each other make them 10-50x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _perturb(module, seed=0, scale=0.1):
    """Add noise to every parameter so that every tensor of the mapping matters."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(scale * torch.randn(parameter.shape, generator=generator))
    return module


def _max_diff(a, b):
    return (a - b).abs().max().item()


def _input(*shape, seed=1):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# --- sizes ---------------------------------------------------------------------------


def _expected_parameters(
    in_chans, num_classes, embed_dim, depths, focal_levels, focal_windows, stem_channels=None
):
    """Parameter count of a FocalNet written out from the paper's architecture."""
    count = 0
    if stem_channels is None:  # 4x4 patch conv + LayerNorm
        count += in_chans * embed_dim * 16 + embed_dim + 2 * embed_dim
    else:  # per block: two bias-free 3x3 convs + two BatchNorms; then the patch norm
        previous = in_chans
        for width in stem_channels:
            count += previous * width * 9 + 2 * width + width * width * 9 + 2 * width
            previous = width
        if previous != embed_dim:
            count += previous * embed_dim + embed_dim
        count += 2 * embed_dim
    for stage, depth in enumerate(depths):
        dim = embed_dim * 2**stage
        if stage > 0:  # 2x2 patch merging conv + LayerNorm
            count += (dim // 2) * dim * 4 + dim + 2 * dim
        level, window = focal_levels[stage], focal_windows[stage]
        block = 2 * dim + 2 * dim  # two LayerNorms
        block += dim * (2 * dim + level + 1) + 2 * dim + level + 1  # f
        block += sum(dim * (2 * k + window) ** 2 for k in range(level))  # depthwise convs
        block += 2 * (dim * dim + dim)  # h and proj
        block += dim * 4 * dim + 4 * dim + 4 * dim * dim + dim  # MLP
        count += depth * block
    features = embed_dim * 2 ** (len(depths) - 1)
    return count + 2 * features + (features * num_classes + num_classes if num_classes else 0)


@pytest.mark.parametrize(
    "name, millions, timm_count, embed_dim, depths, levels",
    [
        ("focalnet_tiny_srf", 28.4, 28_427_116, 96, (2, 2, 6, 2), 2),
        ("focalnet_tiny_lrf", 28.6, 28_647_928, 96, (2, 2, 6, 2), 3),
        ("focalnet_small_srf", 49.9, 49_891_216, 96, (2, 2, 18, 2), 2),
        ("focalnet_small_lrf", 50.3, 50_342_440, 96, (2, 2, 18, 2), 3),
        ("focalnet_base_srf", 88.1, 88_148_144, 128, (2, 2, 18, 2), 2),
        ("focalnet_base_lrf", 88.7, 88_749_768, 128, (2, 2, 18, 2), 3),
    ],
)
def test_parameter_counts(name, millions, timm_count, embed_dim, depths, levels):
    with torch.device("meta"):
        model = create_model(name, num_classes=1000, in_chans=3)
    count = sum(p.numel() for p in model.parameters())
    assert abs(count / 1e6 - millions) / millions < 0.01  # paper / model zoo
    assert count == timm_count  # timm's focalnet_* with 1000 classes
    assert count == _expected_parameters(3, 1000, embed_dim, depths, (levels,) * 4, (3,) * 4)
    assert (model.embed_dims[0], model.depths) == (embed_dim, list(depths))
    assert [m.focal_level for m in model.modulation_layers()] == [levels] * sum(depths)


def test_audio_config():
    model = create_model("focalnet_audio_small", num_classes=50, in_chans=1)
    count = sum(p.numel() for p in model.parameters())
    assert count == _expected_parameters(1, 50, 64, (2, 2, 2), (2,) * 3, (3,) * 3, (32, 64))
    assert model.embed_dims == [64, 128, 256] and model.num_features == 256
    assert model.stage_strides == [4, 8, 16]
    assert set(list_models("focalnet_*")) >= {
        f"focalnet_{size}_{field}" for size in ("tiny", "small", "base") for field in ("srf", "lrf")
    } | {"focalnet_audio_small"}


# --- timm parity ---------------------------------------------------------------------

TIMM_OPTIONS = [
    # (timm kwargs, our kwargs, input)
    (dict(), dict(), (2, 3, 64, 96)),
    (dict(focal_levels=(3,) * 4), dict(focal_levels=(3,) * 4), (2, 3, 64, 64)),
    (dict(use_post_norm=True), dict(use_postln=True), (1, 3, 64, 64)),
    (dict(layerscale_value=1e-4), dict(use_layerscale=True), (1, 3, 64, 64)),
    (
        dict(use_post_norm_in_modulation=True, normalize_modulator=True),
        dict(use_postln_in_modulation=True, normalize_modulator=True),
        (1, 3, 64, 64),
    ),
    (
        dict(use_overlap_down=True, focal_windows=(5, 3, 3, 1), focal_levels=(1, 2, 3, 4)),
        dict(use_conv_embed=True, focal_windows=(5, 3, 3, 1), focal_levels=(1, 2, 3, 4)),
        (1, 3, 96, 64),
    ),
    (
        dict(in_chans=1, use_post_norm=True, layerscale_value=1e-4, use_overlap_down=True),
        dict(in_chans=1, use_postln=True, use_layerscale=True, use_conv_embed=True),
        (2, 1, 128, 64),
    ),
]


def _timm_pair(timm_kwargs, our_kwargs, num_classes=7, seed=0):
    timm_focalnet = pytest.importorskip("timm.models.focalnet")
    torch.manual_seed(seed)
    reference = timm_focalnet.FocalNet(num_classes=num_classes, **SMALL, **timm_kwargs).eval()
    _perturb(reference, seed)
    ours = FocalNet(num_classes=num_classes, **SMALL, **our_kwargs).eval()
    ours.load_state_dict(convert_state_dict(reference.state_dict(), "timm"), strict=True)
    return reference, ours


@pytest.mark.parametrize("timm_kwargs, our_kwargs, shape", TIMM_OPTIONS)
def test_timm_parity(timm_kwargs, our_kwargs, shape):
    reference, ours = _timm_pair(timm_kwargs, our_kwargs)
    x = _input(*shape)
    captured = []
    hook = reference.layers[-1].blocks[-1].modulation.h.register_forward_hook(
        lambda module, args, output: captured.append(output)
    )
    with torch.no_grad():
        expected = reference(x)
        stage_maps, modulators = ours.forward_features(x, return_modulators=True)
        logits = ours.forward_head(stage_maps[-1])
        reference_maps = reference.forward_intermediates(x, intermediates_only=True)
    hook.remove()
    assert expected.abs().max() > 0.1  # a non-trivial output
    assert _max_diff(logits, expected) <= TOL
    assert _max_diff(ours(x), expected) <= TOL
    assert _max_diff(modulators[-1], captured[0]) <= TOL
    for ours_map, reference_map in zip(stage_maps, reference_maps, strict=True):
        assert ours_map.shape == reference_map.shape
        assert _max_diff(ours_map, reference_map) <= TOL


def test_timm_headless_loads_into_num_classes_0():
    reference, _ = _timm_pair({}, {}, num_classes=0)
    ours = FocalNet(num_classes=0, **SMALL).eval()
    ours.load_state_dict(convert_state_dict(reference.state_dict(), "timm"), strict=True)
    x = _input(1, 3, 64, 64)
    with torch.no_grad():
        assert ours(x).shape == (1, ours.num_features)
        assert _max_diff(ours(x), reference(x)) <= TOL


# --- microsoft layout ----------------------------------------------------------------


def _timm_to_microsoft(state_dict):
    """Rename a timm FocalNet state dict to microsoft/FocalNet's names and shapes.

    microsoft ``classification/focalnet.py``: ``patch_embed`` (timm: ``stem``); the
    downsampling at the END of ``layers.i`` (timm: start of ``layers.i+1``);
    ``gamma_1/2`` (timm: ``ls1/2.gamma``); one ``norm1``/``norm2`` per block used
    before or after the branch (timm: ``norm1_post``/``norm2_post`` when post-norm);
    ``modulation.ln`` (timm: ``modulation.norm``); ``head`` (timm: ``head.fc``);
    ``f``, ``proj`` and ``mlp.fc1/2`` are ``nn.Linear`` (timm: 1x1 convs), while ``h``
    is a 1x1 ``nn.Conv2d`` in both.
    """
    renamed = {}
    for key, tensor in state_dict.items():
        parts = key.split(".")
        if parts[0] == "stem":
            parts[0] = "patch_embed"
        elif parts[0] == "layers" and parts[2] == "downsample":
            parts[1] = str(int(parts[1]) - 1)
        elif parts[0] == "head":
            parts = ["head", parts[-1]]
        key = ".".join(parts)
        key = key.replace("ls1.gamma", "gamma_1").replace("ls2.gamma", "gamma_2")
        key = key.replace("norm1_post", "norm1").replace("norm2_post", "norm2")
        key = key.replace("modulation.norm.", "modulation.ln.")
        if key.endswith(("modulation.f.weight", "modulation.proj.weight", "fc1.weight", "fc2.weight")):
            tensor = tensor.reshape(tensor.shape[0], tensor.shape[1])
        renamed[key] = tensor
    return renamed


@pytest.mark.parametrize(
    "timm_kwargs, our_kwargs",
    [
        (dict(), dict()),
        (
            dict(use_post_norm=True, layerscale_value=1e-4, use_post_norm_in_modulation=True),
            dict(use_postln=True, use_layerscale=True, use_postln_in_modulation=True),
        ),
    ],
)
def test_microsoft_layout(timm_kwargs, our_kwargs):
    timm_focalnet = pytest.importorskip("timm.models.focalnet")
    reference, _ = _timm_pair(timm_kwargs, our_kwargs)
    microsoft = _timm_to_microsoft(reference.state_dict())
    assert "layers.0.downsample.proj.weight" in microsoft and "head.weight" in microsoft
    # timm's own microsoft -> timm conversion must give back the timm state dict.
    back = timm_focalnet.checkpoint_filter_fn(microsoft, reference)
    expected = reference.state_dict()
    assert set(back) == set(expected)
    assert all(torch.equal(back[k], expected[k]) for k in expected)

    ours = FocalNet(num_classes=7, **SMALL, **our_kwargs).eval()
    ours.load_state_dict(convert_state_dict(microsoft, "microsoft"), strict=True)
    x = _input(2, 3, 64, 64)
    with torch.no_grad():
        assert _max_diff(ours(x), reference(x)) <= TOL


# --- transformers parity -------------------------------------------------------------


def _hf_config(**kwargs):
    transformers = pytest.importorskip("transformers")
    config = dict(
        embed_dim=16,
        depths=[1, 1, 2, 1],
        hidden_sizes=[32, 64, 128, 128],
        focal_levels=[2, 3, 2, 1],
        focal_windows=[3, 3, 5, 3],
        num_channels=1,
        drop_path_rate=0.0,
    )
    config.update(kwargs)
    return transformers.FocalNetConfig(**config)


HF_TO_OURS = dict(
    use_conv_embed="use_conv_embed",
    use_layerscale="use_layerscale",
    use_post_layernorm="use_postln",
    use_post_layernorm_in_modulation="use_postln_in_modulation",
    normalize_modulator="normalize_modulator",
)


def _ours_for(config, num_classes):
    options = {ours: getattr(config, hf) for hf, ours in HF_TO_OURS.items()}
    return FocalNet(
        in_chans=config.num_channels,
        num_classes=num_classes,
        embed_dim=config.embed_dim,
        depths=config.depths,
        focal_levels=config.focal_levels,
        focal_windows=config.focal_windows,
        drop_path_rate=0.0,
        **options,
    ).eval()


@pytest.mark.parametrize(
    "options, shape",
    [
        (dict(), (2, 1, 64, 96)),
        (dict(), (2, 1, 61, 75)),  # odd sizes: both pad right/bottom before each stride
        (
            dict(use_layerscale=True, use_post_layernorm=True, normalize_modulator=True),
            (1, 1, 45, 64),
        ),
        (dict(use_conv_embed=True, use_post_layernorm_in_modulation=True), (1, 1, 70, 53)),
    ],
)
def test_transformers_model_parity(options, shape):
    transformers = pytest.importorskip("transformers")
    config = _hf_config(**options)
    torch.manual_seed(0)
    reference = _perturb(transformers.FocalNetModel(config).eval())
    ours = _ours_for(config, num_classes=0)
    ours.load_state_dict(convert_state_dict(reference.state_dict(), "transformers"), strict=True)
    x = _input(*shape)
    captured = []
    hooks = [
        stage.layers[-1].modulation.projection_context.register_forward_hook(
            lambda module, args, output: captured.append(output)
        )
        for stage in reference.encoder.stages
    ]
    with torch.no_grad():
        expected = reference(x, output_hidden_states=True)
        _, modulators = ours.forward_features(x, return_modulators=True)
        pooled = ours(x)
    for hook in hooks:
        hook.remove()
    assert _max_diff(pooled, expected.pooler_output) <= TOL
    assert len(modulators) == len(captured) == 4
    for stage, (ours_modulator, reference_modulator) in enumerate(zip(modulators, captured)):
        stride = ours.stage_strides[stage]
        assert ours_modulator.shape[-2:] == (math.ceil(shape[2] / stride), math.ceil(shape[3] / stride))
        assert _max_diff(ours_modulator, reference_modulator) <= TOL


def test_transformers_classification_and_backbone():
    transformers = pytest.importorskip("transformers")
    config = _hf_config(num_labels=5, num_channels=3)
    torch.manual_seed(0)
    classifier = _perturb(transformers.FocalNetForImageClassification(config).eval())
    state_dict = classifier.state_dict()
    assert any(key.startswith("focalnet.") for key in state_dict) and "classifier.weight" in state_dict
    ours = _ours_for(config, num_classes=5)
    ours.load_state_dict(convert_state_dict(state_dict, "transformers"), strict=True)
    x = _input(2, 3, 64, 64)
    with torch.no_grad():
        assert _max_diff(ours(x), classifier(x).logits) <= TOL

    backbone_config = _hf_config(num_channels=3, out_features=["stage1", "stage2", "stage3", "stage4"])
    backbone = _perturb(transformers.FocalNetBackbone(backbone_config).eval(), seed=3)
    headless = _ours_for(backbone_config, num_classes=0)
    headless.load_state_dict(convert_state_dict(backbone.state_dict(), "transformers"), strict=True)
    with torch.no_grad():
        assert _max_diff(headless(x), backbone.focalnet(x).pooler_output) <= TOL


def test_transformers_dropped_keys():
    # The masked-image-modelling mask token and decoder have no counterpart: dropped.
    state_dict = {
        "focalnet.embeddings.mask_token": torch.zeros(1, 1, 16),
        "decoder.0.weight": torch.zeros(3, 16, 1, 1),
        "focalnet.layernorm.weight": torch.ones(128),
    }
    assert list(convert_focalnet(state_dict, "transformers")) == ["norm.weight"]


# --- any-size spectrograms, modulators, gradients ------------------------------------


def test_spectrogram_modulators_and_gradients():
    # FocalNet-T's depths and focal levels; a narrower width keeps the test fast.
    torch.manual_seed(0)
    model = create_model("focalnet_tiny_srf", num_classes=50, in_chans=1, embed_dim=32).eval()
    x = _input(2, 1, 431, 513).requires_grad_()
    stage_maps, modulators = model.forward_features(x, return_modulators=True)
    expected_shapes = [(2, 32, 108, 129), (2, 64, 54, 65), (2, 128, 27, 33), (2, 256, 14, 17)]
    assert [tuple(m.shape) for m in modulators] == expected_shapes
    assert [tuple(m.shape) for m in stage_maps] == expected_shapes
    assert model.stage_grid_sizes(431, 513) == [s[2:] for s in expected_shapes]
    last_modulation = model.stages[-1].blocks[-1].modulation
    assert not hasattr(last_modulation, "modulator")  # returned, never stored

    logits = model.forward_head(stage_maps[-1])
    assert logits.shape == (2, 50) and torch.isfinite(logits).all()
    # The modulators stay in the graph: saliency w.r.t. them is available.
    (modulator_grad,) = torch.autograd.grad(logits[:, 3].sum(), modulators[-1], retain_graph=True)
    assert modulator_grad.abs().sum() > 0
    model.zero_grad(set_to_none=True)
    logits.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    # the last (partial-patch) frame and bin are real positions: they receive gradient
    assert x.grad[:, :, -1].abs().sum() > 0 and x.grad[:, :, :, -1].abs().sum() > 0
    stage4_modulation = [
        (name, p) for name, p in model.stages[3].named_parameters() if ".modulation." in name
    ]
    # 2 blocks x (input_proj, modulator_proj, output_proj: weight and bias; 2 focal convs)
    assert len(stage4_modulation) == 2 * (3 * 2 + 2)
    for name, parameter in stage4_modulation:
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_padding_is_plain_zero_padding_of_the_stem():
    """A 431 x 513 input is read as its zero padding to 432 x 516 (next multiple of 4);
    later stages pad their own maps, so no grid position is made of padding only."""
    torch.manual_seed(0)
    model = _perturb(FocalNet(in_chans=1, num_classes=5, **SMALL)).eval()
    x = _input(1, 1, 431, 513)
    padded = torch.nn.functional.pad(x, (0, 3, 0, 1))
    with torch.no_grad():
        maps = model.forward_features(x)
        padded_maps = model.forward_features(padded)
        logits, padded_logits = model.forward_head(maps[-1]), model.forward_head(padded_maps[-1])
    assert _max_diff(logits, padded_logits) <= 1e-5
    assert [tuple(m.shape[-2:]) for m in maps] == [(108, 129), (54, 65), (27, 33), (14, 17)]
    for ours_map, padded_map in zip(maps, padded_maps):
        assert ours_map.shape == padded_map.shape
        assert _max_diff(ours_map, padded_map) <= 1e-4
    # Padding the input further (to a multiple of 32) is NOT the same model input:
    # it adds grid positions, which shift the global context and the pooling.
    with torch.no_grad():
        assert _max_diff(model(torch.nn.functional.pad(x, (0, 31, 0, 17))), logits) > 1e-4


def test_forward_composition_and_headless():
    model = FocalNet(in_chans=1, num_classes=4, **SMALL).eval()
    x = _input(2, 1, 33, 47)
    with torch.no_grad():
        logits = model(x)
        assert _max_diff(logits, model.forward_head(model.forward_features(x)[-1])) == 0
        pooled = model.forward_head(model.forward_features(x)[-1], pre_logits=True)
        assert _max_diff(model.head(pooled), logits) <= 1e-6
    headless = FocalNet(in_chans=1, num_classes=0, **SMALL).eval()
    assert isinstance(headless.head, torch.nn.Identity)
    assert headless(x).shape == (2, headless.num_features) == (2, 128)


def test_modulation_pooling_weights_positions_by_the_modulation_map():
    """global_pool="modulation": the pooled vector is the mean of the normed last-stage
    positions weighted by the last layer's modulation map (L2 over channels), the map
    the interpretation thresholds; the map's layer receives the pooling's gradient."""
    from focalnet_lobes.models.focalnet import modulation_pool_weights
    from focalnet_lobes.interpretation.interpret import modulation_map

    torch.manual_seed(0)
    model = _perturb(
        FocalNet(in_chans=1, num_classes=0, global_pool="modulation", **SMALL)
    ).eval()
    x = _input(2, 1, 61, 40)
    stage_maps, modulators = model.forward_features(x, return_modulators=True)
    pooled = model.forward_head(stage_maps[-1], modulator=modulators[-1])
    tokens = model.norm(stage_maps[-1].permute(0, 2, 3, 1))
    weights = modulation_map(modulators)
    weights = weights / weights.sum((1, 2), keepdim=True)
    assert not torch.allclose(weights, torch.full_like(weights, 1 / weights[0].numel()))
    expected = (tokens * weights.unsqueeze(-1)).sum((1, 2))
    assert _max_diff(pooled, expected) <= 1e-5
    assert _max_diff(pooled, tokens.mean((1, 2))) > 1e-3  # not the plain mean
    assert _max_diff(model(x), pooled) <= 1e-6  # forward() pools the same way
    # another modulator gives other weights
    uniform = torch.ones_like(modulators[-1])
    assert _max_diff(model.forward_head(stage_maps[-1], modulator=uniform), tokens.mean((1, 2))) <= 1e-5
    # gradient reaches the last modulator_proj through the weights alone
    (grad,) = torch.autograd.grad(
        (tokens.detach() * modulation_pool_weights(modulators[-1]).unsqueeze(-1)).sum(),
        model.stages[-1].blocks[-1].modulation.modulator_proj.weight,
    )
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    # softmax weights, and a zero modulator (no spread) gives finite gradients
    soft = modulation_pool_weights(modulators[-1], temperature=0.1)
    assert torch.allclose(soft.sum((1, 2)), torch.ones(2)) and soft.max() > weights.max()
    zero = torch.zeros(1, 4, 2, 3, requires_grad=True)
    modulation_pool_weights(zero)[0, 0, 0].backward()
    assert torch.isfinite(zero.grad).all()
    # same parameters as average pooling: checkpoints load either way
    assert model.state_dict().keys() == FocalNet(in_chans=1, num_classes=0, **SMALL).state_dict().keys()


def test_modulation_pooling_errors():
    with pytest.raises(ValueError, match="global_pool"):
        FocalNet(embed_dim=8, depths=(1,), global_pool="max")
    with pytest.raises(ValueError, match="pool_temperature"):
        FocalNet(embed_dim=8, depths=(1,), global_pool="modulation", pool_temperature=0)
    model = FocalNet(embed_dim=8, depths=(1,), global_pool="modulation")
    with pytest.raises(ValueError, match="modulator"):
        model.forward_head(torch.randn(1, 8, 2, 2))  # no forward pass yet


def test_cnn_stem_on_a_short_window():
    model = create_model("focalnet_audio_small", num_classes=10, in_chans=1)
    x = _input(2, 1, 501, 64)
    maps, modulators = model.forward_features(x, return_modulators=True)
    assert [tuple(m.shape) for m in modulators] == [
        (2, 64, 126, 16),
        (2, 128, 63, 8),
        (2, 256, 32, 4),
    ]
    assert [tuple(m.shape) for m in maps] == [tuple(m.shape) for m in modulators]
    logits = model.forward_head(maps[-1])
    assert logits.shape == (2, 10)
    logits.sum().backward()
    assert model.patch_embed.proj.blocks[0].conv1.weight.grad.abs().sum() > 0


def test_drop_path_and_checkpointing():
    torch.manual_seed(0)
    model = FocalNet(in_chans=1, num_classes=3, drop_path_rate=0.5, **SMALL)
    x = _input(4, 1, 32, 32)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
        reference = model(x)
    model.train()
    with torch.no_grad():
        assert _max_diff(model(x), reference) > 1e-3  # stochastic depth is active

    plain = FocalNet(in_chans=1, num_classes=3, **SMALL).eval()
    checkpointed = FocalNet(in_chans=1, num_classes=3, use_checkpoint=True, **SMALL).eval()
    checkpointed.load_state_dict(plain.state_dict())
    plain(x).sum().backward()
    checkpointed(x).sum().backward()
    for (name, a), b in zip(plain.named_parameters(), checkpointed.parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-6), name


def test_forward_keeps_no_maps_so_copy_and_save_work(tmp_path):
    model = FocalNet(in_chans=1, num_classes=3, **SMALL)
    model(_input(1, 1, 32, 32)).sum().backward()
    for layer in model.modulation_layers():
        assert not hasattr(layer, "modulator") and not hasattr(layer, "gates")
    _, modulators = model.forward_features(_input(1, 1, 32, 32), return_modulators=True)
    assert modulators[0].requires_grad  # returned in the graph
    clone = copy.deepcopy(model)
    assert torch.equal(clone(_input(1, 1, 32, 32)), model(_input(1, 1, 32, 32)))
    torch.save(model, tmp_path / "model.pt")


def test_focal_modulation_kernel_sizes_and_gates():
    modulation = FocalModulation(8, focal_window=5, focal_level=3, focal_factor=4)
    assert modulation.kernel_sizes == [5, 9, 13]
    assert [conv.kernel_size for conv in modulation.focal_convs] == [(5, 5), (9, 9), (13, 13)]
    x = _input(2, 6, 7, 8)
    out, modulator, gates = modulation(x, return_maps=True)
    assert out.shape == x.shape and modulator.shape == (2, 8, 6, 7)
    assert torch.equal(modulation(x), out)
    assert gates.shape == (2, 4, 6, 7)
    # gates are the last focal_level + 1 outputs of input_proj
    expected_gates = modulation.input_proj(x)[..., -4:].permute(0, 3, 1, 2)
    assert _max_diff(gates, expected_gates) <= 1e-6


# --- errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(stem="vgg"), "stem"),
        (dict(stem="cnn", use_conv_embed=True), "exclusive"),
        (dict(focal_levels=(2, 2)), "focal_levels"),
        (dict(depths=()), "depths"),
        (dict(use_conv_embed=True, patch_size=8), "patch_size"),
    ],
)
def test_bad_configs(kwargs, match):
    config = dict(SMALL)
    config.update(kwargs)
    with pytest.raises(ValueError, match=match):
        FocalNet(**config)


def test_bad_inputs():
    model = FocalNet(in_chans=1, num_classes=3, **SMALL)
    with pytest.raises(ValueError, match="in_chans=1"):
        model(torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match="expects"):
        model(torch.randn(1, 32, 32))
    with pytest.raises(ValueError, match="forward_head"):
        model.forward_head(torch.randn(1, 64, 2, 2))


def test_convert_errors():
    with pytest.raises(ValueError, match="Unknown"):
        convert_state_dict({"layers.0.blocks.0.modulation.f.weight": torch.zeros(1)}, "keras")
    with pytest.raises(ValueError, match="not part of a 'timm' FocalNet"):
        convert_focalnet({"layers.0.blocks.0.modulation.f.weight": torch.zeros(1), "head.pre_logits.fc.weight": torch.zeros(1)}, "timm")
    with pytest.raises(ValueError, match="1x1"):
        convert_focalnet({"layers.0.blocks.0.modulation.h.weight": torch.zeros(4, 4, 3, 3)}, "timm")


def test_convert_unwraps_training_checkpoints():
    """microsoft/FocalNet checkpoints hold {"model": state_dict, ...}: the weights are found."""
    import timm

    from focalnet_lobes import convert_state_dict

    reference = timm.create_model("focalnet_tiny_srf", pretrained=False, num_classes=0)
    plain = convert_state_dict(reference.state_dict(), "timm")
    wrapped = convert_state_dict({"model": reference.state_dict(), "epoch": 3}, "timm")
    assert plain.keys() == wrapped.keys()
    assert all(torch.equal(plain[k], wrapped[k]) for k in plain)


def test_strided_stem_option_keeps_the_grid_and_needs_the_cnn_stem():
    model = create_model("focalnet_audio_small", num_classes=4, in_chans=1, stem_strided_blocks=1)
    vgg = create_model("focalnet_audio_small", num_classes=4, in_chans=1)
    assert type(model.patch_embed.proj.blocks[0]).__name__ == "StridedConvBlock"
    x = torch.randn(2, 1, 431, 64)
    with torch.no_grad():
        maps, modulators = model.eval().forward_features(x, return_modulators=True)
        _, vgg_modulators = vgg.eval().forward_features(x, return_modulators=True)
    assert [m.shape for m in modulators] == [m.shape for m in vgg_modulators]
    with pytest.raises(ValueError, match="stem_strided_blocks needs stem='cnn'"):
        create_model("focalnet_tiny_srf", num_classes=4, stem_strided_blocks=1)

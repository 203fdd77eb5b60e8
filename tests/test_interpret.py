"""Interpretation maps, their alignment with the input, masks and interpreters."""

import math
import pathlib

import pytest
import torch
from torch import nn

import focalnet_lobes
from focalnet_lobes.models.classifier import GlobalFeatureNorm, SpectrogramClassifier
from focalnet_lobes.models.heads import LinearHead
from focalnet_lobes.interpretation.interpret import (
    AttentionInterpreter,
    EnergyInterpreter,
    GradCamInterpreter,
    GradientSaliencyInterpreter,
    InputWeightedInterpreter,
    MapInterpreter,
    ModulationInterpreter,
    RandomInterpreter,
    attention_map,
    infer_stride,
    modulation_map,
    _next_order_statistic,
    quantile_mask,
    quantile_thresholds,
    to_input_grid,
)

# ----------------------------------------------------------------------------- maps


def test_modulation_map_reductions_hand_values():
    # one clip, 3 channels, 1 x 2 grid: cell 0 has (1, -2, 2), cell 1 has (0, 3, -4)
    modulator = torch.tensor([[1.0, 0.0], [-2.0, 3.0], [2.0, -4.0]]).reshape(1, 3, 1, 2)
    other_stage = torch.zeros(1, 5, 2, 4)
    modulators = [other_stage, modulator]
    expected = {
        "l2": [3.0, 5.0],
        "mean_abs": [5 / 3, 7 / 3],
        "mean": [1 / 3, -1 / 3],
        "max": [2.0, 3.0],
    }
    for reduction, values in expected.items():
        result = modulation_map(modulators, stage=-1, reduction=reduction)
        assert result.shape == (1, 1, 2)
        torch.testing.assert_close(result, torch.tensor(values).reshape(1, 1, 2), msg=reduction)
    assert modulation_map(modulators, stage=0).shape == (1, 2, 4)


def test_modulation_map_errors():
    modulator = torch.zeros(1, 3, 2, 2)
    with pytest.raises(ValueError, match="reduction"):
        modulation_map([modulator], reduction="median")
    with pytest.raises(ValueError, match="stage"):
        modulation_map([modulator], stage=1)
    with pytest.raises(ValueError, match=r"\(B, C, h, w\)"):
        modulation_map([torch.zeros(3, 2, 2)])


def two_layer_attentions():
    """Two layers, two heads, a class token and 2 patches on a (1, 2) grid.

    Head means: A0 = [[.5, .25, .25], [0, 1, 0], [0, 0, 1]],
                A1 = [[0, 1, 0], [.5, .5, 0], [0, 0, 1]].
    """
    layer0 = torch.tensor(
        [
            [[0.5, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
            [[0.5, 0.0, 0.5], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        ]
    )
    layer1 = torch.tensor(
        [
            [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]],
            [[0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        ]
    )
    return [layer0[None], layer1[None]]


def test_attention_map_cls_hand_values():
    attentions = two_layer_attentions()
    torch.testing.assert_close(attention_map(attentions, (1, 2)), torch.tensor([[[1.0, 0.0]]]))
    torch.testing.assert_close(
        attention_map(attentions, (1, 2), layer=0), torch.tensor([[[0.25, 0.25]]])
    )


def test_attention_rollout_hand_computed_two_layers():
    # Â0 = (A0 + I) / 2 = [[.75, .125, .125], [0, 1, 0], [0, 0, 1]]
    # Â1 = (A1 + I) / 2 = [[.5, .5, 0], [.25, .75, 0], [0, 0, 1]]
    # R = Â1 Â0, class row = .5 * Â0[0] + .5 * Â0[1] = (.375, .5625, .0625)
    attentions = two_layer_attentions()
    rollout = attention_map(attentions, (1, 2), method="rollout")
    torch.testing.assert_close(rollout, torch.tensor([[[0.5625, 0.0625]]]))
    # the reverse product Â0 Â1 would give (0.46875, 0.125): order matters
    first_only = attention_map(attentions, (1, 2), method="rollout", layer=0)
    torch.testing.assert_close(first_only, torch.tensor([[[0.125, 0.125]]]))


def test_attention_map_extra_prefix_tokens_and_errors():
    # 2 prefix tokens (class + distillation) and a 2 x 2 grid: the class row's last 4
    attention = torch.zeros(1, 1, 6, 6)
    attention[0, 0, 0] = torch.tensor([0.1, 0.2, 0.3, 0.0, 0.4, 0.0])
    result = attention_map([attention], (2, 2))
    torch.testing.assert_close(result, torch.tensor([[[0.3, 0.0], [0.4, 0.0]]]))
    with pytest.raises(ValueError, match="N_tokens"):
        attention_map([torch.zeros(1, 1, 4, 4)], (2, 2))
    with pytest.raises(ValueError, match="method"):
        attention_map([attention], (2, 2), method="gradcam")
    with pytest.raises(ValueError, match="layer"):
        attention_map([attention], (2, 2), layer=3)


# ------------------------------------------------------------------ input alignment


@pytest.mark.parametrize(
    "cells, length, stride",
    [
        (14, 431, 32),
        (27, 431, 16),
        (54, 431, 8),
        (108, 431, 4),
        (2, 64, 32),
        (7, 101, 16),
        (31, 431, 14),
        (1, 5, 5),
    ],
)
def test_infer_stride(cells, length, stride):
    assert infer_stride(cells, length) == stride


def test_infer_stride_rejects_impossible_grids():
    with pytest.raises(ValueError):
        infer_stride(10, 5)


def test_high_cell_gives_mask_over_exactly_its_input_region():
    # FocalNet last stage on a 431 x 64 input: stride 32, grid 14 x 2. Cell (5, 1)
    # covers input rows 160..191 and columns 32..63.
    generator = torch.Generator().manual_seed(0)
    grid_map = torch.rand(1, 14, 2, generator=generator) * 0.1
    grid_map[0, 5, 1] = 1.0
    maps = to_input_grid(grid_map, 431, 64, mode="nearest")
    assert maps.shape == (1, 1, 431, 64)
    # q chosen so that the threshold falls among the 32 * 32 top values
    mask = quantile_mask(maps, 0.97)
    expected = torch.zeros(1, 1, 431, 64)
    expected[..., 160:192, 32:64] = 1.0
    assert torch.equal(mask, expected)
    # bilinear: the highest values are still inside the cell's block
    smooth = to_input_grid(grid_map, 431, 64, mode="bilinear")
    top = quantile_mask(smooth, 0.99)[0, 0].nonzero()
    assert len(top) > 0
    assert top[:, 0].min() >= 160 and top[:, 0].max() < 192
    assert top[:, 1].min() >= 32 and top[:, 1].max() < 64
    # an interior cell's bilinear bump is centred on its block: cell (5, 2) of a
    # 14 x 4 grid over 431 x 128 covers rows 160..191, columns 64..95
    bump = torch.zeros(1, 14, 4)
    bump[0, 5, 2] = 1.0
    smooth = to_input_grid(bump, 431, 128, mode="bilinear")[0, 0]
    rows, cols = torch.meshgrid(torch.arange(431.0), torch.arange(128.0), indexing="ij")
    centre = ((smooth * rows).sum() / smooth.sum(), (smooth * cols).sum() / smooth.sum())
    assert centre[0].item() == pytest.approx(175.5, abs=1e-3)
    assert centre[1].item() == pytest.approx(79.5, abs=1e-3)


def test_last_partial_cell_is_cropped_not_stretched():
    # ViT-like patches of 16 on 431 frames: 27 rows, the last covers frames 416..430.
    grid_map = torch.zeros(1, 27, 4)
    grid_map[0, 26, 0] = 1.0
    maps = to_input_grid(grid_map, 431, 64, mode="nearest")
    assert maps[0, 0, 416:, :16].eq(1).all()
    assert maps[0, 0].sum().item() == 15 * 16
    # a plain resize of 27 rows to 431 would put the cell on frames ~415..430 with a
    # different extent; the padded-grid resize keeps every block 16 frames high
    grid_map = torch.zeros(1, 27, 4)
    grid_map[0, 10, 2] = 1.0
    maps = to_input_grid(grid_map, 431, 64, mode="nearest")
    assert maps[0, 0, 160:176, 32:48].eq(1).all() and maps.sum().item() == 256


def test_to_input_grid_errors():
    with pytest.raises(ValueError, match="do not cover"):
        to_input_grid(torch.zeros(1, 14, 2), 431, 64, stride=16)
    with pytest.raises(ValueError, match=r"\(B, h, w\)"):
        to_input_grid(torch.zeros(1, 1, 14, 2), 431, 64)
    with pytest.raises(ValueError, match="mode"):
        to_input_grid(torch.zeros(1, 14, 2), 431, 64, mode="bicubic")


# ---------------------------------------------------------------------------- masks


@pytest.mark.parametrize("q", [0.0, 0.1, 0.5, 0.73, 0.95, 1.0])
def test_quantile_thresholds_match_torch_quantile(q):
    values = torch.randn(3, 1, 7, 11, generator=torch.Generator().manual_seed(1))
    expected = torch.quantile(values.reshape(3, -1), q, dim=1)
    torch.testing.assert_close(quantile_thresholds(values, q), expected)


def test_quantile_thresholds_with_ties_match_torch_quantile():
    # few distinct values: v_(floor r) and v_(floor r + 1) are often equal (ties) and
    # sometimes not; the masked minimum must give the second order statistic either way
    generator = torch.Generator().manual_seed(2)
    values = torch.randint(0, 4, (5, 1, 9, 13), generator=generator).float()
    values[0] = 0.0  # all tied
    values[1, 0, 0, 0] = -1.0  # one value below many ties
    for q in torch.linspace(0.0, 1.0, 41).tolist():
        expected = torch.quantile(values.reshape(5, -1), q, dim=1)
        torch.testing.assert_close(quantile_thresholds(values, q), expected)
    # the selection off the CPU (kthvalue and a masked minimum), called directly
    flat = values.reshape(5, -1)
    for lower in (0, 20, 57, 58, 100, flat.shape[1] - 2):
        low = flat.kthvalue(lower + 1, dim=1).values
        assert torch.equal(_next_order_statistic(flat, low, lower + 1), flat.kthvalue(lower + 2, dim=1).values)
    # bfloat16 maps (no NumPy dtype): their own order statistics, interpolated in bfloat16
    half = torch.rand(3, 700, generator=generator).to(torch.bfloat16)
    for q in (0.5, 0.9):
        position = q * 699
        low, high = (half.kthvalue(int(position) + k, dim=1).values for k in (1, 2))
        expected = torch.minimum(low + (position - int(position)) * (high - low), high)
        assert torch.equal(quantile_thresholds(half, q), expected) and expected.dtype == torch.bfloat16


def test_quantile_mask_area_on_full_size_maps():
    # 431 x 513 distinct values per clip (torch.quantile refuses such big batches)
    count = 431 * 513
    maps = torch.stack([torch.randperm(count).float() for _ in range(2)]).reshape(2, 1, 431, 513)
    for q in (0.5, 0.9, 0.95):
        mask = quantile_mask(maps, q)
        assert mask.shape == (2, 1, 431, 513)
        area = mask.mean(dim=(1, 2, 3))
        assert torch.all((area - (1 - q)).abs() <= 1.0 / count), (q, area)
        # every kept bin is >= every dropped bin, per clip
        for clip in range(2):
            inside = maps[clip][mask[clip].bool()]
            outside = maps[clip][~mask[clip].bool()]
            assert inside.min() > outside.max()


def test_constant_and_silent_maps_keep_everything_without_nan():
    maps = torch.stack(
        [
            torch.zeros(1, 4, 5),  # silent clip
            torch.full((1, 4, 5), 0.3),  # constant
            torch.full((1, 4, 5), 0.3),  # constant up to one ulp
        ]
    )
    maps[2, 0, 0, 0] = torch.nextafter(torch.tensor(0.3), torch.tensor(1.0))
    for soft in (False, True):
        for q in (0.0, 0.5, 1.0):
            mask = quantile_mask(maps, q, soft=soft)
            assert not torch.isnan(mask).any()
            assert torch.equal(mask, torch.ones_like(mask)), (soft, q)


def test_soft_mask_formula():
    maps = torch.tensor([[[2.0, 4.0], [6.0, 10.0]]])  # min 2, max 10
    normalised = torch.tensor([[[[0.0, 0.25], [0.5, 1.0]]]])
    torch.testing.assert_close(quantile_mask(maps, 0.0, soft=True), normalised)
    # q = 0.5: threshold 5 -> bins 6 and 10 kept with their normalised values
    torch.testing.assert_close(
        quantile_mask(maps, 0.5, soft=True), torch.tensor([[[[0.0, 0.0], [0.5, 1.0]]]])
    )
    torch.testing.assert_close(quantile_mask(maps, 0.5), torch.tensor([[[[0.0, 0.0], [1.0, 1.0]]]]))


def test_quantile_mask_errors():
    with pytest.raises(ValueError, match="q"):
        quantile_mask(torch.rand(1, 1, 2, 2), 1.5)
    with pytest.raises(ValueError, match="NaN"):
        quantile_mask(torch.full((1, 1, 2, 2), float("nan")), 0.5)
    with pytest.raises(ValueError, match="B, 1, T, F"):
        quantile_mask(torch.rand(1, 2, 2, 2), 0.5)


# -------------------------------------------------------------- fake-backbone interpreters


class FakeFocalClassifier(nn.Module):
    """Stand-in exposing modulators of two stages (strides 4 and 8) and logits."""

    def __init__(self, num_classes=3):
        super().__init__()
        self.stage1 = nn.Conv2d(1, 4, kernel_size=4, stride=4)
        self.stage2 = nn.Conv2d(4, 6, kernel_size=2, stride=2)
        self.head = nn.Linear(6, num_classes)

    def _pad(self, features, multiple):
        pad_t = -features.shape[-2] % multiple
        pad_f = -features.shape[-1] % multiple
        return nn.functional.pad(features, (0, pad_f, 0, pad_t))

    def forward_with_maps(self, features):
        first = self.stage1(self._pad(features, 8))
        second = self.stage2(first)
        logits = self.head(second.mean(dim=(-1, -2)))
        return logits, {"modulators": [first, second], "stage_maps": [first, second]}

    def forward(self, features):
        return self.forward_with_maps(features)[0]


class FakeViTClassifier(FakeFocalClassifier):
    def forward_with_maps(self, features):
        logits, _ = super().forward_with_maps(features)
        return logits, {"attentions": [], "grid_size": (1, 1)}


def test_modulation_interpreter_on_fake_backbone():
    torch.manual_seed(0)
    classifier = FakeFocalClassifier().eval()
    features = torch.rand(2, 1, 21, 13)
    logits, maps = ModulationInterpreter()(classifier, features)
    assert logits.shape == (2, 3) and maps.shape == (2, 1, 21, 13)
    assert (maps >= 0).all()
    torch.testing.assert_close(logits, classifier(features))
    # stage 0 (stride 4), nearest: each 4 x 4 block of the map is one cell's norm
    _, first = ModulationInterpreter(stage=0, upsampling="nearest")(classifier, features)
    _, modulator_maps = classifier.forward_with_maps(features)
    norms = modulator_maps["modulators"][0].norm(dim=1)
    torch.testing.assert_close(first[:, 0, 8:12, 4:8], norms[:, 2:3, 1:2].expand(2, 4, 4))
    # signed reductions are shifted to be non-negative, ranking unchanged
    _, signed = ModulationInterpreter(reduction="mean")(classifier, features)
    assert signed.min() >= 0 and signed.flatten(1).amin(1).abs().max() < 1e-6


def test_modulation_pooled_classifier_is_interpreted_by_its_pooling_weights():
    """With global_pool="modulation" the by-design map is the classifier's own pooling
    weights: the interpreter's map on the last grid is proportional to them, and
    forward_with_maps gives the logits of forward."""
    from focalnet_lobes.models.focalnet import modulation_pool_weights

    torch.manual_seed(0)
    backbone = focalnet_lobes.create_model(
        "focalnet_audio_small", num_classes=0, in_chans=1, global_pool="modulation"
    )
    classifier = SpectrogramClassifier(backbone, LinearHead(backbone.num_features, 3)).eval()
    features = torch.rand(2, 1, 64, 32)
    with torch.no_grad():
        logits, maps = classifier.forward_with_maps(features)
        torch.testing.assert_close(logits, classifier(features))
        _, grid_map = ModulationInterpreter(upsampling="nearest")(classifier, features)
    weights = modulation_pool_weights(maps["modulators"][-1])  # (2, 4, 2): stride 16
    cells = grid_map[:, 0, ::16, ::16]
    torch.testing.assert_close(cells / cells.sum((1, 2), keepdim=True), weights)


def test_gradients_of_the_modulation_map_reach_the_input():
    classifier = FakeFocalClassifier().eval()
    features = torch.rand(1, 1, 16, 16, requires_grad=True)
    _, maps = classifier.forward_with_maps(features)
    modulation_map(maps["modulators"]).sum().backward()
    assert features.grad is not None and features.grad.abs().sum() > 0
    features.grad = None
    _, upsampled = ModulationInterpreter()(classifier, features)
    upsampled.sum().backward()
    assert features.grad.abs().sum() > 0


def test_interpreters_reject_backbones_without_their_maps():
    with pytest.raises(ValueError, match="modulators"):
        ModulationInterpreter()(FakeViTClassifier(), torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match="attentions"):
        AttentionInterpreter()(FakeFocalClassifier(), torch.rand(1, 1, 8, 8))
    plain = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    with pytest.raises(ValueError, match="forward_with_maps"):
        ModulationInterpreter()(plain, torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match=r"\(B, 1, T, F\)"):
        RandomInterpreter()(plain, torch.rand(1, 8, 8))
    with pytest.raises(ValueError, match="reduction"):
        ModulationInterpreter(reduction="sum")


def test_base_interpreter_checks_the_maps_shape():
    class Wrong(MapInterpreter):
        def compute_maps(self, classifier, features):
            return classifier(features), features[..., :2]

    plain = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    with pytest.raises(ValueError, match="maps of shape"):
        Wrong()(plain, torch.rand(1, 1, 8, 8))
    with pytest.raises(NotImplementedError):
        MapInterpreter()(plain, torch.rand(1, 1, 8, 8))


def test_random_interpreter_reproducible_and_same_area_as_other_methods():
    plain = nn.Sequential(nn.Flatten(), nn.Linear(431 * 64, 2))
    features = torch.rand(2, 1, 431, 64)
    interpreter = RandomInterpreter(seed=5)
    torch.manual_seed(123)
    _, first = interpreter(plain, features)
    _, second = interpreter(plain, features)
    assert not torch.equal(first, second)  # a sequence, not one map
    interpreter.reset()
    torch.manual_seed(999)  # the global state does not matter
    _, again = interpreter(plain, features)
    assert torch.equal(first, again)
    assert (first >= 0).all() and (first <= 1).all()
    gradient_maps = GradientSaliencyInterpreter()(plain, features)[1] + features  # distinct values
    for q in (0.5, 0.9):
        random_area = quantile_mask(first, q).mean(dim=(1, 2, 3))
        other_area = quantile_mask(gradient_maps, q).mean(dim=(1, 2, 3))
        torch.testing.assert_close(random_area, other_area, atol=2.0 / (431 * 64), rtol=0)


def test_gradient_saliency_is_the_predicted_logits_gradient_per_clip():
    weight = torch.tensor([[1.0, -2.0, 0.0, 0.5], [0.0, 0.0, -3.0, 1.0]])
    classifier = nn.Sequential(nn.Flatten(), nn.Linear(4, 2, bias=False))
    with torch.no_grad():
        classifier[1].weight.copy_(weight)
    # clip 0 predicts class 0, clip 1 predicts class 1
    features = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 5.0]]).reshape(2, 1, 2, 2)
    with torch.no_grad():
        logits, maps = GradientSaliencyInterpreter()(classifier, features)
    assert logits.argmax(1).tolist() == [0, 1]
    torch.testing.assert_close(maps, weight.abs().reshape(2, 1, 2, 2))
    assert not maps.requires_grad and not logits.requires_grad


def test_energy_map_equals_the_input():
    classifier = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    features = torch.rand(3, 1, 3, 4) * 5
    with torch.no_grad():
        logits, maps = EnergyInterpreter()(classifier, features)
        expected_logits = classifier(features)
    assert torch.equal(maps, features)
    torch.testing.assert_close(logits, expected_logits)
    # the mask at q keeps the loudest bins: at q = 0.75 the 3 largest of 12
    mask = quantile_mask(maps, 0.75)
    top = features.flatten(1).topk(3, dim=1).indices
    assert torch.equal(mask.flatten(1).gather(1, top), torch.ones(3, 3))
    assert mask.flatten(1).sum(1).tolist() == [3.0, 3.0, 3.0]


def test_input_weighted_map_is_the_normalised_map_times_the_input():
    from focalnet_lobes.interpretation.interpret import ModulationContributionInterpreter

    torch.manual_seed(0)
    backbone = focalnet_lobes.create_model(
        "focalnet_audio_small", num_classes=0, in_chans=1, global_pool="modulation",
        stem_channels=[8, 16], embed_dim=16, depths=[1], focal_levels=[2], focal_windows=[3],
    )
    classifier = SpectrogramClassifier(backbone, LinearHead(backbone.num_features, 4)).eval()
    features = torch.rand(2, 1, 40, 32) * 3 - 0.5  # some negative bins: clamped to 0
    base = ModulationContributionInterpreter()
    with torch.no_grad():
        logits, maps = InputWeightedInterpreter(base)(classifier, features)
        base_logits, base_maps = base(classifier, features)
    torch.testing.assert_close(logits, base_logits)
    flat = base_maps.flatten(1)
    low, high = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    normalised = ((flat - low) / (high - low)).view_as(features)
    expected = (normalised + 1e-3) * features.clamp_min(0) + 1e-6 * normalised
    torch.testing.assert_close(maps, expected)
    assert bool((maps >= 0).all()) and bool((maps[features <= 0] <= 1e-6).all())
    # every bin with energy above 1e-3 ranks above every silent bin
    assert bool(maps[features > 1e-3].min() > maps[features <= 0].max())
    # within a last-stage cell where the base map is flat (nearest upsampling), the bins
    # are ranked by their energy: the finer mask the map alone cannot give
    nearest = ModulationContributionInterpreter(upsampling="nearest")
    with torch.no_grad():
        _, cell_maps = InputWeightedInterpreter(nearest)(classifier, features)
        _, flat_maps = nearest(classifier, features)
    cell = (slice(0, 4), slice(0, 4))  # stride 4: one cell
    assert flat_maps[0, 0][cell].unique().numel() == 1
    ratio = cell_maps[0, 0][cell] / features[0, 0][cell].clamp_min(1e-6)
    positive = features[0, 0][cell] > 0
    assert torch.allclose(ratio[positive], ratio[positive][0].expand(int(positive.sum())), atol=1e-5)
    # a constant map: the input itself (the energy control)
    class Flat(MapInterpreter):
        def compute_maps(self, classifier, features):
            return classifier(features), torch.full_like(features, 2.0)
    with torch.no_grad():
        _, constant = InputWeightedInterpreter(Flat())(classifier, features)
    torch.testing.assert_close(constant, 1.001 * features.clamp_min(0) + 1e-6)
    # a mostly silent clip (92% of the bins 0, as ESC-50's zero padding): the mask at
    # q = 0.9 keeps 10% of the bins, every sounding bin and the silent ones the map
    # rates highest, not every bin (quantile_mask keeps ties); the masked-in input is
    # the whole clip, the masked-out input silence
    silent = features.clamp_min(0.1)
    silent[..., :37, :] = 0.0  # 37 of 40 frames: 92.5% of the bins
    with torch.no_grad():
        _, silent_maps = InputWeightedInterpreter(base)(classifier, silent)
    mask = quantile_mask(silent_maps, 0.9)
    assert torch.allclose(mask.flatten(1).mean(1), torch.full((2,), 0.1), atol=1 / (40 * 32))
    assert bool((mask[..., 37:, :] == 1).all())
    assert torch.equal(mask * silent, silent) and torch.equal((1 - mask) * silent, torch.zeros_like(silent))
    assert InputWeightedInterpreter(base).name == "modulation_contribution_x_input"


def test_input_weighted_yamls_build_their_interpreters():
    """interpret_focalnet.yaml (the default) is the class-specific map times the input;
    interpret_focalnet_contribution.yaml keeps the map alone; saliency x input is the control."""
    from hyperpyyaml import load_hyperpyyaml

    from focalnet_lobes.interpretation.evaluation import configured_interpreter
    from focalnet_lobes.interpretation.interpret import (
        GradientSaliencyInterpreter, ModulationContributionInterpreter,
    )

    hparams_dir = pathlib.Path(__file__).resolve().parents[1] / "hparams"
    for name, method, inner in (("focalnet", "focalnet", ModulationContributionInterpreter),
                                ("saliency_x_input", "saliency_x_input", GradientSaliencyInterpreter)):
        text = (hparams_dir / f"interpret_{name}.yaml").read_text()
        hparams = load_hyperpyyaml(text, {"classifier_folder": "/tmp/run"})
        assert hparams["method"] == method and configured_interpreter(text) == "InputWeightedInterpreter"
        assert isinstance(hparams["interpreter"], InputWeightedInterpreter)
        assert type(hparams["interpreter"].interpreter) is inner
    from focalnet_lobes.interpretation.interpret import AttentionInterpreter

    text = (hparams_dir / "interpret_vit_x_input.yaml").read_text()
    hparams = load_hyperpyyaml(text, {"classifier_folder": "/tmp/run"})
    assert hparams["method"] == "vit_x_input"
    assert type(hparams["interpreter"].interpreter) is AttentionInterpreter
    text = (hparams_dir / "interpret_focalnet_contribution.yaml").read_text()
    hparams = load_hyperpyyaml(text, {"classifier_folder": "/tmp/run"})
    assert hparams["method"] == "focalnet_contribution"
    assert type(hparams["interpreter"]) is ModulationContributionInterpreter


def test_gradcam_refuses_a_classifier_without_a_known_backbone():
    classifier = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    with pytest.raises(ValueError, match="FocalNet or ViT"):
        GradCamInterpreter()(classifier, torch.rand(1, 1, 2, 2))


# ------------------------------------------------------------------------ real models


def real_classifier(name, num_classes=4, num_bins=64):
    torch.manual_seed(0)
    backbone = focalnet_lobes.create_model(name, num_classes=0, in_chans=1)
    head = LinearHead(backbone.num_features, num_classes)
    return SpectrogramClassifier(backbone, head, GlobalFeatureNorm(num_bins)).eval()


def test_modulation_interpreter_on_focalnet_audio_small():
    classifier = real_classifier("focalnet_audio_small")
    features = torch.rand(2, 1, 431, 64)
    with torch.no_grad():
        logits, maps = ModulationInterpreter()(classifier, features)
        expected_logits = classifier(features)
    assert logits.shape == (2, 4) and maps.shape == (2, 1, 431, 64)
    assert (maps >= 0).all() and not torch.isnan(maps).any()
    torch.testing.assert_close(logits, expected_logits, rtol=1e-4, atol=1e-5)
    for stage in (0, 1):
        _, stage_maps = ModulationInterpreter(stage=stage)(classifier, features)
        assert stage_maps.shape == (2, 1, 431, 64)
    mask = quantile_mask(maps.detach(), 0.9)
    assert abs(mask.mean().item() - 0.1) < 0.02


def test_real_focalnet_modulation_map_gradients_reach_the_input():
    classifier = real_classifier("focalnet_audio_small")
    features = torch.rand(1, 1, 64, 64, requires_grad=True)
    _, maps = classifier.forward_with_maps(features)
    modulation_map(maps["modulators"]).sum().backward()
    assert features.grad.abs().sum() > 0


def test_attention_interpreter_on_vit_audio_small():
    classifier = real_classifier("vit_audio_small")
    features = torch.rand(2, 1, 431, 64)
    with torch.no_grad():
        _, raw = classifier.forward_with_maps(features)
        for method in ("cls", "rollout"):
            logits, maps = AttentionInterpreter(method=method)(classifier, features)
            assert logits.shape == (2, 4) and maps.shape == (2, 1, 431, 64), method
            assert (maps >= 0).all() and not torch.isnan(maps).any()
    assert raw["grid_size"] == (math.ceil(431 / 8), math.ceil(64 / 8))
    # the class-token attention over the patches of one layer sums to at most 1
    grid_map = attention_map(raw["attentions"], raw["grid_size"])
    assert (grid_map.flatten(1).sum(1) <= 1 + 1e-5).all()


def test_modulation_interpreter_refuses_a_vit():
    classifier = real_classifier("vit_audio_small")
    with pytest.raises(ValueError, match="modulators"):
        ModulationInterpreter()(classifier, torch.rand(1, 1, 64, 64))


def test_random_cells_share_values_and_keep_the_mask_area():
    """Cell-level random maps: one value per cell, mask area ~ 1 - q up to one cell."""
    from focalnet_lobes.interpretation.interpret import RandomInterpreter, quantile_mask

    classifier = nn.Sequential(nn.Flatten(), nn.Linear(431 * 64, 3))
    features = torch.rand(3, 1, 431, 64)
    _, maps = RandomInterpreter(seed=1, cell_size=(16, 16))(classifier, features)
    assert maps.shape == features.shape
    # Every 16 x 16 cell is constant; the last, partial row of cells too.
    cells = maps[..., :416, :].reshape(3, 1, 26, 16, 4, 16)
    assert torch.equal(cells.amax((3, 5)), cells.amin((3, 5)))
    assert torch.equal(maps[..., 416:, :].amax(2), maps[..., 416:, :].amin(2))
    area = quantile_mask(maps, 0.9).float().mean((1, 2, 3))
    assert ((area - 0.1).abs() <= 16 * 16 / (431 * 64) + 1e-6).all()
    with pytest.raises(ValueError, match="cell_size"):
        RandomInterpreter(cell_size=(0, 4))


def manual_gradcam(activations, logits):
    """Grad-CAM by hand: ReLU(sum_k mean_ij(d y_c / d A_k) A_k) for the predicted c."""
    predicted = logits.argmax(dim=1, keepdim=True)
    (gradient,) = torch.autograd.grad(logits.gather(1, predicted).sum(), activations)
    weights = gradient.mean(dim=(2, 3), keepdim=True)
    return torch.relu((weights * activations).sum(dim=1)).detach()


def test_gradcam_on_focalnet_is_the_last_stage_gradcam():
    classifier = real_classifier("focalnet_audio_small")
    features = torch.rand(2, 1, 101, 64)
    normalized = classifier.normalizer(features)
    last = classifier.backbone.forward_features(normalized)[-1]
    logits = classifier.head(classifier.backbone.forward_head(last))
    expected = to_input_grid(manual_gradcam(last, logits), 101, 64, "bilinear")
    with torch.no_grad():
        got_logits, maps = GradCamInterpreter()(classifier, features)
    torch.testing.assert_close(got_logits, logits.detach(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(maps, expected, rtol=1e-4, atol=1e-6)
    assert maps.flatten(1).amax(1).min() > 0  # not an all-zero map


def test_gradcam_on_a_modulation_pooled_focalnet():
    """global_pool='modulation' (focalnet_cpu.yaml): Grad-CAM runs the pooling with the
    modulator of its own pass, and equals Grad-CAM by hand on that forward."""
    torch.manual_seed(0)
    backbone = focalnet_lobes.create_model(
        "focalnet_audio_small", num_classes=0, in_chans=1, global_pool="modulation"
    )
    classifier = SpectrogramClassifier(
        backbone, LinearHead(backbone.num_features, 4), GlobalFeatureNorm(64)
    ).eval()
    features = torch.rand(2, 1, 101, 64)
    stage_maps, modulators = backbone.forward_features(
        classifier.normalizer(features), return_modulators=True
    )
    logits = classifier.head(backbone.forward_head(stage_maps[-1], modulator=modulators[-1]))
    expected = to_input_grid(manual_gradcam(stage_maps[-1], logits), 101, 64, "bilinear")
    with torch.no_grad():
        got_logits, maps = GradCamInterpreter()(classifier, features)
    torch.testing.assert_close(got_logits, logits.detach(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(maps, expected, rtol=1e-4, atol=1e-6)


def test_gradcam_on_vit_uses_the_tokens_entering_the_last_block():
    classifier = real_classifier("vit_audio_small")
    features = torch.rand(2, 1, 101, 64)
    backbone = classifier.backbone
    normalized = classifier.normalizer(features)
    tokens = backbone.embed(normalized)
    for block in backbone.blocks[:-1]:
        tokens, _ = block(tokens)
    height, width = backbone.grid_size(101, 64)
    grid = tokens[:, 1:].transpose(1, 2).reshape(2, -1, height, width)
    out, _ = backbone.blocks[-1](torch.cat([tokens[:, :1], grid.flatten(2).transpose(1, 2)], 1))
    logits = classifier.head(backbone.forward_head(backbone.norm(out)))
    torch.testing.assert_close(logits, classifier(features), rtol=1e-4, atol=1e-5)
    expected = to_input_grid(manual_gradcam(grid, logits), 101, 64, "bilinear")
    with torch.no_grad():
        _, maps = GradCamInterpreter()(classifier, features)
    torch.testing.assert_close(maps, expected, rtol=1e-4, atol=1e-6)

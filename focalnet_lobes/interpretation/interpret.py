"""Interpretation maps on the spectrogram grid, and binary / soft masks from them.

Every interpretation method here turns a batch of features (B, 1, T, F) (``log1p``
or PCEN of the spectrogram)
into non-negative maps on the same T x F grid, so that one evaluator
(:func:`focalnet_lobes.interpretation.evaluation.evaluate_split`) serves them all:

* :class:`ModulationInterpreter`: by-design interpretation of a FocalNet, from the
  modulator (output of the 1x1 projection ``h`` of the last focal-modulation layer
  of a stage), reduced over channels by :func:`modulation_map`;
* :class:`AttentionInterpreter`: a ViT's class-token attention or attention
  rollout, :func:`attention_map`;
* :class:`RandomInterpreter`: i.i.d. uniform maps (per bin or per cell), the floor
  of every metric;
* :class:`EnergyInterpreter`: the input itself, the loudness floor;
* :class:`GradientSaliencyInterpreter`: ``|d logit_c / d features|`` (captum
  Saliency), a post-hoc control;
* :class:`GradCamInterpreter`: Grad-CAM on the last FocalNet stage / ViT block
  (captum LayerGradCam), a post-hoc control;
* :class:`InputWeightedInterpreter`: any of these maps times the input (the
  "x Input" of Gradient x Input), at the input's resolution;
* :class:`MapInterpreter`: the base class any other method (e.g. PIQ) subclasses.

Maps computed on a backbone's coarse grid are brought to the input grid by
:func:`to_input_grid`, and a map becomes a mask with :func:`quantile_mask`: keep
the bins at or above the clip's q-quantile. The mask acts on the features, so a
masked-out bin becomes 0, the feature of silence.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# The map reduction lives with the model layers (the FocalNet pools by it); re-exported here.
from focalnet_lobes.models.layers import MODULATION_REDUCTIONS, modulation_map  # noqa: F401

ATTENTION_METHODS = ("cls", "rollout")
UPSAMPLING_MODES = ("bilinear", "nearest")


def attention_map(attentions, grid_size, method="cls", layer=-1):
    """Class-token attention to the patches of a ViT, as a (B, h, w) map.

    The tokens are ``P`` prefix tokens (token 0 is the class token) followed by the
    N = h * w patch tokens in row-major order over the (h, w) grid, with
    P = N_tokens - N >= 1.

    * ``method="cls"``: the attention of the class token to each patch in layer
      ``layer``, averaged over heads: mean_heads A[0, P:].
    * ``method="rollout"`` (Abnar & Zuidema 2020): for each layer l up to
      ``layer``, average the heads, add the identity (the residual connection) and
      renormalise the rows, Â_l = (mean_heads A_l + I) / row sums; roll out
      R = Â_layer ... Â_1 Â_0 and take the class row over the patches, R[0, P:].

    Arguments
    ---------
    attentions : list of torch.Tensor
        Attention probabilities of each layer, (B, heads, N_tokens, N_tokens).
    grid_size : tuple of int
        (h, w) of the patch grid.
    method : str
        ``"cls"`` or ``"rollout"``.
    layer : int
        Last layer used (Python indexing: -1 is the last layer).

    Returns
    -------
    torch.Tensor
        (B, h, w), non-negative.

    Example
    -------
    >>> attention = torch.tensor([[0.2, 0.5, 0.3], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    >>> attentions = [attention.expand(1, 2, 3, 3)]  # 1 clip, 2 identical heads
    >>> attention_map(attentions, (1, 2))
    tensor([[[0.5000, 0.3000]]])
    >>> attention_map(attentions, (1, 2), method="rollout")
    tensor([[[0.2500, 0.1500]]])
    """
    if not isinstance(attentions, (list, tuple)) or len(attentions) == 0:
        raise ValueError("attention_map expects a non-empty list of attention tensors")
    if method not in ATTENTION_METHODS:
        raise ValueError(f"unknown method '{method}', expected one of {ATTENTION_METHODS}")
    if not -len(attentions) <= layer < len(attentions):
        raise ValueError(f"layer {layer} out of range for {len(attentions)} layers")
    height, width = (int(s) for s in grid_size)
    num_patches = height * width
    for index, attention in enumerate(attentions):
        if (
            attention.dim() != 4
            or attention.shape[-1] != attention.shape[-2]
            or attention.shape[-1] <= num_patches
        ):
            raise ValueError(
                f"attention of layer {index} must be (B, heads, N_tokens, N_tokens) "
                f"with N_tokens > h * w = {num_patches} (class token first), "
                f"got shape {tuple(attention.shape)}"
            )
    num_prefix = attentions[0].shape[-1] - num_patches
    last = layer % len(attentions)
    if method == "cls":
        class_row = attentions[last].mean(dim=1)[:, 0, num_prefix:]
    else:
        num_tokens = attentions[0].shape[-1]
        identity = torch.eye(
            num_tokens, dtype=attentions[0].dtype, device=attentions[0].device
        )
        rollout = None
        for attention in attentions[: last + 1]:
            joint = attention.mean(dim=1) + identity
            joint = joint / joint.sum(dim=-1, keepdim=True)
            rollout = joint if rollout is None else joint @ rollout
        class_row = rollout[:, 0, num_prefix:]
    return class_row.reshape(class_row.shape[0], height, width)


def infer_stride(grid_length, input_length):
    """The stride of a grid of ``grid_length`` cells covering ``input_length`` bins.

    A backbone that pads its input to a multiple of its stride S has
    ``grid_length = ceil(input_length / S)``. Several S can satisfy this; the power
    of two that does is preferred (FocalNet stages and the usual ViT patches),
    otherwise the smallest integer that does.

    Arguments
    ---------
    grid_length : int
        Number of cells h along the axis.
    input_length : int
        Number of input bins T along the axis.

    Returns
    -------
    int

    Example
    -------
    >>> infer_stride(14, 431), infer_stride(7, 101), infer_stride(31, 431)
    (32, 16, 14)
    """
    grid_length, input_length = int(grid_length), int(input_length)
    if grid_length < 1 or input_length < 1 or grid_length > input_length:
        raise ValueError(
            f"cannot map a grid of {grid_length} cells onto {input_length} input bins"
        )
    if grid_length == 1:
        return input_length
    for exponent in range(int(math.log2(input_length)) + 2):
        stride = 2**exponent
        if math.ceil(input_length / stride) == grid_length:
            return stride
    stride = math.ceil(input_length / grid_length)
    if math.ceil(input_length / stride) != grid_length:
        raise ValueError(
            f"no integer stride S gives ceil({input_length} / S) = {grid_length} "
            "cells; pass the stride explicitly"
        )
    return stride


def _pair(value, name):
    if isinstance(value, int):
        return value, value
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return int(value[0]), int(value[1])
    raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")


def to_input_grid(grid_map, num_frames, num_bins, mode="bilinear", stride=None):
    """Bring a (B, h, w) map on a backbone's grid to the (B, 1, T, F) input grid.

    Cell (i, j) of the grid covers input rows [i * S_t, (i + 1) * S_t) and columns
    [j * S_f, (j + 1) * S_f) of the input zero-padded to (h * S_t, w * S_f), where
    h = ceil(T / S_t), w = ceil(F / S_f). So the map is resized to exactly
    (h * S_t, w * S_f) (``align_corners=False``: cell centres land on block
    centres) and then cropped to its first T rows and F columns; the padding is
    dropped and every cell stays aligned with the input bins it saw. ``"nearest"``
    copies each cell onto its S_t x S_f block exactly; ``"bilinear"`` interpolates
    between cell centres. Both keep a non-negative map non-negative.

    Arguments
    ---------
    grid_map : torch.Tensor
        (B, h, w) map.
    num_frames : int
        T, number of input frames.
    num_bins : int
        F, number of input frequency bins.
    mode : str
        ``"bilinear"`` or ``"nearest"``.
    stride : int or tuple of int or None
        (S_t, S_f); ``None`` infers each with :func:`infer_stride`.

    Returns
    -------
    torch.Tensor
        (B, 1, T, F).

    Example
    -------
    >>> grid_map = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    >>> to_input_grid(grid_map, 3, 4, mode="nearest", stride=2)[0, 0]
    tensor([[1., 1., 2., 2.],
            [1., 1., 2., 2.],
            [3., 3., 4., 4.]])
    >>> to_input_grid(grid_map, 431, 64).shape
    torch.Size([1, 1, 431, 64])
    """
    if grid_map.dim() != 3:
        raise ValueError(f"grid_map must be (B, h, w), got shape {tuple(grid_map.shape)}")
    if mode not in UPSAMPLING_MODES:
        raise ValueError(f"unknown mode '{mode}', expected one of {UPSAMPLING_MODES}")
    height, width = grid_map.shape[-2:]
    if stride is None:
        stride_t = infer_stride(height, num_frames)
        stride_f = infer_stride(width, num_bins)
    else:
        stride_t, stride_f = _pair(stride, "stride")
    for cells, length, step, axis in (
        (height, num_frames, stride_t, "time"),
        (width, num_bins, stride_f, "frequency"),
    ):
        if step < 1 or math.ceil(length / step) != cells:
            raise ValueError(
                f"{axis}: {cells} cells of stride {step} do not cover {length} bins "
                f"(expected ceil({length} / {step}) cells)"
            )
    values = grid_map[:, None]
    if not values.is_floating_point():
        values = values.float()
    size = (height * stride_t, width * stride_f)
    if mode == "bilinear":
        values = F.interpolate(values, size=size, mode="bilinear", align_corners=False)
    else:
        values = F.interpolate(values, size=size, mode="nearest")
    return values[..., :num_frames, :num_bins]


def _as_clip_maps(maps, name="map"):
    """(B, T, F) or (B, 1, T, F) -> (B, 1, T, F) floating tensor."""
    if maps.dim() == 3:
        maps = maps[:, None]
    if maps.dim() != 4 or maps.shape[1] != 1:
        raise ValueError(f"{name} must be (B, 1, T, F) or (B, T, F), got shape {tuple(maps.shape)}")
    if not maps.is_floating_point():
        maps = maps.float()
    if torch.isnan(maps).any():
        raise ValueError(f"{name} contains NaN")
    return maps


def _no_spread(flat):
    """Per row: True where max - min is within a few ulps of the values (no ranking)."""
    low = flat.amin(dim=1)
    high = flat.amax(dim=1)
    scale = torch.maximum(high.abs(), low.abs())
    tolerance = 8 * torch.finfo(flat.dtype).eps * scale
    return low, high, (high - low) <= tolerance


def _min_max(flat):
    """Per row: ``(flat - min) / (max - min)`` in [0, 1], and which rows have no spread.

    A row with no spread (:func:`_no_spread`) cannot be ranked: it is all ones.
    """
    low, high, constant = _no_spread(flat)
    spread = torch.where(constant, torch.ones_like(high), high - low)
    scaled = ((flat - low[:, None]) / spread[:, None]).clamp(0.0, 1.0)
    return torch.where(constant[:, None], torch.ones_like(scaled), scaled), constant


def _next_order_statistic(flat, low_value, upper):
    """Per row, the order statistic v_(upper) given v_(upper - 1) = ``low_value`` (0-based).

    If more than ``upper`` values are <= v_(upper - 1) (ties), v_(upper) equals it;
    otherwise it is the smallest value above it. Equal to
    ``flat.kthvalue(upper + 1, dim=1).values`` for maps without NaN, for the cost of
    a comparison, a count and a minimum instead of a second selection.
    """
    above = flat > low_value[:, None]
    tied = (~above).sum(dim=1) > upper
    next_above = torch.where(above, flat, torch.full_like(flat, math.inf)).amin(dim=1)
    return torch.where(tied, low_value, next_above)


def _order_statistics(flat, lower, upper=True):
    """Per row, the order statistic v_(lower) (0-based) and, with ``upper``, v_(lower + 1).

    On the CPU with NumPy's ``np.partition`` at ``lower`` (a single-index
    selection, vectorised: about 10x faster than ``torch.kthvalue`` on a 431 x 64
    map), v_(lower + 1) being the smallest value of the partition's upper part;
    elsewhere ``kthvalue`` and :func:`_next_order_statistic`. The values are the
    map's own (exact in its dtype; detached). Without ``upper`` the second value is
    None and not computed (``lower`` may then be the last index).
    """
    values = flat.detach()
    if values.device.type == "cpu":
        exact = values if values.dtype in (torch.float32, torch.float64) else values.float()
        parts = np.partition(exact.numpy(), lower, axis=1)
        low_value = torch.from_numpy(parts[:, lower]).to(values.dtype)
        if not upper:
            return low_value, None
        return low_value, torch.from_numpy(parts[:, lower + 1:].min(axis=1)).to(values.dtype)
    low_value = values.kthvalue(lower + 1, dim=1).values
    return low_value, (_next_order_statistic(values, low_value, lower + 1) if upper else None)


def quantile_thresholds(maps, q):
    """Per-clip q-quantile of a map, with the linear interpolation of ``torch.quantile``.

    For the n values of a clip sorted ascending, v_(0) <= ... <= v_(n-1), and
    r = q (n - 1): threshold = v_(floor r) + (r - floor r) (v_(floor r + 1) - v_(floor r)).
    Computed by selection (:func:`_order_statistics`: NumPy's partition on the
    CPU, ``kthvalue`` and a masked minimum elsewhere), so it has no size limit
    (unlike ``torch.quantile``) and works for 431 x 513 maps.

    Arguments
    ---------
    maps : torch.Tensor
        (B, ...) maps; everything after the batch axis is one clip.
    q : float
        Quantile in [0, 1].

    Returns
    -------
    torch.Tensor
        (B,) thresholds, detached, in the maps' floating dtype and on their device.

    Example
    -------
    >>> quantile_thresholds(torch.tensor([[0.0, 1.0, 2.0, 3.0, 4.0]]), 0.3)
    tensor([1.2000])
    """
    q = float(q)
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile q must be in [0, 1], got {q}")
    flat = maps.reshape(maps.shape[0], -1)
    if not flat.is_floating_point():
        flat = flat.float()
    count = flat.shape[1]
    if count == 0:
        raise ValueError("cannot take the quantile of an empty map")
    position = q * (count - 1)
    lower = min(int(math.floor(position)), count - 1)
    fraction = position - lower  # > 0 only when lower + 1 < count
    low_value, high_value = _order_statistics(flat, lower, upper=fraction > 0.0)
    if fraction == 0.0:
        return low_value
    threshold = low_value + fraction * (high_value - low_value)
    return torch.minimum(threshold, high_value)


def quantile_mask(maps, q, soft=False):
    """Mask keeping the bins of each clip at or above the clip's q-quantile.

    Binary (default): M = 1[map >= t_q], with t_q the per-clip q-quantile of the
    map (:func:`quantile_thresholds`). For a map with distinct values the mask
    keeps a fraction ~(1 - q) of the bins; ties at the threshold are all kept.

    Soft: M = 1[map >= t_q] * (map - min) / (max - min), the per-clip min-max
    normalised map zeroed below the quantile (``q=0`` gives the normalised map
    itself); values in [0, 1].

    A map with no spread (max - min within 8 ulps of its magnitude, e.g. an
    all-zero map of a silent clip) cannot rank its bins: its mask is all ones (the
    whole input is kept), binary or soft. The result never contains NaN.

    Arguments
    ---------
    maps : torch.Tensor
        (B, 1, T, F) or (B, T, F) maps.
    q : float
        Quantile in [0, 1].
    soft : bool
        Soft mask instead of binary.

    Returns
    -------
    torch.Tensor
        (B, 1, T, F) mask with the map's floating dtype.

    Example
    -------
    >>> maps = torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[5.0, 5.0], [5.0, 5.0]]])
    >>> quantile_mask(maps, 0.5)[:, 0]
    tensor([[[0., 0.],
             [1., 1.]],
    <BLANKLINE>
            [[1., 1.],
             [1., 1.]]])
    >>> quantile_mask(maps, 0.5, soft=True)[0, 0]
    tensor([[0.0000, 0.0000],
            [0.6667, 1.0000]])
    """
    maps = _as_clip_maps(maps)
    flat = maps.reshape(maps.shape[0], -1)
    threshold = quantile_thresholds(flat, q)
    keep = (flat >= threshold[:, None]).to(flat.dtype)
    if soft:
        scaled, constant = _min_max(flat)
        keep = keep * scaled
    else:  # the hard mask needs only which clips have no spread
        constant = _no_spread(flat)[2]
    keep = torch.where(constant[:, None], torch.ones_like(keep), keep)
    return keep.reshape(maps.shape)


def _check_features(features):
    if not isinstance(features, torch.Tensor):
        raise ValueError(f"features must be a torch.Tensor, got {type(features).__name__}")
    if features.dim() != 4 or features.shape[1] != 1:
        raise ValueError(
            f"features must be (B, 1, T, F) spectrogram features, "
            f"got shape {tuple(features.shape)}"
        )
    return features


def _forward_with_maps(classifier, features, needed, method):
    """Run ``classifier.forward_with_maps`` and check it exposes the ``needed`` maps."""
    if not hasattr(classifier, "forward_with_maps"):
        raise ValueError(
            f"{method} needs a classifier with forward_with_maps (a "
            f"SpectrogramClassifier), got {type(classifier).__name__}"
        )
    logits, maps = classifier.forward_with_maps(features)
    missing = [key for key in needed if key not in maps]
    if missing:
        raise ValueError(
            f"{method} needs the backbone's {missing} maps, but "
            f"{type(getattr(classifier, 'backbone', classifier)).__name__} exposes "
            f"{sorted(maps)}"
        )
    return logits, maps


class MapInterpreter(nn.Module):
    """Base of every interpretation method: features -> (logits, maps on the input grid).

    ``interpreter(classifier, features)`` checks the features (B, 1, T, F), calls
    :meth:`compute_maps` and checks that it returned logits (B, K) of the full
    input and non-negative maps (B, 1, T, F). Subclasses implement
    :meth:`compute_maps`; being an ``nn.Module``, a trained interpreter (PIQ) can
    hold parameters and be checkpointed.

    Arguments
    ---------
    upsampling : str
        Mode of :func:`to_input_grid` for maps computed on a coarser grid.

    Example
    -------
    >>> class EnergyInterpreter(MapInterpreter):
    ...     def compute_maps(self, classifier, features):
    ...         return classifier(features), features.clone()
    >>> classifier = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    >>> logits, maps = EnergyInterpreter()(classifier, torch.rand(2, 1, 3, 4))
    >>> logits.shape, maps.shape
    (torch.Size([2, 3]), torch.Size([2, 1, 3, 4]))
    """

    name = "map"

    def __init__(self, upsampling="bilinear"):
        super().__init__()
        if upsampling not in UPSAMPLING_MODES:
            raise ValueError(
                f"unknown upsampling '{upsampling}', expected one of {UPSAMPLING_MODES}"
            )
        self.upsampling = upsampling

    def compute_maps(self, classifier, features):
        """Return ``(logits, maps)`` for ``features`` (B, 1, T, F); see the class."""
        raise NotImplementedError

    def forward(self, classifier, features):
        """``(logits (B, K), maps (B, 1, T, F) >= 0)`` of ``classifier`` on ``features``."""
        features = _check_features(features)
        logits, maps = self.compute_maps(classifier, features)
        if maps.shape != features.shape:
            raise ValueError(
                f"{type(self).__name__} returned maps of shape {tuple(maps.shape)}, "
                f"expected {tuple(features.shape)}"
            )
        if logits.dim() != 2 or logits.shape[0] != features.shape[0]:
            raise ValueError(
                f"{type(self).__name__} returned logits of shape {tuple(logits.shape)}, "
                f"expected ({features.shape[0]}, num_classes)"
            )
        return logits, maps

    def _to_input_grid(self, grid_map, features, stride=None):
        return to_input_grid(
            grid_map, features.shape[-2], features.shape[-1], self.upsampling, stride
        )


class ModulationInterpreter(MapInterpreter):
    """FocalNet by design: the modulator of a stage, reduced over channels.

    One forward pass (``classifier.forward_with_maps``) gives the logits and the
    modulators; :func:`modulation_map` reduces the chosen stage over channels and
    :func:`to_input_grid` brings it to the input grid. Signed reductions
    (``"mean"``, ``"max"``) are shifted by their per-clip minimum on the input grid
    so the map is non-negative (the ranking, hence every quantile mask, is unchanged). The maps
    stay in the autograd graph when gradients are enabled.

    Arguments
    ---------
    stage : int
        Stage whose modulator is used (-1: last, as in the paper).
    reduction : str
        See :func:`modulation_map`.
    upsampling : str
        See :func:`to_input_grid`.
    stride : int or tuple of int or None
        Total stride of that stage; ``None`` infers it from the grid size.

    Example
    -------
    >>> import focalnet_lobes
    >>> from focalnet_lobes.models.classifier import SpectrogramClassifier
    >>> from focalnet_lobes.models.heads import LinearHead
    >>> backbone = focalnet_lobes.create_model(
    ...     "focalnet_audio_small", num_classes=0, in_chans=1
    ... )
    >>> classifier = SpectrogramClassifier(
    ...     backbone, LinearHead(backbone.num_features, 5)
    ... ).eval()
    >>> logits, maps = ModulationInterpreter()(classifier, torch.rand(2, 1, 101, 64))
    >>> logits.shape, maps.shape
    (torch.Size([2, 5]), torch.Size([2, 1, 101, 64]))
    """

    name = "modulation"

    def __init__(self, stage=-1, reduction="l2", upsampling="bilinear", stride=None):
        super().__init__(upsampling)
        if reduction not in MODULATION_REDUCTIONS:
            raise ValueError(
                f"unknown reduction '{reduction}', expected one of {MODULATION_REDUCTIONS}"
            )
        self.stage = stage
        self.reduction = reduction
        self.stride = stride

    def compute_maps(self, classifier, features):
        """Logits and upsampled modulation maps of one forward pass."""
        logits, maps = _forward_with_maps(
            classifier, features, ["modulators"], type(self).__name__
        )
        grid_map = modulation_map(maps["modulators"], self.stage, self.reduction)
        input_map = self._to_input_grid(grid_map, features, self.stride)
        if self.reduction in ("mean", "max"):
            input_map = input_map - input_map.flatten(1).amin(dim=1)[:, None, None, None]
        return logits, input_map


class ModulationContributionInterpreter(MapInterpreter):
    """FocalNet by design, class-specific: each position's share of the predicted logit.

    The last stage is pooled as ``sum_p w_p t_p`` (final-norm tokens ``t_p``,
    weights ``w_p`` from the modulation map with ``global_pool="modulation"``,
    1 / (h w) with ``"avg"``; :meth:`~focalnet_lobes.FocalNet.pooling_terms`)
    and a linear head gives ``logit_c = sum_p w_p (W_c . t_p) + b_c``. The map
    of a clip is ``w_p (W_c . t_p)`` for its predicted class c: an exact
    decomposition of the logit over the last stage's grid, computed from the
    forward pass itself (no gradient, no training). A cosine head (the paper's,
    :class:`~focalnet_lobes.models.heads.CosineHead`) decomposes exactly too, in
    evaluation mode: each head gives its terms (``logit_terms``). It is the class activation
    map (Zhou et al., "Learning Deep Features for Discriminative Localization",
    CVPR 2016) with the modulation weights in place of the uniform mean; the
    class-agnostic modulation map is :class:`ModulationInterpreter`. Signed: it
    is shifted by its per-clip minimum on the input grid (the ranking, hence
    every quantile mask, is unchanged).

    Arguments
    ---------
    upsampling : str
        See :func:`to_input_grid`.
    stride : int or tuple of int or None
        Total stride of the last stage; ``None`` infers it from the grid size.

    Raises
    ------
    ValueError
        A backbone other than a FocalNet, or a head without ``logit_terms``
        (the decomposition needs a head whose logit splits over positions).

    Example
    -------
    >>> import focalnet_lobes
    >>> from focalnet_lobes.models.classifier import SpectrogramClassifier
    >>> from focalnet_lobes.models.heads import LinearHead
    >>> backbone = focalnet_lobes.create_model(
    ...     "focalnet_audio_small", num_classes=0, in_chans=1, global_pool="modulation"
    ... )
    >>> classifier = SpectrogramClassifier(backbone, LinearHead(backbone.num_features, 5)).eval()
    >>> features = torch.rand(2, 1, 101, 64)
    >>> logits, maps = ModulationContributionInterpreter()(classifier, features)
    >>> maps.shape, bool((maps >= 0).all())
    (torch.Size([2, 1, 101, 64]), True)
    >>> grid = ModulationContributionInterpreter.contributions(classifier, features)[1]
    >>> bias = classifier.head.fc.bias[logits.argmax(1)]
    >>> torch.allclose(grid.sum((1, 2)) + bias, logits.max(1).values, atol=1e-4)
    True
    >>> from focalnet_lobes.models.heads import CosineHead
    >>> cosine = SpectrogramClassifier(backbone, CosineHead(backbone.num_features, 5, lin_blocks=1)).eval()
    >>> logits, grid = ModulationContributionInterpreter.contributions(cosine, features)
    >>> torch.allclose(grid.sum((1, 2)), logits.max(1).values, atol=1e-4)
    True
    """

    name = "modulation_contribution"

    def __init__(self, upsampling="bilinear", stride=None):
        super().__init__(upsampling)
        self.stride = stride

    @staticmethod
    def contributions(classifier, features):
        """Logits (B, K) and the predicted class's per-position logit terms (B, h, w)."""
        logits, maps = _forward_with_maps(
            classifier, features, ["modulators", "stage_maps"], "ModulationContributionInterpreter"
        )
        head = getattr(classifier, "head", None)
        if not callable(getattr(head, "logit_terms", None)):
            raise ValueError(
                "ModulationContributionInterpreter needs a head whose logit splits over "
                f"positions (LinearHead or CosineHead), got {type(head).__name__}"
            )
        tokens, weights = classifier.backbone.pooling_terms(
            maps["stage_maps"][-1], maps["modulators"][-1]
        )
        return logits, head.logit_terms(tokens.float(), weights.float(), logits.argmax(dim=1))

    def compute_maps(self, classifier, features):
        """Logits and the upsampled, min-shifted contribution maps of one forward pass."""
        logits, grid = self.contributions(classifier, features)
        input_map = self._to_input_grid(grid, features, self.stride)
        input_map = input_map - input_map.flatten(1).amin(dim=1)[:, None, None, None]
        return logits, input_map


class AttentionInterpreter(MapInterpreter):
    """ViT: class-token attention to the patches (or its rollout) on the input grid.

    Arguments
    ---------
    method : str
        ``"cls"`` or ``"rollout"``, see :func:`attention_map`.
    layer : int
        Layer (``"cls"``) or last layer rolled out (``"rollout"``).
    upsampling : str
        See :func:`to_input_grid`.
    stride : int or tuple of int or None
        Patch size; ``None`` infers it from the grid size.

    Example
    -------
    >>> import focalnet_lobes
    >>> from focalnet_lobes.models.classifier import SpectrogramClassifier
    >>> from focalnet_lobes.models.heads import LinearHead
    >>> backbone = focalnet_lobes.create_model("vit_audio_small", num_classes=0, in_chans=1)
    >>> classifier = SpectrogramClassifier(
    ...     backbone, LinearHead(backbone.num_features, 5)
    ... ).eval()
    >>> interpreter = AttentionInterpreter(method="rollout")
    >>> logits, maps = interpreter(classifier, torch.rand(2, 1, 101, 64))
    >>> maps.shape, bool((maps >= 0).all())
    (torch.Size([2, 1, 101, 64]), True)
    """

    name = "attention"

    def __init__(self, method="cls", layer=-1, upsampling="bilinear", stride=None):
        super().__init__(upsampling)
        if method not in ATTENTION_METHODS:
            raise ValueError(f"unknown method '{method}', expected one of {ATTENTION_METHODS}")
        self.method = method
        self.layer = layer
        self.stride = stride

    def compute_maps(self, classifier, features):
        """Logits and upsampled attention maps of one forward pass."""
        logits, maps = _forward_with_maps(
            classifier, features, ["attentions", "grid_size"], type(self).__name__
        )
        grid_map = attention_map(
            maps["attentions"], maps["grid_size"], self.method, self.layer
        )
        return logits, self._to_input_grid(grid_map, features, self.stride)


class RandomInterpreter(MapInterpreter):
    """Uniform random maps on the input grid: the floor every method must beat.

    By default every bin gets its own i.i.d. value. With ``cell_size=(t, f)`` the
    values are drawn per cell of t frames x f bins and repeated over the cell, so the
    random masks have the granularity of a method whose map lives on a coarser grid
    (e.g. the (16, 16) cells of a stride-16 FocalNet stage): this control separates
    what a map's *content* is worth from what its *granularity* does to the metrics.
    Values are distinct (almost surely), so at quantile q the mask keeps a fraction
    ~(1 - q) of the bins (up to one cell), the same area as any other method's mask.
    The maps come from an own generator seeded with ``seed``: a new interpreter gives
    the same sequence of maps, whatever the global random state.

    Arguments
    ---------
    seed : int
        Seed of the generator.
    cell_size : tuple of int or None
        (frames, bins) of the cells that share one random value; None: every bin.

    Example
    -------
    >>> classifier = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    >>> features = torch.rand(2, 1, 3, 4)
    >>> _, maps = RandomInterpreter(seed=0)(classifier, features)
    >>> _, again = RandomInterpreter(seed=0)(classifier, features)
    >>> maps.shape, bool(torch.equal(maps, again))
    (torch.Size([2, 1, 3, 4]), True)
    >>> _, cells = RandomInterpreter(seed=0, cell_size=(2, 2))(classifier, features)
    >>> bool(torch.equal(cells[..., 0, 0], cells[..., 1, 1]))
    True
    """

    name = "random"

    def __init__(self, seed=0, cell_size=None):
        super().__init__()
        if cell_size is not None:
            cell_size = tuple(int(c) for c in cell_size)
            if len(cell_size) != 2 or min(cell_size) < 1:
                raise ValueError(f"cell_size must be two positive ints, got {cell_size}")
        self.seed = seed
        self.cell_size = cell_size
        self.generator = torch.Generator().manual_seed(seed)

    def reset(self):
        """Restart the sequence of maps from the seed."""
        self.generator.manual_seed(self.seed)

    def compute_maps(self, classifier, features):
        """Logits of the full input and uniform random maps."""
        logits = classifier(features)
        if self.cell_size is None:
            maps = torch.rand(features.shape, generator=self.generator, dtype=torch.float32)
        else:
            frames, bins = features.shape[-2:]
            cell_t, cell_f = self.cell_size
            grid = (features.shape[0], 1, -(-frames // cell_t), -(-bins // cell_f))
            cells = torch.rand(grid, generator=self.generator, dtype=torch.float32)
            maps = cells.repeat_interleave(cell_t, 2).repeat_interleave(cell_f, 3)
            maps = maps[..., :frames, :bins]
        return logits, maps.to(device=features.device, dtype=features.dtype)


class EnergyInterpreter(MapInterpreter):
    """Control: the input log-spectrogram itself as the map (the loudness floor).

    The mask at quantile q keeps the loudest (1 - q) of the bins of each clip. A
    method that does not beat this control explains no more than "where the
    energy is". Model-agnostic (FocalNet, ViT or any classifier). On PCEN
    features (``compression: pcen``) the map is the normalized energy (energy
    against its recent average per band: onsets), not loudness.

    Example
    -------
    >>> classifier = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    >>> features = torch.rand(2, 1, 3, 4)
    >>> logits, maps = EnergyInterpreter()(classifier, features)
    >>> bool(torch.equal(maps, features)), logits.shape
    (True, torch.Size([2, 3]))
    """

    name = "energy"

    def compute_maps(self, classifier, features):
        """Logits of the full input and the features themselves (clamped at 0)."""
        return classifier(features), features.detach().clamp_min(0.0).clone()


class InputWeightedInterpreter(MapInterpreter):
    """Another interpreter's map times the input, bin by bin: ``norm(map) * clamp(X, 0)`` (and tie-breaks).

    The map of ``interpreter`` is min-max normalised per clip to [0, 1] and
    multiplied by the input log-spectrogram (clamped at 0, as
    :class:`EnergyInterpreter` takes it): a quantile mask then keeps the bins that
    the method rates high *and* that carry energy, at the input's resolution
    (a FocalNet's last-stage map is one value per 8 x 8 or 16 x 16 bins). It is
    the "x Input" of Gradient x Input (Shrikumar et al., "Not Just a Black Box:
    Learning Important Features Through Propagating Activation Differences",
    2016; Ancona et al., ICLR 2018) applied to any map. The logits are the wrapped
    interpreter's (one forward pass for the by-design maps); a clip whose map is
    constant gets the input itself as its map.

    Silent bins (input 0, e.g. the digital silence that pads many ESC-50 clips)
    would all tie at 0 with the sounding bins the map rates 0, and
    :func:`quantile_mask` keeps ties: a clip that is 92% silence would get a mask
    of every bin at q = 0.9. Two tie-breaks keep the budget of 1 - q of the bins:
    the map is ``(norm(map) + eps) * X + eps**2 * norm(map)`` with ``eps = 1e-3``,
    so every bin with energy above ``eps`` ranks above every silent bin, and the
    silent bins rank by the map. When the sound covers less than 1 - q of the
    bins the mask then keeps all of it (as the energy control does) plus the
    silent bins the map rates highest, which change no masked input.

    Arguments
    ---------
    interpreter : MapInterpreter
        The method whose map is weighted (e.g. :class:`ModulationContributionInterpreter`).

    Example
    -------
    >>> class Halves(MapInterpreter):
    ...     def compute_maps(self, classifier, features):
    ...         maps = torch.zeros_like(features)
    ...         maps[..., 2:] = 4.0  # the right half
    ...         return classifier(features), maps
    >>> classifier = nn.Sequential(nn.Flatten(), nn.Linear(8, 3))
    >>> features = torch.tensor([[[[1.0, 5.0, 2.0, 3.0], [0.0, 1.0, -1.0, 6.0]]]])
    >>> logits, maps = InputWeightedInterpreter(Halves())(classifier, features)
    >>> maps[0, 0].round(decimals=1)  # (1 + 1e-3) x the input where the map is 1
    tensor([[0., 0., 2., 3.],
            [0., 0., 0., 6.]])
    >>> bool(maps[0, 0, 1, 2] > maps[0, 0, 1, 0])  # silent bins ranked by the map
    True
    """

    #: eps of the tie-breaks (see the class): sounding bins first, silent ones by the map.
    TIE_BREAK = 1e-3

    def __init__(self, interpreter):
        super().__init__()
        self.interpreter = interpreter
        self.name = f"{getattr(interpreter, 'name', 'map')}_x_input"

    def compute_maps(self, classifier, features):
        """Logits of the wrapped interpreter and its normalised map times the clamped input."""
        logits, maps = self.interpreter(classifier, features)
        normalised, _ = _min_max(maps.detach().float().flatten(1))  # a constant map: all ones
        energy = features.detach().float().clamp_min(0.0).flatten(1)
        eps = self.TIE_BREAK
        maps = (normalised + eps) * energy + eps * eps * normalised
        return logits, maps.view_as(features).to(features.dtype)


class GradientSaliencyInterpreter(MapInterpreter):
    """Post-hoc saliency |d logit_c / d features|, c the class predicted on the input.

    Implemented with captum's :class:`captum.attr.Saliency` (Simonyan, Vedaldi &
    Zisserman, "Deep inside convolutional networks", 2014, eq. 2). One forward
    pass for the prediction, one forward and backward pass for the gradients
    (enabled inside even under ``torch.no_grad()``); each clip gets its own
    gradient because the clips of an evaluation-mode batch do not interact. Maps
    and logits are detached. Model-agnostic.

    Example
    -------
    >>> classifier = nn.Sequential(nn.Flatten(), nn.Linear(4, 2, bias=False))
    >>> with torch.no_grad():
    ...     _ = classifier[1].weight.copy_(torch.tensor([[1.0, -2, 0, 0], [0, 0, 0, 3]]))
    >>> logits, maps = GradientSaliencyInterpreter()(classifier, torch.ones(1, 1, 2, 2))
    >>> maps[0, 0]
    tensor([[0., 0.],
            [0., 3.]])
    """

    name = "gradient"

    def compute_maps(self, classifier, features):
        """Logits and absolute input gradients of the predicted logit."""
        from captum.attr import Saliency

        with torch.no_grad():
            logits = classifier(features)
        predicted = logits.argmax(dim=1)
        with torch.enable_grad():
            inputs = features.detach().clone().requires_grad_(True)
            gradient = Saliency(classifier).attribute(inputs, target=predicted, abs=True)
        return logits.detach(), gradient.detach().to(features.dtype)


class _GradCamForward(nn.Module):
    """The classifier's forward with an identity ``tap`` on an NCHW grid (for LayerGradCam).

    FocalNet: the output of the last stage (B, C, h, w), before the final norm and
    the pooling. ViT: the patch tokens entering the last block, reshaped to the
    patch grid (B, D, h, w) (the class token after the last block does not depend
    on the patch tokens it outputs, so the tap is on that block's input, as in
    the usual ViT Grad-CAM).
    """

    def __init__(self, classifier):
        super().__init__()
        self.classifier = classifier
        self.tap = nn.Identity()

    def forward(self, features):
        classifier = self.classifier
        backbone = classifier.backbone
        normalized = classifier.normalizer(features)
        if classifier.kind == "focalnet":
            # The modulator of this same pass: modulation pooling weighs by it
            # (the gradient flows through the tapped map and the pooling weights).
            stage_maps, modulators = backbone.forward_features(normalized, return_modulators=True)
            return classifier.head(backbone.forward_head(
                self.tap(stage_maps[-1]), modulator=modulators[-1]
            ))
        grid_h, grid_w = backbone.grid_size(normalized.shape[-2], normalized.shape[-1])
        tokens = backbone.embed(normalized)
        for block in backbone.blocks[:-1]:
            tokens, _ = block(tokens)
        prefix = backbone.num_prefix_tokens
        patches = tokens[:, prefix:].transpose(1, 2).reshape(
            tokens.shape[0], tokens.shape[2], grid_h, grid_w
        )
        patches = self.tap(patches).flatten(2).transpose(1, 2)
        tokens, _ = backbone.blocks[-1](torch.cat([tokens[:, :prefix], patches], dim=1))
        return classifier.head(backbone.forward_head(backbone.norm(tokens)))


class GradCamInterpreter(MapInterpreter):
    """Post-hoc Grad-CAM of the predicted class on the model's last grid, via captum.

    Grad-CAM (Selvaraju et al., ICCV 2017, eqs. 1-2): channel weights are the
    spatial means of d logit_c / d A over the last feature grid A, and the map is
    ReLU(sum_k w_k A_k), computed by :class:`captum.attr.LayerGradCam` on the last
    stage of a FocalNet or on the patch tokens entering the last block of a ViT
    (reshaped to the patch grid), then brought to the input grid by
    :func:`to_input_grid`.

    Arguments
    ---------
    upsampling : str
        See :func:`to_input_grid`.

    Example
    -------
    >>> import focalnet_lobes
    >>> from focalnet_lobes.models.classifier import SpectrogramClassifier
    >>> from focalnet_lobes.models.heads import LinearHead
    >>> for name in ("focalnet_audio_small", "vit_audio_small"):
    ...     backbone = focalnet_lobes.create_model(name, num_classes=0, in_chans=1)
    ...     classifier = SpectrogramClassifier(
    ...         backbone, LinearHead(backbone.num_features, 5)
    ...     ).eval()
    ...     features = torch.rand(2, 1, 101, 64)
    ...     logits, maps = GradCamInterpreter()(classifier, features)
    ...     print(maps.shape, bool((maps >= 0).all()),
    ...           bool(torch.allclose(logits, classifier(features), atol=1e-5)))
    torch.Size([2, 1, 101, 64]) True True
    torch.Size([2, 1, 101, 64]) True True
    """

    name = "gradcam"

    def compute_maps(self, classifier, features):
        """Logits and upsampled Grad-CAM maps of the predicted class."""
        from captum.attr import LayerGradCam

        kind = getattr(classifier, "kind", "other")
        if kind not in ("focalnet", "vit"):
            raise ValueError(
                "GradCamInterpreter needs a SpectrogramClassifier with a FocalNet or ViT "
                f"backbone, got {type(getattr(classifier, 'backbone', classifier)).__name__}"
            )
        wrapped = _GradCamForward(classifier)
        with torch.no_grad():
            logits = classifier(features)
        predicted = logits.argmax(dim=1)
        with torch.enable_grad():
            inputs = features.detach().clone().requires_grad_(True)
            grid_map = LayerGradCam(wrapped, wrapped.tap).attribute(
                inputs, target=predicted, relu_attributions=True
            )
        grid_map = grid_map.detach().to(features.dtype).clamp_min(0.0)[:, 0]
        return logits.detach(), self._to_input_grid(grid_map, features)

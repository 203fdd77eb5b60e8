"""Focal Modulation Networks (FocalNet) that expose their modulators.

A re-implementation of microsoft/FocalNet (Yang et al., "Focal Modulation Networks",
NeurIPS 2022; ``classification/focalnet.py``) for spectrograms as well as images:

* every option of the reference (focal levels/windows/factor, convolutional embedding,
  layer scale, post-norm, post-norm in the modulation, modulator normalisation,
  patch size, gradient checkpointing) is a constructor argument, and any number of
  stages is allowed;
* inputs of any height and width: where a stride needs it, the feature map entering a
  (patch-embedding or downsampling) convolution is zero-padded on the right/bottom,
  exactly as Hugging Face transformers does, so stage ``s`` has the grid
  ``ceil(H / stride_s) x ceil(W / stride_s)``. The padding only ever feeds the strided
  convolution: no grid position of any stage is made of padding alone, hence the
  global context of the focal modulation and the final average pooling only see real
  positions;
* ``stem="cnn"`` swaps the patch embedding for a small :class:`~focalnet_lobes.models.stems.ConvStem`
  (for training from scratch on small audio datasets);
* :meth:`FocalNet.forward_features` returns the per-stage feature maps and, on
  request, the per-stage **modulators** (output of ``h`` in the reference), which are
  the by-design interpretation maps of FocalNet.

Every forward pass is a pure function of its input and the parameters: the layers
keep nothing of a call (the modulators and gates are *returned*, never stored on the
modules), so one model can serve concurrent calls (threads) and a result never
depends on an earlier call.

Layout and speed: inside the stages tensors are kept channels-last (B, H, W, C): the
LayerNorms normalise the contiguous last dimension, and the pointwise projections
(:class:`PointwiseLinear`), the depthwise focal convolutions and the strided patch
convolutions all run on the ``channels_last`` (B, C, H, W) view of that memory, with
no layout copy, on oneDNN kernels (bias fused). Pointwise projections are
``nn.Linear`` parameters, as in microsoft/FocalNet and transformers; the other
convolutions keep the reference's shapes, so that checkpoints convert by renaming
(see :func:`focalnet_lobes.models.convert.convert_focalnet`).
Maps handed out (stage maps, modulators, gates) have the NCHW *shape* (B, C, h, w);
their memory is channels-last, so use ``reshape`` rather than ``view`` on them.

Named configurations ``focalnet_{tiny,small,base}_{srf,lrf}`` (ImageNet) and
``focalnet_audio_small`` (CNN stem, 3 stages, for CPU training) are registered on
import (see :func:`focalnet_lobes.models.registry.create_model`).
"""


import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from focalnet_lobes.models.layers import DropPath, modulation_map
from focalnet_lobes.models.registry import register_model
from focalnet_lobes.models.stems import ConvStem

__all__ = [
    "DropPath",
    "FocalModulation",
    "FocalNet",
    "FocalNetBlock",
    "FocalNetStage",
    "Mlp",
    "PatchEmbed",
    "PointwiseLinear",
    "pointwise_linear",
]


def _pad_to_multiple(x_nchw, multiple):
    """Zero-pad the last two dims of ``x_nchw`` on the right/bottom to a multiple."""
    pad_height = -x_nchw.shape[-2] % multiple
    pad_width = -x_nchw.shape[-1] % multiple
    if pad_height or pad_width:
        x_nchw = F.pad(x_nchw, (0, pad_width, 0, pad_height))
    return x_nchw


def pointwise_linear(x, weight, bias=None):
    """``F.linear(x, weight, bias)`` over the channels of a channels-last map.

    On a CPU tensor (B, H, W, C) the product is computed as a 1x1 convolution of
    the (B, C, H, W) ``channels_last`` view: oneDNN fuses the bias into the matrix
    product and its kernels beat the BLAS ``addmm`` path of ``F.linear`` on CPU.
    The result is the same linear map; other inputs go through ``F.linear``.

    Arguments
    ---------
    x : torch.Tensor
        Input (..., C_in), typically (B, H, W, C_in).
    weight : torch.Tensor
        (C_out, C_in) weight.
    bias : torch.Tensor or None
        (C_out,) bias.

    Returns
    -------
    torch.Tensor
        (..., C_out).

    Example
    -------
    >>> x, weight, bias = torch.randn(2, 5, 6, 8), torch.randn(4, 8), torch.randn(4)
    >>> torch.allclose(pointwise_linear(x, weight, bias), F.linear(x, weight, bias), atol=1e-5)
    True
    """
    if x.ndim == 4 and x.device.type == "cpu":
        kernel = weight[:, :, None, None]
        return F.conv2d(x.permute(0, 3, 1, 2), kernel, bias).permute(0, 2, 3, 1)
    return F.linear(x, weight, bias)


class PointwiseLinear(nn.Linear):
    """``nn.Linear`` on the channels of a channels-last map, fast on CPU.

    Parameters and state dict are those of ``nn.Linear``; the product is
    :func:`pointwise_linear` (a oneDNN 1x1 convolution with fused bias on CPU).

    Example
    -------
    >>> layer = PointwiseLinear(8, 4)
    >>> x = torch.randn(2, 5, 6, 8)
    >>> torch.allclose(layer(x), torch.nn.functional.linear(x, layer.weight, layer.bias), atol=1e-6)
    True
    """

    def forward(self, x):
        """Apply the linear map to the last dimension of ``x``."""
        return pointwise_linear(x, self.weight, self.bias)


class Mlp(nn.Module):
    """Two-layer perceptron with GELU applied on the last (channel) dimension.

    Arguments
    ---------
    dim : int
        Input and output channels.
    hidden_dim : int
        Hidden channels.
    drop : float
        Dropout after the activation and after the second layer.

    Example
    -------
    >>> mlp = Mlp(8, 32)
    >>> mlp(torch.randn(2, 5, 7, 8)).shape
    torch.Size([2, 5, 7, 8])
    """

    def __init__(self, dim, hidden_dim, drop=0.0):
        super().__init__()
        self.fc1 = PointwiseLinear(dim, hidden_dim)
        self.fc2 = PointwiseLinear(hidden_dim, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x):
        """Apply the MLP to channels-last ``x`` (..., dim)."""
        return self.drop(self.fc2(self.drop(F.gelu(self.fc1(x)))))


class FocalModulation(nn.Module):
    """Focal modulation: a query modulated by gated, hierarchical context.

    For an input ``x`` (B, H, W, C) the layer computes

    1. ``query, context, gates = input_proj(x)`` (reference: ``f``), with
       ``gates`` holding ``focal_level + 1`` maps;
    2. ``focal_level`` hierarchical contexts ``context_l = GELU(dwconv_l(context_{l-1}))``
       with depthwise kernels of size ``focal_factor * l + focal_window``
       (reference: ``focal_layers``), plus a global context
       ``GELU(mean_{H,W}(context_L))``;
    3. gated aggregation ``sum_l gates_l * context_l`` (divided by ``focal_level + 1``
       when ``normalize_modulator``);
    4. the **modulator** ``modulator_proj(aggregate)`` (reference: ``h``, a 1x1
       convolution, here the equivalent linear layer);
    5. ``output_proj(query * modulator)`` (reference: ``proj``), with an optional
       LayerNorm before it (``use_postln_in_modulation``, reference: ``ln``).

    With ``return_maps=True`` the forward also returns the ``modulator`` (B, C,
    H, W) and the ``gates`` (B, focal_level + 1, H, W) of that call (nothing is
    stored on the layer). They are **not detached**: they are the very tensors
    used downstream, so gradients can be taken with respect to them (e.g. for
    gradient-weighted saliency). Their memory is channels-last (use
    ``reshape``, not ``view``).

    Arguments
    ---------
    dim : int
        Channels C.
    focal_window : int
        Kernel size of the first focal level.
    focal_level : int
        Number of hierarchical (depthwise convolution) context levels L.
    focal_factor : int
        Kernel size increment from one level to the next.
    bias : bool
        Whether ``input_proj`` and ``modulator_proj`` have biases.
    proj_drop : float
        Dropout after ``output_proj``.
    use_postln_in_modulation : bool
        LayerNorm on ``query * modulator`` before ``output_proj``.
    normalize_modulator : bool
        Divide the aggregated context by ``focal_level + 1``.
    norm_layer : callable
        Builds the normalisation layer from the number of channels.

    Example
    -------
    >>> modulation = FocalModulation(16, focal_window=3, focal_level=2)
    >>> out, modulator, gates = modulation(torch.randn(2, 9, 11, 16), return_maps=True)
    >>> out.shape, modulator.shape, gates.shape
    (torch.Size([2, 9, 11, 16]), torch.Size([2, 16, 9, 11]), torch.Size([2, 3, 9, 11]))
    >>> modulation.kernel_sizes
    [3, 5]
    """

    def __init__(
        self,
        dim,
        focal_window,
        focal_level,
        focal_factor=2,
        bias=True,
        proj_drop=0.0,
        use_postln_in_modulation=False,
        normalize_modulator=False,
        norm_layer=nn.LayerNorm,
    ):
        super().__init__()
        if focal_level < 1:
            raise ValueError(f"focal_level must be >= 1, got {focal_level}")
        if focal_window < 1 or focal_factor < 0:
            raise ValueError(
                f"focal_window must be >= 1 and focal_factor >= 0, got {focal_window}, {focal_factor}"
            )
        self.dim = dim
        self.focal_window = focal_window
        self.focal_level = focal_level
        self.focal_factor = focal_factor
        self.use_postln_in_modulation = use_postln_in_modulation
        self.normalize_modulator = normalize_modulator

        self.input_proj = PointwiseLinear(dim, 2 * dim + focal_level + 1, bias=bias)
        self.kernel_sizes = [focal_factor * level + focal_window for level in range(focal_level)]
        self.focal_convs = nn.ModuleList(
            nn.Conv2d(dim, dim, size, padding=size // 2, groups=dim, bias=False)
            for size in self.kernel_sizes
        )
        self.modulator_proj = PointwiseLinear(dim, dim, bias=bias)
        self.output_norm = norm_layer(dim) if use_postln_in_modulation else nn.Identity()
        self.output_proj = PointwiseLinear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x, return_maps=False):
        """Modulate channels-last ``x`` (B, H, W, C); returns (B, H, W, C).

        With ``return_maps``, returns ``(output, modulator, gates)``: the
        modulator (B, C, H, W) and gates (B, focal_level + 1, H, W) of this call.
        """
        # input_proj (the reference's ``f``) as three products on its row blocks:
        # each output is contiguous, which the convolutions below need, and three
        # narrow products are about twice as fast as one 2C+L+1-wide one and a copy.
        weight, bias = self.input_proj.weight, self.input_proj.bias
        blocks = (slice(0, self.dim), slice(self.dim, 2 * self.dim), slice(2 * self.dim, None))
        query, context, gates = (
            pointwise_linear(x, weight[rows], None if bias is None else bias[rows])
            for rows in blocks
        )
        # The returned maps are the very tensors used downstream (through views), so
        # that gradients with respect to them are defined.
        gate_maps = gates.permute(0, 3, 1, 2)
        gates = gate_maps.permute(0, 2, 3, 1)
        # (B, H, W, C) memory seen as (B, C, H, W): the channels_last layout, the
        # fast one of the depthwise convolutions on CPU.
        context = context.permute(0, 3, 1, 2)
        aggregate = None
        for level, focal_conv in enumerate(self.focal_convs):
            context = F.gelu(focal_conv(context))
            context_channels_last = context.permute(0, 2, 3, 1)
            gate = gates[..., level : level + 1]
            if aggregate is None:
                aggregate = context_channels_last * gate
            else:
                aggregate = torch.addcmul(aggregate, context_channels_last, gate)
        global_context = F.gelu(context_channels_last.mean((1, 2), keepdim=True))
        aggregate = torch.addcmul(aggregate, global_context, gates[..., self.focal_level :])
        if self.normalize_modulator:
            aggregate = aggregate / (self.focal_level + 1)

        modulator = self.modulator_proj(aggregate).permute(0, 3, 1, 2)
        modulated = query * modulator.permute(0, 2, 3, 1)
        output = self.proj_drop(self.output_proj(self.output_norm(modulated)))
        if return_maps:
            return output, modulator, gate_maps
        return output

    def extra_repr(self):
        return (
            f"dim={self.dim}, focal_level={self.focal_level}, kernel_sizes={self.kernel_sizes}, "
            f"normalize_modulator={self.normalize_modulator}"
        )


class FocalNetBlock(nn.Module):
    """Pre-norm (or post-norm) focal modulation + MLP block with residuals.

    Pre-norm (default)::

        x = x + drop_path(modulation_layer_scale * modulation(modulation_norm(x)))
        x = x + drop_path(mlp_layer_scale * mlp(mlp_norm(x)))

    With ``use_postln`` the norms move after the branch
    (``modulation_norm(modulation(x))``, ``mlp_norm(mlp(x))``); the layer scales are
    1 unless ``use_layerscale``.

    Arguments
    ---------
    dim : int
        Channels.
    mlp_ratio : float
        Hidden channels of the MLP relative to ``dim``.
    drop : float
        Dropout in the modulation output and in the MLP.
    drop_path : float
        Stochastic depth rate of both residual branches.
    focal_level, focal_window, focal_factor : int
        See :class:`FocalModulation`.
    use_layerscale : bool
        Learn per-channel residual scales initialised to ``layerscale_value``.
    layerscale_value : float
        Initial layer scale.
    use_postln : bool
        Post-norm instead of pre-norm.
    use_postln_in_modulation, normalize_modulator : bool
        See :class:`FocalModulation`.
    norm_layer : callable
        Builds the normalisation layers from the number of channels.

    Example
    -------
    >>> block = FocalNetBlock(16, focal_level=2, focal_window=3, use_layerscale=True)
    >>> block(torch.randn(2, 7, 5, 16)).shape
    torch.Size([2, 7, 5, 16])
    """

    def __init__(
        self,
        dim,
        mlp_ratio=4.0,
        drop=0.0,
        drop_path=0.0,
        focal_level=2,
        focal_window=3,
        focal_factor=2,
        use_layerscale=False,
        layerscale_value=1e-4,
        use_postln=False,
        use_postln_in_modulation=False,
        normalize_modulator=False,
        norm_layer=nn.LayerNorm,
    ):
        super().__init__()
        self.dim = dim
        self.use_postln = use_postln
        self.modulation_norm = norm_layer(dim)
        self.modulation = FocalModulation(
            dim,
            focal_window=focal_window,
            focal_level=focal_level,
            focal_factor=focal_factor,
            proj_drop=drop,
            use_postln_in_modulation=use_postln_in_modulation,
            normalize_modulator=normalize_modulator,
            norm_layer=norm_layer,
        )
        self.mlp_norm = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        if use_layerscale:
            self.modulation_layer_scale = nn.Parameter(torch.full((dim,), float(layerscale_value)))
            self.mlp_layer_scale = nn.Parameter(torch.full((dim,), float(layerscale_value)))
        else:
            self.modulation_layer_scale = None
            self.mlp_layer_scale = None

    def _residual(self, x, branch, scale):
        if scale is not None:
            branch = branch * scale
        return x + self.drop_path(branch)

    def forward(self, x, return_maps=False):
        """Apply the block to channels-last ``x`` (B, H, W, C).

        With ``return_maps``, returns ``(output, modulator, gates)`` of the
        block's focal modulation (see :class:`FocalModulation`).
        """
        if self.use_postln:
            branch, modulator, gates = self.modulation(x, return_maps=True)
            branch = self.modulation_norm(branch)
        else:
            branch, modulator, gates = self.modulation(self.modulation_norm(x), return_maps=True)
        x = self._residual(x, branch, self.modulation_layer_scale)
        if self.use_postln:
            branch = self.mlp_norm(self.mlp(x))
        else:
            branch = self.mlp(self.mlp_norm(x))
        x = self._residual(x, branch, self.mlp_layer_scale)
        if return_maps:
            return x, modulator, gates
        return x


class PatchEmbed(nn.Module):
    """Strided patch projection (+ optional LayerNorm), NCHW in, channels-last out.

    The input is zero-padded on the right/bottom to a multiple of the stride, so
    the output grid is ``ceil(H / stride) x ceil(W / stride)``. The projection is a
    non-overlapping convolution (kernel = stride) or, with ``overlap=True``, the
    reference's overlapping convolutions (7x7, padding 2 for stride 4; 3x3,
    padding 1 for stride 2). ``projection`` may instead be any
    module mapping NCHW to NCHW with attribute ``stride`` (e.g. a
    :class:`~focalnet_lobes.models.stems.ConvStem`).

    Arguments
    ---------
    in_chans : int
        Input channels.
    embed_dim : int
        Output channels.
    stride : int
        Patch size (non-overlapping) or stride (overlapping).
    overlap : bool
        Use the overlapping convolution of the reference's ``use_conv_embed``.
    norm_layer : callable or None
        Normalisation after the projection (None: no normalisation).
    projection : nn.Module or None
        A ready projection module replacing the convolution.

    Example
    -------
    >>> embed = PatchEmbed(1, 32, stride=4, norm_layer=nn.LayerNorm)
    >>> embed(torch.randn(2, 1, 431, 513)).shape
    torch.Size([2, 108, 129, 32])
    """

    def __init__(
        self, in_chans, embed_dim, stride=4, overlap=False, norm_layer=None, projection=None
    ):
        super().__init__()
        if projection is not None:
            self.proj = projection
            self.stride = projection.stride
            self.kind = "module"
        else:
            if overlap:
                kernel_size, padding = {4: (7, 2), 2: (3, 1)}.get(stride, (None, None))
                if kernel_size is None:
                    raise ValueError(
                        f"The overlapping (conv) embedding exists for strides 4 and 2 only, got {stride}"
                    )
                self.kind = "overlap"
            else:
                kernel_size, padding = stride, 0
                self.kind = "patch"
            self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size, stride=stride, padding=padding)
            self.stride = stride
        self.in_chans = in_chans
        self.embed_dim = embed_dim
        self.norm = norm_layer(embed_dim) if norm_layer is not None else nn.Identity()

    def output_size(self, height, width):
        """Return the output grid (height, width) for an input grid.

        Arguments
        ---------
        height, width : int
            Input grid size.

        Returns
        -------
        tuple of int

        Example
        -------
        >>> PatchEmbed(1, 8, stride=4).output_size(431, 513)
        (108, 129)
        """
        if self.kind == "module" and hasattr(self.proj, "output_size"):
            return tuple(self.proj.output_size(height, width))
        return -(-height // self.stride), -(-width // self.stride)

    def _unfolded_patch_product(self, x_nchw):
        """The non-overlapping convolution as a product over unfolded patches."""
        stride = self.stride
        batch, channels, height, width = x_nchw.shape
        patches = x_nchw.reshape(batch, channels, height // stride, stride, width // stride, stride)
        patches = patches.permute(0, 2, 4, 3, 5, 1).flatten(3)  # (B, h, w, k * k * C)
        weight = self.proj.weight.permute(0, 2, 3, 1).flatten(1)  # same (k, k, C) order
        return F.linear(patches, weight, self.proj.bias)

    def forward(self, x_nchw):
        """Map (B, C, H, W) to channels-last (B, ceil(H/s), ceil(W/s), embed_dim)."""
        if self.kind == "module":
            return self.norm(self.proj(x_nchw).permute(0, 2, 3, 1))
        x_nchw = _pad_to_multiple(x_nchw, self.stride)
        if self.kind == "patch" and x_nchw.shape[1] <= 4:
            # few input channels (the stem of an image or spectrogram): a product
            # over unfolded patches is several times faster than the convolution
            return self.norm(self._unfolded_patch_product(x_nchw))
        # channels_last input (free within the stages): oneDNN writes a
        # channels_last output, whose (B, H, W, C) view is contiguous.
        x_nchw = x_nchw.contiguous(memory_format=torch.channels_last)
        return self.norm(self.proj(x_nchw).permute(0, 2, 3, 1))


class FocalNetStage(nn.Module):
    """One FocalNet stage: optional downsampling, then ``depth`` blocks.

    The downsampling (2x2 patch merging, or 3x3 stride-2 convolution with
    ``use_conv_embed``) comes first, as in timm, so the output grid of the stage is
    the grid its blocks (and modulators) live on.

    Arguments
    ---------
    in_dim : int
        Channels entering the stage.
    dim : int
        Channels of the stage.
    depth : int
        Number of :class:`FocalNetBlock`.
    downsample : bool
        Whether to halve the grid (stride 2) and project ``in_dim`` -> ``dim`` first.
    use_conv_embed : bool
        Overlapping 3x3 convolution for the downsampling.
    drop_path : sequence of float
        Stochastic depth rate of each block.
    use_checkpoint : bool
        Gradient checkpointing of each block (saves memory, costs a recomputation).
    norm_layer : callable
        Normalisation layer builder.
    **block_kwargs
        Forwarded to :class:`FocalNetBlock`.

    Example
    -------
    >>> stage = FocalNetStage(8, 16, depth=2, downsample=True, drop_path=[0.0, 0.0])
    >>> stage(torch.randn(2, 9, 11, 8)).shape
    torch.Size([2, 5, 6, 16])
    """

    def __init__(
        self,
        in_dim,
        dim,
        depth,
        downsample=True,
        use_conv_embed=False,
        drop_path=(),
        use_checkpoint=False,
        norm_layer=nn.LayerNorm,
        **block_kwargs,
    ):
        super().__init__()
        drop_path = list(drop_path) or [0.0] * depth
        if len(drop_path) != depth:
            raise ValueError(f"Expected {depth} drop path rates, got {len(drop_path)}")
        self.downsample = (
            PatchEmbed(in_dim, dim, stride=2, overlap=use_conv_embed, norm_layer=norm_layer)
            if downsample
            else None
        )
        self.blocks = nn.ModuleList(
            FocalNetBlock(dim, drop_path=rate, norm_layer=norm_layer, **block_kwargs)
            for rate in drop_path
        )
        self.use_checkpoint = use_checkpoint

    def forward(self, x, return_maps=False):
        """Apply the stage to channels-last ``x`` (B, H, W, in_dim).

        With ``return_maps``, returns ``(output, modulator, gates)``, the maps of
        the stage's last block.
        """
        if self.downsample is not None:
            x = self.downsample(x.permute(0, 3, 1, 2))
        maps = (None, None)
        for index, block in enumerate(self.blocks):
            last = return_maps and index == len(self.blocks) - 1
            if self.use_checkpoint and torch.is_grad_enabled():
                result = torch.utils.checkpoint.checkpoint(
                    block, x, return_maps=last, use_reentrant=False
                )
            else:
                result = block(x, return_maps=last)
            if last:
                x, *maps = result
            else:
                x = result
        if return_maps:
            return (x, *maps)
        return x


def _per_stage(values, num_stages, name):
    """Broadcast an int, or check a sequence covers every stage (extras ignored)."""
    if isinstance(values, int):
        return [values] * num_stages
    values = list(values)
    if len(values) < num_stages:
        raise ValueError(f"{name} has {len(values)} entries for {num_stages} stages")
    return values[:num_stages]


def modulation_pool_weights(modulator, temperature=None):
    """Pooling weights over positions from a modulator: its modulation map, normalised.

    The modulation map is the L2 norm of the modulator (B, C, h, w) over channels,
    :func:`focalnet_lobes.models.layers.modulation_map`, the map the interpretation
    thresholds. The weights (B, h, w) sum to 1 per clip:
    proportional to the map (``temperature=None``), or ``softmax(map / temperature)``
    over the positions. They are computed in float32 (also under autocast).

    Arguments
    ---------
    modulator : torch.Tensor
        (B, C, h, w) modulator of a focal-modulation layer.
    temperature : float or None
        Softmax temperature, or ``None`` for proportional weights.

    Returns
    -------
    torch.Tensor
        (B, h, w) non-negative weights summing to 1 over (h, w).

    Example
    -------
    >>> modulator = torch.zeros(1, 2, 1, 3)
    >>> modulator[0, 0, 0] = torch.tensor([3.0, 0.0, 0.0])
    >>> modulator[0, 1, 0] = torch.tensor([4.0, 1.0, 0.0])
    >>> modulation_pool_weights(modulator)
    tensor([[[0.8333, 0.1667, 0.0000]]])
    >>> modulation_pool_weights(torch.zeros(1, 4, 2, 2))  # no spread: the plain mean
    tensor([[[0.2500, 0.2500],
             [0.2500, 0.2500]]])
    """
    # the interpretation's own map (L2 reduction), so the two cannot drift apart
    scores = modulation_map(modulator.float(), reduction="l2")
    if temperature is not None:
        flat = torch.softmax(scores.flatten(1) / temperature, dim=1)
        return flat.reshape(scores.shape)
    total = scores.sum((1, 2), keepdim=True)
    uniform = torch.full_like(scores, 1.0 / scores[0].numel())
    return torch.where(total > 0, scores / total.clamp_min(1e-12), uniform)


class FocalNet(nn.Module):
    """Focal Modulation Network for images and spectrograms.

    Inputs of any size: before each strided convolution (the patch embedding and
    every downsampling) the map is zero-padded on the right/bottom to a multiple of
    the stride. A 431 x 513 spectrogram is thus embedded as its zero padding to
    432 x 516, and the stages live on 108 x 129, 54 x 65, 27 x 33 and 14 x 17 grids
    (``ceil(size / stride)``). Every grid position covers at least one real input
    bin, so no position is made of padding only and the global context of the focal
    modulation and the final average pooling only average real positions. This is
    what Hugging Face transformers does; timm and microsoft/FocalNet instead drop
    the trailing rows/columns that do not fill a patch, and all agree on sizes that
    are multiples of the total stride (``stage_strides[-1]``).

    Arguments
    ---------
    in_chans : int
        Input channels (3 for images, 1 for a spectrogram).
    num_classes : int
        Classes of the linear head; 0 replaces the head with the identity, so the
        model returns pooled features (B, num_features).
    embed_dim : int
        Channels of the first stage; doubled at every following stage.
    depths : sequence of int
        Blocks per stage (any number of stages).
    mlp_ratio : float
        MLP hidden channels relative to the stage channels.
    drop_rate : float
        Dropout after the patch embedding, in the modulation output and in the MLPs
        (as ``drop_rate`` in the reference).
    drop_path_rate : float
        Stochastic depth, increasing linearly from 0 to this value over the blocks.
    patch_norm : bool
        LayerNorm after the patch embedding (the downsampling layers always have one,
        as in the reference).
    focal_levels, focal_windows : int or sequence of int
        Per-stage focal level and first kernel size (an int applies to every stage).
    focal_factor : int
        Kernel size increment between focal levels.
    use_conv_embed : bool
        Overlapping convolutional embedding (7x7 stride 4, then 3x3 stride 2).
    use_layerscale : bool
        Learnable residual scales (CaiT), initialised to ``layerscale_value``.
    layerscale_value : float
        Initial layer scale.
    use_postln : bool
        Post-norm blocks.
    use_postln_in_modulation : bool
        LayerNorm inside the modulation, before its output projection.
    normalize_modulator : bool
        Divide the aggregated context by ``focal_level + 1``.
    patch_size : int
        Patch size of the (non-overlapping) embedding. The reference's ``img_size``
        has no counterpart: any input size is accepted.
    stem : None or str
        ``None`` (or ``"patch"``): patch embedding; ``"cnn"``:
        :class:`~focalnet_lobes.models.stems.ConvStem` ``(in_chans, stem_channels, embed_dim)``
        followed by the patch norm.
    stem_channels : sequence of int
        Block channels of the CNN stem (stride ``2 ** len(stem_channels)``).
    stem_strided_blocks : int
        How many of the CNN stem's first blocks are a single stride-2 convolution
        (:class:`~focalnet_lobes.models.stems.StridedConvBlock`) instead of two
        convolutions and a pooling; 0 is the VGG stem. Only with ``stem="cnn"``.
    use_checkpoint : bool
        Gradient checkpointing of every block (less memory, one more forward of each
        block during backward).
    norm_layer : callable
        Normalisation layer builder (``nn.LayerNorm``, eps 1e-5, as the reference).
    global_pool : str
        How the last stage's positions are pooled into one vector (after the final
        norm). ``"avg"``: their mean (the reference). ``"modulation"``: a mean
        weighted by the **modulation map**, the L2 norm over channels of the last
        focal-modulation layer's modulator (:func:`modulation_pool_weights`), so
        that the map the model is interpreted by also decides how much each
        position counts in its decision (no new parameters).
    pool_temperature : float or None
        Only for ``global_pool="modulation"``: ``None`` weights the positions in
        proportion to the map, a float ``t`` by ``softmax(map / t)``.

    Example
    -------
    >>> model = FocalNet(in_chans=1, num_classes=10, embed_dim=16, depths=(1, 1, 2, 1))
    >>> spectrogram = torch.randn(2, 1, 431, 513)
    >>> model(spectrogram).shape
    torch.Size([2, 10])
    >>> model.stage_strides
    [4, 8, 16, 32]
    >>> maps, modulators = model.forward_features(spectrogram, return_modulators=True)
    >>> [tuple(m.shape) for m in modulators]
    [(2, 16, 108, 129), (2, 32, 54, 65), (2, 64, 27, 33), (2, 128, 14, 17)]
    >>> model.stage_grid_sizes(431, 513)
    [(108, 129), (54, 65), (27, 33), (14, 17)]
    """

    def __init__(
        self,
        in_chans=3,
        num_classes=1000,
        embed_dim=96,
        depths=(2, 2, 6, 2),
        mlp_ratio=4.0,
        drop_rate=0.0,
        drop_path_rate=0.1,
        patch_norm=True,
        focal_levels=(2, 2, 2, 2),
        focal_windows=(3, 3, 3, 3),
        focal_factor=2,
        use_conv_embed=False,
        use_layerscale=False,
        layerscale_value=1e-4,
        use_postln=False,
        use_postln_in_modulation=False,
        normalize_modulator=False,
        patch_size=4,
        stem=None,
        stem_channels=(32, 64),
        stem_strided_blocks=0,
        use_checkpoint=False,
        norm_layer=nn.LayerNorm,
        global_pool="avg",
        pool_temperature=None,
    ):
        super().__init__()
        depths = list(depths)
        if global_pool not in ("avg", "modulation"):
            raise ValueError(f"global_pool must be 'avg' or 'modulation', got {global_pool!r}")
        if pool_temperature is not None and not pool_temperature > 0:
            raise ValueError(f"pool_temperature must be None or > 0, got {pool_temperature}")
        if not depths or any(int(d) != d or d < 1 for d in depths):
            raise ValueError(f"depths must be a non-empty sequence of positive ints, got {depths}")
        if in_chans < 1 or num_classes < 0 or embed_dim < 1:
            raise ValueError(
                f"Need in_chans >= 1, num_classes >= 0, embed_dim >= 1; "
                f"got {in_chans}, {num_classes}, {embed_dim}"
            )
        if stem not in (None, "patch", "cnn"):
            raise ValueError(f"stem must be None, 'patch' or 'cnn', got {stem!r}")
        if stem_strided_blocks and stem != "cnn":
            raise ValueError("stem_strided_blocks needs stem='cnn'")
        if stem == "cnn" and use_conv_embed:
            raise ValueError("stem='cnn' and use_conv_embed=True are exclusive")
        if use_conv_embed and patch_size != 4:
            raise ValueError("use_conv_embed uses a fixed stride-4 stem: patch_size must be 4")
        num_stages = len(depths)
        focal_levels = _per_stage(focal_levels, num_stages, "focal_levels")
        focal_windows = _per_stage(focal_windows, num_stages, "focal_windows")

        self.in_chans = in_chans
        self.num_classes = num_classes
        self.depths = depths
        self.global_pool = global_pool
        self.pool_temperature = pool_temperature
        self.embed_dims = [embed_dim * 2**stage for stage in range(num_stages)]
        self.num_features = self.embed_dims[-1]

        patch_norm_layer = norm_layer if patch_norm else None
        if stem == "cnn":
            self.patch_embed = PatchEmbed(
                in_chans,
                embed_dim,
                norm_layer=patch_norm_layer,
                projection=ConvStem(
                    in_chans, tuple(stem_channels), embed_dim,
                    strided_blocks=stem_strided_blocks,
                ),
            )
        else:
            self.patch_embed = PatchEmbed(
                in_chans,
                embed_dim,
                stride=patch_size,
                overlap=use_conv_embed,
                norm_layer=patch_norm_layer,
            )
        self.pos_drop = nn.Dropout(drop_rate)
        self.stage_strides = [self.patch_embed.stride * 2**stage for stage in range(num_stages)]

        rates = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()
        self.stages = nn.ModuleList()
        for stage, depth in enumerate(depths):
            first = sum(depths[:stage])
            self.stages.append(
                FocalNetStage(
                    self.embed_dims[max(stage - 1, 0)],
                    self.embed_dims[stage],
                    depth,
                    downsample=stage > 0,
                    use_conv_embed=use_conv_embed,
                    drop_path=rates[first : first + depth],
                    use_checkpoint=use_checkpoint,
                    norm_layer=norm_layer,
                    mlp_ratio=mlp_ratio,
                    drop=drop_rate,
                    focal_level=focal_levels[stage],
                    focal_window=focal_windows[stage],
                    focal_factor=focal_factor,
                    use_layerscale=use_layerscale,
                    layerscale_value=layerscale_value,
                    use_postln=use_postln,
                    use_postln_in_modulation=use_postln_in_modulation,
                    normalize_modulator=normalize_modulator,
                )
            )
        self.norm = norm_layer(self.num_features)
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self._init_weights()

    def _init_weights(self):
        # As the reference: truncated normal (std 0.02) linear layers, unit LayerNorms;
        # convolutions keep PyTorch's default init. ``modulator_proj`` is a 1x1
        # convolution in the reference, so it keeps the default init as well (the
        # same distribution for nn.Linear and a 1x1 nn.Conv2d).
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear) and not name.endswith("modulator_proj"):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def stage_grid_sizes(self, height, width):
        """Return the (height, width) grid of every stage for an input size.

        Arguments
        ---------
        height, width : int
            Input size (e.g. time frames and frequency bins).

        Returns
        -------
        list of tuple of int
            ``ceil(height / stride_s), ceil(width / stride_s)`` for each stage.

        Example
        -------
        >>> FocalNet(embed_dim=8, depths=(1, 1)).stage_grid_sizes(224, 225)
        [(56, 57), (28, 29)]
        """
        grid = self.patch_embed.output_size(height, width)
        sizes = [tuple(grid)]
        for _ in self.stages[1:]:
            grid = (-(-grid[0] // 2), -(-grid[1] // 2))
            sizes.append(grid)
        return sizes

    def _check_input(self, x):
        if not isinstance(x, torch.Tensor) or x.ndim != 4:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"FocalNet expects a (B, {self.in_chans}, H, W) tensor, got {shape}")
        if x.shape[1] != self.in_chans:
            raise ValueError(
                f"FocalNet was built for in_chans={self.in_chans}, got input with "
                f"{x.shape[1]} channels (shape {tuple(x.shape)})"
            )
        if x.shape[-2] < 1 or x.shape[-1] < 1 or x.shape[0] < 1:
            raise ValueError(f"Empty input of shape {tuple(x.shape)}")

    def forward_features(self, x, return_modulators=False):
        """Per-stage feature maps (and modulators) of an input batch.

        Arguments
        ---------
        x : torch.Tensor
            Input (B, in_chans, H, W) of any H and W.
        return_modulators : bool
            Also return, for each stage, the modulator of its last focal-modulation
            layer (kept in the autograd graph).

        Returns
        -------
        stage_maps : list of torch.Tensor
            Output of each stage, (B, C_s, h_s, w_s) with
            ``h_s, w_s = ceil(H / stage_strides[s]), ceil(W / stage_strides[s])``
            (before the final norm).
        stage_modulators : list of torch.Tensor
            Only with ``return_modulators``: (B, C_s, h_s, w_s) per stage.

        Example
        -------
        >>> model = FocalNet(in_chans=1, num_classes=0, embed_dim=8, depths=(1, 1))
        >>> maps = model.forward_features(torch.randn(1, 1, 30, 17))
        >>> [tuple(m.shape) for m in maps]
        [(1, 8, 8, 5), (1, 16, 4, 3)]
        """
        self._check_input(x)
        x = self.pos_drop(self.patch_embed(x))
        stage_maps, stage_modulators = [], []
        for stage in self.stages:
            x, modulator, _ = stage(x, return_maps=True)
            stage_map = x.permute(0, 3, 1, 2)
            stage_maps.append(stage_map)
            stage_modulators.append(modulator)
            # continue from the returned map itself, so that gradients w.r.t. it exist
            x = stage_map.permute(0, 2, 3, 1)
        if return_modulators:
            return stage_maps, stage_modulators
        return stage_maps

    def forward_head(self, last_stage_map, pre_logits=False, modulator=None):
        """Final norm, global pooling (``global_pool``) and classifier.

        Arguments
        ---------
        last_stage_map : torch.Tensor
            Last stage map (B, num_features, h, w), as from :meth:`forward_features`.
        pre_logits : bool
            Return the pooled features (B, num_features) without the head.
        modulator : torch.Tensor or None
            Needed by ``global_pool="modulation"`` (ignored otherwise): the last
            layer's modulator (B, num_features, h, w) of the forward pass that
            produced ``last_stage_map``, i.e.
            ``forward_features(x, return_modulators=True)[1][-1]``.

        Returns
        -------
        torch.Tensor
            Logits (B, num_classes), or pooled features when ``pre_logits`` or
            ``num_classes == 0``.

        Example
        -------
        >>> model = FocalNet(num_classes=5, embed_dim=8, depths=(1, 1))
        >>> model.forward_head(torch.randn(2, 16, 3, 4)).shape
        torch.Size([2, 5])
        >>> model.forward_head(torch.randn(2, 16, 3, 4), pre_logits=True).shape
        torch.Size([2, 16])
        >>> pooled = FocalNet(num_classes=5, embed_dim=8, depths=(1, 1), global_pool="modulation")
        >>> stage_maps, modulators = pooled.forward_features(torch.randn(2, 3, 32, 32), True)
        >>> pooled.forward_head(stage_maps[-1], modulator=modulators[-1]).shape
        torch.Size([2, 5])
        """
        tokens, weights = self.pooling_terms(last_stage_map, modulator)
        if self.global_pool == "avg":
            pooled = tokens.mean((1, 2))
        else:
            pooled = (tokens * weights.unsqueeze(-1).to(tokens.dtype)).sum((1, 2))
        if pre_logits:
            return pooled
        return self.head(pooled)

    def pooling_terms(self, last_stage_map, modulator=None):
        """The final-norm tokens and the global pooling's weights over positions.

        The pooled features are ``sum over positions of weights * tokens``: with
        ``global_pool="avg"`` every weight is 1 / (h w); with ``"modulation"``
        the weights are :func:`modulation_pool_weights` of ``modulator``. With a
        linear head the logit of class c therefore splits exactly into one term
        per position, ``weights * (tokens @ W_c)``, plus the bias (the class
        activation map of Zhou et al., CVPR 2016, generalised to weighted pooling).

        Arguments
        ---------
        last_stage_map : torch.Tensor
            (B, num_features, h, w), as from :meth:`forward_features`.
        modulator : torch.Tensor or None
            The last layer's modulator of the same pass; needed by
            ``global_pool="modulation"``.

        Returns
        -------
        tokens : torch.Tensor
            (B, h, w, num_features), after the final norm.
        weights : torch.Tensor
            (B, h, w), non-negative, summing to 1 over positions.

        Raises
        ------
        ValueError
            A map of the wrong shape, or a missing / mismatched modulator.

        Example
        -------
        >>> model = FocalNet(num_classes=0, embed_dim=8, depths=(1, 1))
        >>> tokens, weights = model.pooling_terms(torch.randn(2, 16, 3, 4))
        >>> tokens.shape, weights.shape, round(float(weights[0].sum()), 6)
        (torch.Size([2, 3, 4, 16]), torch.Size([2, 3, 4]), 1.0)
        """
        if last_stage_map.ndim != 4 or last_stage_map.shape[1] != self.num_features:
            raise ValueError(
                f"forward_head expects (B, {self.num_features}, h, w), "
                f"got {tuple(last_stage_map.shape)}"
            )
        tokens = self.norm(last_stage_map.permute(0, 2, 3, 1))
        if self.global_pool == "avg":
            size = tokens.shape[1] * tokens.shape[2]
            return tokens, tokens.new_full(tokens.shape[:3], 1.0 / size)
        if modulator is None or modulator.shape != last_stage_map.shape:
            got = None if modulator is None else tuple(modulator.shape)
            raise ValueError(
                "global_pool='modulation' needs modulator=, the last layer's modulator of "
                f"the same forward pass (forward_features(x, return_modulators=True)), "
                f"shape {tuple(last_stage_map.shape)}; got {got}"
            )
        return tokens, modulation_pool_weights(modulator, self.pool_temperature)

    def forward(self, x):
        """Logits (B, num_classes), or pooled features when ``num_classes == 0``."""
        stage_maps, modulators = self.forward_features(x, return_modulators=True)
        return self.forward_head(stage_maps[-1], modulator=modulators[-1])

    def modulation_layers(self):
        """Return the :class:`FocalModulation` layers, stage by stage, block by block.

        Example
        -------
        >>> len(FocalNet(embed_dim=8, depths=(1, 2)).modulation_layers())
        3
        """
        return [block.modulation for stage in self.stages for block in stage.blocks]


# --- Named configurations --------------------------------------------------------------

# Drop path rates of the reference's ImageNet training configs (configs/*.yaml).
_IMAGENET_CONFIGS = {
    "tiny": dict(embed_dim=96, depths=(2, 2, 6, 2), drop_path_rate=0.2),
    "small": dict(embed_dim=96, depths=(2, 2, 18, 2), drop_path_rate=0.3),
    "base": dict(embed_dim=128, depths=(2, 2, 18, 2), drop_path_rate=0.5),
}
# srf: small receptive field (2 focal levels), lrf: large (3 levels); windows 3.
_RECEPTIVE_FIELDS = {"srf": 2, "lrf": 3}

for _size, _config in _IMAGENET_CONFIGS.items():
    for _field, _levels in _RECEPTIVE_FIELDS.items():
        register_model(
            f"focalnet_{_size}_{_field}",
            FocalNet,
            focal_levels=(_levels,) * 4,
            focal_windows=(3,) * 4,
            **_config,
        )

register_model(
    "focalnet_audio_small",
    FocalNet,
    stem="cnn",
    stem_channels=(32, 64),
    embed_dim=64,
    depths=(2, 2, 2),
    focal_levels=(2, 2, 2),
    focal_windows=(3, 3, 3),
    drop_path_rate=0.1,
)

"""Vision Transformer that returns its attention probabilities, for any input size.

:class:`VisionTransformer` is the ViT of Dosovitskiy et al. (2021) with the parameter
names of timm's ``VisionTransformer`` (so that timm weights load after
:func:`focalnet_lobes.models.convert.convert_vit` renames nothing but a few extras), made
for spectrograms:

* inputs of any size (B, in_chans, T, F) are padded right/bottom to a multiple of
  the patch size (as timm's ``dynamic_img_pad``), and the learned position
  embeddings, stored for ``pos_embed_grid``, are resampled bicubically to the
  input's patch grid (as timm's ``dynamic_img_size``);
* ``forward_features(x, return_attentions=True)`` also returns the softmax
  attention probabilities of every layer, in the autograd graph, for
  attention-based interpretation. Without them attention runs through
  ``F.scaled_dot_product_attention``; with them through an explicit
  ``softmax(Q K^T / sqrt(d))`` (same numbers up to float rounding);
* ``stem="cnn"`` puts the :class:`focalnet_lobes.models.stems.ConvStem` in front of the
  patch embedding, the same convolutional front as the compact audio FocalNet.

Pooling: ``global_pool="token"`` takes the class token (timm, transformers);
``global_pool="avg"`` takes the mean of ALL output tokens, class token included.
The latter is what the SpeechBrain ESC-50 ViT recipe of the paper did
(``recipes/ESC50/classification/train_vit_classifier.py``:
``ViTModel(...).last_hidden_state`` averaged over the token axis, after the final
LayerNorm, then the ECAPA cosine ``Classifier``). Note that timm's own ``"avg"``
excludes the class token and adds an ``fc_norm``; ours does not.

Named configurations: ``vit_tiny_patch16``, ``vit_small_patch16``,
``vit_base_patch16`` (ImageNet sizes, as timm) and ``vit_audio_small`` (CNN stem,
compact, for ESC-50).
"""

import torch
import torch.nn.functional as F
from torch import nn

from focalnet_lobes.models.layers import DropPath
from focalnet_lobes.models.registry import register_model
from focalnet_lobes.models.stems import ConvStem

GLOBAL_POOLS = ("token", "avg")
STEMS = (None, "cnn")


class Mlp(nn.Module):
    """Two linear layers with GELU in between (the transformer feed-forward).

    Arguments
    ---------
    in_features : int
        Input and output size.
    hidden_features : int
        Hidden size.
    drop : float
        Dropout after the activation and after the second layer.

    Example
    -------
    >>> mlp = Mlp(8, 32)
    >>> mlp(torch.randn(2, 5, 8)).shape
    torch.Size([2, 5, 8])
    """

    def __init__(self, in_features, hidden_features, drop=0.0):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.drop1 = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden_features, in_features)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x):
        """Apply the feed-forward to ``x`` (..., in_features)."""
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))


class Attention(nn.Module):
    """Multi-head self-attention that can return its attention probabilities.

    Arguments
    ---------
    dim : int
        Token size; must be divisible by ``num_heads``.
    num_heads : int
        Number of heads.
    qkv_bias : bool
        Whether the query/key/value projection has a bias.
    attn_drop : float
        Dropout on the attention probabilities (training only).
    proj_drop : float
        Dropout after the output projection.
    fused_attention : bool
        Without ``return_attention``: ``F.scaled_dot_product_attention`` (True) or
        the explicit softmax path (False), the same function up to float rounding.

    Raises
    ------
    ValueError
        If ``dim`` is not divisible by ``num_heads`` or ``fused_attention`` is not a bool.

    Example
    -------
    >>> attention = Attention(16, num_heads=4).eval()
    >>> tokens = torch.randn(2, 7, 16)
    >>> output, probabilities = attention(tokens, return_attention=True)
    >>> output.shape, probabilities.shape
    (torch.Size([2, 7, 16]), torch.Size([2, 4, 7, 7]))
    >>> torch.allclose(probabilities.sum(-1), torch.ones(2, 4, 7))
    True
    >>> fast_output, none = attention(tokens)
    >>> torch.allclose(fast_output, output, atol=1e-6), none
    (True, None)
    >>> attention.fused_attention = False
    >>> explicit_output, none = attention(tokens)
    >>> torch.allclose(explicit_output, output, atol=1e-6), none
    (True, None)
    """

    def __init__(self, dim, num_heads=8, qkv_bias=True, attn_drop=0.0, proj_drop=0.0,
                 fused_attention=True):
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        if not isinstance(fused_attention, bool):
            raise ValueError(f"fused_attention must be True or False, got {fused_attention!r}")
        self.fused_attention = fused_attention

    def forward(self, x, return_attention=False):
        """Attend over the tokens of ``x`` (B, N, dim).

        Arguments
        ---------
        x : torch.Tensor
            Tokens (B, N, dim).
        return_attention : bool
            Whether to compute and return the attention probabilities.

        Returns
        -------
        output : torch.Tensor
            (B, N, dim).
        probabilities : torch.Tensor or None
            (B, num_heads, N, N) softmax probabilities (before attention
            dropout), rows summing to one; ``None`` unless ``return_attention``.
        """
        batch, num_tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, num_tokens, 3, self.num_heads, self.head_dim)
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        if return_attention or not self.fused_attention:
            scores = (query * self.scale) @ key.transpose(-2, -1)
            probabilities = scores.float().softmax(dim=-1).to(query.dtype)
            output = self.attn_drop(probabilities) @ value
            if not return_attention:
                probabilities = None
        else:
            probabilities = None
            output = F.scaled_dot_product_attention(
                query, key, value, dropout_p=self.attn_drop.p if self.training else 0.0
            )
        output = output.transpose(1, 2).reshape(batch, num_tokens, dim)
        return self.proj_drop(self.proj(output)), probabilities


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``.

    Arguments
    ---------
    dim : int
        Token size.
    num_heads : int
        Attention heads.
    mlp_ratio : float
        Hidden size of the MLP relative to ``dim``.
    qkv_bias : bool
        Bias of the query/key/value projection.
    drop : float
        Dropout after the attention projection and inside the MLP.
    attn_drop : float
        Dropout on the attention probabilities.
    drop_path : float
        Stochastic depth probability of both residual branches.
    layer_norm_eps : float
        Epsilon of the LayerNorms.
    fused_attention : bool
        ``Attention``'s path without returned probabilities (see :class:`Attention`).

    Example
    -------
    >>> block = Block(16, num_heads=2)
    >>> tokens, probabilities = block(torch.randn(2, 5, 16), return_attention=True)
    >>> tokens.shape, probabilities.shape
    (torch.Size([2, 5, 16]), torch.Size([2, 2, 5, 5]))
    """

    def __init__(
        self,
        dim,
        num_heads,
        mlp_ratio=4.0,
        qkv_bias=True,
        drop=0.0,
        attn_drop=0.0,
        drop_path=0.0,
        layer_norm_eps=1e-6,
        fused_attention=True,
    ):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=layer_norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias, attn_drop, drop, fused_attention)
        self.drop_path1 = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=layer_norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        self.drop_path2 = DropPath(drop_path)

    def forward(self, x, return_attention=False):
        """Return the updated tokens (B, N, dim) and the attention probabilities or None."""
        attended, probabilities = self.attn(self.norm1(x), return_attention=return_attention)
        x = x + self.drop_path1(attended)
        x = x + self.drop_path2(self.mlp(self.norm2(x)))
        return x, probabilities


def _pair(value, name):
    """Return ``value`` as a pair of positive ints (an int means a square)."""
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or any(int(v) != v or v < 1 for v in pair):
        raise ValueError(f"{name} must be a positive int or a pair of them, got {value}")
    return int(pair[0]), int(pair[1])


def resample_position_embedding(pos_embed, new_grid, old_grid, num_prefix_tokens=1, antialias=True):
    """Resample a (1, prefix + h*w, D) position embedding to another grid, bicubically.

    The prefix (class token) entries are kept as they are; the grid entries are
    interpolated as an image with ``F.interpolate(mode="bicubic",
    align_corners=False)``, as timm's ``resample_abs_pos_embed`` (``antialias=True``,
    timm's default) or Hugging Face ViT's ``interpolate_pos_encoding``
    (``antialias=False``).

    Arguments
    ---------
    pos_embed : torch.Tensor
        (1, num_prefix_tokens + old_h * old_w, D).
    new_grid : tuple of int
        Target (h, w).
    old_grid : tuple of int
        Grid (h, w) that ``pos_embed`` was stored for.
    num_prefix_tokens : int
        Leading entries that are not on the grid.
    antialias : bool
        Passed to ``F.interpolate``.

    Returns
    -------
    torch.Tensor
        (1, num_prefix_tokens + new_h * new_w, D), unchanged when the grids match.

    Example
    -------
    >>> pos_embed = torch.randn(1, 1 + 4 * 4, 8)
    >>> resample_position_embedding(pos_embed, (3, 6), (4, 4)).shape
    torch.Size([1, 19, 8])
    >>> resample_position_embedding(pos_embed, (4, 4), (4, 4)) is pos_embed
    True
    """
    new_grid, old_grid = tuple(new_grid), tuple(old_grid)
    if new_grid == old_grid:
        return pos_embed
    prefix, grid = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    embed_dim = pos_embed.shape[-1]
    original_dtype = grid.dtype
    grid = grid.float().reshape(1, old_grid[0], old_grid[1], embed_dim).permute(0, 3, 1, 2)
    grid = F.interpolate(
        grid, size=new_grid, mode="bicubic", align_corners=False, antialias=antialias
    )
    grid = grid.permute(0, 2, 3, 1).reshape(1, -1, embed_dim).to(original_dtype)
    return torch.cat([prefix, grid], dim=1)


class VisionTransformer(nn.Module):
    """Vision Transformer for inputs of any size that can return its attentions.

    Arguments
    ---------
    in_chans : int
        Input channels (1 for a spectrogram, 3 for ImageNet weights).
    num_classes : int
        Classes of the linear head; ``0`` makes :meth:`forward` return the
        pooled features (B, embed_dim).
    patch_size : int
        Side of the square patches (on the stem output when ``stem="cnn"``).
    embed_dim : int
        Token size.
    depth : int
        Number of transformer blocks.
    num_heads : int
        Attention heads per block.
    mlp_ratio : float
        MLP hidden size relative to ``embed_dim``.
    qkv_bias : bool
        Bias of the query/key/value projections.
    drop_rate : float
        Dropout after the position embedding, in the blocks and before the head.
    attn_drop_rate : float
        Dropout on the attention probabilities.
    drop_path_rate : float
        Stochastic depth, increasing linearly from 0 to this value over the blocks.
    layer_norm_eps : float
        LayerNorm epsilon (timm 1e-6; Hugging Face ViT configs 1e-12).
    global_pool : str
        ``"token"`` (class token) or ``"avg"`` (mean of all tokens including the
        class token, the paper's recipe).
    class_token : bool
        Whether to prepend a class token (``global_pool="token"`` needs it).
    pos_embed_grid : int or tuple of int
        Patch grid (h, w) the learned position embeddings are stored for; other
        grids get a bicubic resampling of them.
    pos_embed_antialias : bool
        ``antialias`` of that resampling: True as timm, False as Hugging Face.
    stem : str or None
        ``None`` (plain patch embedding) or ``"cnn"`` (:class:`ConvStem` first).
    stem_channels : sequence of int
        Channels of the ``ConvStem`` blocks (stride ``2 ** len(stem_channels)``).
    stem_strided_blocks : int
        How many of the stem's first blocks are a single stride-2 convolution
        (:class:`~focalnet_lobes.models.stems.StridedConvBlock`); 0 is the VGG stem.
        Only with ``stem="cnn"``.
    fused_attention : bool
        Attention without returned probabilities through
        ``F.scaled_dot_product_attention`` (True, timm's ``fused_attn``) or through
        the explicit ``softmax(Q K^T / sqrt(d)) V`` (False: the same function up to
        float rounding, faster to train on CPU for the compact model's ~100 tokens,
        ``benchmarks/train_speed.py``). Returned attentions always use the explicit path.

    Example
    -------
    >>> model = VisionTransformer(in_chans=1, num_classes=5, patch_size=8, embed_dim=32,
    ...                           depth=2, num_heads=4, pos_embed_grid=(4, 4)).eval()
    >>> spectrogram = torch.randn(2, 1, 43, 51)
    >>> model(spectrogram).shape
    torch.Size([2, 5])
    >>> model.grid_size(43, 51)
    (6, 7)
    >>> tokens, attentions = model.forward_features(spectrogram, return_attentions=True)
    >>> tokens.shape, len(attentions), attentions[0].shape
    (torch.Size([2, 43, 32]), 2, torch.Size([2, 4, 43, 43]))
    """

    def __init__(
        self,
        in_chans=3,
        num_classes=1000,
        patch_size=16,
        embed_dim=768,
        depth=12,
        num_heads=12,
        mlp_ratio=4.0,
        qkv_bias=True,
        drop_rate=0.0,
        attn_drop_rate=0.0,
        drop_path_rate=0.0,
        layer_norm_eps=1e-6,
        global_pool="token",
        class_token=True,
        pos_embed_grid=(14, 14),
        pos_embed_antialias=True,
        stem=None,
        stem_channels=(32, 64),
        stem_strided_blocks=0,
        fused_attention=True,
    ):
        super().__init__()
        if global_pool not in GLOBAL_POOLS:
            raise ValueError(f"global_pool must be one of {GLOBAL_POOLS}, got '{global_pool}'")
        if global_pool == "token" and not class_token:
            raise ValueError("global_pool='token' needs class_token=True")
        if stem not in STEMS:
            raise ValueError(f"stem must be one of {STEMS}, got '{stem}'")
        if stem_strided_blocks and stem != "cnn":
            raise ValueError("stem_strided_blocks needs stem='cnn'")
        if embed_dim % num_heads != 0:
            raise ValueError(
                f"embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})"
            )
        if num_classes < 0 or in_chans < 1 or depth < 0:
            raise ValueError(
                f"need num_classes >= 0, in_chans >= 1, depth >= 0; got {num_classes}, "
                f"{in_chans}, {depth}"
            )
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.patch_size = _pair(patch_size, "patch_size")[0]
        self.embed_dim = self.num_features = embed_dim
        self.num_heads = num_heads
        self.global_pool = global_pool
        self.num_prefix_tokens = 1 if class_token else 0
        self.pos_embed_grid = _pair(pos_embed_grid, "pos_embed_grid")
        self.pos_embed_antialias = pos_embed_antialias

        if stem == "cnn":
            self.stem = ConvStem(
                in_chans, tuple(stem_channels), embed_dim, strided_blocks=stem_strided_blocks
            )
            patch_in_chans, stem_stride = embed_dim, self.stem.stride
        else:
            self.stem = None
            patch_in_chans, stem_stride = in_chans, 1
        self.total_stride = stem_stride * self.patch_size
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(
            patch_in_chans, embed_dim, kernel_size=self.patch_size, stride=self.patch_size
        )
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if class_token else None
        num_positions = self.num_prefix_tokens + self.pos_embed_grid[0] * self.pos_embed_grid[1]
        self.pos_embed = nn.Parameter(torch.zeros(1, num_positions, embed_dim))
        self.pos_drop = nn.Dropout(drop_rate)

        drop_path_rates = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.ModuleList(
            Block(
                embed_dim,
                num_heads,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                drop=drop_rate,
                attn_drop=attn_drop_rate,
                drop_path=rate,
                layer_norm_eps=layer_norm_eps,
                fused_attention=fused_attention,
            )
            for rate in drop_path_rates
        )
        self.norm = nn.LayerNorm(embed_dim, eps=layer_norm_eps)
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self._init_weights()

    def _init_weights(self):
        """timm-style initialisation: truncated normal (std 0.02) for tokens and linears."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=1e-6)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def no_weight_decay(self):
        """Names of the parameters usually excluded from weight decay.

        Returns
        -------
        set of str

        Example
        -------
        >>> sorted(VisionTransformer(depth=0, embed_dim=8, num_heads=1).no_weight_decay())
        ['cls_token', 'pos_embed']
        """
        return {"pos_embed", "cls_token"}

    def reset_classifier(self, num_classes):
        """Replace the head by a fresh one with ``num_classes`` outputs (0: no head).

        Arguments
        ---------
        num_classes : int
            New number of classes.

        Example
        -------
        >>> model = VisionTransformer(embed_dim=8, depth=1, num_heads=2, num_classes=10)
        >>> model.reset_classifier(3)
        >>> model.head
        Linear(in_features=8, out_features=3, bias=True)
        """
        self.num_classes = num_classes
        self.head = nn.Linear(self.embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        if num_classes > 0:
            nn.init.trunc_normal_(self.head.weight, std=0.02)
            nn.init.zeros_(self.head.bias)

    def grid_size(self, time_steps, freq_bins):
        """Patch grid (h, w) of an input of ``time_steps`` x ``freq_bins`` (N = h * w).

        Arguments
        ---------
        time_steps : int
            Input height T.
        freq_bins : int
            Input width F.

        Returns
        -------
        tuple of int
            ``ceil(T' / patch_size), ceil(F' / patch_size)`` where (T', F') is the
            stem output size (the input size without a stem).

        Example
        -------
        >>> VisionTransformer(patch_size=16, embed_dim=8, depth=0, num_heads=1).grid_size(431, 513)
        (27, 33)
        """
        if self.stem is not None:
            time_steps, freq_bins = self.stem.output_size(time_steps, freq_bins)
        return -(-time_steps // self.patch_size), -(-freq_bins // self.patch_size)

    def _check_input(self, x):
        """Raise a ValueError unless ``x`` is (B, in_chans, T, F)."""
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != self.in_chans:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(
                f"expected an input of shape (batch, {self.in_chans}, time, freq), got {shape}"
            )
        if x.shape[0] == 0 or x.shape[2] == 0 or x.shape[3] == 0:
            raise ValueError(f"input has an empty dimension: {tuple(x.shape)}")

    def position_embedding(self, grid):
        """Position embeddings (1, prefix + h*w, D) for the patch ``grid`` (h, w).

        Arguments
        ---------
        grid : tuple of int
            Patch grid (h, w).

        Returns
        -------
        torch.Tensor

        Example
        -------
        >>> model = VisionTransformer(embed_dim=8, depth=0, num_heads=1, pos_embed_grid=4)
        >>> model.position_embedding((2, 3)).shape
        torch.Size([1, 7, 8])
        """
        return resample_position_embedding(
            self.pos_embed,
            grid,
            self.pos_embed_grid,
            num_prefix_tokens=self.num_prefix_tokens,
            antialias=self.pos_embed_antialias,
        )

    def embed(self, x):
        """Input (B, in_chans, T, F) -> tokens (B, prefix + h*w, D) with positions added.

        Arguments
        ---------
        x : torch.Tensor
            (B, in_chans, T, F).

        Returns
        -------
        torch.Tensor

        Example
        -------
        >>> model = VisionTransformer(in_chans=1, patch_size=4, embed_dim=8, depth=0, num_heads=1)
        >>> model.embed(torch.randn(1, 1, 10, 12)).shape
        torch.Size([1, 10, 8])
        """
        self._check_input(x)
        if self.stem is not None:
            x = self.stem(x)
        pad_time = -x.shape[2] % self.patch_size
        pad_freq = -x.shape[3] % self.patch_size
        if pad_time or pad_freq:
            x = F.pad(x, (0, pad_freq, 0, pad_time))
        x = self.patch_embed.proj(x)
        grid = (x.shape[2], x.shape[3])
        tokens = x.flatten(2).transpose(1, 2)
        if self.cls_token is not None:
            tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        tokens = tokens + self.position_embedding(grid)
        return self.pos_drop(tokens)

    def forward_features(self, x, return_attentions=False):
        """Tokens after the final norm, optionally with every layer's attention probabilities.

        Arguments
        ---------
        x : torch.Tensor
            (B, in_chans, T, F), any T and F.
        return_attentions : bool
            Whether to also return the attention probabilities.

        Returns
        -------
        tokens : torch.Tensor
            (B, prefix + N, D) with N = h * w from :meth:`grid_size`; the class
            token, if any, comes first and the patches follow in row-major
            (time-major) order.
        attentions : list of torch.Tensor
            Only with ``return_attentions``: one (B, num_heads, prefix + N,
            prefix + N) tensor of softmax probabilities per layer, in the graph.

        Example
        -------
        >>> model = VisionTransformer(in_chans=1, patch_size=4, embed_dim=8, depth=2, num_heads=2)
        >>> model.forward_features(torch.randn(1, 1, 8, 8)).shape
        torch.Size([1, 5, 8])
        """
        tokens = self.embed(x)
        attentions = []
        for block in self.blocks:
            tokens, probabilities = block(tokens, return_attention=return_attentions)
            if return_attentions:
                attentions.append(probabilities)
        tokens = self.norm(tokens)
        if return_attentions:
            return tokens, attentions
        return tokens

    def pool(self, tokens):
        """Pool tokens (B, M, D) -> (B, D) as ``global_pool`` says.

        Arguments
        ---------
        tokens : torch.Tensor
            Output of :meth:`forward_features`.

        Returns
        -------
        torch.Tensor

        Example
        -------
        >>> model = VisionTransformer(embed_dim=2, depth=0, num_heads=1, global_pool="avg")
        >>> model.pool(torch.tensor([[[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]]))
        tensor([[2., 3.]])
        """
        if tokens.ndim != 3:
            raise ValueError(f"expected tokens (batch, tokens, dim), got {tuple(tokens.shape)}")
        if self.global_pool == "token":
            return tokens[:, 0]
        return tokens.mean(dim=1)

    def forward_head(self, tokens, pre_logits=False):
        """Pool the tokens and apply the head.

        Arguments
        ---------
        tokens : torch.Tensor
            (B, M, D) from :meth:`forward_features`.
        pre_logits : bool
            Return the pooled features (B, D) instead of the logits.

        Returns
        -------
        torch.Tensor
            (B, num_classes) logits, or (B, D) features.

        Example
        -------
        >>> model = VisionTransformer(embed_dim=8, depth=0, num_heads=1, num_classes=3)
        >>> model.forward_head(torch.randn(2, 5, 8)).shape
        torch.Size([2, 3])
        """
        pooled = self.head_drop(self.pool(tokens))
        return pooled if pre_logits else self.head(pooled)

    def forward(self, x):
        """Logits (B, num_classes), or pooled features (B, D) when ``num_classes=0``."""
        return self.forward_head(self.forward_features(x))


# ImageNet sizes of timm's vit_{tiny,small,base}_patch16_224 (5.7 / 22.1 / 86.6 M parameters).
register_model(
    "vit_tiny_patch16", VisionTransformer, patch_size=16, embed_dim=192, depth=12, num_heads=3
)
register_model(
    "vit_small_patch16", VisionTransformer, patch_size=16, embed_dim=384, depth=12, num_heads=6
)
register_model(
    "vit_base_patch16", VisionTransformer, patch_size=16, embed_dim=768, depth=12, num_heads=12
)
# Compact audio ViT: the ConvStem of the compact FocalNet (stride 4) then 2x2 patches,
# total stride 8. Position embeddings are stored for the 54 x 65 grid of a 5 s clip
# at 16 kHz (431 x 513 log1p STFT), so that the nominal input needs no resampling;
# mean pooling over all tokens as the paper's recipe.
register_model(
    "vit_audio_small",
    VisionTransformer,
    stem="cnn",
    stem_channels=(32, 64),
    patch_size=2,
    embed_dim=192,
    depth=6,
    num_heads=3,
    pos_embed_grid=(54, 65),
    global_pool="avg",
)

"""Convolutional stems that replace patch embedding on small audio datasets.

A patch-embedding transformer trained from scratch on a few hundred clips lacks the
locality prior of a CNN. :class:`ConvStem` is the front of a small VGG-style CNN
(double 3x3 convolution + BatchNorm + ReLU + 2x2 average pooling per block); FocalNet
and ViT use it in place of their patch embedding so that both get the same
inductive bias and differ only in focal modulation versus self-attention.
Its first blocks may instead be :class:`StridedConvBlock` (one 3x3 convolution of
stride 2, as the first layer of ResNet-style stems), which never computes an
activation at the input's full resolution.
"""

import torch
from torch import nn


class ConvBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm and ReLU, then 2x2 average pooling.

    Arguments
    ---------
    in_channels : int
        Input channels.
    out_channels : int
        Output channels.
    pool : bool
        Whether to halve the resolution with 2x2 average pooling (odd sizes are
        rounded up, so no input bin is dropped).

    Example
    -------
    >>> block = ConvBlock(1, 8)
    >>> block(torch.randn(2, 1, 15, 16)).shape
    torch.Size([2, 8, 8, 8])
    """

    def __init__(self, in_channels, out_channels, pool=True):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU(inplace=True)
        self.pool = (
            nn.AvgPool2d(2, ceil_mode=True, count_include_pad=False) if pool else nn.Identity()
        )

    def forward(self, x):
        """Apply the block to ``x`` of shape (B, C, H, W)."""
        x = self.act(self.bn1(self.conv1(x)))
        x = self.act(self.bn2(self.conv2(x)))
        return self.pool(x)


class StridedConvBlock(nn.Module):
    """One 3x3 convolution of stride 2 with BatchNorm and ReLU.

    A cheaper stand-in for :class:`ConvBlock` on the same output grid
    (``ceil(H / 2) x ceil(W / 2)``): the convolution's stride replaces the average
    pooling, so no activation, BatchNorm or ReLU runs at the input's resolution.
    On the CPU recipes' 431 x 64 features the first block's full-resolution
    BatchNorm and ReLU are most of a training step's stem time
    (``benchmarks/train_speed.py``).

    Arguments
    ---------
    in_channels : int
        Channels C of the input (B, C, H, W).
    out_channels : int
        Channels of the convolution, BatchNorm and output.

    Example
    -------
    >>> block = StridedConvBlock(1, 8)
    >>> block(torch.randn(2, 1, 15, 16)).shape
    torch.Size([2, 8, 8, 8])
    """

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        """Apply the block to ``x`` of shape (B, C, H, W)."""
        return self.act(self.bn1(self.conv1(x)))


class ConvStem(nn.Module):
    """A stack of :class:`ConvBlock` followed by a 1x1 projection to ``embed_dim``.

    The output has stride ``2 ** len(channels)`` and shape
    (B, embed_dim, ceil(H / stride), ceil(W / stride)).

    Arguments
    ---------
    in_chans : int
        Input channels (1 for a spectrogram).
    channels : sequence of int
        Output channels of each block.
    embed_dim : int
        Channels of the output; a 1x1 convolution projects to it when it differs
        from ``channels[-1]``.
    channels_last : bool
        Run the blocks on the ``channels_last`` memory layout (weights and
        activations): the same values in another memory order, and a faster
        training step on CPU (``benchmarks/train_speed.py``). False keeps the
        default layout (the reference of that benchmark).
    strided_blocks : int
        How many of the first blocks are :class:`StridedConvBlock` (one stride-2
        convolution) instead of :class:`ConvBlock`; 0 (the default) is the VGG
        stem. The output grid is the same either way.

    Raises
    ------
    ValueError
        If ``strided_blocks`` is not an int in ``[0, len(channels)]``.

    Example
    -------
    >>> stem = ConvStem(1, channels=(16, 32), embed_dim=48)
    >>> stem.stride
    4
    >>> stem(torch.randn(2, 1, 431, 64)).shape
    torch.Size([2, 48, 108, 16])
    >>> fast = ConvStem(1, channels=(16, 32), embed_dim=48, strided_blocks=1)
    >>> type(fast.blocks[0]).__name__, fast(torch.randn(2, 1, 431, 64)).shape
    ('StridedConvBlock', torch.Size([2, 48, 108, 16]))
    """

    def __init__(self, in_chans=1, channels=(32, 64), embed_dim=64, channels_last=True,
                 strided_blocks=0):
        super().__init__()
        channels = tuple(channels)
        if (not isinstance(strided_blocks, int) or isinstance(strided_blocks, bool)
                or not 0 <= strided_blocks <= len(channels)):
            raise ValueError(
                f"strided_blocks (YAML: stem_strided_blocks) must be an int in "
                f"[0, {len(channels)}] (the number of stem blocks), got {strided_blocks!r}"
            )
        self.strided_blocks = strided_blocks
        blocks = []
        previous = in_chans
        for index, width in enumerate(channels):
            block = StridedConvBlock if index < self.strided_blocks else ConvBlock
            blocks.append(block(previous, width))
            previous = width
        self.blocks = nn.Sequential(*blocks)
        self.proj = (
            nn.Conv2d(previous, embed_dim, 1) if previous != embed_dim else nn.Identity()
        )
        self.stride = 2 ** len(channels)
        self.embed_dim = embed_dim
        self.channels_last = channels_last
        if channels_last:
            # Loading a state dict copies into these tensors and keeps the layout.
            self.to(memory_format=torch.channels_last)

    def output_size(self, height, width):
        """Return the (height, width) of the output grid for an input grid.

        Arguments
        ---------
        height : int
            Input height (time frames).
        width : int
            Input width (frequency bins).

        Returns
        -------
        tuple of int

        Example
        -------
        >>> ConvStem(1, channels=(8, 8, 8), embed_dim=8).output_size(431, 513)
        (54, 65)
        """
        for _ in range(len(self.blocks)):
            height, width = -(-height // 2), -(-width // 2)
        return height, width

    def forward(self, x):
        """Map (B, in_chans, H, W) to (B, embed_dim, H / stride, W / stride).

        With ``channels_last`` the blocks run on that layout (same values, another
        memory order), on which oneDNN's convolutions, batch norms and poolings
        are faster on CPU; the focal stages that follow use it anyway.
        """
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.proj(self.blocks(x))

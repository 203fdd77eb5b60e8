"""Layers shared by the FocalNet and ViT lobes."""

from torch import nn


class DropPath(nn.Module):
    """Stochastic depth: zero whole samples of a residual branch during training.

    Arguments
    ---------
    drop_prob : float
        Probability of dropping the branch of a sample; kept samples are scaled
        by ``1 / (1 - drop_prob)``.

    Example
    -------
    >>> import torch
    >>> drop = DropPath(0.5).eval()
    >>> x = torch.ones(4, 3, 2)
    >>> torch.equal(drop(x), x)
    True
    """

    def __init__(self, drop_prob=0.0):
        super().__init__()
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError(f"drop_prob must be in [0, 1), got {drop_prob}")
        self.drop_prob = drop_prob

    def forward(self, x):
        """Drop samples of ``x`` (B, ...) with probability ``drop_prob`` when training."""
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep_prob = 1.0 - self.drop_prob
        mask_shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        keep_mask = x.new_empty(mask_shape).bernoulli_(keep_prob)
        return x * keep_mask / keep_prob

    def extra_repr(self):
        """Show the drop probability."""
        return f"drop_prob={self.drop_prob}"

"""Layers and map helpers shared by the model lobes and the interpreters.

Model code imports from here, never from :mod:`focalnet_lobes.interpretation.interpret`;
:func:`modulation_map` lives here because the FocalNet's ``global_pool="modulation"``
pools by the very map the interpretation thresholds.
"""

import torch
from torch import nn

MODULATION_REDUCTIONS = ("l2", "mean_abs", "mean", "max")


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


def modulation_map(modulators, stage=-1, reduction="l2"):
    """Reduce one stage's modulator over channels to a (B, h, w) map.

    Arguments
    ---------
    modulators : list of torch.Tensor or torch.Tensor
        Modulator of each stage, (B, C_s, h_s, w_s) (as in
        ``forward_with_maps(...)[1]["modulators"]``), or a single such tensor.
    stage : int
        Which stage (Python indexing: -1 is the last stage).
    reduction : str
        ``"l2"``: Euclidean norm over channels, sqrt(sum_c m_c^2) (default, as in
        the paper); ``"mean_abs"``: mean_c |m_c|; ``"mean"``: mean_c m_c;
        ``"max"``: max_c m_c. The last two can be negative.

    Returns
    -------
    torch.Tensor
        (B, h_s, w_s), differentiable with respect to the modulators.

    Example
    -------
    >>> modulator = torch.tensor([[[[3.0, 0.0]], [[4.0, -1.0]]]])  # (1, 2, 1, 2)
    >>> modulation_map([modulator])
    tensor([[[5., 1.]]])
    >>> modulation_map(modulator, reduction="mean")
    tensor([[[ 3.5000, -0.5000]]])
    """
    if isinstance(modulators, torch.Tensor):
        modulators = [modulators]
    if not isinstance(modulators, (list, tuple)) or len(modulators) == 0:
        raise ValueError("modulation_map expects a non-empty list of (B, C, h, w) tensors")
    if not -len(modulators) <= stage < len(modulators):
        raise ValueError(
            f"stage {stage} out of range for {len(modulators)} stage modulators"
        )
    modulator = modulators[stage]
    if modulator.dim() != 4:
        raise ValueError(
            f"a modulator must be (B, C, h, w), got shape {tuple(modulator.shape)}"
        )
    if reduction == "l2":
        return torch.linalg.vector_norm(modulator, ord=2, dim=1)
    if reduction == "mean_abs":
        return modulator.abs().mean(dim=1)
    if reduction == "mean":
        return modulator.mean(dim=1)
    if reduction == "max":
        return modulator.amax(dim=1)
    raise ValueError(
        f"unknown reduction '{reduction}', expected one of {MODULATION_REDUCTIONS}"
    )

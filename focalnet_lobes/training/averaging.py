"""Weight averaging during training: an exponential moving average of the weights.

The average is PyTorch's :class:`torch.optim.swa_utils.AveragedModel` updated with an
exponential moving average (the "model EMA" of timm's ``ModelEmaV3``; averaging the
iterates of SGD: Polyak & Juditsky 1992, uniformly over a schedule's end: SWA,
Izmailov et al. 2018) after each optimiser step from a start epoch on; at the end of the
last epoch's training (``recipes/train.py``, before that epoch's validation) it replaces the
trained weights, so that the last validation, the last checkpoint, the test stage and every
later use of the run (interpretation, export) take the averaged model.
"""

import math
import numbers

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from focalnet_lobes.training.plan import last_epoch_before


def ema_multi_avg_fn(decay):
    """An ``AveragedModel`` update: EMA of floating tensors, a copy of the others.

    ``W_avg <- decay * W_avg + (1 - decay) * W`` for floating-point parameters and
    buffers (``torch._foreach_lerp_``, as :func:`torch.optim.swa_utils.get_ema_multi_avg_fn`);
    integer buffers (BatchNorm's ``num_batches_tracked``, ``GlobalFeatureNorm``'s
    ``num_updates``: counts, not weights) are copied from the model, as timm's
    ``ModelEmaV3`` does (torch's function would average them and round down).

    Arguments
    ---------
    decay : float
        In [0, 1].

    Returns
    -------
    callable
        ``(averaged tensors, model tensors, n_averaged) -> None``, in place; each call
        gets tensors of one dtype (``AveragedModel`` groups them by device and dtype).

    Example
    -------
    >>> update = ema_multi_avg_fn(0.5)
    >>> average, count = [torch.tensor([2.0])], [torch.tensor(3)]
    >>> update(average, [torch.tensor([4.0])], None)
    >>> update(count, [torch.tensor(10)], None)
    >>> average[0].item(), count[0].item()
    (3.0, 10)
    """

    @torch.no_grad()
    def update(averaged, current, _):
        if torch.is_floating_point(averaged[0]) or torch.is_complex(averaged[0]):
            torch._foreach_lerp_(averaged, current, 1 - decay)
        else:
            torch._foreach_copy_(averaged, current)

    return update


class WeightAverage(nn.Module):
    """Exponential moving average of a model's weights and buffers, from a start epoch on.

    ``W_avg <- decay * W_avg + (1 - decay) * W`` after each optimiser step of the
    epochs after ``start_epoch``; the first update copies ``W`` (PyTorch's
    ``AveragedModel``), so the random initialisation never enters the average.
    Floating-point buffers (BatchNorm and feature-norm running statistics) are averaged
    the same way, integer ones (update counts) copied (:func:`ema_multi_avg_fn`).
    The module is a checkpoint recoverable: its ``state_dict`` holds the average and
    the number of updates, so a resumed run continues the same average.

    Arguments
    ---------
    decay : float or None
        Weight of the old average per step, in [0, 1); ``None`` turns averaging off
        (every method then does nothing). The average's horizon is about
        ``1 / (1 - decay)`` steps.
    start_epoch : float
        Epochs (1-based) after this one are averaged: ``0`` averages from the first
        step; ``number_of_epochs * 0.5`` the second half. Floored by
        :func:`~focalnet_lobes.training.plan.last_epoch_before`, as the faithfulness
        terms' ``start_epoch``, so one fraction of ``number_of_epochs`` starts both
        after the same epoch.

    Raises
    ------
    ValueError
        ``decay`` not a number in [0, 1) (nor None), or ``start_epoch`` not a number >= 0;
        the message names the YAML keys (``weight_average_decay``,
        ``weight_average_start_epoch``).

    Example
    -------
    >>> model = torch.nn.Linear(1, 1, bias=False)
    >>> average = WeightAverage(decay=0.5, start_epoch=1)
    >>> average.attach(model)
    >>> with torch.no_grad():
    ...     _ = model.weight.fill_(2.0)
    >>> average.update(model, epoch=1)  # not after start_epoch: nothing averaged
    >>> average.updates
    0
    >>> average.update(model, epoch=2)  # first update: a copy
    >>> with torch.no_grad():
    ...     _ = model.weight.fill_(4.0)
    >>> average.update(model, epoch=2)  # 0.5 * 2 + 0.5 * 4
    >>> average.apply_to(model)
    True
    >>> model.weight.item()
    3.0
    """

    def __init__(self, decay=None, start_epoch=0):
        super().__init__()
        if decay is not None and not (_is_number(decay) and 0.0 <= decay < 1.0):
            raise ValueError(f"weight_average_decay must be in [0, 1) or null, got {decay!r}")
        if not (_is_number(start_epoch) and start_epoch >= 0):
            raise ValueError(
                f"weight_average_start_epoch must be a number >= 0, got {start_epoch!r}"
            )
        self.decay = None if decay is None else float(decay)
        self.start_epoch = last_epoch_before(start_epoch)

        self.average = None

    @property
    def active(self):
        """Whether averaging is on (a decay was given)."""
        return self.decay is not None

    @property
    def updates(self):
        """Number of steps averaged so far (0 before the start epoch or when off)."""
        return 0 if self.average is None else int(self.average.n_averaged)

    def attach(self, model):
        """Create the average as a copy of ``model`` (before any checkpoint recovery).

        Arguments
        ---------
        model : torch.nn.Module
            The model trained (not a DDP wrapper: its ``module``).
        """
        if self.active:
            self.average = AveragedModel(
                model, multi_avg_fn=ema_multi_avg_fn(self.decay), use_buffers=True
            )
            self.average.requires_grad_(False)

    def update(self, model, epoch):
        """Average ``model``'s current weights in, if ``epoch`` is after the start epoch.

        Arguments
        ---------
        model : torch.nn.Module
            The model attached (same architecture).
        epoch : int
            The epoch in progress, 1-based.
        """
        if self.average is not None and epoch > self.start_epoch:
            self.average.update_parameters(model)

    def apply_to(self, model):
        """Copy the average's weights and buffers into ``model``.

        Arguments
        ---------
        model : torch.nn.Module
            The model attached (same architecture), changed in place.

        Returns
        -------
        bool
            True if weights were copied, False when off or nothing was averaged yet
            (the model is then left as it is).
        """
        if self.updates == 0:
            return False
        with torch.no_grad():
            for target, source in zip(
                list(model.parameters()) + list(model.buffers()),
                list(self.average.module.parameters()) + list(self.average.module.buffers()),
                strict=True,
            ):
                target.copy_(source)
        return True


def _is_number(value):
    """A finite real number, not a bool (YAML's ``True`` is not a decay)."""
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value))

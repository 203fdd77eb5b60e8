"""Weight averaging during training: an exponential moving average of the weights.

The average is PyTorch's :class:`torch.optim.swa_utils.AveragedModel` with
:func:`torch.optim.swa_utils.get_ema_multi_avg_fn` (Polyak & Juditsky 1992; the
"model EMA" of timm's ``ModelEmaV3``), updated after each optimiser step from a start
epoch on; after the last epoch it replaces the trained weights, so that the last
checkpoint, the test stage and every later use of the run (interpretation, export)
take the averaged model.
"""

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


class WeightAverage(nn.Module):
    """Exponential moving average of a model's weights and buffers, from a start epoch on.

    ``W_avg <- decay * W_avg + (1 - decay) * W`` after each optimiser step of the
    epochs after ``start_epoch``; the first update copies ``W`` (PyTorch's
    ``AveragedModel``), so the random initialisation never enters the average.
    Buffers (BatchNorm running statistics) are averaged the same way.
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
        step; ``number_of_epochs * 0.5`` the second half.

    Raises
    ------
    ValueError
        ``decay`` outside [0, 1) or ``start_epoch`` negative.

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
        if decay is not None and not 0.0 <= float(decay) < 1.0:
            raise ValueError(f"weight_average_decay must be in [0, 1) or null, got {decay}")
        if float(start_epoch) < 0:
            raise ValueError(f"weight_average_start_epoch must be >= 0, got {start_epoch}")
        self.decay = None if decay is None else float(decay)
        self.start_epoch = float(start_epoch)
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
                model, multi_avg_fn=get_ema_multi_avg_fn(self.decay), use_buffers=True
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

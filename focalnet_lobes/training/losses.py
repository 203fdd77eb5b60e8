"""Classification losses on logits with hard or soft (mixup) targets."""

import math

import torch
from torch import nn

from focalnet_lobes.training.plan import last_epoch_before


def _as_soft_targets(targets, num_classes):
    """(B, K) float targets from (B,), (B, 1) class indices or (B, K) probabilities."""
    if targets.dim() == 2 and targets.shape[1] == 1 and num_classes != 1:
        targets = targets[:, 0]
    if targets.dim() == 1:
        if targets.is_floating_point():
            raise ValueError("class-index targets must be integers")
        if targets.numel() and (targets.min() < 0 or targets.max() >= num_classes):
            raise ValueError(f"targets must lie in [0, {num_classes}), got {targets.tolist()}")
        return torch.nn.functional.one_hot(targets.long(), num_classes).float()
    if targets.dim() != 2 or targets.shape[1] != num_classes:
        raise ValueError(
            f"targets must be (B,) class indices or (B, {num_classes}) probabilities, "
            f"got {tuple(targets.shape)}"
        )
    return targets.float()


def _reduce(losses, reduction):
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    return losses


class SoftTargetCrossEntropy(nn.Module):
    """Cross-entropy with label smoothing for integer or soft targets.

    Arguments
    ---------
    label_smoothing : float
        Mass spread uniformly over the classes: targets become
        ``(1 - label_smoothing) * t + label_smoothing / K``.
    reduction : str
        ``"mean"``, ``"sum"`` or ``"none"`` over the batch.

    Example
    -------
    >>> loss = SoftTargetCrossEntropy(label_smoothing=0.0)
    >>> logits = torch.tensor([[0.0, 0.0]])
    >>> round(float(loss(logits, torch.tensor([1]))), 4)  # log(2)
    0.6931
    >>> round(float(loss(logits, torch.tensor([[0.5, 0.5]]))), 4)
    0.6931
    """

    def __init__(self, label_smoothing=0.0, reduction="mean"):
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got '{reduction}'")
        self.label_smoothing = label_smoothing
        self.reduction = reduction

    def forward(self, logits, targets):
        """Loss of ``logits`` (B, K) against targets (B,)/(B, 1) ints or (B, K) probabilities."""
        num_classes = logits.shape[-1]
        targets = _as_soft_targets(targets, num_classes)
        targets = targets * (1 - self.label_smoothing) + self.label_smoothing / num_classes
        log_probs = torch.log_softmax(logits.float(), dim=-1)
        return _reduce(-(targets * log_probs).sum(-1), self.reduction)


class AdditiveAngularMarginLoss(nn.Module):
    """Additive angular margin (ArcFace) loss on the logits of a cosine head.

    The cosine head gives ``logits = scale * cos(theta)``. The margin is added to
    the angle of the target class, ``cos(theta + m)``, as SpeechBrain's
    ``AdditiveAngularMargin`` (past ``theta = pi - m`` the penalty becomes
    ``cos(theta) - m sin(pi - m)``, or with ``easy_margin`` only positive cosines get
    a margin), and the scaled result goes through the (soft-target) cross-entropy:
    ``z_k = scale * (t_k phi(theta_k) + (1 - t_k) cos(theta_k))``. For class-index
    targets and no smoothing this is SpeechBrain's
    ``LogSoftmaxWrapper(AdditiveAngularMargin(m, s))``, the paper's loss; soft (mixup)
    targets interpolate between the two cosines.

    Arguments
    ---------
    margin : float
        Angular margin in radians, in [0, pi / 2).
    scale : float
        The cosine head's logit scale (logits are divided by it to get cosines).
    easy_margin : bool
        Apply the margin only where the cosine is positive.
    label_smoothing : float
        As in :class:`SoftTargetCrossEntropy`.
    reduction : str
        ``"mean"``, ``"sum"`` or ``"none"``.

    Example
    -------
    >>> loss = AdditiveAngularMarginLoss(margin=0.0, scale=1.0)
    >>> round(float(loss(torch.tensor([[0.0, 0.0]]), torch.tensor([0]))), 4)
    0.6931
    """

    def __init__(self, margin=0.2, scale=30.0, easy_margin=False, label_smoothing=0.0, reduction="mean"):
        super().__init__()
        if not 0.0 <= margin < math.pi / 2:
            raise ValueError(f"margin must be in [0, pi/2) radians, got {margin}")
        if not scale > 0:
            raise ValueError(f"scale must be positive, got {scale}")
        self.margin = float(margin)
        self.scale = float(scale)
        self.easy_margin = easy_margin
        self.cross_entropy = SoftTargetCrossEntropy(label_smoothing, reduction)

    def margin_logits(self, logits, targets):
        """Scaled logits (B, K) with the margin applied in proportion to the targets.

        Example
        -------
        >>> loss = AdditiveAngularMarginLoss(margin=0.0, scale=2.0)
        >>> loss.margin_logits(torch.tensor([[1.0, -1.0]]), torch.tensor([0]))
        tensor([[ 1., -1.]])
        """
        if logits.dim() != 2:
            raise ValueError(f"logits must be (batch, classes), got {tuple(logits.shape)}")
        targets = _as_soft_targets(targets, logits.shape[1])
        if targets.shape[0] != logits.shape[0]:
            raise ValueError(f"{targets.shape[0]} targets for {logits.shape[0]} logits")
        cosines = (logits.float() / self.scale).clamp(-1 + 1e-7, 1 - 1e-7)
        sines = torch.sqrt(1.0 - cosines**2)
        shifted = cosines * math.cos(self.margin) - sines * math.sin(self.margin)
        if self.easy_margin:
            shifted = torch.where(cosines > 0, shifted, cosines)
        else:
            threshold = math.cos(math.pi - self.margin)
            penalty = math.sin(math.pi - self.margin) * self.margin
            shifted = torch.where(cosines > threshold, shifted, cosines - penalty)
        return self.scale * (targets * shifted + (1 - targets) * cosines)

    def forward(self, logits, targets):
        """Loss of cosine-head ``logits`` (B, K) for targets (B,)/(B, 1) or (B, K)."""
        return self.cross_entropy(self.margin_logits(logits, targets), targets)


class MaskedInFidelityLoss(nn.Module):
    """A training term that makes a by-design map faithful: classify what the map keeps.

    For a batch X with (soft) targets y, the model's own interpreter gives logits
    and a map per clip in the same forward pass; the map is thresholded at a
    quantile q drawn uniformly from ``quantiles`` (one q per batch,
    :func:`~focalnet_lobes.interpretation.interpret.quantile_mask`, detached), and
    the term is ``weight * cost(model(M_q * X), y)``: the masked-in input
    (exactly what FID-I and FA evaluate, :mod:`focalnet_lobes.interpretation.metrics`)
    must still be classified. It is the masked-in term of L-MAC's loss (Paissan et
    al., "Listenable Maps for Audio Classifiers", ICML 2024, Eq. 4), applied to the
    classifier and its by-design map instead of a decoder trained after the fact.

    With ``out_weight`` > 0 the masked-out input ``(1 - M_q) * X`` (what FF
    evaluates) must carry no evidence for any class: the term adds
    ``out_weight * KL(U || softmax(model((1 - M_q) * X)))``, the divergence of its
    prediction from the uniform distribution U over the K classes
    (``-mean_k log p_k - log K``, >= 0, 0 when uniform). It plays the role of
    L-MAC's masked-out term (there ``-CE`` of the masked-out input, unbounded;
    the uniform target keeps it bounded below, as the classifier itself is trained).
    Both masked inputs then go through one forward pass of 2B clips.

    With ``fraction`` < 1 both terms are computed on the first
    ``n = ceil(fraction * B)`` clips of the batch only (the batch is shuffled,
    mixed and augmented before, so these are a random subset): the masked pass
    has 2n clips instead of 2B, and the training costs about ``1 + 2 * fraction``
    plain passes instead of 3 (0.25: ~1.5x).

    The masked-in forward pass runs with every BatchNorm and
    :class:`~focalnet_lobes.models.classifier.GlobalFeatureNorm` in evaluation mode
    (running statistics, not updated), so that mostly-zero masked inputs never
    enter the statistics the model is evaluated with; gradients flow as usual.

    Arguments
    ---------
    interpreter : focalnet_lobes.interpretation.interpret.MapInterpreter
        ``interpreter(model, features) -> (logits, maps)`` from one forward pass
        (e.g. ``ModulationContributionInterpreter``).
    cost : callable
        ``cost(logits, targets) -> loss`` (the recipe's ``compute_cost``).
    weight : float
        Weight of the masked-in term (>= 0; 0 turns it off).
    quantiles : sequence of float
        Quantiles in [0, 1) to draw q from.
    out_weight : float
        Weight of the masked-out term (>= 0; 0, the default, turns it off). With
        both weights 0 the term costs nothing (the plain forward pass).
    fraction : float
        Share of each batch, in (0, 1], that the masked passes use (its first
        ``ceil(fraction * B)`` clips; 1.0, the default, is the whole batch).
    input_weighted : bool
        Threshold the interpreter's map times the input
        (:class:`~focalnet_lobes.interpretation.interpret.InputWeightedInterpreter`,
        the map that ``hparams/interpret_focalnet.yaml`` evaluates) instead of the
        map itself: the terms then make faithful the masks that are reported.
        False (the default) thresholds ``interpreter``'s map as it is.
    start_epoch : int or float
        The terms run in the epochs after this one (``forward``'s ``epoch`` >
        ``start_epoch``; 0, the default: every epoch; a float is rounded down,
        e.g. ``0.7 * number_of_epochs``); before, the plain pass alone (no masked
        pass, no cost): the classifier is trained first and its map made faithful
        in the last epochs.

    Raises
    ------
    ValueError
        A negative weight or start epoch, a quantile outside [0, 1), a fraction
        outside (0, 1] or an ``input_weighted`` that is not a bool.

    Example
    -------
    >>> import focalnet_lobes
    >>> from focalnet_lobes.models.classifier import SpectrogramClassifier
    >>> from focalnet_lobes.models.heads import LinearHead
    >>> from focalnet_lobes.interpretation.interpret import ModulationContributionInterpreter
    >>> backbone = focalnet_lobes.create_model(
    ...     "focalnet_audio_small", num_classes=0, in_chans=1, global_pool="modulation")
    >>> model = SpectrogramClassifier(backbone, LinearHead(backbone.num_features, 3))
    >>> term = MaskedInFidelityLoss(ModulationContributionInterpreter(),
    ...                             SoftTargetCrossEntropy(), weight=0.5, quantiles=[0.9])
    >>> features, targets = torch.rand(2, 1, 64, 32), torch.tensor([0, 2])
    >>> logits, loss = term(model, features, targets)
    >>> logits.shape, loss.dim(), bool(loss > 0)
    (torch.Size([2, 3]), 0, True)
    """

    def __init__(self, interpreter, cost, weight=1.0, quantiles=(0.5, 0.6, 0.7, 0.8, 0.9, 0.95),
                 out_weight=0.0, fraction=1.0, start_epoch=0, input_weighted=False):
        super().__init__()
        if float(weight) < 0:
            raise ValueError(f"weight must be >= 0, got {weight}")
        if float(out_weight) < 0:
            raise ValueError(f"out_weight must be >= 0, got {out_weight}")
        quantiles = [float(q) for q in quantiles]
        if not quantiles or any(not 0.0 <= q < 1.0 for q in quantiles):
            raise ValueError(f"quantiles must be in [0, 1), got {quantiles}")
        if not 0.0 < float(fraction) <= 1.0:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        if float(start_epoch) < 0:
            raise ValueError(f"start_epoch must be >= 0, got {start_epoch}")
        if not isinstance(input_weighted, bool):
            raise ValueError(f"input_weighted (YAML key masked_input_weighted) must be True or False, "
                             f"got {input_weighted!r}")
        if input_weighted:
            from focalnet_lobes.interpretation.interpret import InputWeightedInterpreter

            interpreter = InputWeightedInterpreter(interpreter)
        self.interpreter = interpreter
        self.input_weighted = input_weighted
        self.cost = cost
        self.fraction = float(fraction)
        self.start_epoch = last_epoch_before(start_epoch)  # 90 * 0.7 = 62.99999... -> 63
        self.weight = float(weight)
        self.out_weight = float(out_weight)
        self.quantiles = quantiles

    @property
    def active(self):
        """Whether the term runs any masked pass (a weight above 0)."""
        return self.weight > 0.0 or self.out_weight > 0.0

    def runs_at(self, epoch):
        """Whether the masked passes run in ``epoch`` (1-based; None: any epoch)."""
        return self.active and (epoch is None or int(epoch) > self.start_epoch)

    def epochs_run(self, number_of_epochs):
        """The 1-based epochs of a run of ``number_of_epochs`` with the masked passes.

        The epochs where :meth:`runs_at` holds, as a ``range`` (empty when the
        term is inactive or starts after the run).

        Example
        -------
        >>> term = MaskedInFidelityLoss(None, None, start_epoch=40 * 0.7)
        >>> epochs = term.epochs_run(40)
        >>> epochs[0], epochs[-1], len(epochs)
        (29, 40, 12)
        >>> len(term.epochs_run(20)), len(MaskedInFidelityLoss(None, None, weight=0.0).epochs_run(40))
        (0, 0)
        """
        first = min(self.start_epoch, number_of_epochs) if self.active else number_of_epochs
        return range(first + 1, number_of_epochs + 1)

    def forward(self, model, features, targets, epoch=None):
        """``(logits of X (B, K), weighted masked-in + masked-out loss (scalar))``.

        The loss is 0 (and only the plain pass runs) with both weights 0 or in an
        ``epoch`` up to ``start_epoch``; ``epoch=None`` counts as after it.
        """
        from focalnet_lobes.interpretation.interpret import quantile_mask
        from focalnet_lobes.models.classifier import GlobalFeatureNorm

        if not self.runs_at(epoch):
            logits = model(features)
            return logits, logits.new_zeros(())
        logits, maps = self.interpreter(model, features)
        index = int(torch.randint(len(self.quantiles), (1,)))
        n = math.ceil(self.fraction * features.shape[0])
        features, targets = features[:n], targets[:n]
        masks = quantile_mask(maps[:n].detach().float(), self.quantiles[index]).to(features.dtype)
        statistics = [
            m for m in model.modules()
            if isinstance(m, (nn.modules.batchnorm._BatchNorm, GlobalFeatureNorm)) and m.training
        ]
        masked = []
        if self.weight > 0.0:
            masked.append(masks * features)
        if self.out_weight > 0.0:
            masked.append((1 - masks) * features)
        for module in statistics:
            module.eval()
        try:
            masked_logits = model(torch.cat(masked)).split(n)
        finally:
            for module in statistics:
                module.train()
        loss = logits.new_zeros(())
        if self.weight > 0.0:
            loss = loss + self.weight * self.cost(masked_logits[0], targets)
        if self.out_weight > 0.0:
            log_p = masked_logits[-1].float().log_softmax(dim=-1)
            divergence = -log_p.mean(dim=-1) - math.log(log_p.shape[-1])
            loss = loss + self.out_weight * divergence.mean()
        return logits, loss


class TrainingForward(nn.Module):
    """A model and its training term as one module, so that ``DistributedDataParallel`` wraps both.

    :class:`MaskedInFidelityLoss` runs the model on the input and again on its
    masked copies. Under ``torchrun`` every pass whose gradients are to be
    synchronised must happen inside the forward of the module that DDP wraps
    (DDP prepares its gradient reduction per call of that forward), so the
    training recipe wraps this module instead of the bare model when the term is
    active; evaluation calls :attr:`model` directly. The same pattern as
    :class:`~focalnet_lobes.interpretation.posthoc.InterpreterForward` for the
    post-hoc interpreters.

    Arguments
    ---------
    model : torch.nn.Module
        The classifier, features (B, 1, T, F) -> logits (B, K).
    term : MaskedInFidelityLoss
        ``term(model, features, targets) -> (logits, loss)``.

    Example
    -------
    >>> class Term(nn.Module):
    ...     def forward(self, model, features, targets, epoch=None):
    ...         logits = model(features)
    ...         return logits, (logits - targets).pow(2).mean()
    >>> forward = TrainingForward(nn.Linear(3, 2), Term())
    >>> logits, loss = forward(torch.ones(4, 3), torch.zeros(4, 2))
    >>> logits.shape, loss.dim()
    (torch.Size([4, 2]), 0)
    """

    def __init__(self, model, term):
        super().__init__()
        self.model = model
        self.term = term

    def forward(self, features, targets, epoch=None):
        """``(logits (B, K), training term (scalar))`` of ``term(model, features, targets, epoch)``."""
        return self.term(self.model, features, targets, epoch=epoch)

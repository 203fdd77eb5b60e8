"""Classification losses on logits with hard or soft (mixup) targets."""

import torch
from torch import nn


class SoftTargetCrossEntropy(nn.Module):
    """Cross-entropy with label smoothing for integer or soft targets.

    Arguments
    ---------
    label_smoothing : float
        Mass spread uniformly over the classes: targets become
        ``(1 - label_smoothing) * t + label_smoothing / K``.

    Example
    -------
    >>> loss = SoftTargetCrossEntropy(label_smoothing=0.0)
    >>> logits = torch.tensor([[0.0, 0.0]])
    >>> round(float(loss(logits, torch.tensor([1]))), 4)  # log(2)
    0.6931
    >>> round(float(loss(logits, torch.tensor([[0.5, 0.5]]))), 4)
    0.6931
    """

    def __init__(self, label_smoothing=0.0):
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError("label_smoothing must be in [0, 1)")
        self.label_smoothing = label_smoothing

    def forward(self, logits, targets):
        """Mean loss of ``logits`` (B, K) against ``targets`` (B,) ints or (B, K) probabilities."""
        num_classes = logits.shape[-1]
        if targets.dim() == 1:
            targets = torch.nn.functional.one_hot(targets.long(), num_classes)
        targets = targets.to(logits.dtype)
        targets = targets * (1 - self.label_smoothing) + self.label_smoothing / num_classes
        log_probs = torch.log_softmax(logits.float(), dim=-1)
        return -(targets.float() * log_probs).sum(-1).mean()


class AdditiveAngularMarginLoss(nn.Module):
    """Additive angular margin (ArcFace) loss on the logits of a cosine head.

    The head gives ``logits = scale * cos(theta)``; the loss adds the margin ``m``
    to the angle of the target class and applies the soft-target cross-entropy:
    ``z_k = scale * (t_k cos(theta_k + m) + (1 - t_k) cos(theta_k))``. For one-hot
    targets this is SpeechBrain's ``LogSoftmaxWrapper(AdditiveAngularMargin(m, s))``
    (the paper's loss); soft (mixup) targets interpolate between the two cosines.

    Arguments
    ---------
    margin : float
        Angular margin in radians.
    scale : float
        The cosine head's logit scale (logits are divided by it to get cosines).
    label_smoothing : float
        As in :class:`SoftTargetCrossEntropy`.

    Example
    -------
    >>> loss = AdditiveAngularMarginLoss(margin=0.0, scale=1.0)
    >>> round(float(loss(torch.tensor([[0.0, 0.0]]), torch.tensor([0]))), 4)
    0.6931
    """

    def __init__(self, margin=0.2, scale=30.0, label_smoothing=0.0):
        super().__init__()
        self.margin = margin
        self.scale = scale
        self.cross_entropy = SoftTargetCrossEntropy(label_smoothing)

    def forward(self, logits, targets):
        """Mean loss of cosine-head ``logits`` (B, K) against targets (B,) or (B, K)."""
        if targets.dim() == 1:
            targets = torch.nn.functional.one_hot(targets.long(), logits.shape[-1])
        targets = targets.to(torch.float32)
        cosine = (logits.float() / self.scale).clamp(-1 + 1e-7, 1 - 1e-7)
        angle = torch.acos(cosine)
        with_margin = torch.cos(angle + self.margin)
        margin_logits = self.scale * (targets * with_margin + (1 - targets) * cosine)
        return self.cross_entropy(margin_logits, targets)

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

"""Losses: soft-target cross-entropy and the angular-margin loss against SpeechBrain's."""

import math

import pytest
import torch
import torch.nn.functional as F
from speechbrain.nnet.losses import AdditiveAngularMargin, LogSoftmaxWrapper

from focalnet_lobes.models.heads import CosineHead
from focalnet_lobes.training.losses import AdditiveAngularMarginLoss, SoftTargetCrossEntropy

SCALE = 30.0


@pytest.mark.parametrize("easy_margin", [False, True])
def test_angular_margin_loss_matches_speechbrain(easy_margin):
    generator = torch.Generator().manual_seed(0)
    cosines = torch.rand(16, 10, generator=generator) * 2 - 1
    cosines[0, 3] = -0.999  # past pi - margin: the "cosine - mm" branch
    targets = torch.randint(0, 10, (16,), generator=generator)
    targets[0] = 3
    margin = AdditiveAngularMargin(margin=0.2, scale=30, easy_margin=easy_margin)
    expected = LogSoftmaxWrapper(margin)(cosines.unsqueeze(1), targets.unsqueeze(1))
    ours = AdditiveAngularMarginLoss(margin=0.2, scale=SCALE, easy_margin=easy_margin)
    logits = SCALE * cosines
    assert torch.allclose(ours(logits, targets), expected, atol=1e-5)
    assert torch.allclose(ours(logits, targets.unsqueeze(1)), expected, atol=1e-5)
    # One-hot float targets are the same as class indices.
    assert torch.allclose(ours(logits, F.one_hot(targets, 10).float()), expected, atol=1e-5)
    expected_logits = AdditiveAngularMargin(margin=0.2, scale=30, easy_margin=easy_margin)(
        cosines, F.one_hot(targets, 10).float()
    )
    assert torch.allclose(ours.margin_logits(logits, targets), expected_logits, atol=1e-4)


def test_angular_margin_loss_by_hand():
    loss = AdditiveAngularMarginLoss(margin=0.2, scale=10.0)(10.0 * torch.tensor([[0.5, 0.2]]), torch.tensor([0]))
    target_logit = 10.0 * math.cos(math.acos(0.5) + 0.2)
    expected = -target_logit + math.log(math.exp(target_logit) + math.exp(2.0))
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_angular_margin_loss_soft_targets_interpolate_the_margin():
    loss = AdditiveAngularMarginLoss(margin=0.2, scale=10.0)
    logits = 10.0 * torch.tensor([[0.5, 0.2]])
    mixed = loss.margin_logits(logits, torch.tensor([[0.25, 0.75]]))
    with_margin = loss.margin_logits(logits, torch.tensor([[1.0, 1.0]]))
    expected = 0.25 * with_margin[0, 0] + 0.75 * logits[0, 0], 0.75 * with_margin[0, 1] + 0.25 * logits[0, 1]
    assert torch.allclose(mixed[0], torch.stack(expected))


def test_angular_margin_loss_with_cosine_head_gradients():
    torch.manual_seed(0)
    head = CosineHead(8, num_classes=4, scale=SCALE)
    loss = AdditiveAngularMarginLoss(margin=0.2, scale=SCALE, label_smoothing=0.1)(
        head(torch.randn(5, 8)), torch.tensor([0, 1, 2, 3, 0])
    )
    loss.backward()
    assert torch.isfinite(loss) and head.weight.grad.abs().sum() > 0


def test_angular_margin_loss_label_smoothing_and_reduction():
    logits = SCALE * torch.tensor([[0.9, 0.1, -0.3], [0.0, 0.7, 0.2]])
    targets = torch.tensor([0, 1])
    plain = AdditiveAngularMarginLoss(0.2, SCALE)
    smooth = AdditiveAngularMarginLoss(0.2, SCALE, label_smoothing=0.1)
    expected = F.cross_entropy(plain.margin_logits(logits, targets), targets, label_smoothing=0.1)
    assert torch.allclose(smooth(logits, targets), expected)
    assert smooth(logits, targets) > plain(logits, targets)
    per_sample = AdditiveAngularMarginLoss(0.2, SCALE, reduction="none")(logits, targets)
    assert per_sample.shape == (2,)
    assert torch.allclose(per_sample.mean(), plain(logits, targets))


def test_angular_margin_loss_errors():
    loss = AdditiveAngularMarginLoss()
    with pytest.raises(ValueError, match="targets"):
        loss(torch.zeros(2, 3), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="targets"):
        loss(torch.zeros(2, 3), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="integer"):
        loss(torch.zeros(2, 3), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="logits"):
        loss(torch.zeros(2, 1, 3), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="margin"):
        AdditiveAngularMarginLoss(margin=-0.1)


def test_soft_target_cross_entropy_matches_torch():
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(6, 5, generator=generator)
    targets = torch.randint(0, 5, (6,), generator=generator)
    for smoothing in (0.0, 0.1):
        expected = F.cross_entropy(logits, targets, label_smoothing=smoothing)
        assert torch.allclose(SoftTargetCrossEntropy(smoothing)(logits, targets), expected, atol=1e-6)
    probabilities = torch.softmax(torch.randn(6, 5, generator=generator), -1)
    expected = -(probabilities * torch.log_softmax(logits, -1)).sum(-1).mean()
    assert torch.allclose(SoftTargetCrossEntropy()(logits, probabilities), expected, atol=1e-6)

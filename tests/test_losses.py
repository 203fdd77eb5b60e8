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


def _small_focalnet(num_classes=3):
    import focalnet_lobes
    from focalnet_lobes.models.classifier import GlobalFeatureNorm, SpectrogramClassifier
    from focalnet_lobes.models.heads import LinearHead

    torch.manual_seed(0)
    backbone = focalnet_lobes.create_model(
        "focalnet_audio_small", num_classes=0, in_chans=1, global_pool="modulation",
        stem_channels=[8, 16, 32], embed_dim=32, depths=[1, 1], focal_levels=[2, 2],
        focal_windows=[3, 3], drop_path_rate=0.0,
    )
    return SpectrogramClassifier(
        backbone, LinearHead(backbone.num_features, num_classes, dropout=0.0), normalizer=GlobalFeatureNorm(32)
    )


def test_masked_in_term_classifies_the_input_masked_by_the_models_own_map():
    import copy

    from focalnet_lobes.interpretation.interpret import (
        ModulationContributionInterpreter, quantile_mask,
    )
    from focalnet_lobes.training.losses import MaskedInFidelityLoss

    model = _small_focalnet().train()
    reference = copy.deepcopy(model)
    features = torch.rand(4, 1, 64, 32) + 0.1
    targets = torch.tensor([0, 1, 2, 0])
    cost = SoftTargetCrossEntropy()
    term = MaskedInFidelityLoss(ModulationContributionInterpreter(), cost, weight=0.5, quantiles=[0.8])
    inputs = []
    hook = model.normalizer.register_forward_pre_hook(lambda m, args: inputs.append(args[0].detach()))
    logits, loss = term(model, features, targets)
    hook.remove()
    # The reference: the same model's training pass on X alone.
    expected_logits, maps = ModulationContributionInterpreter()(reference, features)
    assert torch.allclose(logits, expected_logits, atol=1e-5)
    # The second pass saw X masked at q = 0.8 by the map of that first pass ...
    assert len(inputs) == 2 and torch.equal(inputs[0], features)
    assert torch.equal(inputs[1], quantile_mask(maps, 0.8) * features)
    kept = (inputs[1] != 0).flatten(1).float().mean(dim=1)
    assert torch.allclose(kept, torch.full((4,), 0.2), atol=0.02)
    # ... without moving the running statistics (BatchNorm, feature norm) nor the modes.
    state, expected = model.state_dict(), reference.state_dict()
    moved = [k for k in state if "running" in k or "normalizer" in k]
    assert moved and all(torch.equal(state[k], expected[k]) for k in moved)
    assert all(m.training for m in model.modules())
    # loss = weight * cost(masked-in logits), and it trains the model.
    model.eval()
    with torch.no_grad():
        masked_logits = model(inputs[1])
    model.train()
    # (no dropout here: the masked pass is the evaluation-mode forward of M * X)
    assert abs(float(loss.detach()) - 0.5 * float(cost(masked_logits, targets))) < 1e-5
    loss.backward()
    assert all(p.grad is not None for p in model.head.parameters())


def _reference_passes(model, features, q):
    """A copy of ``model``'s passes by hand: training-mode logits and map of ``features``,
    the map's mask at ``q``, evaluation-mode logits of the masked-in and masked-out inputs."""
    import copy

    from focalnet_lobes.interpretation.interpret import (
        ModulationContributionInterpreter, quantile_mask,
    )

    reference = copy.deepcopy(model)
    logits, maps = ModulationContributionInterpreter()(reference, features)
    masks = quantile_mask(maps, q)
    reference.eval()
    with torch.no_grad():
        logits_in = reference(masks * features)
        logits_out = reference((1 - masks) * features)
    return logits, masks, logits_in, logits_out


def test_masked_out_term_is_the_divergence_of_the_masked_out_prediction_from_uniform():
    import copy

    from focalnet_lobes.interpretation.interpret import ModulationContributionInterpreter
    from focalnet_lobes.training.losses import MaskedInFidelityLoss

    torch.manual_seed(0)
    model = _small_focalnet().train()
    features = torch.rand(4, 1, 64, 32) + 0.1
    targets = torch.tensor([0, 1, 2, 0])
    cost = SoftTargetCrossEntropy()
    _, masks, logits_in, logits_out = _reference_passes(model, features, 0.9)
    log_p = logits_out.log_softmax(dim=-1)
    # KL(U || p) = sum_k (1/K) log((1/K) / p_k), by hand
    divergence = float(sum((1 / 3) * (math.log(1 / 3) - log_p[:, k]) for k in range(3)).mean())
    assert divergence > 0
    masked_in = float(cost(logits_in, targets))

    def loss_of(weight, out_weight):
        term = MaskedInFidelityLoss(ModulationContributionInterpreter(), cost, weight=weight,
                                    quantiles=[0.9], out_weight=out_weight)
        trained = copy.deepcopy(model)
        inputs = []
        hook = trained.normalizer.register_forward_pre_hook(lambda m, a: inputs.append(a[0].detach()))
        _, loss = term(trained, features, targets)
        hook.remove()
        return float(loss.detach()), inputs

    only_out, inputs = loss_of(0.0, 2.0)
    assert abs(only_out - 2.0 * divergence) < 1e-4
    # one masked pass: the input with the kept 10% removed
    assert len(inputs) == 2 and torch.equal(inputs[1], (1 - masks) * features)
    both, inputs = loss_of(0.5, 2.0)
    assert abs(both - (0.5 * masked_in + 2.0 * divergence)) < 1e-4
    # both masked inputs in one pass of 2B clips: masked-in first
    assert len(inputs) == 2 and torch.equal(inputs[1], torch.cat([masks * features, (1 - masks) * features]))
    # a model that predicts uniformly has nothing to lose on the masked-out input
    flat = copy.deepcopy(model)
    for parameter in flat.head.parameters():
        torch.nn.init.zeros_(parameter)
    term = MaskedInFidelityLoss(ModulationContributionInterpreter(), cost, weight=0.0,
                                quantiles=[0.9], out_weight=1.0)
    assert abs(float(term(flat, features, targets)[1].detach())) < 1e-6
    with pytest.raises(ValueError, match="out_weight must be >= 0"):
        MaskedInFidelityLoss(ModulationContributionInterpreter(), cost, out_weight=-0.1)


def test_masked_terms_on_a_fraction_of_the_batch_use_its_first_clips():
    from focalnet_lobes.interpretation.interpret import ModulationContributionInterpreter
    from focalnet_lobes.training.losses import MaskedInFidelityLoss

    torch.manual_seed(0)
    model = _small_focalnet().train()
    features = torch.rand(5, 1, 64, 32) + 0.1
    targets = torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 0, 1]), 3).float()
    cost = SoftTargetCrossEntropy()
    full_logits, masks, logits_in, logits_out = _reference_passes(model, features, 0.9)
    log_p = logits_out.log_softmax(dim=-1)
    divergence = -log_p.mean(dim=-1) - math.log(3)
    term = MaskedInFidelityLoss(ModulationContributionInterpreter(), cost, weight=0.5,
                                quantiles=[0.9], out_weight=2.0, fraction=0.3)
    inputs = []
    hook = model.normalizer.register_forward_pre_hook(lambda m, a: inputs.append(a[0].detach()))
    logits, loss = term(model, features, targets)
    hook.remove()
    # ceil(0.3 * 5) = 2 clips: the masked pass has 2 x 2 clips, the plain pass all 5
    assert torch.allclose(logits, full_logits, atol=1e-5) and logits.shape == (5, 3)
    assert [x.shape[0] for x in inputs] == [5, 4]
    assert torch.equal(inputs[1], torch.cat([(masks * features)[:2], ((1 - masks) * features)[:2]]))
    expected = 0.5 * float(cost(logits_in[:2], targets[:2])) + 2.0 * float(divergence[:2].mean())
    assert abs(float(loss.detach()) - expected) < 1e-4
    # the whole-batch value differs: the fraction is not a no-op
    whole = 0.5 * float(cost(logits_in, targets)) + 2.0 * float(divergence.mean())
    assert abs(whole - expected) > 1e-3
    for fraction in (0.0, 1.5):
        with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\]"):
            MaskedInFidelityLoss(ModulationContributionInterpreter(), cost, fraction=fraction)


def test_masked_terms_start_after_start_epoch():
    from focalnet_lobes.interpretation.interpret import ModulationContributionInterpreter
    from focalnet_lobes.training.losses import MaskedInFidelityLoss, TrainingForward

    torch.manual_seed(0)
    model = _small_focalnet().train()
    features, targets = torch.rand(3, 1, 64, 32) + 0.1, torch.tensor([0, 1, 2])
    term = MaskedInFidelityLoss(ModulationContributionInterpreter(), SoftTargetCrossEntropy(),
                                weight=1.0, quantiles=[0.9], out_weight=1.0, start_epoch=2)
    passes = []
    hook = model.normalizer.register_forward_pre_hook(lambda m, a: passes.append(a[0].shape[0]))
    for epoch in (1, 2):  # up to start_epoch: the plain pass only, no loss
        logits, loss = term(model, features, targets, epoch=epoch)
        assert float(loss) == 0.0 and logits.shape == (3, 3)
    assert passes == [3, 3]
    _, loss = TrainingForward(model, term)(features, targets, epoch=3)  # after: both passes
    assert float(loss.detach()) > 0 and passes == [3, 3, 3, 6]
    _, loss = term(model, features, targets)  # no epoch: as after start_epoch
    assert float(loss.detach()) > 0 and passes[-2:] == [3, 6]
    assert term.runs_at(3) and not term.runs_at(2) and term.runs_at(None)
    hook.remove()
    for epochs, start in ((40, 28), (90, 63), (170, 119), (2, 1)):  # 0.7 x epochs, rounded down
        assert MaskedInFidelityLoss(ModulationContributionInterpreter(), SoftTargetCrossEntropy(),
                                    start_epoch=epochs * 0.7).start_epoch == start
    with pytest.raises(ValueError, match="start_epoch must be >= 0"):
        MaskedInFidelityLoss(ModulationContributionInterpreter(), SoftTargetCrossEntropy(), start_epoch=-1)


def test_masked_in_term_with_weight_zero_is_the_plain_forward():
    from focalnet_lobes.interpretation.interpret import ModulationContributionInterpreter
    from focalnet_lobes.training.losses import MaskedInFidelityLoss

    model = _small_focalnet().eval()
    features = torch.rand(2, 1, 64, 32)
    term = MaskedInFidelityLoss(ModulationContributionInterpreter(), SoftTargetCrossEntropy(), weight=0.0)
    logits, loss = term(model, features, torch.tensor([0, 1]))
    assert torch.equal(logits, model(features)) and float(loss) == 0.0
    with pytest.raises(ValueError, match="weight must be >= 0"):
        MaskedInFidelityLoss(ModulationContributionInterpreter(), SoftTargetCrossEntropy(), weight=-1)
    with pytest.raises(ValueError, match=r"quantiles must be in \[0, 1\)"):
        MaskedInFidelityLoss(ModulationContributionInterpreter(), SoftTargetCrossEntropy(), quantiles=[1.0])


def test_input_weighted_terms_mask_with_the_map_times_the_input():
    import copy

    from focalnet_lobes.interpretation.interpret import (
        InputWeightedInterpreter, ModulationContributionInterpreter, quantile_mask,
    )
    from focalnet_lobes.training.losses import MaskedInFidelityLoss

    torch.manual_seed(0)
    model = _small_focalnet().train()
    features = torch.rand(3, 1, 64, 32) + 0.1
    features[:, :, 32:] = 0.0  # the second half of every clip is silent
    targets = torch.tensor([0, 1, 2])

    def masked_input(input_weighted):
        term = MaskedInFidelityLoss(ModulationContributionInterpreter(), SoftTargetCrossEntropy(),
                                    weight=1.0, quantiles=[0.6], input_weighted=input_weighted)
        trained, inputs = copy.deepcopy(model), []
        hook = trained.normalizer.register_forward_pre_hook(lambda m, a: inputs.append(a[0].detach()))
        term(trained, features, targets)
        hook.remove()
        return term, inputs[1]

    term, weighted = masked_input(True)
    assert isinstance(term.interpreter, InputWeightedInterpreter) and term.input_weighted
    _, maps = InputWeightedInterpreter(ModulationContributionInterpreter())(copy.deepcopy(model), features)
    assert torch.equal(weighted, quantile_mask(maps, 0.6) * features)
    # 40% of the bins kept, all of them sounding: the map times the input never keeps a silent
    # bin while sounding ones remain; the map alone (upsampled from the last stage) does
    sounding = features[:, :, :32] != 0
    assert torch.equal(weighted[:, :, :32] != 0, quantile_mask(maps, 0.6)[:, :, :32].bool() & sounding)
    kept = (weighted != 0).flatten(1).float().mean(dim=1)
    assert torch.allclose(kept, torch.full((3,), 0.4), atol=0.01)
    _, plain = masked_input(False)
    assert not torch.equal(plain, weighted)
    with pytest.raises(ValueError, match=r"input_weighted \(YAML key masked_input_weighted\) must be True or False, got 'yes'"):
        MaskedInFidelityLoss(ModulationContributionInterpreter(), SoftTargetCrossEntropy(), input_weighted="yes")

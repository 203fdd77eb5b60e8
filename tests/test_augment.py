"""focalnet_lobes.data.augment.BetweenClassMix: BC+ mixing (Tokozume et al. 2018, eq. 2-3)."""

import math

import pytest
import torch

from focalnet_lobes.data.augment import BetweenClassMix


def tone(level_db, samples=1600, frequency=440.0, rate=16000):
    """A sine whose RMS level is ``level_db`` dB re full scale."""
    t = torch.arange(samples) / rate
    return math.sqrt(2) * 10 ** (level_db / 20) * torch.sin(2 * math.pi * frequency * t)


def test_levels_are_the_loudest_windows_rms_in_db():
    mix = BetweenClassMix(sample_rate=16000)
    wavs = torch.stack([tone(-6.0), tone(-26.0), torch.zeros(1600)])
    wavs[1, :800] = 0.0  # a quiet half does not lower the loudest window
    assert mix.levels_db(wavs).tolist() == pytest.approx([-6.0, -26.0, -80.0], abs=0.05)


def test_mix_weights_make_the_heard_ratio_r():
    """Eq. 2-3 with the clips' levels (0 and -20 dB): p = 1 / (1 + 10^((G1 - G2) / 20) (1 - r) / r),
    the mix scaled by 1 / sqrt(p^2 + (1 - p)^2), the targets mixed by r."""
    mix = BetweenClassMix(sample_rate=16000)
    loud, quiet = tone(0.0), tone(-20.0, frequency=1000.0)
    wavs, targets = torch.stack([loud, quiet]), torch.eye(2)
    torch.manual_seed(0)
    mixed, mixed_targets = mix(wavs, targets)
    # recover the draw: the same seed gives the same decision, permutation and ratio
    torch.manual_seed(0)
    torch.rand(())
    order = torch.randperm(2)
    ratio = torch.rand(2).clamp(1e-3, 1 - 1e-3)
    for i in range(2):
        j = int(order[i])
        r = float(ratio[i])
        assert mixed_targets[i].tolist() == pytest.approx(
            (r * targets[i] + (1 - r) * targets[j]).tolist())
        gi, gj = (0.0 if k == 0 else -20.0 for k in (i, j))
        p = 1 / (1 + 10 ** ((gi - gj) / 20) * (1 - r) / r)
        expected = (p * wavs[i] + (1 - p) * wavs[j]) / math.sqrt(p**2 + (1 - p) ** 2)
        assert torch.allclose(mixed[i], expected, atol=1e-4)


def test_identity_without_mixing_returns_the_same_tensors_and_draws_nothing():
    wavs, targets = torch.randn(4, 800), torch.eye(4)
    torch.manual_seed(0)
    off = BetweenClassMix(sample_rate=16000, probability=0.0)
    assert off(wavs, targets)[0] is wavs
    torch.manual_seed(0)
    before = torch.rand(())
    torch.manual_seed(0)
    off(wavs, targets)
    assert torch.rand(()) == before  # the recipe's random stream is the default's
    evaluated = BetweenClassMix(sample_rate=16000).eval()
    assert evaluated(wavs, targets)[0] is wavs and evaluated(wavs, targets)[1] is targets


@pytest.mark.parametrize("kwargs", [{"window_seconds": 0.0}, {"probability": 1.5}])
def test_bad_options_are_one_line_errors(kwargs):
    with pytest.raises(ValueError, match="BetweenClassMix: window_seconds must be > 0"):
        BetweenClassMix(**kwargs)

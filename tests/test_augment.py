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


def test_mix_makes_the_heard_ratio_r():
    """BC+'s point (eq. 2-3): in the mix of a 0 dB clip and a -20 dB clip, the level of each
    part over the other's is r / (1 - r), the targets' ratio, and the mix is normalised
    (the two weights' squares sum to 1). Orthogonal tones give each part's weight."""
    mix = BetweenClassMix(sample_rate=16000)
    loud, quiet = tone(0.0), tone(-20.0, frequency=1000.0)  # whole periods: orthogonal
    wavs, targets = torch.stack([loud, quiet]), torch.eye(2)
    checked = 0
    for seed in range(20):
        torch.manual_seed(seed)
        mixed, mixed_targets = mix(wavs, targets)
        for i, j in ((0, 1), (1, 0)):
            r = float(mixed_targets[i, i])
            if mixed_targets[i, j] == 0:  # paired with itself
                continue
            weight_i = float(mixed[i] @ wavs[i] / (wavs[i] @ wavs[i]))
            weight_j = float(mixed[i] @ wavs[j] / (wavs[j] @ wavs[j]))
            heard = 20 * math.log10(weight_i * wavs[i].norm() / (weight_j * wavs[j].norm()))
            assert heard == pytest.approx(20 * math.log10(r / (1 - r)), abs=0.01)
            assert weight_i**2 + weight_j**2 == pytest.approx(1.0, abs=1e-4)
            assert float(mixed_targets[i, j]) == pytest.approx(1 - r)
            checked += 1
    assert checked >= 10


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


@pytest.mark.parametrize("probability", [1.0, 0.0])
def test_recipe_step_mixes_waveforms_and_bypasses_the_cache(probability, tmp_path):
    """recipes/train.py's training forward with wav_mix_probability 1.0 gets mixed targets and
    leaves the feature cache alone; with 0.0 (the default) one-hot targets and cached features."""
    import speechbrain as sb
    from hyperpyyaml import load_hyperpyyaml

    from conftest import REPO, load_script

    recipe = load_script("recipes/train.py")
    overrides = {"data_folder": str(tmp_path), "esc10": True, "output_folder": str(tmp_path / "out"),
                 "wav_mix_probability": probability, "mixup_alpha": 0.0}
    with open(REPO / "hparams" / "focalnet_cpu.yaml", encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)
    brain = recipe.ESC50Brain(modules=hparams["modules"], hparams=hparams,
                              run_opts={"device": "cpu"})
    torch.manual_seed(0)
    batch = sb.dataio.batch.PaddedBatch([
        {"id": f"clip{i}", "sig": tone(-6.0 - 10 * i, samples=16000, frequency=300.0 * (i + 1)),
         "label": i} for i in range(4)
    ])
    _, targets, _ = brain.compute_forward(batch, sb.Stage.TRAIN)
    one_hot = bool(((targets == 0) | (targets == 1)).all())
    cached = len(hparams["feature_cache"])
    if probability:
        assert not one_hot and cached == 0  # mixed targets, no cached features of the mixes
        assert torch.allclose(targets.sum(1), torch.ones(4))
    else:
        assert one_hot and cached == 4

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


# FrequencyWarp: SpecAugment's warp along frequency (SpeechBrain's Warping, dim=2), issue 18's FW3

def ramps(clips=8, frames=4, bins=64):
    """Features whose value is the bin's index: a warp's output value is where it read."""
    return torch.arange(bins, dtype=torch.float32).expand(clips, 1, frames, bins).clone()


def test_frequency_warp_moves_bins_as_speechbrain_draws_and_keeps_the_lowest():
    """On a ramp the output at bin j is the (interpolated) input position it read: the warp
    is two linear stretches meeting at the moved centre w = c + d, d in -W + 1, ..., W (as
    SpeechBrain draws it), so no bin reads from more than W bins below or W - 1 bins above,
    the lowest bin stays, the order of bins is kept, and each clip gets its own draw."""
    from focalnet_lobes.data.augment import FrequencyWarp

    torch.manual_seed(0)
    warp = FrequencyWarp(3).train()
    features = ramps(clips=64)
    before = features.clone()
    up, down = [], []
    for _ in range(5):
        out = warp(features)
        assert out.shape == features.shape
        assert torch.equal(features, before)  # warped copies, the input untouched
        assert torch.allclose(out[..., 0], features[..., 0], atol=1e-4)  # the lowest bin stays
        assert bool((out.diff(dim=-1) > 0).all())  # a monotone map of the axis
        assert torch.equal(out, out[:, :, :1].expand_as(out))  # one warp for all frames of a clip
        up.append((features - out).amax(dim=(1, 2, 3)))  # content moved up: read from below
        down.append((out - features).amax(dim=(1, 2, 3)))
        assert len({tuple(row.round(decimals=4).tolist()) for row in out[:, 0, 0]}) > 32  # a draw per clip
    up, down = torch.cat(up), torch.cat(down)
    assert float(up.max()) == pytest.approx(3.0, abs=1e-4)  # d = W is drawn (5/6 ** 320 not to)
    assert float(down.max()) <= 2.0 + 1e-4  # never more than W - 1 down: SpeechBrain's draw
    assert float(down.max()) == pytest.approx(2.0, abs=1e-4)
    unmoved = (up < 1e-4) & (down < 1e-4)  # d = 0: about 1 clip in 6
    assert 20 <= int(unmoved.sum()) <= 90


def test_frequency_warp_moves_the_highest_bin_only_when_the_centre_lands_on_it():
    """The one exception to fixed ends (documented): c = F - W - 1 and d = W put the upper part
    on one bin, which reads bin c. Every other draw keeps the highest bin."""
    from unittest import mock

    from focalnet_lobes.data.augment import FrequencyWarp

    warp = FrequencyWarp(3).train()
    features = ramps(clips=1)
    moved = []
    for c in range(3, 61):
        for d in range(-2, 4):
            draws = iter([torch.tensor([c]), torch.tensor([c + d - 1])])  # w = randint(...) + 1
            with mock.patch("torch.randint", lambda *args, **kwargs: next(draws)):
                out = warp(features)
            if not torch.allclose(out[..., -1], features[..., -1], atol=1e-4):
                moved.append((c, d, float(out[0, 0, 0, -1])))
    assert moved == [(60, 3, pytest.approx(60.0, abs=1e-4))]


def test_frequency_warp_off_and_eval_are_the_identity_and_draw_nothing():
    from focalnet_lobes.data.augment import FrequencyWarp

    features = ramps()
    for warp in (FrequencyWarp(0).train(), FrequencyWarp(3).eval()):
        state = torch.get_rng_state()
        assert warp(features) is features
        assert torch.equal(torch.get_rng_state(), state)  # the default run's random stream is unchanged


@pytest.mark.parametrize("window", [-1, 2.5, True, "3", None])
def test_frequency_warp_bad_window_is_a_one_line_error(window):
    from focalnet_lobes.data.augment import FrequencyWarp

    with pytest.raises(ValueError, match=r"^warp_window \(YAML: freq_warp_window\) must be an integer "
                                         r">= 0 \(0: off\), got "):
        FrequencyWarp(window)


def test_frequency_warp_too_wide_or_bad_features_are_one_line_errors():
    """SpeechBrain's Warping returns its input transposed when 2 W >= F; here that is an error,
    as are features that are not (B, 1, T, F); an empty batch passes through."""
    from focalnet_lobes.data.augment import FrequencyWarp

    FrequencyWarp(31).train()(ramps(bins=64))  # 62 < 64 works
    FrequencyWarp(32).check_num_bins(65)
    FrequencyWarp(0).check_num_bins(1)  # off: any number of bins
    message = r"^warp_window \(YAML: freq_warp_window\) 32 needs more than 64 frequency bins; the features have 64$"
    with pytest.raises(ValueError, match=message):
        FrequencyWarp(32).train()(ramps(bins=64))
    with pytest.raises(ValueError, match=message):
        FrequencyWarp(32).check_num_bins(64)
    for shape in ((2, 20, 64), (2, 3, 20, 64)):
        with pytest.raises(ValueError, match=r"^FrequencyWarp \(YAML: freq_warp_window\) takes features "
                                             r"\(B, 1, T, F\), got shape \(2, "):
            FrequencyWarp(3).train()(torch.zeros(shape))
    empty = torch.zeros(0, 1, 20, 64)
    assert FrequencyWarp(3).train()(empty) is empty


def test_cpu_yamls_wire_frequency_warp_off_by_default_and_as_a_key(tmp_path):
    from hyperpyyaml import load_hyperpyyaml

    from conftest import REPO
    from focalnet_lobes.data.augment import FrequencyWarp

    for name in ("focalnet_cpu.yaml", "vit_cpu.yaml"):
        text = (REPO / "hparams" / name).read_text(encoding="utf-8")
        for overrides, window in (({}, 0), ({"freq_warp_window": 3}, 3)):
            hparams = load_hyperpyyaml(text, {"data_folder": str(tmp_path), **overrides})
            warps = [m for m in hparams["feature_augment"] if isinstance(m, FrequencyWarp)]
            assert [w.warp_window for w in warps] == [window]
            names = [type(m).__name__ for m in hparams["feature_augment"]]
            assert names == ["RandomTimeShift", "FrequencyWarp", "SpecMasking"]  # warp before masks

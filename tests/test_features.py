"""focalnet_lobes.data.features: the front end's compression (log1p, PCEN) and its checks."""

import math
import re

import numpy as np
import pytest
import torch
from scipy.signal import lfilter

from conftest import REPO
from focalnet_lobes.data.features import FeatureCache, SpectrogramFrontend

PCEN_OPTIONS = {"alpha": 0.98, "smooth_coef": 0.0286, "delta": 2.0, "root": 2.0, "floor": 1e-6}


def pcen_reference(energy, alpha, smooth_coef, delta, root, floor):
    """PCEN (Wang et al. 2017, eq. 1) of E (T, F) with SciPy's IIR filter along time, M[0] = E[0]."""
    energy = np.asarray(energy, dtype=np.float64)
    initial = (1.0 - smooth_coef) * energy[:1]  # lfilter's state so that M[0] = E[0]
    smoother, _ = lfilter([smooth_coef], [1.0, smooth_coef - 1.0], energy, axis=0, zi=initial)
    return (energy / (floor + smoother) ** alpha + delta) ** (1.0 / root) - delta ** (1.0 / root)


def test_pcen_features_follow_the_equation():
    frontend = SpectrogramFrontend(n_mels=16, compression="pcen", pcen_options=PCEN_OPTIONS)
    torch.manual_seed(0)
    energy = torch.rand(3, 50, 16) * torch.logspace(-3, 2, 50).reshape(1, 50, 1)
    features = frontend.compress(energy)
    assert features.shape == (3, 1, 50, 16) and features.dtype == torch.float32
    for row in range(3):
        expected = pcen_reference(energy[row].numpy(), **PCEN_OPTIONS)
        np.testing.assert_allclose(features[row, 0].numpy(), expected, rtol=1e-4, atol=1e-6)
    # log1p stays the default, unchanged
    plain = SpectrogramFrontend(n_mels=16)
    assert plain.compression == "log1p" and plain.pcen is None
    assert torch.equal(plain.compress(energy), torch.log1p(energy).unsqueeze(1))


def test_pcen_options_change_the_features_and_defaults_are_speechbrains():
    energy = torch.rand(1, 40, 8) * 10
    default = SpectrogramFrontend(n_mels=8, compression="pcen").compress(energy)
    np.testing.assert_allclose(
        default[0, 0].numpy(),
        pcen_reference(energy[0].numpy(), 0.96, 0.04, 2.0, 2.0, 1e-12),  # LEAF's, SpeechBrain's
        rtol=1e-4, atol=1e-6,
    )
    other = SpectrogramFrontend(n_mels=8, compression="pcen", pcen_options={"root": 3.0})
    assert not torch.allclose(other.compress(energy), default)


def test_pcen_maps_silence_to_zero_and_normalizes_loudness():
    frontend = SpectrogramFrontend(n_mels=64, compression="pcen", pcen_options=PCEN_OPTIONS)
    assert float(frontend(torch.zeros(2, 8000)).abs().max()) == 0.0
    torch.manual_seed(1)
    wav = torch.randn(1, 16000) * torch.linspace(0.1, 1.0, 16000)
    quiet, loud = frontend(0.25 * wav), frontend(4.0 * wav)
    log_quiet, log_loud = SpectrogramFrontend(n_mels=64)(0.25 * wav), SpectrogramFrontend(n_mels=64)(4.0 * wav)
    # a 24 dB gain: PCEN's features move by a few percent, log1p's by far more
    pcen_change = float((loud - quiet).abs().mean() / quiet.abs().mean())
    log_change = float((log_loud - log_quiet).abs().mean() / log_quiet.abs().mean())
    assert pcen_change < 0.1 < 1.0 < log_change


def test_pcen_runs_in_float32_on_low_precision_input_and_under_autocast():
    frontend = SpectrogramFrontend(n_mels=16, compression="pcen", pcen_options=PCEN_OPTIONS)
    energy = (torch.rand(2, 30, 16) * 5).to(torch.bfloat16)
    reference = frontend.compress(energy.float())
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        under_autocast = frontend.compress(energy)
    assert under_autocast.dtype == torch.float32  # the recursion does not run in bf16
    assert torch.equal(under_autocast, reference)


def test_pcen_is_fixed_not_trained():
    frontend = SpectrogramFrontend(n_mels=16, compression="pcen", pcen_options=PCEN_OPTIONS)
    parameters = list(frontend.parameters())
    assert parameters and not any(p.requires_grad for p in parameters)
    alpha = dict(frontend.named_parameters())["pcen.alpha"]
    assert torch.allclose(alpha, torch.full((16,), 0.98))


def test_feature_cache_with_gains_matches_the_front_end_under_pcen():
    frontend = SpectrogramFrontend(n_mels=16, compression="pcen", pcen_options=PCEN_OPTIONS)
    cache = FeatureCache(frontend, max_items=8)
    torch.manual_seed(2)
    wavs = torch.randn(2, 4000)
    gains = torch.tensor([0.5, 2.0])
    cache(["a", "b"], wavs)
    assert torch.allclose(cache(["a", "b"], wavs, gains=gains), frontend(wavs * gains[:, None]), atol=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    ({"compression": "log"}, "Unknown compression 'log': expected one of \\['log1p', 'pcen'\\]"),
    # an unknown compression is named first, even with a log1p_scale that only log1p takes
    ({"compression": "log", "log1p_scale": 10.0}, "Unknown compression 'log': expected one of"),
    ({"compression": "pcen", "pcen_options": {"gain": 0.98}}, "Unknown pcen_options \\['gain'\\]"),
    ({"compression": "pcen", "pcen_options": {"alpha": 1.5}}, "alpha must be a finite number in \\[0, 1\\], got 1.5"),
    ({"compression": "pcen", "pcen_options": {"smooth_coef": 0.0}}, "smooth_coef must be a finite number in \\(0, 1\\]"),
    ({"compression": "pcen", "pcen_options": {"delta": -1}}, "delta must be a finite number > 0"),
    ({"compression": "pcen", "pcen_options": {"root": 0.5}}, "root must be a finite number >= 1"),
    ({"compression": "pcen", "pcen_options": {"floor": "tiny"}}, "floor must be a finite number > 0, got 'tiny'"),
    ({"compression": "pcen", "pcen_options": {"delta": True}}, "delta must be a finite number > 0, got True"),
    ({"compression": "pcen", "pcen_options": {"delta": float("inf")}}, "delta must be a finite number > 0, got inf"),
    ({"compression": "pcen", "pcen_options": {"floor": float("nan")}}, "floor must be a finite number > 0, got nan"),
    ({"compression": "pcen", "pcen_options": "alpha: 0.9"}, "pcen_options must be a mapping of option: value, got 'alpha: 0.9'"),
    ({"compression": "pcen", "pcen_options": [0.9]}, "pcen_options must be a mapping"),
])
def test_bad_compression_settings_are_one_line_errors(kwargs, message):
    with pytest.raises(ValueError, match=message) as error:
        SpectrogramFrontend(n_mels=8, **kwargs)
    assert "\n" not in str(error.value)


def test_log1p_checks_but_does_not_use_pcen_options():
    """A YAML file holds the options for a --compression pcen override; log1p does not use
    them, but a bad option is an error with either compression (not a silent log1p run)."""
    frontend = SpectrogramFrontend(n_mels=8, compression="log1p", pcen_options=PCEN_OPTIONS)
    assert frontend.pcen is None and list(frontend.parameters()) == []
    with pytest.raises(ValueError, match="Unknown pcen_options \\['gain'\\]"):
        SpectrogramFrontend(n_mels=8, pcen_options={"gain": 0.9})
    with pytest.raises(ValueError, match="alpha must be a finite number in \\[0, 1\\], got 2"):
        SpectrogramFrontend(n_mels=8, pcen_options={"alpha": 2})


def test_a_mask_on_log1p_features_is_the_masked_spectrogram_on_pcen_it_is_not():
    """What the README and metrics.py say: a binary mask on log1p features equals the
    features of the masked magnitude; PCEN's smoother spans frames, so on PCEN it does not."""
    torch.manual_seed(3)
    energy = torch.rand(1, 60, 8) * 10
    mask = (torch.rand(1, 60, 8) > 0.5).float()
    log1p = SpectrogramFrontend(n_mels=8)
    assert torch.allclose(log1p.compress(mask * energy), mask.unsqueeze(1) * log1p.compress(energy))
    pcen = SpectrogramFrontend(n_mels=8, compression="pcen", pcen_options=PCEN_OPTIONS)
    masked_input, masked_features = pcen.compress(mask * energy), mask.unsqueeze(1) * pcen.compress(energy)
    assert torch.equal(masked_input == 0, masked_features == 0)  # both silent where masked out
    kept = mask.unsqueeze(1).bool()
    assert float((masked_input - masked_features)[kept].abs().max()) > 0.1


def test_interpretation_report_names_pcen_features_and_their_caveat():
    """metrics.md of an interpretation says when the features are PCEN's (masked features
    and listenable audio then describe different inputs); log1p reports stay as before."""
    from focalnet_lobes.interpretation.evaluation import markdown_metrics

    metrics = {"method": "focalnet", "classifier_folder": "run", "split": "test", "num_clips": 2,
               "accuracy": 0.5, "soft": False, "interpreter": "InputWeightedInterpreter",
               "quantiles": {"0.9": {"fid_i": 0.5}}}
    assert "features:" not in markdown_metrics({**metrics, "compression": "log1p"})
    assert "features:" not in markdown_metrics(metrics)  # reports written before the key
    report = markdown_metrics({**metrics, "compression": "pcen"})
    assert "- features: pcen (the metrics score the masked features" in report


@pytest.mark.parametrize("config", ["focalnet_cpu", "vit_cpu", "focalnet", "vit"])
def test_stft_framing_is_a_yaml_key_of_every_training_config(config):
    """--n_fft / --win_length / --hop_length reach the front end (its STFT and its inverse)."""
    from hyperpyyaml import load_hyperpyyaml

    overrides = {"data_folder": "unused", "win_length": 46.4399, "hop_length": 23.2199}
    bins = 513  # the full-size configs' linear STFT bins
    if config.endswith("_cpu"):
        overrides["n_mels"], bins = 128, 128
    text = (REPO / "hparams" / f"{config}.yaml").read_text(encoding="utf-8")
    default_front_end = text.split("compute_features:", 1)[0]
    assert "\nn_fft: 1024\n" in default_front_end and "\nhop_length: 11.6099\n" in default_front_end
    hparams = load_hyperpyyaml(text, overrides)
    frontend = hparams["compute_features"]
    # SpeechBrain's STFT holds them in samples: round(23.2199 ms * 16 kHz), round(46.4399 ms * 16 kHz)
    assert (frontend.stft.hop_length, frontend.stft.win_length) == (372, 743)
    assert (frontend.istft.hop_length, frontend.istft.win_length) == (372, 743)
    assert frontend(torch.zeros(1, 80000)).shape == (1, 1, 216, bins)


def test_log1p_scale_follows_the_equation_and_keeps_a_binary_mask_exact():
    """log1p_scale C: features log(1 + C E); silence stays 0; a binary mask on the features
    is still the features of the masked magnitude; C = 1 is bit-identical to log1p(E)."""
    torch.manual_seed(5)
    energy = torch.rand(2, 40, 8) * 3
    scaled = SpectrogramFrontend(n_mels=8, log1p_scale=1000.0)
    assert torch.allclose(scaled.compress(energy), torch.log1p(1000.0 * energy).unsqueeze(1))
    assert torch.equal(SpectrogramFrontend(n_mels=8, log1p_scale=1).compress(energy),
                       torch.log1p(energy).unsqueeze(1))
    assert float(scaled.compress(torch.zeros(1, 4, 8)).abs().max()) == 0.0
    mask = (torch.rand(2, 40, 8) > 0.5).float()
    assert torch.allclose(scaled.compress(mask * energy), mask.unsqueeze(1) * scaled.compress(energy))
    # quiet sounds on 64 mel bands: at C = 1 the features are about E (linear: 20 dB quieter
    # divides them by 10), at C = 1000 logarithmic (20 dB quieter subtracts log(10))
    noise = torch.randn(1, 16000)
    quiet = SpectrogramFrontend(n_mels=64, log1p_scale=1000.0)
    difference = quiet(noise * 10 ** (-50 / 20)) - quiet(noise * 10 ** (-70 / 20))
    assert float(difference.median()) == pytest.approx(math.log(10), abs=0.15)
    plain = SpectrogramFrontend(n_mels=64)
    ratio = plain(noise * 10 ** (-80 / 20)) / plain(noise * 10 ** (-100 / 20))
    assert float(ratio.median()) == pytest.approx(10, rel=0.02)


@pytest.mark.parametrize("value", [0, -1.0, float("inf"), float("nan"), True, "1e3", None])
def test_bad_log1p_scale_is_a_one_line_error(value):
    with pytest.raises(ValueError, match="log1p_scale must be a finite number > 0, got ") as error:
        SpectrogramFrontend(n_mels=8, log1p_scale=value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("config", ["focalnet_cpu", "vit_cpu", "focalnet", "vit"])
def test_log1p_scale_is_a_yaml_key_of_every_training_config(config):
    """--log1p_scale reaches the front end; the default is the paper's log1p(E) (C = 1)."""
    from hyperpyyaml import load_hyperpyyaml

    text = (REPO / "hparams" / f"{config}.yaml").read_text(encoding="utf-8")
    assert load_hyperpyyaml(text, {"data_folder": "unused"})["compute_features"].log1p_scale == 1.0
    frontend = load_hyperpyyaml(text, {"data_folder": "unused", "log1p_scale": 1000.0})["compute_features"]
    assert frontend.log1p_scale == 1000.0
    energy = torch.rand(1, 3, frontend.num_bins)
    assert torch.allclose(frontend.compress(energy), torch.log1p(1000.0 * energy).unsqueeze(1))


def test_a_run_resumed_with_another_log1p_scale_stops(tmp_path):
    """C != 1 is a fixed parameter of the front end, so the checkpoint records it and
    check_resumable names the change; C = 1 keeps the front end's state empty (older
    checkpoints and exports load as before)."""
    import logging

    from focalnet_lobes.training.checkpoints import (
        AtomicCheckpointer,
        CheckpointMismatchError,
        check_resumable,
    )

    assert SpectrogramFrontend(n_mels=8).state_dict() == {}
    for saved_scale, run_scale, message in [
        (1.0, 1000.0, "only the run has log1p_constant (YAML: log1p_scale)"),
        (1000.0, 1.0, "only the checkpoint has log1p_constant (YAML: log1p_scale)"),
        (1000.0, 10.0,
         "fixed values differ for log1p_constant (checkpoint 1000, run 10) (YAML: log1p_scale)"),
    ]:
        folder = tmp_path / f"{saved_scale}-{run_scale}"
        saving = AtomicCheckpointer(folder, recoverables={
            "compute_features": SpectrogramFrontend(n_mels=8, log1p_scale=saved_scale)})
        saving.save_checkpoint(verbosity=logging.DEBUG)
        resumed = AtomicCheckpointer(folder, recoverables={
            "compute_features": SpectrogramFrontend(n_mels=8, log1p_scale=run_scale)})
        with pytest.raises(CheckpointMismatchError, match=re.escape(message)):
            check_resumable(resumed)
        same = AtomicCheckpointer(folder, recoverables={
            "compute_features": SpectrogramFrontend(n_mels=8, log1p_scale=saved_scale)})
        assert check_resumable(same) is None


@pytest.mark.parametrize("settings", [{}, {"log1p_scale": 1000.0}, {"compression": "pcen"},
                                      {"freq_scale": "linear"}])
def test_checkpointing_the_front_end_is_silent_and_round_trips(tmp_path, caplog, settings):
    """The default front end's state is empty: SpeechBrain's default saver warned
    "Saving an empty state_dict" with the module's whole repr at every checkpoint (every
    epoch of a training log). Its own saver writes the same file without the warning, and
    its loader reads it back strictly; another front end still cannot load it."""
    import logging

    from focalnet_lobes.training.checkpoints import AtomicCheckpointer

    frontend = SpectrogramFrontend(n_mels=8, **settings)
    with caplog.at_level(logging.WARNING):
        checkpoint = AtomicCheckpointer(
            tmp_path, recoverables={"compute_features": frontend}
        ).save_checkpoint(verbosity=logging.DEBUG)
    assert not [record for record in caplog.records if "empty state_dict" in record.getMessage()]
    saved = torch.load(checkpoint.paramfiles["compute_features"], weights_only=True)
    assert sorted(saved) == sorted(frontend.state_dict())
    resumed = SpectrogramFrontend(n_mels=8, **settings)
    loading = AtomicCheckpointer(tmp_path, recoverables={"compute_features": resumed})
    assert loading.recover_if_possible() is not None
    for name, value in frontend.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], value)
    if settings:  # a default front end cannot take a non-default one's fixed parameters
        with pytest.raises(RuntimeError, match="Unexpected key"):
            SpectrogramFrontend(n_mels=8).load(checkpoint.paramfiles["compute_features"])


def test_log1p_scale_is_fixed_and_float32_under_float16_autocast():
    """C E of a loud clip passes float16's range (65504): the scaled log1p runs in float32."""
    frontend = SpectrogramFrontend(n_mels=64, log1p_scale=1000.0)
    (constant,) = frontend.parameters()
    assert not constant.requires_grad and float(constant) == 1000.0
    sine = torch.sin(2 * math.pi * 1000 * torch.arange(16000) / 16000).unsqueeze(0)
    with torch.autocast("cpu", dtype=torch.float16):
        features = frontend(sine)
    assert features.dtype == torch.float32 and bool(torch.isfinite(features).all())
    assert torch.allclose(features, frontend(sine), atol=1e-3)


def test_log1p_scale_with_pcen_is_a_one_line_error():
    with pytest.raises(ValueError, match="log1p_scale 1000.0 applies to compression 'log1p' only, not 'pcen'"):
        SpectrogramFrontend(n_mels=8, compression="pcen", log1p_scale=1000.0)
    assert SpectrogramFrontend(n_mels=8, compression="pcen", log1p_scale=1.0).log1p_scale == 1.0


def test_interpretation_report_names_a_log1p_scale():
    from focalnet_lobes.interpretation.evaluation import markdown_metrics

    metrics = {"method": "focalnet", "classifier_folder": "run", "split": "test", "num_clips": 2,
               "accuracy": 0.5, "soft": False, "interpreter": "InputWeightedInterpreter",
               "quantiles": {"0.9": {"fid_i": 0.5}}, "compression": "log1p"}
    assert "features:" not in markdown_metrics({**metrics, "log1p_scale": 1.0})
    assert "- features: log(1 + C E), C = 1000 (`log1p_scale`)" in markdown_metrics({**metrics, "log1p_scale": 1000.0})


def test_linear_freq_scale_pools_the_stft_bins_into_bands_equally_spaced_in_hz():
    """freq_scale "linear": torchaudio's linear triangular filterbank (centres 8000 / 65 Hz
    apart at 64 bands on 0-8 kHz), where "mel" spaces them on the HTK mel scale; the same
    grid, and a band's mask maps back onto the linear bins under that band only."""
    import torchaudio

    linear, mel = SpectrogramFrontend(n_mels=64, freq_scale="linear"), SpectrogramFrontend(n_mels=64)
    assert linear.num_bins == mel.num_bins == 64
    filters = torchaudio.functional.linear_fbanks(513, 0.0, 8000.0, 64, 16000)
    magnitude = torch.rand(2, 5, 513)
    assert torch.equal(linear.project(magnitude), magnitude @ filters)
    hz = torch.linspace(0, 8000, 513)
    for frontend, low_gap, high_gap in [(linear, 123.1, 123.1), (mel, 27.9, 318.3)]:
        weights = frontend.project(torch.eye(513).unsqueeze(0))[0]  # (513 bins, 64 bands)
        centres = (weights * hz[:, None]).sum(0) / weights.sum(0)
        gaps = centres.diff()
        assert float(gaps[0]) == pytest.approx(low_gap, abs=1.0)
        assert float(gaps[-1]) == pytest.approx(high_gap, abs=1.0)
    band = torch.zeros(1, 1, 3, 64)
    band[..., 40] = 1.0
    covered = linear.mask_to_linear(band)[0, 0, 0].nonzero().squeeze(1)
    low, high = (edge * 8000 / 65 / (8000 / 512) for edge in (40, 42))  # band 40's edges, in bins
    assert covered.tolist() == list(range(math.ceil(low), math.floor(high) + 1))  # 316-330
    wav = torch.randn(1, 16000)
    assert (linear.listenable(wav, torch.ones(1, 1, 87, 64)) - wav).abs().max() < 1e-3
    assert not torch.allclose(linear(wav), mel(wav))


def test_unknown_freq_scale_is_a_one_line_error():
    with pytest.raises(ValueError, match=r"Unknown freq_scale 'bark': expected one of \['mel', 'linear'\]"):
        SpectrogramFrontend(n_mels=8, freq_scale="bark")


@pytest.mark.parametrize("n_mels", [0, -3, 8.0, True, "64"])
def test_bad_n_mels_is_a_one_line_error(n_mels):
    """n_mels 0 failed deep in the mask mapping (argmin of an empty tensor), -3 in torchaudio."""
    with pytest.raises(ValueError, match=r"n_mels must be an integer >= 1 \(or null: the STFT bins\), got ") as error:
        SpectrogramFrontend(n_mels=n_mels)
    assert "\n" not in str(error.value)


def test_linear_freq_scale_needs_bands():
    with pytest.raises(ValueError, match="freq_scale 'linear' spaces the n_mels bands of a filterbank; with n_mels null"):
        SpectrogramFrontend(n_mels=None, freq_scale="linear")
    assert SpectrogramFrontend(n_mels=None).num_bins == 513


@pytest.mark.parametrize("config", ["focalnet_cpu", "vit_cpu"])
def test_freq_scale_is_a_yaml_key_of_the_cpu_configs(config):
    from hyperpyyaml import load_hyperpyyaml

    text = (REPO / "hparams" / f"{config}.yaml").read_text(encoding="utf-8")
    assert load_hyperpyyaml(text, {"data_folder": "unused"})["compute_features"].freq_scale == "mel"
    frontend = load_hyperpyyaml(text, {"data_folder": "unused", "freq_scale": "linear"})["compute_features"]
    assert frontend.freq_scale == "linear" and frontend.mel_filters is None
    assert frontend.linear_filters.shape == (513, 64) and not frontend.linear_filters.requires_grad
    assert list(frontend.parameters()) == []  # a saved setting: not trained, not counted


def test_a_run_resumed_with_another_freq_scale_stops(tmp_path):
    """The linear filterbank is a fixed parameter: a mel checkpoint does not resume a
    linear run (or the reverse), and the message names the YAML keys."""
    import logging

    from focalnet_lobes.training.checkpoints import (
        AtomicCheckpointer,
        CheckpointMismatchError,
        check_resumable,
    )

    for saved, run, message in [
        ("mel", "linear", "only the run has linear_filters (YAML: freq_scale, n_mels)"),
        ("linear", "mel", "only the checkpoint has linear_filters (YAML: freq_scale, n_mels)"),
    ]:
        folder = tmp_path / f"{saved}-{run}"
        AtomicCheckpointer(folder, recoverables={
            "compute_features": SpectrogramFrontend(n_mels=8, freq_scale=saved)
        }).save_checkpoint(verbosity=logging.DEBUG)
        resumed = AtomicCheckpointer(folder, recoverables={
            "compute_features": SpectrogramFrontend(n_mels=8, freq_scale=run)})
        with pytest.raises(CheckpointMismatchError, match=re.escape(message)):
            check_resumable(resumed)


def test_interpretation_report_names_a_linear_freq_scale():
    from focalnet_lobes.interpretation.evaluation import markdown_metrics

    metrics = {"method": "focalnet", "classifier_folder": "run", "split": "test", "num_clips": 2,
               "accuracy": 0.5, "soft": False, "interpreter": "InputWeightedInterpreter",
               "quantiles": {"0.9": {"fid_i": 0.5}}, "compression": "log1p"}
    assert "bands:" not in markdown_metrics({**metrics, "freq_scale": "mel"})
    assert "- bands: linear frequency scale (`freq_scale`)" in markdown_metrics({**metrics, "freq_scale": "linear"})

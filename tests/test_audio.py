"""Tests of focalnet_lobes.data.audio: reading clips and preparing waveforms."""

import math

import numpy as np
import pytest
import soundfile
import torch

from helpers_data import class_frequency, make_fake_esc50
from focalnet_lobes.data.audio import (
    AudioError,
    fix_length,
    load_audio,
    peak_normalize,
    prepare_waveform,
    to_mono,
)


def tone(frequency, sample_rate, duration_s=1.0, amplitude=0.5):
    """A sine tone as a float64 numpy array."""
    time = np.arange(int(sample_rate * duration_s)) / sample_rate
    return amplitude * np.sin(2 * np.pi * frequency * time)


def dominant_frequency(waveform, sample_rate):
    """Frequency (Hz) of the largest FFT bin."""
    spectrum = torch.fft.rfft(waveform.double()).abs()
    return spectrum.argmax().item() * sample_rate / waveform.shape[-1]


# ---------------------------------------------------------------- tensor functions


def test_to_mono_layouts_agree():
    channels_first = torch.stack([torch.arange(6.0), -torch.arange(6.0) * 3])
    expected = torch.arange(6.0) * -1.0
    assert torch.equal(to_mono(channels_first), expected)
    assert torch.equal(to_mono(channels_first.T), expected)
    assert torch.equal(to_mono(channels_first.T, channel_dim=1), expected)
    assert torch.equal(to_mono(torch.arange(5.0)), torch.arange(5.0))


def test_to_mono_rejects_bad_shapes():
    with pytest.raises(ValueError, match="shape"):
        to_mono(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="channel_dim"):
        to_mono(torch.zeros(2, 8), channel_dim=2)


def test_peak_normalize_per_signal_and_silence():
    batch = torch.tensor([[0.0, -0.25, 0.125], [0.0, 0.0, 0.0], [3.0, 1.5, -6.0]])
    result = peak_normalize(batch)
    assert torch.allclose(result[0], torch.tensor([0.0, -1.0, 0.5]))
    assert torch.equal(result[1], torch.zeros(3))
    assert torch.allclose(result[2], torch.tensor([0.5, 0.25, -1.0]))
    assert torch.isfinite(result).all()
    with pytest.raises(ValueError, match="eps"):
        peak_normalize(batch, eps=0.0)


def test_prepare_waveform_resamples_44k_stereo_time_first():
    stereo = np.stack([tone(1000, 44100), tone(1000, 44100, amplitude=0.1)], axis=1)  # (time, 2)
    result = prepare_waveform(stereo, 44100, 16000)
    assert result.shape == (16000,)
    assert result.dtype == torch.float32
    assert result.abs().max().item() == pytest.approx(1.0, abs=1e-6)
    assert dominant_frequency(result, 16000) == pytest.approx(1000, abs=2)


def test_prepare_waveform_int16_and_same_rate():
    pcm = (tone(500, 16000) * 32767).astype(np.int16)
    result = prepare_waveform(torch.from_numpy(pcm), 16000)
    assert result.dtype == torch.float32
    assert result.shape == (16000,)
    assert result.abs().max().item() == pytest.approx(1.0, abs=1e-6)
    expected = torch.from_numpy(pcm).float() / float(np.abs(pcm).max())
    assert torch.allclose(result, expected)


def test_prepare_waveform_errors():
    with pytest.raises(ValueError, match="empty"):
        prepare_waveform(torch.zeros(0), 16000)
    with pytest.raises(ValueError, match="orig_sample_rate"):
        prepare_waveform(torch.zeros(10), 0)
    with pytest.raises(ValueError, match="sample_rate"):
        prepare_waveform(torch.zeros(10), 16000, sample_rate=22050.5)
    with pytest.raises(ValueError, match="real"):
        prepare_waveform(torch.zeros(10, dtype=torch.complex64), 16000)


def test_fix_length_crop_and_pad():
    waveform = torch.arange(1.0, 6.0)
    assert torch.equal(fix_length(waveform, 3), torch.tensor([1.0, 2.0, 3.0]))
    assert torch.equal(fix_length(waveform, 7), torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 0.0, 0.0]))
    assert torch.equal(fix_length(waveform, 5), waveform)
    assert fix_length(torch.ones(3, 70000), 80000).shape == (3, 80000)
    assert fix_length(torch.ones(3, 70000), 80000)[:, 70000:].abs().sum() == 0
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="num_samples"):
            fix_length(waveform, bad)


# ---------------------------------------------------------------- load_audio


def test_load_audio_44k_stereo(tmp_path):
    path = tmp_path / "stereo.wav"
    stereo = np.stack([tone(2000, 44100, 0.5), tone(2000, 44100, 0.5, amplitude=0.2)], axis=1)
    soundfile.write(path, stereo, 44100, subtype="PCM_16")
    clip = load_audio(path)
    assert clip.shape == (8000,)
    assert clip.dtype == torch.float32
    assert clip.abs().max().item() == pytest.approx(1.0, abs=1e-6)
    assert dominant_frequency(clip, 16000) == pytest.approx(2000, abs=2)


def test_load_audio_16k_mono_is_normalised_file_content(tmp_path):
    path = tmp_path / "mono.wav"
    samples = tone(300, 16000, 0.25, amplitude=0.3).astype(np.float32)
    soundfile.write(path, samples, 16000, subtype="FLOAT")
    clip = load_audio(str(path))
    assert torch.allclose(clip, torch.from_numpy(samples) / np.abs(samples).max(), atol=1e-6)


def test_load_audio_other_target_rate(tmp_path):
    path = tmp_path / "a.flac"
    soundfile.write(path, tone(440, 22050), 22050)
    assert load_audio(path, sample_rate=8000).shape == (8000,)


def test_load_audio_silent_clip_is_zeros(tmp_path):
    path = tmp_path / "silent.wav"
    soundfile.write(path, np.zeros((44100, 2)), 44100)
    clip = load_audio(path)
    assert clip.shape == (16000,)
    assert torch.isfinite(clip).all()
    assert clip.abs().max().item() == 0.0


def test_load_audio_missing_file(tmp_path):
    path = tmp_path / "nope.wav"
    with pytest.raises(AudioError, match="file not found") as info:
        load_audio(path)
    assert str(path) in str(info.value)
    assert info.value.path == str(path)


def test_load_audio_directory(tmp_path):
    with pytest.raises(AudioError, match="not a regular file"):
        load_audio(tmp_path)


def test_load_audio_corrupt_file(tmp_path):
    path = tmp_path / "garbage.wav"
    path.write_bytes(b"RIFF\x00garbage bytes, not audio" * 10)
    with pytest.raises(AudioError, match="unreadable or corrupt") as info:
        load_audio(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_load_audio_empty_file(tmp_path):
    empty_wav = tmp_path / "empty.wav"
    soundfile.write(empty_wav, np.zeros((0, 1)), 16000)
    with pytest.raises(AudioError, match="0 samples") as info:
        load_audio(empty_wav)
    assert str(empty_wav) in str(info.value)
    zero_bytes = tmp_path / "zero.wav"
    zero_bytes.write_bytes(b"")
    with pytest.raises(AudioError, match=str(zero_bytes).replace("\\", "\\\\")):
        load_audio(zero_bytes)


def test_load_audio_non_finite(tmp_path):
    path = tmp_path / "nan.wav"
    samples = np.zeros(100, dtype=np.float32)
    samples[10] = math.nan
    soundfile.write(path, samples, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        load_audio(path)


def test_generated_esc50_classes_are_separable(tmp_path):
    """The synthetic dataset the recipe tests train on: every clip's class is recoverable."""
    targets = (0, 1, 10, 11, 12, 20, 21, 38, 40, 41)
    rows = make_fake_esc50(tmp_path, n_per_class=1, folds=(1,), sample_rate=44100, channels=2, duration_s=0.5)
    assert len(rows) == 10
    frequencies = np.array([class_frequency(index, len(targets)) for index in range(len(targets))])
    for row in rows:
        info = soundfile.info(str(tmp_path / "audio" / row["filename"]))
        assert (info.samplerate, info.channels) == (44100, 2)
        clip = load_audio(tmp_path / "audio" / row["filename"])
        assert clip.shape == (8000,)
        peak = dominant_frequency(clip, 16000)
        predicted = targets[int(np.argmin(np.abs(np.log(frequencies / peak))))]
        assert predicted == int(row["target"]), row

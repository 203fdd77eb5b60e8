"""Reading audio clips and turning any waveform into the model's input waveform.

Every clip the models see goes through the same steps, whatever the file holds:
any sample rate and any number of channels become a 16 kHz mono, peak-normalised
``float32`` waveform (:func:`prepare_waveform`); :func:`load_audio` does this for a
file and reports every problem (missing, unreadable, empty) as an
:class:`AudioError` that names the file. :func:`fix_length` crops or zero-pads to
the fixed length a batch needs (ESC-50 clips are 5 s, 80000 samples at 16 kHz).

The tensor functions are pure (no I/O); only :func:`load_audio` reads files.
"""

import functools
import math
from pathlib import Path

import numpy as np
import soundfile
import torch
import torchaudio

DEFAULT_SAMPLE_RATE = 16000


class AudioError(ValueError):
    """An audio file that cannot be used, with the file and the reason.

    Arguments
    ---------
    path : str or pathlib.Path
        The file.
    reason : str
        What is wrong with it.

    Example
    -------
    >>> error = AudioError("clip.wav", "file not found")
    >>> str(error)
    "cannot load audio file 'clip.wav': file not found"
    >>> error.reason
    'file not found'
    """

    def __init__(self, path, reason):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot load audio file '{self.path}': {reason}")

    def __reduce__(self):
        return (type(self), (self.path, self.reason))


def _as_float_tensor(waveform, name="waveform"):
    """Return ``waveform`` as a real floating point tensor (float32 unless float64)."""
    if not isinstance(waveform, torch.Tensor):
        try:
            waveform = torch.as_tensor(np.asarray(waveform))
        except (TypeError, ValueError, RuntimeError) as error:
            raise ValueError(f"{name} must be a tensor or an array, got {type(waveform).__name__}") from error
    if waveform.is_complex():
        raise ValueError(f"{name} must be real, got dtype {waveform.dtype}")
    if waveform.dtype == torch.bool:
        raise ValueError(f"{name} must hold numbers, got dtype {waveform.dtype}")
    if not waveform.is_floating_point() or waveform.dtype in (torch.float16, torch.bfloat16):
        waveform = waveform.to(torch.float32)
    return waveform


def _check_sample_rate(sample_rate, name):
    """Return ``sample_rate`` as a positive int, or raise ValueError."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a positive integer, got {sample_rate!r}")
    if not math.isfinite(sample_rate) or sample_rate <= 0 or int(sample_rate) != sample_rate:
        raise ValueError(f"{name} must be a positive integer, got {sample_rate!r}")
    return int(sample_rate)


@functools.lru_cache(maxsize=8)
def _resampler(orig_sample_rate, sample_rate):
    """Cached resampling transform (building its kernel costs far more than applying it)."""
    return torchaudio.transforms.Resample(orig_sample_rate, sample_rate)


def to_mono(waveform, channel_dim=None):
    """Average the channels of a waveform into one channel.

    Arguments
    ---------
    waveform : torch.Tensor
        ``(time,)`` (already mono, returned as is), ``(channels, time)`` or
        ``(time, channels)``.
    channel_dim : int or None
        Which dimension of a 2-D waveform holds the channels. ``None`` takes the
        shorter dimension (a clip has far more samples than channels); a square
        input is read as ``(channels, time)``, torchaudio's layout.

    Returns
    -------
    torch.Tensor
        ``(time,)``, floating point.

    Example
    -------
    >>> stereo = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, -1.0]])
    >>> to_mono(stereo)
    tensor([0.5000, 0.0000, 0.0000])
    >>> to_mono(stereo.T)  # (time, channels) gives the same
    tensor([0.5000, 0.0000, 0.0000])
    >>> to_mono(torch.ones(4)).shape
    torch.Size([4])
    """
    waveform = _as_float_tensor(waveform)
    if waveform.dim() == 1:
        return waveform
    if waveform.dim() != 2:
        raise ValueError(
            "waveform must be (time,), (channels, time) or (time, channels); "
            f"got shape {tuple(waveform.shape)}"
        )
    if channel_dim is None:
        channel_dim = 1 if waveform.shape[1] < waveform.shape[0] else 0
    elif channel_dim not in (0, 1, -1, -2):
        raise ValueError(f"channel_dim must be 0, 1 or None for a 2-D waveform, got {channel_dim}")
    return waveform.mean(dim=channel_dim)


def peak_normalize(waveform, eps=1e-8):
    """Scale a waveform so that its largest absolute sample is 1.

    Each signal along the last dimension is scaled on its own, so a ``(batch,
    time)`` tensor is normalised clip by clip. A silent (all-zero) signal stays
    zeros: the peak is floored at ``eps``, so nothing is divided by zero.

    Arguments
    ---------
    waveform : torch.Tensor
        ``(..., time)``.
    eps : float
        Smallest peak divided by (positive).

    Returns
    -------
    torch.Tensor
        Same shape, floating point.

    Example
    -------
    >>> peak_normalize(torch.tensor([0.1, -0.4, 0.2]))
    tensor([ 0.2500, -1.0000,  0.5000])
    >>> peak_normalize(torch.zeros(3))
    tensor([0., 0., 0.])
    >>> peak_normalize(torch.tensor([[2.0, 1.0], [0.0, 0.5]]))
    tensor([[1.0000, 0.5000],
            [0.0000, 1.0000]])
    """
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps}")
    waveform = _as_float_tensor(waveform)
    if waveform.dim() == 0:
        raise ValueError("waveform must have at least one dimension (time), got a scalar")
    if waveform.shape[-1] == 0:
        return waveform
    peak = waveform.abs().amax(dim=-1, keepdim=True).clamp_min(eps)
    return waveform / peak


def prepare_waveform(waveform, orig_sample_rate, sample_rate=DEFAULT_SAMPLE_RATE, channel_dim=None):
    """Turn any waveform into the model's input: mono, resampled, peak-normalised.

    Arguments
    ---------
    waveform : torch.Tensor or array
        ``(time,)``, ``(channels, time)`` or ``(time, channels)`` (see
        :func:`to_mono` for how the channel dimension is found), any real dtype.
    orig_sample_rate : int
        Sample rate of ``waveform`` in Hz.
    sample_rate : int
        Sample rate of the result in Hz (16 kHz for the recipes).
    channel_dim : int or None
        Channel dimension of a 2-D waveform; ``None`` takes the shorter one.

    Returns
    -------
    torch.Tensor
        ``(time * sample_rate / orig_sample_rate,)`` (rounded up), float32, peak 1
        (all zeros for silence).

    Example
    -------
    >>> stereo_44k = torch.rand(2, 44100) - 0.5      # 1 s, (channels, time)
    >>> clip = prepare_waveform(stereo_44k, 44100)
    >>> clip.shape, clip.dtype
    (torch.Size([16000]), torch.float32)
    >>> round(clip.abs().max().item(), 4)
    1.0
    >>> prepare_waveform(torch.zeros(8000, 2), 8000).abs().max().item()  # silent, (time, channels)
    0.0
    """
    orig_sample_rate = _check_sample_rate(orig_sample_rate, "orig_sample_rate")
    sample_rate = _check_sample_rate(sample_rate, "sample_rate")
    waveform = to_mono(waveform, channel_dim=channel_dim).to(torch.float32)
    if waveform.numel() == 0:
        raise ValueError("waveform is empty (0 samples)")
    if orig_sample_rate != sample_rate:
        with torch.no_grad():
            waveform = _resampler(orig_sample_rate, sample_rate)(waveform)
    return peak_normalize(waveform)


def fix_length(waveform, num_samples):
    """Crop or zero-pad the last dimension of a waveform to ``num_samples``.

    Longer signals keep their first ``num_samples`` samples; shorter ones get
    zeros appended.

    Arguments
    ---------
    waveform : torch.Tensor
        ``(..., time)``.
    num_samples : int
        Length of the result (positive).

    Returns
    -------
    torch.Tensor
        ``(..., num_samples)``.

    Example
    -------
    >>> fix_length(torch.tensor([1.0, 2.0, 3.0]), 5)
    tensor([1., 2., 3., 0., 0.])
    >>> fix_length(torch.tensor([1.0, 2.0, 3.0]), 2)
    tensor([1., 2.])
    >>> fix_length(torch.ones(2, 3), 4).shape
    torch.Size([2, 4])
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples <= 0:
        raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")
    if not isinstance(waveform, torch.Tensor):
        waveform = _as_float_tensor(waveform)
    if waveform.dim() == 0:
        raise ValueError("waveform must have at least one dimension (time), got a scalar")
    length = waveform.shape[-1]
    if length >= num_samples:
        return waveform[..., :num_samples]
    return torch.nn.functional.pad(waveform, (0, int(num_samples) - length))


def _read_with_torchaudio(path):
    """Read ``path`` with torchaudio; returns ``((channels, time) tensor, rate)``."""
    waveform, rate = torchaudio.load(str(path))
    return waveform, rate


def load_audio(path, sample_rate=DEFAULT_SAMPLE_RATE):
    """Read an audio file as the model's input waveform.

    Any sample rate and channel count is accepted: channels are averaged to
    mono, the signal is resampled to ``sample_rate`` and peak-normalised
    (:func:`prepare_waveform`). The file is read with soundfile; torchaudio is
    tried for formats soundfile cannot read. A silent clip is valid and stays
    zeros.

    Arguments
    ---------
    path : str or pathlib.Path
        The audio file.
    sample_rate : int
        Sample rate of the result in Hz.

    Returns
    -------
    torch.Tensor
        ``(time,)``, float32.

    Raises
    ------
    AudioError
        The file is missing, unreadable or corrupt, empty (0 samples), or holds
        non-finite samples; the message names the file and the problem.

    Example
    -------
    >>> import tempfile, os
    >>> folder = tempfile.mkdtemp()
    >>> path = os.path.join(folder, "tone.wav")
    >>> tone = np.sin(np.linspace(0, 440 * 2 * np.pi, 44100))
    >>> soundfile.write(path, np.stack([tone, tone], axis=1), 44100)  # stereo 44.1 kHz
    >>> clip = load_audio(path)
    >>> clip.shape, clip.dtype
    (torch.Size([16000]), torch.float32)
    >>> load_audio(os.path.join(folder, "missing.wav"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    focalnet_lobes.audio.AudioError: cannot load audio file '...missing.wav': file not found
    """
    sample_rate = _check_sample_rate(sample_rate, "sample_rate")
    path = Path(path)
    if not path.exists():
        raise AudioError(path, "file not found")
    if not path.is_file():
        raise AudioError(path, "not a regular file")
    try:
        samples, orig_sample_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        waveform = torch.from_numpy(samples.T.copy())  # (channels, time)
    except Exception as soundfile_error:  # noqa: BLE001  (libsndfile raises several types)
        try:
            waveform, orig_sample_rate = _read_with_torchaudio(path)
        except Exception:  # noqa: BLE001  (report soundfile's reason, the primary reader)
            raise AudioError(path, f"unreadable or corrupt audio ({soundfile_error})") from soundfile_error
    if waveform.numel() == 0:
        raise AudioError(path, "empty audio (0 samples)")
    if not torch.isfinite(waveform).all():
        raise AudioError(path, "contains NaN or infinite samples")
    try:
        return prepare_waveform(waveform, orig_sample_rate, sample_rate, channel_dim=0)
    except ValueError as error:
        raise AudioError(path, str(error)) from error

"""Reading audio clips and turning any waveform into the model's input waveform.

Every clip the models see goes through the same steps, whatever the file holds:
any sample rate and any number of channels become a 16 kHz mono, peak-normalised
``float32`` waveform (:func:`prepare_waveform`); :func:`load_audio` does this for a
file and reports every problem (missing, unreadable, empty) as an
:class:`AudioError` that names the file. :func:`fix_length` crops or zero-pads to
the fixed length a batch needs (ESC-50 clips are 5 s, 80000 samples at 16 kHz).

Resampling uses soxr (libsoxr's polyphase resampler, "HQ" quality), whose cost
is linear in the number of samples for any pair of rates: an awkward rate such as
44 101 Hz costs as much as 44 100 Hz (a windowed-sinc kernel built from the
gcd-reduced rates, as ``torchaudio.transforms.Resample`` builds, grows with
``rate / gcd`` and needs tens of GB for such rates). Sample rates outside
[:data:`MIN_SAMPLE_RATE`, :data:`MAX_SAMPLE_RATE`] are refused with an
:class:`AudioError` naming the rate.

:func:`level_dbfs` measures a clip's RMS level in dB relative to full scale
before any normalisation; :func:`is_silent` compares it with a documented
threshold (:data:`DEFAULT_SILENCE_DBFS`), so that near-silent input (a dither
floor) is reported as silent instead of being amplified to full scale and
classified.

:func:`inspect_audio_file` checks a file from its header without decoding it
(missing, unreadable, empty, a WAV cut short of the data its header declares,
:func:`wav_truncation`, or implausibly short): dataset preparation skips such
files and lists why.

The tensor functions are pure (no I/O); only :func:`load_audio`,
:func:`load_audio_with_level` and :func:`inspect_audio_file` read files.
"""

import math
from pathlib import Path

import numpy as np
import soundfile
import soxr
import torch
import torchaudio

DEFAULT_SAMPLE_RATE = 16000
#: Lowest and highest sample rate (Hz) accepted for a clip; both ends are
#: well outside audio practice (telephony is 8 kHz, studio masters 384 kHz).
MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 768000
#: RMS level (dBFS, of the clip before normalisation) under which a clip is
#: silent. A full-scale sine is -3 dBFS; +-1 LSB dither of 16-bit audio about
#: -93 dBFS; the quietest of the 320 ESC-10 development clips -48 dBFS.
DEFAULT_SILENCE_DBFS = -60.0
#: The label reported for a silent clip.
SILENT_LABEL = "silence"
#: Default shortest usable file for :func:`inspect_audio_file` (seconds): a
#: fiftieth of an ESC-50 clip, 8 frames of the 11.6 ms hop. A shorter file is a
#: truncated copy (a valid header and a few samples), not a recording.
DEFAULT_MIN_SECONDS = 0.1


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
    """Return ``sample_rate`` as an int in [MIN_SAMPLE_RATE, MAX_SAMPLE_RATE], or raise ValueError."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a positive integer, got {sample_rate!r}")
    if not math.isfinite(sample_rate) or sample_rate <= 0 or int(sample_rate) != sample_rate:
        raise ValueError(f"{name} must be a positive integer, got {sample_rate!r}")
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise ValueError(
            f"unsupported {name.replace('_', ' ')} {int(sample_rate)} Hz: supported rates are "
            f"{MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz"
        )
    return int(sample_rate)


def resample(waveform, orig_sample_rate, sample_rate):
    """Resample the last dimension of a waveform, at a cost linear in its length.

    libsoxr's "HQ" polyphase resampler (python-soxr), whatever the two rates:
    time and memory are O(samples), also for rates with a tiny common divisor
    (44 101 -> 16 000 Hz), unlike a windowed-sinc kernel built on the
    gcd-reduced rates (``torchaudio.transforms.Resample``).

    Arguments
    ---------
    waveform : torch.Tensor
        ``(time,)`` or ``(channels, time)``, real.
    orig_sample_rate, sample_rate : int
        Rates (Hz) of the input and of the result, in
        [:data:`MIN_SAMPLE_RATE`, :data:`MAX_SAMPLE_RATE`].

    Returns
    -------
    torch.Tensor
        ``(..., round(time * sample_rate / orig_sample_rate))``, float32.

    Raises
    ------
    ValueError
        A rate outside the supported range (the message names it), or more
        than 2 dimensions.

    Example
    -------
    >>> resample(torch.ones(44101), 44101, 16000).shape
    torch.Size([16000])
    >>> resample(torch.ones(2, 480), 48000, 16000).shape
    torch.Size([2, 160])
    >>> resample(torch.ones(10), 0, 16000)
    Traceback (most recent call last):
    ...
    ValueError: orig_sample_rate must be a positive integer, got 0
    """
    orig_sample_rate = _check_sample_rate(orig_sample_rate, "orig_sample_rate")
    sample_rate = _check_sample_rate(sample_rate, "sample_rate")
    waveform = _as_float_tensor(waveform).to(torch.float32)
    if waveform.dim() not in (1, 2):
        raise ValueError(f"resample expects (time,) or (channels, time), got {tuple(waveform.shape)}")
    if orig_sample_rate == sample_rate:
        return waveform
    samples = waveform.detach().cpu().numpy()
    # soxr takes (time,) or (time, channels)
    result = soxr.resample(samples.T if samples.ndim == 2 else samples, orig_sample_rate, sample_rate)
    result = np.ascontiguousarray(result.T if samples.ndim == 2 else result, dtype=np.float32)
    return torch.from_numpy(result).to(waveform.device)


def level_dbfs(waveform):
    """RMS level of each signal in dB relative to full scale (1.0), before any normalisation.

    ``20 log10(sqrt(mean(x^2)))``: 0 dBFS for a full-scale square wave, -3.01 for a
    full-scale sine, ``-inf`` for digital silence.

    Arguments
    ---------
    waveform : torch.Tensor
        ``(..., time)``, on the float scale where full scale is 1.0 (as
        soundfile reads integer PCM).

    Returns
    -------
    torch.Tensor
        ``(...)``, float64 dB (``-inf`` for all-zero signals).

    Example
    -------
    >>> round(level_dbfs(torch.sin(torch.linspace(0, 200 * math.pi, 16000))).item(), 1)
    -3.0
    >>> level_dbfs(torch.zeros(2, 8)).tolist()
    [-inf, -inf]
    """
    waveform = _as_float_tensor(waveform).double()
    if waveform.dim() == 0 or waveform.shape[-1] == 0:
        raise ValueError(f"level_dbfs needs at least one sample, got shape {tuple(waveform.shape)}")
    return 10.0 * torch.log10(waveform.square().mean(dim=-1))


def is_silent(waveform, threshold_dbfs=DEFAULT_SILENCE_DBFS):
    """Whether each signal's RMS level (:func:`level_dbfs`) is below ``threshold_dbfs``.

    Arguments
    ---------
    waveform : torch.Tensor
        ``(..., time)``, full scale 1.0.
    threshold_dbfs : float or None
        Level in dBFS (e.g. -60); ``None`` never reports silence.

    Returns
    -------
    torch.Tensor
        ``(...)`` bool.

    Example
    -------
    >>> dither = torch.randint(-1, 2, (16000,)) / 32768.0  # +-1 LSB of 16-bit audio
    >>> is_silent(dither).item(), is_silent(0.1 * torch.randn(16000)).item()
    (True, False)
    """
    level = level_dbfs(waveform)
    if threshold_dbfs is None:
        return torch.zeros(level.shape, dtype=torch.bool)
    return level < float(threshold_dbfs)


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
        ``(round(time * sample_rate / orig_sample_rate),)``, float32, peak 1
        (all zeros for silence). Resampled with :func:`resample`.

    Raises
    ------
    ValueError
        A sample rate outside [:data:`MIN_SAMPLE_RATE`, :data:`MAX_SAMPLE_RATE`]
        (named), an empty waveform, or nothing left after resampling.

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
        waveform = resample(waveform, orig_sample_rate, sample_rate)
        if waveform.numel() == 0:
            raise ValueError(
                f"too short: no sample left after resampling from {orig_sample_rate} Hz "
                f"to {sample_rate} Hz"
            )
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


# Containers soundfile (libsndfile) decodes, by their magic bytes.
_DECODABLE_MAGIC = (
    (b"RIFF", 0, "WAV"), (b"RIFX", 0, "WAV"), (b"RF64", 0, "RF64 WAV"), (b"BW64", 0, "BW64 WAV"),
    (b"fLaC", 0, "FLAC"), (b"OggS", 0, "Ogg"), (b"FORM", 0, "AIFF"), (b".snd", 0, "AU"),
    (b"caff", 0, "CAF"), (b"ID3", 0, "MP3"),
)
# Containers/codecs this install cannot decode: magic bytes and offset.
_UNSUPPORTED_MAGIC = (
    (b"ftyp", 4, "MP4/M4A (AAC or ALAC)"),
    (b"\x1a\x45\xdf\xa3", 0, "Matroska/WebM"),
    (b"\x30\x26\xb2\x75", 0, "ASF/WMA"),
    (b"#!AMR", 0, "AMR"),
    (b"\x0b\x77", 0, "AC-3"),
    (b"MAC ", 0, "Monkey's Audio"),
    (b"wvpk", 0, "WavPack"),
    (b"\xff\xf1", 0, "AAC (ADTS)"),
    (b"\xff\xf9", 0, "AAC (ADTS)"),
)
# Extensions of formats this install cannot decode (when the magic bytes say nothing).
_UNSUPPORTED_EXTENSIONS = {
    ".m4a": "MP4/M4A", ".mp4": "MP4", ".m4b": "MP4/M4A", ".aac": "AAC", ".alac": "ALAC",
    ".wma": "WMA", ".webm": "WebM", ".mka": "Matroska", ".mkv": "Matroska", ".amr": "AMR",
    ".ac3": "AC-3", ".ape": "Monkey's Audio", ".wv": "WavPack", ".3gp": "3GP", ".dts": "DTS",
}
CONVERT_HINT = "convert it to WAV or FLAC, e.g. 'ffmpeg -i IN -ac 1 -ar 16000 OUT.wav'"


def audio_format_problem(path, error=None):
    """Why an audio file could not be decoded: unsupported format or corrupt data.

    Looks at the file's first bytes (and its extension when they say nothing):
    a container this install cannot decode (MP4/M4A/AAC, WebM, WMA, ...) is an
    *unsupported format*, with what to do; a file whose header is one soundfile
    decodes (WAV, FLAC, Ogg, AIFF, ...) but whose data cannot be read is
    *corrupt*; anything else is *not a recognised audio format*.

    Arguments
    ---------
    path : str or pathlib.Path
        The file (it exists).
    error : Exception or None
        The decoder's error, quoted in the message for corrupt files.

    Returns
    -------
    str
        One line, starting with ``"unsupported format"``, ``"unreadable or
        corrupt audio"`` or ``"not a recognised audio format"``.

    Example
    -------
    >>> import tempfile, os
    >>> folder = tempfile.mkdtemp()
    >>> m4a = os.path.join(folder, "clip.m4a")
    >>> _ = open(m4a, "wb").write(b"\\x00\\x00\\x00\\x20ftypM4A " + bytes(64))
    >>> audio_format_problem(m4a)  # doctest: +ELLIPSIS
    "unsupported format MP4/M4A (AAC or ALAC): this install cannot decode it; convert it to WAV or FLAC, ..."
    >>> wav = os.path.join(folder, "clip.wav")
    >>> _ = open(wav, "wb").write(b"RIFF" + bytes(40))
    >>> audio_format_problem(wav, "Error in WAV file")
    'unreadable or corrupt audio (WAV header, Error in WAV file)'
    """
    try:
        with open(path, "rb") as file:
            head = file.read(16)
    except OSError as os_error:
        return f"unreadable ({os_error.strerror or os_error})"
    detail = f", {error}" if error is not None else ""
    for magic, offset, name in _DECODABLE_MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return f"unreadable or corrupt audio ({name} header{detail})"
    for magic, offset, name in _UNSUPPORTED_MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return f"unsupported format {name}: this install cannot decode it; {CONVERT_HINT}"
    extension = Path(path).suffix.lower()
    if extension in _UNSUPPORTED_EXTENSIONS:
        return (
            f"unsupported format {_UNSUPPORTED_EXTENSIONS[extension]} ({extension}): this install "
            f"cannot decode it; {CONVERT_HINT}"
        )
    if extension in (".wav", ".wave", ".flac", ".ogg", ".oga", ".aif", ".aiff", ".au", ".mp3", ".caf"):
        return f"unreadable or corrupt audio (no valid {extension[1:].upper()} header{detail})"
    return f"not a recognised audio format (readable formats: WAV, FLAC, Ogg, AIFF, MP3; {CONVERT_HINT})"


def wav_truncation(path):
    """Bytes a RIFF/WAVE file's ``data`` chunk declares beyond the end of the file.

    libsndfile reads a truncated WAV without complaint (it returns the samples
    present), so a copy cut short after its header looks like a valid, short
    clip. This walks the RIFF chunks (``fmt ``, ``LIST``, ... ``data``) and
    compares the ``data`` chunk's declared size with the bytes that follow it.

    Arguments
    ---------
    path : str or pathlib.Path
        Any file; only RIFF/WAVE files are examined.

    Returns
    -------
    tuple of int or None
        ``(declared, present)`` data bytes when the file is a WAV whose data
        chunk is cut short; ``None`` otherwise (complete, not a WAV, or a
        streamed WAV whose size field is 0 or 0xFFFFFFFF, which means "unknown").

    Example
    -------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "a.wav"
    >>> soundfile.write(path, np.zeros(8000), 16000, subtype="PCM_16")
    >>> wav_truncation(path) is None
    True
    >>> _ = path.write_bytes(path.read_bytes()[:100])  # header + 28 samples
    >>> wav_truncation(path)
    (16000, 56)
    """
    with open(path, "rb") as file:
        header = file.read(12)
        if len(header) < 12 or header[:4] not in (b"RIFF", b"RIFX") or header[8:12] != b"WAVE":
            return None
        byteorder = "little" if header[:4] == b"RIFF" else "big"
        size = Path(path).stat().st_size
        position = 12
        while position + 8 <= size:
            file.seek(position)
            chunk = file.read(8)
            declared = int.from_bytes(chunk[4:8], byteorder)
            if chunk[:4] == b"data":
                present = size - position - 8
                if declared in (0, 0xFFFFFFFF) or declared <= present:
                    return None
                return declared, present
            position += 8 + declared + (declared & 1)
    return None


def inspect_audio_file(path, min_seconds=DEFAULT_MIN_SECONDS):
    """Duration of an audio file from its header, or why it cannot be used.

    Arguments
    ---------
    path : str or pathlib.Path
        The audio file.
    min_seconds : float
        Shortest usable duration (seconds, >= 0, default
        :data:`DEFAULT_MIN_SECONDS`); a shorter file is reported as
        implausibly short.

    Used by ``recipes/esc50_prepare.py`` to list the clips it skips; the WAV
    walk is :func:`wav_truncation`.

    Returns
    -------
    duration : float or None
        Seconds; None when the file cannot be used.
    reason : str or None
        What is wrong (file not found, unreadable or corrupt, empty, truncated,
        shorter than ``min_seconds``); None when usable.

    Example
    -------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "a.wav"
    >>> soundfile.write(path, np.zeros(8000), 16000)
    >>> inspect_audio_file(path)
    (0.5, None)
    >>> inspect_audio_file(path, min_seconds=2.5)
    (None, 'implausibly short: 0.5 s, under min_seconds = 2.5 s')
    >>> inspect_audio_file(path.with_name("missing.wav"))
    (None, 'file not found')
    """
    path = Path(path)
    if not path.exists():
        return None, "file not found"
    if not path.is_file():
        return None, "not a regular file"
    try:
        info = soundfile.info(str(path))
    except Exception as error:  # noqa: BLE001  (libsndfile raises several types)
        # "unsupported format ..." (with the ffmpeg way out) or "unreadable or corrupt audio ..."
        return None, audio_format_problem(path, error)
    if info.frames <= 0:
        return None, "empty audio (0 frames)"
    if info.samplerate <= 0:
        return None, f"invalid sample rate {info.samplerate}"
    try:
        truncation = wav_truncation(path)
    except OSError as error:
        return None, f"unreadable ({error})"
    if truncation is not None:
        declared, present = truncation
        return None, (
            f"truncated: the header declares {declared} bytes of audio, the file holds "
            f"{present} ({info.frames} frames, {info.frames / info.samplerate:.3f} s)"
        )
    duration = info.frames / info.samplerate
    if duration < min_seconds:
        return None, f"implausibly short: {duration:.3g} s, under min_seconds = {min_seconds:g} s"
    return duration, None


def _read_file(path):
    """Decode ``path``: ``((channels, time) float32 tensor on full scale 1.0, rate)``; AudioError otherwise."""
    path = Path(path)
    if not path.exists():
        raise AudioError(path, "file not found")
    if not path.is_file():
        raise AudioError(path, "not a regular file")
    try:
        info = soundfile.info(str(path))
        rate = info.samplerate
    except Exception:  # noqa: BLE001  (libsndfile raises several types)
        rate = None
    if rate is not None:
        # the rate is checked before decoding: nothing is allocated for a rate we refuse
        try:
            _check_sample_rate(rate, "sample_rate")
        except ValueError:
            raise AudioError(
                path, f"unsupported sample rate {rate} Hz (supported: {MIN_SAMPLE_RATE} to "
                f"{MAX_SAMPLE_RATE} Hz)"
            ) from None
    try:
        samples, orig_sample_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        waveform = torch.from_numpy(samples.T.copy())  # (channels, time)
    except Exception as soundfile_error:  # noqa: BLE001  (libsndfile raises several types)
        try:
            waveform, orig_sample_rate = _read_with_torchaudio(path)
        except Exception:  # noqa: BLE001  (report soundfile's reason, the primary reader)
            raise AudioError(path, audio_format_problem(path, soundfile_error)) from soundfile_error
    if waveform.numel() == 0:
        raise AudioError(path, "empty audio (0 samples)")
    if not torch.isfinite(waveform).all():
        raise AudioError(path, "contains NaN or infinite samples")
    return waveform, orig_sample_rate


def load_audio_with_level(path, sample_rate=DEFAULT_SAMPLE_RATE):
    """Read an audio file as :func:`load_audio` does, with its level before normalisation.

    Arguments
    ---------
    path : str or pathlib.Path
        The audio file.
    sample_rate : int
        Sample rate of the result in Hz.

    Returns
    -------
    waveform : torch.Tensor
        ``(time,)``, float32, peak-normalised (:func:`prepare_waveform`).
    level : float
        RMS level (:func:`level_dbfs`) of the mono mix at the file's own rate
        and scale, before normalisation; ``-inf`` for digital silence.

    Raises
    ------
    AudioError
        As :func:`load_audio`.

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "dither.wav")
    >>> dither = np.random.default_rng(0).integers(-1, 2, 8000).astype(np.int16)
    >>> soundfile.write(path, dither, 8000, subtype="PCM_16")
    >>> clip, level = load_audio_with_level(path)
    >>> clip.shape, round(clip.abs().max().item(), 3), level < DEFAULT_SILENCE_DBFS
    (torch.Size([16000]), 1.0, True)
    """
    sample_rate = _check_sample_rate(sample_rate, "sample_rate")
    waveform, orig_sample_rate = _read_file(path)
    try:
        level = float(level_dbfs(to_mono(waveform, channel_dim=0)))
        return prepare_waveform(waveform, orig_sample_rate, sample_rate, channel_dim=0), level
    except ValueError as error:
        raise AudioError(path, str(error)) from error


def load_audio(path, sample_rate=DEFAULT_SAMPLE_RATE):
    """Read an audio file as the model's input waveform.

    Any sample rate in [:data:`MIN_SAMPLE_RATE`, :data:`MAX_SAMPLE_RATE`] and any
    channel count is accepted: channels are averaged to mono, the signal is
    resampled to ``sample_rate`` (:func:`resample`, bounded time and memory) and
    peak-normalised (:func:`prepare_waveform`). The file is read with
    soundfile; torchaudio is tried for formats soundfile cannot read. A silent
    clip is valid and stays zeros; use :func:`load_audio_with_level` to know its
    level before normalisation.

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
        The file is missing, in a format this install cannot decode
        ("unsupported format ...", with what to do), corrupt, empty (0
        samples), at an unsupported sample rate (named), or holds non-finite
        samples; the message names the file and the problem.

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
    focalnet_lobes.data.audio.AudioError: cannot load audio file '...missing.wav': file not found
    """
    return load_audio_with_level(path, sample_rate)[0]

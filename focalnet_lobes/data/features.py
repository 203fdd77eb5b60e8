"""The spectrogram front end: waveform -> STFT -> compressed-magnitude features, and back.

:class:`SpectrogramFrontend` computes the classifier's input (``log1p`` of the STFT
magnitude, as the paper, or of its projection on a filterbank of mel or linearly
spaced bands; or their per-channel energy normalization, PCEN) and, for interpretation,
turns a mask on that feature grid back into a mask on the linear STFT grid and
into a listenable waveform (masked magnitude with the original phase, inverted by
the ISTFT to the input's length).

Masks act on the compressed features, so a masked-out bin is 0: the feature of
silence (``log1p(0) = 0``; PCEN also maps silence to 0). With ``log1p`` a binary
mask on the features equals the features of the masked magnitude (``log1p(C M E) =
M log1p(C E)``, C the ``log1p_scale``), so the masked input the metrics score is the
listenable one. With PCEN
it is not: its smoother spans frames, so PCEN of a masked magnitude differs from the
masked PCEN features (by as much as the features themselves at kept bins). The
metrics (:mod:`focalnet_lobes.interpretation.metrics`) score the masked model input;
the listenable audio and L-MAC's training mask the magnitude.
"""

import math
from collections import OrderedDict
from collections.abc import Mapping

import torch
import torchaudio
from speechbrain.nnet.normalization import PCEN
from speechbrain.processing.features import ISTFT, STFT
from speechbrain.utils.checkpoints import mark_as_loader, mark_as_saver, register_checkpoint_hooks
from torch import nn

WINDOWS = {
    "hamming": torch.hamming_window,
    "hann": torch.hann_window,
}
#: ``compression`` values of :class:`SpectrogramFrontend`.
COMPRESSIONS = ("log1p", "pcen")
#: ``freq_scale`` values of :class:`SpectrogramFrontend` (the spacing of its filterbank's bands).
FREQ_SCALES = ("mel", "linear")
#: Keys of ``pcen_options``: the arguments of SpeechBrain's PCEN (fixed, not trained).
PCEN_OPTIONS = ("alpha", "smooth_coef", "delta", "root", "floor")
#: What a report says of an interpretation on PCEN features (module docstring, above).
PCEN_MASKING_CAVEAT = (
    "the metrics score the masked features the model sees, while the listenable audio "
    "masks the spectrogram, a different input"
)


@register_checkpoint_hooks
class SpectrogramFrontend(nn.Module):
    """Log-magnitude STFT (or filterbank: log-mel, linear bands) features with an exact way back to audio.

    Defaults are the paper's: 16 kHz, n_fft 1024, 23.2199 ms Hamming window,
    11.6099 ms hop (372 / 186 samples), so a 5 s clip gives T=431 frames and
    F=513 bins.

    Arguments
    ---------
    sample_rate : int
        Sample rate of the waveforms.
    n_fft : int
        FFT size.
    win_length : float
        Window length in milliseconds.
    hop_length : float
        Hop length in milliseconds.
    window : str
        ``"hamming"`` or ``"hann"``.
    n_mels : int or None
        ``None`` for linear-frequency features (F = n_fft // 2 + 1); otherwise the
        number of bands of a triangular filterbank applied to the magnitude before
        compression, on the scale ``freq_scale``.
    f_min : float
        Lowest frequency of the filterbank in Hz.
    f_max : float or None
        Highest frequency of the filterbank in Hz (``None``: Nyquist).
    freq_scale : str
        Spacing of the filterbank's bands (with ``n_mels`` set; SpeechBrain's
        ``Filterbank`` names the option the same): ``"mel"`` (the HTK mel scale,
        :func:`torchaudio.functional.melscale_fbanks`) or ``"linear"`` (equally
        spaced in Hz, :func:`torchaudio.functional.linear_fbanks`: the STFT bins
        pooled into ``n_mels`` bands, finer than mel above about 2.5 kHz at 64
        bands on 0-8 kHz, coarser below); it needs ``n_mels`` (the features of
        ``n_mels=None`` are the STFT's linear bins already). The linear filterbank
        is a saved buffer ``linear_filters`` of the module (a fixed setting, not a
        parameter: not trained, not counted), so a checkpoint records it and a
        model trained on one scale does not load into a front end of the other.
    compression : str
        How the projected magnitude E (B, T, F) becomes features: ``"log1p"`` (the
        paper's, ``log(1 + E)``) or ``"pcen"``, per-channel energy normalization
        (Wang et al., "Trainable frontend for robust and far-field keyword spotting",
        ICASSP 2017, eq. 1): ``(E / (floor + M)^alpha + delta)^(1/root) - delta^(1/root)``
        with M a first-order smoother of E along time (``M[t] = (1 - s) M[t-1] + s E[t]``,
        ``M[0] = E[0]``), computed by :class:`speechbrain.nnet.normalization.PCEN` with
        its parameters fixed (the front end is not trained), in float32. Both map
        silence (E = 0) to 0.
    log1p_scale : float
        C of the ``"log1p"`` compression ``log(1 + C E)`` (the magnitude compression
        ``log(1 + C x)`` of e.g. Dieleman & Schrauwen, "End-to-end learning for music
        audio", ICASSP 2014), a finite number > 0; 1 is the paper's ``log1p(E)``.
        log(1 + C E) is about C E (linear) below E = 1 / C and log(C E) (logarithmic)
        above: at C = 1 the knee is the level of white noise at about -36 dBFS on 64
        mel bands (-20 dBFS on the 513 bins of the linear grid), so quieter sounds are
        compressed almost linearly; C = 1000 moves the knee 60 dB down (on 64 mel
        bands, to the 16-bit floor: white noise at -96 dBFS). Silence stays 0 and a
        binary mask stays exact (see the module docstring). C != 1 is a fixed
        (untrained) parameter ``log1p_constant`` of the module, so a checkpoint
        records it; with ``"pcen"`` it must be 1.
    pcen_options : dict or None
        With ``compression="pcen"``: the keys ``alpha`` (gain normalization exponent,
        in [0, 1]), ``smooth_coef`` (s, in (0, 1]), ``delta`` (> 0), ``root`` (>= 1)
        and ``floor`` (> 0), each optional (SpeechBrain's defaults, LEAF's: 0.96, 0.04,
        2.0, 2.0, 1e-12). Checked whatever the compression but used only with
        ``"pcen"`` (so that a YAML file can hold them for a ``--compression pcen``
        override). Note that librosa.pcen starts its
        smoother at a steady state and its defaults assume magnitudes scaled by
        2**31: its parameter values, not its output, are reproduced by the YAML's.

    Raises
    ------
    ValueError
        An unknown window, compression or ``freq_scale``; ``n_mels`` neither None
        nor an integer >= 1; ``freq_scale="linear"`` without ``n_mels``;
        ``pcen_options`` not a mapping, with an unknown key, or with a value that
        is not a finite number in its range;
        ``log1p_scale`` not a finite number > 0, or not 1 with ``"pcen"``.

    Example
    -------
    >>> frontend = SpectrogramFrontend()
    >>> wav = torch.randn(2, 80000)
    >>> frontend(wav).shape
    torch.Size([2, 1, 431, 513])
    >>> mel = SpectrogramFrontend(n_mels=64)
    >>> mel(wav).shape
    torch.Size([2, 1, 431, 64])
    >>> mask = torch.ones(2, 1, 431, 64)
    >>> rebuilt = mel.listenable(wav, mask)
    >>> rebuilt.shape
    torch.Size([2, 80000])
    >>> bool((rebuilt - wav).abs().max() < 1e-3)
    True
    >>> pcen = SpectrogramFrontend(n_mels=64, compression="pcen", pcen_options={"alpha": 0.98})
    >>> pcen(wav).shape
    torch.Size([2, 1, 431, 64])
    >>> float(pcen(torch.zeros(1, 8000)).abs().max())  # silence
    0.0
    >>> round(float(SpectrogramFrontend(log1p_scale=1000.0).compress(torch.full((1, 1, 1), 0.01))), 4)
    2.3979
    >>> linear = SpectrogramFrontend(n_mels=64, freq_scale="linear")
    >>> linear(wav).shape, bool(linear.mask_to_linear(mask).eq(1).all())
    (torch.Size([2, 1, 431, 64]), True)
    """

    # The YAML keys that set each fixed parameter or saved buffer (by name prefix), named by
    # checkpoints.check_resumable when a resumed run's settings differ from the checkpoint's.
    parameter_settings = {
        "log1p_constant": "log1p_scale",
        "pcen.": "compression, pcen_options",
        "linear_filters": "freq_scale, n_mels",
    }

    def __init__(
        self,
        sample_rate=16000,
        n_fft=1024,
        win_length=23.2199,
        hop_length=11.6099,
        window="hamming",
        n_mels=None,
        f_min=0.0,
        f_max=None,
        compression="log1p",
        pcen_options=None,
        log1p_scale=1.0,
        freq_scale="mel",
    ):
        super().__init__()
        if window not in WINDOWS:
            raise ValueError(f"Unknown window '{window}': expected one of {sorted(WINDOWS)}")
        if freq_scale not in FREQ_SCALES:
            raise ValueError(f"Unknown freq_scale {freq_scale!r}: expected one of {list(FREQ_SCALES)}")
        if n_mels is not None and (isinstance(n_mels, bool) or not isinstance(n_mels, int) or n_mels < 1):
            raise ValueError(f"n_mels must be an integer >= 1 (or null: the STFT bins), got {n_mels!r}")
        if freq_scale != "mel" and n_mels is None:
            raise ValueError(
                f"freq_scale {freq_scale!r} spaces the n_mels bands of a filterbank; with n_mels null "
                "the features are the STFT's linear bins already (set n_mels, or freq_scale: mel)"
            )
        self.freq_scale = freq_scale
        if compression not in COMPRESSIONS:
            raise ValueError(f"Unknown compression '{compression}': expected one of {list(COMPRESSIONS)}")
        self.compression = compression
        if not _finite_number(log1p_scale) or not log1p_scale > 0:
            raise ValueError(f"log1p_scale must be a finite number > 0, got {log1p_scale!r}")
        self.log1p_scale = float(log1p_scale)
        if self.log1p_scale != 1.0:
            if compression != "log1p":
                raise ValueError(
                    f"log1p_scale {log1p_scale!r} applies to compression 'log1p' only, not "
                    f"'{compression}' (set log1p_scale: 1.0)"
                )
            # A fixed parameter, so that a checkpoint records C and a run resumed with another
            # C stops (checkpoints.check_resumable compares fixed values); C = 1 adds nothing,
            # so the state of the paper's log1p front end is unchanged.
            self.log1p_constant = nn.Parameter(torch.tensor(self.log1p_scale), requires_grad=False)
        self.pcen = _fixed_pcen(compression, pcen_options, n_fft // 2 + 1 if n_mels is None else n_mels)
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.n_mels = n_mels
        # One framing for the transform and its inverse (listenable() inverts the STFT).
        framing = dict(
            sample_rate=sample_rate,
            win_length=win_length,
            hop_length=hop_length,
            n_fft=n_fft,
            window_fn=WINDOWS[window],
        )
        self.stft = STFT(**framing)
        self.istft = ISTFT(**framing)
        n_freqs = n_fft // 2 + 1
        self.register_buffer("mel_filters", None, persistent=False)
        self.register_buffer("band_to_linear", None, persistent=False)
        if n_mels is not None:
            f_max = f_max if f_max is not None else sample_rate / 2
            if freq_scale == "mel":
                filters = torchaudio.functional.melscale_fbanks(
                    n_freqs=n_freqs, f_min=f_min, f_max=f_max, n_mels=n_mels,
                    sample_rate=sample_rate, norm=None, mel_scale="htk",
                )  # (n_freqs, n_mels)
                self.mel_filters = filters
            else:
                filters = torchaudio.functional.linear_fbanks(
                    n_freqs=n_freqs, f_min=f_min, f_max=f_max, n_filter=n_mels, sample_rate=sample_rate,
                )  # (n_freqs, n_mels)
                # Saved with the module (unlike mel_filters), so a checkpoint records the scale.
                self.register_buffer("linear_filters", filters)
            self.band_to_linear = _band_to_linear_weights(filters)

    @property
    def num_bins(self):
        """Number of frequency bins of the features (F)."""
        return self.n_fft // 2 + 1 if self.n_mels is None else self.n_mels

    def spectrum(self, wavs):
        """Complex STFT of ``wavs`` (B, samples) as (B, T, n_fft // 2 + 1).

        Arguments
        ---------
        wavs : torch.Tensor
            Waveforms (B, samples).

        Returns
        -------
        torch.Tensor
            Complex spectrum (B, T, F_linear).

        Example
        -------
        >>> SpectrogramFrontend().spectrum(torch.randn(1, 16000)).shape
        torch.Size([1, 87, 513])
        """
        if wavs.dim() != 2:
            raise ValueError(f"Expected waveforms of shape (batch, samples), got {tuple(wavs.shape)}")
        return torch.view_as_complex(self.stft(wavs.float()).contiguous())

    def features_from_magnitude(self, magnitude):
        """Features (B, 1, T, F) from a linear magnitude (B, T, F_linear): projected, compressed.

        Arguments
        ---------
        magnitude : torch.Tensor
            Non-negative STFT magnitude (B, T, F_linear).

        Returns
        -------
        torch.Tensor
            Features (B, 1, T, F).

        Example
        -------
        >>> SpectrogramFrontend(n_mels=8).features_from_magnitude(torch.ones(1, 3, 513)).shape
        torch.Size([1, 1, 3, 8])
        """
        return self.compress(self.project(magnitude))

    def project(self, magnitude):
        """The magnitude on the feature grid, before compression: (B, T, F_linear) -> (B, T, F).

        The filterbank's projection (or the identity for linear features). Linear in
        the magnitude, so a gain g on the waveform scales its result by g exactly.

        Example
        -------
        >>> frontend = SpectrogramFrontend(n_mels=8)
        >>> frontend.project(torch.ones(1, 3, 513)).shape
        torch.Size([1, 3, 8])
        """
        if self.mel_filters is not None:
            return magnitude @ self.mel_filters
        if self.freq_scale == "linear":
            return magnitude @ self.linear_filters
        return magnitude

    def compress(self, projected):
        """Features (B, 1, T, F) of a projected magnitude (B, T, F): ``log1p(C E)`` or PCEN.

        PCEN runs in float32 outside any autocast region (its smoother is a
        recursion over the T frames); so does ``log1p(C E)`` for C != 1 (C E may
        exceed float16's range).

        Example
        -------
        >>> SpectrogramFrontend().compress(torch.zeros(2, 3, 513)).shape
        torch.Size([2, 1, 3, 513])
        """
        if self.pcen is None:
            if self.log1p_scale == 1.0:
                return torch.log1p(projected).unsqueeze(1)
            with torch.autocast(device_type=projected.device.type, enabled=False):  # C E may pass fp16's range
                return torch.log1p(projected.float() * self.log1p_constant).unsqueeze(1)
        with torch.autocast(device_type=projected.device.type, enabled=False):
            return self.pcen(projected.float()).unsqueeze(1)

    def forward(self, wavs):
        """Features (B, 1, T, F) of waveforms (B, samples)."""
        return self.features_from_magnitude(self.spectrum(wavs).abs())

    def mask_to_linear(self, mask):
        """Map a mask on the feature grid (B, 1, T, F) to the linear grid (B, 1, T, F_linear).

        For linear features this is the identity. For filterbank features (mel or
        linear bands) each linear bin takes the filter-weighted mean of the masks of
        the bands that cover it (bins that no band covers take the nearest band's value).

        Arguments
        ---------
        mask : torch.Tensor
            Mask on the feature grid, values in [0, 1].

        Returns
        -------
        torch.Tensor
            Mask on the linear STFT grid.

        Example
        -------
        >>> frontend = SpectrogramFrontend(n_mels=16)
        >>> frontend.mask_to_linear(torch.ones(1, 1, 5, 16)).shape
        torch.Size([1, 1, 5, 513])
        >>> bool(frontend.mask_to_linear(torch.ones(1, 1, 5, 16)).eq(1).all())
        True
        """
        if mask.shape[-1] != self.num_bins:
            raise ValueError(
                f"Mask has {mask.shape[-1]} frequency bins, the features have {self.num_bins}"
            )
        if self.band_to_linear is None:
            return mask
        return mask @ self.band_to_linear.to(mask.dtype)

    def listenable(self, wavs, mask):
        """Waveforms of the masked spectrum: mask x |X| with the original phase, inverted.

        Arguments
        ---------
        wavs : torch.Tensor
            Input waveforms (B, samples).
        mask : torch.Tensor
            Mask on the feature grid (B, 1, T, F) (binary or soft, in [0, 1]).

        Returns
        -------
        torch.Tensor
            Waveforms (B, samples), the same length as the input.

        Example
        -------
        >>> frontend = SpectrogramFrontend()
        >>> wav = torch.randn(1, 8000)
        >>> silent = frontend.listenable(wav, torch.zeros(1, 1, 44, 513))
        >>> float(silent.abs().max())
        0.0
        """
        spectrum = self.spectrum(wavs)
        linear_mask = self.mask_to_linear(mask).squeeze(1).to(spectrum.real.dtype)
        if linear_mask.shape != spectrum.shape:
            raise ValueError(
                f"Mask grid {tuple(linear_mask.shape[1:])} does not match the spectrum "
                f"grid {tuple(spectrum.shape[1:])}"
            )
        masked = spectrum * linear_mask
        return self.istft(torch.view_as_real(masked), sig_length=wavs.shape[-1])

    @mark_as_saver
    def save(self, path):
        """Checkpoint saver: ``torch.save(self.state_dict(), path)``, SpeechBrain's default.

        The same file as SpeechBrain's default saver of modules
        (``speechbrain.utils.checkpoints.torch_save``), without its warning for an
        empty state dict: the default front end (``log1p``, ``log1p_scale`` 1) holds no
        tensor, its settings being the YAML's, so the warning (the module's whole
        repr, every epoch) said nothing. Non-default settings are saved as fixed
        parameters (``log1p_constant``, ``pcen.*``) or buffers (``linear_filters``) and compared when a run resumes
        (:func:`focalnet_lobes.training.checkpoints.check_resumable`).

        Arguments
        ---------
        path : str or pathlib.Path
            The checkpoint file to write.

        Example
        -------
        >>> import tempfile, pathlib
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = pathlib.Path(folder) / "compute_features.ckpt"
        ...     SpectrogramFrontend(log1p_scale=1000.0).save(path)
        ...     sorted(torch.load(path, weights_only=True))
        ['log1p_constant']
        """
        torch.save(self.state_dict(), path)

    @mark_as_loader
    def load(self, path, end_of_epoch=True):
        """Checkpoint loader: ``load_state_dict`` of the file, strictly, as SpeechBrain's default.

        Arguments
        ---------
        path : str or pathlib.Path
            A file written by :meth:`save` (or SpeechBrain's default saver).
        end_of_epoch : bool
            Unused (SpeechBrain's loader signature).

        Raises
        ------
        RuntimeError
            The file's tensors do not fit these settings (``load_state_dict``).

        Example
        -------
        >>> import tempfile, pathlib
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = pathlib.Path(folder) / "compute_features.ckpt"
        ...     SpectrogramFrontend(n_mels=64).save(path)
        ...     SpectrogramFrontend(n_mels=64).load(path)
        ...     try:
        ...         SpectrogramFrontend(n_mels=64, log1p_scale=1000.0).load(path)
        ...     except RuntimeError as error:
        ...         print("log1p_constant" in str(error))
        True
        """
        del end_of_epoch
        self.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)


def _finite_number(value):
    """Whether ``value`` is a finite int or float (a bool, a string or None is not)."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def _fixed_pcen(compression, options, num_bins):
    """SpeechBrain's PCEN with fixed parameters for ``compression="pcen"``, else None
    (``options`` are checked in both cases)."""
    if options is not None and not isinstance(options, Mapping):
        raise ValueError(f"pcen_options must be a mapping of option: value, got {options!r}")
    options = dict(options or {})
    unknown = sorted(set(options) - set(PCEN_OPTIONS))
    if unknown:
        raise ValueError(f"Unknown pcen_options {unknown}: expected some of {list(PCEN_OPTIONS)}")
    ranges = {
        "alpha": (lambda v: 0.0 <= v <= 1.0, "in [0, 1]"),
        "smooth_coef": (lambda v: 0.0 < v <= 1.0, "in (0, 1]"),
        "delta": (lambda v: v > 0.0, "> 0"),
        "root": (lambda v: v >= 1.0, ">= 1"),
        "floor": (lambda v: v > 0.0, "> 0"),
    }
    for key, value in options.items():
        valid, text = ranges[key]
        if not _finite_number(value) or not valid(float(value)):
            raise ValueError(f"pcen_options {key} must be a finite number {text}, got {value!r}")
        options[key] = float(value)
    if compression != "pcen":
        return None
    return PCEN(num_bins, trainable=False, per_channel_smooth_coef=False, **options)


def _band_to_linear_weights(filters):
    """(n_bands, n_freqs) weights mapping a filterbank-band mask to linear bins.

    Each linear bin averages the masks of the bands covering it, weighted by the
    filter values; uncovered bins copy the nearest covered bin.
    """
    coverage = filters.sum(dim=1, keepdim=True)  # (n_freqs, 1)
    weights = filters / coverage.clamp_min(1e-12)
    covered = (coverage.squeeze(1) > 0).nonzero().squeeze(1)
    for index in (coverage.squeeze(1) == 0).nonzero().squeeze(1).tolist():
        nearest = covered[(covered - index).abs().argmin()]
        weights[index] = weights[nearest]
    return weights.T.contiguous()


class FeatureCache:
    """Per-clip cache of a front end's projected magnitudes, reused across epochs.

    Training recomputes the STFT of every clip at every epoch although the clip
    does not change; only a random waveform gain does, and the STFT and the mel
    projection are linear, so a gain g on the waveform scales the projected
    magnitude M by g exactly: the features ``log1p(g * M)`` (or PCEN of g * M) come
    from a cached M.
    The cache therefore serves evaluation (no augmentation) and training with a
    :class:`~focalnet_lobes.data.augment.RandomGain` waveform augmentation (or none);
    any other waveform augmentation changes the signal, and those batches are
    computed by the front end as before. Entries are keyed by clip id and the
    (padded) batch length, so a clip padded differently is a different entry;
    the least recently used entry goes first when ``max_items`` are held.

    Arguments
    ---------
    frontend : SpectrogramFrontend
        The front end whose :meth:`~SpectrogramFrontend.project` output is cached.
    max_items : int
        Most clips held (each T x F float32 values: 110 KB for a 5 s clip on 64
        mel bands); 0 disables the cache.

    Raises
    ------
    ValueError
        ``max_items`` negative.

    Example
    -------
    >>> frontend = SpectrogramFrontend(n_mels=16)
    >>> cache = FeatureCache(frontend, max_items=8)
    >>> wavs = torch.randn(2, 4000)
    >>> first = cache(["a", "b"], wavs)
    >>> torch.allclose(first, frontend(wavs)), len(cache)
    (True, 2)
    >>> gains = torch.tensor([0.5, 2.0])
    >>> torch.allclose(cache(["a", "b"], wavs, gains=gains), frontend(wavs * gains[:, None]), atol=1e-5)
    True
    """

    def __init__(self, frontend, max_items=4096):
        if int(max_items) < 0:
            raise ValueError(f"max_items must be >= 0, got {max_items}")
        self.frontend = frontend
        self.max_items = int(max_items)
        self._entries = OrderedDict()

    def __len__(self):
        return len(self._entries)

    def clear(self):
        """Drop every entry."""
        self._entries.clear()

    def __call__(self, ids, wavs, gains=None):
        """Features (B, 1, T, F) of ``wavs`` (B, samples) scaled by ``gains`` (B,) or 1.

        Arguments
        ---------
        ids : sequence of str
            One id per row of ``wavs`` (the clip's id in the manifest).
        wavs : torch.Tensor
            Unaugmented waveforms (B, samples), padded to one length.
        gains : torch.Tensor or None
            Linear amplitude gains (B,) applied to the waveforms, or None.

        Returns
        -------
        torch.Tensor
            ``frontend(wavs * gains[:, None])`` up to float rounding.
        """
        if len(ids) != wavs.shape[0]:
            raise ValueError(f"{len(ids)} ids for {wavs.shape[0]} waveforms")
        if self.max_items == 0:
            projected = self.frontend.project(self.frontend.spectrum(wavs).abs())
        else:
            projected = self._projected(list(ids), wavs)
        if gains is not None:
            projected = projected * gains.to(projected).reshape(-1, 1, 1)
        return self.frontend.compress(projected)

    def _projected(self, ids, wavs):
        length = wavs.shape[-1]
        keys = [(clip_id, length) for clip_id in ids]
        missing = [i for i, key in enumerate(keys) if key not in self._entries]
        if missing:
            fresh = self.frontend.project(self.frontend.spectrum(wavs[missing]).abs())
            for row, i in enumerate(missing):
                self._entries[keys[i]] = fresh[row].detach()
        rows = []
        for key in keys:
            self._entries.move_to_end(key)
            rows.append(self._entries[key])
        while len(self._entries) > self.max_items:
            self._entries.popitem(last=False)
        return torch.stack(rows)

"""Training-time augmentations on waveforms and on (B, 1, T, F) features.

Each augmentation is a module that the recipe YAML wires in (``wav_augment``,
``feature_augment``, ``mixup``); all are identity in ``eval()`` mode.
"""

import numbers

import numpy as np
import torch
from speechbrain.augment.freq_domain import SpectrogramDrop, Warping
from torch import nn


class RandomGain(nn.Module):
    """Multiply each waveform by a random gain drawn uniformly in decibels.

    Arguments
    ---------
    min_gain_db : float
        Lowest gain in dB.
    max_gain_db : float
        Highest gain in dB.

    Example
    -------
    >>> gain = RandomGain(-6.0, 6.0)
    >>> wavs = torch.ones(4, 100)
    >>> out = gain(wavs)
    >>> bool(((out >= 10 ** (-6 / 20) - 1e-6) & (out <= 10 ** (6 / 20) + 1e-6)).all())
    True
    >>> bool(gain.eval()(wavs).eq(1).all())
    True
    """

    def __init__(self, min_gain_db=-6.0, max_gain_db=6.0):
        super().__init__()
        if min_gain_db > max_gain_db:
            raise ValueError("min_gain_db must not exceed max_gain_db")
        self.min_gain_db = min_gain_db
        self.max_gain_db = max_gain_db

    def forward(self, wavs, lengths=None):
        """Apply a random gain to each row of ``wavs`` (B, samples); ``lengths`` is unused."""
        if not self.training:
            return wavs
        return wavs * self.sample_gains(wavs.shape[0], wavs.device).unsqueeze(1)

    def sample_gains(self, batch_size, device=None):
        """Linear amplitude gains (batch_size,), uniform in dB over [min_gain_db, max_gain_db].

        Example
        -------
        >>> gains = RandomGain(-6.0, 6.0).sample_gains(1000)
        >>> bool((gains >= 10 ** (-6 / 20) - 1e-6).all() and (gains <= 10 ** (6 / 20) + 1e-6).all())
        True
        """
        gain_db = torch.empty(batch_size, device=device).uniform_(
            self.min_gain_db, self.max_gain_db
        )
        return 10.0 ** (gain_db / 20.0)


class RandomTimeShift(nn.Module):
    """Circularly shift each clip's features along time by a random number of frames.

    Arguments
    ---------
    max_fraction : float
        Largest shift as a fraction of the number of frames (shifts are drawn
        uniformly in [-max_fraction * T, max_fraction * T]).

    Example
    -------
    >>> shift = RandomTimeShift(0.5)
    >>> features = torch.arange(10.0).reshape(1, 1, 10, 1)
    >>> shifted = shift(features)
    >>> sorted(shifted.flatten().tolist()) == list(range(10))
    True
    """

    def __init__(self, max_fraction=0.5):
        super().__init__()
        self.max_fraction = max_fraction

    def forward(self, features):
        """Shift features (B, 1, T, F) along T."""
        if not self.training or self.max_fraction <= 0:
            return features
        frames = features.shape[-2]
        max_shift = int(self.max_fraction * frames)
        shifts = torch.randint(-max_shift, max_shift + 1, (features.shape[0],))
        index = (
            torch.arange(frames).unsqueeze(0) - shifts.unsqueeze(1)
        ) % frames  # (B, T)
        index = index.to(features.device)[:, None, :, None].expand_as(features)
        return torch.gather(features, 2, index)


def _zero_bands(width, count, dim):
    """SpeechBrain's ``SpectrogramDrop`` setting random bands of one axis to zero.

    Arguments
    ---------
    width : tuple of int
        (low, high) width of each band, in frames (``dim=1``) or bins (``dim=2``):
        drawn from low to high - 1 (``drop_length_low`` / ``drop_length_high``); a
        band that starts near the end is cut there.
    count : tuple of int
        (low, high) number of bands, both included.
    dim : int
        Axis of the (B, T, F) spectrogram the bands cut across: 1 time, 2 frequency.

    Returns
    -------
    speechbrain.augment.freq_domain.SpectrogramDrop

    Example
    -------
    >>> dropped = _zero_bands((2, 3), (1, 1), dim=2)(torch.ones(1, 3, 8))
    >>> zeroed = dropped.eq(0).all(dim=1)  # bins that are zero in every frame
    >>> bool(dropped.eq(0).any(dim=1).eq(zeroed).all()), 1 <= zeroed.sum().item() <= 2
    (True, True)
    """
    return SpectrogramDrop(
        drop_length_low=int(width[0]),  # NumPy integers become Python's
        drop_length_high=int(width[1]),
        drop_count_low=int(count[0]),
        drop_count_high=int(count[1]),
        replace="zeros",
        dim=dim,
    )


def _check_range(name, pair, exclusive):
    """Raise a ValueError naming ``name`` unless ``pair`` is ``[low, high]`` integers
    (Python's or NumPy's, not bools; a list, tuple or 1-D NumPy array), 0 <= low < high
    (``exclusive``: a width drawn from low to high - 1) or 0 <= low <= high."""
    values = list(pair) if isinstance(pair, np.ndarray) and pair.ndim == 1 else pair
    ok = (
        isinstance(values, (list, tuple)) and len(values) == 2
        and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in values)
        and 0 <= values[0] and (values[0] < values[1] if exclusive else values[0] <= values[1])
    )
    if not ok:
        rule = "0 <= low < high (high excluded)" if exclusive else "0 <= low <= high"
        got = " ".join(repr(pair).split())  # one line, a multi-row array's repr too
        raise ValueError(f"{name} must be [low, high] integers with {rule}, got {got}")


class SpecMasking(nn.Module):
    """SpecAugment-style time and frequency masks (zeros, the log1p of silence).

    A thin wrapper of SpeechBrain's ``SpectrogramDrop`` for (B, 1, T, F) features.

    Arguments
    ---------
    time_mask_width : pair of int (list, tuple or 1-D NumPy array)
        (low, high) width in frames of each time mask, drawn from low to high - 1
        (0 <= low < high).
    num_time_masks : pair of int
        (low, high) number of time masks, both included (0 <= low <= high).
    freq_mask_width : pair of int
        (low, high) width in bins of each frequency mask (as ``time_mask_width``).
    num_freq_masks : pair of int
        (low, high) number of frequency masks (as ``num_time_masks``).

    Raises
    ------
    ValueError
        An argument that is not two such integers (Python's or NumPy's, in a list, tuple
        or 1-D array); the message names it (the CPU YAMLs' keys have the same names).

    Example
    -------
    >>> masking = SpecMasking((5, 10), (1, 1), (2, 4), (1, 1))
    >>> out = masking(torch.ones(2, 1, 50, 16))
    >>> out.shape, bool(out.eq(0).any())
    (torch.Size([2, 1, 50, 16]), True)
    """

    def __init__(
        self,
        time_mask_width=(0, 40),
        num_time_masks=(1, 1),
        freq_mask_width=(0, 8),
        num_freq_masks=(1, 1),
    ):
        super().__init__()
        for name, pair, widths in (
            ("time_mask_width", time_mask_width, True), ("num_time_masks", num_time_masks, False),
            ("freq_mask_width", freq_mask_width, True), ("num_freq_masks", num_freq_masks, False),
        ):
            _check_range(name, pair, widths)
        self.time_drop = _zero_bands(time_mask_width, num_time_masks, dim=1)
        self.freq_drop = _zero_bands(freq_mask_width, num_freq_masks, dim=2)

    def forward(self, features):
        """Mask features (B, 1, T, F)."""
        if not self.training:
            return features
        # SpeechBrain's SpectrogramDrop zeroes in place: a copy keeps the input (a cached
        # feature tensor, say) untouched
        spectrogram = features.squeeze(1).clone()
        spectrogram = self.freq_drop(self.time_drop(spectrogram))
        return spectrogram.unsqueeze(1)


class FrequencyWarp(nn.Module):
    """SpecAugment's frequency warping, a feature-domain stand-in for pitch shifting.

    Each clip's features are warped along frequency by SpeechBrain's
    ``speechbrain.augment.freq_domain.Warping`` (``dim=2``, bicubic, ``align_corners``;
    Park et al. 2019, "SpecAugment", arXiv:1904.08779, its time warp applied to
    frequency), one draw per clip (SpeechBrain's module draws one per batch). As
    SpeechBrain draws it, a bin ``c`` uniform in [W, F - W) moves to ``w = c + d`` with
    ``d`` uniform on the integers -W + 1, ..., W (so a sixth of the clips are not moved at
    W = 3, and the mean move is +0.5 bin upwards); the bins below ``c`` are stretched (or
    squeezed) onto [0, w) and those above it onto [w, F). The lowest bin stays where it is;
    so does the highest, except when ``w = F - 1`` (``c = F - W - 1``, ``d = W``: the upper
    part squeezed onto one bin, which then reads bin ``c``; 1 draw in 348 at F = 64,
    W = 3). On a linear ramp along frequency no output bin reads from more than W bins
    away (bicubic reproduces a ramp; on other features it may overshoot slightly).

    On the CPU configs' 64 HTK-mel bands of 0-8 kHz, at W = 3 a centre at 1 kHz moves
    by -2.3 to +3.3 semitones (-1.8 to +2.7 at 2 kHz; more below 500 Hz, where the mel
    scale is nearly linear), and the move tapers to none at the ends of the axis: a local
    warp, comparable only loosely with the whole-spectrum pitch shifts of Salamon & Bello
    (2017, IEEE Signal Processing Letters 24(3), "PS2": +-2.5 and +-3.5 semitones on
    UrbanSound8K).

    Arguments
    ---------
    warp_window : int
        W, the largest move of the warp centre in bins (upwards; W - 1 downwards); 0 turns
        the warp off (identity, no random numbers drawn). Must be an integer >= 0 with
        2 W < F, the number of frequency bins (:meth:`check_num_bins`).

    Raises
    ------
    ValueError
        ``warp_window`` not an integer >= 0 (at construction), or, when called, 2 W >= F
        (where SpeechBrain's ``Warping`` would return its input transposed, not warped) or
        features that are not (B, 1, T, F); each message one line, naming the YAML key
        ``freq_warp_window``.

    Example
    -------
    >>> _ = torch.manual_seed(0)
    >>> warp = FrequencyWarp(3)
    >>> features = torch.rand(2, 1, 20, 64)
    >>> out = warp(features)
    >>> out.shape, torch.allclose(out[..., 0], features[..., 0], atol=1e-5)
    (torch.Size([2, 1, 20, 64]), True)
    >>> bool(torch.equal(warp.eval()(features), features))
    True
    >>> FrequencyWarp(3).check_num_bins(6)
    Traceback (most recent call last):
    ...
    ValueError: warp_window (YAML: freq_warp_window) 3 needs more than 6 frequency bins; the features have 6
    """

    def __init__(self, warp_window=0):
        super().__init__()
        if not isinstance(warp_window, numbers.Integral) or isinstance(warp_window, bool) or warp_window < 0:
            raise ValueError(
                f"warp_window (YAML: freq_warp_window) must be an integer >= 0 (0: off), got {warp_window!r}"
            )
        self.warp_window = int(warp_window)
        self.warp = Warping(warp_window=self.warp_window, warp_mode="bicubic", dim=2)

    def check_num_bins(self, num_bins):
        """Raise a one-line ValueError unless the warp fits ``num_bins`` frequency bins.

        Arguments
        ---------
        num_bins : int
            F, the front end's number of frequency bins (mel bands, or STFT bins).

        Raises
        ------
        ValueError
            A warp that is on (W > 0) with 2 W >= F.
        """
        if self.warp_window and 2 * self.warp_window >= num_bins:
            raise ValueError(
                f"warp_window (YAML: freq_warp_window) {self.warp_window} needs more than "
                f"{2 * self.warp_window} frequency bins; the features have {num_bins}"
            )

    def forward(self, features):
        """Warp features (B, 1, T, F) along F, one draw per clip; identity in eval mode."""
        if not self.training or self.warp_window == 0:
            return features
        if features.dim() != 4 or features.shape[1] != 1:
            raise ValueError(
                "FrequencyWarp (YAML: freq_warp_window) takes features (B, 1, T, F), got shape "
                f"{tuple(features.shape)}"
            )
        self.check_num_bins(features.shape[-1])
        if features.shape[0] == 0:
            return features
        # Warping writes into its input: each clip goes in as a copy, (1, T, F)
        return torch.stack([self.warp(clip.clone()) for clip in features.unbind(0)])


class Mixup(nn.Module):
    """Mixup (Zhang et al. 2018) of features and soft targets within a batch.

    Arguments
    ---------
    alpha : float
        Parameter of the Beta(alpha, alpha) distribution of the mixing weight.
    probability : float
        Probability of mixing a given batch.

    Example
    -------
    >>> mixup = Mixup(alpha=0.4)
    >>> features = torch.randn(4, 1, 8, 8)
    >>> targets = torch.eye(4)
    >>> mixed, mixed_targets = mixup(features, targets)
    >>> torch.allclose(mixed_targets.sum(1), torch.ones(4))
    True
    """

    def __init__(self, alpha=0.4, probability=1.0):
        super().__init__()
        self.alpha = alpha
        self.probability = probability

    def forward(self, features, targets):
        """Mix ``features`` (B, ...) and ``targets`` (B, K) with a shuffled copy."""
        if not self.training or self.alpha <= 0 or torch.rand(()) >= self.probability:
            return features, targets
        weight = float(torch.distributions.Beta(self.alpha, self.alpha).sample())
        order = torch.randperm(features.shape[0], device=features.device)
        mixed = weight * features + (1 - weight) * features[order]
        mixed_targets = weight * targets + (1 - weight) * targets[order]
        return mixed, mixed_targets


class BetweenClassMix(nn.Module):
    """Between-class learning (BC+) of waveforms: mixes of two clips, at the loudness of their ratio.

    Each clip of the batch is mixed with another clip of the batch (a random
    permutation) at a ratio ``r ~ U(0, 1)`` drawn per clip, the targets by the same
    ratio. As in BC+ (Tokozume, Ushiku and Harada, *Learning from Between-class
    Examples for Deep Sound Recognition*, ICLR 2018, eq. 2-3), the ratio says how
    much of each clip is *heard*, so the waveform weights correct for the clips'
    levels ``G1``, ``G2`` (dB):

    ``p = 1 / (1 + 10 ** ((G1 - G2) / 20) * (1 - r) / r)``,
    ``mix = (p * x1 + (1 - p) * x2) / sqrt(p ** 2 + (1 - p) ** 2)``.

    The level here is the RMS level of the clip's loudest ``window`` (the paper
    takes the A-weighted level of its loudest 50 ms window; the A-weighting is
    left out), floored at ``floor_db``. A pair of clips of the same class is
    allowed (its targets do not change), and so is a clip paired with itself (the
    permutation may fix it: a gain of at most +3 dB). As in the paper, a near-silent
    clip mixed with a loud one gives a near-silent mix (the loud clip is scaled down
    to be heard at the ratio), its targets still ``r`` and ``1 - r``. The training loss on the mixed targets
    is the recipe's soft-target cross-entropy (the paper's KL divergence up to
    the targets' entropy, which has no gradient).

    Arguments
    ---------
    sample_rate : int
        Hz, to size the level window.
    window_seconds : float
        Length of the level window (0.05 in the paper).
    probability : float
        Probability of mixing a given batch (1.0 in the paper: every example mixed).
    floor_db : float
        Lowest level (dB re full scale) a clip is given, so that silence mixes.

    Example
    -------
    >>> mix = BetweenClassMix(sample_rate=1000)
    >>> _ = torch.manual_seed(0)
    >>> wavs = torch.randn(4, 2000)
    >>> mixed, targets = mix(wavs, torch.eye(4))
    >>> mixed.shape, bool(torch.allclose(targets.sum(1), torch.ones(4)))
    (torch.Size([4, 2000]), True)
    >>> same, _ = mix.eval()(wavs, torch.eye(4))
    >>> bool(torch.equal(same, wavs))
    True
    """

    def __init__(self, sample_rate=16000, window_seconds=0.05, probability=1.0, floor_db=-80.0):
        super().__init__()
        if window_seconds <= 0 or not 0 <= probability <= 1:
            raise ValueError(
                f"BetweenClassMix: window_seconds must be > 0 and probability in [0, 1], "
                f"got {window_seconds} and {probability}"
            )
        self.window = max(1, int(round(sample_rate * window_seconds)))
        self.probability = probability
        self.floor_db = floor_db

    def levels_db(self, wavs):
        """Level (dB re full scale) of each waveform's loudest window: (B, samples) -> (B,).

        Example
        -------
        >>> mix = BetweenClassMix(sample_rate=1000, window_seconds=0.01)
        >>> wavs = torch.zeros(2, 100)
        >>> wavs[0, 50:60] = 0.1  # one loud window: -20 dB
        >>> [round(v, 1) for v in mix.levels_db(wavs).tolist()]
        [-20.0, -80.0]
        """
        window = min(self.window, wavs.shape[-1])
        frames = wavs.float().unfold(-1, window, max(1, window // 2))
        power = frames.pow(2).mean(-1).amax(-1)
        return (10 * torch.log10(power.clamp_min(1e-30))).clamp_min(self.floor_db)

    def forward(self, wavs, targets):
        """Mix ``wavs`` (B, samples) and soft ``targets`` (B, K).

        Returns the inputs themselves (the same tensors) in eval mode, with
        ``probability`` 0 (no random number drawn) and for a batch left unmixed.
        """
        if not self.training or self.probability <= 0 or torch.rand(()) >= self.probability:
            return wavs, targets
        order = torch.randperm(wavs.shape[0], device=wavs.device)
        ratio = torch.rand(wavs.shape[0], device=wavs.device).clamp(1e-3, 1 - 1e-3)
        levels = self.levels_db(wavs)
        p = 1.0 / (1.0 + 10 ** ((levels - levels[order]) / 20) * (1 - ratio) / ratio)
        mixed = (p[:, None] * wavs + (1 - p[:, None]) * wavs[order]) / torch.sqrt(
            p**2 + (1 - p) ** 2
        )[:, None]
        mixed_targets = ratio[:, None] * targets + (1 - ratio[:, None]) * targets[order]
        return mixed.to(wavs.dtype), mixed_targets

"""Classify and interpret audio with a trained model, from a folder or the Hugging Face hub.

:class:`AudioClassifier` is a SpeechBrain ``Pretrained`` interface::

    from focalnet_lobes.inference.classifiers import AudioClassifier

    classifier = AudioClassifier.from_hparams(source="hub/focalnet-cpu-esc10")
    probabilities, score, index, labels = classifier.classify_file("dog.wav")
    result = classifier.interpret_file("dog.wav", out_dir="interpretations/")

``source`` is a local folder (as written by ``recipes/export.py``) or a hub id.
Its ``hyperparams.yaml`` defines ``compute_features`` (the
:class:`~focalnet_lobes.data.features.SpectrogramFrontend`), ``model`` (the
:class:`~focalnet_lobes.models.classifier.SpectrogramClassifier`), ``interpreter`` (a
:class:`~focalnet_lobes.interpretation.interpret.MapInterpreter`), ``quantile``, ``label_encoder``
(a SpeechBrain ``CategoricalEncoder``), ``sample_rate``, ``pretrained_path`` (set to
``source`` by :meth:`AudioClassifier.from_hparams`) and a ``pretrainer`` that
loads the checkpoints. Audio of any sample rate and channel count is read with
:func:`focalnet_lobes.data.audio.load_audio` (16 kHz mono, peak-normalised).
``silence_threshold_dbfs`` (optional, default
:data:`focalnet_lobes.data.audio.DEFAULT_SILENCE_DBFS`, ``null`` disables) is the RMS
level, measured before normalisation, under which a clip is reported as silent
(label ``"silence"``, index -1, uniform probabilities) instead of being
amplified to full scale and classified.

This module also holds the Pretrainer hooks that load checkpoints into our lobes:
:func:`load_state_dict_strict` (our own checkpoints),
:func:`load_transformers_backbone` (a transformers FocalNet/ViT state dict) and
:func:`load_ecapa_classifier` (a SpeechBrain ECAPA ``Classifier`` state dict), as
used by the compatibility YAMLs of SpeechBrain's published ESC-50 models
(``hparams/inference/{focalnet,vit}-base-esc50/``).
"""

import dataclasses
import logging
import pathlib

import numpy as np
import soundfile
import torch
from speechbrain.inference.interfaces import Pretrained

from focalnet_lobes.data.audio import (
    DEFAULT_SILENCE_DBFS,
    SILENT_LABEL,
    level_dbfs,
    load_audio,
    load_audio_with_level,
)
from focalnet_lobes.models.convert import (
    architecture_differences,
    convert_state_dict,
    state_dict_differences,
)
from focalnet_lobes.interpretation.interpret import quantile_mask
from focalnet_lobes.models.pretrained_init import load_weights_file

logger = logging.getLogger(__name__)

HPARAMS_FILE = "hyperparams.yaml"
WAVEFORM_NORMALIZATIONS = ("peak", "max", None)


class ModelSourceError(FileNotFoundError):
    """The source given to :meth:`AudioClassifier.from_hparams` is not a model folder."""


# --- Pretrainer hooks ---------------------------------------------------------------


def _read_state_dict(path):
    """Tensors of a ``torch.save``-d state dict (weights only; one-line errors)."""
    try:
        state = load_weights_file(path)
    except FileNotFoundError as error:
        raise ValueError(f"cannot read checkpoint '{path}': file not found") from error
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint '{path}' holds a {type(state).__name__}, not a state dict")
    return state


def _load_checked(module, state, path):
    """``module.load_state_dict(state, strict=True)`` with a one-paragraph error."""
    own = module.state_dict()
    missing, unexpected, mismatched = state_dict_differences(state, own)
    if missing or unexpected or mismatched:
        settings = architecture_differences(state, own)
        raise ValueError(
            f"checkpoint '{path}' does not fit {type(module).__name__}: "
            + (f"settings differ: {'; '.join(settings)}; " if settings else "")
            + f"missing {missing[:6]}, unexpected {unexpected[:6]}, "
            f"shape mismatch (checkpoint vs model) {mismatched[:6]}"
        )
    module.load_state_dict(state, strict=True)


def load_state_dict_strict(module, path):
    """Pretrainer hook: load a ``torch.save(module.state_dict())`` file, strictly.

    SpeechBrain's default transfer hook loads with ``strict=False`` and only warns;
    this one raises a ValueError naming the missing, unexpected and mismatched
    parameters.

    Arguments
    ---------
    module : torch.nn.Module
        The module to load into.
    path : str or pathlib.Path
        The checkpoint file.

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "model.ckpt")
    >>> torch.save(torch.nn.Linear(2, 3).state_dict(), path)
    >>> load_state_dict_strict(torch.nn.Linear(2, 3), path)
    >>> load_state_dict_strict(torch.nn.Linear(2, 4), path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: checkpoint '...model.ckpt' does not fit Linear: ... shape mismatch ...
    """
    _load_checked(module, _read_state_dict(path), path)


def load_transformers_backbone(backbone, path, final_norm=True):
    """Pretrainer hook: load a transformers FocalNet/ViT state dict into our backbone.

    The state dict (``FocalNetBackbone``/``FocalNetModel``/``ViTModel``... as saved
    by SpeechBrain's checkpointer) is converted with
    :func:`focalnet_lobes.convert_state_dict` (``"transformers"``) and loaded
    strictly.

    Arguments
    ---------
    backbone : focalnet_lobes.FocalNet or focalnet_lobes.VisionTransformer
        Built with the checkpoint's configuration and ``num_classes=0``.
    path : str or pathlib.Path
        The checkpoint file.
    final_norm : bool
        ``False`` replaces the backbone's final LayerNorm by the identity after
        loading. SpeechBrain's FocalNet ESC-50 recipe pools
        ``FocalNetBackbone(...).feature_maps[-1]``, the last stage's output
        *before* ``FocalNetModel``'s final ``layernorm`` (which the state dict
        holds but the recipe never applied). ViT recipes pool
        ``last_hidden_state``, after the norm: keep ``True``.

    Example
    -------
    >>> import tempfile, os
    >>> from transformers import ViTConfig, ViTModel
    >>> from focalnet_lobes.models.vit import VisionTransformer
    >>> config = ViTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
    ...                    intermediate_size=32, image_size=16, patch_size=8)
    >>> path = os.path.join(tempfile.mkdtemp(), "embedding_model.ckpt")
    >>> torch.save(ViTModel(config).state_dict(), path)
    >>> ours = VisionTransformer(num_classes=0, patch_size=8, embed_dim=16, depth=1,
    ...                          num_heads=2, mlp_ratio=2.0, pos_embed_grid=2)
    >>> load_transformers_backbone(ours, path)
    """
    state = _read_state_dict(path)
    try:
        converted = convert_state_dict(state, "transformers")
    except ValueError as error:
        raise ValueError(f"checkpoint '{path}': {error}") from error
    _load_checked(backbone, converted, path)
    if not final_norm:
        backbone.norm = torch.nn.Identity()


def load_ecapa_classifier(head, path):
    """Pretrainer hook: load a SpeechBrain ECAPA ``Classifier`` state dict into a CosineHead.

    Arguments
    ---------
    head : focalnet_lobes.models.heads.CosineHead
        Built with the classifier's input size, ``lin_blocks``, ``lin_neurons``
        and number of classes.
    path : str or pathlib.Path
        The checkpoint file (``classifier.ckpt`` of the published models).

    Example
    -------
    >>> import tempfile, os
    >>> from speechbrain.lobes.models.ECAPA_TDNN import Classifier
    >>> from focalnet_lobes.models.heads import CosineHead
    >>> path = os.path.join(tempfile.mkdtemp(), "classifier.ckpt")
    >>> ecapa = Classifier(input_size=8, lin_blocks=1, lin_neurons=4, out_neurons=3)
    >>> torch.save(ecapa.state_dict(), path)
    >>> load_ecapa_classifier(CosineHead(8, 3, lin_blocks=1, lin_neurons=4), path)
    """
    state = _read_state_dict(path)
    try:
        head.load_ecapa_state_dict(state)
    except (RuntimeError, ValueError) as error:
        raise ValueError(f"checkpoint '{path}' does not fit {head}: {error}") from error


# --- Results ------------------------------------------------------------------------


@dataclasses.dataclass
class Interpretation:
    """What :meth:`AudioClassifier.interpret_batch` returns for B clips.

    Attributes
    ----------
    labels : list of str
        Predicted class names.
    indices : torch.Tensor
        (B,) predicted class indices.
    scores : torch.Tensor
        (B,) probability of the predicted class.
    probabilities : torch.Tensor
        (B, K) class probabilities (softmax of the logits).
    features : torch.Tensor
        (B, 1, T, F) features of the clips (the model's compression: ``log1p`` or PCEN).
    maps : torch.Tensor
        (B, 1, T, F) the interpreter's maps on the feature grid.
    mask : torch.Tensor
        (B, 1, T, F) binary mask: the bins at or above each clip's ``quantile``
        of its map.
    listenable : torch.Tensor
        (B, samples) the masked spectrogram turned back into audio, as long as
        the input clips.
    quantile : float
        The quantile of the mask.
    sample_rate : int
        Sample rate of ``listenable``.
    files : dict
        Paths written by :meth:`AudioClassifier.interpret_file` (``"wav"``,
        ``"png"``); empty otherwise.
    silent : list of bool
        Per clip: its level was under ``silence_threshold_dbfs`` (its label is
        ``"silence"``, its index -1, its probabilities uniform).
    levels_dbfs : torch.Tensor
        (B,) RMS level of each clip before normalisation, dBFS.
    """

    labels: list
    indices: torch.Tensor
    scores: torch.Tensor
    probabilities: torch.Tensor
    features: torch.Tensor
    maps: torch.Tensor
    mask: torch.Tensor
    listenable: torch.Tensor
    quantile: float
    sample_rate: int
    files: dict = dataclasses.field(default_factory=dict)
    silent: list = dataclasses.field(default_factory=list)
    levels_dbfs: torch.Tensor = None


def top_k(probabilities, labels, k=5):
    """The ``k`` most probable classes of one clip, best first.

    Arguments
    ---------
    probabilities : torch.Tensor
        (K,) class probabilities.
    labels : list of str
        Class name of each index.
    k : int
        How many (at most K).

    Returns
    -------
    list of dict
        ``{"label", "index", "score"}`` per class.

    Example
    -------
    >>> best = top_k(torch.tensor([0.1, 0.7, 0.2]), ["dog", "rain", "sea"], k=2)
    >>> [(entry["label"], entry["index"], round(entry["score"], 3)) for entry in best]
    [('rain', 1, 0.7), ('sea', 2, 0.2)]
    """
    if probabilities.dim() != 1:
        raise ValueError(
            f"top_k expects the (K,) probabilities of one clip, got {tuple(probabilities.shape)}"
        )
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    scores, indices = probabilities.float().topk(min(int(k), probabilities.numel()))
    return [
        {"label": labels[int(i)], "index": int(i), "score": float(s)}
        for s, i in zip(scores, indices)
    ]


def plot_interpretation(features, maps, mask, path, title="", frame_rate=None):
    """Save a PNG: the input spectrogram, the interpretation map, the masked spectrogram.

    Arguments
    ---------
    features, maps, mask : torch.Tensor
        (1, T, F) or (T, F) of one clip.
    path : str or pathlib.Path
        Output PNG.
    title : str
        Figure title.
    frame_rate : float or None
        Frames per second, to label the time axis in seconds.

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "map.png")
    >>> features = torch.rand(1, 20, 8)
    >>> plot_interpretation(features, features, (features > 0.5).float(), path, "demo")
    >>> os.path.getsize(path) > 0
    True
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = [
        ("input spectrogram features", features, "magma"),
        ("interpretation map", maps, "viridis"),
        ("masked input (what the interpretation keeps)", features * mask, "magma"),
    ]
    figure = Figure(figsize=(13, 3.6))
    FigureCanvasAgg(figure)
    for position, (name, values, colormap) in enumerate(panels):
        axis = figure.add_subplot(1, 3, position + 1)
        image = values.detach().float().cpu().reshape(values.shape[-2:]).numpy().T
        extent = None
        if frame_rate:
            extent = (0, image.shape[1] / frame_rate, 0, image.shape[0])
        axis.imshow(image, origin="lower", aspect="auto", cmap=colormap, extent=extent)
        axis.set_title(name, fontsize=9)
        axis.set_xlabel("time (s)" if frame_rate else "frame")
        axis.set_ylabel("frequency bin")
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(str(path), dpi=100)


# --- The interface ------------------------------------------------------------------


class AudioClassifier(Pretrained):
    """Environmental sound classifier with interpretation by design.

    Built by :meth:`from_hparams` from a folder or hub repository holding
    ``hyperparams.yaml`` and the files its ``pretrainer`` loads. Every method
    takes waveforms at the model's ``sample_rate`` (``classify_file`` and
    ``interpret_file`` take files of any rate and channel count). Each clip is
    normalised as ``waveform_normalization`` says (``"peak"``: divided by its
    largest absolute sample, as the training recipe; ``"max"``: by its largest
    sample, as SpeechBrain's published ESC-50 recipes; ``null``: left as is) and,
    when ``pad_to_seconds`` is set, zero-padded to that length when shorter (as
    the training recipe's fixed-length clips; longer clips are kept whole).

    Example
    -------
    >>> import tempfile
    >>> from focalnet_lobes.inference.classifiers import write_demo_model
    >>> folder = write_demo_model(tempfile.mkdtemp())
    >>> classifier = AudioClassifier.from_hparams(source=folder)
    >>> wavs = torch.randn(2, 16000)
    >>> probabilities, score, index, labels = classifier.classify_batch(wavs)
    >>> probabilities.shape, len(labels)
    (torch.Size([2, 3]), 2)
    >>> result = classifier.interpret_batch(wavs)
    >>> result.mask.shape, result.listenable.shape
    (torch.Size([2, 1, 87, 16]), torch.Size([2, 16000]))
    """

    HPARAMS_NEEDED = ["sample_rate", "label_encoder", "quantile"]
    MODULES_NEEDED = ["compute_features", "model", "interpreter"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        missing = [name for name in self.MODULES_NEEDED if name not in self.mods]
        if missing:
            raise ValueError(f"hyperparams.yaml: 'modules' lacks {missing}")
        normalization = getattr(self.hparams, "waveform_normalization", "peak")
        if normalization not in WAVEFORM_NORMALIZATIONS:
            raise ValueError(
                f"waveform_normalization must be one of {WAVEFORM_NORMALIZATIONS}, "
                f"got {normalization!r}"
            )
        self.waveform_normalization = normalization
        threshold = getattr(self.hparams, "silence_threshold_dbfs", DEFAULT_SILENCE_DBFS)
        if threshold is not None and not isinstance(threshold, (int, float)):
            raise ValueError(f"silence_threshold_dbfs must be a number (dBFS) or null, got {threshold!r}")
        self.silence_threshold_dbfs = None if threshold is None else float(threshold)
        pad_seconds = getattr(self.hparams, "pad_to_seconds", None)
        self.pad_to_samples = (
            int(round(float(pad_seconds) * self.hparams.sample_rate)) if pad_seconds else 0
        )
        encoder = self.hparams.label_encoder
        self.class_names = [encoder.ind2lab[index] for index in sorted(encoder.ind2lab)]
        num_classes = getattr(getattr(self.mods.model, "head", None), "num_classes", None)
        if num_classes is not None and num_classes != len(self.class_names):
            raise ValueError(
                f"label_encoder has {len(self.class_names)} classes but the model "
                f"predicts {num_classes}"
            )
        encoder.expect_len(len(self.class_names))

    @classmethod
    def from_hparams(cls, source=None, hparams_file=HPARAMS_FILE, overrides=None, **kwargs):
        """Load from a folder or hub id; ``pretrained_path`` is set to ``source``.

        ``AudioClassifier.from_hparams()`` with no ``source`` loads the model
        shipped with the package (:func:`default_source`: the compact FocalNet
        trained on ESC-10, see its ``README.md`` for data, license and accuracy).

        Files are linked into ``savedir`` (when given) with symbolic links;
        where they are not allowed (Windows without developer mode) they are
        copied instead (SpeechBrain's ``LocalStrategy.COPY``), unless
        ``local_strategy`` is given.

        Arguments
        ---------
        source : str or pathlib.Path or None
            A folder holding ``hparams_file`` (and the checkpoints) or a Hugging
            Face hub id; ``None``: :func:`default_source`.
        hparams_file : str
            Name of the YAML file in ``source``.
        overrides : dict or None
            Overrides for the YAML; ``pretrained_path`` defaults to ``source``.
        **kwargs
            Passed to SpeechBrain's ``pretrained_from_hparams`` (``savedir``,
            ``run_opts``, ...).

        Returns
        -------
        AudioClassifier

        Raises
        ------
        ModelSourceError
            ``source`` is a folder without ``hparams_file``, or a path that does
            not exist and is not a hub id (``owner/name``).
        """
        if source is None:
            source = default_source()
        check_model_source(source, hparams_file)
        overrides = dict(overrides or {})
        overrides.setdefault("pretrained_path", str(source))
        load = super().from_hparams
        if kwargs.get("local_strategy") is not None:
            kwargs["local_strategy"] = local_strategy(kwargs["local_strategy"])
            return load(str(source), hparams_file=hparams_file, overrides=overrides, **kwargs)
        kwargs.pop("local_strategy", None)
        try:
            return load(str(source), hparams_file=hparams_file, overrides=overrides, **kwargs)
        except (OSError, NotImplementedError) as error:
            if kwargs.get("savedir") is None:
                raise
            from speechbrain.utils.fetching import LocalStrategy

            logger.warning("cannot link the model files into %s (%s); copying them instead",
                           kwargs["savedir"], error)
            return load(str(source), hparams_file=hparams_file, overrides=overrides,
                        local_strategy=LocalStrategy.COPY, **kwargs)

    # -- waveforms ------------------------------------------------------------------

    @property
    def sample_rate(self):
        """Sample rate (Hz) of the waveforms the model takes."""
        return int(self.hparams.sample_rate)

    def load_audio(self, path):
        """Read ``path`` (any rate, any channels) as a 16 kHz-style mono clip (samples,).

        Raises :class:`focalnet_lobes.data.audio.AudioError` (naming the file) for a
        missing, unreadable, corrupt or empty file.
        """
        return load_audio(path, self.sample_rate)

    def _clips(self, wavs, wav_lens=None, return_levels=False):
        """Split a batch into normalised 1-D clips of their own lengths.

        With ``return_levels`` also returns the (B,) RMS levels (dBFS) of the
        clips before normalisation.
        """
        if not isinstance(wavs, torch.Tensor):
            wavs = torch.as_tensor(np.asarray(wavs))
        if wavs.dim() == 1:
            wavs = wavs[None]
        if wavs.dim() != 2 or wavs.shape[0] == 0 or wavs.shape[1] == 0:
            raise ValueError(
                "expected waveforms of shape (batch, samples) or (samples,), "
                f"got {tuple(wavs.shape)}"
            )
        if not wavs.is_floating_point():
            wavs = wavs.float()
        if not torch.isfinite(wavs).all():
            raise ValueError("waveforms contain NaN or infinite samples")
        total = wavs.shape[1]
        if wav_lens is None:
            lengths = [total] * wavs.shape[0]
        else:
            wav_lens = torch.as_tensor(wav_lens, dtype=torch.float64).reshape(-1)
            if wav_lens.numel() != wavs.shape[0] or (wav_lens <= 0).any() or (wav_lens > 1).any():
                raise ValueError(
                    f"wav_lens must hold {wavs.shape[0]} relative lengths in (0, 1], "
                    f"got {wav_lens.tolist()}"
                )
            lengths = [max(1, int(round(float(r) * total))) for r in wav_lens]
        clips, levels = [], []
        for wav, length in zip(wavs, lengths):
            clip = wav[:length].float()
            levels.append(float(level_dbfs(clip)))
            if self.waveform_normalization == "peak":
                clip = clip / clip.abs().max().clamp_min(1e-8)
            elif self.waveform_normalization == "max":
                clip = clip / clip.max().clamp_min(1e-8)
            clips.append(clip)
        if return_levels:
            return clips, torch.tensor(levels, dtype=torch.float64)
        return clips

    def _silent(self, levels):
        """(B,) bool: levels (dBFS) under ``silence_threshold_dbfs``."""
        levels = torch.as_tensor(levels, dtype=torch.float64).reshape(-1)
        if self.silence_threshold_dbfs is None:
            return torch.zeros(levels.shape, dtype=torch.bool)
        return levels < self.silence_threshold_dbfs

    def _report_silence(self, probabilities, silent):
        """Probabilities, scores, indices, labels with silent clips as 'silence'."""
        probabilities = probabilities.clone()
        probabilities[silent] = 1.0 / probabilities.shape[-1]
        scores, indices = probabilities.max(dim=-1)
        indices = torch.where(silent.to(indices.device), torch.full_like(indices, -1), indices)
        labels = [
            SILENT_LABEL if quiet else self.class_names[int(index)]
            for quiet, index in zip(silent.tolist(), indices)
        ]
        return probabilities, scores, indices, labels

    def _batches(self, clips):
        """Group clips of equal length; yields (indices, padded (b, N) batch, length)."""
        groups = {}
        for index, clip in enumerate(clips):
            groups.setdefault(clip.shape[0], []).append(index)
        for length, indices in groups.items():
            batch = torch.stack([clips[i] for i in indices])
            if batch.shape[1] < self.pad_to_samples:
                batch = torch.nn.functional.pad(batch, (0, self.pad_to_samples - batch.shape[1]))
            yield indices, batch.to(self.device), length

    # -- classification -------------------------------------------------------------

    def compute_features(self, wavs):
        """Features (B, 1, T, F) (``log1p`` or PCEN) of (already normalised) waveforms (B, samples)."""
        return self.mods.compute_features(wavs.to(self.device))

    def forward(self, wavs, wav_lens=None):
        """Logits (B, K) of waveforms (B, samples) at the model's sample rate.

        Clips of different lengths (``wav_lens``, relative as in SpeechBrain) are
        run at their own lengths, so a clip's result does not depend on the batch.
        """
        clips = self._clips(wavs, wav_lens)
        logits = [None] * len(clips)
        with torch.no_grad():
            for indices, batch, _ in self._batches(clips):
                batch_logits = self.mods.model(self.compute_features(batch))
                for row, index in enumerate(indices):
                    logits[index] = batch_logits[row]
        return torch.stack(logits)

    def decode(self, indices):
        """Class names of class indices (tensor or list)."""
        return [self.class_names[int(i)] for i in torch.as_tensor(indices).reshape(-1)]

    def classify_batch(self, wavs, wav_lens=None, levels_dbfs=None):
        """Classify waveforms at the model's sample rate.

        A clip whose RMS level before normalisation is under
        ``silence_threshold_dbfs`` is reported as silent: label ``"silence"``,
        index -1 and uniform probabilities (1/K each), since peak normalisation
        would otherwise amplify its noise floor into a confident prediction.

        Arguments
        ---------
        wavs : torch.Tensor
            (B, samples) or (samples,), full scale 1.0.
        wav_lens : torch.Tensor or None
            (B,) relative lengths in (0, 1] (SpeechBrain's convention).
        levels_dbfs : sequence of float or None
            (B,) levels to judge silence by, for waveforms already normalised
            (:meth:`classify_file` passes the file's level); ``None`` measures
            ``wavs``.

        Returns
        -------
        probabilities : torch.Tensor
            (B, K) softmax of the logits (uniform for silent clips).
        score : torch.Tensor
            (B,) the highest probability.
        index : torch.Tensor
            (B,) the predicted class index (-1 for silent clips).
        labels : list of str
            The predicted class names (``"silence"`` for silent clips).

        Example
        -------
        >>> import tempfile
        >>> classifier = AudioClassifier.from_hparams(source=write_demo_model(tempfile.mkdtemp()))
        >>> dither = torch.randint(-1, 2, (2, 16000)) / 32768.0
        >>> dither[1] *= 10000  # loud enough
        >>> probabilities, score, index, labels = classifier.classify_batch(dither)
        >>> labels[0], index[0].item(), round(score[0].item(), 4), labels[1] != "silence"
        ('silence', -1, 0.3333, True)
        """
        clips, levels = self._clips(wavs, wav_lens, return_levels=True)
        if levels_dbfs is not None:
            levels = torch.as_tensor(levels_dbfs, dtype=torch.float64).reshape(-1)
            if levels.numel() != len(clips):
                raise ValueError(f"levels_dbfs must hold {len(clips)} levels, got {levels.numel()}")
        probabilities = self.forward(wavs, wav_lens).float().softmax(dim=-1)
        return self._report_silence(probabilities, self._silent(levels).to(probabilities.device))

    def classify_file(self, path):
        """Classify one audio file (any rate, any channels); returns as :meth:`classify_batch`.

        Silence is judged on the file's own level, before normalisation.
        """
        waveform, level = load_audio_with_level(path, self.sample_rate)
        return self.classify_batch(waveform[None], levels_dbfs=[level])

    # -- interpretation -------------------------------------------------------------

    def _quantile(self, quantile):
        quantile = float(self.hparams.quantile if quantile is None else quantile)
        if not 0.0 <= quantile < 1.0:
            raise ValueError(f"quantile must be in [0, 1), got {quantile}")
        return quantile

    def use_lmac(self, folder):
        """Interpret with a trained L-MAC instead of the YAML's interpreter (the by-design map).

        L-MAC (Paissan et al., ICML 2024; :mod:`focalnet_lobes.interpretation.lmac`) is a decoder
        trained by ``recipes/train_lmac.py`` on this classifier; its mask, on the
        same feature grid, goes through the same quantile mask and listenable
        output. Call ``use_lmac(None)`` to go back to the YAML's interpreter.

        Arguments
        ---------
        folder : str or pathlib.Path or None
            Output folder of ``recipes/train_lmac.py`` (``None``: the YAML's interpreter).

        Returns
        -------
        AudioClassifier
            ``self``.

        Raises
        ------
        focalnet_lobes.interpretation.lmac.LMACFolderError
            When the folder is not a finished L-MAC training run.
        ValueError
            When the L-MAC was trained for another number of classes or
            representation size (checked on first use).
        """
        from focalnet_lobes.interpretation.lmac import load_lmac_interpreter

        if not hasattr(self, "_design_interpreter"):
            self._design_interpreter = self.mods.interpreter
        if folder is None:
            self.mods.interpreter = self._design_interpreter
        else:
            self.mods.interpreter = load_lmac_interpreter(folder, device=self.device)
        return self

    def interpret_batch(self, wavs, quantile=None, levels_dbfs=None):
        """Classify and interpret clips of one length at the model's sample rate.

        The interpreter gives a map on the feature grid; the mask keeps the bins
        at or above each clip's ``quantile`` of its map; the listenable waveform
        is the masked magnitude with the input's phase, inverted
        (:meth:`~focalnet_lobes.data.features.SpectrogramFrontend.listenable`). Clips
        shorter than ``pad_to_seconds`` are classified padded, as in training,
        but the map, the mask and the audio cover the clip's own frames only.

        Arguments
        ---------
        wavs : torch.Tensor
            (B, samples) or (samples,).
        quantile : float or None
            Mask quantile in [0, 1); ``None`` takes the YAML's ``quantile``.
        levels_dbfs : sequence of float or None
            As in :meth:`classify_batch`: silent clips get the label
            ``"silence"``, index -1 and uniform probabilities.

        Returns
        -------
        Interpretation
        """
        quantile = self._quantile(quantile)
        clips, levels = self._clips(wavs, return_levels=True)
        if levels_dbfs is not None:
            levels = torch.as_tensor(levels_dbfs, dtype=torch.float64).reshape(-1)
            if levels.numel() != len(clips):
                raise ValueError(f"levels_dbfs must hold {len(clips)} levels, got {levels.numel()}")
        (indices, batch, length), = list(self._batches(clips))
        frontend = self.mods.compute_features
        with torch.no_grad():
            features = self.compute_features(batch)
            logits, maps = self.mods.interpreter(self.mods.model, features)
            if batch.shape[1] > length:
                # The model saw the padded clip (as in training); the mask is the
                # quantile of the map over the clip's own frames.
                frames = min(features.shape[2], 1 + length // frontend.stft.hop_length)
                features, maps = features[:, :, :frames], maps[:, :, :frames]
            mask = quantile_mask(maps, quantile)
            listenable = frontend.listenable(batch[:, :length], mask)
        silent = self._silent(levels)
        probabilities, scores, predicted, labels = self._report_silence(
            logits.float().softmax(dim=-1).cpu(), silent
        )
        return Interpretation(
            labels=labels,
            indices=predicted.cpu(),
            scores=scores.cpu(),
            probabilities=probabilities.cpu(),
            features=features.cpu(),
            maps=maps.detach().cpu(),
            mask=mask.cpu(),
            listenable=listenable.cpu(),
            quantile=quantile,
            sample_rate=self.sample_rate,
            silent=silent.tolist(),
            levels_dbfs=levels,
        )

    def interpret_file(self, path, out_dir=None, quantile=None):
        """Classify and interpret one audio file; optionally write WAV + PNG.

        Arguments
        ---------
        path : str or pathlib.Path
            The audio file (any rate, any channels).
        out_dir : str or pathlib.Path or None
            When given, ``<stem>_interpretation.wav`` (the listenable
            interpretation, at the model's sample rate, as long as the clip) and
            ``<stem>_interpretation.png`` are written there.
        quantile : float or None
            Mask quantile; ``None`` takes the YAML's ``quantile``.

        Returns
        -------
        Interpretation
            For a batch of one clip; ``files`` holds the written paths.
        """
        waveform, level = load_audio_with_level(path, self.sample_rate)
        result = self.interpret_batch(waveform[None], quantile=quantile, levels_dbfs=[level])
        if out_dir is not None:
            result.files = self.save_interpretation(result, out_dir, pathlib.Path(path).stem)
        return result

    def save_interpretation(self, result, out_dir, name, index=0):
        """Write clip ``index`` of ``result`` as ``<name>_interpretation.{wav,png}``.

        Returns
        -------
        dict
            ``{"wav": path, "png": path}``.
        """
        out_dir = pathlib.Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        wav_path = out_dir / f"{name}_interpretation.wav"
        png_path = out_dir / f"{name}_interpretation.png"
        soundfile.write(
            str(wav_path), result.listenable[index].numpy().astype(np.float32), result.sample_rate
        )
        hop = self.mods.compute_features.stft.hop_length
        title = (
            f"{name}: predicted '{result.labels[index]}' (p = {float(result.scores[index]):.3f}), "
            f"mask keeps the top {100 * (1 - result.quantile):.0f}% of the map"
        )
        plot_interpretation(
            result.features[index],
            result.maps[index],
            result.mask[index],
            png_path,
            title=title,
            frame_rate=result.sample_rate / hop,
        )
        return {"wav": str(wav_path), "png": str(png_path)}


SHIPPED_MODEL = "focalnet-cpu-esc10"


def default_source():
    """The folder of the model shipped with the package (package data).

    ``focalnet_lobes/pretrained/focalnet-cpu-esc10/``: the compact FocalNet of
    ``hparams/focalnet_cpu.yaml`` trained on ESC-10 (folds 1-3 train, fold 4
    selects the checkpoint), exported with ``recipes/export.py``, weights stored
    in float16. Its ``README.md`` is the model card (data, CC BY-NC license of
    the ESC-50 clips, accuracy with a 95% CI, the commands that made it).
    :meth:`AudioClassifier.from_hparams` and ``focalnet-audio`` use it when no
    source is given.

    Returns
    -------
    pathlib.Path
        The folder (it holds ``hyperparams.yaml``, ``model.ckpt``,
        ``label_encoder.txt``, ``README.md``).

    Example
    -------
    >>> default_source().name
    'focalnet-cpu-esc10'
    """
    return pathlib.Path(__file__).resolve().parents[1] / "pretrained" / SHIPPED_MODEL


def local_strategy(value):
    """A SpeechBrain ``LocalStrategy`` from its name (``"symlink"``, ``"copy"``, ...).

    Arguments
    ---------
    value : str or speechbrain.utils.fetching.LocalStrategy
        ``symlink``, ``copy``, ``copy_skip_cache`` or ``no_link`` (any case).

    Returns
    -------
    speechbrain.utils.fetching.LocalStrategy

    Raises
    ------
    ValueError
        An unknown name.

    Example
    -------
    >>> local_strategy("copy")
    <LocalStrategy.COPY: 2>
    """
    from speechbrain.utils.fetching import LocalStrategy

    if isinstance(value, LocalStrategy):
        return value
    try:
        return LocalStrategy[str(value).upper()]
    except KeyError:
        names = ", ".join(name.lower() for name in LocalStrategy.__members__)
        raise ValueError(f"local_strategy must be one of {names}, got {value!r}") from None


def check_model_source(source, hparams_file=HPARAMS_FILE):
    """Raise :class:`ModelSourceError` unless ``source`` can be a model.

    A local folder must hold ``hparams_file``; a source that is not a local path
    must look like a Hugging Face hub id (``owner/name``) or a URL.

    Example
    -------
    >>> import tempfile
    >>> check_model_source("speechbrain/focalnet-base-esc50")
    >>> check_model_source(tempfile.mkdtemp())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    focalnet_lobes.inference.classifiers.ModelSourceError: ... is not a model folder: it has no hyperparams.yaml
    """
    text = str(source)
    path = pathlib.Path(text)
    if path.is_dir():
        if not (path / hparams_file).is_file():
            raise ModelSourceError(f"{text} is not a model folder: it has no {hparams_file}")
        return
    if path.exists():
        raise ModelSourceError(f"{text} is a file, not a model folder or hub id")
    if text.startswith(("http://", "https://")):
        return
    parts = text.split("/")
    if len(parts) != 2 or not all(parts) or text.startswith((".", "~")):
        raise ModelSourceError(
            f"{text} is neither a model folder (no such directory) nor a Hugging Face "
            "hub id (owner/name)"
        )


def write_demo_model(folder, num_classes=3):
    """Write a small, randomly initialised model folder (for examples and tests).

    A compact FocalNet on 16 mel bands, a linear head and the files
    :meth:`AudioClassifier.from_hparams` reads: ``hyperparams.yaml``,
    ``model.ckpt`` and ``label_encoder.txt``.

    Arguments
    ---------
    folder : str or pathlib.Path
        Where to write (created).
    num_classes : int
        Number of classes (named ``class_0``...).

    Returns
    -------
    pathlib.Path
        The folder.

    Example
    -------
    >>> import tempfile
    >>> sorted(p.name for p in write_demo_model(tempfile.mkdtemp()).iterdir())
    ['hyperparams.yaml', 'label_encoder.txt', 'model.ckpt']
    """
    from hyperpyyaml import load_hyperpyyaml
    from speechbrain.dataio.encoder import CategoricalEncoder

    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    text = _DEMO_YAML.format(num_classes=num_classes)
    (folder / HPARAMS_FILE).write_text(text, encoding="utf-8")
    hparams = load_hyperpyyaml(text, {"pretrained_path": str(folder)})
    torch.save(hparams["model"].state_dict(), folder / "model.ckpt")
    encoder = CategoricalEncoder()
    encoder.update_from_iterable([f"class_{i}" for i in range(num_classes)])
    encoder.save(folder / "label_encoder.txt")
    return folder


_DEMO_YAML = """\
# Demo model (random weights) written by focalnet_lobes.inference.classifiers.write_demo_model
sample_rate: 16000
pretrained_path: null
quantile: 0.9
waveform_normalization: peak
pad_to_seconds: null
silence_threshold_dbfs: -60.0
compute_features: !new:focalnet_lobes.data.features.SpectrogramFrontend
    sample_rate: !ref <sample_rate>
    n_mels: 16
backbone: !new:focalnet_lobes.models.focalnet.FocalNet
    in_chans: 1
    num_classes: 0
    embed_dim: 8
    depths: [1, 1]
model: !new:focalnet_lobes.models.classifier.SpectrogramClassifier
    backbone: !ref <backbone>
    head: !new:focalnet_lobes.models.heads.LinearHead
        in_features: 16
        num_classes: {num_classes}
    normalizer: !new:focalnet_lobes.models.classifier.GlobalFeatureNorm
        num_bins: 16
interpreter: !new:focalnet_lobes.interpretation.interpret.ModulationInterpreter
label_encoder: !new:speechbrain.dataio.encoder.CategoricalEncoder
modules:
    compute_features: !ref <compute_features>
    model: !ref <model>
    interpreter: !ref <interpreter>
pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        model: !ref <model>
        label_encoder: !ref <label_encoder>
    paths:
        model: !ref <pretrained_path>/model.ckpt
        label_encoder: !ref <pretrained_path>/label_encoder.txt
    custom_hooks:
        model: !name:focalnet_lobes.inference.classifiers.load_state_dict_strict
"""

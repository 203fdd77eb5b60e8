#!/usr/bin/env python3
"""Recipe for interpreting a trained sound classifier and measuring its interpretations.

A classifier trained by ``recipes/train.py`` is loaded from its output folder; the
interpretation method (FocalNet modulation maps, ViT attention, a random baseline,
or any :class:`~focalnet_lobes.interpret.MapInterpreter`) comes from the YAML.
For every clip of a split (the test fold by default) the maps are computed once
and thresholded at each quantile q of the YAML (binary masks keep the bins at or
above the clip's q-quantile, see :func:`~focalnet_lobes.interpret.quantile_mask`);
every metric of :mod:`focalnet_lobes.metrics` is averaged over the clips.

To run this recipe, do the following:
> python recipes/interpret.py hparams/interpret_focalnet.yaml \\
>     --classifier_folder results/focalnet_cpu/1986 [--split valid] [--output_folder DIR]

Outputs (default folder ``<classifier_folder>/interpretation/<method>/``):

* ``metrics.json`` (schema below), ``metrics.csv`` (one row per quantile, every
  metric), ``metrics.md`` (markdown table), ``fidelity_faithfulness.png`` (FID-I
  and FA against the quantile), ``hyperparams.yaml`` (the YAML as run);
* ``examples/``: for the first ``num_examples`` clips, ``<id>_original.wav``,
  ``<id>_interpretation.wav`` (the mask at ``example_quantile`` applied to the
  linear STFT magnitude, inverted with the original phase: the input's length)
  and ``<id>.png`` (spectrogram, map, mask, masked spectrogram);
* ``overlap.json``: the overlap test, per pair and summarised (below), and
  ``overlap/pair<k>_{mixture,interpretation}.wav`` for the first pairs.

``metrics.json`` (read by ``recipes/compare.py`` and the PIQ recipe)::

    {
      "method": str,                 # "focalnet", "vit", "random", "piq", ...
      "interpreter": str,            # class name of the interpreter
      "backbone": str,               # "focalnet", "vit" or "other"
      "classifier_folder": str,
      "checkpoint": str,
      "split": str,                  # "train", "valid" or "test"
      "num_clips": int,
      "accuracy": float,             # classifier accuracy on the split, in [0, 1]
      "soft": bool,                  # soft masks instead of binary
      "structure_on": str,           # sparsity/complexity of "maps" or "masks"
      "quantiles": {                 # keys: format_quantile(q), e.g. "0.9"
        "0.9": {"fid_i", "fa", "ff", "ai", "ad", "ag", "sparsity", "complexity",
                "mask_area", "p_full", "p_in", "p_out": float (means over clips),
                "clips": int},
        ...
      },
      "latency_ms_per_clip": {...},  # see measure_latency
      "overlap": {...},              # the "summary" of overlap.json
      "examples": [{"id", "class_name", "predicted", "original_wav",
                    "interpretation_wav", "png"}, ...],
      "training_cost": {...}         # only when the YAML has training_cost (PIQ:
                                     # what training the interpreter took)
    }

FID-I is in [0, 1], FA and FF in [-1, 1], AI, AD and AG in [0, 100] (percent),
sparsity (Gini) in [0, 1), complexity (entropy, nats) in [0, log(T F)].

Overlap test (the paper's overlapping sources): pairs (s1, s2) of clips of
different classes are mixed as x = w1 s1 + w2 s2 (w = ``overlap_weights``,
0.8 / 0.2) and x is interpreted; the mask M at ``overlap_quantile`` is brought to
the linear STFT grid and compared with the power spectra P_k = |STFT(w_k s_k)|^2
of the two weighted sources (:func:`source_attribution`):

* ``s1_kept`` = sum M^2 P_1 / sum P_1, ``s2_kept`` likewise: the fraction of each
  source's energy that passes the mask;
* ``keeps``: ``"s1"`` when s1_kept > s2_kept, ``"s2"`` when smaller, else
  ``"neither"`` (the mask favours the source it keeps relatively more of);
* ``s1_share`` = sum M^2 P_1 / (sum M^2 P_1 + sum M^2 P_2): the share of the
  mask-weighted energy that belongs to s1, against ``s1_share_mixture``, the same
  without mask (what a mask that ignores the sources would give);
* ``predicts_s1`` / ``predicts_s2``: the prediction on x is s1's / s2's class.

The summary holds the number of pairs, the means of these values and the rates
``keeps_s1_rate``, ``predicts_s1_rate``, ``predicts_s2_rate``.

Authors
 * focalnet-audio contributors
"""

import csv
import json
import logging
import math
import statistics
import sys
import time
from pathlib import Path

import torch

from focalnet_lobes.audio import fix_length, load_audio
from focalnet_lobes.interpret import quantile_mask
from focalnet_lobes.metrics import METRIC_KEYS, MetricAccumulator, interpretation_metrics

logger = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
#: The repository's hparams folder (interpret_focalnet.yaml, interpret_vit.yaml, ...).
HPARAMS_DIR = Path(__file__).resolve().parents[1] / "hparams"
#: Column titles of the metrics, in table order.
METRIC_TITLES = {
    "fid_i": "FID-I",
    "fa": "FA",
    "ff": "FF",
    "ai": "AI (%)",
    "ad": "AD (%)",
    "ag": "AG (%)",
    "sparsity": "Sparsity",
    "complexity": "Complexity",
    "mask_area": "Mask area",
}
TABLE_KEYS = tuple(METRIC_KEYS) + ("mask_area",)


class InterpretationError(ValueError):
    """The interpretation cannot run: bad configuration, data or interpreter/backbone mismatch."""


def format_quantile(q):
    """The key of quantile q in ``metrics.json`` and the tables (shortest form).

    Arguments
    ---------
    q : float
        Quantile.

    Returns
    -------
    str

    Example
    -------
    >>> format_quantile(0.9), format_quantile(0.95), format_quantile(0.5)
    ('0.9', '0.95', '0.5')
    """
    return f"{float(q):g}"


def split_entries(manifest_file, split="test", max_clips=None):
    """The clips of a SpeechBrain JSON manifest as a list of (id, entry), in file order.

    Arguments
    ---------
    manifest_file : str or pathlib.Path
        ``save/<split>.json`` of a training run.
    split : str
        Name of the split (for the error messages).
    max_clips : int or None
        Keep only the first ``max_clips`` clips.

    Returns
    -------
    list of (str, dict)

    Example
    -------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "test.json"
    >>> _ = path.write_text('{"a": {"wav": "a.wav", "label": 0}, "b": {"wav": "b.wav"}}')
    >>> [clip_id for clip_id, _ in split_entries(path, max_clips=1)]
    ['a']
    """
    manifest_file = Path(manifest_file)
    if not manifest_file.is_file():
        raise InterpretationError(
            f"no '{split}' manifest at {manifest_file}: the training run did not prepare "
            f"that split (expected one of {SPLITS})"
        )
    entries = list(json.loads(manifest_file.read_text(encoding="utf-8")).items())
    if max_clips is not None:
        entries = entries[: int(max_clips)]
    if not entries:
        hint = " (data without fold 5, e.g. the ESC-10 dev subset: use --split valid)"
        raise InterpretationError(
            f"the '{split}' split of {manifest_file.parent.parent} has no clips"
            + (hint if split == "test" else "")
        )
    return entries


def iterate_batches(entries, batch_size, sample_rate, num_samples):
    """Yield ``(ids, wavs (B, num_samples), labels (B,))`` batches of manifest entries.

    Clips are read with :func:`~focalnet_lobes.audio.load_audio` (mono, resampled,
    peak-normalised) and cropped or zero-padded to ``num_samples``, as in training.

    Arguments
    ---------
    entries : list of (str, dict)
        From :func:`split_entries`; each entry has ``"wav"`` and ``"label"``.
    batch_size : int
        Clips per batch.
    sample_rate : int
        Sample rate of the model.
    num_samples : int
        Length of every clip.

    Example
    -------
    >>> import tempfile, soundfile
    >>> path = Path(tempfile.mkdtemp()) / "tone.wav"
    >>> soundfile.write(path, torch.ones(800).numpy() * 0.5, 16000)
    >>> entries = [("x", {"wav": str(path), "label": 3})] * 3
    >>> [(len(ids), wavs.shape[1]) for ids, wavs, _ in iterate_batches(entries, 2, 16000, 1000)]
    [(2, 1000), (1, 1000)]
    """
    if int(batch_size) < 1:
        raise InterpretationError(f"batch_size must be at least 1, got {batch_size}")
    for start in range(0, len(entries), int(batch_size)):
        chunk = entries[start : start + int(batch_size)]
        wavs = torch.stack(
            [fix_length(load_audio(entry["wav"], sample_rate), num_samples) for _, entry in chunk]
        )
        labels = torch.tensor([int(entry["label"]) for _, entry in chunk])
        yield [clip_id for clip_id, _ in chunk], wavs, labels


def run_interpreter(interpreter, model, features, context=""):
    """``interpreter(model, features)`` under ``no_grad``, with a clear error on a mismatch.

    A method that needs maps the backbone does not expose (modulation maps of a
    ViT, attention of a FocalNet) makes the interpreter raise ``ValueError``; it
    is re-raised as :class:`InterpretationError` naming ``context`` (e.g. the
    classifier folder).

    Arguments
    ---------
    interpreter : callable
        ``interpreter(model, features) -> (logits, maps)``.
    model : torch.nn.Module
        The classifier.
    features : torch.Tensor
        (B, 1, T, F).
    context : str
        What is interpreted, for the error message.

    Returns
    -------
    logits : torch.Tensor
        (B, K), detached.
    maps : torch.Tensor
        (B, 1, T, F), detached.

    Example
    -------
    >>> from focalnet_lobes.interpret import ModulationInterpreter
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    >>> features = torch.rand(1, 1, 2, 2)
    >>> run_interpreter(ModulationInterpreter(), model, features, "demo")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    interpret.InterpretationError: ModulationInterpreter cannot interpret demo: ...
    """
    try:
        with torch.no_grad():
            logits, maps = interpreter(model, features)
    except ValueError as error:
        raise InterpretationError(
            f"{type(interpreter).__name__} cannot interpret {context}: {error}"
        ) from error
    return logits.detach(), maps.detach()


def evaluate_split(
    model,
    frontend,
    interpreter,
    batches,
    quantiles,
    soft=False,
    structure_on="maps",
    context="the classifier",
):
    """Accuracy and mean interpretation metrics at every quantile, maps computed once per batch.

    The same computation as :func:`focalnet_lobes.metrics.evaluate_quantiles`, on
    waveform batches, also collecting the accuracy of the interpreter's logits
    (those of the full input) and the mask area (mean of M).

    Arguments
    ---------
    model : torch.nn.Module
        The classifier (B, 1, T, F) -> (B, K), in eval mode.
    frontend : focalnet_lobes.features.SpectrogramFrontend
        Waveforms -> features.
    interpreter : callable
        ``interpreter(model, features) -> (logits, maps)``.
    batches : iterable
        ``(ids, wavs, labels)`` as from :func:`iterate_batches`.
    quantiles : sequence of float
        Mask quantiles.
    soft : bool
        Soft masks instead of binary.
    structure_on : str
        Sparsity and complexity of the ``"maps"`` or of each q's ``"masks"``.
    context : str
        What is interpreted, for error messages.

    Returns
    -------
    dict
        ``{"num_clips": int, "accuracy": float, "quantiles": {key: {metric: mean,
        "clips": int}}}`` with ``key = format_quantile(q)``.

    Example
    -------
    >>> from focalnet_lobes.features import SpectrogramFrontend
    >>> from focalnet_lobes.interpret import RandomInterpreter
    >>> frontend = SpectrogramFrontend(n_mels=8)
    >>> model = torch.nn.Sequential(
    ...     torch.nn.AdaptiveAvgPool2d((1, 8)), torch.nn.Flatten(), torch.nn.Linear(8, 3)
    ... ).eval()
    >>> batches = [(["a", "b"], torch.randn(2, 1600), torch.tensor([0, 2]))]
    >>> result = evaluate_split(model, frontend, RandomInterpreter(), batches, [0.5, 0.9])
    >>> result["num_clips"], sorted(result["quantiles"]), 0 <= result["accuracy"] <= 1
    (2, ['0.5', '0.9'], True)
    >>> round(result["quantiles"]["0.5"]["mask_area"], 1)
    0.5
    """
    if structure_on not in ("maps", "masks"):
        raise InterpretationError(f"structure_on must be 'maps' or 'masks', got '{structure_on}'")
    quantiles = [float(q) for q in quantiles]
    device = _device_of(model)
    accumulators = {q: MetricAccumulator() for q in quantiles}
    correct = 0
    count = 0
    for _, wavs, labels in batches:
        with torch.no_grad():
            features = frontend(wavs.to(device))
        logits, maps = run_interpreter(interpreter, model, features, context)
        correct += int((logits.argmax(dim=1).cpu() == labels.cpu()).sum())
        count += len(labels)
        for q in quantiles:
            masks = quantile_mask(maps, q, soft=soft)
            scores = interpretation_metrics(
                model,
                features,
                masks,
                maps=maps if structure_on == "maps" else None,
                logits=logits,
            )
            scores["mask_area"] = masks.flatten(1).mean(dim=1).double().cpu()
            accumulators[q].append(scores)
    if count == 0:
        raise InterpretationError("no clips to evaluate")
    table = {}
    for q, accumulator in accumulators.items():
        summary = accumulator.summarize()
        summary["clips"] = len(accumulator)
        table[format_quantile(q)] = summary
    return {"num_clips": count, "accuracy": correct / count, "quantiles": table}


def _device_of(model):
    parameter = next(iter(model.parameters()), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def _synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_latency(model, frontend, interpreter, wavs, quantile=0.9, soft=False, repeats=3):
    """Wall-clock time per clip of the classifier and of its interpretation, one clip at a time.

    For each clip (batch of 1), after one warm-up pass, the median over
    ``repeats`` runs of: the features (front end); the classifier's forward alone;
    the interpretation (the interpreter's pass, which gives the logits too, plus
    the quantile mask); the listenable waveform (mask to audio by ISTFT). The
    medians over clips are reported, in milliseconds per clip.

    Arguments
    ---------
    model : torch.nn.Module
        The classifier.
    frontend : focalnet_lobes.features.SpectrogramFrontend
        The front end.
    interpreter : callable
        ``interpreter(model, features) -> (logits, maps)``.
    wavs : torch.Tensor
        (N, samples) clips to time.
    quantile : float
        Mask quantile.
    soft : bool
        Soft masks.
    repeats : int
        Timed runs per clip.

    Returns
    -------
    dict
        ``features_ms``, ``forward_ms`` (classifier alone),
        ``interpretation_total_ms`` (interpreter pass including its forward, and
        the mask), ``map_mask_overhead_ms`` (interpretation_total_ms - forward_ms,
        the cost of interpreting on top of classifying; clamped at 0, so a
        difference below the timing noise reads 0), ``listenable_ms``, and
        ``clips``, ``repeats``, ``batch_size`` (1), ``device``, ``threads``.

    Example
    -------
    >>> from focalnet_lobes.features import SpectrogramFrontend
    >>> from focalnet_lobes.interpret import RandomInterpreter
    >>> model = torch.nn.Sequential(
    ...     torch.nn.AdaptiveAvgPool2d((1, 8)), torch.nn.Flatten(), torch.nn.Linear(8, 3)
    ... ).eval()
    >>> frontend, wavs = SpectrogramFrontend(n_mels=8), torch.randn(2, 1600)
    >>> latency = measure_latency(model, frontend, RandomInterpreter(), wavs, repeats=1)
    >>> latency["clips"], latency["interpretation_total_ms"] > 0
    (2, True)
    >>> latency["map_mask_overhead_ms"] >= 0
    True
    """
    if wavs.dim() != 2 or wavs.shape[0] == 0:
        raise InterpretationError(
            f"measure_latency needs (N >= 1, samples) clips, got {tuple(wavs.shape)}"
        )
    repeats = max(1, int(repeats))
    device = _device_of(model)
    timings = {"features": [], "forward": [], "interpretation": [], "listenable": []}

    def timed(function):
        _synchronize(device)
        start = time.perf_counter()
        result = function()
        _synchronize(device)
        return result, 1000.0 * (time.perf_counter() - start)

    def interpret_once(features):
        _, maps = interpreter(model, features)
        return quantile_mask(maps.detach(), quantile, soft=soft)

    with torch.no_grad():
        warm = wavs[:1].to(device)
        warm_mask = interpret_once(frontend(warm))
        model(frontend(warm))
        frontend.listenable(warm, warm_mask)
        for clip in wavs:
            clip = clip[None].to(device)
            runs = {key: [] for key in timings}
            for _ in range(repeats):
                features, elapsed = timed(lambda: frontend(clip))
                runs["features"].append(elapsed)
                runs["forward"].append(timed(lambda: model(features))[1])
                mask, elapsed = timed(lambda: interpret_once(features))
                runs["interpretation"].append(elapsed)
                runs["listenable"].append(timed(lambda: frontend.listenable(clip, mask))[1])
            for key, values in runs.items():
                timings[key].append(statistics.median(values))
    result = {key: statistics.median(values) for key, values in timings.items()}
    return {
        "features_ms": result["features"],
        "forward_ms": result["forward"],
        "interpretation_total_ms": result["interpretation"],
        "map_mask_overhead_ms": max(0.0, result["interpretation"] - result["forward"]),
        "listenable_ms": result["listenable"],
        "clips": int(wavs.shape[0]),
        "repeats": repeats,
        "batch_size": 1,
        "device": str(device),
        "threads": torch.get_num_threads(),
    }


def choose_overlap_pairs(labels, num_pairs, seed=0):
    """Pairs (i, j) of clips with different labels for the overlap test.

    The clips are visited in a seeded random order; each visited clip i becomes s1
    of one pair, with s2 the next clip in that (cyclic) order whose label differs.
    At most ``num_pairs`` pairs, each clip s1 at most once.

    Arguments
    ---------
    labels : sequence of int
        Label of each clip.
    num_pairs : int
        Number of pairs wanted.
    seed : int
        Seed of the order.

    Returns
    -------
    list of (int, int)

    Example
    -------
    >>> pairs = choose_overlap_pairs([0, 0, 1, 2], num_pairs=3, seed=0)
    >>> len(pairs), all([0, 0, 1, 2][i] != [0, 0, 1, 2][j] for i, j in pairs)
    (3, True)
    >>> choose_overlap_pairs([5, 5, 5], num_pairs=2)
    []
    """
    labels = [int(label) for label in labels]
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(int(seed))).tolist()
    pairs = []
    for position, first in enumerate(order):
        if len(pairs) >= int(num_pairs):
            break
        for step in range(1, len(order)):
            second = order[(position + step) % len(order)]
            if labels[second] != labels[first]:
                pairs.append((first, second))
                break
    return pairs


def source_attribution(frontend, masks, source1, source2):
    """How much of each (weighted) source's energy a mask on the mixture keeps.

    With M the mask brought to the linear STFT grid
    (:meth:`~focalnet_lobes.features.SpectrogramFrontend.mask_to_linear`) and
    P_k = |STFT(source_k)|^2: ``s1_kept`` = sum M^2 P_1 / sum P_1, ``s2_kept``
    likewise, ``s1_share`` = sum M^2 P_1 / (sum M^2 P_1 + sum M^2 P_2) and
    ``s1_share_mixture`` = sum P_1 / (sum P_1 + sum P_2). A silent source has a
    kept fraction of 0; shares of an all-silent pair are 0.5.

    Arguments
    ---------
    frontend : focalnet_lobes.features.SpectrogramFrontend
        The front end whose grid the mask is on.
    masks : torch.Tensor
        (B, 1, T, F) masks of the mixtures.
    source1, source2 : torch.Tensor
        (B, samples) weighted sources, the mixture being their sum.

    Returns
    -------
    dict of torch.Tensor
        (B,) float64 ``s1_kept``, ``s2_kept``, ``s1_share``, ``s1_share_mixture``.

    Example
    -------
    >>> from focalnet_lobes.features import SpectrogramFrontend
    >>> frontend = SpectrogramFrontend()
    >>> time_axis = torch.arange(16000) / 16000
    >>> low = torch.sin(2 * math.pi * 200 * time_axis)[None]
    >>> high = 0.5 * torch.sin(2 * math.pi * 6000 * time_axis)[None]
    >>> masks = torch.zeros(1, 1, 87, 513)
    >>> masks[..., :100] = 1.0  # keep the bins below 1.6 kHz
    >>> shares = source_attribution(frontend, masks, low, high)
    >>> round(float(shares["s1_kept"]), 3), round(float(shares["s2_kept"]), 3)
    (1.0, 0.0)
    >>> round(float(shares["s1_share_mixture"]), 2)
    0.8
    """
    with torch.no_grad():
        linear = frontend.mask_to_linear(masks).squeeze(1).double() ** 2
        power1 = frontend.spectrum(source1).abs().double() ** 2
        power2 = frontend.spectrum(source2).abs().double() ** 2
    if linear.shape != power1.shape:
        raise InterpretationError(
            f"mask grid {tuple(linear.shape)} does not match the spectrum grid "
            f"{tuple(power1.shape)}"
        )
    total1 = power1.sum(dim=(1, 2))
    total2 = power2.sum(dim=(1, 2))
    kept1 = (linear * power1).sum(dim=(1, 2))
    kept2 = (linear * power2).sum(dim=(1, 2))

    def ratio(numerator, denominator, empty):
        safe = torch.where(denominator > 0, denominator, torch.ones_like(denominator))
        return torch.where(denominator > 0, numerator / safe, torch.full_like(numerator, empty))

    return {
        "s1_kept": ratio(kept1, total1, 0.0).cpu(),
        "s2_kept": ratio(kept2, total2, 0.0).cpu(),
        "s1_share": ratio(kept1, kept1 + kept2, 0.5).cpu(),
        "s1_share_mixture": ratio(total1, total1 + total2, 0.5).cpu(),
    }


def overlap_test(
    model,
    frontend,
    interpreter,
    entries,
    sample_rate,
    num_samples,
    num_pairs=20,
    weights=(0.8, 0.2),
    quantile=0.9,
    soft=False,
    batch_size=8,
    seed=0,
    class_names=None,
    context="the classifier",
):
    """Mix pairs of clips of different classes, interpret the mixtures, see which source is kept.

    See the module docstring for the definitions.

    Arguments
    ---------
    model, frontend, interpreter :
        As in :func:`evaluate_split`.
    entries : list of (str, dict)
        The clips to pair (from :func:`split_entries`).
    sample_rate, num_samples : int
        As in :func:`iterate_batches`.
    num_pairs : int
        Pairs to test (fewer if the clips do not allow).
    weights : tuple of float
        (w1, w2): the mixture is w1 s1 + w2 s2.
    quantile : float
        Mask quantile.
    soft : bool
        Soft masks.
    batch_size : int
        Mixtures per batch.
    seed : int
        Seed of the pairing (:func:`choose_overlap_pairs`).
    class_names : list of str or None
        To name the classes in the report.
    context : str
        For error messages.

    Returns
    -------
    dict
        ``{"weights", "quantile", "pairs": [per-pair dict], "summary": dict,
        "mixtures": (P, samples) tensor, "interpretations": (P, samples) tensor}``
        (the tensors are not meant for JSON).

    Example
    -------
    >>> import tempfile, soundfile
    >>> from focalnet_lobes.features import SpectrogramFrontend
    >>> from focalnet_lobes.interpret import RandomInterpreter
    >>> folder = Path(tempfile.mkdtemp())
    >>> entries = []
    >>> for label, hertz in enumerate([300, 3000]):
    ...     path = folder / f"{label}.wav"
    ...     tone = torch.sin(torch.arange(3200) * hertz / 16000 * 6.283)
    ...     soundfile.write(path, tone.numpy(), 16000)
    ...     entries.append((str(label), {"wav": str(path), "label": label}))
    >>> model = torch.nn.Sequential(
    ...     torch.nn.AdaptiveAvgPool2d((1, 8)), torch.nn.Flatten(), torch.nn.Linear(8, 2)
    ... ).eval()
    >>> frontend = SpectrogramFrontend(n_mels=8)
    >>> result = overlap_test(
    ...     model, frontend, RandomInterpreter(), entries, 16000, 3200, num_pairs=2
    ... )
    >>> result["summary"]["pairs"], result["interpretations"].shape
    (2, torch.Size([2, 3200]))
    """
    weights = [float(w) for w in weights]
    if len(weights) != 2 or min(weights) < 0 or sum(weights) <= 0:
        raise InterpretationError(
            f"overlap_weights must be two non-negative numbers, got {weights}"
        )
    labels = [int(entry["label"]) for _, entry in entries]
    pairs = choose_overlap_pairs(labels, num_pairs, seed)
    name = (lambda k: class_names[k]) if class_names else str
    device = _device_of(model)
    records, mixtures, interpretations = [], [], []
    for start in range(0, len(pairs), max(1, int(batch_size))):
        chunk = pairs[start : start + max(1, int(batch_size))]
        first = torch.stack(
            [
                fix_length(load_audio(entries[i][1]["wav"], sample_rate), num_samples)
                for i, _ in chunk
            ]
        )
        second = torch.stack(
            [
                fix_length(load_audio(entries[j][1]["wav"], sample_rate), num_samples)
                for _, j in chunk
            ]
        )
        source1 = (weights[0] * first).to(device)
        source2 = (weights[1] * second).to(device)
        mixture = source1 + source2
        with torch.no_grad():
            features = frontend(mixture)
        logits, maps = run_interpreter(interpreter, model, features, context)
        masks = quantile_mask(maps, quantile, soft=soft)
        shares = source_attribution(frontend, masks, source1, source2)
        with torch.no_grad():
            interpretations.append(frontend.listenable(mixture, masks).cpu())
        mixtures.append(mixture.cpu())
        predicted = logits.argmax(dim=1).cpu().tolist()
        for index, (i, j) in enumerate(chunk):
            kept1 = float(shares["s1_kept"][index])
            kept2 = float(shares["s2_kept"][index])
            records.append(
                {
                    "s1": entries[i][0],
                    "s2": entries[j][0],
                    "s1_class": name(labels[i]),
                    "s2_class": name(labels[j]),
                    "predicted_class": name(predicted[index]),
                    "predicts_s1": predicted[index] == labels[i],
                    "predicts_s2": predicted[index] == labels[j],
                    "s1_kept": kept1,
                    "s2_kept": kept2,
                    "keeps": "s1" if kept1 > kept2 else "s2" if kept1 < kept2 else "neither",
                    "s1_share": float(shares["s1_share"][index]),
                    "s1_share_mixture": float(shares["s1_share_mixture"][index]),
                }
            )
    if not records:
        logger.warning("overlap test: no pair of clips of different classes")
    summary = {"pairs": len(records), "weights": weights, "quantile": float(quantile)}
    for key in ("s1_kept", "s2_kept", "s1_share", "s1_share_mixture"):
        summary[key] = _mean([record[key] for record in records])
    summary["keeps_s1_rate"] = _mean([record["keeps"] == "s1" for record in records])
    summary["predicts_s1_rate"] = _mean([record["predicts_s1"] for record in records])
    summary["predicts_s2_rate"] = _mean([record["predicts_s2"] for record in records])
    empty = torch.zeros(0, num_samples)
    return {
        "weights": weights,
        "quantile": float(quantile),
        "pairs": records,
        "summary": summary,
        "mixtures": torch.cat(mixtures) if mixtures else empty,
        "interpretations": torch.cat(interpretations) if interpretations else empty,
    }


def _mean(values):
    return float(sum(float(v) for v in values) / len(values)) if values else None


def write_wav(path, wav, sample_rate):
    """Write a mono waveform as a 32-bit float WAV (no clipping, exact length).

    Arguments
    ---------
    path : str or pathlib.Path
        Output file.
    wav : torch.Tensor
        (samples,).
    sample_rate : int
        Sample rate.

    Example
    -------
    >>> import tempfile, soundfile
    >>> path = Path(tempfile.mkdtemp()) / "x.wav"
    >>> write_wav(path, torch.tensor([0.0, 1.5, -0.25]), 16000)
    >>> soundfile.read(path)[0].tolist()
    [0.0, 1.5, -0.25]
    """
    import soundfile

    soundfile.write(
        str(path), wav.detach().cpu().float().numpy(), int(sample_rate), subtype="FLOAT"
    )


def plot_example(path, features, maps, masks, title=""):
    """Save a 4-panel PNG: spectrogram, map, mask, masked spectrogram (time on x).

    Arguments
    ---------
    path : str or pathlib.Path
        Output PNG.
    features, maps, masks : torch.Tensor
        (T, F) (or (1, T, F)) feature spectrogram, map and mask of one clip.
    title : str
        Figure title.

    Example
    -------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "clip.png"
    >>> plot_example(path, torch.rand(20, 8), torch.rand(20, 8), torch.ones(20, 8), "demo")
    >>> path.stat().st_size > 1000
    True
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    features, maps, masks = (
        value.detach().cpu().float().reshape(value.shape[-2:]) for value in (features, maps, masks)
    )
    panels = [
        ("Spectrogram (log1p)", features, "magma"),
        ("Interpretation map", maps, "viridis"),
        ("Mask", masks, "gray"),
        ("Masked spectrogram", masks * features, "magma"),
    ]
    figure, axes = plt.subplots(2, 2, figsize=(11, 7), constrained_layout=True)
    for axis, (name, values, colormap) in zip(axes.flat, panels):
        image = axis.imshow(
            values.T.numpy(), origin="lower", aspect="auto", cmap=colormap, interpolation="nearest"
        )
        axis.set_title(name)
        axis.set_xlabel("frame")
        axis.set_ylabel("frequency bin")
        figure.colorbar(image, ax=axis)
    if title:
        figure.suptitle(title)
    figure.savefig(str(path), dpi=80)
    plt.close(figure)


def write_examples(
    folder,
    model,
    frontend,
    interpreter,
    entries,
    sample_rate,
    num_samples,
    quantile=0.9,
    soft=False,
    class_names=None,
    context="the classifier",
):
    """Listenable interpretations of some clips: original WAV, interpretation WAV, 4-panel PNG.

    Arguments
    ---------
    folder : str or pathlib.Path
        Where ``<id>_original.wav``, ``<id>_interpretation.wav`` and ``<id>.png``
        are written.
    model, frontend, interpreter :
        As in :func:`evaluate_split`.
    entries : list of (str, dict)
        The clips (all of them are written).
    sample_rate, num_samples : int
        As in :func:`iterate_batches`.
    quantile : float
        Mask quantile.
    soft : bool
        Soft masks.
    class_names : list of str or None
        To name the classes.
    context : str
        For error messages.

    Returns
    -------
    list of dict
        Per clip: ``id``, ``class_name``, ``predicted``, ``original_wav``,
        ``interpretation_wav``, ``png`` (file names relative to ``folder``'s
        parent), ``interpretation_rms``.

    Example
    -------
    >>> import tempfile, soundfile
    >>> from focalnet_lobes.features import SpectrogramFrontend
    >>> from focalnet_lobes.interpret import RandomInterpreter
    >>> folder = Path(tempfile.mkdtemp())
    >>> soundfile.write(folder / "in.wav", torch.randn(1600).numpy() * 0.1, 16000)
    >>> model = torch.nn.Sequential(
    ...     torch.nn.AdaptiveAvgPool2d((1, 8)), torch.nn.Flatten(), torch.nn.Linear(8, 2)
    ... ).eval()
    >>> examples = write_examples(
    ...     folder / "examples", model, SpectrogramFrontend(n_mels=8), RandomInterpreter(),
    ...     [("in", {"wav": str(folder / "in.wav"), "label": 1})], 16000, 1600,
    ... )
    >>> soundfile.info(folder / examples[0]["interpretation_wav"]).frames
    1600
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not entries:
        return []
    name = (lambda k: class_names[k]) if class_names else str
    _, wavs, labels = next(iterate_batches(entries, len(entries), sample_rate, num_samples))
    device = _device_of(model)
    wavs = wavs.to(device)
    with torch.no_grad():
        features = frontend(wavs)
    logits, maps = run_interpreter(interpreter, model, features, context)
    masks = quantile_mask(maps, quantile, soft=soft)
    with torch.no_grad():
        listenable = frontend.listenable(wavs, masks).cpu()
    probabilities = logits.double().softmax(dim=1).cpu()
    examples = []
    for index, (clip_id, _) in enumerate(entries):
        safe_id = "".join(c if c.isalnum() or c in "-_." else "_" for c in clip_id)
        predicted = int(probabilities[index].argmax())
        original = folder / f"{safe_id}_original.wav"
        interpretation = folder / f"{safe_id}_interpretation.wav"
        picture = folder / f"{safe_id}.png"
        write_wav(original, wavs[index], sample_rate)
        write_wav(interpretation, listenable[index], sample_rate)
        title = (
            f"{clip_id}: true {name(int(labels[index]))}, predicted {name(predicted)} "
            f"(p = {float(probabilities[index, predicted]):.2f}), "
            f"mask at q = {format_quantile(quantile)}"
        )
        plot_example(picture, features[index], maps[index], masks[index], title)
        examples.append(
            {
                "id": clip_id,
                "class_name": name(int(labels[index])),
                "predicted": name(predicted),
                "original_wav": str(original.relative_to(folder.parent)),
                "interpretation_wav": str(interpretation.relative_to(folder.parent)),
                "png": str(picture.relative_to(folder.parent)),
                "interpretation_rms": float(listenable[index].pow(2).mean().sqrt()),
            }
        )
    return examples


def metric_rows(metrics):
    """One row per quantile of a ``metrics.json`` dict: ``quantile`` then every metric.

    Arguments
    ---------
    metrics : dict
        As written to ``metrics.json``.

    Returns
    -------
    list of dict
        Sorted by quantile.

    Example
    -------
    >>> metrics = {"quantiles": {"0.9": {"fid_i": 0.5}, "0.5": {"fid_i": 1.0}}}
    >>> [row["quantile"] for row in metric_rows(metrics)]
    [0.5, 0.9]
    """
    rows = []
    for key in sorted(metrics["quantiles"], key=float):
        row = {"quantile": float(key)}
        row.update(metrics["quantiles"][key])
        rows.append(row)
    return rows


def markdown_metrics(metrics):
    """The markdown report of one ``metrics.json`` dict: header, metric table, latency, overlap.

    Arguments
    ---------
    metrics : dict
        As written to ``metrics.json``.

    Returns
    -------
    str

    Example
    -------
    >>> metrics = {"method": "random", "classifier_folder": "run", "split": "test",
    ...            "num_clips": 2, "accuracy": 0.5, "soft": False,
    ...            "quantiles": {"0.9": {key: 0.0 for key in TABLE_KEYS}}}
    >>> print(markdown_metrics(metrics).splitlines()[0])
    # Interpretation metrics: random
    """
    lines = [
        f"# Interpretation metrics: {metrics['method']}",
        "",
        f"- classifier: `{metrics['classifier_folder']}`",
        f"- split: {metrics['split']} ({metrics['num_clips']} clips), "
        f"accuracy {100 * metrics['accuracy']:.2f}%",
        f"- masks: {'soft' if metrics.get('soft') else 'binary'}, "
        f"interpreter {metrics.get('interpreter', '?')}",
        "",
    ]
    keys = [key for key in TABLE_KEYS if any(key in row for row in metrics["quantiles"].values())]
    lines.append("| q | " + " | ".join(METRIC_TITLES[key] for key in keys) + " |")
    lines.append("|---" * (len(keys) + 1) + "|")
    for row in metric_rows(metrics):
        values = [_format_value(row.get(key)) for key in keys]
        lines.append(f"| {format_quantile(row['quantile'])} | " + " | ".join(values) + " |")
    latency = metrics.get("latency_ms_per_clip") or {}
    if latency:
        lines += [
            "",
            f"Latency per clip ({latency.get('device', '?')}, batch 1): classifier "
            f"{latency['forward_ms']:.2f} ms, interpretation (map + mask, with its forward) "
            f"{latency['interpretation_total_ms']:.2f} ms, overhead "
            f"{latency['map_mask_overhead_ms']:.2f} ms, listenable audio "
            f"{latency['listenable_ms']:.2f} ms.",
        ]
    overlap = metrics.get("overlap") or {}
    if overlap.get("pairs"):
        lines += [
            "",
            f"Overlap test ({overlap['pairs']} pairs, {overlap['weights'][0]:g} s1 + "
            f"{overlap['weights'][1]:g} s2, q = {overlap['quantile']:g}): the mask keeps "
            f"{100 * overlap['s1_kept']:.1f}% of s1's energy and "
            f"{100 * overlap['s2_kept']:.1f}% of s2's; keeps s1 more in "
            f"{100 * overlap['keeps_s1_rate']:.0f}% of pairs; s1's share of the kept energy "
            f"{100 * overlap['s1_share']:.1f}% (mixture: "
            f"{100 * overlap['s1_share_mixture']:.1f}%); "
            f"predicts s1's class in {100 * overlap['predicts_s1_rate']:.0f}% of pairs.",
        ]
    return "\n".join(lines) + "\n"


def _format_value(value):
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"


def plot_fidelity_faithfulness(path, curves):
    """Save a 2-panel PNG of FID-I and FA against the quantile, one line per method.

    Arguments
    ---------
    path : str or pathlib.Path
        Output PNG.
    curves : dict
        ``{label: metrics.json dict}``.

    Example
    -------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "fidelity.png"
    >>> metrics = {"quantiles": {"0.5": {"fid_i": 0.9, "fa": 0.1},
    ...                          "0.9": {"fid_i": 0.6, "fa": 0.3}}}
    >>> plot_fidelity_faithfulness(path, {"focalnet": metrics})
    >>> path.stat().st_size > 1000
    True
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for label, metrics in curves.items():
        rows = metric_rows(metrics)
        quantiles = [row["quantile"] for row in rows]
        for axis, key in zip(axes, ("fid_i", "fa")):
            axis.plot(quantiles, [row[key] for row in rows], marker="o", label=label)
    for axis, key, note in zip(axes, ("fid_i", "fa"), ("higher is better", "lower is better")):
        axis.set_xlabel("mask quantile q")
        axis.set_ylabel(METRIC_TITLES[key])
        axis.set_title(f"{METRIC_TITLES[key]} ({note})")
        axis.grid(alpha=0.3)
        axis.legend()
    axes[0].set_ylim(-0.02, 1.02)
    figure.savefig(str(path), dpi=90)
    plt.close(figure)


def write_metrics(folder, metrics):
    """Write ``metrics.json``, ``metrics.csv``, ``metrics.md`` and ``fidelity_faithfulness.png``.

    Arguments
    ---------
    folder : str or pathlib.Path
        Output folder (created).
    metrics : dict
        See the module docstring.

    Returns
    -------
    dict
        Paths of the files written.

    Example
    -------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> metrics = {"method": "random", "classifier_folder": "run", "split": "test", "num_clips": 2,
    ...            "accuracy": 0.5, "soft": False,
    ...            "quantiles": {q: {key: 0.5 for key in TABLE_KEYS} for q in ("0.5", "0.9")}}
    >>> sorted(path.name for path in write_metrics(folder, metrics).values())
    ['fidelity_faithfulness.png', 'metrics.csv', 'metrics.json', 'metrics.md']
    >>> (folder / "metrics.csv").read_text().splitlines()[0].split(",")[:3]
    ['quantile', 'fid_i', 'fa']
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": folder / "metrics.json",
        "csv": folder / "metrics.csv",
        "markdown": folder / "metrics.md",
        "plot": folder / "fidelity_faithfulness.png",
    }
    paths["json"].write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    rows = metric_rows(metrics)
    columns = ["quantile"] + [key for key in TABLE_KEYS if key in rows[0]]
    columns += sorted(key for key in rows[0] if key not in columns)
    with open(paths["csv"], "w", newline="", encoding="utf-8") as fout:
        writer = csv.DictWriter(fout, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    paths["markdown"].write_text(markdown_metrics(metrics), encoding="utf-8")
    plot_fidelity_faithfulness(paths["plot"], {metrics["method"]: metrics})
    return paths


def _check_config(hparams):
    required = ("method", "classifier_folder", "output_folder", "interpreter", "quantiles")
    missing = [key for key in required if key not in hparams]
    if missing:
        raise InterpretationError(f"the interpretation YAML lacks {missing}")
    if hparams.get("split", "test") not in SPLITS:
        raise InterpretationError(f"split must be one of {SPLITS}, got '{hparams['split']}'")
    quantiles = list(hparams["quantiles"])
    if not quantiles:
        raise InterpretationError("quantiles is empty")
    for key, values in (
        ("quantiles", quantiles),
        ("example_quantile", [hparams.get("example_quantile", 0.9)]),
        ("overlap_quantile", [hparams.get("overlap_quantile", 0.9)]),
    ):
        for value in values:
            if not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
                raise InterpretationError(f"{key} must be numbers in [0, 1], got {value!r}")
    for key in ("num_examples", "overlap_pairs", "latency_clips"):
        if int(hparams.get(key, 0)) < 0:
            raise InterpretationError(f"{key} must be >= 0, got {hparams[key]}")


def _as_overrides(overrides):
    """Overrides as a dict (SpeechBrain's command-line parser gives a YAML string)."""
    if overrides is None or overrides == "":
        return {}
    if isinstance(overrides, str):
        import yaml

        return yaml.safe_load(overrides) or {}
    return dict(overrides)


def run_interpretation(hparams_file, overrides=None, device="cpu"):
    """Run the whole recipe: evaluate, time, overlap test, examples; write every output.

    Arguments
    ---------
    hparams_file : str or pathlib.Path
        The interpretation YAML (``hparams/interpret_*.yaml``).
    overrides : dict or str or None
        YAML overrides; ``classifier_folder`` is required unless the YAML sets it.
    device : str
        Where to run.

    Returns
    -------
    dict
        The ``metrics.json`` content, plus ``"output_folder"``.

    Example
    -------
    >>> hparams_file = HPARAMS_DIR / "interpret_random.yaml"
    >>> overrides = {"classifier_folder": "/nonexistent"}
    >>> run_interpretation(hparams_file, overrides)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    trained_classifier.TrainedClassifierError: /nonexistent is not a training output folder: ...
    """
    from hyperpyyaml import load_hyperpyyaml, resolve_references

    from trained_classifier import load_trained_classifier

    hparams_file = Path(hparams_file)
    if not hparams_file.is_file():
        raise InterpretationError(f"no interpretation YAML at {hparams_file}")
    overrides = _as_overrides(overrides)
    with open(hparams_file, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)
    _check_config(hparams)
    classifier_folder = Path(str(hparams["classifier_folder"]))
    trained = load_trained_classifier(
        classifier_folder, device=device, overrides=hparams.get("classifier_overrides") or None
    )
    model, frontend, interpreter = trained.model, trained.frontend, hparams["interpreter"]
    if isinstance(interpreter, torch.nn.Module):
        interpreter.to(device).eval()
    if hasattr(interpreter, "reset"):
        interpreter.reset()
    split = hparams.get("split", "test")
    entries = split_entries(trained.manifest(split), split, hparams.get("max_clips"))
    sample_rate = int(trained.hparams["sample_rate"])
    num_samples = int(round(sample_rate * float(trained.hparams["clip_seconds"])))
    soft = bool(hparams.get("soft_mask", False))
    batch_size = int(hparams.get("batch_size", 16))
    context = (
        f"the {model.kind} classifier in {classifier_folder} "
        f"(method '{hparams['method']}', {hparams_file})"
    )
    names = list(trained.class_names)

    logger.info(
        "Interpreting %d %s clips of %s with %s",
        len(entries),
        split,
        classifier_folder,
        type(interpreter).__name__,
    )
    evaluation = evaluate_split(
        model,
        frontend,
        interpreter,
        iterate_batches(entries, batch_size, sample_rate, num_samples),
        hparams["quantiles"],
        soft=soft,
        structure_on=hparams.get("structure_on", "maps"),
        context=context,
    )
    latency = {}
    if int(hparams.get("latency_clips", 0)) > 0:
        _, latency_wavs, _ = next(
            iterate_batches(
                entries[: int(hparams["latency_clips"])], len(entries), sample_rate, num_samples
            )
        )
        latency = measure_latency(
            model,
            frontend,
            interpreter,
            latency_wavs,
            quantile=hparams.get("example_quantile", 0.9),
            soft=soft,
            repeats=hparams.get("latency_repeats", 3),
        )
    output_folder = Path(str(hparams["output_folder"]))
    output_folder.mkdir(parents=True, exist_ok=True)
    with open(hparams_file, encoding="utf-8") as fin:
        resolved = resolve_references(fin, overrides)
    (output_folder / "hyperparams.yaml").write_text(resolved.getvalue(), encoding="utf-8")

    overlap = overlap_test(
        model,
        frontend,
        interpreter,
        entries,
        sample_rate,
        num_samples,
        num_pairs=int(hparams.get("overlap_pairs", 0)),
        weights=hparams.get("overlap_weights", (0.8, 0.2)),
        quantile=hparams.get("overlap_quantile", 0.9),
        soft=soft,
        batch_size=batch_size,
        seed=int(hparams.get("seed", 0)),
        class_names=names,
        context=context,
    )
    overlap_folder = output_folder / "overlap"
    overlap_folder.mkdir(exist_ok=True)
    for index in range(min(int(hparams.get("num_examples", 0)), len(overlap["pairs"]))):
        write_wav(
            overlap_folder / f"pair{index}_mixture.wav", overlap["mixtures"][index], sample_rate
        )
        write_wav(
            overlap_folder / f"pair{index}_interpretation.wav",
            overlap["interpretations"][index],
            sample_rate,
        )
        overlap["pairs"][index]["mixture_wav"] = f"overlap/pair{index}_mixture.wav"
        overlap["pairs"][index]["interpretation_wav"] = f"overlap/pair{index}_interpretation.wav"
    overlap_report = {key: overlap[key] for key in ("weights", "quantile", "summary", "pairs")}
    (output_folder / "overlap.json").write_text(
        json.dumps(overlap_report, indent=2) + "\n", encoding="utf-8"
    )

    examples = write_examples(
        output_folder / "examples",
        model,
        frontend,
        interpreter,
        entries[: int(hparams.get("num_examples", 0))],
        sample_rate,
        num_samples,
        quantile=hparams.get("example_quantile", 0.9),
        soft=soft,
        class_names=names,
        context=context,
    )
    metrics = {
        "method": str(hparams["method"]),
        "interpreter": type(interpreter).__name__,
        "backbone": model.kind,
        "classifier_folder": str(classifier_folder),
        "checkpoint": str(trained.checkpoint),
        "split": split,
        "num_clips": evaluation["num_clips"],
        "accuracy": evaluation["accuracy"],
        "soft": soft,
        "structure_on": hparams.get("structure_on", "maps"),
        "quantiles": evaluation["quantiles"],
        "latency_ms_per_clip": latency,
        "overlap": overlap["summary"],
        "examples": examples,
    }
    if hparams.get("training_cost") is not None:
        metrics["training_cost"] = hparams["training_cost"]
    write_metrics(output_folder, metrics)
    logger.info("Interpretation metrics written to %s", output_folder)
    return dict(metrics, output_folder=str(output_folder))


def main(argv=None):
    """Command line: ``interpret.py HPARAMS.yaml --classifier_folder DIR [overrides]``.

    Errors in the input (not a training folder, interpreter not matching the
    backbone, missing split, bad YAML values) exit with status 1 and a one-line
    message instead of a traceback.
    """
    import speechbrain as sb

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0].startswith("-"):
        sys.exit(
            "usage: python recipes/interpret.py hparams/interpret_focalnet.yaml "
            "--classifier_folder RESULTS/focalnet_cpu/1986 [--split valid] [--output_folder DIR]"
        )
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    try:
        metrics = run_interpretation(
            hparams_file, overrides, device=run_opts.get("device") or "cpu"
        )
    except (ValueError, FileNotFoundError) as error:
        logger.debug("interpretation failed", exc_info=True)
        sys.exit(f"interpret.py: error: {error}")
    print(markdown_metrics(metrics))
    print(f"Outputs in {metrics['output_folder']}")
    return metrics


if __name__ == "__main__":
    main()

"""One evaluator for every interpretation method: maps -> quantile masks -> metrics per clip.

Used by ``recipes/interpret.py``, :mod:`focalnet_lobes.interpretation.comparison` and ``recipes/cross_validate.py``.
For every clip of a split the interpreter runs once (logits of the full input and
a map on the input grid, see :class:`~focalnet_lobes.interpretation.interpret.MapInterpreter`);
the map is thresholded at each quantile q (:func:`~focalnet_lobes.interpretation.interpret.quantile_mask`)
and every metric of :mod:`focalnet_lobes.interpretation.metrics` is computed **per clip**
(:func:`evaluate_split` keeps the per-clip values with clip ids, labels and
predictions, so that methods can be paired clip by clip and confidence intervals
computed over clips, :mod:`focalnet_lobes.statistics`). Also here: the overlap
test (the paper's overlapping sources, with an equal-RMS variant), latency, the
listenable examples and the report writers (JSON, CSV, markdown, plots).

Definitions of the overlap test: pairs (s1, s2) of clips of different classes
are mixed as x = w1 s1 + w2 s2 and x is interpreted; the mask M at the overlap
quantile is brought to the linear STFT grid and compared with the power spectra
P_k = |STFT(w_k s_k)|^2 (:func:`source_attribution`): ``s1_kept`` = sum M^2 P_1 /
sum P_1 (``s2_kept`` likewise), ``keeps`` = the source kept relatively more,
``s1_share`` = sum M^2 P_1 / (sum M^2 P_1 + sum M^2 P_2) against
``s1_share_mixture`` (no mask). With ``equal_rms=True`` the two sources are first
scaled to the same RMS, so that "keeps s1" cannot simply mean "keeps the loud one".

Authors
 * focalnet-audio contributors
"""

import csv
import json
import logging
import math
import re
import statistics
import time
from pathlib import Path

import torch

from focalnet_lobes.data.audio import fix_length, load_audio
from focalnet_lobes.data.features import PCEN_MASKING_CAVEAT
from focalnet_lobes.interpretation.interpret import quantile_mask
from focalnet_lobes.interpretation.metrics import (
    METRIC_KEYS,
    MetricAccumulator,
    gini_index,
    interpretation_metrics,
    map_entropy,
)
from focalnet_lobes.interpretation.stats import (
    N_RESAMPLES,
    SEED,
    bootstrap_ci,
    mcnemar_exact,
    paired_difference,
)

logger = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
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

    Clips are read with :func:`~focalnet_lobes.data.audio.load_audio` (mono, resampled,
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
    >>> from focalnet_lobes.interpretation.interpret import ModulationInterpreter
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    >>> features = torch.rand(1, 1, 2, 2)
    >>> run_interpreter(ModulationInterpreter(), model, features, "demo")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    focalnet_lobes.interpretation.evaluation.InterpretationError: ModulationInterpreter cannot interpret demo: ...
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
    n_resamples=N_RESAMPLES,
    seed=SEED,
    structure_cell=(16, 16),
):
    """Accuracy and interpretation metrics at every quantile, per clip and with 95% CIs.

    For each batch the interpreter runs once (logits of the full input, maps on the
    input grid); for each q the mask ``quantile_mask(maps, q, soft)`` is evaluated
    with :func:`~focalnet_lobes.interpretation.metrics.interpretation_metrics` on every clip. The
    per-clip values are kept (with clip ids, labels and predictions) and each
    metric's mean over clips gets a 95% bootstrap CI over clips
    (:func:`focalnet_lobes.interpretation.stats.bootstrap_ci`); so does the accuracy.

    Arguments
    ---------
    model : torch.nn.Module
        The classifier (B, 1, T, F) -> (B, K), in eval mode.
    frontend : focalnet_lobes.data.features.SpectrogramFrontend or None
        Waveforms -> features; ``None``: the batches hold features (B, 1, T, F).
    interpreter : callable
        ``interpreter(model, features) -> (logits, maps)``.
    batches : iterable
        ``(ids, wavs or features, labels)`` as from :func:`iterate_batches`; or
        unlabelled features tensors (or tuples/lists whose first item is one, or
        dicts with ``"features"``): clips numbered in order, label -1, accuracy
        ``None``. Model and interpreter run in eval mode; their modes are restored.
    quantiles : sequence of float
        Mask quantiles in [0, 1].
    soft : bool
        Soft masks instead of binary.
    structure_on : str
        Sparsity and complexity of the ``"maps"`` on the input grid, of each q's
        ``"masks"``, or of the maps averaged over ``"cells"`` of ``structure_cell``
        (frames, bins): every method then on the same coarse grid, so that the
        figures compare the maps, not their upsampling kernels (a FocalNet map
        bilinearly upsampled from 16 x 16 cells against a per-bin map).
    context : str
        What is interpreted, for error messages.
    structure_cell : tuple of int
        Cell size for ``structure_on="cells"`` (partial cells at the edges are
        averaged over the bins they hold).
    n_resamples : int
        Bootstrap resamples of the CIs (0: no CI).
    seed : int
        Seed of the bootstrap.

    Returns
    -------
    dict
        ``num_clips``, ``accuracy`` (float), ``accuracy_ci`` (dict of
        :func:`~focalnet_lobes.interpretation.stats.bootstrap_ci`), ``quantiles``
        (``{format_quantile(q): {metric: mean, "clips": int}}``), ``ci``
        (``{format_quantile(q): {metric: ci dict}}``) and ``per_clip``
        (``{"ids", "labels", "predicted": lists, "quantiles": {q: {metric: list}}}``,
        see :func:`write_per_clip`).

    Raises
    ------
    InterpretationError
        No clip, a bad ``structure_on`` or quantile, or an interpreter that does not
        fit the backbone.

    Example
    -------
    >>> from focalnet_lobes.data.features import SpectrogramFrontend
    >>> from focalnet_lobes.interpretation.interpret import RandomInterpreter
    >>> frontend = SpectrogramFrontend(n_mels=8)
    >>> model = torch.nn.Sequential(
    ...     torch.nn.AdaptiveAvgPool2d((1, 8)), torch.nn.Flatten(), torch.nn.Linear(8, 3)
    ... ).eval()
    >>> batches = [(["a", "b"], torch.randn(2, 1600), torch.tensor([0, 2]))]
    >>> result = evaluate_split(model, frontend, RandomInterpreter(), batches, [0.5, 0.9])
    >>> result["num_clips"], sorted(result["quantiles"]), 0 <= result["accuracy"] <= 1
    (2, ['0.5', '0.9'], True)
    >>> round(result["quantiles"]["0.5"]["mask_area"], 1), result["per_clip"]["ids"]
    (0.5, ['a', 'b'])
    >>> ci = result["ci"]["0.9"]["fid_i"]
    >>> ci["low"] <= result["quantiles"]["0.9"]["fid_i"] <= ci["high"]
    True
    """
    if structure_on not in ("maps", "masks", "cells"):
        raise InterpretationError(
            f"structure_on must be 'maps', 'masks' or 'cells', got '{structure_on}'"
        )
    cell = tuple(int(c) for c in structure_cell)
    if len(cell) != 2 or min(cell) < 1:
        raise InterpretationError(f"structure_cell must be two positive ints, got {structure_cell}")
    quantiles = [float(q) for q in quantiles]
    for q in quantiles:
        if not 0.0 <= q <= 1.0:
            raise InterpretationError(f"quantiles must be in [0, 1], got {q}")
    device = _device_of(model)
    accumulators = {q: MetricAccumulator() for q in quantiles}
    ids, labels_seen, predicted = [], [], []
    modules = [m for m in (model, interpreter) if isinstance(m, torch.nn.Module)]
    modes = [m.training for m in modules]
    try:
        for module in modules:
            module.eval()
        for batch in batches:
            batch_ids, inputs, labels = _unpack_batch(batch, len(ids))
            with torch.no_grad():
                inputs = inputs.to(device)
                features = inputs if frontend is None else frontend(inputs)
            logits, maps = run_interpreter(interpreter, model, features, context)
            ids += [str(clip_id) for clip_id in batch_ids]
            labels_seen += [int(label) for label in labels]
            predicted += logits.argmax(dim=1).cpu().tolist()
            cells = None
            if structure_on == "cells":
                pooled = torch.nn.functional.avg_pool2d(maps, cell, cell, ceil_mode=True)
                cells = {"sparsity": gini_index(pooled), "complexity": map_entropy(pooled)}
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
                if cells is not None:
                    scores.update(cells)
                accumulators[q].append(scores)
    finally:
        for module, mode in zip(modules, modes):
            module.train(mode)
    count = len(ids)
    if count == 0:
        raise InterpretationError("no clips to evaluate")
    labelled = all(label >= 0 for label in labels_seen)
    correct = [int(p == y) for p, y in zip(predicted, labels_seen)]
    table, intervals, per_clip = {}, {}, {}
    for q, accumulator in accumulators.items():
        key = format_quantile(q)
        summary = accumulator.summarize()
        summary["clips"] = len(accumulator)
        table[key] = summary
        values = {
            name: [float(v) for v in tensor.double().tolist()]
            for name, tensor in accumulator.per_clip().items()
            if name not in MetricAccumulator.NOT_AVERAGED
        }
        per_clip[key] = values
        if n_resamples:
            intervals[key] = {
                name: bootstrap_ci(column, n_resamples=n_resamples, seed=seed)
                for name, column in values.items()
                if name in TABLE_KEYS
            }
    return {
        "num_clips": count,
        "accuracy": sum(correct) / count if labelled else None,
        "accuracy_ci": bootstrap_ci(correct, n_resamples=n_resamples, seed=seed)
        if n_resamples and labelled
        else None,
        "quantiles": table,
        "ci": intervals,
        "per_clip": {
            "ids": ids,
            "labels": labels_seen,
            "predicted": predicted,
            "quantiles": per_clip,
        },
    }


def _unpack_batch(batch, offset):
    """``(ids, inputs, labels)`` of a batch; unlabelled batches get ids from ``offset`` and -1."""
    if (
        isinstance(batch, (tuple, list))
        and len(batch) == 3
        and isinstance(batch[1], torch.Tensor)
        and not isinstance(batch[0], torch.Tensor)
    ):
        return batch
    if isinstance(batch, torch.Tensor):
        inputs = batch
    elif isinstance(batch, dict) and isinstance(batch.get("features"), torch.Tensor):
        inputs = batch["features"]
    elif isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor):
        inputs = batch[0]
    else:
        raise InterpretationError(
            "each batch must be (ids, inputs, labels), an inputs tensor, a tuple/list whose "
            f"first item is one, or a dict with 'features'; got {type(batch).__name__}"
        )
    size = inputs.shape[0]
    return [str(offset + i) for i in range(size)], inputs, torch.full((size,), -1)


def write_per_clip(folder, per_clip):
    """Write ``per_clip.json`` and ``per_clip.csv``: every metric of every clip at every q.

    ``per_clip.json`` is ``{"ids": [N str], "labels": [N int], "predicted": [N int],
    "quantiles": {q: {metric: [N float]}}}`` (clips in evaluation order);
    ``per_clip.csv`` has one row per clip x quantile: ``id, label, predicted,
    correct, quantile`` then every metric. Methods evaluated on the same split are
    paired by clip id (:func:`load_per_clip`, :func:`paired_comparison`).

    Arguments
    ---------
    folder : str or pathlib.Path
        Output folder (created).
    per_clip : dict
        ``evaluate_split(...)["per_clip"]``.

    Returns
    -------
    dict
        Paths of the files written (``json``, ``csv``).

    Example
    -------
    >>> import tempfile
    >>> per_clip = {"ids": ["a", "b"], "labels": [0, 1], "predicted": [0, 0],
    ...             "quantiles": {"0.9": {"fid_i": [1.0, 0.0]}}}
    >>> paths = write_per_clip(tempfile.mkdtemp(), per_clip)
    >>> paths["csv"].read_text().splitlines()[:2]
    ['id,label,predicted,correct,quantile,fid_i', 'a,0,0,1,0.9,1.0']
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / "per_clip.json", "csv": folder / "per_clip.csv"}
    paths["json"].write_text(json.dumps(per_clip) + "\n", encoding="utf-8")
    quantile_keys = sorted(per_clip["quantiles"], key=float)
    metric_names = sorted({name for key in quantile_keys for name in per_clip["quantiles"][key]})
    metric_names = [n for n in TABLE_KEYS if n in metric_names] + [
        n for n in metric_names if n not in TABLE_KEYS
    ]
    with open(paths["csv"], "w", newline="", encoding="utf-8") as fout:
        writer = csv.writer(fout)
        writer.writerow(["id", "label", "predicted", "correct", "quantile"] + metric_names)
        for key in quantile_keys:
            columns = per_clip["quantiles"][key]
            for index, clip_id in enumerate(per_clip["ids"]):
                label, guess = per_clip["labels"][index], per_clip["predicted"][index]
                writer.writerow(
                    [clip_id, label, guess, int(label == guess), key]
                    + [columns[name][index] if name in columns else "" for name in metric_names]
                )
    return paths


def configured_interpreter(yaml_text):
    """The class name an interpretation YAML's ``interpreter: !new:...`` builds, or None.

    ``metrics.json`` records the interpreter's class name (``"interpreter"``); comparing
    it with this tells whether a finished interpretation was made by the map a YAML
    gives now. ``!apply:`` loaders (PIQ, L-MAC) give None.

    Example
    -------
    >>> configured_interpreter("interpreter: !new:focalnet_lobes.x.EnergyInterpreter  # note\\n")
    'EnergyInterpreter'
    >>> configured_interpreter("interpreter: !apply:focalnet_lobes.x.load\\n") is None
    True
    """
    found = re.search(r"^interpreter:\s*!new:[\w.]*?(\w+)\s*(#.*)?$", yaml_text, re.MULTILINE)
    return found.group(1) if found else None


def load_per_clip(path):
    """Read a ``per_clip.json`` (a file, or the interpretation folder holding it).

    Arguments
    ---------
    path : str or pathlib.Path
        ``per_clip.json`` or its folder.

    Returns
    -------
    dict
        As written by :func:`write_per_clip`.

    Raises
    ------
    InterpretationError
        Missing file or not the per-clip schema (one line, naming the file).

    Example
    -------
    >>> load_per_clip("/nonexistent")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    focalnet_lobes.interpretation.evaluation.InterpretationError: no per_clip.json at /nonexistent...
    """
    path = Path(path)
    if path.is_dir() or path.suffix != ".json":
        path = path / "per_clip.json"
    if not path.is_file():
        raise InterpretationError(
            f"no per_clip.json at {path}: rerun recipes/interpret.py (older results keep means only)"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InterpretationError(f"{path} is not valid JSON: {error}") from error
    missing = [key for key in ("ids", "labels", "predicted", "quantiles") if key not in data]
    if missing:
        raise InterpretationError(f"{path} is not a per_clip.json: it lacks {missing}")
    return data


def paired_comparison(first, second, keys=None, n_resamples=N_RESAMPLES, seed=SEED):
    """Paired differences ``first - second`` of two per-clip results, on their common clips.

    Clips are matched by id; every metric at every quantile both hold gets
    :func:`focalnet_lobes.interpretation.stats.paired_difference` (mean, 95% CI, ``significant``
    when the CI excludes 0). When the two results come from different classifiers
    (their predictions differ) the accuracies are compared with the exact McNemar
    test (:func:`focalnet_lobes.interpretation.stats.mcnemar_exact`).

    Arguments
    ---------
    first, second : dict
        Per-clip results (:func:`load_per_clip`, or ``evaluate_split(...)["per_clip"]``).
    keys : sequence of str or None
        Metrics to compare (default: every metric of :data:`TABLE_KEYS` both hold).
    n_resamples, seed :
        Of the bootstrap.

    Returns
    -------
    dict
        ``{"clips": int, "quantiles": {q: {metric: difference dict}}, "accuracy":
        McNemar dict}``.

    Raises
    ------
    InterpretationError
        No clip in common.

    Example
    -------
    >>> a = {"ids": ["x", "y", "z"], "labels": [0, 1, 1], "predicted": [0, 1, 0],
    ...      "quantiles": {"0.9": {"fid_i": [1.0, 1.0, 1.0]}}}
    >>> b = dict(a, quantiles={"0.9": {"fid_i": [0.0, 0.0, 0.0]}})
    >>> result = paired_comparison(a, b)
    >>> result["clips"], result["quantiles"]["0.9"]["fid_i"]["mean"]
    (3, 1.0)
    """
    index_second = {clip_id: i for i, clip_id in enumerate(second["ids"])}
    common = [(i, index_second[c]) for i, c in enumerate(first["ids"]) if c in index_second]
    if not common:
        raise InterpretationError("the two results have no clip in common (different splits?)")
    result = {"clips": len(common), "quantiles": {}}
    for key in sorted(set(first["quantiles"]) & set(second["quantiles"]), key=float):
        columns1, columns2 = first["quantiles"][key], second["quantiles"][key]
        names = [n for n in (keys or TABLE_KEYS) if n in columns1 and n in columns2]
        result["quantiles"][key] = {
            name: paired_difference(
                [columns1[name][i] for i, _ in common],
                [columns2[name][j] for _, j in common],
                n_resamples=n_resamples,
                seed=seed,
            )
            for name in names
        }
    right1 = [first["predicted"][i] == first["labels"][i] for i, _ in common]
    right2 = [second["predicted"][j] == second["labels"][j] for _, j in common]
    result["accuracy"] = mcnemar_exact(right1, right2)
    return result


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
    frontend : focalnet_lobes.data.features.SpectrogramFrontend
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
    >>> from focalnet_lobes.data.features import SpectrogramFrontend
    >>> from focalnet_lobes.interpretation.interpret import RandomInterpreter
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
    (:meth:`~focalnet_lobes.data.features.SpectrogramFrontend.mask_to_linear`) and
    P_k = |STFT(source_k)|^2: ``s1_kept`` = sum M^2 P_1 / sum P_1, ``s2_kept``
    likewise, ``s1_share`` = sum M^2 P_1 / (sum M^2 P_1 + sum M^2 P_2) and
    ``s1_share_mixture`` = sum P_1 / (sum P_1 + sum P_2). A silent source has a
    kept fraction of 0; shares of an all-silent pair are 0.5.

    Arguments
    ---------
    frontend : focalnet_lobes.data.features.SpectrogramFrontend
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
    >>> from focalnet_lobes.data.features import SpectrogramFrontend
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
    equal_rms=False,
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
    equal_rms : bool
        Scale s2 to the RMS of s1 before weighting (an all-silent s2 is left as is),
        so that with equal weights neither source is the louder one.

    Returns
    -------
    dict
        ``{"weights", "quantile", "pairs": [per-pair dict], "summary": dict,
        "mixtures": (P, samples) tensor, "interpretations": (P, samples) tensor}``
        (the tensors are not meant for JSON).

    Example
    -------
    >>> import tempfile, soundfile
    >>> from focalnet_lobes.data.features import SpectrogramFrontend
    >>> from focalnet_lobes.interpretation.interpret import RandomInterpreter
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
        if equal_rms:
            rms1 = first.pow(2).mean(dim=1, keepdim=True).sqrt()
            rms2 = second.pow(2).mean(dim=1, keepdim=True).sqrt()
            second = second * torch.where(rms2 > 0, rms1 / rms2.clamp_min(1e-12), 1.0)
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
    summary = {
        "pairs": len(records),
        "weights": weights,
        "quantile": float(quantile),
        "equal_rms": bool(equal_rms),
    }
    for key in ("s1_kept", "s2_kept", "s1_share", "s1_share_mixture"):
        summary[key] = _mean([record[key] for record in records])
    summary["keeps_s1_rate"] = _mean([record["keeps"] == "s1" for record in records])
    summary["predicts_s1_rate"] = _mean([record["predicts_s1"] for record in records])
    summary["predicts_s2_rate"] = _mean([record["predicts_s2"] for record in records])
    decided = [r for r in records if r["predicts_s1"] or r["predicts_s2"]]
    summary["keeps_predicted_rate"] = _mean(
        [r["keeps"] == ("s1" if r["predicts_s1"] else "s2") for r in decided]
    )
    if records:
        summary["keeps_s1_ci"] = bootstrap_ci([r["keeps"] == "s1" for r in records])
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


def write_overlap(folder, overlap, sample_rate, num_wavs=0, name="overlap"):
    """Write ``<name>.json`` (summary and pairs) and the first pairs' WAVs of an overlap test.

    Arguments
    ---------
    folder : str or pathlib.Path
        The interpretation folder; the WAVs go to ``<folder>/<name>/``.
    overlap : dict
        From :func:`overlap_test` (its ``pairs`` get ``mixture_wav`` and
        ``interpretation_wav`` for the pairs written).
    sample_rate : int
        Of the WAVs.
    num_wavs : int
        Pairs whose mixture and interpretation are written as WAV.
    name : str
        Base name of the JSON file and the WAV folder.

    Returns
    -------
    pathlib.Path
        The JSON file.

    Example
    -------
    >>> import tempfile
    >>> overlap = {"weights": [0.8, 0.2], "quantile": 0.9, "summary": {"pairs": 1},
    ...            "pairs": [{"s1": "a"}], "mixtures": torch.zeros(1, 8),
    ...            "interpretations": torch.zeros(1, 8)}
    >>> path = write_overlap(tempfile.mkdtemp(), overlap, 16000, num_wavs=1)
    >>> json.loads(path.read_text())["pairs"][0]["mixture_wav"]
    'overlap/pair0_mixture.wav'
    """
    folder = Path(folder)
    wav_folder = folder / name
    wav_folder.mkdir(parents=True, exist_ok=True)
    for index in range(min(int(num_wavs), len(overlap["pairs"]))):
        for kind, key in (("mixture", "mixtures"), ("interpretation", "interpretations")):
            write_wav(wav_folder / f"pair{index}_{kind}.wav", overlap[key][index], sample_rate)
            overlap["pairs"][index][f"{kind}_wav"] = f"{name}/pair{index}_{kind}.wav"
    report = {key: overlap[key] for key in ("weights", "quantile", "summary", "pairs")}
    path = folder / f"{name}.json"
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return path


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
        ("Spectrogram features", features, "magma"),
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
    >>> from focalnet_lobes.data.features import SpectrogramFrontend
    >>> from focalnet_lobes.interpretation.interpret import RandomInterpreter
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
        f"accuracy {100 * metrics['accuracy']:.2f}%"
        + _ci_suffix(metrics.get("accuracy_ci"), scale=100, digits=1),
        f"- masks: {'soft' if metrics.get('soft') else 'binary'}, "
        f"interpreter {metrics.get('interpreter', '?')}",
    ]
    if metrics.get("compression", "log1p") != "log1p":
        lines.append(f"- features: {metrics['compression']} ({PCEN_MASKING_CAVEAT})")
    elif metrics.get("log1p_scale", 1.0) != 1.0:
        lines.append(f"- features: log(1 + C E), C = {metrics['log1p_scale']:g} (`log1p_scale`)")
    if metrics.get("freq_scale", "mel") != "mel":
        lines.append(f"- bands: {metrics['freq_scale']} frequency scale (`freq_scale`)")
    lines.append("")
    keys = [key for key in TABLE_KEYS if any(key in row for row in metrics["quantiles"].values())]
    lines += markdown_table_header(["q"], keys)
    intervals = metrics.get("ci") or {}
    for row in metric_rows(metrics):
        row_ci = intervals.get(format_quantile(row["quantile"]), {})
        values = [format_value(row.get(key)) + _ci_suffix(row_ci.get(key)) for key in keys]
        lines.append(f"| {format_quantile(row['quantile'])} | " + " | ".join(values) + " |")
    if intervals:
        boot = metrics.get("bootstrap") or {}
        lines += [
            "",
            f"[low, high]: {100 * boot.get('confidence', 0.95):g}% bootstrap CI over clips "
            f"({boot.get('method', 'BCa')}, {boot.get('n_resamples', '?')} resamples, "
            f"seed {boot.get('seed', '?')}).",
        ]
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
    for overlap in (metrics.get("overlap") or {}, metrics.get("overlap_equal_rms") or {}):
        if not overlap.get("pairs"):
            continue
        lines += [
            "",
            f"Overlap test{' at equal RMS' if overlap.get('equal_rms') else ''} "
            f"({overlap['pairs']} pairs, {overlap['weights'][0]:g} s1 + "
            f"{overlap['weights'][1]:g} s2, q = {overlap['quantile']:g}): the mask keeps "
            f"{100 * overlap['s1_kept']:.1f}% of s1's energy and "
            f"{100 * overlap['s2_kept']:.1f}% of s2's; keeps s1 more in "
            f"{100 * overlap['keeps_s1_rate']:.0f}% of pairs"
            + _ci_suffix(overlap.get("keeps_s1_ci"), scale=100, digits=0)
            + "; s1's share of the kept energy "
            f"{100 * overlap['s1_share']:.1f}% (mixture: "
            f"{100 * overlap['s1_share_mixture']:.1f}%); "
            f"predicts s1's class in {100 * overlap['predicts_s1_rate']:.0f}% of pairs.",
        ]
    return "\n".join(lines) + "\n"


def difference_cell(difference):
    """``mean [low, high]`` of a paired difference, bold when its CI excludes 0.

    The table cell of every paired difference (``compare.py``, ``cross_validate.py``,
    ``compare_cv.py``). The three numbers print with 3 decimals, or, when one of
    them is not 0 but would print as 0.000, all three with as many decimals as
    show that one's first two significant digits (``-0.01100 [-0.02200, -0.00040]``),
    so that a CI bound never hides its sign. Bold when the CI excludes 0
    (``significant``) and the mean is at least 0.0005 in size: a systematic
    difference below that (e.g. mask areas that differ by quantile ties) is not
    marked, however narrow its CI.

    Arguments
    ---------
    difference : dict
        ``mean``, ``low``, ``high`` (the 95% CI) and ``significant``.

    Returns
    -------
    str

    Example
    -------
    >>> difference_cell({"mean": 0.1, "low": 0.05, "high": 0.2, "significant": True})
    '**+0.100 [+0.050, +0.200]**'
    >>> difference_cell({"mean": -0.011, "low": -0.022, "high": -0.0004, "significant": True})
    '**-0.01100 [-0.02200, -0.00040]**'
    >>> difference_cell({"mean": 2e-5, "low": 1e-5, "high": 3e-5, "significant": True})
    '+0.000020 [+0.000010, +0.000030]'
    >>> difference_cell({"mean": 0.0, "low": -0.01, "high": 0.01, "significant": False})
    '+0.000 [-0.010, +0.010]'
    """
    values = [difference[key] for key in ("mean", "low", "high")]
    hidden = [abs(value) for value in values if value != 0 and round(value, 3) == 0]
    decimals = 3 if not hidden else min(12, 1 - math.floor(math.log10(min(hidden))))
    mean, low, high = (f"{value:+.{decimals}f}" for value in values)
    text = f"{mean} [{low}, {high}]"
    return f"**{text}**" if difference["significant"] and abs(values[0]) >= 0.0005 else text


def markdown_table_header(first_columns, keys):
    """The two header lines of a markdown metric table: leading columns, then one per metric.

    Arguments
    ---------
    first_columns : sequence of str
        Titles of the leading columns (at least one: ``["q"]``, ``["Pair", "Clips"]``).
    keys : sequence of str
        Metric keys of :data:`METRIC_TITLES`, in column order.

    Returns
    -------
    list of str
        The title line and the separator line.

    Raises
    ------
    KeyError
        A key without a title in :data:`METRIC_TITLES`.

    Example
    -------
    >>> title, separator = markdown_table_header(["Pair", "Clips"], ["fid_i", "ai"])
    >>> print(title)
    | Pair | Clips | FID-I | AI (%) |
    >>> print(separator)
    |---|---|---|---|
    """
    return [
        "| " + " | ".join(first_columns) + " | "
        + " | ".join(METRIC_TITLES[key] for key in keys) + " |",
        "|---" * (len(first_columns) + len(keys)) + "|",
    ]


def _ci_suffix(ci, scale=1.0, digits=None):
    """`` [low, high]`` of a CI dict (empty for None), scaled (e.g. 100 for percent)."""
    if not ci:
        return ""
    if digits is None:
        return f" [{format_value(scale * ci['low'])}, {format_value(scale * ci['high'])}]"
    return f" [{scale * ci['low']:.{digits}f}, {scale * ci['high']:.{digits}f}]"


def format_value(value):
    """A metric value for a table: 3 decimals below 10, else 1; ``-`` for None.

    Example
    -------
    >>> format_value(0.12345), format_value(42.0), format_value(None)
    ('0.123', '42.0', '-')
    """
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



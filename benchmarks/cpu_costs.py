"""CPU costs of the classifiers side by side: size, speed, memory, interpretation, training time.

For every model given (by default the two CPU recipes, ``hparams/focalnet_cpu.yaml``
and ``hparams/vit_cpu.yaml``, built from the YAML with random weights; or trained
classifiers, ``--classifier_folder``, loaded by :mod:`focalnet_lobes.inference.trained`),
on random 5 s clips (80000 samples at 16 kHz) with ``--threads`` torch threads:

1. **parameters** of the classifier (normalisation + backbone + head);
2. **training throughput** in clips/s: one AdamW step (forward, cross entropy,
   backward, ``optimizer.step``) at batch 16 on the front end's features, in
   float32 and under ``torch.autocast("cpu", dtype=torch.bfloat16)``; median of
   ``--repeats`` steps after ``--warmup`` steps;
3. **inference latency** per clip: front end + classifier at batch 1, ``no_grad``,
   eval mode, float32 and bf16; median of ``3 * --repeats`` runs;
4. **peak memory** (RSS) of two training steps and of two inferences, each in a
   fresh subprocess that loads the pickled model, prepares its inputs, resets its
   peak RSS and counts the peak above that baseline (Linux ``VmHWM``: a
   subprocess's ``ru_maxrss`` is floored by its parent's RSS; see
   :func:`peak_rss_bytes`), so no measurement inherits another one's memory;
5. **interpretation latency** per clip (float32, batch 1, features given): the
   by-design map (:class:`~focalnet_lobes.interpretation.interpret.ModulationInterpreter` for a
   FocalNet, :class:`~focalnet_lobes.interpretation.interpret.AttentionInterpreter` for a ViT)
   plus :func:`~focalnet_lobes.interpretation.interpret.quantile_mask` at ``--quantile``, versus
   :class:`~focalnet_lobes.interpretation.interpret.GradientSaliencyInterpreter` (the post-hoc
   reference) plus the mask, versus the classifier's forward alone; with
   ``--piq_folder``, PIQ (``recipes/train_piq.py``, loaded by :func:`focalnet_lobes.interpretation.piq.load_piq_interpreter`) too, on the model it fits;
6. **wall time of full training runs** (``--training_folder``): parsed from each
   recipe's ``log.txt`` ("Going into epoch 1" to the last end-of-epoch
   checkpoint, or to the "Test accuracy" line after it; see
   :func:`focalnet_lobes.training.logs.parse_training_log`), with the number of epochs, the median epoch and
   PIQ's ``piq_training.json`` seconds when present.

The timed loops alternate the models (and precisions / methods) within each
round, so load drifts on a shared CPU affect them all alike. One table per group
is printed, each with a ratio column per model versus the first one (e.g.
``vit_cpu / focalnet_cpu``); everything is also written as JSON.

Usage (a default run: about 2-3 minutes on 2 idle cores; much longer on a busy CPU,
which the script warns about; ``--repeats`` trades time for precision)::

    python benchmarks/cpu_costs.py
    python benchmarks/cpu_costs.py --repeats 10 --out /tmp/cpu_costs.json
    python benchmarks/cpu_costs.py \\
        --classifier_folder results/focalnet_cpu/1986 results/vit_cpu/1986 \\
        --piq_folder results/piq_focalnet_cpu/1986 \\
        --training_folder results/focalnet_cpu/1986 results/vit_cpu/1986

JSON (``benchmarks/results/cpu_costs.json`` unless ``--out``): ``benchmark``,
``command``, ``settings``, ``environment``, ``models`` (one entry per model:
``name``, ``source``, ``kind``, ``parameters``, ``training_throughput``,
``inference_latency``, ``peak_memory``, ``interpretation_latency``),
``summary`` (the flat numbers of the tables, per model), ``ratios`` (per other
model, ``"<model> / <first>"``: the summary divided by the first model's),
``piq`` (PIQ folders and the model each was timed on), ``training_runs`` (one
entry per ``--training_folder``), ``training_run_ratios`` and ``tables``.
"""

import argparse
import contextlib
import copy
import gc
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # the library of this checkout (never recipes/)
    sys.path.insert(0, str(REPO))

from focalnet_lobes.training.logs import parse_training_log  # noqa: E402
from focalnet_lobes.interpretation.interpret import (  # noqa: E402
    AttentionInterpreter,
    GradientSaliencyInterpreter,
    ModulationInterpreter,
    quantile_mask,
)

DEFAULT_HPARAMS = ("hparams/focalnet_cpu.yaml", "hparams/vit_cpu.yaml")
DEFAULT_OUT = REPO / "benchmarks" / "results" / "cpu_costs.json"
PRECISIONS = ("fp32", "bf16")
MEMORY_MODES = ("train", "inference")
YAML_OVERRIDES = {"data_folder": "unused", "esc10": True}
PROBE_MARKER = "CPU_COSTS_MEMORY_PROBE "
LATENCY_ROUNDS_PER_REPEAT = 3
MIB = 1024.0 * 1024.0



def precision_context(precision):
    """The autocast context of a precision: ``"fp32"`` (none) or ``"bf16"``.

    Arguments
    ---------
    precision : str
        ``"fp32"`` or ``"bf16"``.

    Returns
    -------
    contextlib.AbstractContextManager

    Example
    -------
    >>> with precision_context("bf16"):
    ...     product = torch.ones(2, 2) @ torch.ones(2, 2)
    >>> product.dtype
    torch.bfloat16
    >>> with precision_context("fp32"):
    ...     (torch.ones(2, 2) @ torch.ones(2, 2)).dtype
    torch.float32
    """
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    raise ValueError(f"unknown precision '{precision}', expected one of {PRECISIONS}")


@dataclass
class BenchmarkModel:
    """A classifier under test, with its front end and where it comes from.

    Attributes
    ----------
    name : str
        Label in the tables (the YAML's stem, or the run's experiment name).
    source : dict
        ``{"type": "hparams" | "classifier_folder", "path": str}``: enough for a
        subprocess to rebuild it (:func:`build_model`).
    model : torch.nn.Module
        The :class:`~focalnet_lobes.models.classifier.SpectrogramClassifier`.
    frontend : torch.nn.Module
        Waveforms (B, samples) -> features (B, 1, T, F).
    sample_rate : int
        Sample rate the front end expects.
    hparams : dict
        The hyperparameters it was built from.
    piq : list
        ``(folder, interpreter)`` of the PIQ interpreters timed on this model.

    Example
    -------
    >>> from focalnet_lobes.data.features import SpectrogramFrontend
    >>> bundle = BenchmarkModel(
    ...     "tiny", {"type": "hparams", "path": "tiny.yaml"}, torch.nn.Identity(),
    ...     SpectrogramFrontend(n_mels=8), 16000, {},
    ... )
    >>> bundle.kind, bundle.parameters()
    ('other', {'total': 0, 'trainable': 0})
    """

    name: str
    source: dict
    model: torch.nn.Module
    frontend: torch.nn.Module
    sample_rate: int
    hparams: dict
    piq: list = field(default_factory=list)

    @property
    def kind(self):
        """``"focalnet"``, ``"vit"`` or ``"other"`` (``model.kind`` when it has one)."""
        return getattr(self.model, "kind", "other")

    def parameters(self):
        """``{"total": ..., "trainable": ...}`` parameter counts of the classifier."""
        total = sum(p.numel() for p in self.model.parameters())
        trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        return {"total": total, "trainable": trainable}

    def by_design_interpreter(self):
        """The by-design interpreter of the backbone (``None`` for other backbones)."""
        if self.kind == "focalnet":
            return ModulationInterpreter()
        if self.kind == "vit":
            return AttentionInterpreter()
        return None


def build_model(source, workdir=None):
    """Rebuild a classifier from a YAML (random weights) or a training output folder.

    A YAML is loaded with ``load_hyperpyyaml(f, {"data_folder": "unused",
    "esc10": True})`` plus ``output_folder`` redirected to ``workdir`` (so that
    building does not create ``results/`` folders); a folder with
    :func:`focalnet_lobes.inference.trained.load_trained_classifier` (best checkpoint).

    Arguments
    ---------
    source : dict
        ``{"type": "hparams" | "classifier_folder", "path": str}``.
    workdir : str or None
        Output folder for a YAML's side effects (a temporary one when ``None``).

    Returns
    -------
    BenchmarkModel

    Example
    -------
    >>> bundle = build_model({"type": "hparams", "path": str(REPO / "hparams/vit_cpu.yaml")})
    >>> bundle.name, bundle.kind, bundle.sample_rate
    ('vit_cpu', 'vit', 16000)
    """
    path = Path(source["path"])
    if source["type"] == "hparams":
        from hyperpyyaml import load_hyperpyyaml

        if not path.is_file():
            raise ValueError(f"hparams file {path} does not exist")
        workdir = workdir or tempfile.mkdtemp(prefix="cpu_costs_")
        overrides = dict(YAML_OVERRIDES, output_folder=str(workdir))
        with open(path, encoding="utf-8") as fin:
            hparams = load_hyperpyyaml(fin, overrides)
        for key in ("model", "compute_features"):
            if key not in hparams:
                raise ValueError(f"{path} defines no '{key}': not a classification recipe YAML")
        return BenchmarkModel(
            path.stem,
            {"type": "hparams", "path": str(path)},
            hparams["model"],
            hparams["compute_features"],
            int(hparams.get("sample_rate", 16000)),
            hparams,
        )
    if source["type"] == "classifier_folder":
        from focalnet_lobes.inference.trained import load_trained_classifier

        trained = load_trained_classifier(path)
        hparams = trained.hparams
        name = str(hparams.get("experiment_name") or path.name)
        return BenchmarkModel(
            name,
            {"type": "classifier_folder", "path": str(path)},
            trained.model,
            trained.frontend,
            int(hparams.get("sample_rate", 16000)),
            hparams,
        )
    raise ValueError(f"unknown model source type {source['type']!r}")


def random_clips(batch_size, num_samples, seed=0):
    """Reproducible random audio (B, samples), peak around 0.3, as a stand-in for clips.

    Example
    -------
    >>> clips = random_clips(2, 8000)
    >>> clips.shape, bool(torch.equal(clips, random_clips(2, 8000)))
    (torch.Size([2, 8000]), True)
    """
    generator = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(batch_size, num_samples, generator=generator)


def _timed_ms(function):
    start = time.perf_counter()
    function()
    return 1000.0 * (time.perf_counter() - start)


def num_classes_of(bundle, features):
    """Number of classes of a classifier (one eval forward on ``features[:1]``).

    Example
    -------
    >>> bundle = BenchmarkModel(
    ...     "lin", {}, torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(6, 4)),
    ...     torch.nn.Identity(), 16000, {},
    ... )
    >>> num_classes_of(bundle, torch.rand(2, 1, 2, 3))
    4
    """
    was_training = bundle.model.training
    bundle.model.eval()
    with torch.no_grad():
        classes = int(bundle.model(features[:1]).shape[-1])
    bundle.model.train(was_training)
    return classes


def training_step(model, optimizer, features, labels, precision):
    """One training step: forward (autocast for bf16), cross entropy, backward, AdamW step.

    Example
    -------
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(6, 3))
    >>> optimizer = torch.optim.AdamW(model.parameters())
    >>> features, labels = torch.rand(4, 1, 2, 3), torch.tensor([0, 1, 2, 0])
    >>> loss = training_step(model, optimizer, features, labels, "bf16")
    >>> loss > 0
    True
    """
    optimizer.zero_grad(set_to_none=True)
    with precision_context(precision):
        logits = model(features)
    loss = F.cross_entropy(logits.float(), labels)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def make_optimizer(model, hparams):
    """AdamW with the recipe's ``lr`` and ``weight_decay`` (1e-3 / 0.05 when absent).

    Example
    -------
    >>> optimizer = make_optimizer(torch.nn.Linear(2, 2), {"lr": 0.01})
    >>> type(optimizer).__name__, optimizer.param_groups[0]["lr"]
    ('AdamW', 0.01)
    """
    return torch.optim.AdamW(
        model.parameters(),
        lr=float(hparams.get("lr", 1e-3)),
        weight_decay=float(hparams.get("weight_decay", 0.05)),
    )


def measure_training_throughput(bundles, batch_size, num_samples, repeats, warmup):
    """Clips/s of a training step at ``batch_size``, per model and precision.

    Each model is trained on a copy (its weights stay as loaded) on the features
    of ``batch_size`` random clips with random labels. Rounds alternate models and
    precisions; the first ``warmup`` rounds are not timed.

    Arguments
    ---------
    bundles : list of BenchmarkModel
    batch_size : int
    num_samples : int
        Samples per clip.
    repeats : int
        Timed steps per model and precision (median).
    warmup : int
        Untimed rounds first.

    Returns
    -------
    dict
        ``{name: {precision: {"clips_per_s", "step_ms_median", "step_ms"}}}``.

    Example
    -------
    >>> from focalnet_lobes.data.features import SpectrogramFrontend
    >>> model = torch.nn.Sequential(
    ...     torch.nn.AdaptiveAvgPool2d((1, 8)), torch.nn.Flatten(), torch.nn.Linear(8, 3)
    ... )
    >>> bundle = BenchmarkModel("lin", {}, model, SpectrogramFrontend(n_mels=8), 16000, {})
    >>> result = measure_training_throughput([bundle], 2, 1600, repeats=1, warmup=0)
    >>> sorted(result["lin"]), result["lin"]["bf16"]["clips_per_s"] > 0
    (['bf16', 'fp32'], True)
    """
    states = []
    for index, bundle in enumerate(bundles):
        with torch.no_grad():
            features = bundle.frontend.eval()(random_clips(batch_size, num_samples, seed=index))
        model = copy.deepcopy(bundle.model).train()
        classes = num_classes_of(bundle, features)
        labels = torch.randint(classes, (batch_size,), generator=torch.Generator().manual_seed(1))
        optimizers = {p: make_optimizer(model, bundle.hparams) for p in PRECISIONS}
        states.append((bundle.name, model, features, labels, optimizers))
    samples = {name: {p: [] for p in PRECISIONS} for name, *_ in states}
    for round_index in range(warmup + repeats):
        for name, model, features, labels, optimizers in states:
            for precision in PRECISIONS:
                elapsed = _timed_ms(
                    lambda: training_step(model, optimizers[precision], features, labels, precision)
                )
                if round_index >= warmup:
                    samples[name][precision].append(elapsed)
        _progress(f"training steps: round {round_index + 1}/{warmup + repeats}")
    result = {}
    for name, per_precision in samples.items():
        result[name] = {}
        for precision, values in per_precision.items():
            median = statistics.median(values)
            result[name][precision] = {
                "clips_per_s": 1000.0 * batch_size / median,
                "step_ms_median": median,
                "step_ms": values,
            }
    return result


def measure_inference_latency(bundles, num_samples, rounds, warmup):
    """Milliseconds per clip of front end + classifier at batch 1 (eval, ``no_grad``).

    Arguments
    ---------
    bundles : list of BenchmarkModel
    num_samples : int
        Samples per clip.
    rounds : int
        Timed runs per model and precision (median).
    warmup : int
        Untimed rounds first.

    Returns
    -------
    dict
        ``{name: {precision: {"ms_median", "ms"}}}``.

    Example
    -------
    >>> from focalnet_lobes.data.features import SpectrogramFrontend
    >>> model = torch.nn.Sequential(
    ...     torch.nn.AdaptiveAvgPool2d((1, 8)), torch.nn.Flatten(), torch.nn.Linear(8, 3)
    ... )
    >>> bundle = BenchmarkModel("lin", {}, model, SpectrogramFrontend(n_mels=8), 16000, {})
    >>> result = measure_inference_latency([bundle], 1600, rounds=2, warmup=1)
    >>> len(result["lin"]["fp32"]["ms"]), result["lin"]["bf16"]["ms_median"] > 0
    (2, True)
    """
    clip = random_clips(1, num_samples, seed=7)
    samples = {bundle.name: {p: [] for p in PRECISIONS} for bundle in bundles}

    def infer(bundle, precision):
        with torch.no_grad(), precision_context(precision):
            bundle.model(bundle.frontend(clip)).float()

    for bundle in bundles:
        bundle.model.eval()
        bundle.frontend.eval()
    for round_index in range(warmup + rounds):
        for bundle in bundles:
            for precision in PRECISIONS:
                elapsed = _timed_ms(lambda: infer(bundle, precision))
                if round_index >= warmup:
                    samples[bundle.name][precision].append(elapsed)
    _progress("inference latency done")
    return {
        name: {
            precision: {"ms_median": statistics.median(values), "ms": values}
            for precision, values in per_precision.items()
        }
        for name, per_precision in samples.items()
    }


def _interpretation_methods(bundle, quantile):
    """name -> zero-argument callable of one batch-1 pass, for features set later."""
    methods = {"forward": lambda model, features: model(features)}

    def with_mask(interpreter):
        def run(model, features):
            _, maps = interpreter(model, features)
            return quantile_mask(maps.detach(), quantile)

        return run

    by_design = bundle.by_design_interpreter()
    if by_design is not None:
        methods["by_design"] = with_mask(by_design)
    methods["saliency"] = with_mask(GradientSaliencyInterpreter())
    if bundle.piq:
        methods["piq"] = with_mask(bundle.piq[0][1])
    return methods


def measure_interpretation_latency(bundles, num_samples, rounds, warmup, quantile=0.9):
    """Milliseconds per clip of each interpretation (map + quantile mask) and of a forward.

    Float32, eval mode, ``no_grad`` (the saliency enables gradients inside), batch
    1, features of one random clip given (the front end is common to all).

    Arguments
    ---------
    bundles : list of BenchmarkModel
    num_samples : int
        Samples per clip.
    rounds : int
        Timed runs per model and method (median).
    warmup : int
        Untimed rounds first.
    quantile : float
        Quantile of the binary mask.

    Returns
    -------
    dict
        ``{name: {"by_design_method", "quantile", "forward_ms", "by_design_ms",
        "saliency_ms", "piq_ms", "piq_folder", "saliency_over_by_design",
        "by_design_over_forward", "by_design_overhead_ms", "piq_over_by_design",
        "samples_ms"}}``; entries that do not apply are ``None``.

    Example
    -------
    >>> import focalnet_lobes
    >>> from focalnet_lobes.models.classifier import SpectrogramClassifier
    >>> from focalnet_lobes.data.features import SpectrogramFrontend
    >>> from focalnet_lobes.models.heads import LinearHead
    >>> backbone = focalnet_lobes.create_model("vit_audio_small", num_classes=0, in_chans=1)
    >>> model = SpectrogramClassifier(backbone, LinearHead(backbone.num_features, 3))
    >>> bundle = BenchmarkModel("vit", {}, model, SpectrogramFrontend(n_mels=64), 16000, {})
    >>> result = measure_interpretation_latency([bundle], 16000, rounds=1, warmup=0)["vit"]
    >>> result["by_design_method"], result["piq_ms"], result["saliency_ms"] > 0
    ('attention', None, True)
    """
    clip = random_clips(1, num_samples, seed=11)
    states = []
    for bundle in bundles:
        bundle.model.eval()
        with torch.no_grad():
            features = bundle.frontend.eval()(clip)
        states.append((bundle, features, _interpretation_methods(bundle, quantile)))
    samples = {bundle.name: {method: [] for method in methods} for bundle, _, methods in states}
    for round_index in range(warmup + rounds):
        for bundle, features, methods in states:
            for method, run in methods.items():
                with torch.no_grad():
                    elapsed = _timed_ms(lambda: run(bundle.model, features))
                if round_index >= warmup:
                    samples[bundle.name][method].append(elapsed)
    _progress("interpretation latency done")
    result = {}
    for bundle, _, _ in states:
        medians = {m: statistics.median(v) for m, v in samples[bundle.name].items()}
        forward = medians["forward"]
        by_design = medians.get("by_design")
        piq = medians.get("piq")
        by_design_interpreter = bundle.by_design_interpreter()
        result[bundle.name] = {
            "by_design_method": by_design_interpreter.name if by_design_interpreter else None,
            "quantile": quantile,
            "forward_ms": forward,
            "by_design_ms": by_design,
            "saliency_ms": medians["saliency"],
            "piq_ms": piq,
            "piq_folder": str(bundle.piq[0][0]) if bundle.piq else None,
            "saliency_over_by_design": _ratio(medians["saliency"], by_design),
            "by_design_over_forward": _ratio(by_design, forward),
            "by_design_overhead_ms": None if by_design is None else by_design - forward,
            "piq_over_by_design": _ratio(piq, by_design),
            "samples_ms": samples[bundle.name],
        }
    return result


def _ratio(numerator, denominator):
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def peak_rss_bytes():
    """Peak resident set size of this process, in bytes, and where it was read.

    Linux: ``VmHWM`` of ``/proc/self/status``, the high-water mark of this
    process's own memory map. ``getrusage(RUSAGE_SELF).ru_maxrss`` (the fallback
    elsewhere) is not used on Linux because the kernel floors it, for a process
    started by fork + exec, with the parent's RSS at the exec: every probe
    started from this (large) benchmark process would read the parent's size.

    Returns
    -------
    tuple
        ``(bytes, "VmHWM" | "ru_maxrss")``.

    Example
    -------
    >>> peak, source = peak_rss_bytes()
    >>> peak > 0, source in ("VmHWM", "ru_maxrss")
    (True, True)
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fin:
            for line in fin:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024, "VmHWM"
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (peak if sys.platform == "darwin" else peak * 1024), "ru_maxrss"


def reset_peak_rss():
    """Reset this process's peak RSS (``VmHWM``) to its current RSS, where Linux allows it.

    Writes ``5`` to ``/proc/self/clear_refs`` (Linux >= 4.0), so that a transient
    peak before a measurement (imports, model construction) does not hide it.

    Returns
    -------
    bool
        Whether the peak was reset.

    Example
    -------
    >>> isinstance(reset_peak_rss(), bool)
    True
    """
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fout:
            fout.write("5")
        return True
    except OSError:
        return False


def save_for_probe(bundle, path):
    """Write what :func:`memory_probe` needs (model, front end, optimizer settings) to ``path``.

    The whole modules are pickled (``torch.save``), so a probe loads exactly the
    benchmarked model (random or trained weights) without rebuilding a YAML.

    Example
    -------
    >>> import tempfile
    >>> from focalnet_lobes.data.features import SpectrogramFrontend
    >>> bundle = BenchmarkModel(
    ...     "lin", {}, torch.nn.Linear(2, 2), SpectrogramFrontend(n_mels=8), 16000, {"lr": 0.1}
    ... )
    >>> path = Path(tempfile.mkdtemp()) / "lin.pt"
    >>> save_for_probe(bundle, path)
    >>> sorted(torch.load(path, weights_only=False))
    ['frontend', 'model', 'optimizer']
    """
    torch.save(
        {
            "model": bundle.model,
            "frontend": bundle.frontend,
            "optimizer": {
                key: bundle.hparams[key] for key in ("lr", "weight_decay") if key in bundle.hparams
            },
        },
        path,
    )


def memory_probe(spec):
    """Peak RSS of one training or inference measurement, in this (fresh) process.

    Loads the model saved by :func:`save_for_probe` and prepares its inputs
    (random clips; for training, their features and random labels), resets the
    peak RSS to the current RSS (:func:`reset_peak_rss`, Linux), records the
    baseline, then runs two training steps (batch ``batch_size``, features
    given, AdamW) or two inferences (batch 1, front end + classifier,
    ``no_grad``), and reads the peak again (:func:`peak_rss_bytes`). Run it in a
    subprocess (:func:`measure_peak_memory`) so no other measurement's
    allocations count.

    Arguments
    ---------
    spec : dict
        ``model_file``, ``mode`` (``"train"`` / ``"inference"``), ``precision``,
        ``batch_size``, ``num_samples``, ``threads``.

    Returns
    -------
    dict
        ``baseline_mib``, ``peak_mib``, ``delta_mib`` (peak - baseline),
        ``peak_source``, ``peak_reset`` (whether the peak could be reset first),
        and the spec.

    Example
    -------
    >>> import tempfile
    >>> from focalnet_lobes.data.features import SpectrogramFrontend
    >>> model = torch.nn.Sequential(
    ...     torch.nn.AdaptiveAvgPool2d((1, 8)), torch.nn.Flatten(), torch.nn.Linear(8, 3)
    ... )
    >>> bundle = BenchmarkModel("lin", {}, model, SpectrogramFrontend(n_mels=8), 16000, {})
    >>> path = Path(tempfile.mkdtemp()) / "lin.pt"
    >>> save_for_probe(bundle, path)
    >>> spec = {"model_file": str(path), "mode": "train", "precision": "fp32",
    ...         "batch_size": 2, "num_samples": 1600, "threads": 1}
    >>> probe = memory_probe(spec)
    >>> probe["delta_mib"] >= 0, probe["peak_mib"] >= probe["baseline_mib"]
    (True, True)
    """
    mode, precision = spec["mode"], spec["precision"]
    if mode not in MEMORY_MODES:
        raise ValueError(f"unknown memory mode '{mode}', expected one of {MEMORY_MODES}")
    torch.set_num_threads(int(spec["threads"]))
    saved = torch.load(spec["model_file"], weights_only=False)
    bundle = BenchmarkModel("probe", {}, saved["model"], saved["frontend"], 0, saved["optimizer"])
    bundle.frontend.eval()
    if mode == "train":
        with torch.no_grad():
            features = bundle.frontend(random_clips(spec["batch_size"], spec["num_samples"]))
        classes = num_classes_of(bundle, features)
        labels = torch.randint(classes, (spec["batch_size"],))
        model = bundle.model.train()
        optimizer = make_optimizer(model, bundle.hparams)

        def run():
            training_step(model, optimizer, features, labels, precision)

    else:
        clip = random_clips(1, spec["num_samples"])
        model = bundle.model.eval()

        def run():
            with torch.no_grad(), precision_context(precision):
                model(bundle.frontend(clip)).float()

    gc.collect()
    peak_reset = reset_peak_rss()
    baseline, source = peak_rss_bytes()
    for _ in range(2):
        run()
    peak, _ = peak_rss_bytes()
    return dict(
        spec,
        baseline_mib=baseline / MIB,
        peak_mib=peak / MIB,
        delta_mib=(peak - baseline) / MIB,
        peak_source=source,
        peak_reset=peak_reset,
    )


def measure_peak_memory(bundles, batch_size, num_samples, threads, jobs=2):
    """Peak RSS of training and inference, each in a fresh subprocess (:func:`memory_probe`).

    Arguments
    ---------
    bundles : list of BenchmarkModel
    batch_size : int
        Batch of the training step.
    num_samples : int
        Samples per clip.
    threads : int
        Torch threads in each subprocess.
    jobs : int
        Subprocesses run at the same time (the peak is per process, so running
        them side by side changes their time, not their memory).

    Returns
    -------
    dict
        ``{name: {"train_fp32": probe, "train_bf16": ..., "inference_fp32": ...,
        "inference_bf16": ...}}`` with probe dicts as :func:`memory_probe` returns.

    Example
    -------
    >>> measure_peak_memory([], 2, 16000, threads=1)  # no model, no probe
    {}
    """
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    results = {bundle.name: {} for bundle in bundles}
    with tempfile.TemporaryDirectory(prefix="cpu_costs_memory_") as workdir:
        pending = []
        for index, bundle in enumerate(bundles):
            model_file = Path(workdir) / f"model_{index}.pt"
            save_for_probe(bundle, model_file)
            for mode in MEMORY_MODES:
                for precision in PRECISIONS:
                    spec = {
                        "model_file": str(model_file),
                        "mode": mode,
                        "precision": precision,
                        "batch_size": batch_size if mode == "train" else 1,
                        "num_samples": num_samples,
                        "threads": threads,
                    }
                    pending.append((bundle.name, f"{mode}_{precision}", spec))
        running = []
        while pending or running:
            while pending and len(running) < max(1, jobs):
                name, key, spec = pending.pop(0)
                script = str(Path(__file__).resolve())
                command = [sys.executable, script, "--memory_probe", json.dumps(spec)]
                process = subprocess.Popen(
                    command,
                    cwd=REPO,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                running.append((name, key, process))
            name, key, process = running.pop(0)
            stdout, stderr = process.communicate()
            lines = [line for line in stdout.splitlines() if line.startswith(PROBE_MARKER)]
            if process.returncode != 0 or not lines:
                raise RuntimeError(
                    f"memory probe {key} of {name} failed (exit code {process.returncode}):\n"
                    f"{stderr[-3000:]}"
                )
            probe = json.loads(lines[-1][len(PROBE_MARKER):])
            probe.pop("model_file")
            results[name][key] = probe
            _progress(f"peak memory: {name} {key} done")
    return results


def summarize_training_folder(folder):
    """:func:`parse_training_log` of ``folder/log.txt`` plus the planned epochs and PIQ's cost.

    Arguments
    ---------
    folder : str or pathlib.Path
        Output folder of ``recipes/train.py`` (or ``recipes/train_piq.py``).

    Returns
    -------
    dict
        The log summary, ``folder``, ``name`` (the folder's name, with its
        parent's for a seed folder: ``focalnet_cpu/1986``), ``experiment_name``
        (of its ``hyperparams.yaml``, ``None`` if unknown), ``planned_epochs`` (the
        ``number_of_epochs`` of its ``hyperparams.yaml``, ``None`` if unknown),
        ``complete`` (all planned epochs done, ``None`` if unknown) and
        ``piq_training`` (``piq_training.json``, ``None`` when absent).

    Example
    -------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "log.txt").write_text(
    ...     "2024-05-01 10:00:00,000 - sb - INFO - Going into epoch 1\\n"
    ...     "2024-05-01 10:00:09,000 - sb - INFO - Saved an end-of-epoch checkpoint in x\\n"
    ... )
    >>> _ = (folder / "hyperparams.yaml").write_text("number_of_epochs: 2\\n")
    >>> _ = (folder / "piq_training.json").write_text('{"seconds": 12.5}')
    >>> summary = summarize_training_folder(folder)
    >>> summary["wall_seconds"], summary["complete"], summary["piq_training"]["seconds"]
    (9.0, False, 12.5)
    """
    folder = Path(folder)
    log_file = folder / "log.txt"
    if not log_file.is_file():
        raise ValueError(f"{log_file} is missing: expected the output folder of a recipe run")
    try:
        summary = parse_training_log(log_file.read_text(encoding="utf-8", errors="replace"))
    except ValueError as error:
        raise ValueError(f"{log_file}: {error}") from None
    hparams_file = folder / "hyperparams.yaml"
    hparams_text = (
        hparams_file.read_text(encoding="utf-8", errors="replace") if hparams_file.is_file() else ""
    )
    match = re.search(r"^number_of_epochs:\s*(\d+)\s*(#.*)?$", hparams_text, re.MULTILINE)
    planned = int(match.group(1)) if match else None
    match = re.search(r"^experiment_name:\s*(\S+)", hparams_text, re.MULTILINE)
    experiment = match.group(1) if match else None
    piq_file = folder / "piq_training.json"
    piq = json.loads(piq_file.read_text(encoding="utf-8")) if piq_file.is_file() else None
    name = f"{folder.parent.name}/{folder.name}" if folder.name.isdigit() else folder.name
    return dict(
        summary,
        folder=str(folder),
        name=name,
        experiment_name=experiment,
        planned_epochs=planned,
        complete=None if planned is None else summary["epochs"] >= planned,
        piq_training=piq,
    )


def _format_value(value, spec):
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return format(value, spec)


def format_table(title, names, rows, ratio_names=None):
    """A plain-text table: one row per quantity, one column per model, then ratios.

    Arguments
    ---------
    title : str
        First line.
    names : list of str
        Column names (models); ratios are each later column over the first.
    rows : list of tuple
        ``(label, values, format_spec)``; ``values`` has one entry per name
        (number, string or ``None``). A string row gets no ratio.
    ratio_names : list of str or None
        Headers of the ratio columns (default ``"<name> / <first>"``).

    Returns
    -------
    str

    Example
    -------
    >>> print(format_table("Speed", ["a", "b"], [("clips/s", [2.0, 3.0], ".1f")]))
    Speed
    quantity     a     b  b / a
    ---------------------------
    clips/s    2.0   3.0   1.50
    """
    ratio_names = ratio_names or [f"{name} / {names[0]}" for name in names[1:]]
    header = ["quantity", *names, *ratio_names]
    body = []
    for label, values, spec in rows:
        cells = [label] + [_format_value(v, spec) for v in values]
        for value in values[1:]:
            numeric = not isinstance(value, str) and not isinstance(values[0], str)
            cells.append(_format_value(_ratio(value, values[0]), ".2f") if numeric else "")
        body.append(cells)
    widths = [max(len(row[i]) for row in [header] + body) for i in range(len(header))]
    widths = [max(width, 4) for width in widths]

    def line(cells):
        first = cells[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:])]
        return "  ".join([first, *rest]).rstrip()

    text_lines = [title, line(header)]
    text_lines.append("-" * len(text_lines[-1]))
    text_lines.extend(line(cells) for cells in body)
    return "\n".join(text_lines)


def summarize_model(entry):
    """The flat numbers of a model entry that the tables show and the ratios compare.

    Example
    -------
    >>> entry = {
    ...     "parameters": {"total": 10, "trainable": 10},
    ...     "training_throughput": {"fp32": {"clips_per_s": 2.0}, "bf16": {"clips_per_s": 6.0}},
    ... }
    >>> summarize_model(entry)["train_bf16_speedup"]
    3.0
    """
    summary = {"parameters": entry["parameters"]["total"]}
    throughput = entry.get("training_throughput") or {}
    for precision in PRECISIONS:
        if precision in throughput:
            summary[f"train_{precision}_clips_per_s"] = throughput[precision]["clips_per_s"]
    if all(p in throughput for p in PRECISIONS):
        summary["train_bf16_speedup"] = (
            throughput["bf16"]["clips_per_s"] / throughput["fp32"]["clips_per_s"]
        )
    latency = entry.get("inference_latency") or {}
    for precision in PRECISIONS:
        if precision in latency:
            summary[f"inference_{precision}_ms"] = latency[precision]["ms_median"]
    if all(p in latency for p in PRECISIONS):
        summary["inference_bf16_speedup"] = (
            latency["fp32"]["ms_median"] / latency["bf16"]["ms_median"]
        )
    for key, probe in (entry.get("peak_memory") or {}).items():
        summary[f"memory_{key}_mib"] = probe["delta_mib"]
    interpretation = entry.get("interpretation_latency") or {}
    for key in (
        "forward_ms",
        "by_design_ms",
        "saliency_ms",
        "piq_ms",
        "saliency_over_by_design",
        "by_design_over_forward",
        "by_design_overhead_ms",
        "piq_over_by_design",
    ):
        if key in interpretation:
            summary[f"interpretation_{key}"] = interpretation[key]
    return summary


def model_tables(entries, settings):
    """The tables of the per-model measurement groups, as ``{group: text}``.

    Example
    -------
    >>> entries = [
    ...     {"name": "a", "parameters": {"total": 2_000_000, "trainable": 2_000_000}},
    ...     {"name": "b", "parameters": {"total": 3_000_000, "trainable": 3_000_000}},
    ... ]
    >>> print(model_tables(entries, {})["parameters"])
    Parameters
    quantity            a      b  b / a
    -----------------------------------
    parameters (M)  2.000  3.000   1.50
    trainable (M)   2.000  3.000   1.50
    """
    names = [entry["name"] for entry in entries]
    summaries = [summarize_model(entry) for entry in entries]

    def values(key, scale=1.0):
        return [None if s.get(key) is None else s[key] * scale for s in summaries]

    tables = {
        "parameters": format_table(
            "Parameters",
            names,
            [
                ("parameters (M)", [e["parameters"]["total"] / 1e6 for e in entries], ".3f"),
                ("trainable (M)", [e["parameters"]["trainable"] / 1e6 for e in entries], ".3f"),
            ],
        )
    }
    if "train_fp32_clips_per_s" in summaries[0]:
        tables["training_throughput"] = format_table(
            f"Training throughput, clips/s (batch {settings['batch_size']}, forward + backward "
            f"+ AdamW on features, median of {settings['repeats']} steps; higher is better)",
            names,
            [
                ("fp32 clips/s", values("train_fp32_clips_per_s"), ".2f"),
                ("bf16 clips/s", values("train_bf16_clips_per_s"), ".2f"),
                ("bf16 speed-up (x)", values("train_bf16_speedup"), ".2f"),
            ],
        )
    if "inference_fp32_ms" in summaries[0]:
        tables["inference_latency"] = format_table(
            f"Inference latency per {settings['clip_seconds']:g} s clip, ms (batch 1, front end "
            f"+ classifier, median of {settings['latency_rounds']}; lower is better)",
            names,
            [
                ("fp32 ms", values("inference_fp32_ms"), ".1f"),
                ("bf16 ms", values("inference_bf16_ms"), ".1f"),
                ("bf16 speed-up (x)", values("inference_bf16_speedup"), ".2f"),
            ],
        )
    if any(key.startswith("memory_") for key in summaries[0]):
        tables["peak_memory"] = format_table(
            "Peak memory above the baseline (imports + model + inputs), MiB of RSS, one fresh "
            f"process each (training: 2 steps at batch {settings['batch_size']}; inference: "
            "batch 1)",
            names,
            [
                (f"{mode} {precision}", values(f"memory_{mode}_{precision}_mib"), ".0f")
                for mode in MEMORY_MODES
                for precision in PRECISIONS
            ],
        )
    if "interpretation_forward_ms" in summaries[0]:
        methods = [
            (e.get("interpretation_latency") or {}).get("by_design_method") or "-" for e in entries
        ]
        rows = [
            ("by-design method", methods, ""),
            ("forward only ms", values("interpretation_forward_ms"), ".1f"),
            ("by-design map + mask ms", values("interpretation_by_design_ms"), ".1f"),
            ("saliency map + mask ms", values("interpretation_saliency_ms"), ".1f"),
        ]
        if any(s.get("interpretation_piq_ms") is not None for s in summaries):
            rows.append(("PIQ map + mask ms", values("interpretation_piq_ms"), ".1f"))
        rows += [
            ("saliency / by-design", values("interpretation_saliency_over_by_design"), ".2f"),
            ("by-design / forward", values("interpretation_by_design_over_forward"), ".2f"),
            ("by-design overhead ms", values("interpretation_by_design_overhead_ms"), ".1f"),
        ]
        if any(s.get("interpretation_piq_ms") is not None for s in summaries):
            rows.append(("PIQ / by-design", values("interpretation_piq_over_by_design"), ".2f"))
        tables["interpretation_latency"] = format_table(
            f"Interpretation latency per clip, ms (fp32, batch 1, features given, mask at "
            f"q={settings.get('quantile', 0.9)}, median of {settings.get('latency_rounds')})",
            names,
            rows,
        )
    return tables


def training_runs_table(runs):
    """The table of the training runs (wall time, epochs, PIQ cost).

    Example
    -------
    >>> runs = [
    ...     {"name": "a", "epochs": 2, "wall_seconds": 600.0, "training_seconds": 590.0,
    ...      "epoch_seconds_median": 295.0, "test_accuracy": 90.0, "piq_training": None},
    ... ]
    >>> training_runs_table(runs).splitlines()[4].split()
    ['wall', 'time', '(min)', '10.0']
    """
    names = [run["name"] for run in runs]
    if len(set(names)) < len(names):
        names = [f"{name} ({index + 1})" for index, name in enumerate(names)]

    def column(key, scale=None):
        return [
            None if run.get(key) is None else run[key] * scale if scale else run[key]
            for run in runs
        ]

    rows = [
        ("epochs", column("epochs"), "d"),
        ("wall time (min)", column("wall_seconds", 1 / 60), ".1f"),
        ("to last checkpoint (min)", column("training_seconds", 1 / 60), ".1f"),
        ("median epoch (s)", column("epoch_seconds_median"), ".1f"),
        ("test accuracy (%)", column("test_accuracy"), ".2f"),
    ]
    piq_seconds = [(run.get("piq_training") or {}).get("seconds") for run in runs]
    if any(value is not None for value in piq_seconds):
        rows.append(("PIQ training (s)", piq_seconds, ".1f"))
    return format_table("Training runs (from log.txt)", names, rows)


def attach_piq(bundles, piq_folders, features_of):
    """Load each PIQ interpreter and attach it to the model it was trained for.

    A PIQ folder goes to the model built from the classifier folder it was trained
    on (``classifier_folder`` of its ``hyperparams.yaml``); otherwise to the first
    model whose number of classes and last-stage channels fit PIQ's network (e.g.
    the random-weight YAML model of the same recipe).

    Arguments
    ---------
    bundles : list of BenchmarkModel
    piq_folders : list of str
        Output folders of ``recipes/train_piq.py``.
    features_of : callable
        ``bundle -> features`` (batch 1) to count a model's classes.

    Returns
    -------
    list of dict
        Per folder: ``folder``, ``model`` (name or ``None``), ``matched_by``
        (``"classifier_folder"``, ``"shapes"`` or ``None``), ``trained_on``,
        ``parameters``, ``training_cost`` (``piq_training.json`` or ``None``).

    Example
    -------
    >>> attach_piq([], [], lambda bundle: None)
    []
    """
    from focalnet_lobes.interpretation.piq import load_piq_interpreter

    from focalnet_lobes.interpretation.piq import representation_channels

    report = []
    for folder in piq_folders:
        interpreter = load_piq_interpreter(folder)
        network = interpreter.network
        hparams_text = (Path(folder) / "hyperparams.yaml").read_text(encoding="utf-8")
        match = re.search(r"^classifier_folder:\s*(\S+)", hparams_text, re.MULTILINE)
        trained_on = match.group(1) if match else None
        chosen, matched_by = None, None
        for bundle in bundles:
            if (
                trained_on is not None
                and bundle.source["type"] == "classifier_folder"
                and Path(bundle.source["path"]).resolve() == Path(trained_on).resolve()
            ):
                chosen, matched_by = bundle, "classifier_folder"
                break
        if chosen is None:
            for bundle in bundles:
                if bundle.kind not in ("focalnet", "vit"):
                    continue
                fits = (
                    representation_channels(bundle.model) == network.in_channels
                    and num_classes_of(bundle, features_of(bundle)) == network.num_classes
                )
                if fits:
                    chosen, matched_by = bundle, "shapes"
                    break
        if chosen is not None:
            chosen.piq.append((folder, interpreter))
        cost_file = Path(folder) / "piq_training.json"
        cost = json.loads(cost_file.read_text(encoding="utf-8")) if cost_file.is_file() else None
        report.append(
            {
                "folder": str(folder),
                "model": chosen.name if chosen else None,
                "matched_by": matched_by,
                "trained_on": trained_on,
                "parameters": sum(p.numel() for p in interpreter.parameters()),
                "training_cost": cost,
            }
        )
        if chosen is None:
            print(
                f"warning: PIQ in {folder} fits none of the models "
                f"({network.num_classes} classes, {network.in_channels} channels); not timed"
            )
    return report


def _progress(message):
    print(f"  [{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _cpu_flags():
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    match = re.search(r"^flags\s*:\s*(.*)$", text, re.MULTILINE)
    flags = set(match.group(1).split()) if match else set()
    return sorted(flags & {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"})


def parse_args(argv=None):
    """Command-line options (see the module docstring).

    Example
    -------
    >>> args = parse_args(["--repeats", "2"])
    >>> args.repeats, args.threads, [Path(p).name for p in args.hparams]
    (2, 2, ['focalnet_cpu.yaml', 'vit_cpu.yaml'])
    """
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--hparams", nargs="+", help=f"model YAMLs (default: {DEFAULT_HPARAMS})")
    parser.add_argument(
        "--classifier_folder", nargs="+", default=[], help="trained classifiers (recipes/train.py)"
    )
    parser.add_argument(
        "--piq_folder", nargs="+", default=[], help="trained PIQ (recipes/train_piq.py)"
    )
    parser.add_argument(
        "--training_folder", nargs="+", default=[], help="recipe output folders with log.txt"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--repeats", type=int, default=5, help="timed training steps (median)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    parser.add_argument("--batch_size", type=int, default=16, help="training batch")
    parser.add_argument("--clip_seconds", type=float, default=5.0, help="clip duration")
    parser.add_argument("--quantile", type=float, default=0.9, help="mask quantile")
    parser.add_argument("--memory_jobs", type=int, default=2, help="memory probes side by side")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file to write")
    parser.add_argument("--memory_probe", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_probe is not None:
        return args
    if min(args.threads, args.repeats, args.batch_size, args.memory_jobs) < 1 or args.warmup < 0:
        parser.error(
            "--threads, --repeats, --batch_size and --memory_jobs must be >= 1, --warmup >= 0"
        )
    if args.clip_seconds <= 0:
        parser.error(f"--clip_seconds must be > 0, got {args.clip_seconds}")
    if not 0.0 <= args.quantile <= 1.0:
        parser.error(f"--quantile must be in [0, 1], got {args.quantile}")
    if args.hparams is None:
        args.hparams = [] if args.classifier_folder else [str(REPO / p) for p in DEFAULT_HPARAMS]
    for path in args.hparams:
        if not Path(path).is_file():
            parser.error(f"--hparams {path} does not exist")
    for option, folders in (
        ("--classifier_folder", args.classifier_folder),
        ("--piq_folder", args.piq_folder),
        ("--training_folder", args.training_folder),
    ):
        for folder in folders:
            if not Path(folder).is_dir():
                parser.error(f"{option} {folder} is not a folder")
    return args


def busy_cpu_warning(load_average, cpu_count, threads):
    """A warning when other work already keeps the CPUs busy (``None`` otherwise).

    With more runnable threads than cores, OpenMP's synchronisation waits for
    descheduled threads: small (batch 1) passes then slow down by an order of
    magnitude, so the timings say more about the load than about the models.

    Example
    -------
    >>> busy_cpu_warning([3.9, 4.0, 4.1], 2, 2)[:28]
    'load average 3.9 on 2 CPUs +'
    >>> busy_cpu_warning([0.1, 0.1, 0.1], 2, 2) is None
    True
    """
    if not load_average or not cpu_count:
        return None
    if load_average[0] + threads <= cpu_count + 0.5:
        return None
    return (
        f"load average {load_average[0]:.1f} on {cpu_count} CPUs + {threads} benchmark "
        "threads: the CPUs are shared, timings (batch-1 latencies above all) will be "
        "inflated; run on an idle machine, or compare with --threads 1"
    )


def _unique_names(bundles):
    seen = {}
    for bundle in bundles:
        count = seen.get(bundle.name, 0)
        seen[bundle.name] = count + 1
        if count:
            bundle.name = f"{bundle.name}_{count + 1}"


def main(argv=None):
    """Run every measurement, print the tables, write the JSON; returns the report.

    Example
    -------
    >>> main(["--threads", "0"])
    Traceback (most recent call last):
    ...
    SystemExit: 2
    """
    args = parse_args(argv)
    if args.memory_probe is not None:
        result = memory_probe(json.loads(args.memory_probe))
        print(PROBE_MARKER + json.dumps(result), flush=True)
        return result

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    runs = [summarize_training_folder(folder) for folder in args.training_folder]
    load_average = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    load_warning = busy_cpu_warning(load_average, os.cpu_count(), args.threads)
    if load_warning:
        print(f"warning: {load_warning}", file=sys.stderr, flush=True)
    workdir = tempfile.mkdtemp(prefix="cpu_costs_")
    sources = [{"type": "hparams", "path": str(Path(p).resolve())} for p in args.hparams]
    sources += [
        {"type": "classifier_folder", "path": str(Path(folder).resolve())}
        for folder in args.classifier_folder
    ]
    bundles = [build_model(source, workdir) for source in sources]
    _unique_names(bundles)
    sample_rates = {bundle.sample_rate for bundle in bundles}
    if len(sample_rates) > 1:
        raise ValueError(f"the models expect different sample rates {sorted(sample_rates)}")
    sample_rate = sample_rates.pop() if sample_rates else 16000
    num_samples = int(round(args.clip_seconds * sample_rate))
    latency_rounds = LATENCY_ROUNDS_PER_REPEAT * args.repeats
    settings = {
        "threads": args.threads,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "latency_rounds": latency_rounds,
        "batch_size": args.batch_size,
        "clip_seconds": args.clip_seconds,
        "sample_rate": sample_rate,
        "num_samples": num_samples,
        "quantile": args.quantile,
        "memory_jobs": args.memory_jobs,
        "yaml_overrides": YAML_OVERRIDES,
        "audio": "random (Gaussian, std 0.1)",
    }
    print(
        f"CPU costs of {', '.join(b.name for b in bundles)}: {args.threads} threads, "
        f"{num_samples}-sample clips, batch {args.batch_size}, {args.warmup} warm-up + "
        f"{args.repeats} timed rounds",
        flush=True,
    )

    piq_report = []
    if args.piq_folder:
        clip = random_clips(1, num_samples)

        def features_of(bundle):
            with torch.no_grad():
                return bundle.frontend.eval()(clip)

        piq_report = attach_piq(bundles, args.piq_folder, features_of)

    throughput = measure_training_throughput(
        bundles, args.batch_size, num_samples, args.repeats, args.warmup
    )
    latency = measure_inference_latency(bundles, num_samples, latency_rounds, args.warmup)
    interpretation = measure_interpretation_latency(
        bundles, num_samples, latency_rounds, args.warmup, args.quantile
    )
    memory = measure_peak_memory(
        bundles, args.batch_size, num_samples, args.threads, args.memory_jobs
    )

    entries = []
    for bundle in bundles:
        entries.append(
            {
                "name": bundle.name,
                "source": bundle.source,
                "kind": bundle.kind,
                "parameters": bundle.parameters(),
                "training_throughput": throughput[bundle.name],
                "inference_latency": latency[bundle.name],
                "peak_memory": memory[bundle.name],
                "interpretation_latency": interpretation[bundle.name],
            }
        )
    summary = {entry["name"]: summarize_model(entry) for entry in entries}
    first = entries[0]["name"]
    ratios = {
        f"{name} / {first}": {
            key: _ratio(value, summary[first].get(key))
            for key, value in values.items()
            if isinstance(value, (int, float))
        }
        for name, values in list(summary.items())[1:]
    }
    tables = model_tables(entries, settings)

    run_ratios = {}
    if runs:
        tables["training_runs"] = training_runs_table(runs)
        for run in runs[1:]:
            run_ratios[f"{run['name']} / {runs[0]['name']}"] = {
                key: _ratio(run[key], runs[0][key])
                for key in ("wall_seconds", "training_seconds", "epoch_seconds_median")
            }

    for table in tables.values():
        print()
        print(table)
    report = {
        "benchmark": "CPU costs: parameters, training throughput, inference latency, peak "
        "memory, interpretation latency, training wall time",
        "command": " ".join(
            ["python", "benchmarks/cpu_costs.py", *(argv if argv is not None else sys.argv[1:])]
        ),
        "settings": settings,
        "environment": {
            "torch": torch.__version__,
            "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "cpu_flags": _cpu_flags(),
            "load_average_at_start": load_average,
            "load_warning": load_warning,
            "seconds": None,
        },
        "models": entries,
        "summary": summary,
        "ratios": ratios,
        "piq": piq_report,
        "training_runs": runs,
        "training_run_ratios": run_ratios,
        "tables": tables,
    }
    report["environment"]["seconds"] = time.perf_counter() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {args.out} ({report['environment']['seconds']:.0f} s)")
    return report


if __name__ == "__main__":
    try:
        main()
    except (ValueError, FileNotFoundError) as error:  # bad model/PIQ/training folders
        sys.exit(f"error: {error}")

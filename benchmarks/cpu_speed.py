#!/usr/bin/env python3
"""CPU speed of the classifiers side by side: size, training throughput, inference and
interpretation latency.

For every model given (by default the two CPU recipes, ``hparams/focalnet_cpu.yaml``
and ``hparams/vit_cpu.yaml``, built from the YAML with random weights; or trained
classifiers, ``--classifier_folder``), on random 5 s clips with ``--threads`` torch
threads, timed with ``torch.utils.benchmark.Timer.blocked_autorange`` (median and
interquartile range of the blocks of ``--repeats`` rounds that alternate the models,
precisions and methods, so that a load drift affects them all alike;
:func:`common.time_rounds`):

1. **parameters** of the classifier (normalisation + backbone + head);
2. **training throughput** in clips/s: one AdamW step (forward, cross entropy,
   backward, ``optimizer.step``) at batch ``--batch_size`` (16) on the front end's
   features, float32 and under ``torch.autocast("cpu", dtype=torch.bfloat16)``;
3. **inference latency** per clip: front end + classifier at batch 1, ``no_grad``,
   eval mode, float32 and bf16;
4. **interpretation latency** per clip (float32, batch 1, features given): the
   by-design map (the one ``interpret_focalnet.yaml`` builds, the class-specific map
   times the input; the map alone,
   :class:`~focalnet_lobes.interpretation.interpret.ModulationContributionInterpreter`,
   and the paper's :class:`~focalnet_lobes.interpretation.interpret.ModulationInterpreter`
   for a FocalNet, :class:`~focalnet_lobes.interpretation.interpret.AttentionInterpreter`
   for a ViT) plus :func:`~focalnet_lobes.interpretation.interpret.quantile_mask` at
   ``--quantile`` (and the by-design map without the mask; and the map + mask computed
   from the outputs of a forward pass already done, :class:`ForwardDone`: the operations
   the map adds to plain inference, timed alone instead of as the difference of two noisy
   timings), versus
   :class:`~focalnet_lobes.interpretation.interpret.GradientSaliencyInterpreter`
   plus the mask, versus the classifier's forward alone; with ``--piq_folder``, PIQ
   (:func:`focalnet_lobes.interpretation.piq.load_piq_interpreter`) on the model it fits.

One markdown table per group, with a ratio column per model versus the first
(``vit_cpu / focalnet_cpu``); everything also as JSON (``benchmarks/results/cpu_speed.json``
unless ``--out``), with the command. Peak memory: ``cpu_memory.py``; training runs:
``training_runs.py``.

    python benchmarks/cpu_speed.py --threads 1 --repeats 3
    python benchmarks/cpu_speed.py --classifier_folder FOCALNET_RUN VIT_RUN --piq_folder PIQ_RUN

Authors
 * focalnet-audio contributors
"""

import argparse
import copy
import json
import re
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402  (benchmarks/common.py; puts this checkout's library first)
from focalnet_lobes.interpretation.interpret import (  # noqa: E402
    AttentionInterpreter,
    GradientSaliencyInterpreter,
    ModulationContributionInterpreter,
    ModulationInterpreter,
    quantile_mask,
)

DEFAULT_OUT = common.REPO / "benchmarks" / "results" / "cpu_speed.json"
METHODS = ("forward", "by_design_map", "by_design", "by_design_after_forward", "contribution",
           "modulation_map", "saliency", "piq")


def by_design_interpreter(bundle):
    """The by-design interpreter of a model's backbone (``None`` for another backbone).

    The one its interpretation YAML builds (``interpret_focalnet.yaml``,
    ``interpret_vit.yaml``: what ``recipes/interpret.py``, the export and the CLI
    use; :func:`focalnet_lobes.inference.export.interpreter_definition`).

    Example
    -------
    >>> bundle = common.build_model(
    ...     {"type": "hparams", "path": str(common.REPO / "hparams/focalnet_cpu.yaml")})
    >>> by_design_interpreter(bundle).name
    'modulation_contribution_x_input'
    """
    from hyperpyyaml import load_hyperpyyaml

    from focalnet_lobes.inference.export import interpreter_definition

    if bundle.kind not in ("focalnet", "vit"):
        return None
    return load_hyperpyyaml("interpreter: " + interpreter_definition(bundle.kind))["interpreter"]


class ForwardDone:
    """A classifier whose forward pass is already done: the map's own operations, timed alone.

    ``forward_with_maps`` (and the call) return the outputs of one earlier
    ``model.forward_with_maps(features)`` (no_grad); every other attribute (``head``,
    ``backbone``, ...) is the model's. An interpreter given it computes its map from that
    pass: the time of ``interpreter(ForwardDone(model, f), f)`` is what the by-design map
    adds to plain inference (the forward pass that gives the logits is the same one). An
    upper bound for a FocalNet: the class-specific map's ``pooling_terms`` recompute the
    final norm and pooling weights that the pass computed. For a ViT with fused attention
    ``forward_with_maps`` runs the explicit softmax instead, a difference this leaves out
    (``vit_cpu.yaml`` does not fuse). Only for the ``features`` it was built with (a
    ``ValueError`` otherwise).

    Arguments
    ---------
    model : SpectrogramClassifier
        In evaluation mode.
    features : torch.Tensor
        (B, 1, T, F) features of the pass.

    Example
    -------
    >>> from focalnet_lobes import create_model
    >>> from focalnet_lobes.interpretation.interpret import ModulationContributionInterpreter
    >>> from focalnet_lobes.models.classifier import SpectrogramClassifier
    >>> from focalnet_lobes.models.heads import LinearHead
    >>> _ = torch.manual_seed(0)
    >>> backbone = create_model("focalnet_audio_small", num_classes=0, in_chans=1)
    >>> model = SpectrogramClassifier(backbone, LinearHead(backbone.num_features, 3)).eval()
    >>> features = torch.rand(1, 1, 101, 64)
    >>> interpreter = ModulationContributionInterpreter()
    >>> with torch.no_grad():
    ...     full = interpreter(model, features)[1]
    ...     done = interpreter(ForwardDone(model, features), features)[1]
    >>> torch.equal(full, done)
    True
    """

    def __init__(self, model, features):
        self._model = model
        self._features = features
        with torch.no_grad():
            self._outputs = model.forward_with_maps(features)

    def forward_with_maps(self, features):
        """The stored ``(logits, maps)`` of the pass."""
        if features is not self._features:
            raise ValueError("ForwardDone holds the pass of other features")
        return self._outputs

    def __call__(self, features):
        return self.forward_with_maps(features)[0]

    def __getattr__(self, name):
        if name.startswith("_"):  # not set yet (copy, pickle): no lookup on the model
            raise AttributeError(name)
        return getattr(self._model, name)


def interpretation_methods(bundle, features, quantile):
    """``method -> zero-argument callable`` of one batch-1 pass on ``features`` (no_grad).

    ``forward``; ``by_design`` (the default map of ``interpret_focalnet.yaml`` /
    ``interpret_vit.yaml``; ``by_design_map`` the same without the mask;
    ``by_design_after_forward`` the map + mask from a pass already done, :class:`ForwardDone`),
    ``contribution`` (a FocalNet's class-specific map
    alone), ``modulation_map`` (a FocalNet's class-agnostic map), ``saliency`` and
    ``piq`` (map + quantile mask) where they apply.

    Example
    -------
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(6, 3))
    >>> bundle = common.BenchmarkModel("lin", {}, model, torch.nn.Identity(), 16000, {})
    >>> sorted(interpretation_methods(bundle, torch.rand(1, 1, 2, 3), 0.9))
    ['forward', 'saliency']
    """
    model = bundle.model

    def without_mask(interpreter, classifier=model):
        def run():
            with torch.no_grad():
                return interpreter(classifier, features)[1]

        return run

    def with_mask(interpreter, classifier=model):
        maps_of = without_mask(interpreter, classifier)

        def run():
            return quantile_mask(maps_of().detach(), quantile)

        return run

    def forward():
        with torch.no_grad():
            return model(features)

    methods = {"forward": forward}
    interpreter = by_design_interpreter(bundle)
    if interpreter is not None:
        methods["by_design_map"] = without_mask(interpreter)
        methods["by_design"] = with_mask(interpreter)
        if hasattr(model, "forward_with_maps"):
            methods["by_design_after_forward"] = with_mask(interpreter, ForwardDone(model, features))
    if bundle.kind == "focalnet":  # the map without the input; the paper's class-agnostic map
        methods["contribution"] = with_mask(ModulationContributionInterpreter())
        methods["modulation_map"] = with_mask(ModulationInterpreter())
    methods["saliency"] = with_mask(GradientSaliencyInterpreter())
    if bundle.piq:
        methods["piq"] = with_mask(bundle.piq[0][1])
    return methods


def measure(bundles, batch_size, num_samples, threads, repeats, min_run_time, quantile):
    """Time training steps, inferences and interpretations of every model.

    Returns ``{name: {"training_throughput": {precision: {"clips_per_s",
    "step_ms", "step_iqr_ms", "times_ms"}}, "inference_latency": {precision: timing},
    "interpretation_latency": {method: timing, "by_design_method", "quantile"}}}``
    with timings as :func:`common.time_rounds` returns.

    Example
    -------
    >>> from focalnet_lobes.data.features import SpectrogramFrontend
    >>> model = torch.nn.Sequential(
    ...     torch.nn.AdaptiveAvgPool2d((1, 8)), torch.nn.Flatten(), torch.nn.Linear(8, 3))
    >>> bundle = common.BenchmarkModel("lin", {}, model, SpectrogramFrontend(n_mels=8), 16000, {})
    >>> result = measure([bundle], 2, 1600, threads=1, repeats=1, min_run_time=0.0, quantile=0.9)
    >>> sorted(result["lin"]["interpretation_latency"])
    ['by_design_method', 'forward', 'piq_folder', 'quantile', 'saliency']
    >>> result["lin"]["training_throughput"]["bf16"]["clips_per_s"] > 0
    True
    """
    functions = {}
    clip = common.random_clips(1, num_samples, seed=7)
    for index, bundle in enumerate(bundles):
        bundle.model.eval()
        bundle.frontend.eval()
        with torch.no_grad():
            features = bundle.frontend(common.random_clips(batch_size, num_samples, seed=index))
            one = bundle.frontend(clip)
        classes = common.num_classes_of(bundle.model, features)
        labels = torch.randint(classes, (batch_size,), generator=torch.Generator().manual_seed(1))
        model = copy.deepcopy(bundle.model).train()  # the weights under test stay as loaded
        for precision in common.PRECISIONS:
            optimizer = common.make_optimizer(model, bundle.hparams)
            functions[(bundle.name, "train", precision)] = (
                lambda m=model, o=optimizer, p=precision, f=features, y=labels:
                common.training_step(m, o, f, y, p)
            )

            def infer(bundle=bundle, precision=precision):
                with torch.no_grad(), common.precision_context(precision):
                    return bundle.model(bundle.frontend(clip)).float()

            functions[(bundle.name, "inference", precision)] = infer
        for method, run in interpretation_methods(bundle, one, quantile).items():
            functions[(bundle.name, "interpretation", method)] = run
    timings = common.time_rounds(
        functions, threads, repeats, min_run_time, lambda m: common.progress(f"timing: {m}")
    )
    result = {}
    for bundle in bundles:
        interpreter = by_design_interpreter(bundle)
        entry = {
            "training_throughput": {},
            "inference_latency": {},
            "interpretation_latency": {
                "by_design_method": interpreter.name if interpreter else None,
                "quantile": quantile,
                "piq_folder": str(bundle.piq[0][0]) if bundle.piq else None,
            },
        }
        for (name, group, key), timing in timings.items():
            if name != bundle.name:
                continue
            if group == "train":
                timing = dict(timing, clips_per_s=1000.0 * batch_size / timing["median_ms"])
                entry["training_throughput"][key] = timing
            elif group == "inference":
                entry["inference_latency"][key] = timing
            else:
                entry["interpretation_latency"][key] = timing
        result[bundle.name] = entry
    return result


def attach_piq(bundles, piq_folders, features_of):
    """Load each PIQ interpreter and attach it to the model it was trained for.

    A PIQ folder goes to the model built from the classifier folder it was trained
    on (``classifier_folder`` of its ``hyperparams.yaml``); otherwise to the first
    model whose number of classes and last-stage channels fit PIQ's network.

    Returns one dict per folder: ``folder``, ``model`` (name or ``None``),
    ``matched_by`` (``"classifier_folder"``, ``"shapes"`` or ``None``),
    ``trained_on``, ``parameters``, ``training_cost`` (``piq_training.json``).

    Example
    -------
    >>> attach_piq([], [], lambda bundle: None)
    []
    """
    from focalnet_lobes.interpretation.piq import load_piq_interpreter, representation_channels

    report = []
    for folder in piq_folders:
        interpreter = load_piq_interpreter(folder)
        network = interpreter.network
        text = (Path(folder) / "hyperparams.yaml").read_text(encoding="utf-8")
        match = re.search(r"^classifier_folder:\s*(\S+)", text, re.MULTILINE)
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
        for bundle in bundles if chosen is None else []:
            if bundle.kind in ("focalnet", "vit") and (
                representation_channels(bundle.model) == network.in_channels
                and common.num_classes_of(bundle.model, features_of(bundle)) == network.num_classes
            ):
                chosen, matched_by = bundle, "shapes"
                break
        if chosen is not None:
            chosen.piq.append((folder, interpreter))
        else:
            print(f"warning: PIQ in {folder} fits none of the models; not timed", file=sys.stderr)
        cost_file = Path(folder) / "piq_training.json"
        report.append({
            "folder": str(folder),
            "model": chosen.name if chosen else None,
            "matched_by": matched_by,
            "trained_on": trained_on,
            "parameters": sum(p.numel() for p in interpreter.parameters()),
            "training_cost": json.loads(cost_file.read_text()) if cost_file.is_file() else None,
        })
    return report


def tables(entries, settings):
    """The markdown tables (``parameters``, ``training_throughput``, ``inference_latency``,
    ``interpretation_latency``) of the model entries, each model a column.

    Example
    -------
    >>> entries = [{"name": "a", "parameters": {"total": 2_000_000, "trainable": 2_000_000}},
    ...            {"name": "b", "parameters": {"total": 3_000_000, "trainable": 3_000_000}}]
    >>> print(tables(entries, {})["parameters"])
    Parameters
    | quantity | a | b | b / a |
    |---|---|---|---|
    | parameters (M) | 2.000 | 3.000 | 1.50 |
    | trainable (M) | 2.000 | 3.000 | 1.50 |
    """
    names = [entry["name"] for entry in entries]

    def timing(group, key, field="median_ms"):
        return [
            None if (e.get(group) or {}).get(key) is None
            else (e[group][key][field], e[group][key]["iqr_ms"])
            for e in entries
        ]

    result = {"parameters": common.format_table("Parameters", names, [
        ("parameters (M)", [e["parameters"]["total"] / 1e6 for e in entries], ".3f"),
        ("trainable (M)", [e["parameters"]["trainable"] / 1e6 for e in entries], ".3f"),
    ])}
    if "training_throughput" not in entries[0]:
        return result
    rounds = f"median (IQR) of the blocks of {settings['repeats']} rounds"
    throughput = [
        (f"{p} clips/s", [e["training_throughput"][p]["clips_per_s"] for e in entries], ".2f")
        for p in common.PRECISIONS
    ]
    throughput += [(f"{p} step ms", timing("training_throughput", p), ".0f")
                   for p in common.PRECISIONS]
    result["training_throughput"] = common.format_table(
        f"Training throughput (batch {settings['batch_size']}, forward + backward + AdamW "
        f"on features; {rounds}; clips/s from the median)", names, throughput)
    result["inference_latency"] = common.format_table(
        f"Inference latency per {settings['clip_seconds']:g} s clip, ms (batch 1, front end "
        f"+ classifier; {rounds})", names,
        [(f"{p} ms", timing("inference_latency", p), ".1f") for p in common.PRECISIONS])
    methods = [e["interpretation_latency"]["by_design_method"] or "-" for e in entries]
    labels = {"forward": "forward only ms", "by_design_map": "by-design map ms (no mask)",
              "by_design": "by-design map + mask ms",
              "by_design_after_forward":
                  "by-design map + mask after the forward pass ms (its own operations)",
              "contribution": "class-specific map + mask ms (without the input)",
              "modulation_map": "modulation map + mask ms (class-agnostic)",
              "saliency": "saliency map + mask ms", "piq": "PIQ map + mask ms"}
    rows = [("by-design method", methods, "")]
    rows += [(labels[m], timing("interpretation_latency", m), ".1f") for m in METHODS
             if any(m in e["interpretation_latency"] for e in entries)]
    for label, top, bottom, spec in (
        ("saliency / by-design", "saliency", "by_design", ".2f"),
        ("by-design / forward", "by_design", "forward", ".2f"),
        ("by-design map (no mask) / forward", "by_design_map", "forward", ".2f"),
        ("map + mask's own operations / forward", "by_design_after_forward", "forward", ".3f"),
        ("modulation map / forward", "modulation_map", "forward", ".2f"),
        ("PIQ / by-design", "piq", "by_design", ".2f"),
    ):
        quotients = [
            common.ratio(*(((e["interpretation_latency"].get(k) or {}).get("median_ms"))
                           for k in (top, bottom)))
            for e in entries
        ]
        if any(q is not None for q in quotients):
            rows.append((label, quotients, spec))
    result["interpretation_latency"] = common.format_table(
        f"Interpretation latency per clip, ms (fp32, batch 1, features given, mask at "
        f"q={settings['quantile']}; {rounds})", names, rows)
    return result


def parse_args(argv=None):
    """Command-line options (see the module docstring).

    Example
    -------
    >>> args = parse_args(["--repeats", "2"])
    >>> args.repeats, args.threads, args.batch_size
    (2, 2, 16)
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hparams", nargs="+", help="model YAMLs (default: the two CPU YAMLs)")
    parser.add_argument("--classifier_folder", nargs="+", default=[],
                        help="trained classifiers (recipes/train.py output folders)")
    parser.add_argument("--piq_folder", nargs="+", default=[],
                        help="trained PIQ (recipes/train_piq.py output folders)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--repeats", type=int, default=3, help="timing rounds")
    parser.add_argument("--min_run_time", type=float, default=1.0,
                        help="seconds per blocked_autorange (at least one call)")
    parser.add_argument("--batch_size", type=int, default=16, help="training batch")
    parser.add_argument("--clip_seconds", type=float, default=5.0, help="clip duration")
    parser.add_argument("--quantile", type=float, default=0.9, help="mask quantile")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file to write")
    args = parser.parse_args(argv)
    if min(args.threads, args.repeats, args.batch_size) < 1 or args.min_run_time < 0:
        parser.error("--threads, --repeats and --batch_size must be >= 1, --min_run_time >= 0")
    if args.clip_seconds <= 0:
        parser.error(f"--clip_seconds must be > 0, got {args.clip_seconds}")
    if not 0.0 <= args.quantile <= 1.0:
        parser.error(f"--quantile must be in [0, 1], got {args.quantile}")
    for path in args.hparams or []:
        if not Path(path).is_file():
            parser.error(f"--hparams {path} does not exist")
    for option, folders in (("--classifier_folder", args.classifier_folder),
                            ("--piq_folder", args.piq_folder)):
        for folder in folders:
            if not Path(folder).is_dir():
                parser.error(f"{option} {folder} is not a folder")
    return args


def main(argv=None):
    """Build the models, time them, print the tables, write the JSON; returns the report.

    Example
    -------
    >>> main(["--threads", "0"])
    Traceback (most recent call last):
    ...
    SystemExit: 2
    """
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    env = common.environment(args.threads)
    bundles, sample_rate = common.build_models(
        common.model_sources(args.hparams, args.classifier_folder)
    )
    num_samples = int(round(args.clip_seconds * sample_rate))
    settings = {
        "threads": args.threads, "repeats": args.repeats, "min_run_time": args.min_run_time,
        "batch_size": args.batch_size, "clip_seconds": args.clip_seconds,
        "sample_rate": sample_rate, "num_samples": num_samples, "quantile": args.quantile,
        "yaml_overrides": common.YAML_OVERRIDES, "audio": "random (Gaussian, std 0.1)",
        "timer": "torch.utils.benchmark.Timer.blocked_autorange, blocks of all rounds merged",
    }
    clip = common.random_clips(1, num_samples)

    def features_of(bundle):
        with torch.no_grad():
            return bundle.frontend.eval()(clip)

    piq = attach_piq(bundles, args.piq_folder, features_of)
    measured = measure(bundles, args.batch_size, num_samples, args.threads, args.repeats,
                       args.min_run_time, args.quantile)
    entries = [
        dict(name=b.name, source=b.source, kind=b.kind, parameters=b.parameters(),
             **measured[b.name])
        for b in bundles
    ]
    report = {
        "benchmark": "CPU speed: parameters, training throughput, inference latency, "
        "interpretation latency",
        "command": common.command_line("cpu_speed.py", argv),
        "settings": settings,
        "environment": env,
        "models": entries,
        "piq": piq,
    }
    return common.write_report_or_exit("cpu_speed.py", report, args.out, tables(entries, settings))


if __name__ == "__main__":
    try:
        main()
    except (ValueError, FileNotFoundError) as error:  # bad model / PIQ folders
        sys.exit(f"error: {error}")

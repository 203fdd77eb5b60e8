#!/usr/bin/env python3
"""Peak memory (RSS) of the classifiers' training steps and inferences, each in a fresh process.

For every model given (by default the two CPU recipes, ``hparams/focalnet_cpu.yaml``
and ``hparams/vit_cpu.yaml``, random weights; or trained classifiers,
``--classifier_folder``), four probes: two training steps at batch ``--batch_size``
(AdamW, features given) and two inferences at batch 1 (front end + classifier,
``no_grad``), in float32 and under bf16 autocast. Each probe is a fresh subprocess
(``cpu_memory.py --memory_probe SPEC``) that builds the model from its source,
prepares its inputs, resets its peak RSS and counts the peak above that baseline
(Linux ``VmHWM``: a subprocess's ``ru_maxrss`` is floored by its parent's RSS; see
:func:`peak_rss_bytes`), so no measurement inherits another one's memory. One
process per figure: a single value, no spread (the differences between repeated
probes are a few MiB).

One markdown table, a column per model and a ratio column per model versus the
first; JSON in ``benchmarks/results/cpu_memory.json`` unless ``--out``, with the command.

    python benchmarks/cpu_memory.py --threads 1
    python benchmarks/cpu_memory.py --classifier_folder FOCALNET_RUN VIT_RUN

Authors
 * focalnet-audio contributors
"""

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402  (benchmarks/common.py; puts this checkout's library first)

DEFAULT_OUT = common.REPO / "benchmarks" / "results" / "cpu_memory.json"
MODES = ("train", "inference")
PROBE_MARKER = "CPU_MEMORY_PROBE "
MIB = 1024.0 * 1024.0


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
    Returns whether the peak was reset.

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


def memory_probe(spec):
    """Peak RSS of one training or inference measurement, in this (fresh) process.

    Builds the model from ``spec["source"]`` (:func:`common.build_model`; a YAML
    model with ``torch.manual_seed(0)`` weights), prepares its inputs (random
    clips; for training, their features and random labels), resets the peak RSS
    (:func:`reset_peak_rss`), records the baseline, runs two training steps or two
    inferences and reads the peak again (:func:`peak_rss_bytes`). Only meaningful
    in a fresh single-purpose process (:func:`measure_peak_memory`): in a long-lived
    multi-threaded one (a test session) the kernel's per-thread RSS counters can
    even put the peak below the baseline.

    Arguments
    ---------
    spec : dict
        ``source``, ``mode`` (``"train"`` / ``"inference"``), ``precision``,
        ``batch_size``, ``num_samples``, ``threads``.

    Returns
    -------
    dict
        The spec plus ``baseline_mib``, ``peak_mib``, ``delta_mib`` (peak -
        baseline), ``peak_source`` and ``peak_reset``.

    Raises
    ------
    ValueError
        An unknown mode or precision.

    Example
    -------
    >>> spec = {"source": {"type": "hparams", "path": str(common.REPO / "hparams/vit_cpu.yaml")},
    ...         "mode": "inference", "precision": "fp32", "batch_size": 1,
    ...         "num_samples": 16000, "threads": 1}
    >>> probe = memory_probe(spec)  # in a fresh process: cpu_memory.py --memory_probe SPEC
    >>> probe["delta_mib"] == probe["peak_mib"] - probe["baseline_mib"], probe["mode"]
    (True, 'inference')
    """
    mode, precision = spec["mode"], spec["precision"]
    if mode not in MODES:
        raise ValueError(f"unknown memory mode '{mode}', expected one of {MODES}")
    common.precision_context(precision)  # raises for an unknown precision
    torch.set_num_threads(int(spec["threads"]))
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="cpu_memory_") as workdir:
        bundle = common.build_model(spec["source"], workdir)
    frontend = bundle.frontend.eval()
    if mode == "train":
        with torch.no_grad():
            features = frontend(common.random_clips(spec["batch_size"], spec["num_samples"]))
        labels = torch.randint(common.num_classes_of(bundle.model, features), (len(features),))
        model = bundle.model.train()
        optimizer = common.make_optimizer(model, bundle.hparams)

        def run():
            common.training_step(model, optimizer, features, labels, precision)

    else:
        clip = common.random_clips(1, spec["num_samples"])
        model = bundle.model.eval()

        def run():
            with torch.no_grad(), common.precision_context(precision):
                model(frontend(clip)).float()

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


def measure_peak_memory(sources, batch_size, num_samples, threads, jobs=2):
    """Peak RSS of training and inference per model, each in a fresh subprocess.

    Arguments
    ---------
    sources : dict
        ``name -> source`` (:func:`common.build_model`).
    batch_size : int
        Batch of the training steps.
    num_samples : int
        Samples per clip.
    threads : int
        Torch threads in each subprocess.
    jobs : int
        Subprocesses at the same time (the peak is per process, so running them
        side by side changes their time, not their memory).

    Returns
    -------
    dict
        ``{name: {"train_fp32": probe, "train_bf16", "inference_fp32", "inference_bf16"}}``.

    Raises
    ------
    RuntimeError
        A probe failed (its exit code and the end of its stderr).

    Example
    -------
    >>> measure_peak_memory({}, 2, 16000, threads=1)  # no model, no probe
    {}
    """
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    pending = [
        (name, f"{mode}_{precision}", {
            "source": source, "mode": mode, "precision": precision,
            "batch_size": batch_size if mode == "train" else 1,
            "num_samples": num_samples, "threads": threads,
        })
        for name, source in sources.items() for mode in MODES for precision in common.PRECISIONS
    ]
    results = {name: {} for name in sources}
    running = []
    while pending or running:
        while pending and len(running) < max(1, jobs):
            name, key, spec = pending.pop(0)
            command = [sys.executable, str(Path(__file__).resolve()), "--memory_probe",
                       json.dumps(spec)]
            process = subprocess.Popen(command, cwd=common.REPO, env=env, text=True,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            running.append((name, key, process))
        name, key, process = running.pop(0)
        stdout, stderr = process.communicate()
        lines = [line for line in stdout.splitlines() if line.startswith(PROBE_MARKER)]
        if process.returncode != 0 or not lines:
            raise RuntimeError(f"memory probe {key} of {name} failed (exit code "
                               f"{process.returncode}):\n{stderr[-3000:]}")
        results[name][key] = json.loads(lines[-1][len(PROBE_MARKER):])
        common.progress(f"peak memory: {name} {key} done")
    return results


def table(names, memory, batch_size):
    """The markdown table of the probes' peaks above their baselines, MiB.

    Example
    -------
    >>> memory = {n: {f"{m}_{p}": {"delta_mib": d} for m in MODES for p in ("fp32", "bf16")}
    ...           for n, d in (("a", 100.0), ("b", 50.0))}
    >>> print(table(["a", "b"], memory, 16).splitlines()[3])
    | train fp32 MiB | 100 | 50 | 0.50 |
    """
    return common.format_table(
        "Peak memory above the baseline (imports + model + inputs), MiB of RSS, one fresh "
        f"process each (training: 2 steps at batch {batch_size}; inference: batch 1)",
        names,
        [(f"{mode} {precision} MiB", [memory[n][f"{mode}_{precision}"]["delta_mib"]
                                      for n in names], ".0f")
         for mode in MODES for precision in common.PRECISIONS],
    )


def parse_args(argv=None):
    """Command-line options (see the module docstring).

    Example
    -------
    >>> args = parse_args(["--jobs", "1"])
    >>> args.jobs, args.threads, args.batch_size
    (1, 2, 16)
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hparams", nargs="+", help="model YAMLs (default: the two CPU YAMLs)")
    parser.add_argument("--classifier_folder", nargs="+", default=[],
                        help="trained classifiers (recipes/train.py output folders)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads per probe")
    parser.add_argument("--batch_size", type=int, default=16, help="training batch")
    parser.add_argument("--clip_seconds", type=float, default=5.0, help="clip duration")
    parser.add_argument("--jobs", type=int, default=2, help="probes side by side")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file to write")
    parser.add_argument("--memory_probe", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_probe is not None:
        return args
    if min(args.threads, args.batch_size, args.jobs) < 1:
        parser.error("--threads, --batch_size and --jobs must be >= 1")
    if args.clip_seconds <= 0:
        parser.error(f"--clip_seconds must be > 0, got {args.clip_seconds}")
    for path in args.hparams or []:
        if not Path(path).is_file():
            parser.error(f"--hparams {path} does not exist")
    for folder in args.classifier_folder:
        if not Path(folder).is_dir():
            parser.error(f"--classifier_folder {folder} is not a folder")
    return args


def main(argv=None):
    """Run the probes, print the table, write the JSON; returns the report.

    Example
    -------
    >>> main(["--batch_size", "0"])
    Traceback (most recent call last):
    ...
    SystemExit: 2
    """
    args = parse_args(argv)
    if args.memory_probe is not None:
        result = memory_probe(json.loads(args.memory_probe))
        print(PROBE_MARKER + json.dumps(result), flush=True)
        return result
    env = common.environment(args.threads)
    bundles, sample_rate = common.build_models(
        common.model_sources(args.hparams, args.classifier_folder)
    )
    names = [bundle.name for bundle in bundles]
    num_samples = int(round(args.clip_seconds * sample_rate))
    memory = measure_peak_memory({b.name: b.source for b in bundles}, args.batch_size,
                                 num_samples, args.threads, args.jobs)
    report = {
        "benchmark": "CPU peak memory (RSS) of training steps and inferences",
        "command": common.command_line("cpu_memory.py", argv),
        "settings": {"threads": args.threads, "batch_size": args.batch_size,
                     "clip_seconds": args.clip_seconds, "num_samples": num_samples,
                     "jobs": args.jobs, "audio": "random (Gaussian, std 0.1)"},
        "environment": env,
        "models": [dict(name=b.name, source=b.source, kind=b.kind, parameters=b.parameters(),
                        peak_memory=memory[b.name]) for b in bundles],
    }
    return common.write_report_or_exit("cpu_memory.py", report, args.out,
                                       {"peak_memory": table(names, memory, args.batch_size)})


if __name__ == "__main__":
    try:
        main()
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        sys.exit(f"error: {error}")

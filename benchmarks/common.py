"""What the CPU benchmark scripts share: the models under test, the timer, the tables, the JSON.

``cpu_speed.py``, ``cpu_memory.py`` and ``training_runs.py`` (split from the
former ``cpu_costs.py``, commit ``bf6ae25``) import this module; it imports the
library, never a recipe. Models come from a YAML (random weights, the two CPU
recipes by default) or from a trained classifier's output folder
(:func:`focalnet_lobes.inference.trained.load_trained_classifier`).

Authors
 * focalnet-audio contributors
"""

import contextlib
import errno
import json
import os
import platform
import re
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

DEFAULT_HPARAMS = ("hparams/focalnet_cpu.yaml", "hparams/vit_cpu.yaml")
YAML_OVERRIDES = {"data_folder": "unused", "esc10": True}
PRECISIONS = ("fp32", "bf16")


def precision_context(precision):
    """The autocast context of a precision: ``"fp32"`` (none) or ``"bf16"`` (CPU autocast).

    Raises ``ValueError`` for another name.

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
        Sample rate the front end expects, Hz.
    hparams : dict
        The hyperparameters it was built from.
    piq : list
        ``(folder, interpreter)`` of the PIQ interpreters timed on this model.

    Example
    -------
    >>> bundle = BenchmarkModel("id", {}, torch.nn.Identity(), torch.nn.Identity(), 16000, {})
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


def build_model(source, workdir=None):
    """Build a classifier from a YAML (random weights) or a training output folder.

    A YAML is loaded with ``YAML_OVERRIDES`` plus ``output_folder`` redirected to
    ``workdir`` (building creates no ``results/`` folder); a folder with
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

    Raises
    ------
    ValueError
        A missing YAML, a YAML without ``model`` / ``compute_features``, an unknown type.

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
        workdir = workdir or tempfile.mkdtemp(prefix="benchmark_")
        with open(path, encoding="utf-8") as fin:
            hparams = load_hyperpyyaml(fin, dict(YAML_OVERRIDES, output_folder=str(workdir)))
        for key in ("model", "compute_features"):
            if key not in hparams:
                raise ValueError(f"{path} defines no '{key}': not a classification recipe YAML")
        name = path.stem
        model, frontend = hparams["model"], hparams["compute_features"]
    elif source["type"] == "classifier_folder":
        from focalnet_lobes.inference.trained import load_trained_classifier

        trained = load_trained_classifier(path)
        hparams, model, frontend = trained.hparams, trained.model, trained.frontend
        name = str(hparams.get("experiment_name") or path.name)
    else:
        raise ValueError(f"unknown model source type {source['type']!r}")
    sample_rate = int(hparams.get("sample_rate", 16000))
    return BenchmarkModel(name, dict(source, path=str(path)), model, frontend, sample_rate, hparams)


def model_sources(hparams, classifier_folders):
    """The sources of :func:`build_model`: YAMLs first (the two CPU recipes when none and
    no folder is given), then trained classifier folders, as absolute paths.

    Example
    -------
    >>> [Path(s["path"]).name for s in model_sources(None, [])]
    ['focalnet_cpu.yaml', 'vit_cpu.yaml']
    >>> [s["type"] for s in model_sources(None, ["run"])]
    ['classifier_folder']
    """
    if hparams is None:
        hparams = [] if classifier_folders else [str(REPO / p) for p in DEFAULT_HPARAMS]
    sources = [{"type": "hparams", "path": str(Path(p).resolve())} for p in hparams]
    sources += [
        {"type": "classifier_folder", "path": str(Path(f).resolve())} for f in classifier_folders
    ]
    return sources


def build_models(sources, workdir=None):
    """:func:`build_model` of each source, names made unique (``vit_cpu``, ``vit_cpu_2``).

    Returns ``(bundles, sample_rate)``; raises ``ValueError`` when the models
    expect different sample rates.

    Example
    -------
    >>> yaml = str(REPO / "hparams/vit_cpu.yaml")
    >>> bundles, rate = build_models([{"type": "hparams", "path": yaml}] * 2)
    >>> [b.name for b in bundles], rate
    (['vit_cpu', 'vit_cpu_2'], 16000)
    """
    workdir = workdir or tempfile.mkdtemp(prefix="benchmark_")
    bundles = [build_model(source, workdir) for source in sources]
    seen = {}
    for bundle in bundles:
        count = seen.get(bundle.name, 0)
        seen[bundle.name] = count + 1
        if count:
            bundle.name = f"{bundle.name}_{count + 1}"
    rates = {bundle.sample_rate for bundle in bundles}
    if len(rates) > 1:
        raise ValueError(f"the models expect different sample rates {sorted(rates)}")
    return bundles, (rates.pop() if rates else 16000)


def random_clips(batch_size, num_samples, seed=0):
    """Reproducible random audio (B, samples), Gaussian with std 0.1, as a stand-in for clips.

    Example
    -------
    >>> clips = random_clips(2, 8000)
    >>> clips.shape, bool(torch.equal(clips, random_clips(2, 8000)))
    (torch.Size([2, 8000]), True)
    """
    generator = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(batch_size, num_samples, generator=generator)


def num_classes_of(model, features):
    """Number of classes of a classifier (one eval forward on ``features[:1]``).

    Example
    -------
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(6, 4))
    >>> num_classes_of(model, torch.rand(2, 1, 2, 3))
    4
    """
    was_training = model.training
    model.eval()
    with torch.no_grad():
        classes = int(model(features[:1]).shape[-1])
    model.train(was_training)
    return classes


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


def training_step(model, optimizer, features, labels, precision):
    """One training step: forward (autocast for bf16), cross entropy, backward, AdamW step.

    Returns the loss (float).

    Example
    -------
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(6, 3))
    >>> optimizer = torch.optim.AdamW(model.parameters())
    >>> features, labels = torch.rand(4, 1, 2, 3), torch.tensor([0, 1, 2, 0])
    >>> training_step(model, optimizer, features, labels, "bf16") > 0
    True
    """
    optimizer.zero_grad(set_to_none=True)
    with precision_context(precision):
        logits = model(features)
    loss = F.cross_entropy(logits.float(), labels)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def time_rounds(functions, threads, rounds, min_run_time, progress=None):
    """Time zero-argument callables with ``torch.utils.benchmark.Timer.blocked_autorange``.

    Every callable runs once untimed (warm-up), then ``rounds`` times
    ``blocked_autorange(min_run_time)`` in turn, so that a load drift on a shared
    CPU affects them all alike; the blocks of all rounds are merged
    (``Measurement.merge``) into one median and interquartile range.

    Arguments
    ---------
    functions : dict
        ``key -> callable``.
    threads : int
        Torch threads of the timer.
    rounds : int
        Rounds (>= 1).
    min_run_time : float
        Seconds per ``blocked_autorange`` (at least one timed call each).
    progress : callable or None
        Called with a message after each round.

    Returns
    -------
    dict
        ``key -> {"median_ms", "iqr_ms", "times_ms"}`` (per call, milliseconds).

    Example
    -------
    >>> result = time_rounds({"add": lambda: torch.ones(8) + 1}, 1, rounds=2, min_run_time=0.01)
    >>> result["add"]["median_ms"] > 0, result["add"]["iqr_ms"] >= 0
    (True, True)
    """
    import torch.utils.benchmark as benchmark  # here: importing it warns "No CUDA runtime" on CPU-only builds

    timers = {}
    for key, function in functions.items():
        function()
        timers[key] = benchmark.Timer(
            stmt="function()", globals={"function": function}, num_threads=threads,
            label=str(key),
        )
    measurements = {key: [] for key in functions}
    for index in range(rounds):
        for key, timer in timers.items():
            measurements[key].append(timer.blocked_autorange(min_run_time=min_run_time))
        if progress:
            progress(f"round {index + 1}/{rounds}")
    result = {}
    for key, parts in measurements.items():
        (merged,) = benchmark.Measurement.merge(parts)
        result[key] = {
            "median_ms": 1000.0 * merged.median,
            "iqr_ms": 1000.0 * merged.iqr,
            "times_ms": [1000.0 * t for t in merged.times],
        }
    return result


def ratio(numerator, denominator):
    """``numerator / denominator``, ``None`` when either is missing or the denominator is 0.

    Example
    -------
    >>> ratio(3.0, 2.0), ratio(None, 2.0), ratio(1.0, 0)
    (1.5, None, None)
    """
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def _cell(value, spec):
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return format(value, spec)


def format_table(title, names, rows):
    """A markdown table: one row per quantity, one column per model, then a ratio column
    per later model versus the first (``"<name> / <first>"``), as ``train_speed.py`` prints.

    Arguments
    ---------
    title : str
        Printed above the table.
    names : list of str
        Column names (models).
    rows : list of tuple
        ``(label, values, format_spec)``; ``values`` has one entry per name: a
        number, a string, ``None`` or a ``(median, iqr)`` pair (shown
        ``median (IQR iqr)``, its median compared). A string row gets no ratio.

    Returns
    -------
    str

    Example
    -------
    >>> print(format_table("Speed", ["a", "b"], [("ms", [(2.0, 0.5), (3.0, 0.1)], ".1f")]))
    Speed
    | quantity | a | b | b / a |
    |---|---|---|---|
    | ms | 2.0 (IQR 0.5) | 3.0 (IQR 0.1) | 1.50 |
    """
    header = ["quantity", *names, *[f"{name} / {names[0]}" for name in names[1:]]]
    lines = [title, "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, values, spec in rows:
        cells = [label]
        for value in values:
            if isinstance(value, tuple):
                cells.append(f"{_cell(value[0], spec)} (IQR {_cell(value[1], spec)})")
            else:
                cells.append(_cell(value, spec))
        medians = [v[0] if isinstance(v, tuple) else v for v in values]
        for value in medians[1:]:
            numeric = not isinstance(value, str) and not isinstance(medians[0], str)
            cells.append(_cell(ratio(value, medians[0]), ".2f") if numeric else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cpu_flags():
    """The CPU's vector / matrix flags that matter to bf16 (Linux ``/proc/cpuinfo``; [] elsewhere).

    Example
    -------
    >>> isinstance(cpu_flags(), list)
    True
    """
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    match = re.search(r"^flags\s*:\s*(.*)$", text, re.MULTILINE)
    flags = set(match.group(1).split()) if match else set()
    return sorted(flags & {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"})


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


def environment(threads):
    """The record of where a benchmark ran; prints the busy-CPU warning to stderr.

    Example
    -------
    >>> sorted(environment(1))[:3]
    ['cpu_count', 'cpu_flags', 'load_average_at_start']
    """
    load = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    warning = busy_cpu_warning(load, os.cpu_count(), threads)
    if warning:
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu_flags": cpu_flags(),
        "load_average_at_start": load,
        "load_warning": warning,
    }


def command_line(script, argv):
    """The command that made a report: ``python benchmarks/<script> <arguments>``.

    Example
    -------
    >>> command_line("cpu_speed.py", ["--repeats", "3"])
    'python benchmarks/cpu_speed.py --repeats 3'
    """
    return " ".join(["python", f"benchmarks/{script}", *(sys.argv[1:] if argv is None else argv)])


def write_json(report, out):
    """Write ``report`` as indented JSON to ``out``, creating the missing folders above it.

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    OSError
        ``out`` cannot be written; a file where a folder above ``out`` should be
        raises :class:`NotADirectoryError` whose ``strerror`` says so (the standard
        "File exists" would name the wrong problem).

    Example
    -------
    >>> out = write_json({"a": 1}, Path(tempfile.mkdtemp()) / "new" / "r.json")
    >>> json.loads(out.read_text())
    {'a': 1}
    """
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise NotADirectoryError(errno.ENOTDIR, "a folder above it is a file", str(out)) from None
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return out


def write_report(report, out, tables):
    """Write ``report`` (with ``tables``) as JSON to ``out``, then print the tables.

    ``out`` None writes no file (a benchmark on folders given by the user, whose
    default must not replace a recorded result); the report is still returned.
    Missing folders above ``out`` are created. The file is written before anything
    is printed, so a reader that closes standard output early (``| head``) cannot
    cost the report; the printed order is the tables, then ``wrote <out>``. The
    tables are printed even when ``out`` cannot be written, so a long measurement
    is still seen.

    Raises
    ------
    OSError
        ``out`` cannot be written (after the tables are printed); a file where a
        folder above ``out`` should be raises :class:`NotADirectoryError` whose
        ``strerror`` says so (the standard "File exists" would name the wrong
        problem).

    Example
    -------
    >>> out = Path(tempfile.mkdtemp()) / "r.json"
    >>> _ = write_report({"a": 1}, out, {"t": "| x |"})  # doctest: +ELLIPSIS
    <BLANKLINE>
    | x |
    <BLANKLINE>
    wrote ...r.json
    >>> json.loads(out.read_text())["tables"]
    {'t': '| x |'}
    >>> write_report({"a": 1}, None, {"t": "| x |"})["a"]
    <BLANKLINE>
    | x |
    <BLANKLINE>
    no JSON written (--out FILE writes one)
    1
    >>> try:
    ...     write_report({"a": 1}, out / "x.json", {"t": "| x |"})
    ... except NotADirectoryError as error:
    ...     print(error.strerror)
    <BLANKLINE>
    | x |
    a folder above it is a file
    """
    report = dict(report, tables=tables)
    try:
        if out is not None:
            out = write_json(report, out)
    finally:
        for table in tables.values():
            print()
            print(table)
    print("\nno JSON written (--out FILE writes one)" if out is None else f"\nwrote {out}")
    return report


def write_report_or_exit(script, report, out, tables):
    """:func:`write_report`, a failure to write ``out`` ending the command with one line.

    Only a failure of ``out`` itself is reported as one. A standard output closed
    by its reader (``| head``, after the file is written) ends the command quietly
    with status 1 when a write finds it closed, as Python's documentation advises
    for ``BrokenPipeError``
    (https://docs.python.org/3/library/signal.html#note-on-sigpipe), instead of a
    message that blamed ``out`` for it; output that reached the pipe before its
    reader left ends with status 0, as with any command.

    Arguments
    ---------
    script : str
        The script's name that starts the message (``"hard_clips.py"``).
    report, out, tables :
        As for :func:`write_report`.

    Returns
    -------
    dict
        The report, with ``tables``.

    Raises
    ------
    SystemExit
        Status 2, ``<script>: error: <out>: cannot write the report (<reason>)``;
        status 1, silently, when a write finds standard output closed.

    Example
    -------
    >>> blocker = Path(tempfile.mkdtemp()) / "file"
    >>> _ = blocker.write_text("x")
    >>> write_report_or_exit("demo.py", {}, blocker / "r.json", {})
    Traceback (most recent call last):
    ...
    SystemExit: 2
    """
    try:
        report = write_report(report, out, tables)
        sys.stdout.flush()  # a closed pipe fails here, not in the interpreter's exit
        return report
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        sys.exit(1)
    except OSError as error:
        exit_cannot_write(script, out, error)


def exit_cannot_write(script, out, error):
    """End the command with status 2 and one line on stderr: ``out`` could not be written.

    Arguments
    ---------
    script : str
        The script's name that starts the message (``"train_speed.py"``).
    out : str or pathlib.Path
        The report file.
    error : OSError
        Why (its ``strerror``, else its text).

    Raises
    ------
    SystemExit
        Status 2, after ``<script>: error: <out>: cannot write the report (<reason>)``.

    Example
    -------
    >>> exit_cannot_write("demo.py", "r.json", PermissionError(13, "Permission denied"))
    Traceback (most recent call last):
    ...
    SystemExit: 2
    """
    print(f"{script}: error: {out}: cannot write the report ({error.strerror or error})", file=sys.stderr)
    sys.exit(2)


def progress(message):
    """A timestamped progress line on stderr.

    Example
    -------
    >>> progress("round 1/3")  # prints "  [HH:MM:SS] round 1/3" to stderr
    """
    print(f"  [{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

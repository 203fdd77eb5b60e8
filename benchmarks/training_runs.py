#!/usr/bin/env python3
"""Wall time of finished training runs, from their logs, side by side.

For every output folder of ``recipes/train.py`` (or of the post-hoc training
recipes) given: the wall time parsed from its ``log.txt`` ("Going into epoch 1" to
the last end-of-epoch checkpoint, or to the "Test accuracy" line after it; a resumed
run counts each epoch once, see
:func:`focalnet_lobes.training.logs.parse_training_log`), the number of epochs
(and whether all those of its ``hyperparams.yaml`` are done), the median epoch,
the test accuracy, and the PIQ / L-MAC training seconds of ``piq_training.json`` /
``lmac_training.json`` when present.

One markdown table, a column per run and a ratio column per run versus the first;
the JSON (with the command) only with ``--out FILE``: the folders are the user's, so
no default file is replaced (the recorded one, ``benchmarks/results/training_runs.json``,
was made with ``--out``; ``benchmarks/README.md``, "CPU costs").

    python benchmarks/training_runs.py results/focalnet_cpu/1986 results/vit_cpu/1986 [--out runs.json]

Authors
 * focalnet-audio contributors
"""

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402  (benchmarks/common.py; puts this checkout's library first)
from focalnet_lobes.training.logs import parse_training_log  # noqa: E402

POSTHOC = ("piq", "lmac")
POSTHOC_LABELS = {"piq": "PIQ", "lmac": "L-MAC"}


def summarize_training_folder(folder):
    """:func:`parse_training_log` of ``folder/log.txt`` plus the planned epochs and
    the post-hoc training cost.

    Arguments
    ---------
    folder : str or pathlib.Path
        Output folder of ``recipes/train.py`` (or of a post-hoc training recipe).

    Returns
    -------
    dict
        The log summary, ``folder``, ``name`` (the folder's name, with its
        parent's for a seed folder: ``focalnet_cpu/1986``), ``experiment_name``
        and ``planned_epochs`` (``number_of_epochs``) of its ``hyperparams.yaml``
        (``None`` if unknown), ``complete`` (all planned epochs done, ``None`` if
        unknown), ``piq_training`` and ``lmac_training`` (``piq_training.json`` /
        ``lmac_training.json``, ``None`` when absent).

    Raises
    ------
    ValueError
        ``log.txt`` missing or not the log of a training run (the file is named).

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
    text = ""
    if hparams_file.is_file():
        text = hparams_file.read_text(encoding="utf-8", errors="replace")
    match = re.search(r"^number_of_epochs:\s*(\d+)\s*(#.*)?$", text, re.MULTILINE)
    planned = int(match.group(1)) if match else None
    match = re.search(r"^experiment_name:\s*(\S+)", text, re.MULTILINE)
    costs = {}
    for kind in POSTHOC:
        cost_file = folder / f"{kind}_training.json"
        try:
            costs[f"{kind}_training"] = (
                json.loads(cost_file.read_text(encoding="utf-8")) if cost_file.is_file() else None
            )
        except json.JSONDecodeError as error:
            raise ValueError(f"{cost_file} is not valid JSON: {error}") from None
    return dict(
        summary,
        folder=str(folder),
        name=f"{folder.parent.name}/{folder.name}" if folder.name.isdigit() else folder.name,
        experiment_name=match.group(1) if match else None,
        planned_epochs=planned,
        complete=None if planned is None else summary["epochs"] >= planned,
        **costs,
    )


def distinct_names(runs):
    """Names that tell the runs apart: each run's ``name``, lengthened by parent folders while it is shared.

    ``cross_validate.py`` puts every fold's training in ``fold_<k>/model``: three such folders
    would all be ``model``, and their ratios (keyed by name) would overwrite each other.

    Arguments
    ---------
    runs : list of dict
        :func:`summarize_training_folder` results (``name`` and ``folder``).

    Returns
    -------
    list of str
        One name per run, in order; the same folder given twice keeps its name with
        `` (<position>)`` appended (1-based).

    Example
    -------
    >>> distinct_names([{"name": "model", "folder": "cv/fold_1/model"},
    ...                 {"name": "model", "folder": "cv/fold_2/model"},
    ...                 {"name": "lmac", "folder": "lmac"}])
    ['fold_1/model', 'fold_2/model', 'lmac']
    >>> distinct_names([{"name": "a", "folder": "x/a"}, {"name": "a", "folder": "x/a"}])
    ['a (1)', 'a (2)']
    """
    parts = [Path(run["folder"]).parts for run in runs]
    # one entry per folder (a run's name is a function of its folder); a folder given twice is
    # told apart by position at the end
    names = {folder: run["name"] for folder, run in zip(parts, runs)}
    depth = {folder: len(Path(name).parts) for folder, name in names.items()}
    while True:
        values = list(names.values())
        longer = [folder for folder, name in names.items() if values.count(name) > 1 and depth[folder] < len(folder)]
        if not longer:
            break
        for folder in longer:
            depth[folder] += 1
            names[folder] = str(Path(*folder[-depth[folder]:]))
    values = [names[folder] for folder in parts]
    return [f"{name} ({i + 1})" if values.count(name) > 1 else name for i, name in enumerate(values)]


def table(runs):
    """The markdown table of the runs (wall time, epochs, post-hoc training cost).

    The columns are the runs' ``name`` s, which :func:`main` makes distinct
    (:func:`distinct_names`).

    Example
    -------
    >>> runs = [{"name": "a", "epochs": 2, "wall_seconds": 600.0, "training_seconds": 590.0,
    ...          "epoch_seconds_median": 295.0, "test_accuracy": 90.0},
    ...         {"name": "b", "epochs": 2, "wall_seconds": 300.0, "training_seconds": 290.0,
    ...          "epoch_seconds_median": 140.0, "test_accuracy": None}]
    >>> print(table(runs).splitlines()[4])
    | wall time (min) | 10.0 | 5.0 | 0.50 |
    """
    names = [run["name"] for run in runs]

    def column(key, scale=None):
        return [None if run.get(key) is None else run[key] * (scale or 1) for run in runs]

    rows = [
        ("epochs", column("epochs"), "d"),
        ("wall time (min)", column("wall_seconds", 1 / 60), ".1f"),
        ("to last checkpoint (min)", column("training_seconds", 1 / 60), ".1f"),
        ("median epoch (s)", column("epoch_seconds_median"), ".1f"),
        ("epoch IQR (s)", [epoch_iqr(run) for run in runs], ".1f"),
        ("test accuracy (%)", column("test_accuracy"), ".2f"),
    ]
    for kind in POSTHOC:
        seconds = [(run.get(f"{kind}_training") or {}).get("seconds") for run in runs]
        if any(value is not None for value in seconds):
            rows.append((f"{POSTHOC_LABELS[kind]} training (s)", seconds, ".1f"))
    return common.format_table("Training runs (from log.txt)", names, rows)


def epoch_iqr(run):
    """Interquartile range of a run's epoch durations, seconds (``None`` under 2 epochs).

    Quartiles by linear interpolation (``statistics.quantiles(method="inclusive")``,
    numpy's default): for 10, 11, 12, 20 s, 14.0 - 10.75.

    Example
    -------
    >>> epoch_iqr({"epoch_seconds": {"1": 10.0, "2": 12.0, "3": 11.0, "4": 20.0}})
    3.25
    """
    values = list((run.get("epoch_seconds") or {}).values())
    if len(values) < 2:
        return None
    quartiles = statistics.quantiles(values, n=4, method="inclusive")
    return quartiles[2] - quartiles[0]


def parse_args(argv=None):
    """Command-line options (see the module docstring).

    Example
    -------
    >>> parse_args(["."]).training_folder
    ['.']
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("training_folder", nargs="+", help="recipe output folders with log.txt")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON file to write (none without it)")
    args = parser.parse_args(argv)
    for folder in args.training_folder:
        if not Path(folder).is_dir():
            parser.error(f"{folder} is not a folder")
    return args


def main(argv=None):
    """Summarize the runs, print the table, write the JSON (with ``--out``); returns the report.

    Example
    -------
    >>> main([])
    Traceback (most recent call last):
    ...
    SystemExit: 2
    """
    args = parse_args(argv)
    runs = [summarize_training_folder(folder) for folder in args.training_folder]
    for run, name in zip(runs, distinct_names(runs)):
        run["name"] = name
    ratios = {
        f"{run['name']} / {runs[0]['name']}": {
            key: common.ratio(run[key], runs[0][key])
            for key in ("wall_seconds", "training_seconds", "epoch_seconds_median")
        }
        for run in runs[1:]
    }
    report = {
        "benchmark": "Wall time of finished training runs, from their log.txt",
        "command": common.command_line("training_runs.py", argv),
        "runs": runs,
        "ratios": ratios,
    }
    return common.write_report_or_exit("training_runs.py", report, args.out, {"training_runs": table(runs)})


if __name__ == "__main__":
    try:
        main()
    except ValueError as error:  # a folder that is not a finished recipe run
        sys.exit(f"error: {error}")

#!/usr/bin/env python3
"""Single runs and cross-validations compared clip by clip on the first source's clips (one fold's).

Issue 18 lists "full-size models and the paper's configs when a GPU is lent" among its
levers. A lent GPU's time fits one training of the paper's FocalNet-B and ViT-B
(``hparams/focalnet.yaml``, ``hparams/vit.yaml``: folds 1-3 train, fold 4 validates,
the last epoch kept), not a cross-validation; the CPU recipes' cross-validations
already hold, for fold 4, models trained on the same folds 1-3. This benchmark pairs
such results on the clips they share:

- a *run* is one interpretation of one classifier on one split: the ``per_clip.json``
  written by ``recipes/interpret.py`` (the file or its folder);
- a *cross-validation* is one or more per-clip archives
  (``*_cv_results_per_clip.json.gz``, or cross-validation folders; several separated
  by commas are the seeds of one recipe), restricted to the clips of the first
  source (one held-out fold when the first source is a run on it).

Each source is named ``NAME=SPEC``. The first source's clips are the clips compared
(put the single run first to compare on its fold; a cross-validation first compares
on all its clips); every other source must hold each of them with the same label. The
paths of one source are all runs or all cross-validations; of a cross-validation the
first method is read (its classifier's by-design map, ``focalnet`` or ``vit``: the
controls share its predictions), or the one ``--method NAME=METHOD`` names. For each source the
table gives its accuracy on those clips (per seed, and the mean of each clip's
correctness over its seeds, with the 95% bootstrap CI over clips); for each pair of
sources, the paired accuracy difference in points (per clip: the first source's
correctness averaged over its seeds minus the second's; 95% bootstrap CI over clips,
:func:`focalnet_lobes.interpretation.stats.paired_difference`), the exact McNemar test
of every seed pair (:func:`focalnet_lobes.interpretation.stats.mcnemar_exact`), and
the paired differences of the interpretation metrics at ``--quantile`` where both
sources have them (each clip's value averaged over seeds first, as
``recipes/compare_cv.py`` does).

Nothing is trained or classified; it runs in seconds:

> python benchmarks/fold_comparison.py \\
>     FocalNet-B=benchmarks/results/paper_configs_gpu_s28/focalnet_base \\
>     ViT-B=benchmarks/results/paper_configs_gpu_s28/vit_base \\
>     L=benchmarks/results/cv_esc10_dev/focalnet_cpu_epochs52_seed1986_cv_results_per_clip.json.gz,...

Which fold the comparison covers is whatever the first source's clips are: the
caller's choice, fixed before looking at any result. Seeds of a cross-validation are
not independent of each other's clips, and one run is one draw of its training's
randomness: a paired CI over clips says how much the 80 clips of one fold leave
uncertain, not how another training run would score.

Authors
 * focalnet-audio contributors
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import command_line, write_report_or_exit  # noqa: E402  (benchmarks/common.py; this checkout's library first)

from focalnet_lobes.interpretation.evaluation import InterpretationError, load_per_clip  # noqa: E402
from focalnet_lobes.interpretation.stats import (  # noqa: E402
    N_RESAMPLES,
    SEED,
    bootstrap_ci,
    mcnemar_exact,
    paired_difference,
)
from focalnet_lobes.training.cross_validation import (  # noqa: E402
    CrossValidationError,
    load_pooled_per_clip,
)

METRICS = ("fid_i", "fa", "ff", "ai", "ad", "ag")
"""Interpretation metrics compared at ``--quantile`` (per-clip names of ``per_clip.json``)."""

METRIC_NAMES = {"fid_i": "FID-I", "fa": "FA", "ff": "FF", "ai": "AI (%)", "ad": "AD (%)", "ag": "AG (%)"}


def parse_source(text):
    """``NAME=SPEC`` of the command line: ``(name, [path, ...])``.

    Arguments
    ---------
    text : str
        ``NAME=PATH`` or ``NAME=PATH,PATH,...`` (the seeds of one cross-validation).

    Returns
    -------
    tuple
        The name and the list of paths (one or more).

    Raises
    ------
    ValueError
        No ``=``, an empty name or no path (one line naming the argument).

    Example
    -------
    >>> parse_source("L=a.json.gz,b.json.gz")
    ('L', ['a.json.gz', 'b.json.gz'])
    >>> parse_source("a.json.gz")
    Traceback (most recent call last):
    ...
    ValueError: 'a.json.gz': expected NAME=PATH[,PATH...]
    """
    name, sep, paths = text.partition("=")
    parts = [part for part in paths.split(",") if part]
    if not sep or not name.strip() or not parts:
        raise ValueError(f"{text!r}: expected NAME=PATH[,PATH...]")
    return name.strip(), parts


def read_seed(path, method=None):
    """One seed's per-clip results: ``(kind, {"ids", "labels", "predicted", "quantiles"})``.

    Arguments
    ---------
    path : str or pathlib.Path
        A ``per_clip.json`` (or its interpretation folder): kind ``"run"``; or a
        per-clip archive / cross-validation folder: kind ``"cv"``.
    method : str or None
        The cross-validation's method to read (e.g. ``interpret_energy``'s
        ``energy``); None: its first (the classifier's by-design map, ``focalnet``
        or ``vit``; the controls share its predictions).

    Raises
    ------
    ValueError
        Neither kind can be read, a ``method`` the cross-validation lacks, or a
        ``method`` for a single run (one line naming the path and the problem).

    Example
    -------
    >>> read_seed("/nonexistent")
    Traceback (most recent call last):
    ...
    ValueError: /nonexistent: no such file or folder
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: no such file or folder")
    if path.name.endswith(".gz") or (path.is_dir() and not (path / "per_clip.json").is_file()):
        try:
            pooled, _, methods = load_pooled_per_clip(path)
        except CrossValidationError as error:
            raise ValueError(str(error)) from None
        if method is not None and method not in methods:
            raise ValueError(f"{path}: no method {method!r} (it has {', '.join(methods)})")
        return "cv", pooled[method or methods[0]]
    if method is not None:
        raise ValueError(f"{path}: a single run has one method; --method is for cross-validations")
    try:
        return "run", load_per_clip(path)
    except InterpretationError as error:
        raise ValueError(str(error)) from None


def restrict(clips, ids, labels, where):
    """``clips`` reordered to ``ids``; each id must be there with the same label.

    Arguments
    ---------
    clips : dict
        ``{"ids", "labels", "predicted", "quantiles": {q: {metric: [value per clip]}}}``.
    ids, labels : list
        The clips compared and their labels, in order.
    where : str
        Names the source in errors.

    Returns
    -------
    dict
        ``correct`` (float array, 1.0 where right) and ``metrics`` (``{q: {metric:
        array}}``) over ``ids``.

    Raises
    ------
    ValueError
        A clip missing or with another label (one line naming the source and clip).

    Example
    -------
    >>> clips = {"ids": ["b", "a"], "labels": [1, 0], "predicted": [1, 1],
    ...          "quantiles": {"0.9": {"ff": [0.5, 0.25]}}}
    >>> r = restrict(clips, ["a"], [0], "X")
    >>> r["correct"].tolist(), r["metrics"]["0.9"]["ff"].tolist()
    ([0.0], [0.25])
    >>> restrict(clips, ["c"], [0], "X")
    Traceback (most recent call last):
    ...
    ValueError: X: no clip 'c' (it has 2 clips)
    """
    index = {clip: k for k, clip in enumerate(clips["ids"])}
    rows = []
    for clip, label in zip(ids, labels):
        if clip not in index:
            raise ValueError(f"{where}: no clip {clip!r} (it has {len(index)} clips)")
        k = index[clip]
        if clips["labels"][k] != label:
            raise ValueError(
                f"{where}: clip {clip!r} has label {clips['labels'][k]}, the first source {label}"
            )
        rows.append(k)
    rows = np.asarray(rows, dtype=int)
    correct = (np.asarray(clips["labels"])[rows] == np.asarray(clips["predicted"])[rows]).astype(float)
    metrics = {
        str(q): {name: np.asarray(values, dtype=float)[rows] for name, values in columns.items()}
        for q, columns in clips["quantiles"].items()
    }
    return {"correct": correct, "metrics": metrics}


def read_sources(sources, methods=None):
    """Every ``(name, [path, ...])`` read and restricted to the first source's clips.

    Arguments
    ---------
    sources : list of tuple
        ``(name, [path, ...])`` as :func:`parse_source` returns.
    methods : dict or None
        ``{name: method}``: the method read from that cross-validation source
        (:func:`read_seed`); other sources read their first.

    Returns
    -------
    tuple
        ``(ids, [{"name", "kind", "paths", "seeds": [restrict(...) per path]}])``.

    Raises
    ------
    ValueError
        Fewer than two sources, a repeated name, a method for no source, a source
        mixing runs and cross-validations, or a source :func:`read_seed` /
        :func:`restrict` rejects (one line).
    """
    if len(sources) < 2:
        raise ValueError("give at least two sources NAME=PATH to compare")
    names = [name for name, _ in sources]
    if len(set(names)) != len(names):
        raise ValueError(f"source names must differ: {names}")
    methods = dict(methods or {})
    unknown = sorted(set(methods) - set(names))
    if unknown:
        raise ValueError(f"--method names no source: {', '.join(unknown)} (sources: {', '.join(names)})")
    ids = labels = None
    read = []
    for name, paths in sources:
        kinds, seeds = set(), []
        for path in paths:
            kind, clips = read_seed(path, methods.get(name))
            if ids is None:
                ids, labels = list(clips["ids"]), list(clips["labels"])
            kinds.add(kind)
            seeds.append(restrict(clips, ids, labels, f"{name} ({path})"))
        if len(kinds) > 1:
            raise ValueError(f"{name}: mixes single runs and cross-validations; a source's seeds "
                             "must all be one kind")
        read.append({"name": name, "kind": kinds.pop(), "method": methods.get(name), "paths": list(paths),
                     "seeds": seeds})
    return ids, read


def _mean_over_seeds(columns):
    """Each clip's value averaged over the seeds' ``columns`` (None when a seed lacks it)."""
    return None if any(column is None for column in columns) else np.mean(columns, axis=0)


def _metric_columns(seeds, q, metric):
    """Each seed's per-clip values of ``metric`` at quantile ``q`` (None where it has none)."""
    return [seed["metrics"].get(q, {}).get(metric) for seed in seeds]


def _rounded(result, scale=1.0):
    return {k: (round(v * scale, 6) if isinstance(v, float) else v) for k, v in result.items()}


def analyse(ids, sources, quantile, n_resamples=N_RESAMPLES, seed=SEED):
    """Accuracies and paired differences of every pair of sources on ``ids``.

    Arguments
    ---------
    ids : list of str
        The clips compared.
    sources : list of dict
        As :func:`read_sources` returns.
    quantile : float
        The quantile at which the interpretation metrics are compared.
    n_resamples, seed : int
        Bootstrap resamples and seed (:func:`focalnet_lobes.interpretation.stats.bootstrap_ci`).

    Returns
    -------
    dict
        ``clips``, ``quantile``, ``sources`` (name, kind, paths, accuracy per seed and
        of the seed-mean with its CI, in %) and ``pairs`` (first, second, accuracy
        difference in points with CI, McNemar per seed pair, metric differences).

    Example
    -------
    >>> one = {"correct": np.array([1.0, 1.0, 0.0, 1.0]), "metrics": {}}
    >>> two = {"correct": np.array([1.0, 0.0, 0.0, 0.0]), "metrics": {}}
    >>> out = analyse(["a", "b", "c", "d"], [{"name": "A", "kind": "run", "paths": [], "seeds": [one]},
    ...     {"name": "B", "kind": "run", "paths": [], "seeds": [two]}], 0.9, n_resamples=200)
    >>> out["sources"][0]["accuracy"], out["pairs"][0]["accuracy_difference"]["mean"]
    (75.0, 50.0)
    >>> out["pairs"][0]["mcnemar"][0]["first_only"], out["pairs"][0]["mcnemar"][0]["second_only"]
    (2, 0)
    """
    q = str(quantile)
    mean_correct = {source["name"]: _mean_over_seeds([s["correct"] for s in source["seeds"]])
                    for source in sources}
    summaries = []
    for source in sources:
        ci = bootstrap_ci(mean_correct[source["name"]], n_resamples=n_resamples, seed=seed)
        summaries.append({
            "name": source["name"], "kind": source["kind"], "method": source.get("method"),
            "paths": source["paths"],
            "seeds": len(source["seeds"]),
            "accuracy_per_seed": [round(100 * float(s["correct"].mean()), 4) for s in source["seeds"]],
            "accuracy": round(100 * float(mean_correct[source["name"]].mean()), 4),
            "accuracy_ci": [round(100 * ci["low"], 4), round(100 * ci["high"], 4)],
        })
    pairs = []
    for i, first in enumerate(sources):
        for second in sources[i + 1:]:
            difference = paired_difference(
                mean_correct[first["name"]], mean_correct[second["name"]], n_resamples=n_resamples, seed=seed
            )
            mcnemar = [
                dict(mcnemar_exact(a["correct"] > 0.5, b["correct"] > 0.5), first_seed=j, second_seed=k)
                for j, a in enumerate(first["seeds"]) for k, b in enumerate(second["seeds"])
            ]
            metrics = {}
            for metric in METRICS:
                a = _mean_over_seeds(_metric_columns(first["seeds"], q, metric))
                b = _mean_over_seeds(_metric_columns(second["seeds"], q, metric))
                if a is not None and b is not None:
                    metrics[metric] = _rounded(
                        paired_difference(a, b, n_resamples=n_resamples, seed=seed)
                    )
            pairs.append({
                "first": first["name"], "second": second["name"],
                "accuracy_difference": _rounded(difference, 100.0),
                "mcnemar": mcnemar,
                "metrics": metrics,
            })
    return {"clips": len(ids), "quantile": quantile, "sources": summaries, "pairs": pairs}


def _signed(value, digits):
    return f"{value:+.{digits}f}".replace("-", "−")


def _difference_cell(result, digits):
    text = f"{_signed(result['mean'], digits)} [{_signed(result['low'], digits)}, {_signed(result['high'], digits)}]"
    return f"**{text}**" if result.get("significant") else text


def _mcnemar_cell(tests, listed=5):
    """Up to ``listed`` seed pairs spelled out; more summarised (range of p, count below 0.05).

    Example
    -------
    >>> _mcnemar_cell([{"first_only": 3, "second_only": 1, "p_value": 0.625}])
    '3 / 1, p = 0.625'
    >>> _mcnemar_cell([{"first_only": 3, "second_only": 1, "p_value": p} for p in (0.5, 0.04)], listed=1)
    '2 seed pairs: p from 0.04 to 0.5, 1 below 0.05'
    """
    if len(tests) <= listed:
        return "; ".join(f"{m['first_only']} / {m['second_only']}, p = {m['p_value']:.3g}" for m in tests)
    p_values = [m["p_value"] for m in tests]
    below = sum(p < 0.05 for p in p_values)
    return (f"{len(tests)} seed pairs: p from {min(p_values):.3g} to {max(p_values):.3g}, "
            f"{below} below 0.05")


def tables(result):
    """The markdown tables of :func:`analyse`'s result: sources, then pairs.

    Example
    -------
    >>> one = {"correct": np.array([1.0, 0.0]), "metrics": {}}
    >>> out = analyse(["a", "b"], [{"name": "A", "kind": "run", "paths": [], "seeds": [one]},
    ...     {"name": "B", "kind": "run", "paths": [], "seeds": [one]}], 0.9, n_resamples=100)
    >>> print(tables(out)["sources"].splitlines()[3])
    | A | run | 1 | 50.0 | 50.0% [0.0, 100.0] |
    """
    lines = [
        f"Accuracy on the {result['clips']} clips of the first source",
        "| source | kind | seeds | per seed (%) | mean over seeds [95% CI] |",
        "|---|---|---|---|---|",
    ]
    for source in result["sources"]:
        per_seed = ", ".join(f"{a:.1f}" for a in source["accuracy_per_seed"])
        low, high = source["accuracy_ci"]
        kind = source["kind"] + (f" ({source['method']})" if source.get("method") else "")
        lines.append(f"| {source['name']} | {kind} | {source['seeds']} | {per_seed} | "
                     f"{source['accuracy']:.1f}% [{low:.1f}, {high:.1f}] |")
    metric_names = [METRIC_NAMES[m] for m in METRICS]
    pair_lines = [
        f"Paired differences (first − second, same clips; metrics at q = {result['quantile']}; "
        "bold: the 95% bootstrap CI over clips excludes 0)",
        "| first − second | accuracy (points) | McNemar per seed pair (first only / second only, p) | "
        + " | ".join(metric_names) + " |",
        "|---|---|---|" + "---|" * len(metric_names),
    ]
    for pair in result["pairs"]:
        mcnemar = _mcnemar_cell(pair["mcnemar"])
        cells = [
            _difference_cell(pair["metrics"][m], 1 if m in ("ai", "ad", "ag") else 3)
            if m in pair["metrics"] else "-" for m in METRICS
        ]
        pair_lines.append(f"| {pair['first']} − {pair['second']} | "
                          f"{_difference_cell(pair['accuracy_difference'], 1)} | {mcnemar} | "
                          + " | ".join(cells) + " |")
    return {"sources": "\n".join(lines), "pairs": "\n".join(pair_lines)}


def main(argv=None):
    """Parse the command line, read the sources, print the tables and write the JSON.

    Arguments
    ---------
    argv : list of str or None
        The arguments (None: ``sys.argv[1:]``).

    Returns
    -------
    dict
        The report (:func:`analyse`'s result, the command and the tables).

    Raises
    ------
    SystemExit
        Status 2 with one line naming the file and the problem (unreadable sources,
        clips or labels that do not match, bad options, an unwritable ``--out``).
    """
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="A source is a single run (a per_clip.json of recipes/interpret.py, or a folder "
               "holding one) or a cross-validation (per-clip archives *_cv_results_per_clip.json.gz "
               "or cross-validation folders; several, comma-separated, are its seeds; its first "
               "method is read, or --method's). The first source's clips are compared: put a run on one fold "
               "first to compare on that fold. Every other source must hold those clips.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("sources", nargs="+", metavar="NAME=PATH[,PATH...]",
                        help="a per_clip.json (or its folder), or per-clip archives / cross-validation "
                             "folders (seeds, comma-separated); the first source's clips are compared")
    parser.add_argument("--method", action="append", default=[], metavar="NAME=METHOD",
                        help="read METHOD (e.g. energy) from cross-validation source NAME instead of its "
                             "first method (its by-design map); repeatable")
    parser.add_argument("--quantile", type=float, default=0.9,
                        help="the quantile at which the interpretation metrics are compared")
    parser.add_argument("--bootstrap_resamples", type=int, default=N_RESAMPLES,
                        help="bootstrap resamples of every 95%% CI (over clips)")
    parser.add_argument("--bootstrap_seed", type=int, default=SEED, help="seed of the bootstrap")
    parser.add_argument("--out", default=None, help="JSON report (none written without it; missing folders are created)")
    args = parser.parse_args(argv)
    try:
        if args.bootstrap_resamples < 1:
            raise ValueError(f"--bootstrap_resamples must be at least 1, got {args.bootstrap_resamples}")
        methods = {}
        for text in args.method:
            name, sep, method = text.partition("=")
            if not sep or not name or not method:
                raise ValueError(f"--method {text!r}: expected NAME=METHOD")
            methods[name] = method
        ids, sources = read_sources([parse_source(text) for text in args.sources], methods)
        result = analyse(ids, sources, args.quantile, args.bootstrap_resamples, args.bootstrap_seed)
    except ValueError as error:
        parser.exit(2, f"fold_comparison.py: error: {error}\n")
    report = {"benchmark": "fold_comparison", "command": command_line("fold_comparison.py", argv), **result}
    return write_report_or_exit("fold_comparison.py", report, args.out, tables(result))


if __name__ == "__main__":
    main()

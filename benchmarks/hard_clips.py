#!/usr/bin/env python3
"""Where the cross-validated errors are: the clips that (almost) every finished run gets wrong.

Issue 18 asks for 96% mean accuracy on ESC-10's cross-validation. Every lever tried
moved the pooled accuracy by about one clip in a hundred, and the FocalNet default has
stayed near 88%. This benchmark asks whether the missing points are spread over many
clips (which a better recipe could pick up one by one) or concentrated on a few clips
that every recipe gets wrong. It reads the per-clip archives of finished
cross-validations (``cv_results_per_clip.json.gz``, written by
``recipes/cross_validate.py``; ``benchmarks/results/cv_esc10_dev/`` holds every run
of sessions 6-24), one *run* per archive and classifier method (``focalnet``,
``vit``; the post-hoc and control methods share the classifier's predictions and
are skipped), and reports:

- each run's pooled accuracy and errors (the runs table);
- per clip, the share of runs that got it wrong, FocalNet and ViT runs side by side;
  the clips wrong in at least ``--threshold`` of the runs are the *hard* clips;
- what they imply for the goal: the errors a run may make at ``--goal`` (96% of 320
  clips: 12), the number of hard clips, how many of them the best run got right, the
  accuracy of the runs' per-clip plurality vote (every run's models together, far
  over any training budget) and of an oracle that is right wherever some run is;
- the hard clips grouped by source recording (the ESC-50 ``src_file``: takes of one
  recording are in one fold, so a held-out fold can hold several takes of a source no
  training clip resembles) and the error rate of every class over all runs.

Everything is read from the clip ids (``<fold>-<src_file>-<take>-<target>``) and the
archives; ``--metadata`` (the dataset's ``meta/esc50.csv``) adds the class names.
Nothing is trained or classified, so it runs in seconds:

> python benchmarks/hard_clips.py benchmarks/results/cv_esc10_dev/*_per_clip.json.gz \\
      --metadata ../shared/ESC-50-dev/meta/esc50.csv --out benchmarks/results/hard_clips.json

Runs of different recipes, seeds and fold plans are pooled as they are: a clip wrong in
every run is hard for this whole family of recipes, not for every possible model, and
runs of similar recipes are not independent draws (the shares are descriptive, without
CIs).

Authors
 * focalnet-audio contributors
"""

import argparse
import collections
import csv
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import command_line, write_report_or_exit  # noqa: E402  (benchmarks/common.py; this checkout's library first)

from focalnet_lobes.training.cross_validation import (  # noqa: E402
    CrossValidationError,
    load_pooled_per_clip,
)

CLASSIFIER_METHODS = ("focalnet", "vit")


def parse_clip_id(clip_id):
    """The fold, source recording, take and ESC-50 target of an ESC-50 clip id.

    Arguments
    ---------
    clip_id : str
        ``<fold>-<src_file>-<take>-<target>``, the ESC-50 file name without ``.wav``.

    Returns
    -------
    dict
        ``fold`` (int), ``source`` (``"<fold>-<src_file>"``, str), ``take`` (str),
        ``target`` (int, the ESC-50 class number 0-49).

    Raises
    ------
    ValueError
        The id does not have the four dash-separated fields (one line naming it).

    Example
    -------
    >>> parse_clip_id("1-172649-A-40")
    {'fold': 1, 'source': '1-172649', 'take': 'A', 'target': 40}
    >>> parse_clip_id("clip7")
    Traceback (most recent call last):
    ...
    ValueError: clip id 'clip7' is not <fold>-<src_file>-<take>-<target> (an ESC-50 file name)
    """
    parts = str(clip_id).split("-")
    try:
        fold, source, take, target = parts
        return {"fold": int(fold), "source": f"{fold}-{source}", "take": take, "target": int(target)}
    except ValueError:
        raise ValueError(
            f"clip id {clip_id!r} is not <fold>-<src_file>-<take>-<target> (an ESC-50 file name)"
        ) from None


def read_runs(archives, methods=CLASSIFIER_METHODS):
    """One run per archive and classifier method: its clips' labels and predictions.

    Arguments
    ---------
    archives : list of str or pathlib.Path
        Per-clip archives (``*_cv_results_per_clip.json.gz``) or cross-validation
        folders (:func:`focalnet_lobes.training.cross_validation.load_pooled_per_clip`).
    methods : tuple of str
        The classifier methods read from each archive (the other methods repeat
        their classifier's predictions).

    Returns
    -------
    list of dict
        One per run, in the archives' order: ``name`` (the archive's file name
        without ``_cv_results_per_clip.json.gz``, then ``:<method>``), ``method``,
        ``train_folds`` (the number of training folds of each held-out fold, the
        fold plan), ``folds`` (held-out folds), ``identity`` (the method and the
        folders of the models, else the name), ``ids``, ``labels``, ``predicted``
        (lists, sorted by clip id).

    Raises
    ------
    ValueError
        An archive that cannot be read, given twice, that holds none of
        ``methods``, a run already read (the same models' folders: a folder and its
        own archive, or a copy), or clips or labels that differ from the first run's
        (an unfinished cross-validation; one line naming the file).

    Example
    -------
    >>> import tempfile
    >>> from focalnet_lobes.interpretation.evaluation import write_per_clip
    >>> from focalnet_lobes.training.cross_validation import write_per_clip_archive
    >>> root = Path(tempfile.mkdtemp())
    >>> clips = {"ids": ["2-2-A-1", "1-1-A-0"], "labels": [1, 0], "predicted": [0, 0],
    ...          "quantiles": {}}
    >>> folder = write_per_clip(root / "focalnet", clips)["json"].parent
    >>> path = write_per_clip_archive(root / "a_cv_results_per_clip.json.gz",
    ...                               [{"test_fold": 1, "methods": {"focalnet": str(folder)}}])
    >>> [(run["name"], run["predicted"]) for run in read_runs([path])]
    [('a:focalnet', [0, 0])]
    """
    runs, seen = [], set()
    for archive in archives:
        if Path(archive).resolve() in seen:
            raise ValueError(f"{archive}: given twice (each run would count twice)")
        seen.add(Path(archive).resolve())
        try:
            pooled, folds, names = load_pooled_per_clip(archive)
            found = [method for method in methods if method in names]
            if not found:
                raise ValueError(f"holds none of the methods {', '.join(methods)} (has {', '.join(names)})")
            for method in found:
                run = _run(Path(archive), method, pooled[method], folds, runs[0] if runs else None)
                twin = next((other for other in runs if other["identity"] == run["identity"]), None)
                if twin is not None:
                    raise ValueError(f"its {method} run is {twin['name']} again (the same trained models "
                                     "or the same name: each run would count twice)")
                runs.append(run)
        except CrossValidationError as error:
            raise ValueError(str(error)) from None
        except (TypeError, KeyError, ValueError, AttributeError) as error:
            raise ValueError(f"{archive}: {error}") from None
    if not runs:
        raise ValueError("no archive given")
    return runs


def _run(archive, method, clips, folds, first):
    """One run of :func:`read_runs` (its clips sorted by id), checked against the ``first`` run."""
    ids, labels, predicted = clips["ids"], clips["labels"], clips["predicted"]
    if not ids:
        raise ValueError(f"no clips for method {method}")
    if not all(isinstance(i, str) for i in ids) or len(set(ids)) != len(ids):
        raise ValueError(f"the {method} clip ids are not distinct strings")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in [*labels, *predicted]):
        raise ValueError(f"the {method} labels and predictions are not all integers")
    for clip_id in ids:
        parse_clip_id(clip_id)
    order = sorted(range(len(ids)), key=lambda i: ids[i])
    stem = archive.name.replace("_per_clip.json.gz", "").replace("_cv_results", "")
    models = [fold.get("model_folder") for fold in folds]
    run = {
        "name": f"{stem}:{method}",
        # what makes two runs the same run: their models' folders, else their name
        "identity": (method, tuple(models)) if models and all(models) else f"{stem}:{method}",
        "method": method,
        "train_folds": sorted({len(fold.get("train_folds") or []) for fold in folds}),
        "folds": len(folds),
        "ids": [ids[i] for i in order],
        "labels": [labels[i] for i in order],
        "predicted": [predicted[i] for i in order],
    }
    if first is not None and (run["ids"] != first["ids"] or run["labels"] != first["labels"]):
        raise ValueError(
            f"its {method} clips or labels differ from those of {first['name']} ({len(ids)} clips in "
            f"{len(folds)} held-out folds vs {len(first['ids'])} in {first['folds']}; an unfinished "
            "cross-validation, or runs on different data, cannot be pooled)"
        )
    return run


def class_names(runs, metadata=None):
    """The class name of every label: from ``metadata`` (``esc50.csv``) or ``"target <n>"``.

    The label of a clip is the recipe's encoding (0..9 on ESC-10); the clip id
    carries the ESC-50 target, which ``metadata``'s ``target`` and ``category``
    columns name.

    Arguments
    ---------
    runs : list of dict
        As :func:`read_runs` returns (the first run's ids and labels are read).
    metadata : str, pathlib.Path or None
        The dataset's ``meta/esc50.csv``; None names the classes by their target.

    Returns
    -------
    dict
        ``label -> class name``.

    Raises
    ------
    ValueError
        ``metadata`` unreadable, without the ``target`` and ``category`` columns or
        without a target of the runs' clips, or one label given two targets (one line
        naming the file or the label).

    Example
    -------
    >>> runs = [{"ids": ["1-5-A-40", "1-6-A-0"], "labels": [1, 0]}]
    >>> class_names(runs)
    {0: 'target 0', 1: 'target 40'}
    """
    target_of = {}
    for clip_id, label in zip(runs[0]["ids"], runs[0]["labels"]):
        target = parse_clip_id(clip_id)["target"]
        if target_of.setdefault(label, target) != target:
            raise ValueError(f"label {label} is given to targets {target_of[label]} and {target}")
    if metadata is None:
        return {label: f"target {target}" for label, target in sorted(target_of.items())}
    problem = f"{metadata}: not an ESC-50 metadata table with target and category columns"
    if not Path(metadata).is_file():
        raise ValueError(f"{metadata}: no such file")
    try:
        with open(metadata, newline="", encoding="utf-8") as stream:
            reader = csv.DictReader(stream)
            if not {"target", "category"} <= set(reader.fieldnames or ()):
                raise ValueError(problem)
            names = {int(row["target"]): row["category"] for row in reader}
    except (OSError, ValueError, TypeError, csv.Error, UnicodeDecodeError) as error:
        raise ValueError(problem if str(error) == problem else f"{problem} ({error})") from None
    missing = sorted(set(target_of.values()) - set(names))
    if missing:
        raise ValueError(f"{metadata}: names no class for the targets {missing} of the runs' clips")
    return {label: names[target] for label, target in sorted(target_of.items())}


def top_votes(predictions):
    """The most frequent predictions: every label that ties for the most votes, sorted.

    Arguments
    ---------
    predictions : list of int
        One prediction per run.

    Returns
    -------
    list of int
        The labels with the most votes (several when tied).

    Example
    -------
    >>> top_votes([3, 1, 3, 1, 2]), top_votes([2, 2, 0])
    ([1, 3], [2])
    """
    counts = collections.Counter(predictions)
    most = max(counts.values())
    return sorted(label for label, count in counts.items() if count == most)


def analyse(runs, names, threshold=0.9, goal=0.96):
    """The hard clips of a set of runs and what they imply for an accuracy goal.

    Arguments
    ---------
    runs : list of dict
        As :func:`read_runs` returns (same clips and labels in every run).
    names : dict
        Class name of every label (:func:`class_names`).
    threshold : float
        A clip is *hard* when at least this share of the runs got it wrong, in (0, 1].
    goal : float
        Accuracy goal in (0, 1]: a run may make ``floor((1 - goal) * N)`` errors.

    Returns
    -------
    dict
        ``runs`` (name, method, fold plan, accuracy, errors of each run),
        ``clips`` (every clip ever wrong: id, fold, source, class, runs wrong / runs
        per method and overall, the most frequent wrong class: every class tied for
        the most wrong votes, by label, joined by " or "), ``hard`` (the ids of the
        hard clips), ``summary`` (clips, runs,
        allowed errors at the goal, clips never right, hard clips, the best runs (all
        of those tied at the best accuracy) and the most hard clips one of them got
        right, the plurality vote's accuracy (a tie for the most votes that includes
        the label counts 1/k right, k the tied labels; ``plurality_ties`` such clips,
        ``plurality_accuracy_range`` the accuracy with every tie wrong / right),
        the oracle's accuracy, the accuracy a run would have if it got only the hard
        clips wrong), ``sources`` (source
        recordings with a hard clip: takes, hard takes), ``classes`` (each class's
        error rate over all runs and its hard clips).

    Raises
    ------
    ValueError
        ``threshold`` or ``goal`` outside (0, 1].

    Example
    -------
    >>> ids = ["1-7-A-0", "1-7-B-0", "2-8-A-1", "2-9-A-1"]
    >>> runs = [{"name": f"r{k}", "method": "focalnet", "train_folds": [1], "ids": ids,
    ...          "labels": [0, 0, 1, 1], "predicted": p}
    ...         for k, p in enumerate([[1, 0, 1, 1], [1, 1, 1, 1], [1, 0, 1, 0]])]
    >>> result = analyse(runs, {0: "dog", 1: "rain"}, threshold=0.9, goal=0.75)
    >>> result["hard"], result["summary"]["allowed_errors"], result["summary"]["plurality_accuracy"]
    (['1-7-A-0'], 1, 0.75)
    >>> result["summary"]["best_runs"], result["summary"]["plurality_ties"]
    (['r0'], 0)
    >>> result["summary"]["oracle_accuracy"], result["sources"][0]["source"]
    (0.75, '1-7')
    """
    for option, value in (("threshold", threshold), ("goal", goal)):
        if not 0.0 < value <= 1.0:
            raise ValueError(f"--{option} must be in (0, 1], got {value}")
    ids, labels = runs[0]["ids"], runs[0]["labels"]
    n_clips, n_runs = len(ids), len(runs)
    methods = sorted({run["method"] for run in runs}, key=lambda m: (m not in CLASSIFIER_METHODS, m))
    wrong = [[run["predicted"][i] != labels[i] for run in runs] for i in range(n_clips)]
    run_rows = [
        {"name": run["name"], "method": run["method"], "train_folds": run["train_folds"],
         "accuracy": 1.0 - sum(w[k] for w in wrong) / n_clips, "errors": sum(w[k] for w in wrong)}
        for k, run in enumerate(runs)
    ]
    hard = [i for i in range(n_clips) if sum(wrong[i]) >= threshold * n_runs - 1e-9]
    parsed = [parse_clip_id(clip_id) for clip_id in ids]
    runs_of = {method: [k for k, run in enumerate(runs) if run["method"] == method] for method in methods}
    clips = []
    for i in range(n_clips):
        if not any(wrong[i]):
            continue
        wrong_labels = [run["predicted"][i] for run in runs if run["predicted"][i] != labels[i]]
        row = {"id": ids[i], "fold": parsed[i]["fold"], "source": parsed[i]["source"], "class": _name(names, labels[i]),
               "wrong": sum(wrong[i]), "runs": n_runs, "share": sum(wrong[i]) / n_runs,
               "most_often_predicted": " or ".join(_name(names, label) for label in top_votes(wrong_labels))}
        for method, index in runs_of.items():
            row[f"wrong_{method}"] = sum(wrong[i][k] for k in index)
            row[f"runs_{method}"] = len(index)
        clips.append(row)
    clips.sort(key=lambda row: (-row["share"], row["id"]))
    top = max(row["accuracy"] for row in run_rows)
    best = [k for k in range(n_runs) if run_rows[k]["accuracy"] == top]
    votes = [top_votes([run["predicted"][i] for run in runs]) for i in range(n_clips)]
    credit = [(y in v) / len(v) for v, y in zip(votes, labels)]
    ties = sum(len(v) > 1 and y in v for v, y in zip(votes, labels))
    sure = sum(v == [y] for v, y in zip(votes, labels))
    summary = {
        "clips": n_clips,
        "runs": n_runs,
        "runs_per_method": {method: len(index) for method, index in runs_of.items()},
        "threshold": threshold,
        "goal": goal,
        "allowed_errors": math.floor((1.0 - goal) * n_clips + 1e-9),
        "never_right": sum(all(w) for w in wrong),
        "hard_clips": len(hard),
        "hard_only_accuracy": 1.0 - len(hard) / n_clips,
        "best_runs": [run_rows[k]["name"] for k in best],
        "best_run_accuracy": top,
        "best_run_errors": run_rows[best[0]]["errors"],
        "hard_right_in_best_run": max(sum(not wrong[i][k] for i in hard) for k in best),
        "hard_right_most_in_one_run": max((sum(not wrong[i][k] for i in hard) for k in range(n_runs)), default=0),
        "mean_run_accuracy": sum(row["accuracy"] for row in run_rows) / n_runs,
        "plurality_accuracy": sum(credit) / n_clips,
        "plurality_ties": ties,
        "plurality_accuracy_range": [sure / n_clips, (sure + ties) / n_clips],
        "oracle_accuracy": 1.0 - sum(all(w) for w in wrong) / n_clips,
    }
    by_source = collections.defaultdict(list)
    for i in range(n_clips):
        by_source[parsed[i]["source"]].append(i)
    hard_set = set(hard)
    sources = [
        {"source": source, "fold": parsed[members[0]]["fold"], "class": _name(names, labels[members[0]]),
         "takes": len(members), "hard_takes": sum(i in hard_set for i in members),
         "share_wrong": sum(sum(wrong[i]) for i in members) / (len(members) * n_runs)}
        for source, members in by_source.items() if any(i in hard_set for i in members)
    ]
    sources.sort(key=lambda row: (-row["hard_takes"], -row["share_wrong"], row["source"]))
    classes = []
    for label in sorted(set(labels)):
        members = [i for i in range(n_clips) if labels[i] == label]
        classes.append({"class": _name(names, label), "clips": len(members),
                        "error_rate": sum(sum(wrong[i]) for i in members) / (len(members) * n_runs),
                        "hard_clips": sum(i in hard_set for i in members)})
    classes.sort(key=lambda row: (-row["error_rate"], row["class"]))
    return {"runs": run_rows, "clips": clips, "hard": [ids[i] for i in hard], "summary": summary,
            "sources": sources, "classes": classes}


def _name(names, label):
    """The class name of ``label`` (a predicted label no clip carries: ``"label <n>"``)."""
    return names.get(label, f"label {label}")


def tables(result):
    """The markdown tables of :func:`analyse`'s result.

    Arguments
    ---------
    result : dict
        As :func:`analyse` returns.

    Returns
    -------
    dict
        ``name -> markdown table`` for ``runs``, ``hard_clips`` (the hard clips, then
        every clip wrong in at least half of the runs), ``sources``, ``classes`` and
        ``summary``.
    """
    s = result["summary"]
    methods = list(s["runs_per_method"])
    lines = ["Runs (one per archive and classifier)", "| run | training folds | accuracy | errors |",
             "|---|---|---|---|"]
    lines += [f"| {r['name']} | {', '.join(map(str, r['train_folds']))} | {100 * r['accuracy']:.2f}% | {r['errors']} |"
              for r in result["runs"]]
    runs_table = "\n".join(lines)
    header = ["clip", "fold", "class", "wrong in (all runs)",
              *[f"wrong in ({m} runs)" for m in methods], "most often predicted"]
    lines = [f"Hard clips (wrong in at least {100 * s['threshold']:.0f}% of the {s['runs']} runs), then every clip "
             "wrong in at least half of them",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in result["clips"]:
        if row["share"] < min(0.5, s["threshold"]):
            break
        cells = [row["id"] + (" (hard)" if row["id"] in result["hard"] else ""), str(row["fold"]), row["class"],
                 f"{row['wrong']}/{row['runs']}",
                 *[f"{row[f'wrong_{m}']}/{row[f'runs_{m}']}" for m in methods], row["most_often_predicted"]]
        lines.append("| " + " | ".join(cells) + " |")
    clips_table = "\n".join(lines)
    lines = ["Source recordings with a hard clip", "| source | fold | class | takes | hard takes | share of their "
             "predictions wrong |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['source']} | {r['fold']} | {r['class']} | {r['takes']} | {r['hard_takes']} | "
              f"{100 * r['share_wrong']:.1f}% |" for r in result["sources"]]
    sources_table = "\n".join(lines)
    lines = ["Classes (error rate over every run's predictions)", "| class | clips | error rate | hard clips |",
             "|---|---|---|---|"]
    lines += [f"| {r['class']} | {r['clips']} | {100 * r['error_rate']:.1f}% | {r['hard_clips']} |"
              for r in result["classes"]]
    classes_table = "\n".join(lines)
    per_method = ", ".join(f"{m} {n}" for m, n in s["runs_per_method"].items())
    rows = [
        ("runs", f"{s['runs']} ({per_method})"),
        ("clips", str(s["clips"])),
        (f"errors allowed at the goal ({100 * s['goal']:.0f}%)", str(s["allowed_errors"])),
        (f"hard clips (wrong in >= {100 * s['threshold']:.0f}% of the runs)", str(s["hard_clips"])),
        ("clips wrong in every run", str(s["never_right"])),
        ("accuracy with only the hard clips wrong", f"{100 * s['hard_only_accuracy']:.2f}%"),
        ("mean run accuracy", f"{100 * s['mean_run_accuracy']:.2f}%"),
        ("best run" + ("s" if len(s["best_runs"]) > 1 else ""),
         f"{', '.join(s['best_runs'])}: {100 * s['best_run_accuracy']:.2f}% ({s['best_run_errors']} errors)"),
        ("most hard clips right in a best run", f"{s['hard_right_in_best_run']} of {s['hard_clips']}"),
        ("most hard clips right in one run", f"{s['hard_right_most_in_one_run']} of {s['hard_clips']}"),
        ("plurality vote of all runs (not a recipe: every run's training; a tie counts 1/k)",
         f"{100 * s['plurality_accuracy']:.2f}% ({s['plurality_ties']} tied clips: "
         f"{100 * s['plurality_accuracy_range'][0]:.2f}% to {100 * s['plurality_accuracy_range'][1]:.2f}%)"),
        ("oracle (right where any run is right)", f"{100 * s['oracle_accuracy']:.2f}%"),
    ]
    summary_table = "\n".join(["Summary", "| quantity | value |", "|---|---|",
                               *[f"| {label} | {value} |" for label, value in rows]])
    return {"runs": runs_table, "hard_clips": clips_table, "sources": sources_table, "classes": classes_table,
            "summary": summary_table}


def main(argv=None):
    """Parse the command line, read the archives, print the tables and write the JSON.

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
        Status 2 with one line naming the file and the problem (unreadable or
        mismatched archives, bad metadata, bad options, an unwritable ``--out``).
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("archives", nargs="+",
                        help="per-clip archives (*_cv_results_per_clip.json.gz) or cross-validation folders")
    parser.add_argument("--metadata", default=None, help="the dataset's meta/esc50.csv, for the class names")
    parser.add_argument("--methods", nargs="+", default=list(CLASSIFIER_METHODS),
                        help="classifier methods read from each archive")
    parser.add_argument("--threshold", type=float, default=0.9,
                        help="a clip is hard when at least this share of the runs got it wrong")
    parser.add_argument("--goal", type=float, default=0.96, help="accuracy goal (issue 18: 0.96)")
    parser.add_argument("--out", default=None, help="JSON report (none written without it; missing folders are created)")
    args = parser.parse_args(argv)
    try:
        runs = read_runs(args.archives, tuple(args.methods))
        result = analyse(runs, class_names(runs, args.metadata), args.threshold, args.goal)
    except ValueError as error:
        parser.exit(2, f"hard_clips.py: error: {error}\n")
    report = {"benchmark": "hard_clips", "command": command_line("hard_clips.py", argv), **result}
    return write_report_or_exit("hard_clips.py", report, args.out, tables(result))


if __name__ == "__main__":
    main()

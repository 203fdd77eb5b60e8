"""Comparing interpretation methods: tables, paired differences and the report.

The library side of ``recipes/compare.py``: it reads the ``metrics.json`` files
written by ``recipes/interpret.py`` (or any recipe writing the same schema, e.g.
PIQ with ``"method": "piq"``), labels them, builds one row per method x quantile
(:func:`comparison_rows`), compares every method clip by clip with the by-design
map of the same classifier (:func:`paired_differences`: mean difference with its
95% bootstrap CI, :func:`focalnet_lobes.interpretation.evaluation.paired_comparison`; the two
classifiers' accuracies with the exact McNemar test), lists the controls each
classifier gets (:func:`named_runs`), runs ``recipes/interpret.py`` where a result
is missing (:func:`ensure_interpretation`, as a subprocess) and writes
``comparison.{md,csv,json,png}`` (:func:`write_comparison`).

Authors
 * focalnet-audio contributors
"""

import csv
import json
import logging
import re
import subprocess
import sys
from pathlib import Path

from focalnet_lobes.interpretation.evaluation import (
    METRIC_TITLES,
    InterpretationError,
    configured_interpreter,
    difference_cell,
    format_quantile,
    format_value,
    load_per_clip,
    markdown_table_header,
    metric_rows,
    paired_comparison,
    plot_fidelity_faithfulness,
)
from focalnet_lobes.interpretation.stats import N_RESAMPLES, SEED

logger = logging.getLogger(__name__)

#: Metrics of the per-quantile tables, with the direction in which they improve.
COMPARED_KEYS = (
    ("fid_i", "higher"),
    ("fa", "lower"),
    ("ff", "higher"),
    ("ai", "higher"),
    ("ad", "lower"),
    ("ag", "higher"),
    ("sparsity", "higher"),
    ("complexity", "lower"),
)
#: The repository's root (source checkout): default folders of the recipes and YAMLs.
REPO = Path(__file__).resolve().parents[2]
#: The repository's hparams folder (interpret_<method>.yaml).
HPARAMS_DIR = REPO / "hparams"
#: The repository's recipes folder (interpret.py is run as a subprocess).
RECIPES_DIR = REPO / "recipes"
#: Methods that ``--focalnet``/``--vit``/``--random`` interpret, in table order.
NAMED_METHODS = ("focalnet", "vit", "random")
#: Controls run on every named classifier (``--controls``), in table order.
CONTROL_METHODS = ("energy", "saliency", "gradcam", "random")
#: The by-design method of each backbone: the reference of the paired differences.
BY_DESIGN = {"focalnet": "focalnet", "vit": "vit"}
ARROWS = {"higher": "↑", "lower": "↓"}


class ComparisonError(ValueError):
    """Nothing to compare, or a result that is not an interpretation ``metrics.json``."""


def find_metrics_files(path):
    """The ``metrics.json`` files a path stands for.

    A ``metrics.json`` file itself; a folder holding one; a folder whose
    subfolders hold one (an ``interpretation/`` folder); or a classifier folder
    with ``interpretation/*/metrics.json``.

    Arguments
    ---------
    path : str or pathlib.Path
        File or folder.

    Returns
    -------
    list of pathlib.Path
        Sorted.

    Example
    -------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> for method in ("focalnet", "random"):
    ...     (root / "interpretation" / method).mkdir(parents=True)
    ...     _ = (root / "interpretation" / method / "metrics.json").write_text("{}")
    >>> [p.parent.name for p in find_metrics_files(root)]
    ['focalnet', 'random']
    >>> [p.parent.name for p in find_metrics_files(root / "interpretation" / "random")]
    ['random']
    """
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ComparisonError(f"{path} does not exist")
    if (path / "metrics.json").is_file():
        return [path / "metrics.json"]
    found = sorted(path.glob("*/metrics.json")) or sorted(
        path.glob("interpretation/*/metrics.json")
    )
    if not found:
        raise ComparisonError(
            f"no metrics.json in {path}, its subfolders or {path / 'interpretation'} "
            "(run recipes/interpret.py first, or pass --focalnet/--vit to run it)"
        )
    return found


def load_result(metrics_file):
    """Read one ``metrics.json`` and check it has what the table needs.

    Arguments
    ---------
    metrics_file : str or pathlib.Path
        A ``metrics.json`` of ``recipes/interpret.py``'s schema.

    Returns
    -------
    dict
        Its content, with ``"metrics_file"`` added.

    Example
    -------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "metrics.json"
    >>> _ = path.write_text('{"method": "random", "accuracy": 0.5, "quantiles": {"0.9": {}}}')
    >>> load_result(path)["method"]
    'random'
    >>> _ = path.write_text('{"method": "random"}')
    >>> load_result(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    focalnet_lobes.interpretation.comparison.ComparisonError: .../metrics.json is not an interpretation metrics.json: it lacks [...]
    """
    metrics_file = Path(metrics_file)
    try:
        result = json.loads(metrics_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ComparisonError(f"cannot read {metrics_file}: {error}") from error
    missing = [
        key
        for key in ("method", "accuracy", "quantiles")
        if not isinstance(result, dict) or key not in result
    ]
    if missing:
        raise ComparisonError(
            f"{metrics_file} is not an interpretation metrics.json: it lacks {missing}"
        )
    result["metrics_file"] = str(metrics_file)
    return result


def label_results(results):
    """Give each result a unique label: its method, plus "soft" and the classifier folder if needed.

    Results of the same method are told apart by their mask type (``"piq (soft)"``),
    then by their classifier folder, then by a number.

    Arguments
    ---------
    results : list of dict
        Loaded ``metrics.json`` dicts.

    Returns
    -------
    list of dict
        The same dicts with ``"label"`` set.

    Example
    -------
    >>> results = [{"method": "focalnet", "classifier_folder": "runs/a"},
    ...            {"method": "focalnet", "classifier_folder": "runs/b"}, {"method": "vit"}]
    >>> [r["label"] for r in label_results(results)]
    ['focalnet (runs/a)', 'focalnet (runs/b)', 'vit']
    >>> results = [{"method": "energy", "backbone": "focalnet"},
    ...            {"method": "energy", "backbone": "vit"}]
    >>> [r["label"] for r in label_results(results)]
    ['energy (focalnet)', 'energy (vit)']
    >>> results = [{"method": "piq", "soft": False}, {"method": "piq", "soft": True}]
    >>> [r["label"] for r in label_results(results)]
    ['piq', 'piq (soft)']
    """

    def count(key):
        counts = {}
        for result in results:
            counts[key(result)] = counts.get(key(result), 0) + 1
        return counts

    by_method = count(lambda r: r["method"])
    by_mask = count(lambda r: (r["method"], bool(r.get("soft"))))
    seen = set()
    for result in results:
        label = result["method"]
        if result.get("soft"):
            label = f"{label} (soft)"
        if by_mask[(result["method"], bool(result.get("soft")))] > 1:
            same = [
                r for r in results
                if (r["method"], bool(r.get("soft"))) == (result["method"], bool(result.get("soft")))
            ]
            backbones = [r.get("backbone") for r in same]
            if result.get("backbone") and len(set(backbones)) == len(backbones):
                label = f"{label} ({result['backbone']})"
            else:
                label = f"{label} ({result.get('classifier_folder', '?')})"
        elif by_method[result["method"]] == 1:
            label = result["method"]
        base, index = label, 2
        while label in seen:
            label = f"{base} #{index}"
            index += 1
        seen.add(label)
        result["label"] = label
    return results


def comparison_rows(results):
    """One row per method x quantile: label, method, classifier, split, accuracy, every metric.

    Arguments
    ---------
    results : list of dict
        Labelled results (:func:`label_results`).

    Returns
    -------
    list of dict
        Ordered by method then quantile.

    Example
    -------
    >>> results = label_results([{"method": "random", "accuracy": 0.5, "split": "test",
    ...     "quantiles": {"0.9": {"fid_i": 0.2}, "0.5": {"fid_i": 0.4}}}])
    >>> [(row["label"], row["quantile"], row["fid_i"]) for row in comparison_rows(results)]
    [('random', 0.5, 0.4), ('random', 0.9, 0.2)]
    """
    rows = []
    for result in results:
        header = {
            "label": result["label"],
            "method": result["method"],
            "backbone": result.get("backbone"),
            "classifier_folder": result.get("classifier_folder"),
            "split": result.get("split"),
            "num_clips": result.get("num_clips"),
            "accuracy": result["accuracy"],
        }
        if result.get("accuracy_ci"):
            header["accuracy_low"] = result["accuracy_ci"]["low"]
            header["accuracy_high"] = result["accuracy_ci"]["high"]
        for row in metric_rows(result):
            row_ci = (result.get("ci") or {}).get(format_quantile(row["quantile"]), {})
            for key, ci in row_ci.items():
                row[f"{key}_low"], row[f"{key}_high"] = ci["low"], ci["high"]
            rows.append({**header, **row})
    return rows


def paired_differences(results, n_resamples=N_RESAMPLES, seed=SEED):
    """Paired differences of every method against the by-design map of the same classifier.

    For each result whose classifier folder and split also have a by-design result
    (``"focalnet"`` or ``"vit"``), every metric at every quantile is compared clip
    by clip (:func:`focalnet_lobes.interpretation.evaluation.paired_comparison`: method minus
    by-design map, 95% bootstrap CI, significant when the CI excludes 0). The
    by-design maps of two classifiers on the same split are also compared (first
    minus second), with the exact McNemar test of their accuracies. Results
    without ``per_clip.json`` next to their ``metrics.json`` are skipped.

    Arguments
    ---------
    results : list of dict
        Labelled results (:func:`label_results`) with ``metrics_file``.
    n_resamples, seed :
        Of the bootstrap.

    Returns
    -------
    list of dict
        ``{"label", "reference", "clips", "quantiles", "accuracy"}`` per pair.

    Example
    -------
    >>> paired_differences(label_results([{"method": "random", "quantiles": {}}]))
    []
    """

    def per_clip(result):
        if not result.get("metrics_file"):
            return None
        try:
            return load_per_clip(Path(result["metrics_file"]).parent)
        except InterpretationError as error:
            logger.warning("no paired differences for %s: %s", result["label"], error)
            return None

    references = [
        r for r in results if BY_DESIGN.get(r.get("backbone")) == r["method"] and not r.get("soft")
    ]
    pairs = []
    for reference in references:
        for result in results:
            if result is reference or result in references:
                continue
            if (result.get("classifier_folder"), result.get("split")) != (
                reference.get("classifier_folder"),
                reference.get("split"),
            ):
                continue
            pairs.append((result, reference))
    for index, first in enumerate(references):
        for second in references[index + 1 :]:
            if first.get("split") == second.get("split"):
                pairs.append((first, second))
    report = []
    for result, reference in pairs:
        clips, reference_clips = per_clip(result), per_clip(reference)
        if clips is None or reference_clips is None:
            continue
        difference = paired_comparison(clips, reference_clips, n_resamples=n_resamples, seed=seed)
        report.append({"label": result["label"], "reference": reference["label"], **difference})
    return report


def markdown_differences(differences):
    """Markdown tables of :func:`paired_differences`: one per quantile, one row per pair.

    Example
    -------
    >>> difference = {"mean": 0.2, "low": 0.1, "high": 0.3, "n": 9, "significant": True}
    >>> pairs = [{"label": "energy (focalnet)", "reference": "focalnet", "clips": 9,
    ...           "quantiles": {"0.9": {"fid_i": difference}},
    ...           "accuracy": {"n": 9, "first_only": 0, "second_only": 0, "p_value": 1.0,
    ...                        "accuracy_difference": 0.0}}]
    >>> "| energy (focalnet) − focalnet | 9 | **+0.200 [+0.100, +0.300]** |" in markdown_differences(pairs)
    True
    """
    if not differences:
        return ""
    lines = [
        "",
        "# Paired differences (method − reference, same clips)",
        "",
        "Mean of the per-clip difference with its 95% bootstrap CI; **bold** when the CI "
        "excludes 0 (a difference the benchmark can tell) and the mean is at least 0.0005 "
        "(a systematic difference below it, e.g. mask areas that differ by quantile ties, is "
        "not marked), plain otherwise; when a number would print as 0.000 without being 0, "
        "the cell's three numbers print with the decimals that show its two first digits.",
    ]
    quantiles = sorted({key for d in differences for key in d["quantiles"]}, key=float)
    for key in quantiles:
        names = [
            name
            for name, _ in COMPARED_KEYS + (("mask_area", "higher"),)
            if any(name in d["quantiles"].get(key, {}) for d in differences)
        ]
        lines += [
            "",
            f"## Differences at q = {key}",
            "",
            *markdown_table_header(["Pair", "Clips"], names),
        ]
        for d in differences:
            row = d["quantiles"].get(key, {})
            cells = [difference_cell(row[name]) if name in row else "-" for name in names]
            lines.append(
                f"| {d['label']} − {d['reference']} | {d['clips']} | " + " | ".join(cells) + " |"
            )
    tests = [
        f"- {d['label']} vs {d['reference']}: {d['accuracy']['first_only']} clips right only "
        f"with the first, {d['accuracy']['second_only']} only with the second, "
        f"difference {100 * d['accuracy']['accuracy_difference']:+.1f} points, "
        f"p = {d['accuracy']['p_value']:.3g}"
        for d in differences
        if d["accuracy"]["first_only"] or d["accuracy"]["second_only"]
    ]
    if tests:
        lines += ["", "Accuracy, exact McNemar test on the same clips (when the classifiers differ):", ""]
        lines += tests
    return "\n".join(lines) + "\n"


def markdown_comparison(results, differences=None):
    """The markdown comparison: a summary per method, one table per quantile, paired differences.

    Arguments
    ---------
    results : list of dict
        Labelled results (:func:`label_results`).
    differences : list of dict or None
        From :func:`paired_differences`.

    Returns
    -------
    str

    Example
    -------
    >>> results = label_results([
    ...     {"method": "focalnet", "accuracy": 0.9, "quantiles": {"0.9": {"fid_i": 0.8}}},
    ...     {"method": "random", "accuracy": 0.9, "quantiles": {"0.9": {"fid_i": 0.3, "fa": 0.4}}}])
    >>> table = markdown_comparison(results)
    >>> "## q = 0.9" in table, "| random | 90.0 | 0.300 | 0.400 |" in table
    (True, True)
    """
    lines = [
        "# Interpretation methods compared",
        "",
        "| Method | Classifier | Split | Clips | Accuracy (%) | Interpretation (ms/clip) "
        "| Overhead over the classifier (ms/clip) | Interpreter training (s) "
        "| Overlap: keeps s1 | Overlap at equal RMS: keeps s1 | Overlap: predicts s1 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        latency = result.get("latency_ms_per_clip") or {}
        overlap = result.get("overlap") or {}
        training = (result.get("training_cost") or {}).get("seconds")
        lines.append(
            "| "
            + " | ".join(
                [
                    result["label"],
                    f"`{result.get('classifier_folder', '?')}`",
                    str(result.get("split", "?")),
                    str(result.get("num_clips", "?")),
                    _accuracy(result),
                    _milliseconds(latency.get("interpretation_total_ms")),
                    _milliseconds(latency.get("map_mask_overhead_ms")),
                    "-" if training is None else f"{training:.1f}",
                    _percent(overlap.get("keeps_s1_rate")),
                    _percent((result.get("overlap_equal_rms") or {}).get("keeps_s1_rate")),
                    _percent(overlap.get("predicts_s1_rate")),
                ]
            )
            + " |"
        )
    splits = {result.get("split") for result in results}
    if len(splits) > 1:
        lines += [
            "",
            f"**Note:** the methods were evaluated on different splits {sorted(map(str, splits))}.",
        ]
    quantiles = sorted({float(key) for result in results for key in result["quantiles"]})
    header = " | ".join(
        f"{METRIC_TITLES[key]} {ARROWS[direction]}" for key, direction in COMPARED_KEYS
    )
    for q in quantiles:
        lines += [
            "",
            f"## q = {format_quantile(q)}",
            "",
            f"| Method | Accuracy (%) | {header} |",
            "|---" * (len(COMPARED_KEYS) + 2) + "|",
        ]
        for result in results:
            metrics = result["quantiles"].get(format_quantile(q))
            if metrics is None:
                metrics = next(
                    (value for key, value in result["quantiles"].items() if float(key) == q), {}
                )
            row_ci = (result.get("ci") or {}).get(format_quantile(q), {})
            values = [
                format_value(metrics.get(key))
                + (f" [{format_value(row_ci[key]['low'])}, {format_value(row_ci[key]['high'])}]"
                   if key in row_ci else "")
                for key, _ in COMPARED_KEYS
            ]
            lines.append(
                f"| {result['label']} | {_accuracy(result)} | "
                + " | ".join(values)
                + " |"
            )
    lines += [
        "",
        "FID-I: the masked-in input keeps the predicted class; FA: drop of the predicted "
        "class's probability with only the masked-in part (the paper's faithfulness); FF: "
        "the same with the masked-out part; AI, AD, AG in %; sparsity: Gini index of the "
        "map; complexity: entropy of the normalised map (nats). Arrows: the better direction. "
        "Interpreter training: what training the interpreter itself took (PIQ; none "
        "for by-design maps). Overlap: pairs of clips mixed w1 s1 + w2 s2 (0.8 / 0.2 by "
        "default); share of pairs where the mask keeps more of s1's energy than of s2's, "
        "and where the prediction is s1's class; at equal RMS, s2 is scaled to s1's RMS and "
        "the weights are 0.5 / 0.5 (by default), so loudness alone cannot pick s1. "
        "[low, high]: 95% bootstrap CI over clips (scipy.stats.bootstrap, BCa).",
    ]
    return "\n".join(lines) + "\n" + markdown_differences(differences or [])


def _accuracy(result):
    ci = result.get("accuracy_ci")
    text = f"{100 * result['accuracy']:.1f}"
    return text + (f" [{100 * ci['low']:.1f}, {100 * ci['high']:.1f}]" if ci else "")


def _milliseconds(value):
    return "-" if value is None else f"{value:.2f}"


def _percent(value):
    return "-" if value is None else f"{100 * value:.0f}%"


def write_comparison(results, output_folder, n_resamples=N_RESAMPLES, seed=SEED):
    """Write ``comparison.{md,csv,json,png}`` for labelled results.

    Arguments
    ---------
    results : list of dict
        Loaded ``metrics.json`` dicts (labelled here if they are not).
    output_folder : str or pathlib.Path
        Created if needed.
    n_resamples, seed :
        Of the bootstrap of the paired differences.

    Returns
    -------
    dict
        Paths of the files written.

    Example
    -------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> results = [{"method": m, "accuracy": 0.5, "quantiles": {"0.5": {"fid_i": f, "fa": 0.1},
    ...             "0.9": {"fid_i": f / 2, "fa": 0.2}}}
    ...            for m, f in (("focalnet", 0.8), ("random", 0.4))]
    >>> sorted(p.name for p in write_comparison(results, folder).values())
    ['comparison.csv', 'comparison.json', 'comparison.md', 'comparison.png']
    >>> len((folder / "comparison.csv").read_text().splitlines())  # header + 2 methods x 2 q
    5
    """
    if not results:
        raise ComparisonError("no results to compare")
    if any("label" not in result for result in results):
        results = label_results(results)
    folder = Path(output_folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "markdown": folder / "comparison.md",
        "csv": folder / "comparison.csv",
        "json": folder / "comparison.json",
        "plot": folder / "comparison.png",
    }
    rows = comparison_rows(results)
    differences = paired_differences(results, n_resamples=n_resamples, seed=seed)
    columns = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    with open(paths["csv"], "w", newline="", encoding="utf-8") as fout:
        writer = csv.DictWriter(fout, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    summary_keys = (
        "label",
        "method",
        "interpreter",
        "backbone",
        "classifier_folder",
        "metrics_file",
        "split",
        "num_clips",
        "accuracy",
        "accuracy_ci",
        "soft",
        "latency_ms_per_clip",
        "overlap",
        "overlap_equal_rms",
        "training_cost",
    )
    report = {
        "quantiles": sorted({row["quantile"] for row in rows}),
        "methods": [{key: result.get(key) for key in summary_keys} for result in results],
        "rows": rows,
        "paired_differences": differences,
    }
    paths["json"].write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    paths["markdown"].write_text(markdown_comparison(results, differences), encoding="utf-8")
    plot_fidelity_faithfulness(paths["plot"], {result["label"]: result for result in results})
    return paths

#: Overrides that say where to run or write, not what to compute.
_PLACE_KEYS = ("output_folder", "classifier_folder", "device")


def _top_level_values(yaml_text):
    """``{key: value}`` of the plain ``key: value`` lines at column 0 (tags and blocks skipped)."""
    import yaml

    values = {}
    for line in yaml_text.splitlines():
        match = re.match(r"^([A-Za-z_]\w*):(.*)$", line)
        if not match:
            continue
        text = match.group(2).split(" #")[0].strip()
        if text.startswith(("!", "&", "*")):
            continue
        try:
            values[match.group(1)] = yaml.safe_load(text) if text else None
        except yaml.YAMLError:
            continue
    return values


def changed_settings(output_folder, overrides, hparams_file, existing):
    """What differs between a finished interpretation and the one asked for now.

    Arguments
    ---------
    output_folder : str or pathlib.Path
        The finished interpretation (its resolved ``hyperparams.yaml``).
    overrides : dict
        The overrides asked for now (values as given on the command line).
    hparams_file : str or pathlib.Path
        The interpretation YAML that would run.
    existing : dict
        The finished ``metrics.json``.

    Returns
    -------
    str
        ``""`` when the result can be reused, else e.g. ``"max_clips: None -> 8"``:
    every plain top-level value of the YAML with the overrides applied is
    compared with the finished run's (where it recorded it).

    Example
    -------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "hyperparams.yaml").write_text("split: valid\\nmax_clips:  # all\\n")
    >>> yaml_file = folder / "interpret_x.yaml"
    >>> _ = yaml_file.write_text("interpreter: !new:focalnet_lobes.X.EnergyInterpreter\\n")
    >>> changed_settings(folder, {"split": "valid"}, yaml_file, {"interpreter": "EnergyInterpreter"})
    ''
    >>> changed_settings(folder, {"max_clips": "8"}, yaml_file, {"interpreter": "EnergyInterpreter"})
    'max_clips: None -> 8'
    >>> changed_settings(folder, {}, yaml_file, {"interpreter": "RandomInterpreter"})
    'interpreter: RandomInterpreter -> EnergyInterpreter'
    """
    import yaml

    changes = []
    configured = configured_interpreter(Path(hparams_file).read_text(encoding="utf-8"))
    recorded = existing.get("interpreter")
    if configured and recorded and recorded != configured:
        changes.append(f"interpreter: {recorded} -> {configured}")
    resolved = Path(output_folder) / "hyperparams.yaml"
    values = _top_level_values(resolved.read_text(encoding="utf-8")) if resolved.is_file() else {}
    values.setdefault("split", existing.get("split"))
    wanted = _top_level_values(Path(hparams_file).read_text(encoding="utf-8"))
    wanted.update(
        {key: yaml.safe_load(value) if isinstance(value, str) else value
         for key, value in overrides.items()}
    )
    for key, value in wanted.items():
        if key in _PLACE_KEYS or (key not in overrides and key not in values):
            continue  # a key the finished run did not record (an older version): not compared
        if values.get(key, "?") != value:
            changes.append(f"{key}: {values.get(key, '?')} -> {value}")
    return ", ".join(changes)


def ensure_interpretation(
    method,
    classifier_folder,
    hparams_dir=HPARAMS_DIR,
    overrides=None,
    rerun=False,
    device="cpu",
    recipes_dir=RECIPES_DIR,
):
    """The ``metrics.json`` of ``method`` on a classifier, running ``interpret.py`` if needed.

    ``recipes/interpret.py`` runs as a subprocess (this recipe imports no other).

    ``<classifier_folder>/interpretation/<method>/metrics.json`` is reused unless
    ``rerun``, or unless it was made with other settings than asked for now
    (:func:`changed_settings`: an override with another value, or another
    interpreter than the YAML's); otherwise ``<hparams_dir>/interpret_<method>.yaml``
    runs on the folder.

    Arguments
    ---------
    method : str
        ``"focalnet"``, ``"vit"``, ``"random"`` or any ``interpret_<method>.yaml``.
    classifier_folder : str or pathlib.Path
        Output folder of ``recipes/train.py``.
    hparams_dir : str or pathlib.Path
        Where the interpretation YAMLs are.
    overrides : dict or None
        Overrides of the YAML (e.g. ``{"split": "valid"}``).
    rerun : bool
        Recompute even if a result exists.
    device : str
        Where to run.
    recipes_dir : str or pathlib.Path
        Folder of ``interpret.py`` (default: the repository's ``recipes/``).

    Returns
    -------
    pathlib.Path
        The ``metrics.json``.

    Raises
    ------
    ComparisonError
        No ``interpret_<method>.yaml``, or the interpretation failed (its last
        error line) or wrote no ``metrics.json``.

    Example
    -------
    >>> ensure_interpretation("nomethod", "runs/a")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    focalnet_lobes.interpretation.comparison.ComparisonError: no interpretation YAML for method 'nomethod': ...
    """
    overrides = dict(overrides or {})
    hparams_file = Path(hparams_dir) / f"interpret_{method}.yaml"
    if not hparams_file.is_file():
        raise ComparisonError(
            f"no interpretation YAML for method '{method}': {hparams_file} is missing"
        )
    classifier_folder = Path(classifier_folder)
    default_output = classifier_folder / "interpretation" / method
    output_folder = Path(overrides.get("output_folder", default_output))
    metrics_file = output_folder / "metrics.json"
    if metrics_file.is_file() and not rerun:
        existing = load_result(metrics_file)
        changed = changed_settings(output_folder, overrides, hparams_file, existing)
        if not changed:
            logger.info("Reusing %s", metrics_file)
            return metrics_file
        logger.info("%s was made with other settings (%s): recomputing", metrics_file, changed)
    logger.info("Running %s on %s", hparams_file.name, classifier_folder)
    overrides["classifier_folder"] = str(classifier_folder)
    command = [sys.executable, str(Path(recipes_dir) / "interpret.py"), str(hparams_file)]
    for key, value in overrides.items():
        command += [f"--{key}", value if isinstance(value, str) else json.dumps(value)]
    command += ["--device", str(device)]
    finished = subprocess.run(command, capture_output=True, text=True)
    if finished.returncode != 0:
        lines = [line for line in finished.stderr.strip().splitlines() if line.strip()]
        raise ComparisonError(
            f"{hparams_file.name} on {classifier_folder} failed: "
            + (lines[-1] if lines else f"exit status {finished.returncode}")
        )
    if not metrics_file.is_file():
        raise ComparisonError(f"{hparams_file.name} on {classifier_folder} wrote no {metrics_file}")
    return metrics_file


def named_runs(focalnet=None, vit=None, random_folder=None, controls=True, random=True):
    """The (method, classifier folder) pairs ``compare.py`` runs, in table order.

    Each named classifier gets its by-design method (``focalnet`` / ``vit``), then,
    with ``controls``, every method of :data:`CONTROL_METHODS` (energy, saliency,
    Grad-CAM, random). Without ``controls`` the random baseline runs on
    ``random_folder`` (default: the FocalNet's, else the ViT's), as before.
    ``random=False`` leaves the random rows out.

    Example
    -------
    >>> named_runs("f", "v", controls=False)
    [('focalnet', 'f'), ('vit', 'v'), ('random', 'f')]
    >>> [method for method, folder in named_runs("f", "v") if folder == "v"]
    ['vit', 'energy', 'saliency', 'gradcam', 'random']
    """
    runs = []
    classifiers = [(m, f) for m, f in (("focalnet", focalnet), ("vit", vit)) if f]
    runs += classifiers
    if controls:
        for _, folder in classifiers:
            runs += [(m, folder) for m in CONTROL_METHODS if random or m != "random"]
        if random and random_folder and ("random", random_folder) not in runs:
            runs.append(("random", random_folder))
    else:
        chosen = random_folder or focalnet or vit
        if random and chosen:
            runs.append(("random", chosen))
    return runs


def collect_results(
    paths=(),
    classifier_folders=None,
    hparams_dir=HPARAMS_DIR,
    overrides=None,
    rerun=False,
    device="cpu",
    include_other_methods=True,
    recipes_dir=RECIPES_DIR,
):
    """Run the named methods where needed and load every result to compare.

    Arguments
    ---------
    paths : sequence of str
        Further results (see :func:`find_metrics_files`).
    classifier_folders : dict or list of (str, str) or None
        ``{method: classifier folder}`` or ``[(method, classifier folder), ...]``
        (a method may then run on several classifiers) for methods to (re)use or
        run with :func:`ensure_interpretation`, in table order.
    hparams_dir : str or pathlib.Path
        Where the interpretation YAMLs are.
    overrides : dict or None
        Overrides for every interpretation run.
    rerun : bool
        Recompute the named methods.
    device : str
        Where to run.
    include_other_methods : bool
        Also take the other ``interpretation/*/metrics.json`` of the named
        classifier folders (on the same split when ``overrides`` has one).
    recipes_dir : str or pathlib.Path
        Folder of ``interpret.py``.

    Returns
    -------
    list of dict
        Labelled results, each ``metrics.json`` once.

    Example
    -------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "metrics.json"
    >>> _ = path.write_text('{"method": "piq", "accuracy": 0.5, "quantiles": {"0.9": {}}}')
    >>> [result["label"] for result in collect_results([str(path), str(path)])]
    ['piq']
    """
    overrides = dict(overrides or {})
    named = classifier_folders or {}
    named = list(named.items()) if isinstance(named, dict) else list(named)
    files = []
    for method, folder in named:
        files.append(
            ensure_interpretation(
                method, folder, hparams_dir, overrides, rerun, device, recipes_dir
            )
        )
    if include_other_methods:
        for folder in dict.fromkeys(Path(f) for _, f in named):
            for metrics_file in sorted(folder.glob("interpretation/*/metrics.json")):
                if (
                    "split" in overrides
                    and load_result(metrics_file).get("split") != overrides["split"]
                ):
                    continue
                files.append(metrics_file)
    for path in paths:
        files += find_metrics_files(path)
    unique = list(dict.fromkeys(Path(f).resolve() for f in files))
    if not unique:
        raise ComparisonError(
            "nothing to compare: give metrics.json files or folders, or --focalnet/--vit "
            "classifier folders"
        )
    return label_results([load_result(f) for f in unique])

#!/usr/bin/env python3
"""Test-time accuracy levers on finished cross-validations: time-shift TTA and seed ensembles.

Issue 18 asks which levers lift the cross-validated accuracy of the CPU recipes. Two
of them need no training, only the models a cross-validation (``recipes/cross_validate.py``)
already trained, so they are measured here on those models:

- **TTA** (test-time augmentation): the class probabilities averaged over
  ``--shifts`` circular time shifts of the features (shift ``k * T // shifts``,
  ``k = 0 .. shifts - 1``; the training's ``RandomTimeShift`` is circular too);
  ``shifts`` times the inference cost, nothing more to train.
- **Seed ensemble**: the probabilities averaged over the models of the same fold
  trained with different seeds (one cross-validation folder per seed); as many
  times the training and inference cost as there are seeds.

Every clip of every held-out fold is classified once per model (features of the
unaugmented clip; float32 by default, as the cross-validation's interpretations, whose
predictions it pools, classify), and the unshifted predictions are checked against
the ones the cross-validation recorded (``recorded_agreement``; ``--precision bf16``,
the recipes' ``eval_precision``, flips a few near-tied clips). Each lever is compared
with the single model on the same clips: per clip, the lever's correctness minus the
single model's, averaged over seeds, with a 95% bootstrap CI over clips
(:func:`focalnet_lobes.interpretation.stats.paired_difference`). The map a model is
interpreted by is not changed by either lever (it is the unshifted input's).

> python benchmarks/tta_and_ensembles.py --recipe focalnet_cpu CV_SEED1 CV_SEED2 \\
      --recipe vit_cpu CV_VIT --shifts 4 --out benchmarks/results/tta_and_ensembles.json

Authors
 * focalnet-audio contributors
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402  (benchmarks/common.py; puts this checkout's library first)
    command_line,
    environment,
    format_table,
    precision_context,
    write_report_or_exit,
)


def shift_offsets(num_frames, shifts):
    """Circular time shifts (frames) of the TTA: ``k * num_frames // shifts``, k < shifts.

    Raises ``ValueError`` unless ``1 <= shifts <= num_frames``.

    Example
    -------
    >>> shift_offsets(431, 4)
    [0, 107, 215, 323]
    >>> shift_offsets(10, 1)
    [0]
    """
    if not 1 <= int(shifts) <= int(num_frames):
        raise ValueError(f"shifts must be in [1, {num_frames}] (the frames), got {shifts}")
    return [k * int(num_frames) // int(shifts) for k in range(int(shifts))]


@torch.no_grad()
def shifted_probabilities(model, features, shifts, precision="fp32"):
    """Class probabilities of each circular time shift of ``features``.

    Arguments
    ---------
    model : torch.nn.Module
        Classifier mapping features (B, 1, T, F) to logits (B, C), in eval mode.
    features : torch.Tensor
        Features (B, 1, T, F).
    shifts : int
        Number of shifts (:func:`shift_offsets`); 1 is the plain forward pass.
    precision : str
        ``"fp32"`` or ``"bf16"`` (the recipe's ``eval_precision``).

    Returns
    -------
    torch.Tensor
        Probabilities (shifts, B, C), float32; index 0 is the unshifted input.

    Example
    -------
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3)).eval()
    >>> probs = shifted_probabilities(model, torch.randn(2, 1, 4, 3), shifts=2)
    >>> tuple(probs.shape), bool(torch.allclose(probs.sum(-1), torch.ones(2, 2)))
    ((2, 2, 3), True)
    """
    outputs = []
    for offset in shift_offsets(features.shape[2], shifts):
        with precision_context(precision):
            logits = model(torch.roll(features, offset, dims=2))
        outputs.append(torch.softmax(logits.float(), dim=-1))
    return torch.stack(outputs)


def evaluate_cross_validation(cv_folder, shifts, batch_size=None, precision="fp32"):
    """Shifted probabilities of every held-out clip of a finished cross-validation.

    Arguments
    ---------
    cv_folder : str or pathlib.Path
        Output folder of ``recipes/cross_validate.py`` (``fold_*/fold_done.json``).
    shifts : int
        As in :func:`shifted_probabilities`.
    batch_size : int or None
        Clips per forward pass (None: the recipe's evaluation batch size).
    precision : str
        ``"fp32"`` (as the cross-validation's interpretations classify) or ``"bf16"``.

    Returns
    -------
    dict
        ``ids`` (sorted clip ids), ``labels`` (N,), ``probabilities`` (shifts, N, C)
        as NumPy arrays, ``recorded_agreement`` (share of clips whose unshifted
        prediction equals the one the cross-validation recorded), ``seconds``.

    Raises
    ------
    focalnet_lobes.training.cross_validation.CrossValidationError
        No finished fold in ``cv_folder``.
    """
    import speechbrain as sb

    from focalnet_lobes.inference.trained import load_trained_classifier
    from focalnet_lobes.interpretation.posthoc import classifier_datasets
    from focalnet_lobes.training.cross_validation import load_fold_records, load_pooled_per_clip
    from focalnet_lobes.training.plan import batch_features

    start = time.perf_counter()
    rows = {}
    for record in load_fold_records(cv_folder):
        trained = load_trained_classifier(record["model_folder"])
        hparams = trained.hparams
        test = classifier_datasets(hparams["save_folder"], hparams["sample_rate"],
                                   hparams["clip_seconds"])["test"]
        size = batch_size or hparams.get("valid_dataloader_opts", {}).get("batch_size", 16)
        loader = sb.dataio.dataloader.make_dataloader(test, batch_size=size)
        for batch in loader:
            wavs, lens = batch.sig
            features = batch_features(trained.frontend, batch.id, wavs, lens)
            probs = shifted_probabilities(trained.model, features, shifts, precision)
            for row, (clip, label) in enumerate(zip(batch.id, batch.label.tolist())):
                rows[clip] = (label, probs[:, row].numpy())
    ids = sorted(rows)
    labels = np.array([rows[clip][0] for clip in ids])
    probabilities = np.stack([rows[clip][1] for clip in ids], axis=1)
    pooled, _, methods = load_pooled_per_clip(cv_folder)
    recorded_pred = dict(zip(pooled[methods[0]]["ids"], pooled[methods[0]]["predicted"]))
    agreement = float(np.mean([recorded_pred.get(clip) == int(p) for clip, p
                               in zip(ids, probabilities[0].argmax(-1))]))
    return {"ids": ids, "labels": labels, "probabilities": probabilities,
            "recorded_agreement": agreement, "seconds": time.perf_counter() - start}


def lever_correctness(runs):
    """Per-clip correctness (seeds, N) of the single model, TTA, and (seeds > 1) the ensembles.

    Arguments
    ---------
    runs : list of dict
        :func:`evaluate_cross_validation` results of one recipe, one per seed (same clips).

    Returns
    -------
    dict
        ``single`` and ``tta``: (seeds, N) booleans; with several seeds also
        ``ensemble`` and ``ensemble_tta``: (1, N) booleans.

    Raises
    ------
    ValueError
        The runs do not hold the same clips.

    Example
    -------
    >>> probs = np.array([[[0.9, 0.1], [0.4, 0.6]], [[0.0, 1.0], [0.2, 0.8]]])  # (shifts, N, C)
    >>> run = {"ids": ["a", "b"], "labels": np.array([0, 1]), "probabilities": probs}
    >>> {k: v.astype(int).tolist() for k, v in lever_correctness([run]).items()}
    {'single': [[1, 1]], 'tta': [[0, 1]]}
    >>> sorted(lever_correctness([run, run]))
    ['ensemble', 'ensemble_tta', 'single', 'tta']
    """
    for run in runs[1:]:
        if run["ids"] != runs[0]["ids"]:
            raise ValueError("the cross-validations of one recipe must hold the same clips")
    labels = runs[0]["labels"]
    plain = np.stack([run["probabilities"][0] for run in runs])  # (seeds, N, C)
    shifted = np.stack([run["probabilities"].mean(0) for run in runs])
    out = {"single": plain.argmax(-1) == labels, "tta": shifted.argmax(-1) == labels}
    if len(runs) > 1:
        out["ensemble"] = (plain.mean(0).argmax(-1) == labels)[None]
        out["ensemble_tta"] = (shifted.mean(0).argmax(-1) == labels)[None]
    return out


def compare_levers(correct, n_resamples=None):
    """Accuracy of each lever and its paired difference to the single model (per clip, mean over seeds).

    Returns a dict: lever -> ``accuracy`` (mean over seeds and clips), ``per_seed``
    (accuracies), and for every lever but ``single`` ``difference``
    (:func:`focalnet_lobes.interpretation.stats.paired_difference` of the per-clip
    correctness averaged over the lever's seeds against the single model's averaged
    over all seeds).

    Example
    -------
    >>> correct = {"single": np.array([[1, 0] * 20]), "tta": np.array([[1, 1] * 20])}
    >>> result = compare_levers(correct, n_resamples=999)
    >>> result["tta"]["accuracy"], result["tta"]["difference"]["significant"]
    (1.0, True)
    """
    from focalnet_lobes.interpretation.stats import N_RESAMPLES, paired_difference

    n_resamples = N_RESAMPLES if n_resamples is None else n_resamples
    single = np.asarray(correct["single"], dtype=float).mean(0)
    result = {}
    for lever, values in correct.items():
        values = np.asarray(values, dtype=float)
        entry = {"accuracy": float(values.mean()),
                 "per_seed": [float(v) for v in values.mean(1)]}
        if lever != "single":
            entry["difference"] = paired_difference(values.mean(0), single,
                                                    n_resamples=n_resamples)
        result[lever] = entry
    return result


#: Inference and training cost of each lever, in single-model units, as functions of
#: (shifts, seeds).
COSTS = {
    "single": lambda shifts, seeds: (1, 1),
    "tta": lambda shifts, seeds: (shifts, 1),
    "ensemble": lambda shifts, seeds: (seeds, seeds),
    "ensemble_tta": lambda shifts, seeds: (shifts * seeds, seeds),
}


def main(argv=None):
    """Evaluate each recipe's cross-validations, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--recipe", nargs="+", action="append", required=True,
                        metavar=("NAME", "CV_FOLDER"),
                        help="a recipe's name and at least one cross-validation folder (one per "
                             "seed; folders with their fold models, not per-clip archives)")
    parser.add_argument("--shifts", type=int, default=4, help="circular time shifts of the TTA")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                        help="of the forward passes (fp32: as the CV's interpretations classify)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--out", default="benchmarks/results/tta_and_ensembles.json",
                        help="JSON file to write")
    args = parser.parse_args(argv)
    for recipe in args.recipe:
        if len(recipe) < 2:
            parser.error(f"--recipe {recipe[0]}: give the recipe's cross-validation folders")
    if args.shifts < 1:
        parser.error(f"--shifts must be at least 1, got {args.shifts}")
    torch.set_num_threads(args.threads)
    report = {"command": command_line("tta_and_ensembles.py", argv),
              "environment": environment(args.threads), "shifts": args.shifts,
              "precision": args.precision, "recipes": {}}
    tables = {}
    for name, *folders in args.recipe:
        try:
            runs = [evaluate_cross_validation(folder, args.shifts, precision=args.precision)
                    for folder in folders]
            result = compare_levers(lever_correctness(runs))
        except (ValueError, OSError) as error:  # CrossValidationError, TrainedClassifierError too
            sys.exit(f"tta_and_ensembles.py: error: {name}: {error}")
        report["recipes"][name] = {
            "cv_folders": [str(Path(f).resolve()) for f in folders],
            "clips": len(runs[0]["ids"]),
            "recorded_agreement": [run["recorded_agreement"] for run in runs],
            "seconds": [run["seconds"] for run in runs],
            "levers": result,
        }
        tables[name] = format_table(
            f"{name}: {len(folders)} seed(s), {len(runs[0]['ids'])} clips, TTA over "
            f"{args.shifts} circular shifts; difference to the single model in points, "
            "95% bootstrap CI over clips", list(result), lever_rows(result, args.shifts, len(folders)))
    write_report_or_exit("tta_and_ensembles.py", report, args.out, tables)


def lever_rows(result, shifts, seeds):
    """Rows of :func:`benchmarks.common.format_table` for :func:`compare_levers`' result.

    Example
    -------
    >>> correct = {"single": np.array([[1, 0] * 20]), "tta": np.array([[1, 1] * 20])}
    >>> rows = lever_rows(compare_levers(correct, n_resamples=999), 4, 1)
    >>> [(label, values) for label, values, _ in rows[:3]]  # doctest: +NORMALIZE_WHITESPACE
    [('accuracy %', [50.0, 100.0]), ('per seed %', ['50.0', '100.0']),
     ('- single (points)', ['', '+50.0 [+35.0, +65.0]'])]
    """
    def difference(entry):
        diff = entry.get("difference")
        if diff is None:
            return ""
        return f"{100 * diff['mean']:+.1f} [{100 * diff['low']:+.1f}, {100 * diff['high']:+.1f}]"

    costs = [COSTS[lever](shifts, seeds) for lever in result]
    return [
        ("accuracy %", [100 * e["accuracy"] for e in result.values()], ".1f"),
        ("per seed %", [" / ".join(f"{100 * v:.1f}" for v in e["per_seed"])
                        for e in result.values()], "s"),
        ("- single (points)", [difference(e) for e in result.values()], "s"),
        ("inference cost x", [c[0] for c in costs], "d"),
        ("training cost x", [c[1] for c in costs], "d"),
    ]

if __name__ == "__main__":
    main()

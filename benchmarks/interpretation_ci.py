#!/usr/bin/env python3
"""Per-clip FID-I and FF of interpretation methods at one quantile, with 95% bootstrap CIs.

``recipes/interpret.py`` reports means over clips; this script recomputes, with
the same library functions (:func:`focalnet_lobes.interpret.quantile_mask`,
:func:`focalnet_lobes.metrics.interpretation_metrics`), the per-clip values of
FID-I (1 when the masked-in input keeps the prediction) and FF (drop of the
predicted class's probability when the mask is removed) for each method's
interpretation YAML on one classifier and split, and gives for each mean a 95%
percentile-bootstrap CI over clips, and for each method against the first one
(the reference) the paired difference with its CI (the same clips resampled).

> python benchmarks/interpretation_ci.py --classifier_folder RUN --split valid \\
>     --method focalnet=hparams/interpret_focalnet.yaml \\
>     --method lmac=hparams/interpret_lmac.yaml --lmac_folder LMAC_RUN \\
>     --method random=hparams/interpret_random.yaml --output ci.json
"""

import argparse
import json
import sys
from pathlib import Path

import torch
from hyperpyyaml import load_hyperpyyaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "recipes"))

from focalnet_lobes.interpret import quantile_mask  # noqa: E402
from focalnet_lobes.metrics import interpretation_metrics  # noqa: E402
from focalnet_lobes.posthoc import classifier_datasets  # noqa: E402

METRICS = ("fid_i", "ff")


def bootstrap_ci(values, resamples=2000, seed=0, level=0.95):
    """Mean of ``values`` and its percentile-bootstrap CI.

    Arguments
    ---------
    values : torch.Tensor
        (N,) per-clip values (or paired differences).
    resamples : int
        Bootstrap resamples.
    seed : int
        Seed of the resampling.
    level : float
        Coverage of the interval.

    Returns
    -------
    dict
        ``mean``, ``low``, ``high``, ``n``.

    Example
    -------
    >>> ci = bootstrap_ci(torch.tensor([0.0, 1.0] * 40))
    >>> ci["mean"], ci["low"] < 0.5 < ci["high"], ci["n"]
    (0.5, True, 80)
    """
    values = torch.as_tensor(values, dtype=torch.float64).flatten()
    generator = torch.Generator().manual_seed(seed)
    indices = torch.randint(len(values), (resamples, len(values)), generator=generator)
    means = values[indices].mean(dim=1)
    tail = (1.0 - level) / 2
    return {
        "mean": float(values.mean()),
        "low": float(torch.quantile(means, tail)),
        "high": float(torch.quantile(means, 1.0 - tail)),
        "n": len(values),
    }


def per_clip_scores(trained, interpreter, dataset, quantile, batch_size=16):
    """Per-clip FID-I and FF of one interpreter over a dataset, in manifest order."""
    scores = {name: [] for name in METRICS}
    ids = []
    items = [dataset[i] for i in range(len(dataset))]
    for start in range(0, len(items), batch_size):
        batch = items[start : start + batch_size]
        wavs = torch.stack([item["sig"] for item in batch])
        with torch.no_grad():
            features = trained.frontend(wavs)
            logits, maps = interpreter(trained.model, features)
        masks = quantile_mask(maps, quantile)
        values = interpretation_metrics(trained.model, features, masks, maps=maps, logits=logits)
        for name in METRICS:
            scores[name].append(values[name])
        ids += [item["id"] for item in batch]
    return ids, {name: torch.cat(parts) for name, parts in scores.items()}


def main(argv=None):
    """Evaluate the methods, print and write the table of means and CIs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classifier_folder", required=True)
    parser.add_argument("--split", default="valid")
    parser.add_argument("--quantile", type=float, default=0.9)
    parser.add_argument("--method", action="append", required=True,
                        help="NAME=YAML (an interpretation YAML); the first is the reference")
    parser.add_argument("--lmac_folder", default=None)
    parser.add_argument("--piq_folder", default=None)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--output", default=None, help="JSON file to write")
    args = parser.parse_args(argv)

    from trained_classifier import load_trained_classifier

    torch.set_num_threads(1)
    trained = load_trained_classifier(args.classifier_folder)
    dataset = classifier_datasets(
        trained.hparams["save_folder"], trained.hparams["sample_rate"],
        trained.hparams["clip_seconds"],
    )[args.split]
    if dataset is None:
        parser.error(f"the {args.split} manifest of {args.classifier_folder} is empty")
    overrides = {"classifier_folder": str(args.classifier_folder)}
    for key in ("lmac_folder", "piq_folder"):
        if getattr(args, key):
            overrides[key] = getattr(args, key)

    results = {"classifier_folder": str(args.classifier_folder), "split": args.split,
               "quantile": args.quantile, "resamples": args.resamples, "methods": {}}
    reference = None
    for spec in args.method:
        name, _, yaml_file = spec.partition("=")
        with open(yaml_file, encoding="utf-8") as fin:
            text = fin.read()
        used = {k: v for k, v in overrides.items() if f"{k}:" in text}
        hparams = load_hyperpyyaml(text, used)
        interpreter = hparams["interpreter"]
        if isinstance(interpreter, torch.nn.Module):
            interpreter.eval()
        if hasattr(interpreter, "reset"):
            interpreter.reset()
        ids, scores = per_clip_scores(trained, interpreter, dataset, args.quantile)
        entry = {metric: bootstrap_ci(scores[metric], args.resamples) for metric in METRICS}
        if reference is None:
            reference = (name, ids, scores)
        else:
            assert ids == reference[1]
            entry["minus_" + reference[0]] = {
                metric: bootstrap_ci(scores[metric] - reference[2][metric], args.resamples)
                for metric in METRICS
            }
        results["methods"][name] = entry
        print(name, json.dumps(entry))
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

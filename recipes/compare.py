#!/usr/bin/env python3
"""The paper-style comparison of interpretation methods: one table, one plot.

Reads the ``metrics.json`` files written by ``recipes/interpret.py`` (or any
recipe writing the same schema, e.g. PIQ with ``"method": "piq"``) and writes, in
the output folder:

* ``comparison.md``: a summary per method (classifier, split, accuracy, latency,
  overlap test), then one table per quantile q with accuracy, FID-I, FA, FF, AI,
  AD, AG, sparsity and complexity, one row per method;
* ``comparison.csv``: one row per method x quantile, every metric;
* ``comparison.json``: ``{"quantiles": [...], "methods": [{"label", "method",
  "metrics_file", ...}], "rows": [one dict per method x quantile]}``;
* ``comparison.png``: FID-I and FA against q, one line per method.

One command runs what is missing and builds the table:

> python recipes/compare.py --focalnet results/focalnet_cpu/1986 \\
>     --vit results/vit_cpu/1986 --output_folder results/comparison

Each classifier named by ``--focalnet`` / ``--vit`` (an output folder of
``recipes/train.py``) gets its by-design method (``focalnet`` / ``vit``) and the
controls energy, saliency, Grad-CAM and random (``--no_controls``: only the
random baseline, on the FocalNet classifier or ``--random``; ``--no_random``
leaves random out). For each, ``<folder>/interpretation/<method>/metrics.json`` is
used when it exists (and matches ``--split`` when given); otherwise
``hparams/interpret_<method>.yaml`` runs on that folder (``recipes/interpret.py``
as a subprocess). Other methods already interpreted in those classifier folders
(``interpretation/*/metrics.json``, e.g. PIQ) are added unless ``--only_named``.
Any number of further results can be given as positional arguments: a
``metrics.json``, a folder holding one, an ``interpretation/`` folder or a
classifier folder.

Every metric is shown with its 95% bootstrap CI over clips (from the
``metrics.json``), and every method is compared clip by clip with the by-design
map of the same classifier (``per_clip.json``; mean difference with its 95%
bootstrap CI, in bold when the CI excludes 0 and the mean is at least 0.0005 in size), the two by-design maps with each
other, and the two classifiers' accuracies with the exact McNemar test
(:func:`focalnet_lobes.interpretation.comparison.paired_differences`, also in ``comparison.json`` under
``"paired_differences"``).

> python recipes/compare.py results/focalnet_cpu/1986/interpretation \\
>     results/vit_cpu/1986/interpretation/vit/metrics.json --output_folder results/comparison

Authors
 * focalnet-audio contributors
"""

import argparse
import logging
import sys
from pathlib import Path

from focalnet_lobes.interpretation.comparison import (
    ComparisonError,
    collect_results,
    named_runs,
    write_comparison,
)
from focalnet_lobes.interpretation.stats import N_RESAMPLES

logger = logging.getLogger(__name__)
#: This recipe's folder: ``interpret.py`` runs from here.
RECIPES_DIR = Path(__file__).resolve().parent
#: The repository's hparams folder (interpret_<method>.yaml).
HPARAMS_DIR = RECIPES_DIR.parent / "hparams"


def parse_override(text):
    """``KEY=VALUE`` (VALUE in YAML) -> (key, value), for ``--override``.

    Example
    -------
    >>> parse_override("num_examples=2"), parse_override("quantiles=[0.5, 0.9]")
    (('num_examples', 2), ('quantiles', [0.5, 0.9]))
    """
    import yaml

    if "=" not in text:
        raise ComparisonError(f"--override expects KEY=VALUE, got '{text}'")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value)


def main(argv=None):
    """Command line; see the module docstring. Returns the list of results compared."""
    parser = argparse.ArgumentParser(
        description="Compare interpretation methods (FocalNet, ViT, random, PIQ, ...): "
        "one table and one plot.",
    )
    parser.add_argument("results", nargs="*", help="metrics.json files, or folders holding them")
    parser.add_argument(
        "--focalnet", help="FocalNet classifier folder: interpreted with interpret_focalnet.yaml"
    )
    parser.add_argument("--vit", help="ViT classifier folder: interpreted with interpret_vit.yaml")
    parser.add_argument(
        "--random",
        help="classifier folder for the random baseline (default: --focalnet's, else --vit's)",
    )
    parser.add_argument("--no_random", action="store_true", help="leave the random baseline out")
    parser.add_argument(
        "--no_controls",
        action="store_true",
        help="do not run the energy, saliency and Grad-CAM controls on each classifier",
    )
    parser.add_argument(
        "--bootstrap_resamples",
        type=int,
        default=N_RESAMPLES,
        help="bootstrap resamples of the paired differences' CIs",
    )
    parser.add_argument(
        "--only_named",
        action="store_true",
        help="skip other methods found in the classifier folders",
    )
    parser.add_argument(
        "--output_folder", required=True, help="where comparison.{md,csv,json,png} go"
    )
    parser.add_argument(
        "--split", help="split to interpret (train/valid/test; default: the YAMLs', test)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--rerun", action="store_true", help="recompute the named methods' interpretations"
    )
    parser.add_argument(
        "--hparams_dir", default=str(HPARAMS_DIR), help="folder of interpret_<method>.yaml"
    )
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override of the interpretation YAMLs, e.g. --override num_examples=2 (repeatable)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        overrides = dict(parse_override(text) for text in args.override)
        if args.split:
            overrides["split"] = args.split
        if "output_folder" in overrides:
            raise ComparisonError(
                "--override output_folder is not supported: each method writes to "
                "<classifier_folder>/interpretation/<method>"
            )
        folders = named_runs(
            args.focalnet,
            args.vit,
            random_folder=args.random,
            controls=not args.no_controls,
            random=not args.no_random,
        )
        results = collect_results(
            args.results,
            folders,
            args.hparams_dir,
            overrides,
            rerun=args.rerun,
            device=args.device,
            include_other_methods=not args.only_named,
            recipes_dir=RECIPES_DIR,
        )
        paths = write_comparison(
            results, args.output_folder, n_resamples=args.bootstrap_resamples
        )
    except (ValueError, FileNotFoundError) as error:
        logger.debug("comparison failed", exc_info=True)
        sys.exit(f"compare.py: error: {error}")
    print(paths["markdown"].read_text(encoding="utf-8"))
    print(f"Comparison written to {args.output_folder}")
    return results


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Recipe comparing two cross-validations clip by clip (e.g. FocalNet against ViT).

Both cross-validations (``recipes/cross_validate.py``) held out every clip of the
same folds once, so their pooled results pair up clip by clip: accuracy with the
exact McNemar test and the 95% bootstrap CI of the difference, and the paired
differences of every interpretation metric for the two by-design maps and for
each method both ran (:func:`focalnet_lobes.training.cross_validation.compare_cross_validations`),
with the explained class's mean probabilities that FA, FF, AD and AG are read off (full,
masked-in and masked-out input: a difference in confidence moves those metrics too).
Writes ``cv_comparison.{json,md}`` to the output folder and prints the table.
Either side may be a cross-validation folder or the ``cv_results_per_clip.json.gz``
archive it wrote (kept in ``benchmarks/results`` after the fold folders are gone), or
several of them separated by commas: the seeds of one recipe, each clip's correctness
and metrics averaged over them before the paired difference (McNemar per seed pair).

To run this recipe, do the following:
> python recipes/compare_cv.py results/cv/focalnet_cpu results/cv/vit_cpu \\
>     --output_folder results/cv/focalnet_vs_vit
> # the map against the ViT's attention x input instead of its attention:
> python recipes/compare_cv.py results/cv/focalnet_cpu results/cv/vit_cpu \\
>     --second_method vit_x_input --output_folder results/cv/focalnet_vs_vit_x_input
> # two seeds of each recipe (a lever against the default):
> python recipes/compare_cv.py results/cv/lever_1986,results/cv/lever_1987 \\
>     results/cv/default_1986,results/cv/default_1987 --output_folder results/cv/lever_vs_default

Authors
 * focalnet-audio contributors
"""

import argparse
import json
import sys
from pathlib import Path

from focalnet_lobes.training.cross_validation import (
    CrossValidationError,
    compare_cross_validations,
    markdown_comparison,
)
from focalnet_lobes.interpretation.stats import N_RESAMPLES, SEED


def seed_list(text):
    """A command-line side: one source, or a list of them when it holds commas.

    Example
    -------
    >>> seed_list("cv/a"), seed_list("cv/a,cv/b"), seed_list("cv/a,")
    ('cv/a', ['cv/a', 'cv/b'], 'cv/a')
    """
    parts = [part for part in text.split(",") if part]
    return parts if len(parts) > 1 else (parts[0] if parts else text)


def main(argv=None):
    """Command line; errors exit with a one-line message."""
    parser = argparse.ArgumentParser(description="Compare two cross-validations clip by clip.")
    parser.add_argument(
        "first",
        help="cross-validation folder or its cv_results_per_clip.json.gz, or several (seeds) "
             "separated by commas (differences are first - second)",
    )
    parser.add_argument("second", help="cross-validation folder(s) (or archives) of the same folds")
    parser.add_argument("--output_folder", required=True,
                        help="folder to write cv_comparison.json and cv_comparison.md to (created)")
    parser.add_argument("--bootstrap_resamples", type=int, default=N_RESAMPLES,
                        help="bootstrap resamples of the clips for every 95%% CI (default: %(default)s)")
    parser.add_argument("--bootstrap_seed", type=int, default=SEED,
                        help="seed of the bootstrap resampling (default: %(default)s)")
    parser.add_argument("--first_method", default=None,
                        help="method of the first CV paired first (default: its by-design map)")
    parser.add_argument("--second_method", default=None,
                        help="method of the second CV paired first (e.g. vit_x_input)")
    args = parser.parse_args(argv)
    try:
        result = compare_cross_validations(
            seed_list(args.first), seed_list(args.second), n_resamples=args.bootstrap_resamples, seed=args.bootstrap_seed,
            first_method=args.first_method, second_method=args.second_method,
        )
    except (CrossValidationError, ValueError, OSError) as error:
        sys.exit(f"compare_cv.py: error: {error}")
    output = Path(args.output_folder)
    output.mkdir(parents=True, exist_ok=True)
    (output / "cv_comparison.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    text = markdown_comparison(result)
    (output / "cv_comparison.md").write_text(text, encoding="utf-8")
    print(text)
    print(f"wrote {output / 'cv_comparison.json'} and {output / 'cv_comparison.md'}")
    return result


if __name__ == "__main__":
    main()

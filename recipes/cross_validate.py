#!/usr/bin/env python3
"""Recipe for cross-validating a classifier and its interpretations over the ESC-50 folds.

Given the training YAML and the same command-line overrides as ``train.py``, one
model is trained per held-out fold (by default on every other fold with a fixed
schedule, the last epoch kept; with ``--validation next_fold`` the next fold selects
the checkpoint and the others train; nothing is ever selected on the held-out
fold), each held-out fold is
interpreted with every YAML of ``interpret_hparams`` (``hparams/cross_validation.yaml``),
the per-clip results are pooled over folds and ``cv_results.{json,md,png}`` is
written: accuracy as mean +- std over folds and pooled with its 95% CI, every
interpretation metric at every quantile with its 95% CI, and the paired
differences of every method against the first. The fold loop and the pooling
live in :mod:`focalnet_lobes.training.cross_validation`; ``train.py`` and ``interpret.py``
run as subprocesses. Progress shows the fold and each epoch; a rerun after an
interruption skips finished folds (``fold_<k>/fold_done.json``) and resumes a
half-trained one from its last checkpoint.

To run this recipe, do the following:
> python recipes/cross_validate.py hparams/focalnet_cpu.yaml \\
>     --data_folder DATA/ESC-50 --cv_folder results/cv/focalnet_cpu --esc10 True
>     [--cv_hparams hparams/cross_validation.yaml] [--interpret "[by_design, interpret_energy.yaml]"]
>     [--interpret_override num_examples=0] [--folds "[1, 2, 3, 4]"] [train.py overrides ...]

Post-hoc interpreters (L-MAC, PIQ) are trained per fold on that fold's classifier
when their name is in the list (``posthoc_hparams`` in the YAML names their
training YAMLs; without a validation fold they keep their last epoch), e.g.
``--interpret "[by_design, interpret_energy.yaml, lmac]"``;
rerunning a finished cross-validation with more methods trains no classifier again.
``--interpret_split valid`` interprets each fold's validation split instead
(``cv_selection.{json,md,png}``): choose a map or a quantile there, report
``cv_results``. Two cross-validations of the same folds (FocalNet and ViT) are compared clip by
clip with ``recipes/compare_cv.py``.

Authors
 * focalnet-audio contributors
"""

import argparse
import logging
import sys
from pathlib import Path

import yaml
from hyperpyyaml import load_hyperpyyaml

from focalnet_lobes.training.cross_validation import run_cross_validation

HPARAMS_DIR = Path(__file__).resolve().parents[1] / "hparams"
logger = logging.getLogger(__name__)


def parse_arguments(argv):
    """Split the command line: the options of this recipe, and the overrides for train.py.

    Example
    -------
    >>> args, train = parse_arguments(["h.yaml", "--data_folder", "D", "--cv_folder", "O",
    ...                                "--number_of_epochs", "1", "--interpret_override", "a=1"])
    >>> args.train_hparams, args.interpret_override, train
    ('h.yaml', ['a=1'], ['--number_of_epochs', '1'])
    """
    parser = argparse.ArgumentParser(
        description="Cross-validate a training YAML and its interpretations over the folds; "
        "any other option is passed to train.py."
    )
    parser.add_argument("train_hparams", help="the training YAML, e.g. hparams/focalnet_cpu.yaml")
    parser.add_argument("--data_folder", required=True, help="ESC-50-layout folder")
    parser.add_argument("--cv_folder", required=True, help="where the folds and cv_results go")
    parser.add_argument("--cv_hparams", default=str(HPARAMS_DIR / "cross_validation.yaml"))
    parser.add_argument("--interpret", help="YAML list replacing interpret_hparams")
    parser.add_argument("--interpret_override", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--folds", help="YAML list of folds (default: the YAML's, else all)")
    parser.add_argument(
        "--validation", choices=["next_fold", "none"],
        help="none: a fixed schedule trained on every other fold, the last epoch kept; "
        "next_fold: checkpoint selection on the next fold (default: the YAML's validation)",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--interpret_split", default="test", choices=["test", "valid"],
        help="valid: interpret each fold's validation split into cv_selection.* (to choose "
        "a map or quantile on), sharing the trained classifiers",
    )
    return parser.parse_known_args(argv)


def main(argv=None):
    """Command line; see the module docstring. Errors exit with a one-line message."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args, train_overrides = parse_arguments(sys.argv[1:] if argv is None else argv)
    try:
        cv_file = Path(args.cv_hparams)
        if not cv_file.is_file():
            raise ValueError(f"no cross-validation YAML at {cv_file}")
        with open(cv_file, encoding="utf-8") as fin:
            config = load_hyperpyyaml(fin)
        interpret = yaml.safe_load(args.interpret) if args.interpret else config["interpret_hparams"]
        overrides = dict(config.get("interpret_overrides") or {})
        for text in args.interpret_override:
            if "=" not in text:
                raise ValueError(f"--interpret_override expects KEY=VALUE, got '{text}'")
            key, value = text.split("=", 1)
            overrides[key.strip()] = yaml.safe_load(value)
        folds = yaml.safe_load(args.folds) if args.folds else config.get("folds")
        results = run_cross_validation(
            args.train_hparams,
            args.data_folder,
            args.cv_folder,
            interpret,
            train_overrides=train_overrides,
            interpret_overrides=overrides,
            folds=folds,
            device=args.device,
            n_resamples=int(config.get("bootstrap_resamples", 9999)),
            seed=int(config.get("bootstrap_seed", 0)),
            posthoc_hparams=config.get("posthoc_hparams"),
            posthoc_overrides=[str(a) for a in config.get("posthoc_overrides") or []],
            split=args.interpret_split,
            validation=args.validation or config.get("validation", "none"),
        )
    except (ValueError, FileNotFoundError) as error:
        logger.debug("cross-validation failed", exc_info=True)
        sys.exit(f"cross_validate.py: error: {error}")
    name = "cv_results" if args.interpret_split == "test" else "cv_selection"
    print((Path(args.cv_folder) / f"{name}.md").read_text(encoding="utf-8"))
    print(f"Cross-validation results in {args.cv_folder}")
    return results


if __name__ == "__main__":
    main()

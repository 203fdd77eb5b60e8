#!/usr/bin/env python3
"""Recipe for interpreting a trained sound classifier and measuring its interpretations.

A classifier trained by ``recipes/train.py`` is loaded from its output folder; the
interpretation method (FocalNet modulation maps, ViT attention, a random baseline,
or any :class:`~focalnet_lobes.interpretation.interpret.MapInterpreter`) comes from the YAML.
For every clip of a split (the test fold by default) the maps are computed once
and thresholded at each quantile q of the YAML (binary masks keep the bins at or
above the clip's q-quantile, see :func:`~focalnet_lobes.interpretation.interpret.quantile_mask`);
every metric of :mod:`focalnet_lobes.interpretation.metrics` is computed per clip and averaged
over the clips with a 95% bootstrap CI. The evaluation, the overlap test and the
report writers live in :mod:`focalnet_lobes.interpretation.evaluation`; this script only loads
the YAML and the classifier and calls them.

To run this recipe, do the following:
> python recipes/interpret.py hparams/interpret_focalnet.yaml \\
>     --classifier_folder results/focalnet_cpu/1986 [--split valid] [--output_folder DIR]

Outputs (default folder ``<classifier_folder>/interpretation/<method>/``):

* ``metrics.json`` (schema below), ``metrics.csv`` (one row per quantile, every
  metric), ``metrics.md`` (markdown table), ``fidelity_faithfulness.png`` (FID-I
  and FA against the quantile), ``hyperparams.yaml`` (the YAML as run);
* ``examples/``: for the first ``num_examples`` clips, ``<id>_original.wav``,
  ``<id>_interpretation.wav`` (the mask at ``example_quantile`` applied to the
  linear STFT magnitude, inverted with the original phase: the input's length)
  and ``<id>.png`` (spectrogram, map, mask, masked spectrogram);
* ``per_clip.json`` / ``per_clip.csv``: every metric of every clip at every q,
  with clip ids, labels and predictions (to pair methods clip by clip);
* ``overlap.json``: the overlap test, per pair and summarised (below), and
  ``overlap/pair<k>_{mixture,interpretation}.wav`` for the first pairs;
  ``overlap_equal_rms.json``: the same with the two sources at equal RMS and
  weights ``overlap_equal_rms_weights`` (0.5 / 0.5; ``null`` skips it).

``metrics.json`` (read by ``recipes/compare.py`` and the PIQ recipe)::

    {
      "method": str,                 # "focalnet", "vit", "random", "piq", ...
      "interpreter": str,            # class name of the interpreter
      "compression": str,            # the front end's: "log1p" or "pcen"
      "backbone": str,               # "focalnet", "vit" or "other"
      "classifier_folder": str,
      "checkpoint": str,
      "split": str,                  # "train", "valid" or "test"
      "num_clips": int,
      "accuracy": float,             # classifier accuracy on the split, in [0, 1]
      "accuracy_ci": {"mean", "low", "high", "n"},  # 95% bootstrap CI over clips
      "soft": bool,                  # soft masks instead of binary
      "structure_on": str,           # sparsity/complexity of "maps", "masks" or "cells"
      "quantiles": {                 # keys: format_quantile(q), e.g. "0.9"
        "0.9": {"fid_i", "fa", "ff", "ai", "ad", "ag", "sparsity", "complexity",
                "mask_area", "p_full", "p_in", "p_out": float (means over clips),
                "clips": int},
        ...
      },
      "ci": {"0.9": {"fid_i": {"mean", "low", "high", "n"}, ...}, ...},
      "bootstrap": {"n_resamples", "confidence", "method", "seed"},
      "latency_ms_per_clip": {...},  # see measure_latency
      "overlap": {...},              # the "summary" of overlap.json
      "overlap_equal_rms": {...},    # the "summary" of overlap_equal_rms.json
      "examples": [{"id", "class_name", "predicted", "original_wav",
                    "interpretation_wav", "png"}, ...],
      "training_cost": {...}         # only when the YAML has training_cost (PIQ:
                                     # what training the interpreter took)
    }

FID-I is in [0, 1], FA and FF in [-1, 1], AI, AD and AG in [0, 100] (percent),
sparsity (Gini) in [0, 1), complexity (entropy, nats) in [0, log(T F)].

Overlap test (the paper's overlapping sources): pairs (s1, s2) of clips of
different classes are mixed as x = w1 s1 + w2 s2 (w = ``overlap_weights``,
0.8 / 0.2) and x is interpreted; the mask M at ``overlap_quantile`` is brought to
the linear STFT grid and compared with the power spectra P_k = |STFT(w_k s_k)|^2
of the two weighted sources (:func:`focalnet_lobes.interpretation.evaluation.source_attribution`):

* ``s1_kept`` = sum M^2 P_1 / sum P_1, ``s2_kept`` likewise: the fraction of each
  source's energy that passes the mask;
* ``keeps``: ``"s1"`` when s1_kept > s2_kept, ``"s2"`` when smaller, else
  ``"neither"`` (the mask favours the source it keeps relatively more of);
* ``s1_share`` = sum M^2 P_1 / (sum M^2 P_1 + sum M^2 P_2): the share of the
  mask-weighted energy that belongs to s1, against ``s1_share_mixture``, the same
  without mask (what a mask that ignores the sources would give);
* ``predicts_s1`` / ``predicts_s2``: the prediction on x is s1's / s2's class.

The summary holds the number of pairs, the means of these values and the rates
``keeps_s1_rate`` (with ``keeps_s1_ci``), ``predicts_s1_rate``,
``predicts_s2_rate`` and ``keeps_predicted_rate`` (among pairs predicted as s1 or
s2, how often the mask keeps the predicted source more). Run the energy control
(``hparams/interpret_energy.yaml``) next to a method to see how much of its
``keeps_s1_rate`` loudness alone explains.

Authors
 * focalnet-audio contributors
"""

import logging
import sys
from pathlib import Path

import torch

from focalnet_lobes.interpretation.evaluation import (
    SPLITS,
    InterpretationError,
    evaluate_split,
    iterate_batches,
    markdown_metrics,
    measure_latency,
    overlap_test,
    split_entries,
    write_examples,
    write_metrics,
    write_overlap,
    write_per_clip,
)
from focalnet_lobes.interpretation.stats import CONFIDENCE, METHOD, N_RESAMPLES, SEED

logger = logging.getLogger(__name__)

#: The repository's hparams folder (interpret_focalnet.yaml, interpret_vit.yaml, ...).
HPARAMS_DIR = Path(__file__).resolve().parents[1] / "hparams"


def _check_config(hparams):
    required = ("method", "classifier_folder", "output_folder", "interpreter", "quantiles")
    missing = [key for key in required if key not in hparams]
    if missing:
        raise InterpretationError(f"the interpretation YAML lacks {missing}")
    if hparams.get("split", "test") not in SPLITS:
        raise InterpretationError(f"split must be one of {SPLITS}, got '{hparams['split']}'")
    quantiles = list(hparams["quantiles"])
    if not quantiles:
        raise InterpretationError("quantiles is empty")
    for key, values in (
        ("quantiles", quantiles),
        ("example_quantile", [hparams.get("example_quantile", 0.9)]),
        ("overlap_quantile", [hparams.get("overlap_quantile", 0.9)]),
    ):
        for value in values:
            if not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
                raise InterpretationError(f"{key} must be numbers in [0, 1], got {value!r}")
    for key in ("num_examples", "overlap_pairs", "latency_clips"):
        if int(hparams.get(key, 0)) < 0:
            raise InterpretationError(f"{key} must be >= 0, got {hparams[key]}")


def _as_overrides(overrides):
    """Overrides as a dict (SpeechBrain's command-line parser gives a YAML string)."""
    if overrides is None or overrides == "":
        return {}
    if isinstance(overrides, str):
        import yaml

        return yaml.safe_load(overrides) or {}
    return dict(overrides)


def run_interpretation(hparams_file, overrides=None, device="cpu"):
    """Run the whole recipe: evaluate, time, overlap test, examples; write every output.

    Arguments
    ---------
    hparams_file : str or pathlib.Path
        The interpretation YAML (``hparams/interpret_*.yaml``).
    overrides : dict or str or None
        YAML overrides; ``classifier_folder`` is required unless the YAML sets it.
    device : str
        Where to run.

    Returns
    -------
    dict
        The ``metrics.json`` content, plus ``"output_folder"``.

    Example
    -------
    >>> hparams_file = HPARAMS_DIR / "interpret_random.yaml"
    >>> overrides = {"classifier_folder": "/nonexistent"}
    >>> run_interpretation(hparams_file, overrides)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    focalnet_lobes.inference.trained.TrainedClassifierError: /nonexistent is not a training output folder: ...
    """
    from hyperpyyaml import resolve_references

    from focalnet_lobes.inference.trained import load_trained_classifier
    from focalnet_lobes.training.plan import load_recipe_hparams

    hparams_file = Path(hparams_file)
    if not hparams_file.is_file():
        raise InterpretationError(f"no interpretation YAML at {hparams_file}")
    overrides = _as_overrides(overrides)
    hparams = load_recipe_hparams(hparams_file, overrides)
    _check_config(hparams)
    classifier_folder = Path(str(hparams["classifier_folder"]))
    trained = load_trained_classifier(
        classifier_folder, device=device, overrides=hparams.get("classifier_overrides") or None
    )
    model, frontend, interpreter = trained.model, trained.frontend, hparams["interpreter"]
    if isinstance(interpreter, torch.nn.Module):
        interpreter.to(device).eval()
    if hasattr(interpreter, "reset"):
        interpreter.reset()
    split = hparams.get("split", "test")
    entries = split_entries(trained.manifest(split), split, hparams.get("max_clips"))
    sample_rate = int(trained.hparams["sample_rate"])
    num_samples = int(round(sample_rate * float(trained.hparams["clip_seconds"])))
    soft = bool(hparams.get("soft_mask", False))
    batch_size = int(hparams.get("batch_size", 16))
    context = (
        f"the {model.kind} classifier in {classifier_folder} "
        f"(method '{hparams['method']}', {hparams_file})"
    )
    names = list(trained.class_names)
    n_resamples = int(hparams.get("bootstrap_resamples", N_RESAMPLES))
    bootstrap_seed = int(hparams.get("bootstrap_seed", SEED))

    logger.info(
        "Interpreting %d %s clips of %s with %s",
        len(entries),
        split,
        classifier_folder,
        type(interpreter).__name__,
    )
    evaluation = evaluate_split(
        model,
        frontend,
        interpreter,
        iterate_batches(entries, batch_size, sample_rate, num_samples),
        hparams["quantiles"],
        soft=soft,
        structure_on=hparams.get("structure_on", "maps"),
        structure_cell=hparams.get("structure_cell", (16, 16)),
        context=context,
        n_resamples=n_resamples,
        seed=bootstrap_seed,
    )
    latency = {}
    if int(hparams.get("latency_clips", 0)) > 0:
        _, latency_wavs, _ = next(
            iterate_batches(
                entries[: int(hparams["latency_clips"])], len(entries), sample_rate, num_samples
            )
        )
        latency = measure_latency(
            model,
            frontend,
            interpreter,
            latency_wavs,
            quantile=hparams.get("example_quantile", 0.9),
            soft=soft,
            repeats=hparams.get("latency_repeats", 3),
        )
    output_folder = Path(str(hparams["output_folder"]))
    output_folder.mkdir(parents=True, exist_ok=True)
    with open(hparams_file, encoding="utf-8") as fin:
        resolved = resolve_references(fin, overrides)
    (output_folder / "hyperparams.yaml").write_text(resolved.getvalue(), encoding="utf-8")

    overlap_options = dict(
        num_pairs=int(hparams.get("overlap_pairs", 0)),
        quantile=hparams.get("overlap_quantile", 0.9),
        soft=soft,
        batch_size=batch_size,
        seed=int(hparams.get("seed", 0)),
        class_names=names,
        context=context,
    )
    overlap = overlap_test(
        model,
        frontend,
        interpreter,
        entries,
        sample_rate,
        num_samples,
        weights=hparams.get("overlap_weights", (0.8, 0.2)),
        **overlap_options,
    )
    num_wavs = int(hparams.get("num_examples", 0))
    write_overlap(output_folder, overlap, sample_rate, num_wavs, name="overlap")
    equal_weights = hparams.get("overlap_equal_rms_weights", (0.5, 0.5))
    overlap_equal = None
    if equal_weights is not None and overlap_options["num_pairs"] > 0:
        overlap_equal = overlap_test(
            model,
            frontend,
            interpreter,
            entries,
            sample_rate,
            num_samples,
            weights=equal_weights,
            equal_rms=True,
            **overlap_options,
        )
        write_overlap(output_folder, overlap_equal, sample_rate, num_wavs, name="overlap_equal_rms")

    examples = write_examples(
        output_folder / "examples",
        model,
        frontend,
        interpreter,
        entries[: int(hparams.get("num_examples", 0))],
        sample_rate,
        num_samples,
        quantile=hparams.get("example_quantile", 0.9),
        soft=soft,
        class_names=names,
        context=context,
    )
    metrics = {
        "method": str(hparams["method"]),
        "interpreter": type(interpreter).__name__,
        "compression": getattr(frontend, "compression", "log1p"),
        "log1p_scale": getattr(frontend, "log1p_scale", 1.0),
        "freq_scale": getattr(frontend, "freq_scale", "mel"),
        "backbone": model.kind,
        "classifier_folder": str(classifier_folder),
        "checkpoint": str(trained.checkpoint),
        "split": split,
        "num_clips": evaluation["num_clips"],
        "accuracy": evaluation["accuracy"],
        "accuracy_ci": evaluation["accuracy_ci"],
        "soft": soft,
        "structure_on": hparams.get("structure_on", "maps"),
        "quantiles": evaluation["quantiles"],
        "ci": evaluation["ci"],
        "bootstrap": {
            "n_resamples": n_resamples,
            "confidence": CONFIDENCE,
            "method": METHOD,
            "seed": bootstrap_seed,
        },
        "latency_ms_per_clip": latency,
        "overlap": overlap["summary"],
        "overlap_equal_rms": overlap_equal["summary"] if overlap_equal else None,
        "examples": examples,
    }
    if hparams.get("training_cost") is not None:
        metrics["training_cost"] = hparams["training_cost"]
    write_metrics(output_folder, metrics)
    write_per_clip(output_folder, evaluation["per_clip"])
    logger.info("Interpretation metrics written to %s", output_folder)
    return dict(metrics, output_folder=str(output_folder))


def main(argv=None):
    """Command line: ``interpret.py HPARAMS.yaml --classifier_folder DIR [overrides]``.

    Errors in the input (not a training folder, interpreter not matching the
    backbone, missing split, bad YAML values) exit with status 1 and a one-line
    message instead of a traceback.
    """
    import speechbrain as sb

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0].startswith("-"):
        sys.exit(
            "usage: python recipes/interpret.py hparams/interpret_focalnet.yaml "
            "--classifier_folder RESULTS/focalnet_cpu/1986 [--split valid] [--output_folder DIR]"
        )
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    try:
        metrics = run_interpretation(
            hparams_file, overrides, device=run_opts.get("device") or "cpu"
        )
    except (ValueError, FileNotFoundError) as error:
        logger.debug("interpretation failed", exc_info=True)
        sys.exit(f"interpret.py: error: {error}")
    print(markdown_metrics(metrics))
    print(f"Outputs in {metrics['output_folder']}")
    return metrics


if __name__ == "__main__":
    main()

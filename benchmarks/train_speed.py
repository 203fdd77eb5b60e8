#!/usr/bin/env python3
"""Training speed of the CPU recipes, variant by variant, side by side in one run.

For each training YAML (``focalnet_cpu.yaml``, ``vit_cpu.yaml``) one model is built
and one training step of the recipe is timed (``torch.utils.benchmark``): the
features of a batch of 5 s clips with the YAML's random gain, its feature
augmentation and mixup, the bf16-autocast forward, the loss, the backward and the
AdamW step; and one evaluation batch (features + forward). Variants:

- ``reference``: the recipe before this benchmark: the YAML's model with the VGG
  stem and fused attention (:data:`REFERENCE_MODEL`), the stem on the default memory
  layout, features computed from the waveforms at every step, no faithfulness
  terms, ``--reference_epochs`` (80);
- ``channels_last``: the stem's weights and activations on the ``channels_last``
  layout (:class:`focalnet_lobes.models.stems.ConvStem`);
- ``channels_last+feature_cache``: and the projected magnitudes of each clip
  cached across epochs (:class:`focalnet_lobes.data.features.FeatureCache`);
- ``channels_last+feature_cache+terms`` (only for a YAML with faithfulness terms):
  and those terms (``masked_in_loss``) in the epochs they run in, timed with their
  own training step, on the reference model;
- ``today``: the YAML as it is: in addition its model options where they differ
  from the reference (``stem_strided_blocks``, ``fused_attention``) and its
  faithfulness terms (``masked_in_loss``) in the epochs they run in, timed with
  their own training step;
- with ``--candidate BATCH EPOCHS``: today's recipe at another batch size and run
  length (e.g. ``--candidate 8 40``: the same optimiser steps as 80 epochs at 16,
  half the clips per step), with its run speed-up against today's recipe;
- with ``--lever NAME KEY=VALUE ...`` (repeatable): today's recipe with these YAML
  overrides (e.g. ``--lever W weight_average_decay=0.995``), row ``today+NAME``, with
  its run speed-up against today's recipe (``run vs today`` below 1: slower). A weight
  average (``weight_average``) is updated after every optimiser step of every epoch:
  an upper bound, the recipe updates it only after its start epoch.

Each step time is the median over ``torch.utils.benchmark``'s blocks, with their
interquartile range (the spread within this run: another run, or other load on the
machine, moves the times more, which is why variants are compared within one run, by
their ratios); epochs and runs are estimated from the medians.

The first three variants compute the same function: the script reports the largest
logit difference between the layouts (same weights, float32) and between cached and
directly computed features, and fails if either exceeds its tolerance. Today's model
options change the function: their accuracy is the cross-validation's
(``benchmarks/README.md``). An epoch is estimated as ``steps_per_epoch`` training
steps plus the evaluation batches of the validation fold (ESC-10: 240 training
clips, 80 validation clips); an epoch with the terms uses the step with the terms. A
whole run is the sum over its epochs: ``--reference_epochs`` for the reference and
the YAML's ``number_of_epochs`` (or ``--epochs``) for the others, so the column "run
speed-up" of ``today`` is the speed-up of a whole training run of today's recipe
against the recipe before, in one run of this script.

> python benchmarks/train_speed.py --threads 2 --output benchmarks/results/train_speed.json

Authors
 * focalnet-audio contributors
"""

import argparse
import copy
import math
import platform
import shlex
import sys
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import exit_cannot_write, time_rounds, write_json  # noqa: E402  (benchmarks/common.py)

from focalnet_lobes.data.features import FeatureCache
from focalnet_lobes.models.stems import ConvStem
from focalnet_lobes.training.plan import TrainingPlanError, batch_features, load_recipe_hparams

REPO = Path(__file__).resolve().parents[1]
VARIANTS = ("reference", "channels_last", "channels_last+feature_cache")
TODAY = "today"
LOGIT_TOLERANCE = 1e-3
FEATURE_TOLERANCE = 1e-4
# Model keys of the training YAMLs whose reference value (the recipe before this
# benchmark) may differ from today's: the VGG stem and fused attention.
REFERENCE_MODEL = {"stem_strided_blocks": 0, "fused_attention": True}


def set_stem_layout(model, channels_last):
    """Put every :class:`ConvStem` of ``model`` on the channels_last or the default layout."""
    layout = torch.channels_last if channels_last else torch.contiguous_format
    for module in model.modules():
        if isinstance(module, ConvStem):
            module.channels_last = channels_last
            module.to(memory_format=layout)
    return model


def load_recipe(config, n_classes=10, overrides=None):
    """The hyperparameters of ``hparams/<config>.yaml`` (ESC-10, no data needed).

    Raises
    ------
    focalnet_lobes.training.plan.TrainingPlanError
        An override names no key or a value the file's objects reject (one line, from
        :func:`~focalnet_lobes.training.plan.load_recipe_hparams`).
    """
    return load_recipe_hparams(
        REPO / "hparams" / f"{config}.yaml",
        {"data_folder": "unused", "esc10": n_classes == 10, **(overrides or {})},
    )


def model_changes(hparams):
    """``{key: today's value}`` of the :data:`REFERENCE_MODEL` keys that differ from the reference."""
    return {
        key: hparams[key] for key, value in REFERENCE_MODEL.items()
        if key in hparams and hparams[key] != value
    }


def term_epochs(hparams, epochs):
    """``(plain epochs, epochs with the faithfulness terms)`` of a run of ``epochs``.

    The terms (``masked_in_loss``, :class:`~focalnet_lobes.training.losses.MaskedInFidelityLoss`)
    run in the epochs after its ``start_epoch`` when one of its weights is > 0.
    """
    term = hparams.get("masked_in_loss")
    with_terms = len(term.epochs_run(epochs)) if term is not None else 0
    return epochs - with_terms, with_terms


def time_steps(hparams, model, frontend, cache, wavs, ids, targets, threads, min_run_time,
               term=None):
    """Median seconds of one training step, one evaluation batch and (with ``term``) one
    training step with the faithfulness terms, each with ``torch.utils.benchmark``, and
    their spread: ``<name>_iqr``, the interquartile range in seconds of the per-step
    times of the timer's blocks (``Measurement.iqr``; 0 with a single block), and
    ``<name>_blocks``, how many blocks were timed.

    A training step includes the update of the recipe's weight average when it has an
    active one (``weight_average``, :class:`~focalnet_lobes.training.averaging.WeightAverage`).
    """
    optimizer = hparams["opt_class"](model.parameters())
    autocast = hparams["precision"] == "bf16"
    average = hparams.get("weight_average")
    if average is not None and average.active:
        average.attach(model)
    else:
        average = None

    def train_step(with_term=False):
        model.train()
        hparams["wav_augment"].train()
        batch = batch_features(frontend, ids, wavs, None, hparams["wav_augment"], cache)
        batch = hparams["feature_augment"](batch)
        batch, soft_targets = hparams["mixup"](batch, targets)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            if with_term:
                logits, extra = term(model, batch, soft_targets)
            else:
                logits, extra = model(batch), 0.0
        loss = hparams["compute_cost"](logits.float(), soft_targets) + extra
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if average is not None:
            average.update(model, epoch=math.inf)

    def eval_step():
        model.eval()
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            model(batch_features(frontend, ids, wavs, None, None, cache))

    steps = {"train_step": train_step, "eval_step": eval_step}
    if term is not None:
        steps["term_step"] = lambda: train_step(with_term=True)
    timings = {}  # one round of common.time_rounds: a warm-up call (oneDNN primitives), then the blocks
    for name, timing in time_rounds(steps, threads, rounds=1, min_run_time=min_run_time).items():
        timings[name] = timing["median_ms"] / 1000.0
        timings[f"{name}_iqr"] = timing["iqr_ms"] / 1000.0
        timings[f"{name}_blocks"] = len(timing["times_ms"])
    return timings


def measure(config, batch_size, train_clips, valid_clips, threads, min_run_time,
            reference_epochs=80, epochs=None, candidate=None, levers=()):
    """Time every variant of one recipe; returns one dict per variant.

    The variants are cumulative: ``reference`` (the YAML's model with the
    :data:`REFERENCE_MODEL` values, the default memory layout, features computed
    at every step, no faithfulness terms, ``reference_epochs``), ``channels_last``,
    ``channels_last+feature_cache`` (both the same function as the reference,
    checked), and ``today``: the YAML as it is, i.e. in addition its model options
    (a different function: its accuracy is the cross-validation's) and its
    faithfulness terms in their epochs. ``epochs`` (default: the YAML's
    ``number_of_epochs``) is the run length of every variant but the reference.
    ``candidate`` (``(batch size, epochs)`` or None) adds today's recipe at another
    batch size and run length (its ``vs_today`` is its run speed-up against today's).
    ``levers`` (``(name, {key: value})`` pairs) adds today's recipe with those YAML
    overrides, one row ``today+name`` each, timed with its own front end (e.g.
    ``compression=pcen``).
    """
    torch.manual_seed(0)
    today = load_recipe(config, overrides={"number_of_epochs": epochs} if epochs else None)
    epochs = int(today["number_of_epochs"])
    changes = model_changes(today)
    reference = load_recipe(config, overrides={
        "number_of_epochs": epochs, **{key: REFERENCE_MODEL[key] for key in changes}
    })
    frontend = today["compute_features"]
    samples = int(today["sample_rate"] * today["clip_seconds"])
    clips = max(batch_size, candidate[0] if candidate else 0)
    all_wavs = 0.1 * torch.randn(clips, samples)
    all_ids = [f"clip{i}" for i in range(clips)]
    all_targets = torch.nn.functional.one_hot(
        torch.arange(clips) % today["n_classes"], today["n_classes"]
    ).float()
    wavs, ids = all_wavs[:batch_size], all_ids[:batch_size]

    # The same function: layouts on the same weights, cached against direct features.
    features = frontend(wavs)
    fast_model = set_stem_layout(copy.deepcopy(reference["model"]), True).eval()
    slow_model = set_stem_layout(copy.deepcopy(reference["model"]), False).eval()
    with torch.no_grad():
        logit_gap = float((fast_model(features) - slow_model(features)).abs().max())
    cache = FeatureCache(frontend, max_items=batch_size)
    cache(ids, wavs)
    gains = today["wav_augment"].sample_gains(batch_size)
    feature_gap = float((cache(ids, wavs, gains) - frontend(wavs * gains[:, None])).abs().max())
    if logit_gap > LOGIT_TOLERANCE or feature_gap > FEATURE_TOLERANCE:
        raise SystemExit(
            f"{config}: variants differ (logits {logit_gap:.2e}, features {feature_gap:.2e})"
        )

    # (name, hparams, channels_last, cache, batch, epochs, with the terms)
    lever_overrides = {f"{TODAY}+{name}": overrides for name, overrides in levers}
    variants = [
        ("reference", reference, False, False, batch_size, reference_epochs, False),
        ("channels_last", reference, True, False, batch_size, epochs, False),
        ("channels_last+feature_cache", reference, True, True, batch_size, epochs, False),
    ]
    if term_epochs(reference, epochs)[1]:  # today's terms on the reference model
        variants.append(("channels_last+feature_cache+terms", reference, True, True, batch_size,
                         epochs, True))
    variants.append((TODAY, today, True, True, batch_size, epochs, True))
    if candidate:
        cand = load_recipe(config, overrides={"number_of_epochs": candidate[1]})
        variants.append((f"{TODAY}, batch {candidate[0]}", cand, True, True, *candidate, True))
    for name, overrides in levers:
        lever = load_recipe(config, overrides={"number_of_epochs": epochs, **overrides})
        variants.append((f"{TODAY}+{name}", lever, True, True, batch_size, epochs, True))
    rows = []
    for variant, hparams, channels_last, cached, batch, run_epochs, with_terms in variants:
        model = set_stem_layout(copy.deepcopy(hparams["model"]), channels_last)
        plain_epochs, terms_epochs = term_epochs(hparams, run_epochs) if with_terms else (run_epochs, 0)
        own_frontend = hparams["compute_features"]  # a lever may change the front end
        cache = FeatureCache(own_frontend) if cached else None
        if cache is not None:
            cache(all_ids[:batch], all_wavs[:batch])  # every clip seen once: after epoch 1
        timings = time_steps(
            hparams, model, own_frontend, cache, all_wavs[:batch], all_ids[:batch],
            all_targets[:batch], threads, min_run_time,
            term=hparams["masked_in_loss"] if terms_epochs else None,
        )
        steps_per_epoch = train_clips // batch
        evaluation = math.ceil(valid_clips / batch) * timings["eval_step"]
        epoch = steps_per_epoch * timings["train_step"] + evaluation
        term_epoch = steps_per_epoch * timings.get("term_step", 0.0) + evaluation
        rows.append({
            "config": config,
            "variant": variant,
            "model_changes": changes if hparams is not reference else {},
            "lever_overrides": lever_overrides.get(variant),
            "batch_size": batch,
            "train_step_s": timings["train_step"],
            "term_step_s": timings.get("term_step"),
            "eval_step_s": timings["eval_step"],
            # the spread of each step time: IQR over the timer's blocks (and their count)
            "train_step_iqr_s": timings["train_step_iqr"],
            "term_step_iqr_s": timings.get("term_step_iqr"),
            "eval_step_iqr_s": timings["eval_step_iqr"],
            "blocks": {key[:-len("_blocks")]: value for key, value in timings.items()
                       if key.endswith("_blocks")},
            "epoch_s": epoch,
            "term_epoch_s": term_epoch if terms_epochs else None,
            "epochs": run_epochs,
            "term_epochs": terms_epochs,
            "run_s": epoch * plain_epochs + term_epoch * terms_epochs,
            "max_logit_difference": logit_gap,
            "max_feature_difference": feature_gap,
        })
    base, base_run = rows[0]["epoch_s"], rows[0]["run_s"]
    today_run = next(row["run_s"] for row in rows if row["variant"] == TODAY)
    for row in rows:
        row["speedup"] = base / row["epoch_s"]
        row["run_speedup"] = base_run / row["run_s"]
        row["vs_today"] = today_run / row["run_s"]
    return rows


def step_cell(median, iqr, blocks):
    """A table cell of a step time: median and interquartile range, in milliseconds.

    A step timed in a single block has no spread to show (its IQR is 0 by
    construction): the cell says so instead of "IQR 0".

    Arguments
    ---------
    median, iqr : float
        Seconds (``time_steps``' median and ``_iqr``).
    blocks : int
        How many blocks were timed (``_blocks``).

    Returns
    -------
    str

    Example
    -------
    >>> step_cell(0.4651, 0.0123, 9), step_cell(0.4651, 0.0, 1)
    ('465 (IQR 12)', '465 (1 block)')
    """
    spread = f"IQR {1000 * iqr:.0f}" if blocks > 1 else "1 block"
    return f"{1000 * median:.0f} ({spread})"


def parse_lever(words, parser):
    """``(name, {key: value})`` from ``--lever NAME KEY=VALUE ...`` (values read as YAML).

    Example
    -------
    >>> import argparse
    >>> parse_lever(["A", "num_time_masks=[2, 2]", "weight_average_decay=0.995"], argparse.ArgumentParser())
    ('A', {'num_time_masks': [2, 2], 'weight_average_decay': 0.995})
    """
    name, *pairs = words
    overrides = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key.strip():
            parser.error(f"--lever {name}: expected KEY=VALUE, got {pair!r}")
        overrides[key.strip()] = yaml.safe_load(value)
    if not overrides:
        parser.error(f"--lever {name}: no KEY=VALUE override given")
    return name, overrides


def main(argv=None):
    """Command line: time the variants, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=["focalnet_cpu", "vit_cpu"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--train_clips", type=int, default=240, help="ESC-10, 3 folds")
    parser.add_argument("--valid_clips", type=int, default=80, help="ESC-10, 1 fold")
    parser.add_argument("--min_run_time", type=float, default=5.0, help="seconds per timing")
    parser.add_argument("--reference_epochs", type=int, default=80,
                        help="epochs of the reference run (the recipe before)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs of the other variants (default: the YAML's number_of_epochs)")
    parser.add_argument("--candidate", nargs=2, type=int, default=None,
                        metavar=("BATCH_SIZE", "EPOCHS"),
                        help="also time today's variant at this batch size and run length")
    parser.add_argument("--lever", nargs="+", action="append", default=[],
                        metavar="NAME KEY=VALUE",
                        help="also time today's recipe with these YAML overrides (repeatable)")
    parser.add_argument("--output", default=None, help="JSON file for the results")
    args = parser.parse_args(argv)
    levers = [parse_lever(words, parser) for words in args.lever]
    names = [name for name, _ in levers]
    if len(set(names)) != len(names):
        parser.error(f"--lever names must differ, got {names}")
    for name, overrides in levers:  # every lever loads, or one line names what is wrong
        fixed = sorted({"number_of_epochs", "batch_size"} & overrides.keys())
        if fixed:
            parser.error(f"--lever {name}: {', '.join(fixed)} is set by --epochs / "
                         "--batch_size / --candidate, not by a lever")
        for config in args.configs:
            try:
                load_recipe(config, overrides={
                    **overrides, **({"number_of_epochs": args.epochs} if args.epochs else {}),
                })
            except TrainingPlanError as error:
                parser.error(f"--lever {name}: {error}")
    torch.set_num_threads(args.threads)
    rows = []
    for config in args.configs:
        rows += measure(
            config, args.batch_size, args.train_clips, args.valid_clips, args.threads,
            args.min_run_time, args.reference_epochs, args.epochs, args.candidate, levers,
        )
    print("Step times: median (IQR) in ms over torch.utils.benchmark's blocks (a step timed in "
          "one block has no IQR); epochs and runs are estimated from the medians.")
    print("| config | variant | batch | train step (ms) | with terms (ms) | eval batch (ms) | "
          "epoch (s) | speed-up per epoch | epochs (with terms) | run (min) | run speed-up | "
          "run vs today |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        cells = {name: step_cell(row[f"{name}_s"], row[f"{name}_iqr_s"], row["blocks"][name])
                 for name in row["blocks"]}
        print(
            f"| {row['config']} | {row['variant']} | {row['batch_size']} | "
            f"{cells['train_step']} | {cells.get('term_step', '')} | {cells['eval_step']} | "
            f"{row['epoch_s']:.2f} | {row['speedup']:.2f}x | {row['epochs']} ({row['term_epochs']}) | "
            f"{row['run_s'] / 60:.1f} | {row['run_speedup']:.2f}x | {row['vs_today']:.2f}x |"
        )
    for config in args.configs:
        row = next(r for r in rows if r["config"] == config)
        today = next(r for r in rows if r["config"] == config and r["variant"] == TODAY)
        changes = ", ".join(f"{k} {v}" for k, v in today["model_changes"].items()) or "none"
        print(
            f"{config}: largest logit difference between layouts {row['max_logit_difference']:.1e}, "
            f"between cached and direct features {row['max_feature_difference']:.1e}; "
            f"today's model options against the reference: {changes}"
        )
    if args.output:
        record = {
            "command": shlex.join(["python", "benchmarks/train_speed.py", *(sys.argv[1:] if argv is None else argv)]),
            "torch": torch.__version__,
            "machine": platform.processor() or platform.machine(),
            "threads": args.threads,
            "batch_size": args.batch_size,
            "rows": rows,
        }
        try:
            write_json(record, args.output)
        except OSError as error:  # the table above is printed: one line, not a traceback
            exit_cannot_write("train_speed.py", args.output, error)
    return rows


if __name__ == "__main__":
    main()

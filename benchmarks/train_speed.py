#!/usr/bin/env python3
"""Training speed of the CPU recipes, variant by variant, side by side in one run.

For each training YAML (``focalnet_cpu.yaml``, ``vit_cpu.yaml``) one model is built
and one training step of the recipe is timed (``torch.utils.benchmark``): the
features of a batch of 5 s clips with the YAML's random gain, its feature
augmentation and mixup, the bf16-autocast forward, the loss, the backward and the
AdamW step; and one evaluation batch (features + forward). Variants:

- ``reference``: the convolutional stem on the default memory layout, features
  computed from the waveforms at every step (the recipe before this benchmark);
- ``channels_last``: the stem's weights and activations on the ``channels_last``
  layout (:class:`focalnet_lobes.models.stems.ConvStem`, the default now);
- ``channels_last+feature_cache``: and the projected magnitudes of each clip
  cached across epochs (:class:`focalnet_lobes.data.features.FeatureCache`, the YAML
  default now);
- with ``--candidate BATCH EPOCHS``: that variant at another batch size and run
  length (e.g. ``--candidate 8 40``: the same optimiser steps as 80 epochs at 16,
  half the clips per step), with its run speed-up against today's recipe.

Every variant computes the same function: the script reports the largest logit
difference between the layouts (same weights, float32) and between cached and
directly computed features, and fails if either exceeds its tolerance. An epoch
is estimated as ``steps_per_epoch`` training steps plus the evaluation batches of
the validation fold (ESC-10: 240 training clips, 80 validation clips). A whole run is
that epoch times the number of epochs: ``--reference_epochs`` for the reference (80,
the recipe before) and the YAML's ``number_of_epochs`` (or ``--epochs``) for the
others, so the last column is the speed-up of a whole training run of today's
recipe against the recipe before, in one run of this script (the accuracy of both is
the cross-validation's, ``benchmarks/README.md``).

> python benchmarks/train_speed.py --threads 2 --output benchmarks/results/train_speed.json

Authors
 * focalnet-audio contributors
"""

import argparse
import copy
import json
import math
import platform
import sys
from pathlib import Path

import torch
import torch.utils.benchmark as benchmark
from hyperpyyaml import load_hyperpyyaml

from focalnet_lobes.data.features import FeatureCache
from focalnet_lobes.models.stems import ConvStem
from focalnet_lobes.training.plan import batch_features

REPO = Path(__file__).resolve().parents[1]
VARIANTS = ("reference", "channels_last", "channels_last+feature_cache")
LOGIT_TOLERANCE = 1e-3
FEATURE_TOLERANCE = 1e-4


def set_stem_layout(model, channels_last):
    """Put every :class:`ConvStem` of ``model`` on the channels_last or the default layout."""
    layout = torch.channels_last if channels_last else torch.contiguous_format
    for module in model.modules():
        if isinstance(module, ConvStem):
            module.channels_last = channels_last
            module.to(memory_format=layout)
    return model


def load_recipe(config, n_classes=10):
    """The hyperparameters of ``hparams/<config>.yaml`` (ESC-10, no data needed)."""
    with open(REPO / "hparams" / f"{config}.yaml", encoding="utf-8") as fin:
        return load_hyperpyyaml(fin, {"data_folder": "unused", "esc10": n_classes == 10})


def measure(config, batch_size, train_clips, valid_clips, threads, min_run_time,
            reference_epochs=80, epochs=None, candidate=None):
    """Time every variant of one recipe; returns one dict per variant.

    ``epochs`` (default: the YAML's ``number_of_epochs``) is the run length of
    every variant but the reference, which runs ``reference_epochs``.
    ``candidate`` (``(batch size, epochs)`` or None) adds today's variant at
    another batch size and run length (its ``vs_today`` is the run speed-up
    against today's recipe at ``batch_size`` and ``epochs``).
    """
    torch.manual_seed(0)
    hparams = load_recipe(config)
    epochs = int(epochs or hparams["number_of_epochs"])
    frontend = hparams["compute_features"]
    reference_model = hparams["model"]
    samples = int(hparams["sample_rate"] * hparams["clip_seconds"])
    clips = max(batch_size, candidate[0] if candidate else 0)
    all_wavs = 0.1 * torch.randn(clips, samples)
    all_ids = [f"clip{i}" for i in range(clips)]
    all_targets = torch.nn.functional.one_hot(
        torch.arange(clips) % hparams["n_classes"], hparams["n_classes"]
    ).float()
    wavs, ids, targets = all_wavs[:batch_size], all_ids[:batch_size], all_targets[:batch_size]
    autocast = hparams["precision"] == "bf16"

    # The same function: layouts on the same weights, cached against direct features.
    features = frontend(wavs)
    fast_model = set_stem_layout(copy.deepcopy(reference_model), True).eval()
    slow_model = set_stem_layout(copy.deepcopy(reference_model), False).eval()
    with torch.no_grad():
        logit_gap = float((fast_model(features) - slow_model(features)).abs().max())
    cache = FeatureCache(frontend, max_items=batch_size)
    cache(ids, wavs)
    gains = hparams["wav_augment"].sample_gains(batch_size)
    feature_gap = float((cache(ids, wavs, gains) - frontend(wavs * gains[:, None])).abs().max())
    if logit_gap > LOGIT_TOLERANCE or feature_gap > FEATURE_TOLERANCE:
        raise SystemExit(
            f"{config}: variants differ (logits {logit_gap:.2e}, features {feature_gap:.2e})"
        )

    rows = []
    variants = [(variant, batch_size, epochs) for variant in VARIANTS]
    if candidate:
        variants.append((f"{VARIANTS[-1]}, batch {candidate[0]}", *candidate))
    for variant, batch, run_epochs in variants:
        wavs, ids, targets = all_wavs[:batch], all_ids[:batch], all_targets[:batch]
        steps_per_epoch = train_clips // batch
        valid_batches = math.ceil(valid_clips / batch)
        model = set_stem_layout(copy.deepcopy(reference_model), variant != "reference")
        optimizer = hparams["opt_class"](model.parameters())
        cache = FeatureCache(frontend) if "feature_cache" in variant else None
        if cache is not None:
            cache(ids, wavs)  # every clip seen once: the state after the first epoch

        def train_step(model=model, optimizer=optimizer, cache=cache, wavs=wavs, ids=ids,
                       targets=targets):
            model.train()
            hparams["wav_augment"].train()
            batch = batch_features(frontend, ids, wavs, None, hparams["wav_augment"], cache)
            batch = hparams["feature_augment"](batch)
            batch, soft_targets = hparams["mixup"](batch, targets)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                logits = model(batch)
            loss = hparams["compute_cost"](logits.float(), soft_targets)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        def eval_step(model=model, cache=cache, wavs=wavs, ids=ids):
            model.eval()
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                model(batch_features(frontend, ids, wavs, None, None, cache))

        timings = {}
        for name, function in (("train_step", train_step), ("eval_step", eval_step)):
            function()  # warm-up (oneDNN primitive creation)
            timer = benchmark.Timer(
                stmt="function()", globals={"function": function}, num_threads=threads
            )
            timings[name] = timer.blocked_autorange(min_run_time=min_run_time).median
        epoch = steps_per_epoch * timings["train_step"] + valid_batches * timings["eval_step"]
        run_epochs = reference_epochs if variant == "reference" else run_epochs
        rows.append({
            "config": config,
            "variant": variant,
            "batch_size": batch,
            "train_step_s": timings["train_step"],
            "eval_step_s": timings["eval_step"],
            "epoch_s": epoch,
            "epochs": run_epochs,
            "run_s": epoch * run_epochs,
            "max_logit_difference": logit_gap,
            "max_feature_difference": feature_gap,
        })
    base, base_run = rows[0]["epoch_s"], rows[0]["run_s"]
    for row in rows:
        row["speedup"] = base / row["epoch_s"]
        row["run_speedup"] = base_run / row["run_s"]
        row["vs_today"] = rows[len(VARIANTS) - 1]["run_s"] / row["run_s"]
    return rows


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
    parser.add_argument("--output", default=None, help="JSON file for the results")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    for config in args.configs:
        rows += measure(
            config, args.batch_size, args.train_clips, args.valid_clips, args.threads,
            args.min_run_time, args.reference_epochs, args.epochs, args.candidate,
        )
    print("| config | variant | batch | train step (ms) | eval batch (ms) | epoch (s) | speed-up "
          "per epoch | epochs | run (min) | run speed-up | run vs today |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['config']} | {row['variant']} | {row['batch_size']} | "
            f"{1000 * row['train_step_s']:.0f} | {1000 * row['eval_step_s']:.0f} | "
            f"{row['epoch_s']:.2f} | {row['speedup']:.2f}x | {row['epochs']} | "
            f"{row['run_s'] / 60:.1f} | {row['run_speedup']:.2f}x | {row['vs_today']:.2f}x |"
        )
    for config in args.configs:
        row = next(r for r in rows if r["config"] == config)
        print(
            f"{config}: largest logit difference between layouts {row['max_logit_difference']:.1e}, "
            f"between cached and direct features {row['max_feature_difference']:.1e}"
        )
    if args.output:
        record = {
            "command": " ".join(["python", "benchmarks/train_speed.py", *sys.argv[1:]]),
            "torch": torch.__version__,
            "machine": platform.processor() or platform.machine(),
            "threads": args.threads,
            "batch_size": args.batch_size,
            "rows": rows,
        }
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return rows


if __name__ == "__main__":
    main()

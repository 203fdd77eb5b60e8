#!/usr/bin/env python3
"""Accuracy ablation: train recipe variants side by side and compare validation accuracy.

Each variant is a training YAML plus command-line overrides; every variant is
trained with ``recipes/train.py`` for each seed (folds 1-3 train, fold 4 validates
by default), and the table reports the parameter count, the wall time, and the
validation accuracy (mean of the last 5 epochs and best epoch, mean over seeds),
with each variant's accuracy as a difference to the first variant's.

> python benchmarks/accuracy_ablation.py --data_folder ../shared/ESC-50-dev \
      --variants focalnet_cpu vit_cpu --seeds 1 2 --parallel 1

Variants run in parallel processes with ``--parallel`` (useful on a GPU machine).
"""

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]  # the library of this checkout (never recipes/)

# name -> (training YAML, overrides). Overrides are recipe command-line arguments; every
# variant spells out its architecture and epochs, so that it does not change when the
# YAML defaults do ("focalnet_cpu" / "vit_cpu" are the YAMLs as they are).
EPOCHS_40 = ["--number_of_epochs", "40"]
# The GPU sweeps ran before modulation pooling existed: their variants pool by the mean.
AVG_POOL = ["--global_pool", "avg"]
MODULATION_POOL = ["--global_pool", "modulation", "--pool_temperature", "null"]
FOCALNET_STEM2 = ["--stem_channels", "[32, 64]", "--embed_dim", "64", "--depths", "[2, 2, 2]",
                  "--focal_levels", "[2, 2, 2]", "--focal_windows", "[3, 3, 3]", *AVG_POOL]
FOCALNET_STEM3_ARCH = ["--stem_channels", "[32, 64, 128]", "--embed_dim", "128", "--depths", "[2, 2]",
                       "--focal_levels", "[2, 2]", "--focal_windows", "[3, 3]"]
FOCALNET_STEM3 = FOCALNET_STEM3_ARCH + AVG_POOL
VARIANTS = {
    "focalnet_cpu": ("focalnet_cpu.yaml", []),
    "vit_cpu": ("vit_cpu.yaml", []),
    # FocalNet architecture (40 epochs)
    "focalnet_stem2": ("focalnet_cpu.yaml", FOCALNET_STEM2 + EPOCHS_40),
    "focalnet_stem3": ("focalnet_cpu.yaml", FOCALNET_STEM3 + EPOCHS_40),
    "focalnet_stem3_d4": ("focalnet_cpu.yaml", [*FOCALNET_STEM3[:4], "--depths", "[2, 4]",
                                                *FOCALNET_STEM3[6:], *EPOCHS_40]),
    "focalnet_stem4": (
        "focalnet_cpu.yaml",
        ["--stem_channels", "[32, 64, 128, 256]", "--embed_dim", "256", "--depths", "[2]",
         "--focal_levels", "[2]", "--focal_windows", "[3]", *AVG_POOL, *EPOCHS_40],
    ),
    # Pooling weighted by the modulation map (today's focalnet_cpu.yaml) and its softmax
    # form, on the stem-3 FocalNet (80 epochs; compare with focalnet_stem3_ep80)
    "focalnet_stem3_modpool": (
        "focalnet_cpu.yaml", FOCALNET_STEM3_ARCH + MODULATION_POOL + ["--number_of_epochs", "80"]
    ),
    "focalnet_stem3_modpool_softmax": (
        "focalnet_cpu.yaml",
        FOCALNET_STEM3_ARCH + ["--global_pool", "modulation", "--pool_temperature", "0.1",
                               "--number_of_epochs", "80"],
    ),
    # Front end and training choices on the stem-3 FocalNet (40 epochs)
    "focalnet_stem3_mel128": ("focalnet_cpu.yaml", FOCALNET_STEM3 + EPOCHS_40 + ["--n_mels", "128"]),
    "focalnet_stem3_no_mixup": ("focalnet_cpu.yaml", FOCALNET_STEM3 + EPOCHS_40 + ["--mixup", "null"]),
    "focalnet_stem3_bf16": ("focalnet_cpu.yaml", FOCALNET_STEM3 + EPOCHS_40 + ["--precision", "bf16"]),
    # ViT counterparts (40 epochs)
    "vit_stem2": (
        "vit_cpu.yaml",
        ["--stem_channels", "[32, 64]", "--patch_size", "2", "--embed_dim", "192", "--depth", "6",
         "--num_heads", "3", "--pos_embed_grid", "[54, 8]", *EPOCHS_40],
    ),
    "vit_stem3": (
        "vit_cpu.yaml",
        ["--stem_channels", "[32, 64, 128]", "--patch_size", "1", "--embed_dim", "192",
         "--depth", "6", "--num_heads", "3", "--pos_embed_grid", "[54, 8]", *EPOCHS_40],
    ),
    "vit_stem3_p2": (
        "vit_cpu.yaml",
        ["--stem_channels", "[32, 64, 128]", "--patch_size", "2", "--embed_dim", "256",
         "--depth", "4", "--num_heads", "4", "--pos_embed_grid", "[27, 4]", *EPOCHS_40],
    ),
}


def variant_spec(name):
    """(YAML, overrides) of a variant; ``NAME_epN`` is variant NAME trained for N epochs."""
    if name in VARIANTS:
        return VARIANTS[name]
    base, _, epochs = name.rpartition("_ep")
    if base in VARIANTS and epochs.isdigit():
        hparams, overrides = VARIANTS[base]
        if "--number_of_epochs" in overrides:
            at = overrides.index("--number_of_epochs")
            overrides = overrides[:at] + overrides[at + 2:]
        return hparams, [*overrides, "--number_of_epochs", epochs]
    raise ValueError(f"Unknown variant '{name}': known are {sorted(VARIANTS)} (+ '_epN')")


def parse_train_log(path):
    """Validation accuracies per epoch from a recipe's ``train_log.txt`` (:func:`focalnet_lobes.training.logs.read_train_log`)."""
    from focalnet_lobes.training.logs import read_train_log

    return [1.0 - row["valid error"] for row in read_train_log(path) if "valid error" in row]


def count_parameters(output_folder):
    """Parameters of the trained classifier in ``output_folder``."""
    from focalnet_lobes.inference.trained import load_trained_classifier

    model = load_trained_classifier(output_folder).model
    return sum(p.numel() for p in model.parameters())


def train_variant(name, seed, args):
    """Train one variant with one seed; returns its result dictionary."""
    hparams, overrides = variant_spec(name)
    output = Path(args.output_folder) / name / str(seed)
    command = [
        sys.executable, str(REPO / "recipes" / "train.py"), str(REPO / "hparams" / hparams),
        "--data_folder", str(args.data_folder), "--esc10", str(args.esc10),
        "--output_folder", str(output), "--seed", str(seed), "--device", args.device,
        "--test_folds", "[]" if args.no_test else "[5]",
        *overrides, *args.extra,
    ]
    pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, PYTHONPATH=pythonpath, OMP_NUM_THREADS=str(args.threads))
    start = time.time()
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.time() - start
    if result.returncode != 0:
        log = (result.stdout + result.stderr)[-3000:]
        raise RuntimeError(f"{name} seed {seed} failed:\n{log}")
    accuracies = parse_train_log(output / "train_log.txt")
    last = accuracies[-5:]
    return {
        "variant": name,
        "seed": seed,
        "overrides": overrides,
        "wall_s": wall,
        "epochs": len(accuracies),
        "valid_accuracy_per_epoch": accuracies,
        "valid_accuracy_last5": sum(last) / len(last),
        "valid_accuracy_best": max(accuracies),
        "params": count_parameters(output),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_folder", required=True)
    parser.add_argument("--variants", nargs="+", default=["focalnet_cpu", "vit_cpu"],
                        help=f"any of {sorted(VARIANTS)}, optionally with an _epN suffix (N epochs)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1986])
    parser.add_argument("--esc10", default="True")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--parallel", type=int, default=1, help="runs at the same time")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads per run")
    parser.add_argument("--no_test", action="store_true", help="skip the test fold")
    parser.add_argument("--output_folder", default="results/ablation")
    parser.add_argument("--out", default="benchmarks/results/accuracy_ablation.json")
    parser.add_argument("extra", nargs="*", help="overrides added to every run (after --)")
    args = parser.parse_args(argv)

    for name in args.variants:
        variant_spec(name)
    jobs = [(name, seed) for name in args.variants for seed in args.seeds]
    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        runs = list(pool.map(lambda job: train_variant(*job, args), jobs))

    summary = []
    for name in args.variants:
        mine = [r for r in runs if r["variant"] == name]
        summary.append({
            "variant": name,
            "params_m": mine[0]["params"] / 1e6,
            "epochs": mine[0]["epochs"],
            "wall_min": sum(r["wall_s"] for r in mine) / len(mine) / 60,
            "last5": sum(r["valid_accuracy_last5"] for r in mine) / len(mine),
            "best": sum(r["valid_accuracy_best"] for r in mine) / len(mine),
            "seeds": len(mine),
        })
    reference = summary[0]["last5"]
    header = f"{'variant':<26}{'params':>8}{'epochs':>7}{'wall min':>9}{'last-5 acc':>11}{'best acc':>9}{'vs first':>9}"
    print(header)
    print("-" * len(header))
    for row in summary:
        print(
            f"{row['variant']:<26}{row['params_m']:>7.2f}M{row['epochs']:>7}{row['wall_min']:>9.1f}"
            f"{100 * row['last5']:>10.1f}%{100 * row['best']:>8.1f}%{100 * (row['last5'] - reference):>+8.1f}"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"args": vars(args), "summary": summary, "runs": runs}, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()

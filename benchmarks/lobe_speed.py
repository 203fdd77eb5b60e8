"""CPU speed of our FocalNet-T against timm's and Hugging Face transformers' FocalNet-T.

The three models hold the SAME weights: ours is randomly initialised and its
parameters are copied into timm's ``focalnet_tiny_srf`` and transformers'
``FocalNetForImageClassification`` through the name mapping of
:func:`focalnet_lobes.models.convert.convert_focalnet`. Each model is timed on the same
input for the forward pass (``torch.no_grad``) and for forward + backward (cross
entropy on random labels), in eval mode (no dropout / stochastic depth), with a
fixed number of torch threads. Timings are medians over ``--repeats`` rounds after
``--warmup`` rounds (the table also gives the ratios of the fastest rounds); the
models alternate within each round so that load drifts affect all of them alike. On
a shared machine, other processes still dominate the spread: compare ratios from
one run only. A default run takes about 4 minutes on 2 idle cores.

The output check column is the largest absolute logit difference to ours. On
431 x 513 timm differs: its strided convolutions drop the last rows/columns that do
not fill a patch, whereas ours and transformers zero-pad them (see
:mod:`focalnet_lobes.models.focalnet`); on 224 x 224 all three agree.

Usage::

    python benchmarks/lobe_speed.py                      # batch 8, 3 repeats, 2 threads
    python benchmarks/lobe_speed.py --repeats 5 --out /tmp/speed.json
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from focalnet_lobes.models.convert import convert_focalnet  # noqa: E402
from focalnet_lobes.models.focalnet import FocalNet  # noqa: E402

TINY = dict(embed_dim=96, depths=(2, 2, 6, 2), focal_levels=(2, 2, 2, 2), focal_windows=(3, 3, 3, 3))


def parse_args(argv=None):
    """Command line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8, help="batch size")
    parser.add_argument(
        "--inputs",
        default="1x431x513,3x224x224",
        help="comma-separated CxHxW input shapes (C is also the models' in_chans)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds (median)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--num-classes", type=int, default=50, help="classifier size")
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO / "benchmarks" / "results" / "lobe_speed.json",
        help="JSON file to write",
    )
    args = parser.parse_args(argv)
    if args.batch < 1 or args.repeats < 1 or args.warmup < 0 or args.threads < 1:
        parser.error("--batch, --repeats and --threads must be >= 1, --warmup >= 0")
    try:
        args.inputs = [tuple(int(v) for v in spec.split("x")) for spec in args.inputs.split(",")]
    except ValueError:
        parser.error(f"--inputs must look like 1x431x513,3x224x224, got {args.inputs!r}")
    if any(len(shape) != 3 for shape in args.inputs):
        parser.error("each --inputs entry must be CxHxW")
    return args


def copy_ours_into(reference, ours, source):
    """Load our parameters into a reference model, using our converter's mapping."""
    ours_state = ours.state_dict()
    reference_state = reference.state_dict()
    loaded = {}
    for key, tensor in reference_state.items():
        mapped = convert_focalnet({key: tensor}, source)
        if not mapped:  # a parameter that we drop (none in a classification model)
            loaded[key] = tensor
            continue
        (our_key,) = mapped
        loaded[key] = ours_state[our_key].reshape(tensor.shape).clone()
    reference.load_state_dict(loaded, strict=True)
    return reference


def build_models(in_chans, num_classes):
    """Ours, timm's and transformers' FocalNet-T (srf) with the same weights."""
    import timm
    import transformers

    torch.manual_seed(0)
    ours = FocalNet(in_chans=in_chans, num_classes=num_classes, **TINY).eval()
    models = {"ours": ours}
    timm_model = timm.create_model("focalnet_tiny_srf", in_chans=in_chans, num_classes=num_classes)
    models["timm"] = copy_ours_into(timm_model, ours, "timm").eval()
    config = transformers.FocalNetConfig(
        num_channels=in_chans,
        num_labels=num_classes,
        embed_dim=TINY["embed_dim"],
        depths=list(TINY["depths"]),
        focal_levels=list(TINY["focal_levels"]),
        focal_windows=list(TINY["focal_windows"]),
    )
    hf_model = transformers.FocalNetForImageClassification(config)
    models["transformers"] = copy_ours_into(hf_model, ours, "transformers").eval()
    return models


def logits_of(model, x):
    """Logits of any of the three models."""
    output = model(x)
    return output.logits if hasattr(output, "logits") else output


def forward_only(model, x, labels):
    """One forward pass without autograd."""
    with torch.no_grad():
        logits_of(model, x)


def forward_backward(model, x, labels):
    """One forward + backward pass of the cross entropy."""
    model.zero_grad(set_to_none=True)
    F.cross_entropy(logits_of(model, x), labels).backward()


def timed(function, *args):
    """Wall-clock milliseconds of one call."""
    start = time.perf_counter()
    function(*args)
    return 1000.0 * (time.perf_counter() - start)


def benchmark_input(shape, args):
    """Time the three models on one input shape; return a result dict."""
    in_chans, height, width = shape
    models = build_models(in_chans, args.num_classes)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(args.batch, in_chans, height, width, generator=generator)
    labels = torch.randint(args.num_classes, (args.batch,), generator=generator)
    with torch.no_grad():
        reference = logits_of(models["ours"], x)
        max_abs_diff = {
            name: (logits_of(model, x) - reference).abs().max().item() for name, model in models.items()
        }
    times = {name: {"forward": [], "forward_backward": []} for name in models}
    for round_index in range(args.warmup + args.repeats):
        for name, model in models.items():
            forward_ms = timed(forward_only, model, x, labels)
            backward_ms = timed(forward_backward, model, x, labels)
            if round_index >= args.warmup:
                times[name]["forward"].append(forward_ms)
                times[name]["forward_backward"].append(backward_ms)
        print(f"  {shape}: round {round_index + 1}/{args.warmup + args.repeats} done", flush=True)
    medians = {
        name: {kind: statistics.median(samples) for kind, samples in kinds.items()}
        for name, kinds in times.items()
    }
    minima = {
        name: {kind: min(samples) for kind, samples in kinds.items()} for name, kinds in times.items()
    }
    ratios = {
        f"ours/{other}": {
            kind: medians["ours"][kind] / medians[other][kind] for kind in ("forward", "forward_backward")
        }
        for other in ("timm", "transformers")
    }
    ours_grids = models["ours"].stage_grid_sizes(height, width)
    timm_grids = [(height // 4, width // 4)]  # timm's strided convs floor the sizes
    for _ in ours_grids[1:]:
        timm_grids.append((timm_grids[-1][0] // 2, timm_grids[-1][1] // 2))
    return {
        "input": [args.batch, in_chans, height, width],
        # transformers pads as ours does; timm drops what does not fill a patch
        "stage_grids": {"ours": ours_grids, "transformers": ours_grids, "timm": timm_grids},
        "median_ms": medians,
        "min_ms": minima,
        "samples_ms": times,
        "ratios": ratios,
        "max_abs_logit_diff_to_ours": max_abs_diff,
    }


def format_table(results):
    """A plain-text table of the medians and ratios."""
    header = (
        f"{'input':>18} {'pass':>9} {'ours ms':>9} {'timm ms':>9} {'hf ms':>9} "
        f"{'ours/timm':>10} {'ours/hf':>8}   {'min: ours/timm':>14} {'ours/hf':>8}"
    )
    lines = [header, "-" * len(header)]
    for result in results:
        shape = "x".join(str(v) for v in result["input"])
        for kind, label in (("forward", "fwd"), ("forward_backward", "fwd+bwd")):
            ms = {name: result["median_ms"][name][kind] for name in ("ours", "timm", "transformers")}
            low = {name: result["min_ms"][name][kind] for name in ("ours", "timm", "transformers")}
            lines.append(
                f"{shape:>18} {label:>9} {ms['ours']:9.0f} {ms['timm']:9.0f} "
                f"{ms['transformers']:9.0f} {result['ratios']['ours/timm'][kind]:10.2f} "
                f"{result['ratios']['ours/transformers'][kind]:8.2f}   "
                f"{low['ours'] / low['timm']:14.2f} {low['ours'] / low['transformers']:8.2f}"
            )
    diffs = [
        f"{'x'.join(str(v) for v in r['input'])}: "
        + ", ".join(f"{k} {v:.1e}" for k, v in r["max_abs_logit_diff_to_ours"].items() if k != "ours")
        for r in results
    ]
    lines.append("max |logit - ours|: " + "; ".join(diffs))
    for result in results:
        grids = result["stage_grids"]
        if grids["timm"] != grids["ours"]:
            lines.append(
                f"{'x'.join(str(v) for v in result['input'])}: timm crops to stage grids "
                f"{grids['timm']}, ours/transformers pad to {grids['ours']}"
            )
    return "\n".join(lines)


def main(argv=None):
    """Run the benchmark, print the table, write the JSON."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    import timm
    import transformers

    print(
        f"FocalNet-T speed, batch {args.batch}, {args.threads} threads, "
        f"{args.warmup} warm-up + {args.repeats} timed rounds",
        flush=True,
    )
    results = [benchmark_input(shape, args) for shape in args.inputs]
    table = format_table(results)
    print(table)
    report = {
        "benchmark": "FocalNet-T (srf) CPU speed: ours vs timm vs transformers, same weights",
        "settings": {
            "batch": args.batch,
            "threads": args.threads,
            "repeats": args.repeats,
            "warmup": args.warmup,
            "num_classes": args.num_classes,
            "mode": "eval (no dropout/drop path); forward under no_grad; "
            "forward+backward of the cross entropy",
        },
        "environment": {
            "torch": torch.__version__,
            "timm": timm.__version__,
            "transformers": transformers.__version__,
            "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
        },
        "results": results,
        "table": table,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()

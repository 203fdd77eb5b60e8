#!/usr/bin/env python3
"""Turn a training run's output folder into a hub-ready model folder.

> python recipes/export.py --classifier_folder results/focalnet_cpu/1986 \\
>     --output_folder hub/focalnet-cpu-esc10 [--hub_id owner/focalnet-cpu-esc10]

The folder holds ``hyperparams.yaml`` (the inference YAML), ``model.ckpt`` (the
best checkpoint), ``label_encoder.txt`` and a model card ``README.md``; it is
loaded back and its logits checked against the trained classifier's
(``--no_verify`` skips this). The work is :mod:`focalnet_lobes.inference.export`; this script parses the command line.

Authors
 * focalnet-audio contributors
"""

import argparse
import json
import pathlib
import sys

from focalnet_lobes.inference.export import ExportError, export_classifier
from focalnet_lobes.inference.trained import TrainedClassifierError

#: This repository's inference template.
TEMPLATE = pathlib.Path(__file__).resolve().parents[1] / "hparams" / "inference" / "template.yaml"

def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Export a recipes/train.py output folder as a hub-ready model folder."
    )
    parser.add_argument("--classifier_folder", required=True,
                        help="output folder of recipes/train.py (holds hyperparams.yaml, save/)")
    parser.add_argument("--output_folder", required=True, help="folder to write")
    parser.add_argument("--hub_id", default=None,
                        help="hub repository (owner/name) written as the default pretrained_path")
    parser.add_argument("--quantile", type=float, default=0.9, help="default mask quantile")
    parser.add_argument("--no_verify", action="store_true",
                        help="skip loading the exported folder back to compare logits")
    return parser.parse_args(argv)


def main(argv=None):
    """Command-line entry point; returns the exit status."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        summary = export_classifier(
            args.classifier_folder,
            args.output_folder,
            hub_id=args.hub_id,
            quantile=args.quantile,
            verify=not args.no_verify,
            template=TEMPLATE,
        )
    except (ExportError, TrainedClassifierError) as error:
        print(f"export.py: error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The ``focalnet-audio`` command line: classify and interpret audio files.

::

    focalnet-audio classify clip.wav --source DIR_OR_HUB_ID [--top_k 5]
    focalnet-audio interpret clip.wav --source DIR_OR_HUB_ID --out OUT/ [--quantile 0.9]
    focalnet-audio interpret clip.wav --source DIR --out OUT/ --method lmac --lmac_source LMAC_RUN

``--source`` is a model folder (``recipes/export.py`` writes one; it holds
``hyperparams.yaml``) or a Hugging Face hub id; ``--savedir`` is where a hub
model's files are linked (default: the Hugging Face cache only). ``interpret``
writes, for each clip, ``<stem>_interpretation.wav`` (the listenable
interpretation), ``<stem>_interpretation.png`` (spectrogram, map, masked
spectrogram) and ``<stem>_interpretation.json`` (the top-k classes and scores).
The map is the model's own (``--method design``, the default) or that of an
L-MAC trained on the model by ``recipes/train_lmac.py`` (``--method lmac
--lmac_source FOLDER``).
Also runnable as ``python -m focalnet_lobes.cli``.

Problems (a missing or corrupt audio file, a source that is not a model) end
the command with a one-line message and exit status 1; usage errors exit with 2.
"""

import argparse
import json
import pathlib
import sys

PROGRAM = "focalnet-audio"


class CommandError(Exception):
    """A problem reported to the user in one line."""


def build_parser():
    """The argument parser of ``focalnet-audio``.

    Example
    -------
    >>> args = build_parser().parse_args(["classify", "a.wav", "--source", "model/"])
    >>> args.command, args.files, args.top_k
    ('classify', ['a.wav'], 5)
    """
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description="Classify environmental sounds and listen to why (FocalNet / ViT).",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def common(sub):
        sub.add_argument("files", nargs="+", help="audio files (any sample rate and channel count)")
        sub.add_argument("--source", required=True,
                         help="model folder (with hyperparams.yaml) or Hugging Face hub id")
        sub.add_argument("--savedir", default=None,
                         help="where to keep the model's files (default: none / the hub cache)")
        sub.add_argument("--top_k", type=int, default=5, help="how many classes to report")
        sub.add_argument("--device", default="cpu", help="torch device (default: cpu)")

    classify = commands.add_parser("classify", help="print the top-k classes of each file")
    common(classify)
    classify.add_argument("--json", action="store_true", help="print JSON instead of text")

    interpret = commands.add_parser(
        "interpret", help="write the listenable interpretation (WAV), a PNG and a JSON per file"
    )
    common(interpret)
    interpret.add_argument("--out", required=True, help="output folder")
    interpret.add_argument("--quantile", type=float, default=None,
                           help="mask quantile in [0, 1) (default: the model's)")
    interpret.add_argument("--method", choices=("design", "lmac"), default="design",
                           help="design: the model's own map (default); lmac: a trained L-MAC")
    interpret.add_argument("--lmac_source", default=None,
                           help="output folder of recipes/train_lmac.py (with --method lmac)")
    return parser


def _check_args(args):
    if args.top_k < 1:
        raise CommandError(f"--top_k must be >= 1, got {args.top_k}")
    quantile = getattr(args, "quantile", None)
    if quantile is not None and not 0.0 <= quantile < 1.0:
        raise CommandError(f"--quantile must be in [0, 1), got {quantile}")
    for name in args.files:
        path = pathlib.Path(name)
        if not path.exists():
            raise CommandError(f"cannot load audio file '{name}': file not found")
        if not path.is_file():
            raise CommandError(f"cannot load audio file '{name}': not a regular file")
    method = getattr(args, "method", "design")
    if method == "lmac" and not getattr(args, "lmac_source", None):
        raise CommandError("--method lmac needs --lmac_source (an output folder of train_lmac.py)")
    if method != "lmac" and getattr(args, "lmac_source", None):
        raise CommandError("--lmac_source is only used with --method lmac")


def load_classifier(source, savedir=None, device="cpu"):
    """``AudioClassifier.from_hparams`` with every failure turned into a CommandError."""
    from focalnet_lobes.inference import AudioClassifier, ModelSourceError, check_model_source

    try:
        check_model_source(source)
    except ModelSourceError as error:
        raise CommandError(str(error)) from error
    try:
        return AudioClassifier.from_hparams(
            source=source, savedir=savedir, run_opts={"device": device}
        )
    except Exception as error:  # noqa: BLE001  (YAML, fetching, checkpoint errors alike)
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CommandError(f"cannot load the model from '{source}': {message}") from error


def _audio_problem(error):
    from focalnet_lobes.audio import AudioError

    return isinstance(error, AudioError)


def run_classify(args, classifier, out=None):
    """Print the top-k classes of every file (to ``out``, default stdout); returns the results."""
    from focalnet_lobes.inference import top_k

    out = out or sys.stdout

    results = []
    for name in args.files:
        try:
            probabilities, _, _, _ = classifier.classify_file(name)
        except Exception as error:  # noqa: BLE001
            if _audio_problem(error):
                raise CommandError(str(error)) from error
            raise
        best = top_k(probabilities[0], classifier.class_names, args.top_k)
        results.append({"file": name, "top_k": best})
        if not args.json:
            print(name, file=out)
            for rank, entry in enumerate(best, start=1):
                print(f"  {rank}. {entry['label']:<24s} {entry['score']:.4f}", file=out)
    if args.json:
        print(json.dumps(results, indent=2), file=out)
    return results


def run_interpret(args, classifier, out=None):
    """Write WAV, PNG and JSON for every file (report to ``out``); returns the JSON documents."""
    from focalnet_lobes.inference import top_k

    out = out or sys.stdout

    out_dir = pathlib.Path(args.out)
    documents = []
    for name in args.files:
        try:
            result = classifier.interpret_file(name, out_dir=out_dir, quantile=args.quantile)
        except Exception as error:  # noqa: BLE001
            if _audio_problem(error):
                raise CommandError(str(error)) from error
            raise
        stem = pathlib.Path(name).stem
        json_path = out_dir / f"{stem}_interpretation.json"
        document = {
            "file": str(name),
            "source": args.source,
            "predicted": top_k(result.probabilities[0], classifier.class_names, 1)[0],
            "top_k": top_k(result.probabilities[0], classifier.class_names, args.top_k),
            "quantile": result.quantile,
            "method": getattr(args, "method", "design"),
            "mask_fraction": float(result.mask[0].float().mean()),
            "sample_rate": result.sample_rate,
            "duration_s": result.listenable.shape[-1] / result.sample_rate,
            "wav": result.files["wav"],
            "png": result.files["png"],
        }
        json_path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        document["json"] = str(json_path)
        documents.append(document)
        predicted = document["predicted"]
        print(
            f"{name}: {predicted['label']} ({predicted['score']:.3f}) -> "
            f"{document['wav']}, {document['png']}, {json_path}",
            file=out,
        )
    return documents


def main(argv=None):
    """Run ``focalnet-audio``; returns the exit status (0 ok, 1 error, 2 usage)."""
    args = build_parser().parse_args(argv)
    try:
        _check_args(args)
        classifier = load_classifier(args.source, args.savedir, args.device)
        if getattr(args, "method", "design") == "lmac":
            from focalnet_lobes.lmac import LMACFolderError

            try:
                classifier.use_lmac(args.lmac_source)
            except LMACFolderError as error:
                raise CommandError(str(error)) from error
        if args.command == "classify":
            run_classify(args, classifier)
        else:
            run_interpret(args, classifier)
    except CommandError as error:
        print(f"{PROGRAM}: error: {error}", file=sys.stderr)
        return 1
    except (OSError, ValueError, RuntimeError) as error:
        print(f"{PROGRAM}: error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

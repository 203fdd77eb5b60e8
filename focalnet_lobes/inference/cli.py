"""The ``focalnet-audio`` command line: classify and interpret audio files.

::

    focalnet-audio classify INPUT... [--source DIR_OR_HUB_ID] [--top_k 5] [--out OUT/]
    focalnet-audio interpret INPUT... --out OUT/ [--source DIR_OR_HUB_ID] [--quantile 0.9]
        [--window SECONDS] [--hop SECONDS] [--method lmac --lmac_source LMAC_RUN]

Inputs are audio files, folders (searched recursively for files with an audio
extension, :data:`AUDIO_EXTENSIONS`) and glob patterns (``"clips/**/*.wav"``).
Without ``--source`` the model shipped with the package is used
(:func:`focalnet_lobes.inference.classifiers.default_source`); ``--source`` is a model folder
(``recipes/export.py`` writes one; it holds ``hyperparams.yaml``) or a Hugging
Face hub id; ``--savedir`` is where the model's files are linked (symbolic
links, or copies where links are not allowed; ``--local_strategy`` forces one).

The map is the model's own (``--method design``, the default) or that of an
L-MAC trained on the model by ``recipes/train_lmac.py`` (``--method lmac
--lmac_source FOLDER``).

**Clips and long recordings.** A file no longer than the model's clip length
(``pad_to_seconds`` of its YAML, 5 s for the shipped model) is one clip, as in
training. A longer file, or any file when ``--window`` is given, is analysed
over sliding windows (:mod:`focalnet_lobes.inference.longform`: window = the model's clip
length unless ``--window``, hop = half the window unless ``--hop``; the file is
streamed, memory is bounded by the window): per-window top-k, and the file's
prediction is the mean of the probabilities of the windows that are not silent
(a window under the model's silence threshold is reported as ``silent``).

**Outputs** (``interpret``, and ``classify`` with ``--out``). For each input,
under ``--out``: ``<name>_interpretation.wav`` (the listenable interpretation,
as long as the input), ``<name>_interpretation.png`` (spectrogram, map, masked
spectrogram; for a windowed file, the timeline of class probabilities) and
``<name>_interpretation.json`` (the top-k; for a windowed file, also every
window), plus ``<name>_windows.csv`` for a windowed file. ``classify --out``
writes ``<name>_classification.json`` (and the CSV) instead. ``<name>`` is the
input's path relative to the inputs' common folder, without its extension (so
``a/dog.wav`` and ``b/dog.wav`` give ``a/dog_*`` and ``b/dog_*``); two inputs
that would still share a name (``dog.wav`` and ``dog.flac``) keep their
extension (``dog.flac_*``), then a number: no output of a command overwrites
another. ``summary.csv`` and ``summary.json`` list every input (one row each,
failures included).

**Failures.** A bad input (missing, corrupt, empty, unsupported) does not stop
the others: each is reported on stderr as one line, listed in the summary, and
the exit status is 1. Problems with the command itself (no inputs, a source
that is not a model, a bad option) end it at once with a one-line message and
exit status 1; usage errors exit with 2. A progress bar is shown on a terminal.
Also runnable as ``python -m focalnet_lobes.inference.cli``.
"""

import argparse
import csv
import glob
import json
import math
import os
import pathlib
import sys

PROGRAM = "focalnet-audio"

AUDIO_EXTENSIONS = (
    ".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".au",
    ".snd", ".caf", ".w64", ".rf64", ".m4a", ".wma", ".webm",
)
"""File extensions collected from folders (case-insensitive)."""

SUMMARY_FIELDS = ("file", "status", "mode", "predicted", "score", "duration_s", "windows",
                  "outputs", "error")


class CommandError(Exception):
    """A problem reported to the user in one line."""


def build_parser():
    """The argument parser of ``focalnet-audio``.

    Example
    -------
    >>> args = build_parser().parse_args(["classify", "a.wav", "--source", "model/"])
    >>> args.command, args.files, args.top_k, args.window
    ('classify', ['a.wav'], 5, None)
    >>> build_parser().parse_args(["interpret", "clips/", "--out", "o"]).source is None
    True
    """
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description="Classify environmental sounds and listen to why (FocalNet / ViT).",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def common(sub):
        sub.add_argument("files", nargs="+",
                         help="audio files, folders (recursive) or glob patterns "
                              "(any sample rate, channel count and length)")
        sub.add_argument("--source", default=None,
                         help="model folder (with hyperparams.yaml) or Hugging Face hub id "
                              "(default: the model shipped with the package)")
        sub.add_argument("--savedir", default=None,
                         help="where to keep the model's files (default: none / the hub cache)")
        sub.add_argument("--local_strategy", default=None,
                         choices=["symlink", "copy", "copy_skip_cache", "no_link"],
                         help="how files reach --savedir (default: symlink, copy where "
                              "symbolic links are not allowed)")
        sub.add_argument("--top_k", type=int, default=5, help="how many classes to report")
        sub.add_argument("--device", default="cpu", help="torch device (default: cpu)")
        sub.add_argument("--window", type=float, default=None,
                         help="analyse over sliding windows of this many seconds (default: "
                              "only files longer than the model's clip, with windows of its "
                              "clip length)")
        sub.add_argument("--hop", type=float, default=None,
                         help="hop between windows in seconds (default: half the window)")

    classify = commands.add_parser("classify", help="print the top-k classes of each file")
    common(classify)
    classify.add_argument("--json", action="store_true", help="print JSON instead of text")
    classify.add_argument("--out", default=None,
                          help="also write per-file JSON and summary.csv/json to this folder")

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
    for option in ("window", "hop"):
        value = getattr(args, option)
        if value is not None and not value > 0:
            raise CommandError(f"--{option} must be a positive number of seconds, got {value}")
    method = getattr(args, "method", "design")
    if method == "lmac" and not getattr(args, "lmac_source", None):
        raise CommandError("--method lmac needs --lmac_source (an output folder of train_lmac.py)")
    if method != "lmac" and getattr(args, "lmac_source", None):
        raise CommandError("--lmac_source is only used with --method lmac")


def _check_windows(args, classifier):
    """Check ``--window``/``--hop`` against the model (its clip length is the default window)."""
    from focalnet_lobes.inference.longform import model_clip_seconds, window_settings

    window = model_clip_seconds(classifier) if args.window is None else args.window
    try:
        window_settings(classifier.sample_rate, window, args.hop)
    except ValueError as error:
        raise CommandError(str(error)) from error


def _is_glob(text):
    return any(char in text for char in "*?[")


def collect_inputs(names):
    """Expand files, folders and glob patterns into audio files.

    Arguments
    ---------
    names : list of str
        What the user gave.

    Returns
    -------
    (list of pathlib.Path, list of (str, str))
        The files, in the order given (folders and globs sorted), each once; and
        the inputs that gave nothing, with the reason.

    Example
    -------
    >>> import tempfile, os
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("a/dog.wav", "b/dog.WAV", "b/notes.txt"):
    ...     (root / name).parent.mkdir(exist_ok=True); _ = (root / name).write_bytes(b"")
    >>> files, problems = collect_inputs([str(root), str(root / "missing.wav")])
    >>> [str(f.relative_to(root)) for f in files], [reason for _, reason in problems]
    (['a/dog.wav', 'b/dog.WAV'], ['file not found'])
    """
    files, problems, seen = [], [], set()

    def add(path):
        key = os.path.normcase(str(path.resolve()))
        if key not in seen:
            seen.add(key)
            files.append(path)

    for name in names:
        path = pathlib.Path(name)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*")
                           if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
            if not found:
                problems.append((name, "folder holds no audio files "
                                       f"({', '.join(AUDIO_EXTENSIONS[:4])}, ...)"))
            for found_path in found:
                add(found_path)
        elif path.exists():
            if path.is_file():
                add(path)
            else:
                problems.append((name, "not a regular file"))
        elif _is_glob(name):
            found = sorted(pathlib.Path(p) for p in glob.glob(name, recursive=True))
            found = [p for p in found if p.is_file()]
            if not found:
                problems.append((name, "no file matches this pattern"))
            for found_path in found:
                add(found_path)
        else:
            problems.append((name, "file not found"))
    return files, problems


def output_names(files):
    """A distinct output base name for every input file.

    The path relative to the inputs' common folder, without extension; names
    that still collide (compared case-insensitively, as on Windows and macOS)
    keep their extension, then get ``_2``, ``_3``...

    Arguments
    ---------
    files : list of pathlib.Path
        Distinct input files.

    Returns
    -------
    list of str
        POSIX-style names (``/`` separates subfolders).

    Example
    -------
    >>> output_names([pathlib.Path("x/a/dog.wav"), pathlib.Path("x/b/dog.wav")])
    ['a/dog', 'b/dog']
    >>> output_names([pathlib.Path("dog.wav"), pathlib.Path("dog.flac"), pathlib.Path("cat.wav")])
    ['dog.wav', 'dog.flac', 'cat']
    >>> output_names([pathlib.Path("clips/dog.wav")])
    ['dog']
    """
    if not files:
        return []
    absolute = [pathlib.Path(os.path.abspath(f)) for f in files]
    try:
        root = pathlib.Path(os.path.commonpath([str(p.parent) for p in absolute]))
        relative = [p.relative_to(root) for p in absolute]
    except ValueError:  # different drives: keep the whole path
        relative = [pathlib.Path(*p.parts[1:]) for p in absolute]
    names = [r.with_suffix("").as_posix() for r in relative]
    counts = {}
    for name in names:
        counts[name.casefold()] = counts.get(name.casefold(), 0) + 1
    names = [r.as_posix() if counts[n.casefold()] > 1 else n for r, n in zip(relative, names)]
    result, used = [], set()
    for name in names:
        candidate, number = name, 1
        while candidate.casefold() in used:
            number += 1
            candidate = f"{name}_{number}"
        used.add(candidate.casefold())
        result.append(candidate)
    return result


def load_classifier(source, savedir=None, device="cpu", local_strategy=None):
    """``AudioClassifier.from_hparams`` with every failure turned into a CommandError.

    ``source=None`` loads the model shipped with the package.
    """
    from focalnet_lobes.inference.classifiers import (AudioClassifier, ModelSourceError,
                                          check_model_source, default_source)

    if source is None:
        source = default_source()
        if not (source / "hyperparams.yaml").is_file():
            raise CommandError(
                f"no --source given and the shipped model is missing from {source} "
                "(reinstall focalnet-audio, or give --source)"
            )
    try:
        check_model_source(source)
    except ModelSourceError as error:
        raise CommandError(str(error)) from error
    try:
        return AudioClassifier.from_hparams(
            source=source, savedir=savedir, run_opts={"device": device},
            local_strategy=local_strategy,
        )
    except Exception as error:  # noqa: BLE001  (YAML, fetching, checkpoint errors alike)
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CommandError(f"cannot load the model from '{source}': {message}") from error


def _error_line(error):
    """One line for a failed input."""
    from focalnet_lobes.data.audio import AudioError

    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if isinstance(error, AudioError):
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _windowed(args, classifier, path):
    """Whether ``path`` is analysed over sliding windows (see the module docstring)."""
    if args.window is not None:
        return True
    import soundfile

    from focalnet_lobes.inference.longform import model_clip_seconds

    try:
        info = soundfile.info(str(path))
    except Exception:  # noqa: BLE001  (not readable by libsndfile: treated as a clip)
        return False
    clip = model_clip_seconds(classifier)
    return info.samplerate > 0 and info.frames > round(clip * info.samplerate)


def _source_name(args):
    if args.source is not None:
        return str(args.source)
    from focalnet_lobes.inference.classifiers import SHIPPED_MODEL

    return f"{SHIPPED_MODEL} (shipped)"


def _process_clip(args, classifier, path, name, out_dir):
    """Classify or interpret one clip; returns its JSON document."""
    from focalnet_lobes.data.audio import load_audio_with_level
    from focalnet_lobes.inference.classifiers import top_k

    interpret = args.command == "interpret"
    # Silence is judged on the file's level before peak normalisation.
    waveform, level = load_audio_with_level(path, classifier.sample_rate)
    if interpret:
        result = classifier.interpret_batch(waveform[None], quantile=args.quantile,
                                            levels_dbfs=[level])
        probabilities, silent = result.probabilities[0], bool(result.silent[0])
    else:
        probabilities, _, indices, _ = classifier.classify_batch(waveform[None],
                                                                 levels_dbfs=[level])
        probabilities, silent = probabilities[0].cpu(), bool(indices[0] < 0)
    best = top_k(probabilities, classifier.class_names, args.top_k)
    predicted = ({"label": "silence", "index": -1, "score": best[0]["score"]}
                 if silent else best[0])
    document = {"file": str(path), "source": _source_name(args), "mode": "clip",
                "predicted": predicted, "silent": silent,
                "level_dbfs": level if math.isfinite(level) else None,
                "top_k": best}
    if interpret:
        base = out_dir / name
        base.parent.mkdir(parents=True, exist_ok=True)
        files = classifier.save_interpretation(result, base.parent, base.name)
        json_path = base.with_name(base.name + "_interpretation.json")
        document.update({
            "quantile": result.quantile,
            "method": getattr(args, "method", "design"),
            "mask_fraction": float(result.mask[0].float().mean()),
            "sample_rate": result.sample_rate,
            "duration_s": result.listenable.shape[-1] / result.sample_rate,
            "wav": files["wav"],
            "png": files["png"],
            "json": str(json_path),
        })
        json_path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    else:
        document["duration_s"] = waveform.numel() / classifier.sample_rate
        if out_dir is not None:
            base = out_dir / name
            base.parent.mkdir(parents=True, exist_ok=True)
            json_path = base.with_name(base.name + "_classification.json")
            document["json"] = str(json_path)
            json_path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return document


def _process_long(args, classifier, path, name, out_dir, bar):
    """Classify or interpret one file over sliding windows; returns its JSON document."""
    from focalnet_lobes.inference import longform

    progress = None
    if bar is not None:
        rate = classifier.sample_rate

        def progress(samples):
            bar.set_postfix_str(f"{pathlib.Path(path).name} {samples / rate:.0f} s")

    if args.command == "interpret":
        result = longform.interpret_long_file(
            classifier, path, out_dir, name=name, window=args.window, hop=args.hop,
            quantile=args.quantile, top_k=args.top_k, progress=progress,
        )
        document = result.to_json(source=_source_name(args))
        json_path = pathlib.Path(result.files["json"])
        json_path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        return document
    result = longform.classify_long_file(
        classifier, path, window=args.window, hop=args.hop, top_k=args.top_k, progress=progress,
    )
    if out_dir is not None:
        base = out_dir / name
        base.parent.mkdir(parents=True, exist_ok=True)
        csv_path = base.with_name(base.name + "_windows.csv")
        json_path = base.with_name(base.name + "_classification.json")
        result.write_csv(csv_path)
        result.files = {"csv": str(csv_path), "json": str(json_path)}
        document = result.to_json(source=_source_name(args))
        json_path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        return document
    return result.to_json(source=_source_name(args))


def _print_document(document, json_mode, interpret):
    """The text printed for a processed input (None in --json mode)."""
    if json_mode:
        return
    predicted = document["predicted"]
    if interpret:
        written = ", ".join(document[key] for key in ("wav", "png", "csv", "json") if key in document)
        windows = f" [{document['num_windows']} windows]" if document["mode"] == "windowed" else ""
        return f"{document['file']}: {predicted['label']} ({predicted['score']:.3f}){windows} -> {written}"
    lines = [document["file"] + (
        f" ({document['num_windows']} windows of {document['window_s']:g} s, "
        "mean probability)" if document["mode"] == "windowed" else "")]
    if document.get("silent"):
        level = document.get("level_dbfs")
        level = "digital silence" if level is None else f"{level:.1f} dBFS"
        lines.append(f"  silence ({level}, under the model's silence threshold): no class")
        return "\n".join(lines)
    for rank, entry in enumerate(document["top_k"], start=1):
        lines.append(f"  {rank}. {entry['label']:<24s} {entry['score']:.4f}")
    return "\n".join(lines)


def _summary_row(document=None, file=None, error=None):
    if error is not None:
        return {"file": file, "status": "failed", "error": error}
    outputs = [document[key] for key in ("wav", "png", "csv", "json") if key in document]
    return {
        "file": document["file"],
        "status": "ok",
        "mode": document["mode"],
        "predicted": document["predicted"]["label"],
        "score": f"{document['predicted']['score']:.6f}",
        "duration_s": f"{document.get('duration_s', 0.0):.3f}",
        "windows": document.get("num_windows", 1),
        "outputs": ";".join(outputs),
    }


def write_summary(out_dir, rows, documents, failures, args):
    """Write ``summary.csv`` and ``summary.json`` in ``out_dir``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = out_dir / "summary.csv", out_dir / "summary.json"
    with open(csv_path, "w", newline="", encoding="utf-8") as fout:
        writer = csv.DictWriter(fout, fieldnames=SUMMARY_FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
    summary = {
        "command": args.command,
        "source": _source_name(args),
        "inputs": len(rows),
        "ok": len(documents),
        "failed": [{"file": file, "error": error} for file, error in failures],
        "results": [{key: value for key, value in document.items() if key != "windows"}
                    for document in documents],
    }
    json_path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return csv_path, json_path


def run(args, classifier, files, problems, out=None, err=None):
    """Process every input, keeping going past bad ones.

    Returns
    -------
    (list of dict, list of (str, str))
        The JSON documents of the inputs that worked and the (input, error line)
        of those that did not (``problems`` first).
    """
    from tqdm import tqdm

    out = out or sys.stdout
    err = err or sys.stderr
    out_dir = pathlib.Path(args.out) if getattr(args, "out", None) else None
    interpret = args.command == "interpret"
    names = output_names(files)
    documents, rows = [], []
    failures = [(name, f"cannot load audio file '{name}': {reason}") for name, reason in problems]
    rows += [_summary_row(file=name, error=error) for name, error in failures]
    bar = tqdm(total=len(files), unit="file", disable=None, file=err, dynamic_ncols=True)
    try:
        for path, name in zip(files, names):
            try:
                if _windowed(args, classifier, path):
                    document = _process_long(args, classifier, path, name, out_dir, bar)
                else:
                    document = _process_clip(args, classifier, path, name, out_dir)
            except (KeyboardInterrupt, MemoryError):
                raise
            except Exception as error:  # noqa: BLE001  (report it, go on with the others)
                line = _error_line(error)
                failures.append((str(path), line))
                rows.append(_summary_row(file=str(path), error=line))
                bar.update(1)
                continue
            documents.append(document)
            rows.append(_summary_row(document))
            text = _print_document(document, getattr(args, "json", False), interpret)
            if text:
                bar.write(text, file=out)
            bar.update(1)
    finally:
        bar.close()
    if getattr(args, "json", False):
        print(json.dumps(documents, indent=2), file=out)
    if out_dir is not None:
        csv_path, _ = write_summary(out_dir, rows, documents, failures, args)
        if len(rows) > 1 or failures:
            print(f"{len(documents)} of {len(rows)} inputs done, {len(failures)} failed; "
                  f"summary: {csv_path}", file=out if not getattr(args, "json", False) else err)
    return documents, failures


def _return_freed_memory():
    """On glibc, fix the mmap threshold at 128 KiB (its initial value).

    glibc raises the threshold each time a large block is freed, after which
    blocks of that size come from the heap, which fragments: over a 10-minute
    recording the resident memory of the windowed analysis grew by 70 MB. A fixed
    threshold returns every large per-window block to the system when freed, and
    the memory stays flat. Nothing happens elsewhere (no glibc, or it fails).
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def main(argv=None):
    """Run ``focalnet-audio``; returns the exit status (0 ok, 1 error, 2 usage)."""
    args = build_parser().parse_args(argv)
    _return_freed_memory()
    try:
        _check_args(args)
        files, problems = collect_inputs(args.files)
        if not files:
            if len(problems) == 1:
                name, reason = problems[0]
                raise CommandError(f"cannot load audio file '{name}': {reason}")
            raise CommandError("no audio file among the inputs: " + "; ".join(
                f"'{name}': {reason}" for name, reason in problems))
        classifier = load_classifier(args.source, args.savedir, args.device, args.local_strategy)
        if getattr(args, "method", "design") == "lmac":
            from focalnet_lobes.interpretation.lmac import LMACFolderError

            try:
                classifier.use_lmac(args.lmac_source)
            except LMACFolderError as error:
                raise CommandError(str(error)) from error
        _check_windows(args, classifier)
        _, failures = run(args, classifier, files, problems)
    except CommandError as error:
        print(f"{PROGRAM}: error: {error}", file=sys.stderr)
        return 1
    except (OSError, ValueError, RuntimeError) as error:
        print(f"{PROGRAM}: error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    for _, line in failures:
        print(f"{PROGRAM}: error: {line}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

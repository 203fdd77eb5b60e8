#!/usr/bin/env python3
"""Download, verify and describe ESC-50 as SpeechBrain JSON manifests.

ESC-50 (K. J. Piczak, ACM MM 2015) is 2000 five-second clips in 50 classes, split
into 5 folds; ESC-10 is its 10-class subset (the ``esc10`` column). The official
release is laid out as::

    DATA/audio/<fold>-<src>-<take>-<target>.wav
    DATA/meta/esc50.csv      filename,fold,target,category,esc10,src_file,take

:func:`prepare_esc50` downloads and extracts the official archive when
``DATA/meta/esc50.csv`` is missing (:mod:`focalnet_lobes.data.download`: SpeechBrain's
downloader, size- and optionally checksum-verified, path-traversal-safe
extraction), checks the metadata and every audio file it lists
(:mod:`focalnet_lobes.data.manifests`), and writes in ``save_folder``:

- ``train.json``, ``valid.json``, ``test.json``: ``{clip_id: {"wav": absolute
  path, "class_name": str, "label": int, "esc50_target": int, "fold": int,
  "length": seconds}}``, where ``clip_id`` is the file name without ``.wav`` and
  ``label`` is the class index the models are trained on (the ESC-50 target, or
  0..9 in ESC-10 order for ``esc10=True``);
- ``classes.json``: the class names in label order (50 names, or 10 with
  ``esc10=True``);
- ``skipped_files.txt``: one ``path<TAB>reason`` line per listed file that is
  missing, unreadable, empty, truncated (a WAV whose header declares more data
  than the file holds) or shorter than ``min_seconds`` (such files are skipped,
  never fatal, and named in the log);
- ``prepare_options.json``: the options and a fingerprint of the metadata and the
  audio files, so that a second call with the same options on unchanged data
  does nothing.

Command line::

    python recipes/esc50_prepare.py --data_folder DATA --save_folder OUT [--esc10] [--no-download]

Authors: focalnet-audio contributors. Facts (archive URL, layout, fold protocol)
follow SpeechBrain's ``recipes/ESC50/esc50_prepare.py``.
"""

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from focalnet_lobes.data.audio import inspect_audio_file
from focalnet_lobes.data.download import DownloadError, UnsafeArchiveError, download_and_extract
from focalnet_lobes.data.manifests import (
    PreparationRecord,
    check_listed_files,
    disjoint_folds,
    files_fingerprint,
    parse_bool,
    read_csv_table,
    write_split_manifests,
)

logger = logging.getLogger(__name__)

ESC50_URL = "https://github.com/karolpiczak/ESC-50/archive/master.zip"
ARCHIVE_NAME = "ESC-50-master.zip"
ESC50_FOLDS = (1, 2, 3, 4, 5)
ESC50_NUM_CLASSES = 50
SPLITS = ("train", "valid", "test")
OPTIONS_FILE = "prepare_options.json"
SKIPPED_FILE = "skipped_files.txt"
CLASSES_FILE = "classes.json"
PREPARE_VERSION = 2
#: Length of every ESC-50 clip, seconds.
ESC50_CLIP_SECONDS = 5.0
#: Default shortest usable clip: a fiftieth of an ESC-50 clip (0.1 s, as
#: focalnet_lobes.data.audio.DEFAULT_MIN_SECONDS); the recipes set it from their clip
#: length (YAML ``min_clip_seconds: !ref <clip_seconds> / 10``).
DEFAULT_MIN_SECONDS = ESC50_CLIP_SECONDS / 50


class ESC50NotFoundError(FileNotFoundError):
    """ESC-50 is not in the data folder and could not be downloaded."""


def manual_download_steps(data_folder, url=ESC50_URL):
    """Instructions (str) to put ESC-50 in ``data_folder`` by hand from the archive at ``url``.

    Example
    -------
    >>> print(manual_download_steps("/data/ESC-50", "https://example.org/ESC-50-master.zip"))
    To install ESC-50 by hand:
      1. download https://example.org/ESC-50-master.zip
      2. unzip it and move its audio/ and meta/ folders into /data/ESC-50, so that
         /data/ESC-50/meta/esc50.csv and /data/ESC-50/audio/*.wav exist
      3. run the preparation again
    """
    data_folder = Path(data_folder)
    return (
        "To install ESC-50 by hand:\n"
        f"  1. download {url}\n"
        f"  2. unzip it and move its audio/ and meta/ folders into {data_folder}, so that\n"
        f"     {data_folder / 'meta' / 'esc50.csv'} and {data_folder / 'audio' / '*.wav'} exist\n"
        "  3. run the preparation again"
    )


def install_esc50(data_folder, download=True, url=ESC50_URL, expected_sha256=None, max_attempts=3):
    """Make sure ``data_folder/meta/esc50.csv`` exists, downloading the official archive if allowed.

    The download is :func:`focalnet_lobes.data.download.download_and_extract`
    (SpeechBrain's downloader, retried from the start when cut short, SHA-256
    checked when ``expected_sha256`` is given, safe extraction); ``audio/`` then
    ``meta/`` are moved into ``data_folder`` (``meta/esc50.csv`` last, so its
    presence means a complete install) and the archive is deleted.

    Raises
    ------
    ESC50NotFoundError
        The data is missing and ``download`` is False, or the download failed;
        the message names the URL, the reason and the manual steps.

    Example
    -------
    >>> import tempfile, zipfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> with zipfile.ZipFile(folder / "esc.zip", "w") as archive:
    ...     archive.writestr("ESC-50-master/meta/esc50.csv", "filename,fold,target,category,esc10\\n")
    ...     archive.writestr("ESC-50-master/audio/README", "no clips")
    >>> install_esc50(folder / "data", url=(folder / "esc.zip").as_uri())
    >>> sorted(path.name for path in (folder / "data").iterdir())
    ['audio', 'meta']
    """
    csv_path = Path(data_folder) / "meta" / "esc50.csv"
    if csv_path.is_file():
        return
    if not download:
        raise ESC50NotFoundError(
            f"ESC-50 not found: {csv_path} does not exist and download=False.\n"
            + manual_download_steps(data_folder, url)
        )
    logger.info("Downloading ESC-50 (about 600 MB) from %s into %s", url, data_folder)
    try:
        download_and_extract(
            url, data_folder, ARCHIVE_NAME, "meta/esc50.csv", ("audio", "meta"),
            expected_sha256=expected_sha256, max_attempts=max_attempts,
        )
    except (DownloadError, UnsafeArchiveError, OSError) as error:
        raise ESC50NotFoundError(
            f"ESC-50 not found in {data_folder} and the download from {url} failed: {error}\n"
            + manual_download_steps(data_folder, url)
        ) from error
    logger.info("ESC-50 installed in %s", data_folder)


def read_esc50_metadata(csv_path):
    """Read and check ``meta/esc50.csv`` (:func:`focalnet_lobes.data.manifests.read_csv_table`).

    Returns
    -------
    list of dict
        One dict per row: ``filename`` (str), ``fold`` (int), ``target`` (int,
        0..49), ``category`` (str), ``esc10`` (bool).

    Raises
    ------
    ValueError
        A required column (``filename, fold, target, category, esc10``) is
        missing, or a row holds a bad value (the file and line are named).

    Example
    -------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "esc50.csv"
    >>> _ = path.write_text("filename,fold,target,category,esc10,src_file,take\\n"
    ...                     "1-100032-A-0.wav,1,0,dog,True,100032,A\\n")
    >>> read_esc50_metadata(path)
    [{'filename': '1-100032-A-0.wav', 'fold': 1, 'target': 0, 'category': 'dog', 'esc10': True}]
    """
    converters = {"filename": str, "fold": int, "target": int, "category": str, "esc10": parse_bool}
    rows = read_csv_table(csv_path, converters, non_empty=("filename", "category"))
    for line, row in rows:
        if not 0 <= row["target"] < ESC50_NUM_CLASSES:
            raise ValueError(
                f"{csv_path}, line {line}: target {row['target']} is outside 0..{ESC50_NUM_CLASSES - 1}"
            )
    return [row for _, row in rows]


def class_encoding(rows, esc10=False):
    """Label of every ESC-50 target, and the class names in label order.

    With ``esc10=False`` the label is the ESC-50 target (50 classes; a target
    absent from ``rows`` is named ``"target_<n>"``). With ``esc10=True`` the
    classes are the targets of the ``esc10`` rows, sorted, encoded 0..9. ``rows``
    are all rows of :func:`read_esc50_metadata`, so that the encoding does not
    depend on which files are usable. Returns ``(label_of_target, class_names)``;
    ValueError when two rows give one target two names.

    Example
    -------
    >>> rows = [{"target": 41, "category": "chainsaw", "esc10": True},
    ...         {"target": 0, "category": "dog", "esc10": True},
    ...         {"target": 2, "category": "pig", "esc10": False}]
    >>> class_encoding(rows, esc10=True)
    ({0: 0, 41: 1}, ['dog', 'chainsaw'])
    >>> labels, names = class_encoding(rows)
    >>> labels[41], len(names), names[2], names[3]
    (41, 50, 'pig', 'target_3')
    """
    name_of_target = {}
    for row in rows:
        known = name_of_target.setdefault(row["target"], row["category"])
        if known != row["category"]:
            raise ValueError(f"target {row['target']} has two class names: {known!r} and {row['category']!r}")
    if esc10:
        targets = sorted({row["target"] for row in rows if row["esc10"]})
        return {target: label for label, target in enumerate(targets)}, [name_of_target[t] for t in targets]
    return {target: target for target in name_of_target}, [
        name_of_target.get(target, f"target_{target}") for target in range(ESC50_NUM_CLASSES)
    ]


def prepare_esc50(data_folder, save_folder, train_folds=(1, 2, 3), valid_folds=(4,), test_folds=(5,),
                  esc10=False, download=True, url=ESC50_URL, skip_if_prepared=True, expected_sha256=None,
                  download_attempts=3, min_seconds=DEFAULT_MIN_SECONDS):
    """Check ESC-50 (downloading it if absent) and write the train/valid/test manifests.

    See the module docstring for the files written in ``save_folder`` and the
    manifest keys (``wav``, ``class_name``, ``label``, ``esc50_target``,
    ``fold``, ``length``).

    Arguments
    ---------
    data_folder : str or pathlib.Path
        Folder with ``meta/esc50.csv`` and ``audio/``; the official archive is
        downloaded into it when ``meta/esc50.csv`` is missing.
    save_folder : str or pathlib.Path
        Where the manifests go (created if needed).
    train_folds, valid_folds, test_folds : int or sequence of int
        ESC-50 folds (1..5) of each split; they must not overlap. A split whose
        folds hold no clip gets an empty manifest ``{}`` (and a warning).
    esc10 : bool
        Keep only the ESC-10 clips and encode their 10 classes as 0..9 (in the
        order of their ESC-50 targets); otherwise labels are the ESC-50 targets.
    download : bool
        Download the dataset when it is missing; with False a missing dataset
        raises :class:`ESC50NotFoundError` at once.
    url : str
        Address of the archive.
    skip_if_prepared : bool
        Do nothing when the manifests were written with the same options from
        the same data (same metadata, same audio file sizes and times).
    expected_sha256 : str or None
        SHA-256 digest the downloaded archive must have.
    download_attempts : int
        Transfers tried (each from the start) before a download cut short fails.
    min_seconds : float
        Shortest usable clip in seconds (>= 0; the recipes' YAML key
        ``min_clip_seconds``). Shorter files, and WAV files cut short of the
        data their header declares, are listed in ``skipped_files.txt`` and the
        log, and left out.

    Returns
    -------
    dict
        Paths of the files written: ``"train"``, ``"valid"``, ``"test"``,
        ``"classes"``, ``"skipped"``.

    Raises
    ------
    ValueError
        Overlapping or invalid folds, bad metadata.
    ESC50NotFoundError
        The data is missing and could not be downloaded (the message names the
        URL, the reason and the manual steps).

    Example
    -------
    >>> import tempfile, numpy, soundfile
    >>> data, out = Path(tempfile.mkdtemp()), Path(tempfile.mkdtemp())
    >>> (data / "audio").mkdir(); (data / "meta").mkdir()
    >>> lines = ["filename,fold,target,category,esc10,src_file,take"]
    >>> for fold, target, name in [(1, 0, "dog"), (1, 41, "chainsaw"), (2, 0, "dog")]:
    ...     filename = f"{fold}-1{fold}{target}-A-{target}.wav"
    ...     soundfile.write(data / "audio" / filename, numpy.zeros(8000), 16000)
    ...     lines.append(f"{filename},{fold},{target},{name},True,1{fold}{target},A")
    >>> _ = (data / "meta" / "esc50.csv").write_text("\\n".join(lines) + "\\n")
    >>> paths = prepare_esc50(data, out, train_folds=[1], valid_folds=[2], test_folds=[],
    ...                       esc10=True, download=False, min_seconds=0.25)
    >>> train = json.loads(paths["train"].read_text())
    >>> sorted(train), train["1-1141-A-41"]["label"], train["1-1141-A-41"]["length"]
    (['1-110-A-0', '1-1141-A-41'], 1, 0.5)
    >>> json.loads(paths["classes"].read_text())
    ['dog', 'chainsaw']
    """
    if isinstance(min_seconds, bool) or not isinstance(min_seconds, (int, float)) or not min_seconds >= 0:
        raise ValueError(f"min_seconds must be a number of seconds >= 0, got {min_seconds!r}")
    data_folder = Path(os.path.abspath(data_folder))
    save_folder = Path(os.path.abspath(save_folder))
    folds = disjoint_folds(dict(zip(SPLITS, (train_folds, valid_folds, test_folds))), ESC50_FOLDS)
    install_esc50(data_folder, download, url, expected_sha256, download_attempts)
    csv_path = data_folder / "meta" / "esc50.csv"
    rows = read_esc50_metadata(csv_path)
    label_of_target, class_names = class_encoding(rows, esc10=esc10)
    audio_folder = data_folder / "audio"
    selected = {
        split: [row for row in rows if row["fold"] in folds[split] and (row["esc10"] or not esc10)]
        for split in SPLITS
    }
    options = {
        "version": PREPARE_VERSION,
        "data_folder": str(data_folder),
        **{f"{split}_folds": list(folds[split]) for split in SPLITS},
        "esc10": bool(esc10),
        "min_seconds": float(min_seconds),
    }
    filenames = [row["filename"] for split in SPLITS for row in selected[split]]
    record = PreparationRecord(
        save_folder / OPTIONS_FILE, options, files_fingerprint(csv_path, audio_folder, filenames)
    )
    outputs = {split: save_folder / f"{split}.json" for split in SPLITS}
    outputs.update(classes=save_folder / CLASSES_FILE, skipped=save_folder / SKIPPED_FILE)
    if skip_if_prepared and record.up_to_date(outputs.values()):
        logger.info("ESC-50 manifests in %s are up to date; nothing to do", save_folder)
        return outputs

    entries, skipped, seen = {}, [], set()
    for split in SPLITS:
        durations, skipped_here = check_listed_files(
            [row["filename"] for row in selected[split]], audio_folder, min_seconds, seen,
            inspect=inspect_audio_file,
        )
        skipped += skipped_here
        entries[split] = {}
        for row in selected[split]:
            if row["filename"] in durations:  # the first listing of a usable file
                entries[split][Path(row["filename"]).stem] = {
                    "wav": str(audio_folder / row["filename"]),
                    "class_name": row["category"],
                    "label": label_of_target[row["target"]],
                    "esc50_target": row["target"],
                    "fold": row["fold"],
                    "length": durations.pop(row["filename"]),
                }
    sources = {split: f"folds {list(folds[split])} of {csv_path}" for split in SPLITS}
    return write_split_manifests(
        save_folder, entries, class_names, skipped, record, sources, CLASSES_FILE, SKIPPED_FILE
    )


def main(argv=None):
    """Command line (``argv``: ``sys.argv[1:]`` when None); returns the exit status, 1 on bad data.

    Example
    -------
    >>> import tempfile
    >>> main(["--data_folder", tempfile.mkdtemp(), "--save_folder", tempfile.mkdtemp(), "--no-download"])
    1
    """
    parser = argparse.ArgumentParser(description="Prepare ESC-50 (or ESC-10) manifests for the recipes.")
    parser.add_argument("--data_folder", required=True, help="folder with meta/esc50.csv and audio/")
    parser.add_argument("--save_folder", required=True, help="where the JSON manifests go")
    parser.add_argument("--train_folds", type=int, nargs="*", default=[1, 2, 3])
    parser.add_argument("--valid_folds", type=int, nargs="*", default=[4])
    parser.add_argument("--test_folds", type=int, nargs="*", default=[5])
    parser.add_argument("--esc10", action="store_true", help="keep the 10 ESC-10 classes only")
    parser.add_argument("--no-download", dest="download", action="store_false", help="never download")
    parser.add_argument("--url", default=ESC50_URL, help="address of the ESC-50 archive")
    parser.add_argument("--expected_sha256", default=None, help="SHA-256 the archive must have")
    parser.add_argument("--force", action="store_true", help="rewrite the manifests even if up to date")
    parser.add_argument("--min_seconds", type=float, default=DEFAULT_MIN_SECONDS,
                        help="skip clips shorter than this (seconds; default %(default)s)")
    args = parser.parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        paths = prepare_esc50(
            args.data_folder,
            args.save_folder,
            train_folds=args.train_folds,
            valid_folds=args.valid_folds,
            test_folds=args.test_folds,
            esc10=args.esc10,
            download=args.download,
            url=args.url,
            skip_if_prepared=not args.force,
            expected_sha256=args.expected_sha256,
            min_seconds=args.min_seconds,
        )
    except (ESC50NotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for split in SPLITS:
        count = len(json.loads(paths[split].read_text(encoding="utf-8")))
        print(f"{split}: {count} clips -> {paths[split]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

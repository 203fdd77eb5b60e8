"""What preparing any dataset's JSON manifests needs, whatever the dataset.

Dataset preparation scripts (``recipes/esc50_prepare.py``) keep what is the
dataset's own (layout, metadata, folds, labels) and use these for the rest:

- :func:`read_csv_table`: a metadata table with required columns and typed
  values, every problem reported with the file and line;
- :func:`write_split_manifests`: ``train/valid/test.json``, the class names and
  the list of skipped files, written whole (:func:`write_json_atomic`);
- :func:`disjoint_folds`: fold numbers per split, checked and disjoint;
- :func:`files_fingerprint` and :class:`PreparationRecord`: the options and a
  fingerprint of the metadata and audio files are recorded last, so that a
  second preparation with the same options on unchanged data does nothing, and
  an interrupted one is redone;
- :func:`check_listed_files`: every file a metadata table lists is checked
  (listed twice, a path instead of a file name, and what
  :func:`focalnet_lobes.data.audio.inspect_audio_file` finds); unusable ones are
  skipped with a reason, logged and written to a ``path<TAB>reason`` list.

Authors
 * focalnet-audio contributors
"""

import csv
import hashlib
import json
import logging
import operator
import os
from pathlib import Path

from focalnet_lobes.data.audio import DEFAULT_MIN_SECONDS, inspect_audio_file

logger = logging.getLogger(__name__)


def write_json_atomic(path, content):
    """Write ``content`` as indented JSON to ``path`` atomically (temporary file + rename).

    Arguments
    ---------
    path : pathlib.Path
        The file (its folder exists).
    content : object
        JSON-serialisable.

    Example
    -------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "a.json"
    >>> write_json_atomic(path, {"a": 1})
    >>> json.loads(path.read_text()), [p.name for p in path.parent.iterdir()]
    ({'a': 1}, ['a.json'])
    """
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", encoding="utf-8") as file:
        json.dump(content, file, indent=2)
        file.write("\n")
    os.replace(temporary, path)


def files_fingerprint(metadata_file, folder, filenames):
    """SHA-256 of a metadata file and of the name, size and mtime of every listed file.

    Arguments
    ---------
    metadata_file : str or pathlib.Path
        Read whole.
    folder : pathlib.Path
        Where the listed files are.
    filenames : iterable of str
        Names relative to ``folder`` (a missing one counts as ``missing``).

    Returns
    -------
    str
        64 hex digits; changes when the metadata or any listed file changes.

    Example
    -------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> _ = (root / "meta.csv").write_text("a.wav\\n")
    >>> before = files_fingerprint(root / "meta.csv", root, ["a.wav"])
    >>> _ = (root / "a.wav").write_bytes(b"x")
    >>> before == files_fingerprint(root / "meta.csv", root, ["a.wav"])
    False
    """
    digest = hashlib.sha256()
    digest.update(Path(metadata_file).read_bytes())
    for filename in filenames:
        try:
            status = (folder / filename).stat()
            signature = f"{filename}|{status.st_size}|{status.st_mtime_ns}"
        except OSError:
            signature = f"{filename}|missing"
        digest.update(signature.encode("utf-8") + b"\n")
    return digest.hexdigest()


class PreparationRecord:
    """The record of a finished preparation: options, data fingerprint, counts.

    Written last (:meth:`write`) and removed first (:meth:`start`), so that its
    presence with the same options and fingerprint (:meth:`up_to_date`) means the
    outputs are complete and current.

    Arguments
    ---------
    path : pathlib.Path
        The record (e.g. ``prepare_options.json``).
    options : dict
        JSON-serialisable options of the preparation.
    fingerprint : str
        Of the data (:func:`files_fingerprint`).

    Example
    -------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> record = PreparationRecord(folder / "options.json", {"esc10": True}, "abc")
    >>> record.up_to_date([folder / "options.json"])
    False
    >>> record.write({"train": 3})
    >>> record.up_to_date([folder / "options.json"])
    True
    >>> PreparationRecord(folder / "options.json", {"esc10": False}, "abc").up_to_date([])
    False
    """

    def __init__(self, path, options, fingerprint):
        self.path, self.options, self.fingerprint = Path(path), options, fingerprint

    def up_to_date(self, outputs):
        """True when the record matches and every path of ``outputs`` exists."""
        if not self.path.is_file() or not all(Path(path).is_file() for path in outputs):
            return False
        try:
            previous = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return previous.get("options") == self.options and previous.get("fingerprint") == self.fingerprint

    def start(self):
        """Remove the record: the outputs about to be written are not complete yet."""
        self.path.unlink(missing_ok=True)

    def write(self, counts):
        """Write the record (atomically), with ``counts`` (e.g. clips per split)."""
        write_json_atomic(
            self.path, {"options": self.options, "fingerprint": self.fingerprint, "counts": counts}
        )


def check_listed_files(filenames, folder, min_seconds=DEFAULT_MIN_SECONDS, seen=None, inspect=None):
    """Durations of the usable listed files, and why each other one is skipped.

    A file name listed twice (also across calls sharing ``seen``), a name that
    is a path (``a/b.wav``, ``..``), or a file :func:`inspect_audio_file` finds
    unusable (missing, unreadable, empty, truncated, shorter than
    ``min_seconds``) is skipped and logged as a warning naming the path.

    Arguments
    ---------
    filenames : iterable of str
        File names from a metadata table.
    folder : pathlib.Path
        Where they are.
    min_seconds : float
        Shortest usable file (seconds, >= 0).
    seen : set or None
        Names already listed (updated here).
    inspect : callable or None
        ``inspect(path, min_seconds) -> (duration, reason)``; default
        :func:`focalnet_lobes.data.audio.inspect_audio_file`.

    Returns
    -------
    durations : dict
        File name -> seconds, for the usable files, in the order listed.
    skipped : list of str
        ``"path<TAB>reason"`` per skipped file.

    Example
    -------
    >>> import tempfile, numpy, soundfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> soundfile.write(folder / "a.wav", numpy.zeros(8000), 16000)
    >>> durations, skipped = check_listed_files(["a.wav", "a.wav", "b.wav"], folder)
    >>> durations, [line.split("\\t")[1] for line in skipped]
    ({'a.wav': 0.5}, ['listed twice in the metadata', 'file not found'])
    """
    inspect = inspect or inspect_audio_file
    seen = set() if seen is None else seen
    durations, skipped = {}, []
    for filename in filenames:
        path = folder / filename
        if filename in seen:
            reason = "listed twice in the metadata"
        elif Path(filename).name != filename or filename in (".", ".."):
            reason = "the metadata names a path, not a file name"
        else:
            duration, reason = inspect(path, min_seconds)
        seen.add(filename)
        if reason is not None:
            logger.warning("Skipping %s: %s", path, reason)
            skipped.append(f"{path}\t{reason}")
        else:
            durations[filename] = duration
    return durations, skipped


def parse_bool(value):
    """``"True"``/``"False"`` (any case, yes/no, 1/0) -> bool.

    Raises
    ------
    ValueError
        Anything else.

    Example
    -------
    >>> parse_bool("True"), parse_bool(" false "), parse_bool("1")
    (True, False, True)
    """
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ValueError(f"expected True or False, got {value!r}")


def read_csv_table(csv_path, converters, non_empty=()):
    """Read a CSV metadata table: the columns of ``converters``, converted, one dict per row.

    Header names are stripped, a UTF-8 byte-order mark is ignored, other
    columns are dropped.

    Arguments
    ---------
    csv_path : str or pathlib.Path
        The table.
    converters : dict
        Required column -> function of its stripped text (``str``, ``int``,
        :func:`parse_bool`, ...), in output order.
    non_empty : sequence of str
        Columns that must not be empty.

    Returns
    -------
    list of (int, dict)
        ``(line number, row)`` per row.

    Raises
    ------
    ValueError
        A required column is missing (the message lists what was found), or a
        value is empty or fails its converter (the message names the file and
        the line).

    Example
    -------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "meta.csv"
    >>> _ = path.write_text("name,fold,extra\\na.wav,1,x\\nb.wav,one,y\\n")
    >>> read_csv_table(path, {"name": str, "fold": int})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: .../meta.csv, line 3: bad row {...}: invalid literal for int() with base 10: 'one'
    >>> _ = path.write_text("name,fold\\na.wav,1\\n")
    >>> read_csv_table(path, {"name": str, "fold": int})
    [(2, {'name': 'a.wav', 'fold': 1})]
    """
    csv_path = Path(csv_path)
    with open(csv_path, newline="", encoding="utf-8-sig") as csv_file:
        reader = csv.DictReader(csv_file)
        header = [name.strip() for name in (reader.fieldnames or [])]
        reader.fieldnames = header
        missing = [column for column in converters if column not in header]
        if missing:
            raise ValueError(
                f"{csv_path}: missing required column(s) {', '.join(missing)} "
                f"(found: {', '.join(header) or 'none'}; expected {', '.join(converters)})"
            )
        rows = []
        for row in reader:
            try:
                values = {column: (row[column] or "").strip() for column in converters}
                for column in non_empty:
                    if not values[column]:
                        raise ValueError(f"empty {column}")
                parsed = {column: convert(values[column]) for column, convert in converters.items()}
            except (ValueError, TypeError, AttributeError) as error:
                raise ValueError(f"{csv_path}, line {reader.line_num}: bad row {row}: {error}") from None
            rows.append((reader.line_num, parsed))
    return rows


def write_split_manifests(save_folder, entries, class_names, skipped, record, sources=None,
                          classes_file="classes.json", skipped_file="skipped_files.txt"):
    """Write ``<split>.json`` per split, the class names and the skipped files, then the record.

    Arguments
    ---------
    save_folder : pathlib.Path
        Created if needed.
    entries : dict
        Split -> ``{clip_id: entry}`` (an empty split gets ``{}`` and a warning).
    class_names : list of str
        In label order.
    skipped : list of str
        ``"path<TAB>reason"`` lines (:func:`check_listed_files`).
    record : PreparationRecord
        Removed first, written last with the clip counts.
    sources : dict or None
        Split -> where its clips come from (e.g. ``"folds [5] of meta.csv"``),
        for the warning about an empty split.
    classes_file, skipped_file : str
        File names in ``save_folder``.

    Returns
    -------
    dict
        Split, ``"classes"`` and ``"skipped"`` -> path written.

    Example
    -------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> record = PreparationRecord(folder / "options.json", {}, "abc")
    >>> paths = write_split_manifests(folder, {"train": {"a": {"label": 0}}, "test": {}},
    ...                               ["dog"], [], record)
    >>> sorted(path.name for path in folder.iterdir())
    ['classes.json', 'options.json', 'skipped_files.txt', 'test.json', 'train.json']
    """
    save_folder = Path(save_folder)
    save_folder.mkdir(parents=True, exist_ok=True)
    record.start()
    outputs = {split: save_folder / f"{split}.json" for split in entries}
    outputs["classes"] = save_folder / classes_file
    outputs["skipped"] = save_folder / skipped_file
    for split, manifest in entries.items():
        if not manifest:
            source = f" ({(sources or {}).get(split)})" if (sources or {}).get(split) else ""
            logger.warning("No usable clips in %s%s; writing an empty %s", split, source, outputs[split])
        write_json_atomic(outputs[split], manifest)
    write_json_atomic(outputs["classes"], list(class_names))
    outputs["skipped"].write_text("".join(line + "\n" for line in skipped), encoding="utf-8")
    if skipped:
        logger.warning("Skipped %d unusable audio file(s); see %s", len(skipped), outputs["skipped"])
    record.write({split: len(manifest) for split, manifest in entries.items()})
    logger.info(
        "Manifests written to %s: %s clips, %d classes", save_folder,
        ", ".join(f"{len(manifest)} {split}" for split, manifest in entries.items()), len(class_names),
    )
    return outputs


def disjoint_folds(folds_by_split, allowed):
    """Fold numbers of every split, checked: known folds, no fold in two splits.

    Arguments
    ---------
    folds_by_split : dict
        Split name -> an int or a sequence of ints (may be empty).
    allowed : tuple of int
        The dataset's folds.

    Returns
    -------
    dict
        Split name -> sorted tuple of distinct folds.

    Raises
    ------
    ValueError
        A value that is not a fold number of ``allowed`` (named ``<split>_folds``),
        or two splits that share a fold.

    Example
    -------
    >>> disjoint_folds({"train": [3, 1, 2], "valid": 4, "test": []}, (1, 2, 3, 4, 5))
    {'train': (1, 2, 3), 'valid': (4,), 'test': ()}
    >>> disjoint_folds({"train": [1, 2], "valid": [2]}, (1, 2, 3))
    Traceback (most recent call last):
    ...
    ValueError: train_folds [1, 2] and valid_folds [2] overlap (fold 2); the splits must be disjoint
    """
    folds = {}
    for split, value in folds_by_split.items():
        value = [value] if isinstance(value, (int, str)) else value
        try:
            value = [operator.index(fold) for fold in value]
        except TypeError:
            raise ValueError(f"{split}_folds must be fold numbers in {allowed}, got {value!r}") from None
        bad = [fold for fold in value if fold not in allowed]
        if bad:
            raise ValueError(f"{split}_folds must be fold numbers in {allowed}, got {bad}")
        folds[split] = tuple(sorted(set(value)))
    from focalnet_lobes.training.plan import shared_folds

    shared = shared_folds(folds)
    if shared:
        first, second, common = shared
        raise ValueError(
            f"{first}_folds {list(folds[first])} and {second}_folds {list(folds[second])} "
            f"overlap (fold {', '.join(map(str, common))}); the splits must be disjoint"
        )
    return folds

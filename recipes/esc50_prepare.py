#!/usr/bin/env python3
"""Download, verify and describe ESC-50 as SpeechBrain JSON manifests.

ESC-50 (K. J. Piczak, ACM MM 2015) is 2000 five-second clips in 50 classes, split
into 5 folds; ESC-10 is its 10-class subset (the ``esc10`` column). The official
release is laid out as::

    DATA/audio/<fold>-<src>-<take>-<target>.wav
    DATA/meta/esc50.csv      filename,fold,target,category,esc10,src_file,take

:func:`prepare_esc50` downloads and extracts the official archive when
``DATA/meta/esc50.csv`` is missing (resumable, size- and optionally
checksum-verified, path-traversal-safe), checks the metadata and every audio file
it lists, and writes in ``save_folder``:

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
import csv
import hashlib
import http.client
import json
import logging
import operator
import os
import re
import shutil
import stat
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

import soundfile

from focalnet_lobes.audio import audio_format_problem

logger = logging.getLogger(__name__)

ESC50_URL = "https://github.com/karolpiczak/ESC-50/archive/master.zip"
ARCHIVE_NAME = "ESC-50-master.zip"
ESC50_FOLDS = (1, 2, 3, 4, 5)
ESC50_NUM_CLASSES = 50
REQUIRED_COLUMNS = ("filename", "fold", "target", "category", "esc10")
SPLITS = ("train", "valid", "test")
OPTIONS_FILE = "prepare_options.json"
SKIPPED_FILE = "skipped_files.txt"
CLASSES_FILE = "classes.json"
PREPARE_VERSION = 2
#: Length of every ESC-50 clip, seconds.
ESC50_CLIP_SECONDS = 5.0
#: Default shortest usable clip: a fiftieth of an ESC-50 clip (0.1 s, 8 frames
#: of the 11.6 ms hop). A shorter file is a truncated copy (a valid header and
#: a few samples), not a recording; the recipes set it from their clip length
#: (YAML ``min_clip_seconds: !ref <clip_seconds> / 10``).
DEFAULT_MIN_SECONDS = ESC50_CLIP_SECONDS / 50

CONNECT_TIMEOUT_S = 5.0  # fail fast when offline
READ_TIMEOUT_S = 60.0  # a stalled transfer is retried (resumed) after this
RETRY_WAIT_S = 1.0  # wait before retry n: n * RETRY_WAIT_S
CHUNK_SIZE = 1 << 20


class DownloadError(OSError):
    """A download that failed: unreachable server, HTTP error, size or checksum mismatch."""


class UnsafeArchiveError(ValueError):
    """An archive with a member that would be written outside the extraction folder."""


class ESC50NotFoundError(FileNotFoundError):
    """ESC-50 is not in the data folder and could not be downloaded."""


# ---------------------------------------------------------------------------- download


def _with_read_timeout(connection_class, read_timeout):
    """Subclass of an ``http.client`` connection whose socket gets ``read_timeout`` once connected.

    urllib uses one timeout for connecting and reading; this keeps the connect
    timeout short (fail fast offline) and the read timeout long.
    """

    class Connection(connection_class):
        def connect(self):
            super().connect()
            self.sock.settimeout(read_timeout)

    return Connection


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, read_timeout):
        super().__init__()
        self.read_timeout = read_timeout

    def http_open(self, req):
        return self.do_open(_with_read_timeout(http.client.HTTPConnection, self.read_timeout), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, read_timeout):
        super().__init__()
        self.read_timeout = read_timeout

    def https_open(self, req):
        connection_class = _with_read_timeout(http.client.HTTPSConnection, self.read_timeout)
        return self.do_open(connection_class, req, context=self._context)


def _open_url(url, headers, connect_timeout, read_timeout):
    """Open ``url`` (following redirects) with separate connect and read timeouts."""
    request = urllib.request.Request(url, headers={"User-Agent": "focalnet-audio", **headers})
    opener = urllib.request.build_opener(_HTTPHandler(read_timeout), _HTTPSHandler(read_timeout))
    return opener.open(request, timeout=connect_timeout)


class _TransferInterrupted(Exception):
    """A transfer that stopped early; the ``.part`` file holds what arrived."""


def _parse_content_range(value):
    """``"bytes 10-99/100"`` -> ``(10, 100)``; total is None for ``*``; None if unparsable."""
    match = re.fullmatch(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)\s*", value or "")
    if not match:
        return None
    return int(match.group(1)), None if match.group(2) == "*" else int(match.group(2))


def _transfer(url, part, connect_timeout, read_timeout, chunk_size):
    """One HTTP transfer into ``part``, resuming from its size when it exists.

    Returns the total size the server announced (None when unknown). Raises
    :class:`_TransferInterrupted` when the body stops early (worth retrying) and
    :class:`DownloadError` for what a retry does not fix.
    """
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        response = _open_url(url, headers, connect_timeout, read_timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:
            content_range = error.headers.get("Content-Range", "")
            match = re.fullmatch(r"\s*bytes\s+\*/(\d+)\s*", content_range)
            if match and int(match.group(1)) == offset:
                return offset  # the .part file is already complete
            part.unlink()
            raise _TransferInterrupted(f"server refused to resume at byte {offset}; restarting") from error
        raise DownloadError(f"HTTP error {error.code} ({error.reason}) for {url}") from error
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        reason = getattr(error, "reason", error)
        raise DownloadError(f"cannot connect to {url}: {reason}") from error

    with response:
        status = getattr(response, "status", None)
        total = None
        mode = "wb"
        if status == 206:
            parsed = _parse_content_range(response.headers.get("Content-Range"))
            if parsed is None or parsed[0] != offset:
                part.unlink()
                raise _TransferInterrupted(
                    f"server answered the resume request with an unexpected range "
                    f"({response.headers.get('Content-Range')}); restarting"
                )
            total = parsed[1]
            mode = "ab"
            logger.info("Resuming the download of %s at byte %d", url, offset)
        else:
            if offset:
                logger.info("%s does not support resuming; downloading from the start", url)
            offset = 0
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.strip().isdigit() else None
        received = offset
        with open(part, mode) as part_file:
            try:
                while True:
                    chunk = response.read(chunk_size)
                    if not chunk:
                        break
                    part_file.write(chunk)
                    received += len(chunk)
            except (OSError, http.client.HTTPException) as error:
                raise _TransferInterrupted(f"transfer interrupted after {received} bytes ({error!r})") from error
    if total is not None and received < total:
        raise _TransferInterrupted(f"transfer stopped after {received} of {total} bytes")
    if total is not None and received > total:
        part.unlink()
        raise DownloadError(f"size mismatch for {url}: received {received} bytes, the server announced {total}")
    if total is None:
        logger.warning("%s sent no size; the download (%d bytes) is checked only on extraction", url, received)
    return total


def sha256_of_file(path, chunk_size=CHUNK_SIZE):
    """Hex SHA-256 digest of a file.

    Arguments
    ---------
    path : str or pathlib.Path
        The file.
    chunk_size : int
        Bytes read at a time.

    Returns
    -------
    str

    Example
    -------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "a.txt"
    >>> _ = path.write_bytes(b"abc")
    >>> sha256_of_file(path)[:16]
    'ba7816bf8f01cfea'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


def download_file(
    url,
    destination,
    expected_sha256=None,
    max_attempts=3,
    connect_timeout=CONNECT_TIMEOUT_S,
    read_timeout=READ_TIMEOUT_S,
    chunk_size=CHUNK_SIZE,
):
    """Download ``url`` to ``destination``, resumably and verified.

    Bytes go to ``destination + ".part"``; an interrupted transfer is resumed
    with an HTTP ``Range`` request (from the start when the server ignores it),
    up to ``max_attempts`` transfers per call, and a later call resumes from the
    ``.part`` file left behind. The size is checked against the server's
    ``Content-Length`` / ``Content-Range`` and, when ``expected_sha256`` is given,
    the SHA-256 digest; only a verified file is renamed to ``destination``.

    Arguments
    ---------
    url : str
        ``http(s)://`` (or ``file://``) address.
    destination : str or pathlib.Path
        The file to write.
    expected_sha256 : str or None
        Hex SHA-256 digest the file must have; None skips the check.
    max_attempts : int
        Transfers tried before giving up on an interrupted download.
    connect_timeout : float
        Seconds to wait for the connection (kept short: an offline machine fails fast).
    read_timeout : float
        Seconds a transfer may stall before it counts as interrupted.
    chunk_size : int
        Bytes read at a time.

    Returns
    -------
    pathlib.Path
        ``destination``.

    Raises
    ------
    DownloadError
        Unreachable server, HTTP error, transfer still incomplete after
        ``max_attempts`` (the ``.part`` file is kept for the next call), size or
        checksum mismatch (the bad file is deleted).

    Example
    -------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "source.bin").write_bytes(b"0123456789")
    >>> path = download_file((folder / "source.bin").as_uri(), folder / "copy.bin")
    >>> path.read_bytes()
    b'0123456789'
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    part = destination.with_name(destination.name + ".part")
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
    for attempt in range(1, max_attempts + 1):
        try:
            _transfer(url, part, connect_timeout, read_timeout, chunk_size)
            break
        except _TransferInterrupted as interruption:
            if attempt == max_attempts:
                size = part.stat().st_size if part.exists() else 0
                raise DownloadError(
                    f"download of {url} incomplete after {max_attempts} attempt(s): {interruption}. "
                    f"{size} bytes are kept in {part}; run again to resume"
                ) from interruption
            logger.warning("Download of %s: %s; retrying (%d/%d)", url, interruption, attempt + 1, max_attempts)
            time.sleep(RETRY_WAIT_S * attempt)
    if expected_sha256 is not None:
        actual = sha256_of_file(part)
        if actual.lower() != expected_sha256.strip().lower():
            part.unlink()
            raise DownloadError(
                f"checksum mismatch for {url}: SHA-256 {actual}, expected {expected_sha256}; "
                "the file was deleted"
            )
    os.replace(part, destination)
    return destination


def _check_member_name(name, destination):
    """Raise :class:`UnsafeArchiveError` if member ``name`` would land outside ``destination``."""
    normalized = name.replace("\\", "/")
    if normalized.startswith("/") or re.match(r"^[A-Za-z]:", normalized):
        raise UnsafeArchiveError(f"absolute path {name!r}")
    if ".." in PurePosixPath(normalized).parts:
        raise UnsafeArchiveError(f"parent-directory path {name!r}")
    target = (destination / normalized).resolve()
    if target != destination and destination not in target.parents:
        raise UnsafeArchiveError(f"path {name!r} resolves outside the extraction folder")


def safe_extract_zip(archive_path, destination):
    """Extract a zip archive, refusing members that would land outside ``destination``.

    Every member name is checked before anything is written: absolute paths,
    drive letters, ``..`` components and symbolic links are rejected. CRCs are
    verified while extracting.

    Arguments
    ---------
    archive_path : str or pathlib.Path
        The zip file.
    destination : str or pathlib.Path
        Folder to extract into (created if needed).

    Raises
    ------
    UnsafeArchiveError
        A member name escapes ``destination`` (nothing was extracted).
    zipfile.BadZipFile
        The archive is corrupt.

    Example
    -------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> with zipfile.ZipFile(folder / "good.zip", "w") as archive:
    ...     archive.writestr("top/meta/a.txt", "hello")
    >>> safe_extract_zip(folder / "good.zip", folder / "out")
    >>> (folder / "out" / "top" / "meta" / "a.txt").read_text()
    'hello'
    >>> with zipfile.ZipFile(folder / "evil.zip", "w") as archive:
    ...     archive.writestr("../evil.txt", "gotcha")
    >>> try:
    ...     safe_extract_zip(folder / "evil.zip", folder / "out")
    ... except UnsafeArchiveError as error:
    ...     print(str(error).split(": ", 1)[1])
    unsafe member, parent-directory path '../evil.txt'
    >>> (folder / "evil.txt").exists()
    False
    """
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    destination = destination.resolve()
    with zipfile.ZipFile(archive_path) as archive:
        members = archive.infolist()
        for member in members:
            try:
                _check_member_name(member.filename, destination)
                if stat.S_ISLNK(member.external_attr >> 16):
                    raise UnsafeArchiveError(f"symbolic link {member.filename!r}")
            except UnsafeArchiveError as error:
                raise UnsafeArchiveError(f"{archive_path}: unsafe member, {error}") from None
        archive.extractall(destination, members)


def _find_dataset_root(folder):
    """The folder holding ``meta/esc50.csv``: ``folder`` itself or one of its subfolders."""
    if (folder / "meta" / "esc50.csv").is_file():
        return folder
    for child in sorted(folder.iterdir()):
        if child.is_dir() and (child / "meta" / "esc50.csv").is_file():
            return child
    return None


def _move_merge(source, target):
    """Move folder ``source`` to ``target``, merging into what ``target`` already holds."""
    if not target.exists():
        shutil.move(str(source), str(target))
        return
    for child in source.iterdir():
        if child.is_dir() and (target / child.name).is_dir():
            _move_merge(child, target / child.name)
        else:
            os.replace(child, target / child.name)


def manual_download_steps(data_folder, url=ESC50_URL):
    """Instructions to put ESC-50 in ``data_folder`` by hand.

    Arguments
    ---------
    data_folder : str or pathlib.Path
        Where the dataset should be.
    url : str
        Address of the archive.

    Returns
    -------
    str

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


def download_esc50(data_folder, url=ESC50_URL, expected_sha256=None, max_attempts=3, keep_archive=False):
    """Download the official ESC-50 archive and install ``audio/`` and ``meta/`` in ``data_folder``.

    The archive goes to ``data_folder/ESC-50-master.zip`` (see
    :func:`download_file`: resumable, verified), is extracted safely into a
    temporary folder inside ``data_folder``, and its ``audio/`` then ``meta/``
    folders are moved into ``data_folder`` (``meta/esc50.csv`` appears last, so
    its presence means a complete install).

    Arguments
    ---------
    data_folder : str or pathlib.Path
        Where the dataset goes.
    url : str
        Address of the archive (GitHub's zip of karolpiczak/ESC-50 by default).
    expected_sha256 : str or None
        SHA-256 digest the archive must have; None skips the check.
    max_attempts : int
        Transfers tried before giving up on an interrupted download.
    keep_archive : bool
        Keep the zip after extraction (deleted by default: it is 600 MB).

    Raises
    ------
    DownloadError, UnsafeArchiveError
        See :func:`download_file` and :func:`safe_extract_zip`; a corrupt archive
        is deleted and reported as :class:`DownloadError`.

    Example
    -------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> with zipfile.ZipFile(folder / "esc.zip", "w") as archive:
    ...     archive.writestr("ESC-50-master/meta/esc50.csv", "filename,fold,target,category,esc10\\n")
    ...     archive.writestr("ESC-50-master/audio/README", "no clips")
    >>> download_esc50(folder / "data", url=(folder / "esc.zip").as_uri())
    >>> sorted(path.name for path in (folder / "data").iterdir())
    ['audio', 'meta']
    """
    data_folder = Path(data_folder)
    data_folder.mkdir(parents=True, exist_ok=True)
    archive = data_folder / ARCHIVE_NAME
    if archive.is_file():
        logger.info("Using the archive already downloaded: %s", archive)
    else:
        logger.info("Downloading ESC-50 (about 600 MB) from %s to %s", url, archive)
        download_file(url, archive, expected_sha256=expected_sha256, max_attempts=max_attempts)
    extract_folder = Path(tempfile.mkdtemp(prefix=".esc50_extract_", dir=data_folder))
    try:
        try:
            safe_extract_zip(archive, extract_folder)
        except (zipfile.BadZipFile, EOFError) as error:
            archive.unlink()
            raise DownloadError(f"the downloaded archive from {url} is corrupt ({error}); it was deleted") from error
        root = _find_dataset_root(extract_folder)
        if root is None or not (root / "audio").is_dir():
            raise DownloadError(f"the archive from {url} holds no meta/esc50.csv and audio/ folder")
        _move_merge(root / "audio", data_folder / "audio")
        _move_merge(root / "meta", data_folder / "meta")
    finally:
        shutil.rmtree(extract_folder, ignore_errors=True)
    if not keep_archive:
        archive.unlink()
    logger.info("ESC-50 installed in %s", data_folder)


# ---------------------------------------------------------------------------- metadata


def _parse_bool(value):
    """``"True"``/``"False"`` (any case, or 1/0) -> bool; anything else -> ValueError."""
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ValueError(f"expected True or False, got {value!r}")


def read_esc50_metadata(csv_path):
    """Read and check ``meta/esc50.csv``.

    Arguments
    ---------
    csv_path : str or pathlib.Path
        The metadata file.

    Returns
    -------
    list of dict
        One dict per row: ``filename`` (str), ``fold`` (int), ``target`` (int),
        ``category`` (str), ``esc10`` (bool).

    Raises
    ------
    ValueError
        A required column (``filename, fold, target, category, esc10``) is
        missing, or a row holds a bad value (the line number is given).

    Example
    -------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "esc50.csv"
    >>> _ = path.write_text("filename,fold,target,category,esc10,src_file,take\\n"
    ...                     "1-100032-A-0.wav,1,0,dog,True,100032,A\\n")
    >>> read_esc50_metadata(path)
    [{'filename': '1-100032-A-0.wav', 'fold': 1, 'target': 0, 'category': 'dog', 'esc10': True}]
    """
    csv_path = Path(csv_path)
    with open(csv_path, newline="", encoding="utf-8-sig") as csv_file:
        reader = csv.DictReader(csv_file)
        header = [name.strip() for name in (reader.fieldnames or [])]
        reader.fieldnames = header
        missing = [column for column in REQUIRED_COLUMNS if column not in header]
        if missing:
            raise ValueError(
                f"{csv_path}: missing required column(s) {', '.join(missing)} "
                f"(found: {', '.join(header) or 'none'}; expected {', '.join(REQUIRED_COLUMNS)})"
            )
        rows = []
        for row in reader:
            line = reader.line_num
            try:
                values = {column: (row[column] or "").strip() for column in REQUIRED_COLUMNS}
                if not values["filename"]:
                    raise ValueError("empty filename")
                if not values["category"]:
                    raise ValueError("empty category")
                parsed = {
                    "filename": values["filename"],
                    "fold": int(values["fold"]),
                    "target": int(values["target"]),
                    "category": values["category"],
                    "esc10": _parse_bool(values["esc10"]),
                }
            except (ValueError, TypeError, AttributeError) as error:
                raise ValueError(f"{csv_path}, line {line}: bad row {row}: {error}") from None
            if not 0 <= parsed["target"] < ESC50_NUM_CLASSES:
                raise ValueError(
                    f"{csv_path}, line {line}: target {parsed['target']} is outside 0..{ESC50_NUM_CLASSES - 1}"
                )
            rows.append(parsed)
    return rows


def class_encoding(rows, esc10=False):
    """Label of every ESC-50 target, and the class names in label order.

    With ``esc10=False`` the label is the ESC-50 target (50 classes; a target
    absent from ``rows`` is named ``"target_<n>"``, so that every name is a
    string). With ``esc10=True`` the classes
    are the targets of the ``esc10`` rows, sorted, encoded 0..9.

    Arguments
    ---------
    rows : list of dict
        Rows of :func:`read_esc50_metadata` (all of them, so that the encoding does
        not depend on which files are usable).
    esc10 : bool
        Encode the ESC-10 subset only.

    Returns
    -------
    label_of_target : dict
        ESC-50 target -> label.
    class_names : list
        Class name of every label.

    Raises
    ------
    ValueError
        Two rows give the same target different names.

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


def wav_truncation(path):
    """Bytes a RIFF/WAVE file's ``data`` chunk declares beyond the end of the file.

    libsndfile reads a truncated WAV without complaint (it returns the samples
    present), so a copy cut short after its header looks like a valid, short
    clip. This walks the RIFF chunks (``fmt ``, ``LIST``, ... ``data``) and
    compares the ``data`` chunk's declared size with the bytes that follow it.

    Arguments
    ---------
    path : str or pathlib.Path
        Any file; only RIFF/WAVE files are examined.

    Returns
    -------
    tuple of int or None
        ``(declared, present)`` data bytes when the file is a WAV whose data
        chunk is cut short; ``None`` otherwise (complete, not a WAV, or a
        streamed WAV whose size field is 0 or 0xFFFFFFFF, which means "unknown").

    Example
    -------
    >>> import tempfile, numpy
    >>> path = Path(tempfile.mkdtemp()) / "a.wav"
    >>> soundfile.write(path, numpy.zeros(8000), 16000, subtype="PCM_16")
    >>> wav_truncation(path) is None
    True
    >>> _ = path.write_bytes(path.read_bytes()[:100])  # header + 28 samples
    >>> wav_truncation(path)
    (16000, 56)
    """
    with open(path, "rb") as file:
        header = file.read(12)
        if len(header) < 12 or header[:4] not in (b"RIFF", b"RIFX") or header[8:12] != b"WAVE":
            return None
        byteorder = "little" if header[:4] == b"RIFF" else "big"
        size = Path(path).stat().st_size
        position = 12
        while position + 8 <= size:
            file.seek(position)
            chunk = file.read(8)
            declared = int.from_bytes(chunk[4:8], byteorder)
            if chunk[:4] == b"data":
                present = size - position - 8
                if declared in (0, 0xFFFFFFFF) or declared <= present:
                    return None
                return declared, present
            position += 8 + declared + (declared & 1)
    return None


def inspect_audio_file(path, min_seconds=DEFAULT_MIN_SECONDS):
    """Duration of an audio file from its header, or why it cannot be used.

    Arguments
    ---------
    path : str or pathlib.Path
        The audio file.
    min_seconds : float
        Shortest usable duration (seconds, >= 0, default
        :data:`DEFAULT_MIN_SECONDS`); a shorter file is reported as
        implausibly short.

    Returns
    -------
    duration : float or None
        Seconds; None when the file cannot be used.
    reason : str or None
        What is wrong (file not found, unreadable or corrupt, empty, truncated,
        shorter than ``min_seconds``); None when usable.

    Example
    -------
    >>> import tempfile, numpy
    >>> path = Path(tempfile.mkdtemp()) / "a.wav"
    >>> soundfile.write(path, numpy.zeros(8000), 16000)
    >>> inspect_audio_file(path)
    (0.5, None)
    >>> inspect_audio_file(path, min_seconds=2.5)
    (None, 'implausibly short: 0.5 s, under min_seconds = 2.5 s')
    >>> inspect_audio_file(path.with_name("missing.wav"))
    (None, 'file not found')
    """
    path = Path(path)
    if not path.exists():
        return None, "file not found"
    if not path.is_file():
        return None, "not a regular file"
    try:
        info = soundfile.info(str(path))
    except Exception as error:  # noqa: BLE001  (libsndfile raises several types)
        # "unsupported format ..." (with the ffmpeg way out) or "unreadable or corrupt audio ..."
        return None, audio_format_problem(path, error)
    if info.frames <= 0:
        return None, "empty audio (0 frames)"
    if info.samplerate <= 0:
        return None, f"invalid sample rate {info.samplerate}"
    try:
        truncation = wav_truncation(path)
    except OSError as error:
        return None, f"unreadable ({error})"
    if truncation is not None:
        declared, present = truncation
        return None, (
            f"truncated: the header declares {declared} bytes of audio, the file holds "
            f"{present} ({info.frames} frames, {info.frames / info.samplerate:.3f} s)"
        )
    duration = info.frames / info.samplerate
    if duration < min_seconds:
        return None, f"implausibly short: {duration:.3g} s, under min_seconds = {min_seconds:g} s"
    return duration, None


# ---------------------------------------------------------------------------- manifests


def _as_folds(folds, name):
    """Sorted tuple of distinct ESC-50 fold numbers, or ValueError."""
    if isinstance(folds, (int, str)):
        folds = [folds]
    try:
        folds = [operator.index(fold) for fold in folds]
    except TypeError:
        raise ValueError(f"{name} must be fold numbers in {ESC50_FOLDS}, got {folds!r}") from None
    bad = [fold for fold in folds if fold not in ESC50_FOLDS]
    if bad:
        raise ValueError(f"{name} must be fold numbers in {ESC50_FOLDS}, got {bad}")
    return tuple(sorted(set(folds)))


def _write_json(path, content):
    """Write JSON atomically (temporary file + rename)."""
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", encoding="utf-8") as file:
        json.dump(content, file, indent=2)
        file.write("\n")
    os.replace(temporary, path)


def _fingerprint(csv_path, audio_folder, rows):
    """SHA-256 of the metadata file and of the name, size and mtime of every selected audio file."""
    digest = hashlib.sha256()
    digest.update(Path(csv_path).read_bytes())
    for row in rows:
        path = audio_folder / row["filename"]
        try:
            status = path.stat()
            signature = f"{row['filename']}|{status.st_size}|{status.st_mtime_ns}"
        except OSError:
            signature = f"{row['filename']}|missing"
        digest.update(signature.encode("utf-8") + b"\n")
    return digest.hexdigest()


def prepare_esc50(
    data_folder,
    save_folder,
    train_folds=(1, 2, 3),
    valid_folds=(4,),
    test_folds=(5,),
    esc10=False,
    download=True,
    url=ESC50_URL,
    skip_if_prepared=True,
    expected_sha256=None,
    download_attempts=3,
    min_seconds=DEFAULT_MIN_SECONDS,
):
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
        Transfers tried before an interrupted download fails.
    min_seconds : float
        Shortest usable clip in seconds (>= 0; default a fiftieth of an
        ESC-50 clip, 0.1 s; the recipes' YAML key ``min_clip_seconds``, a
        tenth of ``clip_seconds``). Shorter files, and WAV files cut short of the data their
        header declares, are listed in ``skipped_files.txt`` and the log, and
        left out.

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
    >>> import tempfile, numpy
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
    folds = {
        "train": _as_folds(train_folds, "train_folds"),
        "valid": _as_folds(valid_folds, "valid_folds"),
        "test": _as_folds(test_folds, "test_folds"),
    }
    for index, first in enumerate(SPLITS):
        for second in SPLITS[index + 1 :]:
            common = sorted(set(folds[first]) & set(folds[second]))
            if common:
                raise ValueError(
                    f"{first}_folds {list(folds[first])} and {second}_folds {list(folds[second])} "
                    f"overlap (fold {', '.join(map(str, common))}); the splits must be disjoint"
                )

    csv_path = data_folder / "meta" / "esc50.csv"
    if not csv_path.is_file():
        if not download:
            raise ESC50NotFoundError(
                f"ESC-50 not found: {csv_path} does not exist and download=False.\n"
                + manual_download_steps(data_folder, url)
            )
        try:
            download_esc50(data_folder, url, expected_sha256=expected_sha256, max_attempts=download_attempts)
        except (DownloadError, UnsafeArchiveError, OSError) as error:
            raise ESC50NotFoundError(
                f"ESC-50 not found in {data_folder} and the download from {url} failed: {error}\n"
                + manual_download_steps(data_folder, url)
            ) from error

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
        "train_folds": list(folds["train"]),
        "valid_folds": list(folds["valid"]),
        "test_folds": list(folds["test"]),
        "esc10": bool(esc10),
        "min_seconds": float(min_seconds),
    }
    fingerprint = _fingerprint(csv_path, audio_folder, [row for split in SPLITS for row in selected[split]])
    outputs = {split: save_folder / f"{split}.json" for split in SPLITS}
    outputs["classes"] = save_folder / CLASSES_FILE
    outputs["skipped"] = save_folder / SKIPPED_FILE
    options_path = save_folder / OPTIONS_FILE
    if skip_if_prepared and options_path.is_file() and all(path.is_file() for path in outputs.values()):
        try:
            previous = json.loads(options_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            previous = {}
        if previous.get("options") == options and previous.get("fingerprint") == fingerprint:
            logger.info("ESC-50 manifests in %s are up to date; nothing to do", save_folder)
            return outputs

    save_folder.mkdir(parents=True, exist_ok=True)
    options_path.unlink(missing_ok=True)  # written last: its presence means a complete preparation
    skipped = []
    seen = set()
    counts = {}
    for split in SPLITS:
        manifest = {}
        for row in selected[split]:
            filename = row["filename"]
            path = audio_folder / filename
            if filename in seen:
                reason = "listed twice in the metadata"
            elif Path(filename).name != filename or filename in (".", ".."):
                reason = "the metadata names a path, not a file name"
            else:
                duration, reason = inspect_audio_file(path, min_seconds)
            seen.add(filename)
            if reason is not None:
                logger.warning("Skipping %s: %s", path, reason)
                skipped.append(f"{path}\t{reason}")
                continue
            manifest[Path(filename).stem] = {
                "wav": str(path),
                "class_name": row["category"],
                "label": label_of_target[row["target"]],
                "esc50_target": row["target"],
                "fold": row["fold"],
                "length": duration,
            }
        if not manifest:
            logger.warning(
                "No usable clips in %s folds %s of %s; writing an empty %s",
                split,
                list(folds[split]),
                csv_path,
                outputs[split],
            )
        _write_json(outputs[split], manifest)
        counts[split] = len(manifest)
    _write_json(outputs["classes"], class_names)
    outputs["skipped"].write_text("".join(line + "\n" for line in skipped), encoding="utf-8")
    if skipped:
        logger.warning("Skipped %d unusable audio file(s); see %s", len(skipped), outputs["skipped"])
    _write_json(options_path, {"options": options, "fingerprint": fingerprint, "counts": counts})
    logger.info(
        "ESC-50 manifests written to %s: %s clips, %d classes",
        save_folder,
        ", ".join(f"{counts[split]} {split}" for split in SPLITS),
        len(class_names),
    )
    return outputs


def main(argv=None):
    """Command line: ``esc50_prepare.py --data_folder DIR --save_folder DIR [--esc10] [--no-download]``.

    Arguments
    ---------
    argv : list of str or None
        Arguments (``sys.argv[1:]`` when None).

    Returns
    -------
    int
        Exit status: 0 on success, 1 when the data is missing or invalid.

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

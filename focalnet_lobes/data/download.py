"""Downloading and extracting datasets: SpeechBrain's downloader, our checks.

The transfer itself is :func:`speechbrain.utils.data_utils.download_file`
(``urllib.request.urlretrieve`` with a progress bar; it follows redirects and
raises :class:`urllib.error.ContentTooShortError` when the body is shorter than
the announced ``Content-Length``). What it does not do is added here:

- the bytes go to ``<destination>.part`` and only a complete, checksum-verified
  file is renamed to ``<destination>`` (SpeechBrain skips an existing
  destination, so a file cut short must never get that name);
- a transfer cut short is retried from the start (SpeechBrain sends no HTTP
  ``Range`` request: there is no resuming), a stalled one times out;
- the SHA-256 check (:func:`sha256_of_file`);
- extraction that refuses, before writing anything, a member that would land
  outside the extraction folder (absolute paths, drive letters, ``..``,
  symbolic links): :func:`safe_extract_zip`. SpeechBrain's ``unpack=True``
  (``shutil.unpack_archive``) is not used: it would extract before the checksum
  is checked, and it silently drops unsafe members instead of refusing the
  archive.

Authors
 * focalnet-audio contributors
"""

import contextlib
import hashlib
import logging
import os
import re
import shutil
import socket
import stat
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

logger = logging.getLogger(__name__)

#: Seconds a connection or a transfer may stall before it counts as failed.
TIMEOUT_S = 60.0
#: Wait before retry n: n * RETRY_WAIT_S seconds.
RETRY_WAIT_S = 1.0
#: Bytes read at a time when hashing.
CHUNK_SIZE = 1 << 20


class DownloadError(OSError):
    """A download that failed: unreachable server, HTTP error, size or checksum mismatch."""


class UnsafeArchiveError(ValueError):
    """An archive with a member that would be written outside the extraction folder."""


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
        64 lowercase hex digits.

    Example
    -------
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


@contextlib.contextmanager
def _socket_timeout(seconds):
    """Set the default socket timeout (``urlretrieve`` takes none) for the block."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _source_for_speechbrain(url):
    """SpeechBrain copies sources without "http" in them as local paths: give it one for ``file:``."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file" and "http" not in url:
        return urllib.request.url2pathname(parsed.path)
    return url


def _transfer(url, part, timeout):
    """One SpeechBrain transfer into ``part`` (replacing it); returns a reason to retry, or None."""
    from speechbrain.utils.data_utils import download_file as speechbrain_download

    try:
        with _socket_timeout(timeout):
            speechbrain_download(_source_for_speechbrain(url), str(part), replace_existing=True)
    except urllib.error.ContentTooShortError as error:
        announced = error.content[1].get("Content-Length") if error.content else None
        received = part.stat().st_size if part.exists() else 0
        return f"transfer stopped after {received} of {announced or '?'} bytes"
    except urllib.error.HTTPError as error:
        raise DownloadError(f"HTTP error {error.code} ({error.reason}) for {url}") from error
    except urllib.error.URLError as error:
        raise DownloadError(f"cannot connect to {url}: {error.reason}") from error
    except (TimeoutError, socket.timeout) as error:
        return f"timed out ({error})"
    except OSError as error:
        if isinstance(error, FileNotFoundError) and not part.exists():
            raise DownloadError(f"cannot read {url}: {error}") from error
        return f"transfer failed ({error})"
    return None


def download_file(url, destination, expected_sha256=None, max_attempts=3, timeout=TIMEOUT_S):
    """Download ``url`` to ``destination`` with SpeechBrain's downloader, verified.

    Bytes go to ``destination + ".part"`` (a stale one from an earlier run is
    replaced, never taken as the download). A transfer cut short (fewer bytes
    than the server's ``Content-Length``) or stalled for ``timeout`` seconds is
    retried from the start, up to ``max_attempts`` transfers; an unreachable
    server or an HTTP error fails at once. With ``expected_sha256`` the digest
    is checked; only a complete, verified file is renamed to ``destination``.

    Arguments
    ---------
    url : str
        ``http(s)://`` or ``file://`` address (``file:`` is copied).
    destination : str or pathlib.Path
        The file to write.
    expected_sha256 : str or None
        Hex SHA-256 digest the file must have (any case); None skips the check.
    max_attempts : int
        Transfers tried, >= 1.
    timeout : float
        Seconds a connection or a transfer may stall (seconds > 0).

    Returns
    -------
    pathlib.Path
        ``destination``.

    Raises
    ------
    ValueError
        ``max_attempts`` < 1.
    DownloadError
        Unreachable server, HTTP error, transfer still incomplete after
        ``max_attempts``, or checksum mismatch; the ``.part`` file is deleted
        (nothing half-written is left to be mistaken for the archive).

    Example
    -------
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "source.bin").write_bytes(b"0123456789")
    >>> path = download_file((folder / "source.bin").as_uri(), folder / "copy.bin")
    >>> path.read_bytes()
    b'0123456789'
    """
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    part = destination.with_name(destination.name + ".part")
    try:
        for attempt in range(1, max_attempts + 1):
            problem = _transfer(url, part, timeout)
            if problem is None:
                break
            if attempt == max_attempts:
                raise DownloadError(
                    f"download of {url} incomplete after {max_attempts} attempt(s): {problem}; "
                    "run again to download it again"
                )
            logger.warning("Download of %s: %s; retrying (%d/%d)", url, problem, attempt + 1, max_attempts)
            time.sleep(RETRY_WAIT_S * attempt)
        if expected_sha256 is not None:
            actual = sha256_of_file(part)
            if actual.lower() != expected_sha256.strip().lower():
                raise DownloadError(
                    f"checksum mismatch for {url}: SHA-256 {actual}, expected {expected_sha256}; "
                    "the file was deleted"
                )
    except BaseException:
        part.unlink(missing_ok=True)
        raise
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
    verified while extracting (:mod:`zipfile`).

    Arguments
    ---------
    archive_path : str or pathlib.Path
        The zip file.
    destination : str or pathlib.Path
        Folder to extract into (created if needed).

    Raises
    ------
    UnsafeArchiveError
        A member name escapes ``destination`` (nothing was extracted); the
        message names the archive and the member.
    zipfile.BadZipFile
        The archive is corrupt.

    Example
    -------
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


def move_merge(source, target):
    """Move folder ``source`` to ``target``, merging into what ``target`` already holds.

    Arguments
    ---------
    source, target : pathlib.Path
        Folders; files of ``source`` replace those of the same name in ``target``.

    Example
    -------
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "a" / "sub").mkdir(parents=True); (root / "b" / "sub").mkdir(parents=True)
    >>> _ = (root / "a" / "sub" / "new.txt").write_text("n")
    >>> _ = (root / "b" / "sub" / "old.txt").write_text("o")
    >>> move_merge(root / "a", root / "b")
    >>> sorted(p.name for p in (root / "b" / "sub").iterdir()), (root / "a").exists()
    (['new.txt', 'old.txt'], True)
    """
    if not target.exists():
        shutil.move(str(source), str(target))
        return
    for child in source.iterdir():
        if child.is_dir() and (target / child.name).is_dir():
            move_merge(child, target / child.name)
        else:
            os.replace(child, target / child.name)


def download_and_extract(
    url, folder, archive_name, marker, subfolders, expected_sha256=None, max_attempts=3, keep_archive=False
):
    """Download a zip (unless already there), extract it safely and install its folders in ``folder``.

    The archive goes to ``folder / archive_name`` (:func:`download_file`), is
    extracted (:func:`safe_extract_zip`) into a temporary folder inside
    ``folder``, the extracted folder holding ``marker`` (the top level or one
    below, e.g. GitHub's ``<repo>-master/``) is found, and its ``subfolders`` are
    moved into ``folder`` in order (put the folder holding ``marker`` last: its
    presence then means a complete install). The temporary folder is always
    removed; the archive too unless ``keep_archive``.

    Arguments
    ---------
    url : str
        Address of the zip.
    folder : str or pathlib.Path
        Where the data goes (created if needed).
    archive_name : str
        File name of the downloaded zip.
    marker : str
        Relative path of a file that identifies the data's root (e.g. ``"meta/esc50.csv"``).
    subfolders : sequence of str
        Folders of the root to move into ``folder``.
    expected_sha256, max_attempts :
        See :func:`download_file`.
    keep_archive : bool
        Keep the zip after extraction.

    Raises
    ------
    DownloadError
        See :func:`download_file`; also a corrupt archive (deleted) or one
        without ``marker`` and ``subfolders``.
    UnsafeArchiveError
        See :func:`safe_extract_zip` (the archive is kept, nothing installed).

    Example
    -------
    >>> root = Path(tempfile.mkdtemp())
    >>> with zipfile.ZipFile(root / "data.zip", "w") as archive:
    ...     archive.writestr("repo-master/meta/index.csv", "a\\n")
    ...     archive.writestr("repo-master/audio/README", "no clips")
    >>> download_and_extract((root / "data.zip").as_uri(), root / "data", "data.zip",
    ...                      "meta/index.csv", ("audio", "meta"))
    >>> sorted(path.name for path in (root / "data").iterdir())
    ['audio', 'meta']
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    archive = folder / archive_name
    if archive.is_file():
        logger.info("Using the archive already downloaded: %s", archive)
    else:
        logger.info("Downloading %s to %s", url, archive)
        download_file(url, archive, expected_sha256=expected_sha256, max_attempts=max_attempts)
    extract_folder = Path(tempfile.mkdtemp(prefix=".extract_", dir=folder))
    try:
        try:
            safe_extract_zip(archive, extract_folder)
        except (zipfile.BadZipFile, EOFError) as error:
            archive.unlink()
            raise DownloadError(f"the downloaded archive from {url} is corrupt ({error}); it was deleted") from error
        candidates = [extract_folder] + sorted(p for p in extract_folder.iterdir() if p.is_dir())
        root = next((c for c in candidates if (c / marker).is_file()), None)
        if root is None or not all((root / name).is_dir() for name in subfolders):
            raise DownloadError(f"the archive from {url} holds no {marker} and {', '.join(subfolders)}/ folders")
        for name in subfolders:
            move_merge(root / name, folder / name)
    finally:
        shutil.rmtree(extract_folder, ignore_errors=True)
    if not keep_archive:
        archive.unlink()

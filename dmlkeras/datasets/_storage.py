"""The storage engine of :mod:`dmlkeras.datasets`: where data files live, how they are checked and fetched.

Every loader of the package names the files it reads by their path
relative to a data folder (``"mnist.npz"``, ``"ml-100k/u.data"``) and asks
:func:`fetch` for them. This module owns everything generic about that:

* the **catalogue** -- :data:`FILES` (accepted size and SHA-256 of each
  file), :data:`FOLDERS` (folders extracted whole, with the number of files
  expected in them) and :data:`REMOTES` (the canonical downloads, a
  :class:`Remote` each), filled by the loader modules with :func:`register`;
* the **search order** (:func:`data_home`) and the **cache folder**
  (:func:`cache_dir`);
* **checks** of local files: size and SHA-256 always, the SHA-256 computed
  once per file version and remembered (:func:`verified_sha256`), or every
  time with ``verify=True``;
* **downloads**: streamed into a temporary file beside their destination
  with a progress bar, checked against the catalogue, extracted from zip or
  tar archives when needed, and only then renamed into place
  (:func:`publish`), so an interrupted or corrupted download never leaves a
  file a later call would trust; a download writes only the files that were
  missing (the other local files stay as they are), and temporary ``.part``
  files that a killed process left behind are removed by the next download
  or cache write into their folder;
* **array caches** (:func:`cached_arrays`), written atomically the same way;
  an unreadable (truncated) cache is reported with its path and recomputed.

Nothing here knows a particular data set.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import stat
import tarfile
import tempfile
import time
import urllib.request
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

import numpy as np
from tqdm import tqdm

__all__ = [
    "FILES",
    "FOLDERS",
    "PROJECT_DATA_DIR",
    "REMOTES",
    "DatasetIntegrityError",
    "DatasetNotFoundError",
    "Remote",
    "cache_dir",
    "cached_arrays",
    "check_parsed_range",
    "data_home",
    "fetch",
    "is_writable",
    "progress",
    "publish",
    "remove_orphans",
    "register",
    "sha256_file",
    "source_checkout_data_dir",
    "verified_sha256",
]

PathLike = str | os.PathLike[str]


def source_checkout_data_dir() -> Path | None:
    """The ``data/`` folder of the source checkout dmlkeras runs from, or ``None``.

    The package counts as a checkout when the folder above it holds a
    ``pyproject.toml`` that names dmlkeras; an installed wheel (in
    ``site-packages``) has none, so its neighbours are never used as data.

    Examples
    --------
    >>> folder = source_checkout_data_dir()   # None when installed from a wheel
    >>> folder is None or folder.name == "data"
    True
    """
    root = Path(__file__).resolve().parents[2]
    project = root / "pyproject.toml"
    try:
        named = 'name = "dmlkeras"' in project.read_text(encoding="utf-8")
    except OSError:
        return None
    return root / "data" if named else None


#: The ``data/`` folder of the source checkout this package runs from, or
#: ``None`` when it runs from an installed wheel.
PROJECT_DATA_DIR: Path | None = source_checkout_data_dir()
_CHUNK = 1 << 20
_TIMEOUT_S = 60.0
#: A ``.part`` file untouched for this long belongs to no live download or cache
#: write (they write at least every ``_TIMEOUT_S``): the next writer removes it.
ORPHAN_AGE_S = 10 * _TIMEOUT_S
_VERIFIED = "verified-sha256.json"

#: Every file a loader reads, relative to a data folder, with the
#: ``(size in bytes, SHA-256)`` of each accepted version.
FILES: dict[str, tuple[tuple[int, str], ...]] = {}

#: Folders extracted whole from an archive: relative path -> (glob pattern,
#: number of matching files that ``verify=True`` expects, what they are).
FOLDERS: dict[str, tuple[str, int, str]] = {}


@dataclass(frozen=True)
class Remote:
    """A canonical download.

    ``provides`` are the paths (relative to a data folder) the download
    yields. A path listed in :data:`FILES` is a file checked against that
    table; any other path is a folder (listed in :data:`FOLDERS`) extracted
    whole from the archive, which then needs a known ``sha256`` of its own.

    Examples
    --------
    >>> Remote("https://example.org/a.zip", ("a/b.txt",), archive="zip").archive
    'zip'
    """

    url: str
    provides: tuple[str, ...]
    archive: str | None = None  # "zip", "tar" (any compression) or None
    sha256: str | None = None  # of the downloaded archive itself, when known


#: The canonical downloads, by key.
REMOTES: dict[str, Remote] = {}


def register(
    files: Mapping[str, tuple[tuple[int, str], ...]] | None = None,
    remotes: Mapping[str, Remote] | None = None,
    folders: Mapping[str, tuple[str, int, str]] | None = None,
) -> None:
    """Add a family of data files to the catalogue (each loader module calls it once, on import).

    Parameters
    ----------
    files : mapping
        Relative path -> accepted ``(size, sha256)`` versions.
    remotes : mapping
        Key -> :class:`Remote`.
    folders : mapping
        Relative path -> ``(glob pattern, expected number of files, what they are)``.

    Raises
    ------
    ValueError
        If a path or key is already registered.

    Examples
    --------
    >>> "mnist.npz" in FILES   # registered by dmlkeras.datasets.images
    True
    """
    for table, new in ((FILES, dict(files or {})), (REMOTES, dict(remotes or {})), (FOLDERS, dict(folders or {}))):
        clash = sorted(set(table) & set(new))
        if clash:
            raise ValueError(f"Already registered: {clash}.")
        table.update(new)

class DatasetNotFoundError(FileNotFoundError):
    """A data file is neither available locally nor could be downloaded.

    Attributes
    ----------
    missing : list of str
        The missing paths, relative to a data folder.
    searched : list of pathlib.Path
        The data folders that were searched, in order.
    urls : list of str
        The canonical sources of the missing files.
    """

    def __init__(
        self, missing: Sequence[str], searched: Sequence[Path], urls: Sequence[str], reason: str
    ) -> None:
        self.missing = list(missing)
        self.searched = list(searched)
        self.urls = list(urls)
        lines = [f"Missing data: {', '.join(repr(m) for m in self.missing)}.", "Looked for:"]
        lines += [f"  {root / rel}" for rel in self.missing for root in self.searched]
        lines.append(reason)
        lines.append(f"Source: {', '.join(self.urls)}")
        lines.append(
            "To provide it, download the source and place the file(s) at the relative "
            "path(s) above inside a data folder (archives: extract the named files), then "
            "set the environment variable DMLKERAS_DATA_DIR to that folder or pass "
            "data_dir=... to the loader. With network access, call the loader with "
            "download=True to fetch it automatically."
        )
        super().__init__("\n".join(lines))


class DatasetIntegrityError(OSError):
    """A data file or a download does not have the expected size or SHA-256."""


def data_home(data_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Return the folders searched for data files, in search order.

    Parameters
    ----------
    data_dir : str or path-like, optional
        A folder to search first (the ``data_dir`` argument of the loaders).

    Returns
    -------
    list of pathlib.Path
        ``data_dir`` (when given), ``$DMLKERAS_DATA_DIR`` (when set), the
        repository's ``data/`` folder (:data:`PROJECT_DATA_DIR`: only when
        the package runs from a source checkout, never from an installed
        wheel) and ``~/.dmlkeras/datasets``, as absolute paths without
        duplicates. Missing files are downloaded into the first writable one.

    Examples
    --------
    >>> from dmlkeras.datasets import data_home
    >>> data_home("/tmp/my_data")[0]
    PosixPath('/tmp/my_data')
    """
    candidates: list[Path] = []
    if data_dir is not None:
        candidates.append(Path(data_dir))
    env = os.environ.get("DMLKERAS_DATA_DIR")
    if env:
        candidates.append(Path(env))
    if PROJECT_DATA_DIR is not None and PROJECT_DATA_DIR.is_dir():
        candidates.append(PROJECT_DATA_DIR)
    candidates.append(Path.home() / ".dmlkeras" / "datasets")
    folders: list[Path] = []
    for candidate in candidates:
        folder = Path(os.path.abspath(candidate.expanduser()))
        if folder not in folders:
            folders.append(folder)
    return folders


def cache_dir() -> Path:
    """Return the folder for caches (decoded LFW arrays).

    Returns
    -------
    pathlib.Path
        ``$DMLKERAS_CACHE_DIR`` when set, else ``~/.cache/dmlkeras``. It is
        created when a cache is first written.

    Examples
    --------
    >>> from dmlkeras.datasets import cache_dir
    >>> cache_dir().is_absolute()
    True
    """
    env = os.environ.get("DMLKERAS_CACHE_DIR")
    folder = Path(env) if env else Path.home() / ".cache" / "dmlkeras"
    return Path(os.path.abspath(folder.expanduser()))



def sha256_file(path: Path) -> str:
    """The SHA-256 of a file's content, as 64 hex digits, read a megabyte at a time.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile() as f:
    ...     sha256_file(f.name)[:16]
    'e3b0c44298fc1c14'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def is_writable(folder: Path) -> bool:
    """Whether files can be created in ``folder`` (or in the folder that would hold it).

    A folder without any write permission bit counts as read-only even for
    root, who could otherwise write anywhere.

    Examples
    --------
    >>> import tempfile
    >>> is_writable(Path(tempfile.gettempdir()) / "not" / "yet" / "there")
    True
    """
    existing = folder
    while not existing.exists():
        if existing.parent == existing:
            return False
        existing = existing.parent
    if not existing.is_dir():
        return False
    mode = existing.stat().st_mode
    return os.access(existing, os.W_OK | os.X_OK) and bool(
        mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    )


def _memo_path() -> Path:
    return cache_dir() / _VERIFIED


def _read_memo() -> dict[str, list]:
    try:
        memo = json.loads(_memo_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return memo if isinstance(memo, dict) else {}


def _remember(key: str, record: list) -> None:
    """Add one record to the memo file; silently skipped when the cache folder is not writable."""
    memo = _read_memo()
    memo[key] = record
    path = _memo_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".part", dir=path.parent)
    except OSError:
        return
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(memo, f)
        publish(Path(tmp), path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)


def verified_sha256(path: PathLike, recompute: bool = False) -> str:
    """The SHA-256 of a file, hashed once per version and remembered.

    The digest is stored with the file's size and modification time (in
    nanoseconds) in ``cache_dir()/verified-sha256.json``; while both are
    unchanged the stored digest is returned without reading the file. An
    edit changes the modification time, so it is hashed again. A read-only
    cache folder only costs the hash on every call.

    Parameters
    ----------
    path : path
    recompute : bool, default False
        Hash the file even when a record matches (``verify=True``).

    Examples
    --------
    >>> import os, tempfile
    >>> os.environ["DMLKERAS_CACHE_DIR"] = tempfile.mkdtemp()
    >>> with tempfile.NamedTemporaryFile() as f:
    ...     verified_sha256(f.name)[:16], verified_sha256(f.name)[:16]   # hashed, then remembered
    ('e3b0c44298fc1c14', 'e3b0c44298fc1c14')
    >>> del os.environ["DMLKERAS_CACHE_DIR"]
    """
    path = Path(path)
    st = path.stat()
    key = str(path.resolve())
    record = _read_memo().get(key)
    if (
        not recompute
        and isinstance(record, list)
        and len(record) == 3
        and record[:2] == [st.st_size, st.st_mtime_ns]
    ):
        return str(record[2])
    digest = sha256_file(path)
    _remember(key, [st.st_size, st.st_mtime_ns, digest])
    return digest


def _check_local(rel: str, path: Path, verify: bool) -> None:
    """Check a local file's size and SHA-256 (remembered per version; recomputed when ``verify``)."""
    if rel in FOLDERS:
        pattern, expected, what = FOLDERS[rel]
        if verify:
            found = sum(1 for _ in path.glob(pattern))
            if found != expected:
                raise DatasetIntegrityError(
                    f"{path} holds {found} files matching {pattern!r}, expected the {expected} {what}."
                )
        return
    accepted = FILES[rel]
    size = path.stat().st_size
    if size not in {s for s, _ in accepted}:
        raise DatasetIntegrityError(
            f"{path} has {size} bytes, expected {' or '.join(str(s) for s, _ in accepted)}: "
            "the file is truncated or not the expected version. Replace it (or delete it "
            "to download it again)."
        )
    digest = verified_sha256(path, recompute=verify)
    if digest not in {h for _, h in accepted}:
        raise DatasetIntegrityError(
            f"{path} has sha256 {digest}, expected "
            f"{' or '.join(h for _, h in accepted)}: the file was edited or is not the expected "
            "version. Replace it (or delete it to download it again)."
        )


def remove_orphans(folder: Path, max_age_s: float = ORPHAN_AGE_S) -> list[Path]:
    """Remove the temporary ``.*.part`` files and folders in ``folder`` older than ``max_age_s``.

    Downloads, extractions and cache writes stage their output in such
    entries and rename it into place at the end; a killed process leaves
    them behind. Entries modified within ``max_age_s`` may belong to a live
    writer and are kept.

    Returns
    -------
    list of pathlib.Path
        The removed entries.

    Examples
    --------
    >>> import os, tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> old = folder / ".download-x.part"
    >>> _ = old.write_bytes(b"half")
    >>> os.utime(old, (0, 0))
    >>> [p.name for p in remove_orphans(folder)], old.exists()
    (['.download-x.part'], False)
    """
    removed = []
    try:
        candidates = list(folder.glob(".*.part"))
    except OSError:
        return removed
    now = time.time()
    for entry in candidates:
        try:
            if now - entry.stat().st_mtime > max_age_s:
                _remove(entry)
                removed.append(entry)
        except OSError:
            continue
    return removed


def check_parsed_range(
    values: np.ndarray, low: int, high: int, path: PathLike, what: str, first_line: int = 1
) -> None:
    """Raise ``ValueError`` naming the file and line of the first value outside ``[low, high]``.

    ``values[k]`` is taken to come from line ``first_line + k`` of ``path``.

    Examples
    --------
    >>> check_parsed_range(np.array([1, 5, 3]), 1, 5, "u.data", "rating")
    >>> check_parsed_range(np.array([1, 9]), 1, 5, "u.data", "rating")
    Traceback (most recent call last):
    ...
    ValueError: u.data: line 2: rating must be an integer in 1..5; got 9.
    """
    values = np.asarray(values)
    bad = np.flatnonzero((values < low) | (values > high))
    if bad.size:
        k = int(bad[0])
        raise ValueError(
            f"{path}: line {first_line + k}: {what} must be an integer in {low}..{high}; got {values[k]}."
        )


def progress(total: int | None, desc: str, disable: bool = False) -> tqdm:
    """A byte-counting tqdm progress bar (on stderr) for a download of ``total`` bytes (``None``: unknown).

    Examples
    --------
    >>> with progress(None, "example", disable=True) as bar:
    ...     _ = bar.update(3)
    """
    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, disable=disable)


def _download_to_temp(url: str, folder: Path) -> tuple[Path, str]:
    """Stream ``url`` into a new temporary file in ``folder``.

    Returns the temporary path and the SHA-256 of its content. The file is
    removed when the download fails or is shorter than announced.
    """
    folder.mkdir(parents=True, exist_ok=True)
    remove_orphans(folder)
    fd, name = tempfile.mkstemp(prefix=".download-", suffix=".part", dir=folder)
    tmp = Path(name)
    try:
        digest = hashlib.sha256()
        received = 0
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=_TIMEOUT_S) as resp:
            length = resp.headers.get("Content-Length")
            total = int(length) if length is not None else None
            with progress(total, url.rsplit("/", 1)[-1]) as bar:
                while chunk := resp.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        if total is not None and received != total:
            raise DatasetIntegrityError(
                f"Download of {url} is incomplete: received {received} of {total} bytes."
            )
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp, digest.hexdigest()


def _checked(url: str, rel: str, digest: str, size: int) -> None:
    """Raise unless (size, digest) is an accepted version of ``rel``."""
    accepted = FILES[rel]
    if digest not in {h for _, h in accepted} or size not in {s for s, _ in accepted}:
        raise DatasetIntegrityError(
            f"Checksum mismatch for {rel!r} from {url}: expected sha256 "
            f"{' or '.join(h for _, h in accepted)}, got {digest} ({size} bytes). "
            "Nothing was saved."
        )


def _archive_members(path: Path, kind: str) -> Iterator[tuple[str, Callable[[], IO[bytes]]]]:
    """Yield ``(name, open)`` for the regular files of a zip or tar archive."""
    if kind == "zip":
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if not info.is_dir():
                    yield info.filename, lambda info=info: zf.open(info)
    else:
        with tarfile.open(path, "r:*") as tf:
            for member in tf:
                if member.isfile():
                    yield member.name, lambda member=member: tf.extractfile(member)


def _stage_member(open_member: Callable[[], IO[bytes]], dest: Path, rel: str, url: str) -> Path:
    """Copy an archive member into a temporary file beside ``dest`` and check it."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(dest.parent)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}-", suffix=".part", dir=dest.parent)
    tmp = Path(name)
    try:
        digest = hashlib.sha256()
        size = 0
        with os.fdopen(fd, "wb") as out, open_member() as src:
            while chunk := src.read(_CHUNK):
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
        _checked(url, rel, digest.hexdigest(), size)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def publish(tmp: Path, dest: Path) -> None:
    """Give a staged file or folder the usual permissions and rename it to ``dest``.

    ``tempfile`` creates private (0600 / 0700) entries; published data gets
    the permissions of any new file, as set by the umask. The rename is
    atomic: ``dest`` is either absent, its old version or the new one.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> staged = folder / ".data.part"
    >>> _ = staged.write_text("ready")
    >>> publish(staged, folder / "data.txt")
    >>> (folder / "data.txt").read_text(), staged.exists()
    ('ready', False)
    """
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod((0o777 if tmp.is_dir() else 0o666) & ~umask)
    os.replace(tmp, dest)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _extract(archive: Path, kind: str, remote: Remote, root: Path, needed: Sequence[str]) -> None:
    """Extract the ``needed`` paths (some of those ``remote`` provides) from ``archive`` into ``root``.

    Files are matched by their base name and checked against ``FILES``;
    folders are extracted whole. Everything is staged in temporary files
    first and renamed into place only when every needed path was found; the
    archive's other members are not written, so local files that were not
    missing are never replaced.
    """
    files = {PurePosixPath(rel).name: rel for rel in needed if rel in FILES}
    folders = {PurePosixPath(rel).name: rel for rel in needed if rel not in FILES}
    staged: dict[str, Path] = {}
    try:
        for name, open_member in _archive_members(archive, kind):
            parts = PurePosixPath(name).parts
            if name.startswith("/") or ".." in parts or parts[0] == "__MACOSX":
                continue
            rel = files.get(parts[-1])
            if rel is not None and rel not in staged:
                staged[rel] = _stage_member(open_member, root / rel, rel, remote.url)
                continue
            for i, part in enumerate(parts[:-1]):
                if part in folders:
                    rel = folders[part]
                    if rel not in staged:
                        (root / rel).parent.mkdir(parents=True, exist_ok=True)
                        remove_orphans((root / rel).parent)
                        staged[rel] = Path(
                            tempfile.mkdtemp(prefix=f".{part}-", suffix=".part", dir=(root / rel).parent)
                        )
                    target = staged[rel].joinpath(*parts[i + 1 :])
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with open_member() as src, open(target, "wb") as out:
                        shutil.copyfileobj(src, out, _CHUNK)
                    break
        absent = [rel for rel in needed if rel not in staged]
        if absent:
            raise DatasetIntegrityError(f"The archive {remote.url} lacks {absent}.")
        for rel, tmp in staged.items():
            publish(tmp, root / rel)
    except BaseException:
        for tmp in staged.values():
            _remove(tmp)
        raise


def _download(remote: Remote, root: Path, needed: Sequence[str] | None = None) -> None:
    """Download ``remote`` and place the ``needed`` paths it provides (default: all) under ``root``."""
    needed = list(remote.provides if needed is None else needed)
    first = root / remote.provides[0]
    tmp, digest = _download_to_temp(remote.url, first.parent)
    try:
        if remote.archive is None:
            _checked(remote.url, remote.provides[0], digest, tmp.stat().st_size)
            publish(tmp, first)
            return
        if remote.sha256 is not None and digest != remote.sha256:
            raise DatasetIntegrityError(
                f"Checksum mismatch for {remote.url}: expected sha256 {remote.sha256}, "
                f"got {digest}. Nothing was saved."
            )
        try:
            _extract(tmp, remote.archive, remote, root, needed)
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as exc:
            raise DatasetIntegrityError(
                f"The download from {remote.url} (sha256 {digest}) is not a valid "
                f"{remote.archive} archive: {exc}. Nothing was saved."
            ) from exc
    finally:
        tmp.unlink(missing_ok=True)


def _remote_for(rel: str) -> Remote:
    for remote in REMOTES.values():
        if rel in remote.provides:
            return remote
    raise KeyError(rel)


def fetch(
    rels: Sequence[str],
    data_dir: PathLike | None = None,
    download: bool = True,
    verify: bool = False,
) -> dict[str, Path]:
    """Locate (and, if allowed, download) data files; return their paths by relative path.

    Parameters
    ----------
    rels : sequence of str
        Paths relative to a data folder, each registered in :data:`FILES`
        or :data:`FOLDERS`.
    data_dir : str or path-like, optional
        Folder searched first (see :func:`data_home`).
    download : bool, default True
        Download what no folder holds, into the first writable folder.
    verify : bool, default False
        Hash every file again (and count the files of a folder). Without
        it, sizes are checked on every call and SHA-256 values once per file
        version (size and modification time), remembered in
        :func:`cache_dir` (see :func:`verified_sha256`).

    Returns
    -------
    dict of str to pathlib.Path

    Raises
    ------
    DatasetNotFoundError
        A file is missing and cannot be downloaded.
    DatasetIntegrityError
        A file or a download has the wrong size or checksum.

    Examples
    --------
    A file of the catalogue (here one registered for the example) found in ``data_dir``:

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> FILES["example/hello.txt"] = ((5, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"),)
    >>> (folder / "example").mkdir()
    >>> (folder / "example" / "hello.txt").write_text("hello")
    5
    >>> fetch(["example/hello.txt"], data_dir=folder, verify=True) == {"example/hello.txt": folder / "example/hello.txt"}
    True
    >>> del FILES["example/hello.txt"]
    """
    roots = data_home(data_dir)
    found: dict[str, Path] = {}
    missing: list[str] = []
    for rel in rels:
        path = next((root / rel for root in roots if (root / rel).exists()), None)
        if path is None:
            missing.append(rel)
        else:
            found[rel] = path
    if missing:
        remotes = list({id(r): r for r in map(_remote_for, missing)}.values())
        urls = [r.url for r in remotes]
        if not download:
            raise DatasetNotFoundError(
                missing, roots, urls, "Downloading is disabled (download=False)."
            )
        target = next((root for root in roots if is_writable(root)), None)
        if target is None:
            raise DatasetNotFoundError(
                missing, roots, urls, "None of these folders is writable: cannot download."
            )
        for remote in remotes:
            try:
                # Write what the target lacks; never replace a file that is already there.
                _download(remote, target, [rel for rel in remote.provides if not (target / rel).exists()])
            except DatasetIntegrityError:
                raise
            except (OSError, http.client.HTTPException) as exc:
                raise DatasetNotFoundError(
                    missing, roots, urls, f"Downloading {remote.url} failed: {exc!r}."
                ) from exc
        found.update({rel: target / rel for rel in missing})
    for rel in rels:
        _check_local(rel, found[rel], verify)
    return found


def cached_arrays(
    folder: str, name: str, compute: Callable[[], dict[str, np.ndarray]], use_cache: bool = True
) -> dict[str, np.ndarray]:
    """Return arrays from ``cache_dir()/folder/name.npz``, computing and saving them if needed.

    The cache is written to a temporary file and published atomically; when
    the cache folder is not writable the arrays are returned with a warning.
    A cache file that cannot be read back (truncated, corrupt) is reported
    with a warning naming its path, recomputed and written again.
    The caller makes ``name`` change whenever the inputs change (e.g. a hash
    of the arguments and of the source files' sizes).

    Examples
    --------
    >>> import os, tempfile
    >>> os.environ["DMLKERAS_CACHE_DIR"] = tempfile.mkdtemp()
    >>> cached_arrays("demo", "ones", lambda: {"x": np.ones(2)})["x"]
    array([1., 1.])
    >>> cached_arrays("demo", "ones", lambda: {"x": np.zeros(2)})["x"]   # read back, not recomputed
    array([1., 1.])
    >>> del os.environ["DMLKERAS_CACHE_DIR"]
    """
    path = cache_dir() / folder / f"{name}.npz"
    if use_cache and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as f:
                return {k: f[k] for k in f.files}
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
            warnings.warn(
                f"The cache file {path} is unreadable ({type(exc).__name__}: {exc}); it is truncated "
                "or corrupt (e.g. a process was killed while writing it). Recomputing it.",
                stacklevel=3,
            )
    arrays = compute()
    if use_cache:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            remove_orphans(path.parent)
            fd, tmp = tempfile.mkstemp(prefix=f".{name}-", suffix=".part", dir=path.parent)
        except OSError as exc:
            warnings.warn(f"Cannot write the cache in {path.parent}: {exc}", stacklevel=3)
            return arrays
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
            publish(Path(tmp), path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return arrays

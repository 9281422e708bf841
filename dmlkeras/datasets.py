"""Loaders for the data sets used by the dmlkeras tutorials.

Every loader reads local copies first and downloads what is missing.

Where data is looked for, in order (see :func:`data_home`):

1. the ``data_dir`` argument of the loader;
2. the folder named by the environment variable ``DMLKERAS_DATA_DIR``;
3. the ``data/`` folder of the dmlkeras repository, when it exists (next to the
   ``dmlkeras`` package, in a source checkout);
4. ``~/.dmlkeras/datasets``.

Inside each folder the layout is the same (the layout of scikit-learn's
``data_home`` for LFW)::

    mnist.npz
    lfw_home/lfw_funneled/<Person_Name>/<Person_Name>_NNNN.jpg
    lfw_home/pairsDevTrain.txt, pairsDevTest.txt, pairs.txt
    ml-100k/u.data, u.item, u.user, u.genre
    text/stsbenchmark/sts-train.csv, sts-dev.csv, sts-test.csv
    text/sick/SICK.txt
    text/stackoverflow/title_StackOverflow.txt, label_StackOverflow.txt
    text/ag_news/test.csv

A missing file is downloaded (``download=True``) from its canonical source into
the first writable folder of that list. Downloads are streamed into a temporary
file next to their destination, checked against known SHA-256 values and only
then renamed into place, so an interrupted or corrupted download never leaves a
file that a later call would trust. Data folders are never written to
otherwise: they may be read-only. Decoded LFW arrays are cached in
:func:`cache_dir`.
"""

from __future__ import annotations

import csv
import hashlib
import http.client
import json
import os
import shutil
import stat
import tarfile
import tempfile
import urllib.request
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

import numpy as np
import pandas as pd
from sklearn.datasets import load_digits as _sklearn_load_digits
from sklearn.utils import Bunch
from tqdm import tqdm

__all__ = [
    "AG_NEWS_CLASSES",
    "DatasetIntegrityError",
    "DatasetNotFoundError",
    "cache_dir",
    "data_home",
    "lfw_pair_people",
    "load_ag_news_test",
    "load_digits",
    "load_lfw_pairs",
    "load_lfw_people",
    "load_mnist",
    "load_movielens_100k",
    "load_sick",
    "load_stackoverflow_titles",
    "load_sts_benchmark",
]

_PROJECT_DATA_DIR = Path(__file__).resolve().parent.parent / "data"
_CHUNK = 1 << 20
_TIMEOUT_S = 60.0

# Every file a loader reads, relative to a data folder, with the (size in bytes,
# SHA-256) of each accepted version. The first entry is the file as the
# canonical source serves it; for mnist.npz the second one is a re-saved copy
# holding the same arrays (savez_compressed, as in the shared test data).
_FILES: dict[str, tuple[tuple[int, str], ...]] = {
    "mnist.npz": (
        (11490434, "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"),
        (11490519, "06af5dfe73b70e3bc1c36439982b18a8d76803db9b544f6fdf838a37fbb01b64"),
    ),
    "lfw_home/pairsDevTrain.txt": (
        (56579, "1d454dada7dfeca0e7eab6f65dc4e97a6312d44cf142207be28d688be92aabfa"),
    ),
    "lfw_home/pairsDevTest.txt": (
        (26002, "7cb06600ea8b2814ac26e946201cdb304296262aad67d046a16a7ec85d0ff87c"),
    ),
    "lfw_home/pairs.txt": (
        (155335, "ea42330c62c92989f9d7c03237ed5d591365e89b3e649747777b70e692dc1592"),
    ),
    "ml-100k/u.data": (
        (1979173, "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490"),
    ),
    "ml-100k/u.item": (
        (236344, "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701"),
    ),
    "ml-100k/u.user": (
        (22628, "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c"),
    ),
    "ml-100k/u.genre": ((202, "9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb"),),
    "text/stsbenchmark/sts-train.csv": (
        (901177, "0f71910b59aa1ad973c5897f0791f3b0965a92b8f82b1a95f3eea9f4162fda82"),
    ),
    "text/stsbenchmark/sts-dev.csv": (
        (255680, "5d7e944d8b02734b07bfdb5df67db3420c64bed153fcaa1ba47ad03480cf4234"),
    ),
    "text/stsbenchmark/sts-test.csv": (
        (282419, "affe45928a66ee5a708531233c95b7dacbbdc57f974f002a3d32ea0180cf816a"),
    ),
    "text/sick/SICK.txt": (
        (2432648, "1539c2d059809b5bd40694e26d8121cc85b6b496f91c7b40f2fc83bbd7dcd957"),
    ),
    "text/stackoverflow/title_StackOverflow.txt": (
        (1030059, "56fdb3932c6a2e35c1943b8a3d3c1cf51901fc1139e51b1587091898ffb22e86"),
    ),
    "text/stackoverflow/label_StackOverflow.txt": (
        (51000, "ac6b52afbf696611680f8ea944be682bcdf1979b62fde2b5fa2a9dcc6ab8d7d3"),
    ),
    "text/ag_news/test.csv": (
        (1857427, "521465c2428ed7f02f8d6db6ffdd4b5447c1c701962353eb2c40d548c3c85699"),
    ),
}


@dataclass(frozen=True)
class _Remote:
    """A canonical download.

    ``provides`` are the paths (relative to a data folder) the download yields.
    A path listed in ``_FILES`` is a file checked against that table; any other
    path is a folder extracted whole from the archive, which then needs a
    known ``sha256`` of its own.
    """

    url: str
    provides: tuple[str, ...]
    archive: str | None = None  # "zip", "tar" (any compression) or None
    sha256: str | None = None  # of the downloaded archive itself, when known


_FIGSHARE = "https://ndownloader.figshare.com/files/"
_STACKOVERFLOW = "https://raw.githubusercontent.com/jacoxu/StackOverflow/master/rawText/"

# The LFW URLs and the archive checksum are the ones scikit-learn's
# fetch_lfw_people / fetch_lfw_pairs use (sklearn/datasets/_lfw.py).
_REMOTES: dict[str, _Remote] = {
    "mnist": _Remote(
        "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz",
        ("mnist.npz",),
    ),
    "lfw-pairsDevTrain": _Remote(_FIGSHARE + "5976012", ("lfw_home/pairsDevTrain.txt",)),
    "lfw-pairsDevTest": _Remote(_FIGSHARE + "5976009", ("lfw_home/pairsDevTest.txt",)),
    "lfw-pairs": _Remote(_FIGSHARE + "5976006", ("lfw_home/pairs.txt",)),
    "lfw-funneled": _Remote(
        _FIGSHARE + "5976015",
        ("lfw_home/lfw_funneled",),
        archive="tar",
        sha256="b47c8422c8cded889dc5a13418c4bc2abbda121092b3533a83306f90d900100a",
    ),
    "ml-100k": _Remote(
        "https://files.grouplens.org/datasets/movielens/ml-100k.zip",
        ("ml-100k/u.data", "ml-100k/u.item", "ml-100k/u.user", "ml-100k/u.genre"),
        archive="zip",
    ),
    "stsbenchmark": _Remote(
        "http://ixa2.si.ehu.eus/stswiki/images/4/48/Stsbenchmark.tar.gz",
        (
            "text/stsbenchmark/sts-train.csv",
            "text/stsbenchmark/sts-dev.csv",
            "text/stsbenchmark/sts-test.csv",
        ),
        archive="tar",
    ),
    "sick": _Remote(
        "https://zenodo.org/record/2787612/files/SICK.zip",
        ("text/sick/SICK.txt",),
        archive="zip",
    ),
    "stackoverflow-titles": _Remote(
        _STACKOVERFLOW + "title_StackOverflow.txt",
        ("text/stackoverflow/title_StackOverflow.txt",),
    ),
    "stackoverflow-labels": _Remote(
        _STACKOVERFLOW + "label_StackOverflow.txt",
        ("text/stackoverflow/label_StackOverflow.txt",),
    ),
    "ag_news-test": _Remote(
        "https://raw.githubusercontent.com/mhjabreel/CharCnn_Keras/master/"
        "data/ag_news_csv/test.csv",
        ("text/ag_news/test.csv",),
    ),
}

_LFW_IMAGES = "lfw_home/lfw_funneled"
_LFW_N_IMAGES = 13233
_LFW_PAIRS_FILES = {
    "train": "lfw_home/pairsDevTrain.txt",
    "test": "lfw_home/pairsDevTest.txt",
    "10_folds": "lfw_home/pairs.txt",
}
# scikit-learn's default crop of the 250 x 250 LFW images: rows 70:195, columns 78:172.
_LFW_ROWS = (70, 195)
_LFW_COLS = (78, 172)
_LFW_CACHE_VERSION = 1

#: Class names of AG News, indexed by the 0-based ``label`` of :func:`load_ag_news_test`.
AG_NEWS_CLASSES: tuple[str, ...] = ("World", "Sports", "Business", "Sci/Tech")

_STACKOVERFLOW_TAGS: tuple[str, ...] = (
    "wordpress", "oracle", "svn", "apache", "excel", "matlab", "visual-studio",
    "cocoa", "osx", "bash", "spring", "hibernate", "scala", "sharepoint", "ajax",
    "qt", "drupal", "linq", "haskell", "magento",
)  # fmt: skip


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
        repository's ``data/`` folder (when it exists) and
        ``~/.dmlkeras/datasets``, as absolute paths without duplicates.
        Missing files are downloaded into the first writable one.

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
    if _PROJECT_DATA_DIR.is_dir():
        candidates.append(_PROJECT_DATA_DIR)
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


# ---------------------------------------------------------------------------
# Locating, checking and downloading files
# ---------------------------------------------------------------------------


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _is_writable(folder: Path) -> bool:
    """Whether files can be created in ``folder`` (or in the folder that would hold it).

    A folder without any write permission bit counts as read-only even for
    root, who could otherwise write anywhere.
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


def _check_local(rel: str, path: Path, verify: bool) -> None:
    """Check a local file's size (always) and SHA-256 (when ``verify``)."""
    if rel == _LFW_IMAGES:
        if verify:
            n_images = sum(1 for _ in path.glob("*/*.jpg"))
            if n_images != _LFW_N_IMAGES:
                raise DatasetIntegrityError(
                    f"{path} holds {n_images} images, expected the {_LFW_N_IMAGES} LFW images."
                )
        return
    accepted = _FILES[rel]
    size = path.stat().st_size
    if size not in {s for s, _ in accepted}:
        raise DatasetIntegrityError(
            f"{path} has {size} bytes, expected {' or '.join(str(s) for s, _ in accepted)}: "
            "the file is truncated or not the expected version. Replace it (or delete it "
            "to download it again)."
        )
    if verify:
        digest = _sha256_file(path)
        if digest not in {h for _, h in accepted}:
            raise DatasetIntegrityError(
                f"{path} has sha256 {digest}, expected "
                f"{' or '.join(h for _, h in accepted)}. Replace it (or delete it to "
                "download it again)."
            )


def _progress(total: int | None, desc: str) -> tqdm:
    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc)


def _download_to_temp(url: str, folder: Path) -> tuple[Path, str]:
    """Stream ``url`` into a new temporary file in ``folder``.

    Returns the temporary path and the SHA-256 of its content. The file is
    removed when the download fails or is shorter than announced.
    """
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".download-", suffix=".part", dir=folder)
    tmp = Path(name)
    try:
        digest = hashlib.sha256()
        received = 0
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=_TIMEOUT_S) as resp:
            length = resp.headers.get("Content-Length")
            total = int(length) if length is not None else None
            with _progress(total, url.rsplit("/", 1)[-1]) as bar:
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
    accepted = _FILES[rel]
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


def _publish(tmp: Path, dest: Path) -> None:
    """Give a staged file or folder the usual permissions and rename it to ``dest``.

    ``tempfile`` creates private (0600 / 0700) entries; published data gets
    the permissions of any new file, as set by the umask.
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


def _extract(archive: Path, kind: str, remote: _Remote, root: Path) -> None:
    """Extract the paths ``remote`` provides from ``archive`` into ``root``.

    Files are matched by their base name and checked against ``_FILES``;
    folders are extracted whole. Everything is staged in temporary files
    first and renamed into place only when every provided path was found.
    """
    files = {PurePosixPath(rel).name: rel for rel in remote.provides if rel in _FILES}
    folders = {PurePosixPath(rel).name: rel for rel in remote.provides if rel not in _FILES}
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
                        staged[rel] = Path(
                            tempfile.mkdtemp(prefix=f".{part}-", dir=(root / rel).parent)
                        )
                    target = staged[rel].joinpath(*parts[i + 1 :])
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with open_member() as src, open(target, "wb") as out:
                        shutil.copyfileobj(src, out, _CHUNK)
                    break
        absent = [rel for rel in remote.provides if rel not in staged]
        if absent:
            raise DatasetIntegrityError(f"The archive {remote.url} lacks {absent}.")
        for rel, tmp in staged.items():
            _publish(tmp, root / rel)
    except BaseException:
        for tmp in staged.values():
            _remove(tmp)
        raise


def _download(remote: _Remote, root: Path) -> None:
    """Download ``remote`` and place what it provides under ``root``."""
    first = root / remote.provides[0]
    tmp, digest = _download_to_temp(remote.url, first.parent)
    try:
        if remote.archive is None:
            _checked(remote.url, remote.provides[0], digest, tmp.stat().st_size)
            _publish(tmp, first)
            return
        if remote.sha256 is not None and digest != remote.sha256:
            raise DatasetIntegrityError(
                f"Checksum mismatch for {remote.url}: expected sha256 {remote.sha256}, "
                f"got {digest}. Nothing was saved."
            )
        try:
            _extract(tmp, remote.archive, remote, root)
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as exc:
            raise DatasetIntegrityError(
                f"The download from {remote.url} (sha256 {digest}) is not a valid "
                f"{remote.archive} archive: {exc}. Nothing was saved."
            ) from exc
    finally:
        tmp.unlink(missing_ok=True)


def _remote_for(rel: str) -> _Remote:
    for remote in _REMOTES.values():
        if rel in remote.provides:
            return remote
    raise KeyError(rel)


def _fetch(
    rels: Sequence[str],
    data_dir: str | os.PathLike[str] | None,
    download: bool,
    verify: bool,
) -> dict[str, Path]:
    """Locate (and, if allowed, download) data files; return their paths by relative path."""
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
        target = next((root for root in roots if _is_writable(root)), None)
        if target is None:
            raise DatasetNotFoundError(
                missing, roots, urls, "None of these folders is writable: cannot download."
            )
        for remote in remotes:
            try:
                _download(remote, target)
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


# ---------------------------------------------------------------------------
# Images: digits and MNIST
# ---------------------------------------------------------------------------


def load_digits(as_images: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Load scikit-learn's 8 x 8 handwritten digits (always available offline).

    Parameters
    ----------
    as_images : bool, default=True
        Return images of shape (1797, 8, 8); if False, flat vectors of shape (1797, 64).

    Returns
    -------
    x : numpy.ndarray of float32
        Pixel intensities scaled from 0..16 to [0, 1].
    y : numpy.ndarray of int64, shape (1797,)
        Digit labels 0..9.

    Examples
    --------
    >>> from dmlkeras.datasets import load_digits
    >>> x, y = load_digits()
    >>> x.shape, x.dtype.name, int(y.max())
    ((1797, 8, 8), 'float32', 9)
    """
    digits = _sklearn_load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    if as_images:
        x = x.reshape(-1, 8, 8)
    return x, digits.target.astype(np.int64)


def load_mnist(
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    verify: bool = False,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load MNIST like ``keras.datasets.mnist.load_data()``, from ``mnist.npz``.

    Parameters
    ----------
    data_dir : str or path-like, optional
        Folder searched first for ``mnist.npz`` (see :func:`data_home`).
    download : bool, default=True
        Download Keras' ``mnist.npz`` when no local copy exists.
    verify : bool, default=False
        Check the SHA-256 of the local file (Keras' file, or the re-saved copy
        of the shared test data, which holds the same arrays).

    Returns
    -------
    (x_train, y_train), (x_test, y_test) : tuple of numpy.ndarray
        uint8 images of shape (60000, 28, 28) and (10000, 28, 28) (0 =
        background) and uint8 labels 0..9.

    Raises
    ------
    DatasetNotFoundError
        The file is missing and cannot be downloaded.
    DatasetIntegrityError
        The file (or the download) has the wrong size or checksum.

    Examples
    --------
    >>> from dmlkeras.datasets import load_mnist
    >>> (x_train, y_train), (x_test, y_test) = load_mnist()  # doctest: +SKIP
    >>> x_train.shape, x_test.shape  # doctest: +SKIP
    ((60000, 28, 28), (10000, 28, 28))
    """
    path = _fetch(["mnist.npz"], data_dir, download, verify)["mnist.npz"]
    with np.load(path, allow_pickle=False) as f:
        return (f["x_train"], f["y_train"]), (f["x_test"], f["y_test"])


# ---------------------------------------------------------------------------
# LFW
# ---------------------------------------------------------------------------


def _face_shape(resize: float | None, color: bool) -> tuple[int, ...]:
    h = _LFW_ROWS[1] - _LFW_ROWS[0]
    w = _LFW_COLS[1] - _LFW_COLS[0]
    if resize is not None:
        if not resize > 0:
            raise ValueError(f"resize must be a positive float or None, got {resize!r}.")
        h, w = int(resize * h), int(resize * w)
    return (h, w, 3) if color else (h, w)


def _load_faces(paths: Sequence[Path], shape: tuple[int, ...]) -> np.ndarray:
    """Decode LFW JPEGs exactly like scikit-learn's ``_load_imgs`` with its default crop.

    ``shape`` is the output shape of one face, from :func:`_face_shape`: the
    crop is resized to it (PIL's default filter, as scikit-learn does) and
    averaged to gray unless it has 3 channels.
    """
    from PIL import Image

    faces = np.zeros((len(paths), *shape), dtype=np.float32)
    box = (_LFW_COLS[0], _LFW_ROWS[0], _LFW_COLS[1], _LFW_ROWS[1])
    bar = tqdm(paths, desc="Decoding LFW images", unit="img", disable=len(paths) < 1000)
    for i, path in enumerate(bar):
        with Image.open(path) as img:
            if img.mode != "RGB":
                img = img.convert("RGB")
            img = img.crop(box).resize((shape[1], shape[0]))
            face = np.asarray(img, dtype=np.float32)
        face /= 255.0
        faces[i] = face if len(shape) == 3 else face.mean(axis=2)
    return faces


def _list_images(folder: Path) -> list[str]:
    return sorted(f for f in os.listdir(folder) if not f.startswith("."))


def _cache_key(kind: str, params: dict[str, object], folder: Path, files: Iterable[str]) -> str:
    """Hash the loader arguments, the image folder and the (name, size) of each file."""
    digest = hashlib.sha256()
    header = {"kind": kind, "version": _LFW_CACHE_VERSION, "folder": str(folder), **params}
    digest.update(json.dumps(header, sort_keys=True).encode())
    for rel in files:
        digest.update(f"{rel}\0{(folder / rel).stat().st_size}\n".encode())
    return digest.hexdigest()[:32]


def _cached(
    name: str, compute: Callable[[], dict[str, np.ndarray]], use_cache: bool
) -> dict[str, np.ndarray]:
    """Return arrays from ``cache_dir()/lfw/<name>.npz``, computing and saving them if needed."""
    path = cache_dir() / "lfw" / f"{name}.npz"
    if use_cache and path.is_file():
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    arrays = compute()
    if use_cache:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{name}-", suffix=".part", dir=path.parent)
        except OSError as exc:
            warnings.warn(f"Cannot write the LFW cache in {path.parent}: {exc}", stacklevel=3)
            return arrays
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
            _publish(Path(tmp), path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return arrays


def _person(name: str) -> str:
    return name.replace("_", " ")


def load_lfw_people(
    min_faces_per_person: int = 0,
    resize: float | None = 0.5,
    color: bool = False,
    people: Iterable[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    verify: bool = False,
    cache: bool = True,
) -> Bunch:
    """Load the LFW face images with person labels (identification).

    Reproduces ``sklearn.datasets.fetch_lfw_people`` with its default crop
    ``slice_=(slice(70, 195), slice(78, 172))``: same images, same order
    (shuffled with ``RandomState(42)``), same labels, but reads
    ``lfw_home/lfw_funneled`` without writing anything beside the data.
    Decoded arrays are cached in ``cache_dir()/lfw``.

    Parameters
    ----------
    min_faces_per_person : int, default=0
        Keep only people with at least this many images.
    resize : float or None, default=0.5
        Scale factor of the 125 x 94 crop (0.5 gives 62 x 47); None keeps it.
    color : bool, default=False
        Keep the RGB channels; otherwise average them to gray.
    people : iterable of str, optional
        Keep only these people (names with spaces or underscores, e.g. the
        result of :func:`lfw_pair_people`).
    data_dir : str or path-like, optional
        Folder searched first for ``lfw_home/`` (see :func:`data_home`).
    download : bool, default=True
        Download scikit-learn's ``lfw-funneled.tgz`` when no local copy exists
        (the 2007 "funneled" images; a local ``lfw_funneled`` folder may hold
        another alignment, e.g. the deep-funneled images of the shared test data).
    verify : bool, default=False
        Check that the image folder holds the 13,233 LFW images.
    cache : bool, default=True
        Read and write the decoded arrays in :func:`cache_dir`.

    Returns
    -------
    sklearn.utils.Bunch
        ``images``: float32 in [0, 1], shape (n, h, w) or (n, h, w, 3);
        ``target``: int64 person index of each image;
        ``target_names``: sorted person names (with spaces).

    Raises
    ------
    ValueError
        ``people`` names someone absent from LFW, or no person is left.

    Examples
    --------
    >>> from dmlkeras.datasets import load_lfw_people, lfw_pair_people
    >>> lfw = load_lfw_people(people=lfw_pair_people("train"))  # doctest: +SKIP
    >>> lfw.images.shape[1:], len(lfw.target_names)  # doctest: +SKIP
    ((62, 47), 2132)
    """
    shape = _face_shape(resize, color)
    folder = _fetch([_LFW_IMAGES], data_dir, download, verify)[_LFW_IMAGES]
    wanted = None if people is None else {_person(p) for p in people}
    files: list[str] = []
    names: list[str] = []
    for person in sorted(os.listdir(folder)):
        if person.startswith(".") or not (folder / person).is_dir():
            continue
        if wanted is not None and _person(person) not in wanted:
            continue
        images = _list_images(folder / person)
        if len(images) >= min_faces_per_person:
            files += [f"{person}/{image}" for image in images]
            names += [_person(person)] * len(images)
    if wanted is not None:
        unknown = wanted - {_person(p) for p in os.listdir(folder)}
        if unknown:
            raise ValueError(f"Not in LFW ({len(unknown)} names): {sorted(unknown)[:5]}")
    if not files:
        raise ValueError(f"No images left with min_faces_per_person={min_faces_per_person}.")
    order = np.arange(len(files))
    np.random.RandomState(42).shuffle(order)
    files = [files[i] for i in order]
    target_names = np.unique(names)
    target = np.searchsorted(target_names, [names[i] for i in order]).astype(np.int64)

    key = _cache_key("people", {"resize": resize, "color": color}, folder, files)
    arrays = _cached(
        f"people-{key}",
        lambda: {"images": _load_faces([folder / f for f in files], shape)},
        cache,
    )
    return Bunch(images=arrays["images"], target=target, target_names=target_names)


def _read_pairs(path: Path) -> tuple[list[tuple[str, int, str, int]], np.ndarray, np.ndarray]:
    """Parse an LFW pairs file like scikit-learn: (specs, target, folds).

    Each spec is ``(name1, index1, name2, index2)`` with 1-based image indices.
    A two-number header ``n_folds n_per_class`` (pairs.txt) gives the fold of
    each pair: each fold holds ``n_per_class`` matched then mismatched pairs.
    """
    with open(path, "rb") as f:
        lines = [line.decode().strip().split("\t") for line in f]
    specs: list[tuple[str, int, str, int]] = []
    same: list[int] = []
    for i, parts in enumerate(lines):
        if len(parts) == 3:
            specs.append((parts[0], int(parts[1]), parts[0], int(parts[2])))
        elif len(parts) == 4:
            specs.append((parts[0], int(parts[1]), parts[2], int(parts[3])))
        elif len(parts) > 4:
            raise ValueError(f"{path}: invalid line {i + 1}: {parts!r}")
        else:
            continue
        same.append(int(len(parts) == 3))
    target = np.array(same, dtype=np.int64)
    header = lines[0] if lines else []
    if len(header) == 2:
        folds = np.arange(len(specs), dtype=np.int64) // (2 * int(header[1]))
    else:
        folds = np.zeros(len(specs), dtype=np.int64)
    return specs, target, folds


def _pairs_file(subset: str) -> str:
    if subset not in _LFW_PAIRS_FILES:
        raise ValueError(f"subset must be one of {sorted(_LFW_PAIRS_FILES)}, got {subset!r}.")
    return _LFW_PAIRS_FILES[subset]


def lfw_pair_people(
    subset: str = "train",
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
) -> set[str]:
    """Return the names of the people that appear in an LFW pairs file.

    Parameters
    ----------
    subset : {"train", "test", "10_folds"}, default="train"
        ``pairsDevTrain.txt``, ``pairsDevTest.txt`` or ``pairs.txt``.
    data_dir : str or path-like, optional
        Folder searched first for ``lfw_home/`` (see :func:`data_home`).
    download : bool, default=True
        Download the pairs file when no local copy exists.

    Returns
    -------
    set of str
        Person names with spaces, as in ``load_lfw_people().target_names``.

    Examples
    --------
    >>> from dmlkeras.datasets import lfw_pair_people
    >>> train = lfw_pair_people("train")  # doctest: +SKIP
    >>> train.isdisjoint(lfw_pair_people("test"))  # doctest: +SKIP
    True
    """
    rel = _pairs_file(subset)
    specs, _, _ = _read_pairs(_fetch([rel], data_dir, download, False)[rel])
    return {_person(n) for a, _, b, _ in specs for n in (a, b)}


def load_lfw_pairs(
    subset: str = "train",
    resize: float | None = 0.5,
    color: bool = False,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    verify: bool = False,
    cache: bool = True,
) -> Bunch:
    """Load LFW face pairs (verification: same person or not).

    Reproduces ``sklearn.datasets.fetch_lfw_pairs`` (same pairs, order,
    labels and pixels, with its default crop) without writing beside the
    data. Decoded arrays are cached in ``cache_dir()/lfw``.

    Parameters
    ----------
    subset : {"train", "test", "10_folds"}, default="train"
        View 1 training pairs (2,200), View 1 test pairs (1,000), or the
        View 2 evaluation set of 10 folds (6,000).
    resize : float or None, default=0.5
        Scale factor of the 125 x 94 crop (0.5 gives 62 x 47); None keeps it.
    color : bool, default=False
        Keep the RGB channels; otherwise average them to gray.
    data_dir : str or path-like, optional
        Folder searched first for ``lfw_home/`` (see :func:`data_home`).
    download : bool, default=True
        Download missing files (images archive, pairs file).
    verify : bool, default=False
        Check the SHA-256 of the pairs file and the number of images.
    cache : bool, default=True
        Read and write the decoded arrays in :func:`cache_dir`.

    Returns
    -------
    sklearn.utils.Bunch
        ``pairs``: float32 in [0, 1], shape (n, 2, h, w) or (n, 2, h, w, 3);
        ``target``: int64, 1 = same person, 0 = different persons;
        ``target_names``: ``["Different persons", "Same person"]``;
        ``names``: (n, 2) person names (with spaces);
        ``folds``: (n,) fold 0..9 for ``"10_folds"`` (each fold: 300 matched
        then 300 mismatched pairs), zeros otherwise.

    Examples
    --------
    >>> from dmlkeras.datasets import load_lfw_pairs
    >>> test = load_lfw_pairs("test")  # doctest: +SKIP
    >>> test.pairs.shape, int(test.target.sum())  # doctest: +SKIP
    ((1000, 2, 62, 47), 500)
    """
    rel = _pairs_file(subset)
    shape = _face_shape(resize, color)
    paths = _fetch([rel, _LFW_IMAGES], data_dir, download, verify)
    folder = paths[_LFW_IMAGES]
    specs, target, folds = _read_pairs(paths[rel])
    listings: dict[str, list[str]] = {}
    files: list[str] = []
    for a, i, b, j in specs:
        for person, index in ((a, i), (b, j)):
            if person not in listings:
                listings[person] = _list_images(folder / person)
            files.append(f"{person}/{listings[person][index - 1]}")

    key = _cache_key("pairs", {"resize": resize, "color": color}, folder, files)
    arrays = _cached(
        f"pairs-{key}",
        lambda: {
            "pairs": _load_faces([folder / f for f in files], shape).reshape(
                (len(specs), 2, *shape)
            )
        },
        cache,
    )
    names = np.array([(_person(a), _person(b)) for a, _, b, _ in specs], dtype=str).reshape(-1, 2)
    return Bunch(
        pairs=arrays["pairs"],
        target=target,
        target_names=np.array(["Different persons", "Same person"]),
        names=names,
        folds=folds,
    )


# ---------------------------------------------------------------------------
# MovieLens 100K
# ---------------------------------------------------------------------------


def load_movielens_100k(
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    verify: bool = False,
) -> Bunch:
    """Load MovieLens 100K: ratings, movies and users.

    Parameters
    ----------
    data_dir : str or path-like, optional
        Folder searched first for ``ml-100k/`` (see :func:`data_home`).
    download : bool, default=True
        Download ``ml-100k.zip`` from GroupLens when files are missing.
    verify : bool, default=False
        Check the SHA-256 of the local files.

    Returns
    -------
    sklearn.utils.Bunch
        ``ratings``: DataFrame [user_id, item_id, rating, timestamp] (100,000
        rows, int64; timestamp in Unix seconds);
        ``movies``: DataFrame [item_id, title, release_date (datetime64, NaT
        when unknown), imdb_url, then one 0/1 int8 column per genre] (1,682
        rows; named ``movies`` because ``Bunch.items`` is the dict method);
        ``users``: DataFrame [user_id, age, gender, occupation, zip_code] (943 rows);
        ``genres``: list of the 19 genre names, in column order.

    Notes
    -----
    The ml-100k licence forbids redistributing the data: keep it local.

    Examples
    --------
    >>> from dmlkeras.datasets import load_movielens_100k
    >>> ml = load_movielens_100k()  # doctest: +SKIP
    >>> len(ml.ratings), len(ml.users), len(ml.movies)  # doctest: +SKIP
    (100000, 943, 1682)
    """
    rels = ["ml-100k/u.data", "ml-100k/u.item", "ml-100k/u.user", "ml-100k/u.genre"]
    paths = _fetch(rels, data_dir, download, verify)
    ratings = pd.read_csv(
        paths["ml-100k/u.data"],
        sep="\t",
        header=None,
        names=["user_id", "item_id", "rating", "timestamp"],
        dtype="int64",
    )
    genre_table = pd.read_csv(
        paths["ml-100k/u.genre"], sep="|", header=None, names=["genre", "id"], dtype={"genre": str}
    )
    genres = genre_table.sort_values("id")["genre"].tolist()
    movies = pd.read_csv(
        paths["ml-100k/u.item"],
        sep="|",
        header=None,
        names=["item_id", "title", "release_date", "video_release_date", "imdb_url", *genres],
        encoding="latin-1",
        quoting=csv.QUOTE_NONE,
        keep_default_na=False,
        dtype={"title": str, "release_date": str, "video_release_date": str, "imdb_url": str},
    )
    movies = movies.drop(columns="video_release_date")  # empty for every movie
    movies["release_date"] = pd.to_datetime(
        movies["release_date"], format="%d-%b-%Y", errors="coerce"
    )
    movies[genres] = movies[genres].astype(np.int8)
    users = pd.read_csv(
        paths["ml-100k/u.user"],
        sep="|",
        header=None,
        names=["user_id", "age", "gender", "occupation", "zip_code"],
        dtype={"gender": str, "occupation": str, "zip_code": str},
    )
    return Bunch(ratings=ratings, movies=movies, users=users, genres=genres)


# ---------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------


def _check_split(split: str | None, choices: Sequence[str]) -> None:
    if split is not None and split not in choices:
        raise ValueError(f"split must be None or one of {list(choices)}, got {split!r}.")


def load_sts_benchmark(
    split: str | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    verify: bool = False,
) -> pd.DataFrame:
    """Load the STS Benchmark sentence pairs with similarity scores.

    Parameters
    ----------
    split : {"train", "dev", "test"} or None, default=None
        One split (5,749 / 1,500 / 1,379 pairs), or all of them.
    data_dir : str or path-like, optional
        Folder searched first for ``text/stsbenchmark/`` (see :func:`data_home`).
    download : bool, default=True
        Download ``Stsbenchmark.tar.gz`` when files are missing.
    verify : bool, default=False
        Check the SHA-256 of the local files.

    Returns
    -------
    pandas.DataFrame
        Columns [genre, file, year, id, score, sentence1, sentence2]; score
        is a float in [0, 5], the other columns are strings, as in the file.
        With ``split=None`` a last column ``split`` names each row's split.

    Notes
    -----
    The files are read with quoting off (sentences hold unbalanced ``"``).
    The optional licence-note fields some rows have are dropped.

    Examples
    --------
    >>> from dmlkeras.datasets import load_sts_benchmark
    >>> sts = load_sts_benchmark("train")  # doctest: +SKIP
    >>> sts.shape  # doctest: +SKIP
    (5749, 7)
    """
    choices = ["train", "dev", "test"]
    _check_split(split, choices)
    wanted = choices if split is None else [split]
    rels = {s: f"text/stsbenchmark/sts-{s}.csv" for s in wanted}
    paths = _fetch(list(rels.values()), data_dir, download, verify)
    columns = ["genre", "file", "year", "id", "score", "sentence1", "sentence2"]
    frames = []
    for s, rel in rels.items():
        frame = pd.read_csv(
            paths[rel],
            sep="\t",
            header=None,
            names=[*columns, "note1", "note2"],
            quoting=csv.QUOTE_NONE,
            encoding="utf-8",
            keep_default_na=False,
            dtype=str,
        )[columns].astype({"score": float})
        if split is None:
            frame["split"] = s
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def load_sick(
    split: str | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    verify: bool = False,
) -> pd.DataFrame:
    """Load SICK (Sentences Involving Compositional Knowledge), full release.

    Parameters
    ----------
    split : {"train", "trial", "test"} or None, default=None
        Keep the rows of one SemEval-2014 split (4,439 / 495 / 4,906), or all 9,840.
    data_dir : str or path-like, optional
        Folder searched first for ``text/sick/`` (see :func:`data_home`).
    download : bool, default=True
        Download ``SICK.zip`` from Zenodo when the file is missing.
    verify : bool, default=False
        Check the SHA-256 of the local file.

    Returns
    -------
    pandas.DataFrame
        The 12 columns of ``SICK.txt``: pair_ID, sentence_A, sentence_B,
        entailment_label, relatedness_score (1 to 5), entailment_AB,
        entailment_BA, sentence_A_original, sentence_B_original,
        sentence_A_dataset, sentence_B_dataset, SemEval_set.

    Notes
    -----
    Licence CC BY-NC-SA 3.0 (non-commercial).

    Examples
    --------
    >>> from dmlkeras.datasets import load_sick
    >>> load_sick("trial").shape  # doctest: +SKIP
    (495, 12)
    """
    _check_split(split, ["train", "trial", "test"])
    rel = "text/sick/SICK.txt"
    frame = pd.read_csv(
        _fetch([rel], data_dir, download, verify)[rel],
        sep="\t",
        quoting=csv.QUOTE_NONE,
        keep_default_na=False,
    )
    if split is not None:
        frame = frame[frame["SemEval_set"] == split.upper()].reset_index(drop=True)
    return frame


def _read_lines(path: Path) -> list[str]:
    """Lines of a UTF-8 file, split on newlines only (not on other Unicode breaks)."""
    lines = path.read_text(encoding="utf-8").split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


def load_stackoverflow_titles(
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    verify: bool = False,
) -> Bunch:
    """Load 20,000 StackOverflow question titles labelled with one of 20 tags.

    Parameters
    ----------
    data_dir : str or path-like, optional
        Folder searched first for ``text/stackoverflow/`` (see :func:`data_home`).
    download : bool, default=True
        Download the files from GitHub ``jacoxu/StackOverflow`` when missing.
    verify : bool, default=False
        Check the SHA-256 of the local files.

    Returns
    -------
    sklearn.utils.Bunch
        ``titles``: list of 20,000 str;
        ``target``: int64 array of **0-based** labels 0..19 (the file's 1..20 minus 1);
        ``target_names``: the 20 tags, ``target_names[target[i]]`` is title i's tag.

    Examples
    --------
    >>> from dmlkeras.datasets import load_stackoverflow_titles
    >>> so = load_stackoverflow_titles()  # doctest: +SKIP
    >>> len(so.titles), so.target_names[0]  # doctest: +SKIP
    (20000, 'wordpress')
    """
    title_rel = "text/stackoverflow/title_StackOverflow.txt"
    label_rel = "text/stackoverflow/label_StackOverflow.txt"
    paths = _fetch([title_rel, label_rel], data_dir, download, verify)
    titles = _read_lines(paths[title_rel])
    target = np.array([int(v) for v in _read_lines(paths[label_rel])], dtype=np.int64) - 1
    if len(titles) != len(target):
        raise DatasetIntegrityError(
            f"{len(titles)} titles but {len(target)} labels in {paths[title_rel].parent}."
        )
    return Bunch(titles=titles, target=target, target_names=list(_STACKOVERFLOW_TAGS))


def load_ag_news_test(
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    verify: bool = False,
) -> pd.DataFrame:
    """Load the AG News test split (7,600 news, 1,900 per class).

    Parameters
    ----------
    data_dir : str or path-like, optional
        Folder searched first for ``text/ag_news/`` (see :func:`data_home`).
    download : bool, default=True
        Download ``test.csv`` (the copy torchtext uses) when missing.
    verify : bool, default=False
        Check the SHA-256 of the local file.

    Returns
    -------
    pandas.DataFrame
        Columns [label, title, description]; label is **0-based** (0..3),
        ``AG_NEWS_CLASSES[label]`` is its class name. Text is kept as is
        (HTML-entity remnants such as `` #39;`` included).

    Examples
    --------
    >>> from dmlkeras.datasets import AG_NEWS_CLASSES, load_ag_news_test
    >>> news = load_ag_news_test()  # doctest: +SKIP
    >>> news.shape, AG_NEWS_CLASSES[news.label[0]]  # doctest: +SKIP
    ((7600, 3), 'Business')
    """
    rel = "text/ag_news/test.csv"
    frame = pd.read_csv(
        _fetch([rel], data_dir, download, verify)[rel],
        header=None,
        names=["label", "title", "description"],
        keep_default_na=False,
        dtype={"label": "int64", "title": str, "description": str},
    )
    frame["label"] -= 1
    return frame

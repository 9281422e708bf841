"""Labeled Faces in the Wild: face images by person (identification) and the official pairs (verification).

The loaders reproduce scikit-learn's ``fetch_lfw_people`` / ``fetch_lfw_pairs``
(same images, order, labels and pixels, with its default crop) but read the
data folder without writing beside it; decoded arrays are cached in
``cache_dir()/lfw``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch
from tqdm import tqdm

from dmlkeras.datasets._storage import PathLike, Remote, cached_arrays, fetch, register

__all__ = [
    "PAIRS_FILES",
    "PEOPLE_FILES",
    "decode_faces",
    "lfw_pair_people",
    "lfw_people_subset",
    "load_lfw_pairs",
    "load_lfw_people",
    "read_pairs_file",
    "read_people_file",
]

_FIGSHARE = "https://ndownloader.figshare.com/files/"
_IMAGES = "lfw_home/lfw_funneled"
_N_IMAGES = 13233
#: The pairs file of each subset, relative to a data folder.
PAIRS_FILES = {
    "train": "lfw_home/pairsDevTrain.txt",
    "test": "lfw_home/pairsDevTest.txt",
    "10_folds": "lfw_home/pairs.txt",
}
# scikit-learn's default crop of the 250 x 250 LFW images: rows 70:195, columns 78:172.
#: The people file of each subset of View 1's identification split, relative to a data folder.
PEOPLE_FILES = {
    "train": "lfw_home/peopleDevTrain.txt",
    "test": "lfw_home/peopleDevTest.txt",
}
_LFW_SITE = "http://vis-www.cs.umass.edu/lfw/"
_ROWS = (70, 195)
_COLS = (78, 172)
_CACHE_VERSION = 1

# The URLs and the archive checksum are the ones scikit-learn's
# fetch_lfw_people / fetch_lfw_pairs use (sklearn/datasets/_lfw.py).
register(
    files={
        "lfw_home/pairsDevTrain.txt": (
            (56579, "1d454dada7dfeca0e7eab6f65dc4e97a6312d44cf142207be28d688be92aabfa"),
        ),
        "lfw_home/pairsDevTest.txt": (
            (26002, "7cb06600ea8b2814ac26e946201cdb304296262aad67d046a16a7ec85d0ff87c"),
        ),
        "lfw_home/pairs.txt": (
            (155335, "ea42330c62c92989f9d7c03237ed5d591365e89b3e649747777b70e692dc1592"),
        ),
        "lfw_home/peopleDevTrain.txt": (
            (66403, "2e58df13ba4cc143189336e001cc2c195f1dfa5b29a6475c02857be353c2a2fa"),
        ),
        "lfw_home/peopleDevTest.txt": (
            (28334, "c3ed1f90499473401542101a56c14c1d82396bb8218c67a356d7460601047555"),
        ),
    },
    remotes={
        "lfw-peopleDevTrain": Remote(_LFW_SITE + "peopleDevTrain.txt", ("lfw_home/peopleDevTrain.txt",)),
        "lfw-peopleDevTest": Remote(_LFW_SITE + "peopleDevTest.txt", ("lfw_home/peopleDevTest.txt",)),
        "lfw-pairsDevTrain": Remote(_FIGSHARE + "5976012", ("lfw_home/pairsDevTrain.txt",)),
        "lfw-pairsDevTest": Remote(_FIGSHARE + "5976009", ("lfw_home/pairsDevTest.txt",)),
        "lfw-pairs": Remote(_FIGSHARE + "5976006", ("lfw_home/pairs.txt",)),
        "lfw-funneled": Remote(
            _FIGSHARE + "5976015",
            (_IMAGES,),
            archive="tar",
            sha256="b47c8422c8cded889dc5a13418c4bc2abbda121092b3533a83306f90d900100a",
        ),
    },
    folders={_IMAGES: ("*/*.jpg", _N_IMAGES, "LFW images")},
)


def _face_shape(resize: float | None, color: bool) -> tuple[int, ...]:
    h = _ROWS[1] - _ROWS[0]
    w = _COLS[1] - _COLS[0]
    if resize is not None:
        if not resize > 0:
            raise ValueError(f"resize must be a positive float or None, got {resize!r}.")
        h, w = int(resize * h), int(resize * w)
    return (h, w, 3) if color else (h, w)


def decode_faces(paths: Sequence[Path], shape: tuple[int, ...]) -> np.ndarray:
    """Decode LFW JPEGs exactly like scikit-learn's ``_load_imgs`` with its default crop.

    ``shape`` is the output shape of one face, ``(h, w)`` or ``(h, w, 3)``
    (62 x 47 for the loaders' default ``resize=0.5``): the 125 x 94 crop is
    resized to it (PIL's default filter, as scikit-learn does) and averaged
    to gray unless it has 3 channels.

    Parameters
    ----------
    paths : sequence of path
        250 x 250 LFW JPEG files.
    shape : tuple of int

    Returns
    -------
    numpy.ndarray of float32 in [0, 1], shape (len(paths), *shape)

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> path = Path(tempfile.mkdtemp()) / "face.jpg"
    >>> Image.new("RGB", (250, 250), (255, 255, 255)).save(path)
    >>> faces = decode_faces([path], (62, 47))
    >>> faces.shape, float(faces.max())
    ((1, 62, 47), 1.0)
    """
    from PIL import Image

    faces = np.zeros((len(paths), *shape), dtype=np.float32)
    box = (_COLS[0], _ROWS[0], _COLS[1], _ROWS[1])
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
    header = {"kind": kind, "version": _CACHE_VERSION, "folder": str(folder), **params}
    digest.update(json.dumps(header, sort_keys=True).encode())
    for rel in files:
        digest.update(f"{rel}\0{(folder / rel).stat().st_size}\n".encode())
    return digest.hexdigest()[:32]


def _person(name: str) -> str:
    return name.replace("_", " ")


def load_lfw_people(
    min_faces_per_person: int = 0,
    resize: float | None = 0.5,
    color: bool = False,
    people: Iterable[str] | None = None,
    data_dir: PathLike | None = None,
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
    folder = fetch([_IMAGES], data_dir, download, verify)[_IMAGES]
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
    arrays = cached_arrays(
        "lfw",
        f"people-{key}",
        lambda: {"images": decode_faces([folder / f for f in files], shape)},
        cache,
    )
    return Bunch(images=arrays["images"], target=target, target_names=target_names)


def read_pairs_file(path: PathLike) -> tuple[list[tuple[str, int, str, int]], np.ndarray, np.ndarray]:
    r"""Parse an LFW pairs file like scikit-learn: ``(specs, target, folds)``.

    Each spec is ``(name1, index1, name2, index2)`` with 1-based image indices.
    A two-number header ``n_folds n_per_class`` (pairs.txt) gives the fold of
    each pair: each fold holds ``n_per_class`` matched then mismatched pairs.
    Every line is checked: the header, the number of tab-separated fields,
    indices >= 1, and the number of pairs the header announces.

    Parameters
    ----------
    path : path
        A file of :data:`PAIRS_FILES` (``pairsDevTrain.txt``, ...).

    Returns
    -------
    specs : list of (str, int, str, int)
    target : numpy.ndarray of int64
        1 for a matched pair (same person), 0 otherwise.
    folds : numpy.ndarray of int64
        The fold of each pair (zeros without a fold header).

    Raises
    ------
    ValueError
        On a malformed line or a pair count that disagrees with the header,
        naming the file and the line.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "pairs.txt"
    >>> _ = path.write_text("1\nAnn_A\t1\t2\nAnn_A\t1\tBob_B\t3\n")
    >>> specs, target, folds = read_pairs_file(path)
    >>> specs, target.tolist(), folds.tolist()
    ([('Ann_A', 1, 'Ann_A', 2), ('Ann_A', 1, 'Bob_B', 3)], [1, 0], [0, 0])
    """
    specs, target, folds, _ = _parse_pairs_file(path)
    return specs, target, folds


def _positive(text: str) -> int | None:
    return int(text) if text.isdigit() and int(text) >= 1 else None


def _parse_pairs_file(
    path: PathLike,
) -> tuple[list[tuple[str, int, str, int]], np.ndarray, np.ndarray, list[int]]:
    """:func:`read_pairs_file` plus the 1-based line number of each pair; every line is validated.

    The header is ``n_per_class`` or ``n_folds<TAB>n_per_class``; then each
    fold holds ``n_per_class`` matched lines (``name<TAB>i<TAB>j``) followed
    by ``n_per_class`` mismatched lines (``name<TAB>i<TAB>name<TAB>j``),
    image indices >= 1. Anything else (a space for a tab, index 0, a count
    that disagrees with the header) is a ``ValueError`` naming the file and
    the line.
    """
    with open(path, "rb") as f:
        lines = [line.decode().rstrip("\r\n") for line in f]
    if not lines or not lines[0].strip():
        raise ValueError(f"{path}: line 1: expected a header 'n_per_class' or 'n_folds<TAB>n_per_class'; got {lines[:1]!r}.")
    header = [_positive(v) for v in lines[0].strip().split("\t")]
    if len(header) not in (1, 2) or None in header:
        raise ValueError(
            f"{path}: line 1: expected a header 'n_per_class' or 'n_folds<TAB>n_per_class' of positive "
            f"integers; got {lines[0]!r}."
        )
    n_folds, per_class = (1, header[0]) if len(header) == 1 else (header[0], header[1])
    specs: list[tuple[str, int, str, int]] = []
    same: list[int] = []
    line_numbers: list[int] = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = line.split("\t")
        position = len(specs) % (2 * per_class)
        matched = position < per_class
        expected = 3 if matched else 4
        kind = "a matched pair 'name<TAB>i<TAB>j'" if matched else "a mismatched pair 'name<TAB>i<TAB>name<TAB>j'"
        if len(parts) != expected:
            raise ValueError(
                f"{path}: line {number}: expected {kind} ({expected} tab-separated fields, pair "
                f"{position + 1} of {2 * per_class} in its fold per the header {lines[0]!r}); got "
                f"{len(parts)} field(s): {line!r}."
            )
        names = [parts[0]] if matched else [parts[0], parts[2]]
        indices = [parts[1], parts[2]] if matched else [parts[1], parts[3]]
        values = [_positive(v) for v in indices]
        if None in values or not all(names):
            raise ValueError(
                f"{path}: line {number}: image indices must be integers >= 1 (1-based) and names "
                f"non-empty; got {line!r}."
            )
        a, b = (names[0], names[0]) if matched else (names[0], names[1])
        specs.append((a, values[0], b, values[1]))
        same.append(int(matched))
        line_numbers.append(number)
    expected_pairs = n_folds * 2 * per_class
    if len(specs) != expected_pairs:
        raise ValueError(
            f"{path}: the header {lines[0]!r} announces {n_folds} fold(s) of 2 x {per_class} pairs = "
            f"{expected_pairs} pairs, but the file holds {len(specs)}."
        )
    target = np.array(same, dtype=np.int64)
    if len(header) == 2:
        folds = np.arange(len(specs), dtype=np.int64) // (2 * per_class)
    else:
        folds = np.zeros(len(specs), dtype=np.int64)
    return specs, target, folds, line_numbers


def _pairs_file(subset: str) -> str:
    if subset not in PAIRS_FILES:
        raise ValueError(f"subset must be one of {sorted(PAIRS_FILES)}, got {subset!r}.")
    return PAIRS_FILES[subset]


def lfw_pair_people(
    subset: str = "train",
    data_dir: PathLike | None = None,
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
    specs, _, _ = read_pairs_file(fetch([rel], data_dir, download, False)[rel])
    return {_person(n) for a, _, b, _ in specs for n in (a, b)}


def read_people_file(path: PathLike) -> dict[str, int]:
    r"""Parse an LFW people file (``peopleDevTrain.txt``, ``peopleDevTest.txt``): name -> number of images.

    The first line gives the number of people ``N``; each of the next ``N``
    lines is ``Person_Name<TAB>count``. Every line is checked: the header,
    two tab-separated fields, a count >= 1, no name twice, and ``N`` lines.

    Parameters
    ----------
    path : path
        A file of :data:`PEOPLE_FILES`.

    Returns
    -------
    dict of str to int
        Names as in the file (with underscores), in file order.

    Raises
    ------
    ValueError
        On a malformed line, a repeated name or a count of lines that
        disagrees with the header, naming the file and the line.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "peopleDevTest.txt"
    >>> _ = path.write_text("2\nAnn_A\t3\nBob_B\t1\n")
    >>> read_people_file(path)
    {'Ann_A': 3, 'Bob_B': 1}
    """
    with open(path, "rb") as f:
        lines = [line.decode().rstrip("\r\n") for line in f]
    n = _positive(lines[0].strip()) if lines else None
    if n is None:
        raise ValueError(f"{path}: line 1: expected the number of people; got {lines[:1]!r}.")
    body = [(i, line) for i, line in enumerate(lines[1:], start=2) if line.strip()]
    if len(body) != n:
        raise ValueError(f"{path}: the header announces {n} people; the file lists {len(body)}.")
    people: dict[str, int] = {}
    for number, line in body:
        fields = line.split("\t")
        count = _positive(fields[1]) if len(fields) == 2 else None
        if count is None or not fields[0]:
            raise ValueError(f"{path}: line {number}: expected 'Person_Name<TAB>count' with count >= 1; got {line!r}.")
        if fields[0] in people:
            raise ValueError(f"{path}: line {number}: {fields[0]!r} is listed twice.")
        people[fields[0]] = count
    return people


def lfw_people_subset(
    subset: str = "train",
    data_dir: PathLike | None = None,
    download: bool = True,
) -> set[str]:
    """Return the people of View 1's identification split (``peopleDevTrain.txt`` / ``peopleDevTest.txt``).

    LFW's View 1 splits the 5,749 people into 4,038 development-training
    and 1,711 development-test people (disjoint): train on the first,
    test identification or clustering on the second, people never seen in
    training. (The pairs files of :func:`lfw_pair_people` are another,
    smaller split for verification.)

    Parameters
    ----------
    subset : {"train", "test"}, default="train"
        ``peopleDevTrain.txt`` or ``peopleDevTest.txt``.
    data_dir : str or path-like, optional
        Folder searched first for ``lfw_home/`` (see :func:`data_home`).
    download : bool, default=True
        Download the people file (from the LFW site) when no local copy exists.

    Returns
    -------
    set of str
        Person names with spaces, as in ``load_lfw_people().target_names``;
        pass them to ``load_lfw_people(people=...)``.

    Raises
    ------
    ValueError
        On an unknown ``subset`` or a malformed file.

    Examples
    --------
    >>> from dmlkeras.datasets import lfw_people_subset
    >>> train = lfw_people_subset("train")  # doctest: +SKIP
    >>> len(train), len(lfw_people_subset("test")), train.isdisjoint(lfw_people_subset("test"))  # doctest: +SKIP
    (4038, 1711, True)
    """
    if subset not in PEOPLE_FILES:
        raise ValueError(f"subset must be one of {sorted(PEOPLE_FILES)}, got {subset!r}.")
    rel = PEOPLE_FILES[subset]
    return {_person(name) for name in read_people_file(fetch([rel], data_dir, download, False)[rel])}


def load_lfw_pairs(
    subset: str = "train",
    resize: float | None = 0.5,
    color: bool = False,
    data_dir: PathLike | None = None,
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
    paths = fetch([rel, _IMAGES], data_dir, download, verify)
    folder = paths[_IMAGES]
    specs, target, folds, line_numbers = _parse_pairs_file(paths[rel])
    listings: dict[str, list[str]] = {}
    files: list[str] = []
    for (a, i, b, j), number in zip(specs, line_numbers):
        for person, index in ((a, i), (b, j)):
            if person not in listings:
                listings[person] = _list_images(folder / person) if (folder / person).is_dir() else []
            if not 1 <= index <= len(listings[person]):
                raise ValueError(
                    f"{paths[rel]}: line {number}: image {index} of {person!r} does not exist: "
                    f"{folder / person} holds {len(listings[person])} image(s) (indices are 1-based)."
                )
            files.append(f"{person}/{listings[person][index - 1]}")

    key = _cache_key("pairs", {"resize": resize, "color": color}, folder, files)
    arrays = cached_arrays(
        "lfw",
        f"pairs-{key}",
        lambda: {
            "pairs": decode_faces([folder / f for f in files], shape).reshape(
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


"""Tests of dmlkeras.datasets.lfw: LFW people and pairs, against scikit-learn.

Tests on the real files run when ``DMLKERAS_DATA_DIR`` is set (CI sets it to the
shared data folder).
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import fetch_lfw_pairs, fetch_lfw_people
from sklearn.datasets._lfw import _load_imgs

from dmlkeras import datasets
from dmlkeras.datasets import DatasetIntegrityError, _storage
from dmlkeras.datasets import lfw as lfw_module
from tests.datasets_helpers import (  # noqa: F401  (isolated: autouse fixture)
    _sha,
    isolated,
    leftovers,
    real,
    real_cache,
    real_data_only,
    serve_remote,
    server,
    write,
    write_lfw,
)


@pytest.fixture
def lfw(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """(our data folder, a copy for scikit-learn, which writes a joblib cache into it)."""
    write_lfw(isolated / "d", monkeypatch)
    shutil.copytree(isolated / "d", isolated / "sk")
    return isolated / "d", isolated / "sk"


@pytest.mark.parametrize(("resize", "color"), [(0.5, False), (None, True), (0.3, True)])
def test_lfw_people_matches_sklearn(lfw: tuple[Path, Path], resize, color) -> None:
    ours_dir, sk_dir = lfw
    for min_faces in (0, 2):
        ours = datasets.load_lfw_people(min_faces, resize, color, data_dir=ours_dir)
        sk = fetch_lfw_people(
            data_home=sk_dir,
            min_faces_per_person=min_faces,
            resize=resize,
            color=color,
            download_if_missing=False,
        )
        np.testing.assert_array_equal(ours.images, sk.images)
        np.testing.assert_array_equal(ours.target, sk.target)
        np.testing.assert_array_equal(ours.target_names, sk.target_names)
        assert ours.images.dtype == np.float32


@pytest.mark.parametrize("subset", ["train", "test", "10_folds"])
def test_lfw_pairs_matches_sklearn(lfw: tuple[Path, Path], subset: str) -> None:
    ours_dir, sk_dir = lfw
    ours = datasets.load_lfw_pairs(subset, data_dir=ours_dir, verify=False)
    sk = fetch_lfw_pairs(subset=subset, data_home=sk_dir, download_if_missing=False)
    np.testing.assert_array_equal(ours.pairs, sk.pairs)
    np.testing.assert_array_equal(ours.target, sk.target)
    np.testing.assert_array_equal(ours.target_names, sk.target_names)
    assert ours.pairs.shape[1:] == (2, 62, 47)
    assert ours.names.shape == (len(ours.target), 2)
    same = ours.names[:, 0] == ours.names[:, 1]
    np.testing.assert_array_equal(same, ours.target == 1)


def test_lfw_pairs_names_and_folds(lfw: tuple[Path, Path]) -> None:
    folds = datasets.load_lfw_pairs("10_folds", data_dir=lfw[0])
    assert folds.folds.tolist() == [0, 0, 1, 1]
    assert folds.target.tolist() == [1, 0, 1, 0]
    assert folds.names.tolist()[1] == ["Bob Beta", "Dana Delta"]
    train = datasets.load_lfw_pairs("train", data_dir=lfw[0], color=True, resize=None)
    assert train.pairs.shape == (4, 2, 125, 94, 3)
    assert train.folds.tolist() == [0, 0, 0, 0]
    with pytest.raises(ValueError, match="subset"):
        datasets.load_lfw_pairs("dev", data_dir=lfw[0])
    with pytest.raises(ValueError, match="resize"):
        datasets.load_lfw_pairs("train", resize=0, data_dir=lfw[0])


def test_lfw_pair_people_and_people_filter(lfw: tuple[Path, Path]) -> None:
    train_people = datasets.lfw_pair_people("train", data_dir=lfw[0])
    assert train_people == {"Alice Alpha", "Bob Beta", "Carl Gamma", "Dana Delta"}
    assert datasets.lfw_pair_people("test", data_dir=lfw[0]) == {
        "Alice Alpha", "Bob Beta", "Carl Gamma",
    }  # fmt: skip
    subset = datasets.load_lfw_people(people=["Bob Beta", "Dana_Delta"], data_dir=lfw[0])
    assert subset.target_names.tolist() == ["Bob Beta", "Dana Delta"]
    assert np.bincount(subset.target).tolist() == [2, 4]
    everyone = datasets.load_lfw_people(data_dir=lfw[0])
    keep = np.isin(everyone.target_names[everyone.target], ["Bob Beta", "Dana Delta"])
    assert sorted(map(bytes, subset.images)) == sorted(map(bytes, everyone.images[keep]))
    with pytest.raises(ValueError, match="Not in LFW"):
        datasets.load_lfw_people(people=["Nobody Here"], data_dir=lfw[0])
    with pytest.raises(ValueError, match="min_faces_per_person"):
        datasets.load_lfw_people(min_faces_per_person=5, data_dir=lfw[0])


def test_lfw_cache(lfw: tuple[Path, Path], isolated: Path, monkeypatch) -> None:
    first = datasets.load_lfw_pairs("train", data_dir=lfw[0])
    people = datasets.load_lfw_people(data_dir=lfw[0])
    cached = sorted(p.name for p in (isolated / "cache" / "lfw").iterdir())
    assert len(cached) == 2 and all(name.endswith(".npz") for name in cached)

    def no_decoding(*args: object) -> None:
        raise AssertionError("decoded again instead of reading the cache")

    monkeypatch.setattr(lfw_module, "decode_faces", no_decoding)
    np.testing.assert_array_equal(
        datasets.load_lfw_pairs("train", data_dir=lfw[0]).pairs, first.pairs
    )
    np.testing.assert_array_equal(datasets.load_lfw_people(data_dir=lfw[0]).images, people.images)
    with pytest.raises(AssertionError, match="decoded again"):  # other arguments: other key
        datasets.load_lfw_people(resize=0.25, data_dir=lfw[0])


def test_lfw_cache_off_and_unwritable(lfw: tuple[Path, Path], isolated: Path, monkeypatch) -> None:
    datasets.load_lfw_pairs("test", data_dir=lfw[0], cache=False)
    assert not (isolated / "cache" / "lfw").exists()  # (the cache folder holds the verified-checksum memo)
    blocked = isolated / "blocked"
    blocked.write_text("a file where the cache folder should be")
    monkeypatch.setenv("DMLKERAS_CACHE_DIR", str(blocked))
    with pytest.warns(UserWarning, match="Cannot write the cache in .*lfw"):
        pairs = datasets.load_lfw_pairs("test", data_dir=lfw[0])
    assert pairs.pairs.shape == (2, 2, 62, 47)


def test_lfw_verify_counts_images(lfw: tuple[Path, Path]) -> None:
    with pytest.raises(DatasetIntegrityError, match="holds 10 files matching .*, expected the 13233 LFW images"):
        datasets.load_lfw_people(data_dir=lfw[0], verify=True)


@pytest.mark.parametrize("good_hash", [True, False])
def test_download_lfw(
    lfw: tuple[Path, Path], isolated: Path, server, monkeypatch, good_hash
) -> None:
    home = lfw[0] / "lfw_home"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        tf.add(home / "lfw_funneled", arcname="lfw_funneled")
    body = buf.getvalue()
    serve_remote(
        monkeypatch, server, "lfw-funneled", body, sha256=_sha(body) if good_hash else "0" * 64
    )
    for key, name in [("lfw-pairsDevTest", "pairsDevTest.txt"), ("lfw-pairs", "pairs.txt")]:
        serve_remote(monkeypatch, server, key, (home / name).read_bytes())
    target = isolated / "downloaded"
    if not good_hash:
        with pytest.raises(DatasetIntegrityError, match=r"expected sha256 0{64}"):
            datasets.load_lfw_pairs("test", data_dir=target)
        assert not (target / "lfw_home" / "lfw_funneled").exists()
        assert leftovers(target) == []
        return
    got = datasets.load_lfw_pairs("test", data_dir=target, cache=False)
    want = datasets.load_lfw_pairs("test", data_dir=lfw[0], cache=False)
    np.testing.assert_array_equal(got.pairs, want.pairs)
    assert datasets.lfw_pair_people("10_folds", data_dir=target) == {
        "Alice Alpha", "Bob Beta", "Carl Gamma", "Dana Delta",
    }  # fmt: skip
    assert sorted(p.name for p in (target / "lfw_home").iterdir()) == [
        "lfw_funneled", "pairs.txt", "pairsDevTest.txt",
    ]  # fmt: skip
    umask = os.umask(0)
    os.umask(umask)
    mode = (target / "lfw_home" / "lfw_funneled").stat().st_mode
    assert stat.S_IMODE(mode) == 0o777 & ~umask  # not mkdtemp's 0700
    assert leftovers(target) == []


@real_data_only
def test_real_lfw_protocol_files(real: Path) -> None:
    counts = {}
    for subset, rel in lfw_module.PAIRS_FILES.items():
        _storage.fetch([rel], download=False, verify=True)  # sha256 of the pairs file
        specs, target, folds = lfw_module.read_pairs_file(real / rel)
        counts[subset] = (len(specs), int(target.sum()))
    assert counts == {"train": (2200, 1100), "test": (1000, 500), "10_folds": (6000, 3000)}
    _, target, folds = lfw_module.read_pairs_file(real / "lfw_home/pairs.txt")
    assert np.bincount(folds).tolist() == [600] * 10
    expected = np.tile(np.repeat([1, 0], 300), 10)
    np.testing.assert_array_equal(target, expected)
    train, test = datasets.lfw_pair_people("train"), datasets.lfw_pair_people("test")
    assert (len(train), len(test)) == (2132, 963) and train.isdisjoint(test)


@real_data_only
def test_real_lfw_people_listing(real: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """All 13,233 images of 5,749 people, labelled as scikit-learn does (decoding skipped)."""
    monkeypatch.setattr(
        lfw_module, "decode_faces", lambda paths, shape: np.zeros((len(paths), 1), np.float32)
    )
    people = datasets.load_lfw_people(download=False, verify=True, cache=False)
    assert people.images.shape[0] == 13233 and len(people.target_names) == 5749
    names = (real / "lfw_home/lfw-names.txt").read_text().split()
    counts = dict(zip(names[::2], map(int, names[1::2]), strict=True))
    assert people.target_names.tolist() == sorted(n.replace("_", " ") for n in counts)
    got = np.bincount(people.target, minlength=5749)
    assert got.tolist() == [counts[n.replace(" ", "_")] for n in people.target_names]
    many = datasets.load_lfw_people(min_faces_per_person=2, download=False, cache=False)
    assert (many.images.shape[0], len(many.target_names)) == (9164, 1680)


@real_data_only
def test_real_lfw_pairs_test_and_cache(real: Path, real_cache: Path) -> None:
    start = time.perf_counter()
    test = datasets.load_lfw_pairs("test", download=False)
    first = time.perf_counter() - start
    assert test.pairs.shape == (1000, 2, 62, 47) and test.pairs.dtype == np.float32
    assert test.pairs.min() >= 0.0 and test.pairs.max() <= 1.0
    assert int(test.target.sum()) == 500 and test.target[:500].all()
    assert test.names[0].tolist() == ["Abdullah Gul", "Abdullah Gul"]
    start = time.perf_counter()
    again = datasets.load_lfw_pairs("test", download=False)
    assert time.perf_counter() - start < first / 3  # read from the cache
    np.testing.assert_array_equal(again.pairs, test.pairs)
    assert len(list((real_cache / "lfw").glob("pairs-*.npz"))) == 1
    # pixels equal scikit-learn's decoder on real JPEGs (a few pairs; no joblib cache)
    specs, _, _ = lfw_module.read_pairs_file(real / "lfw_home/pairsDevTest.txt")
    folder = real / "lfw_home/lfw_funneled"
    paths = []
    for a, i, b, j in specs[495:505]:
        paths += [folder / a / f"{a}_{i:04d}.jpg", folder / b / f"{b}_{j:04d}.jpg"]
    sk = _load_imgs([str(p) for p in paths], (slice(70, 195), slice(78, 172)), False, 0.5)
    np.testing.assert_array_equal(test.pairs[495:505].reshape(-1, 62, 47), sk)


# ---------------------------------------------------------------- issue 21: what is parsed is validated
def _edit_pairs(root: Path, monkeypatch, name: str, old: str, new: str) -> Path:
    """Edit a pairs file and accept the edited version's checksum, so only the parser can object."""
    path = root / "lfw_home" / name
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    monkeypatch.setitem(_storage.FILES, f"lfw_home/{name}", ((path.stat().st_size, _sha(path.read_bytes())),))
    return path


@pytest.mark.parametrize(
    "name, old, new, message",
    [
        # Index 0 used to select the last image (Python's negative indexing).
        ("pairsDevTest.txt", "Bob_Beta\t1\t2", "Bob_Beta\t0\t2", r"line 2: image indices must be integers >= 1"),
        # A tab turned into a space used to drop the pair silently.
        ("pairsDevTrain.txt", "Dana_Delta\t1\t4", "Dana_Delta\t1 4", r"line 3: expected a matched pair .* got 2 field"),
        ("pairsDevTrain.txt", "Alice_Alpha\t3\tBob_Beta\t1", "Alice_Alpha\t3 Bob_Beta\t1",
         r"line 4: expected a mismatched pair"),
        # A header that disagrees with the lines used to give other folds silently.
        ("pairs.txt", "2\t1\n", "1\t1\n", r"header '1\\t1' announces 1 fold\(s\) of 2 x 1 pairs = 2 pairs, but the file holds 4"),
        ("pairs.txt", "2\t1\n", "2\t2\n", r"line 3: expected a matched pair .* header .2.t2."),
        ("pairsDevTest.txt", "1\n", "x\n", r"line 1: expected a header"),
        ("pairsDevTest.txt", "Bob_Beta\t1\t2", "Bob_Beta\t1\tx", r"line 2: image indices must be integers >= 1"),
    ],
)
def test_malformed_pairs_file_names_the_file_and_line(lfw, monkeypatch, name, old, new, message) -> None:
    path = _edit_pairs(lfw[0], monkeypatch, name, old, new)
    subset = {"pairsDevTrain.txt": "train", "pairsDevTest.txt": "test", "pairs.txt": "10_folds"}[name]
    with pytest.raises(ValueError, match=message) as error:
        datasets.load_lfw_pairs(subset, data_dir=lfw[0])
    assert str(path) in str(error.value)
    with pytest.raises(ValueError, match=message):
        lfw_module.read_pairs_file(path)


def test_pairs_index_beyond_the_persons_images(lfw, monkeypatch) -> None:
    # Bob_Beta has 2 images: index 3 does not exist (used to be an IndexError, or another image).
    path = _edit_pairs(lfw[0], monkeypatch, "pairsDevTest.txt", "Bob_Beta\t1\t2", "Bob_Beta\t1\t3")
    with pytest.raises(ValueError, match=r"line 2: image 3 of 'Bob_Beta' does not exist: .* holds 2 image\(s\)") as error:
        datasets.load_lfw_pairs("test", data_dir=lfw[0])
    assert str(path) in str(error.value)
    _edit_pairs(lfw[0], monkeypatch, "pairsDevTest.txt", "Bob_Beta\t1\t3", "Bobby_Beta\t1\t2")
    with pytest.raises(ValueError, match=r"line 2: image 1 of 'Bobby_Beta' does not exist: .* holds 0 image"):
        datasets.load_lfw_pairs("test", data_dir=lfw[0])


def test_truncated_lfw_cache_is_reported_with_its_path_and_recomputed(lfw, isolated: Path) -> None:
    first = datasets.load_lfw_pairs("test", data_dir=lfw[0])
    (cache,) = (isolated / "cache" / "lfw").iterdir()
    cache.write_bytes(cache.read_bytes()[: cache.stat().st_size // 2])  # a kill while writing, or a full disk
    with pytest.warns(UserWarning, match=f"The cache file {cache} is unreadable .*Recomputing it"):
        again = datasets.load_lfw_pairs("test", data_dir=lfw[0])
    np.testing.assert_array_equal(again.pairs, first.pairs)
    with np.load(cache) as f:  # rewritten whole
        np.testing.assert_array_equal(f["pairs"], first.pairs)

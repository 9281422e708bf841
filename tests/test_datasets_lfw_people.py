"""LFW View 1's identification split: peopleDevTrain.txt / peopleDevTest.txt (lfw_people_subset)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dmlkeras import datasets
from dmlkeras.datasets import DatasetNotFoundError, _storage
from dmlkeras.datasets import lfw as lfw_module
from tests.datasets_helpers import (  # noqa: F401  (isolated: autouse fixture)
    isolated,
    real,
    real_cache,
    real_data_only,
    register,
    write,
    write_lfw,
)

PEOPLE = {
    "peopleDevTrain.txt": "3\nAlice_Alpha\t3\nCarl_Gamma\t1\nDana_Delta\t4\n",
    "peopleDevTest.txt": "1\nBob_Beta\t2\n",
}


@pytest.fixture
def lfw(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = isolated / "d"
    write_lfw(root, monkeypatch)
    for name, text in PEOPLE.items():
        write(root, f"lfw_home/{name}", text.encode())
    register(monkeypatch, root, *(f"lfw_home/{name}" for name in PEOPLE))
    return root


def test_people_subsets_and_loading_them(lfw: Path) -> None:
    train = datasets.lfw_people_subset("train", data_dir=lfw)
    test = datasets.lfw_people_subset("test", data_dir=lfw)
    assert train == {"Alice Alpha", "Carl Gamma", "Dana Delta"}
    assert test == {"Bob Beta"}
    faces = datasets.load_lfw_people(people=train, data_dir=lfw)
    assert faces.target_names.tolist() == ["Alice Alpha", "Carl Gamma", "Dana Delta"]
    assert np.bincount(faces.target).tolist() == [3, 1, 4]  # the counts the file announces
    with pytest.raises(ValueError, match="subset must be one of"):
        datasets.lfw_people_subset("10_folds", data_dir=lfw)


def test_missing_people_file_is_not_found_without_download(isolated: Path, monkeypatch) -> None:
    write_lfw(isolated / "d", monkeypatch)
    with pytest.raises(DatasetNotFoundError, match="peopleDevTest"):
        datasets.lfw_people_subset("test", data_dir=isolated / "d", download=False)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "line 1: expected the number of people"),
        ("two\nAnn_A\t1\n", "line 1: expected the number of people"),
        ("2\nAnn_A\t1\n", "announces 2 people; the file lists 1"),
        ("1\nAnn_A 1\n", "line 2: expected 'Person_Name<TAB>count'"),
        ("1\nAnn_A\t0\n", "line 2: expected 'Person_Name<TAB>count'"),
        ("2\nAnn_A\t1\nAnn_A\t2\n", "line 3: 'Ann_A' is listed twice"),
    ],
)
def test_malformed_people_file_names_the_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "peopleDevTrain.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        lfw_module.read_people_file(path)
    assert str(path) in str(info.value)


@real_data_only
def test_real_people_files(real: Path) -> None:
    """View 1's identification split: 4,038 + 1,711 disjoint people whose counts match the image folders."""
    counts = {}
    for subset, rel in lfw_module.PEOPLE_FILES.items():
        _storage.fetch([rel], download=False, verify=True)  # size and sha256 of the file
        counts[subset] = lfw_module.read_people_file(real / rel)
    assert (len(counts["train"]), len(counts["test"])) == (4038, 1711)
    assert (sum(counts["train"].values()), sum(counts["test"].values())) == (9525, 3708)
    assert set(counts["train"]).isdisjoint(counts["test"])
    folder = real / "lfw_home/lfw_funneled"
    for people in counts.values():
        for name in list(people)[::97]:  # a sample of the folders (listing all 5,749 is slow on CI disks)
            assert len([f for f in (folder / name).iterdir() if f.suffix == ".jpg"]) == people[name], name
    train, test = datasets.lfw_people_subset("train"), datasets.lfw_people_subset("test")
    assert len(train | test) == 5749 and "George W Bush" in train

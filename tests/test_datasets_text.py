"""Tests of dmlkeras.datasets.text: STS Benchmark, SICK, StackOverflow titles, AG News.

Tests on the real files run when ``DMLKERAS_DATA_DIR`` is set (CI sets it to the
shared data folder).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dmlkeras import datasets
from dmlkeras.datasets import DatasetIntegrityError
from tests.datasets_helpers import (  # noqa: F401  (isolated: autouse fixture)
    SICK_HEADER,
    SO_FILES,
    isolated,
    real,
    real_cache,
    real_data_only,
    register,
    write,
    write_ag_news,
    write_sick,
    write_stackoverflow,
    write_sts,
)


def test_load_sts_fixture(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_sts(isolated / "d", monkeypatch)
    train = datasets.load_sts_benchmark("train", data_dir=isolated / "d")
    assert list(train.columns) == [
        "genre", "file", "year", "id", "score", "sentence1", "sentence2",
    ]  # fmt: skip
    assert len(train) == 3  # the unbalanced quote does not merge rows
    assert train["sentence1"].tolist() == ["A plane is taking off.", 'He said "hi.', "NA"]
    assert train["sentence2"][2] == "null"  # not parsed as missing
    assert train["id"][0] == "0001" and train["score"].dtype == np.float64
    every = datasets.load_sts_benchmark(data_dir=isolated / "d")
    assert every["split"].tolist() == ["train"] * 3 + ["dev", "test"]
    with pytest.raises(ValueError, match="split"):
        datasets.load_sts_benchmark("validation", data_dir=isolated / "d")


def test_load_sick_fixture(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_sick(isolated / "d", monkeypatch)
    sick = datasets.load_sick(data_dir=isolated / "d", verify=True)
    assert list(sick.columns) == SICK_HEADER.split("\t")
    assert sick.shape == (3, 12)
    assert sick["SemEval_set"].tolist() == ["TRAIN", "TRIAL", "TEST"]  # no stray "\r"
    assert sick["sentence_B"][0] == 'A "child" plays'
    trial = datasets.load_sick("trial", data_dir=isolated / "d")
    assert trial["pair_ID"].tolist() == [2]
    with pytest.raises(ValueError, match="split"):
        datasets.load_sick("dev", data_dir=isolated / "d")


def test_load_stackoverflow_fixture(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_stackoverflow(isolated / "d", monkeypatch)
    so = datasets.load_stackoverflow_titles(isolated / "d")
    assert so.titles[1] == "Oracle\u2028PL/SQL \x0c cursor"  # split on "\n" only
    assert len(so.titles) == 3
    np.testing.assert_array_equal(so.target, [0, 1, 18])
    assert [so.target_names[t] for t in so.target] == ["wordpress", "oracle", "haskell"]
    assert len(so.target_names) == 20


def test_stackoverflow_length_mismatch(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_stackoverflow(isolated / "d", monkeypatch)
    write(isolated / "d", SO_FILES[1], b"1\n2\n")
    register(monkeypatch, isolated / "d", SO_FILES[1])
    with pytest.raises(DatasetIntegrityError, match="3 titles but 2 labels"):
        datasets.load_stackoverflow_titles(isolated / "d")


def test_load_ag_news_fixture(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_ag_news(isolated / "d", monkeypatch)
    news = datasets.load_ag_news_test(isolated / "d")
    assert list(news.columns) == ["label", "title", "description"]
    assert news["label"].tolist() == [2, 3, 1, 0]
    assert [datasets.AG_NEWS_CLASSES[i] for i in news["label"]][:2] == ["Business", "Sci/Tech"]
    assert news["description"][0] == "Unions say they are 'disappointed', after talks."
    assert news["description"][2:].tolist() == ["NA", "null"]


@real_data_only
def test_real_sts(real: Path) -> None:
    sts = datasets.load_sts_benchmark(download=False, verify=True)
    assert sts["split"].value_counts().to_dict() == {"train": 5749, "dev": 1500, "test": 1379}
    train = datasets.load_sts_benchmark("train", download=False)
    assert train["genre"].value_counts().to_dict() == {
        "main-news": 3299, "main-captions": 2000, "main-forum": 450,
    }  # fmt: skip
    assert train["score"].between(0, 5).all() and (train["sentence1"] != "").all()


@real_data_only
def test_real_sick(real: Path) -> None:
    sick = datasets.load_sick(download=False, verify=True)
    assert sick.shape == (9840, 12)
    assert sick["SemEval_set"].value_counts().to_dict() == {
        "TEST": 4906, "TRAIN": 4439, "TRIAL": 495,
    }  # fmt: skip
    assert sick["entailment_label"].value_counts().to_dict() == {
        "NEUTRAL": 5595, "ENTAILMENT": 2821, "CONTRADICTION": 1424,
    }  # fmt: skip
    assert len(datasets.load_sick("train", download=False)) == 4439


@real_data_only
def test_real_stackoverflow_and_ag_news(real: Path) -> None:
    so = datasets.load_stackoverflow_titles(download=False, verify=True)
    assert len(so.titles) == 20000
    assert np.bincount(so.target).tolist() == [1000] * 20
    assert so.target_names[so.target[0]] == "linq"  # "... from a LINQ query resultset ?"
    news = datasets.load_ag_news_test(download=False, verify=True)
    assert news.shape == (7600, 3)
    assert news["label"].value_counts().sort_index().tolist() == [1900] * 4


# ---------------------------------------------------------------- issue 21: what is parsed is validated
@pytest.mark.parametrize(
    "labels, message",
    [
        (b"1\n97\n19\n", r"line 2: label must be an integer in 1\.\.20; got 97"),
        (b"0\n2\n19\n", r"line 1: label must be an integer in 1\.\.20; got 0"),
        (b"1\n2\nx\n", r"line 3: expected an integer label 1\.\.20; got 'x'"),
    ],
)
def test_stackoverflow_labels_out_of_range_name_the_file_and_line(isolated: Path, monkeypatch, labels, message) -> None:
    root = isolated / "d"
    write_stackoverflow(root, monkeypatch)
    path = write(root, SO_FILES[1], labels)
    register(monkeypatch, root, SO_FILES[1])
    with pytest.raises(ValueError, match=message) as error:
        datasets.load_stackoverflow_titles(root)
    assert str(path) in str(error.value)


def test_ag_news_label_out_of_range_names_the_file_and_line(isolated: Path, monkeypatch) -> None:
    root = isolated / "d"
    write_ag_news(root, monkeypatch)
    path = root / "text/ag_news/test.csv"
    path.write_bytes(path.read_bytes().replace(b'"2","Sports', b'"7","Sports'))
    register(monkeypatch, root, "text/ag_news/test.csv")
    with pytest.raises(ValueError, match=r"test\.csv: line 3: label must be an integer in 1\.\.4; got 7"):
        datasets.load_ag_news_test(root)

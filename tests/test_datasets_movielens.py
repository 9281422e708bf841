"""Tests of dmlkeras.datasets.movielens: MovieLens 100K.

Tests on the real files run when ``DMLKERAS_DATA_DIR`` is set (CI sets it to the
shared data folder).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dmlkeras import datasets
from tests.datasets_helpers import (  # noqa: F401  (isolated: autouse fixture)
    GENRES,
    isolated,
    real,
    real_cache,
    real_data_only,
    write_ml100k,
)


def test_load_movielens_fixture(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_ml100k(isolated / "d", monkeypatch)
    ml = datasets.load_movielens_100k(isolated / "d", verify=True)
    assert list(ml.ratings.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert ml.ratings["rating"].tolist() == [5, 3, 4]
    assert ml.genres == GENRES
    movies = ml.movies
    assert list(movies.columns[:4]) == ["item_id", "title", "release_date", "imdb_url"]
    assert list(movies.columns[4:]) == GENRES
    assert movies["title"].tolist() == ["Toy Story (1995)", 'Café "Noir" (1996)']  # latin-1
    assert str(movies["release_date"][0].date()) == "1995-01-01"
    assert movies["release_date"].isna().tolist() == [False, True]
    assert movies.loc[0, ["Animation", "Comedy", "Drama"]].tolist() == [1, 1, 0]
    assert ml.users["zip_code"].tolist() == ["85711", "T8H1N"]
    assert list(ml.users.columns) == ["user_id", "age", "gender", "occupation", "zip_code"]


@real_data_only
def test_real_movielens(real: Path) -> None:
    ml = datasets.load_movielens_100k(download=False, verify=True)
    assert len(ml.ratings) == 100000
    assert ml.ratings["user_id"].nunique() == 943 and ml.ratings["item_id"].nunique() == 1682
    assert (len(ml.users), len(ml.movies), len(ml.genres)) == (943, 1682, 19)
    counts = ml.ratings["rating"].value_counts().sort_index().tolist()
    assert counts == [6110, 11370, 27145, 34174, 21201]
    assert ml.movies["release_date"].isna().sum() == 1
    assert not ml.movies["title"].str.contains("\ufffd").any()


# ---------------------------------------------------------------- issue 21: what is parsed is validated
@pytest.mark.parametrize(
    "old, new, message",
    [
        (b"2\t1\t3\t876893171", b"2\t1\t9\t876893171", r"u\.data: line 2: rating must be an integer in 1\.\.5; got 9"),
        (b"2\t1\t3\t876893171", b"2\t1\t0\t876893171", r"u\.data: line 2: rating must be an integer in 1\.\.5; got 0"),
        (b"1\t2\t4\t878542960", b"1\t7\t4\t878542960", r"u\.data: line 3: item_id 7 is not in u\.item"),
        (b"2\t1\t3\t876893171", b"5\t1\t3\t876893171", r"u\.data: line 2: user_id 5 is not in u\.user"),
    ],
)
def test_movielens_values_out_of_range_name_the_file_and_line(isolated: Path, monkeypatch, old, new, message) -> None:
    from tests.datasets_helpers import register

    root = isolated / "d"
    write_ml100k(root, monkeypatch)
    path = root / "ml-100k/u.data"
    path.write_bytes(path.read_bytes().replace(old, new))
    register(monkeypatch, root, "ml-100k/u.data")  # a checksum-valid file: only the parser can object
    with pytest.raises(ValueError, match=message) as error:
        datasets.load_movielens_100k(root)
    assert str(path) in str(error.value)

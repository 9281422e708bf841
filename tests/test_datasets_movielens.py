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

"""MovieLens 100K (GroupLens): ratings, movies with genres, users."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.utils import Bunch

from dmlkeras.datasets._storage import PathLike, Remote, check_parsed_range, fetch, register

__all__ = ["load_movielens_100k"]

register(
    files={
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
    },
    remotes={
        "ml-100k": Remote(
            "https://files.grouplens.org/datasets/movielens/ml-100k.zip",
            ("ml-100k/u.data", "ml-100k/u.item", "ml-100k/u.user", "ml-100k/u.genre"),
            archive="zip",
        ),
    },
)


def load_movielens_100k(
    data_dir: PathLike | None = None,
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
    paths = fetch(rels, data_dir, download, verify)
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
    _check_ratings(ratings, movies, users, paths["ml-100k/u.data"])
    return Bunch(ratings=ratings, movies=movies, users=users, genres=genres)


def _check_ratings(ratings: pd.DataFrame, movies: pd.DataFrame, users: pd.DataFrame, path: Path) -> None:
    """Ratings in 1..5, every user and item id one of the ``u.user`` / ``u.item`` tables."""
    check_parsed_range(ratings["rating"].to_numpy(), 1, 5, path, "rating")
    for column, table, source in (("user_id", users, "u.user"), ("item_id", movies, "u.item")):
        known = ratings[column].isin(table[column]).to_numpy()
        if not known.all():
            k = int(np.flatnonzero(~known)[0])
            raise ValueError(
                f"{path}: line {k + 1}: {column} {ratings[column].iloc[k]} is not in {source}."
            )

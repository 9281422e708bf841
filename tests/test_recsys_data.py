"""Tests of dmlkeras.recsys.data: the leave-one-out split and the negative sampler.

Backend-agnostic (run with KERAS_BACKEND=tensorflow and KERAS_BACKEND=jax).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from dmlkeras import recsys
from tests.recsys_helpers import random_ratings


def test_split_holds_out_exactly_the_latest_item_per_user():
    ratings = random_ratings()
    split = recsys.leave_one_out_split(ratings)
    assert split.num_users == ratings.user_id.nunique()
    assert split.num_items == ratings.item_id.nunique()
    assert np.all(split.test_items >= 0)
    # Every pair lands in exactly one of train / test.
    train_pairs = {(split.user_ids[u], split.item_ids[i]) for u, i in split.train}
    test_pairs = {(split.user_ids[u], split.item_ids[i]) for u, i in enumerate(split.test_items)}
    assert len(train_pairs) == len(split.train)
    assert not train_pairs & test_pairs
    assert train_pairs | test_pairs == set(zip(ratings.user_id, ratings.item_id))
    for u, raw_user in enumerate(split.user_ids):
        rows = ratings[ratings.user_id == raw_user]
        latest = rows[rows.timestamp == rows.timestamp.max()]
        # Ties on the timestamp: the later row wins.
        assert split.item_ids[split.test_items[u]] == latest.item_id.iloc[-1]
        assert split.test_timestamps[u] == rows.timestamp.max()
        assert (split.train[:, 0] == u).sum() == len(rows) - 1


def test_split_implicit_feedback_options():
    ratings = pd.DataFrame(
        {
            "user_id": [1, 1, 1, 2, 3, 3],
            "item_id": [5, 6, 5, 5, 6, 7],
            "rating": [1, 4, 2, 5, 5, 2],
            "timestamp": [1, 2, 3, 1, 1, 2],
        }
    )
    split = recsys.leave_one_out_split(ratings)
    # User 1 rated item 5 twice: one implicit interaction, latest at t=3 -> held out.
    assert split.item_ids[split.test_items[0]] == 5
    assert split.train[split.train[:, 0] == 0, 1].tolist() == [1]  # item 6
    # A user with a single interaction keeps it for training and has no test item.
    assert split.test_items[1] == -1
    assert split.test_users.tolist() == [0, 2]
    high = recsys.leave_one_out_split(ratings, min_rating=4)
    assert high.num_users == 3 and high.num_items == 2
    frame = split.train_frame()
    assert list(frame.columns) == ["user_id", "item_id", "timestamp"]
    assert len(frame) == len(split.train)
    matrix = split.train_matrix()
    assert sp.issparse(matrix) and matrix.shape == (3, 3) and matrix.sum() == len(split.train)


def test_split_validation_nests_and_rejects_bad_input():
    split = recsys.leave_one_out_split(random_ratings())
    val = recsys.leave_one_out_split(split.train_frame())
    assert len(val.train) == len(split.train) - val.test_users.size
    with pytest.raises(ValueError, match="column"):
        recsys.leave_one_out_split(pd.DataFrame({"user_id": [1], "item_id": [2]}))
    with pytest.raises(ValueError, match="DataFrame"):
        recsys.leave_one_out_split(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="No interaction"):
        recsys.leave_one_out_split(random_ratings(), min_rating=99)


# ---------------------------------------------------------------------------
# InteractionTriplets
# ---------------------------------------------------------------------------
def test_sampler_never_yields_a_known_positive():
    rng = np.random.default_rng(1)
    num_users, num_items = 15, 12
    pairs = np.array(
        [(u, i) for u in range(num_users) for i in range(num_items) if rng.random() < 0.7 or i == u % num_items]
    )
    positives = {tuple(p) for p in pairs}
    ds = recsys.InteractionTriplets(pairs, num_items, num_negatives=7, batch_size=16, seed=3)
    for _ in range(3):
        seen_rows = []
        for b in range(len(ds)):
            (x,) = ds[b]
            assert x["items"].shape[1] == 8 and x["items"].dtype == np.int32
            for user, row in zip(x["user"], x["items"]):
                assert (user, row[0]) in positives
                for negative in row[1:]:
                    assert (user, negative) not in positives
                    assert 0 <= negative < num_items
                seen_rows.append((user, row[0]))
        # Every interaction exactly once per epoch.
        assert sorted(seen_rows) == sorted(map(tuple, pairs))
        ds.on_epoch_end()


def test_sampler_is_a_function_of_seed_epoch_index():
    pairs = np.array([(u, i) for u in range(10) for i in range(0, 30, 3)])
    a = recsys.InteractionTriplets(pairs, 30, num_negatives=4, batch_size=8, seed=5)
    b = recsys.InteractionTriplets(pairs, 30, num_negatives=4, batch_size=8, seed=5)
    last = a[len(a) - 1][0]["items"]
    for index in reversed(range(len(b))):  # other order
        b[index]
    np.testing.assert_array_equal(b[len(b) - 1][0]["items"], last)
    np.testing.assert_array_equal(b[-1][0]["items"], last)
    b.on_epoch_end()
    assert not np.array_equal(b[len(b) - 1][0]["items"], last)
    c = recsys.InteractionTriplets(pairs, 30, num_negatives=4, batch_size=8, seed=6)
    assert not np.array_equal(c[len(c) - 1][0]["items"], last)


def test_sampler_rejects_bad_input():
    with pytest.raises(ValueError, match="every item"):
        recsys.InteractionTriplets([[0, 0], [0, 1]], num_items=2)
    with pytest.raises(ValueError, match="out of range"):
        recsys.InteractionTriplets([[0, 5]], num_items=3)
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        recsys.InteractionTriplets(np.zeros((3, 3), int), num_items=3)
    with pytest.raises(ValueError, match="num_negatives"):
        recsys.InteractionTriplets([[0, 0]], num_items=3, num_negatives=0)
    with pytest.raises(ValueError, match="seed"):
        recsys.InteractionTriplets([[0, 0]], num_items=3, seed=-1)
    # seed=None draws one seed, once (as dmlkeras.data does): the dataset stays a function of its batches
    drawn = recsys.InteractionTriplets([[0, 0], [1, 1]], num_items=3, batch_size=1, seed=None)
    assert isinstance(drawn.seed, int)
    np.testing.assert_array_equal(drawn[0][0]["items"], drawn[0][0]["items"])
    with pytest.raises(IndexError):
        recsys.InteractionTriplets([[0, 0]], num_items=3)[1]


def test_recsys_is_built_on_the_epoch_seeded_dataset():
    from dmlkeras.data import EpochSeededDataset

    assert issubclass(recsys.InteractionTriplets, EpochSeededDataset)

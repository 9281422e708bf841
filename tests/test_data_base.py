"""Tests of dmlkeras.data.base (EpochSeededDataset) and the public API of dmlkeras.data."""

from __future__ import annotations

import numpy as np
import pytest

import dmlkeras.data as data
from dmlkeras.data import (
    EpochSeededDataset,
)


def test_public_api_documented():
    for name in data.__all__:
        obj = getattr(data, name)
        doc = obj.__doc__ or ""
        assert "Examples" in doc and ">>>" in doc, name
        assert "Parameters" in doc, name


class Shuffled(EpochSeededDataset):
    def __len__(self):
        return 3

    def build_plan(self, rng):
        return rng.permutation(6).reshape(3, 2)

    def __getitem__(self, index):
        return self.plan()[self.check_index(index)], self.rng(9, self.epoch, index).integers(100)


def test_epoch_seeded_dataset_pickles_without_its_plan_and_lock():
    import pickle

    ds = Shuffled(seed=4)
    ds.epoch = 5
    first = ds[1]
    copy = pickle.loads(pickle.dumps(ds))
    assert copy._plan is None and copy.epoch == 5
    np.testing.assert_array_equal(copy[1][0], first[0])
    assert copy[1][1] == first[1]
    assert isinstance(Shuffled(seed=None).seed, int)  # None draws a seed once
    with pytest.raises(IndexError, match="out of range for 3 batches"):
        ds[3]

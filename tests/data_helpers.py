"""Label layouts (hypothesis strategies) and toy data shared by the tests of dmlkeras.data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st

HYP = settings(max_examples=25, deadline=None)
REPO = Path(__file__).resolve().parents[1]


@st.composite
def label_layouts(draw, min_classes=2, max_classes=7, min_size=1, max_size=6):
    """Random labels: arbitrary (non-contiguous, maybe negative) class ids of
    random sizes, in random order."""
    sizes = draw(
        st.lists(
            st.integers(min_size, max_size), min_size=min_classes, max_size=max_classes
        )
    )
    ids = draw(
        st.lists(
            st.integers(-50, 1000),
            min_size=len(sizes),
            max_size=len(sizes),
            unique=True,
        )
    )
    y = np.repeat(np.array(ids), sizes)
    perm = np.random.default_rng(draw(st.integers(0, 2**16))).permutation(len(y))
    return y[perm]


def counts_over(values, classes):
    return np.array([(values == c).sum() for c in classes])


def blobs(n_classes=4, per_class=12, dim=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), per_class)
    x = (rng.normal(size=(len(y), dim)) + y[:, None]).astype("float32")
    return x, y

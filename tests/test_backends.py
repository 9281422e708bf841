"""Backend-specific behaviour: semi-hard mining equals a loop reference on every backend; clear errors off TensorFlow.

``dmlkeras.mining`` uses ``keras.ops`` only; its slot loop has a traced path (JAX,
TensorFlow) and an eager one that gathers each slot's columns under autograd
(torch, ``mining._eager_slot_loop``). On torch, NumPy inputs must become tensors before ``stop_gradient`` and
``ops.scatter`` loops in Python, so the miners use vectorised scatter-updates;
the public :func:`~dmlkeras.mining.semihard_negative` and
:class:`~dmlkeras.mining.SemiHardMiner` are checked here against a loop-based
NumPy reference, ties included, value and gradient.
"""

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dmlkeras.mining import SemiHardMiner, semihard_negative
from dmlkeras.models import build_siamese_model, build_text_encoder
from tests.backend_utils import to_numpy, value_and_grad

labels_strategy = st.lists(st.integers(0, 4), min_size=1, max_size=14)
# Eager JAX compiles every op for every new shape: fewer examples there.
EXAMPLES = 10 if keras.backend.backend() == "jax" else 40


def _distances(n: int, seed: int, ties: bool) -> np.ndarray:
    """A non-negative (n, n) matrix; with ``ties`` its values repeat (rounded to 0.25)."""
    d = np.random.default_rng(seed).uniform(0.0, 3.0, size=(n, n)).astype("float32")
    return np.round(d * 4) / 4 if ties else d


def _reference_columns(d: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The column whose distance ``semihard_negative`` returns, per entry (loops, NumPy)."""
    n = len(labels)
    chosen = np.tile(np.arange(n), (n, 1))
    for a in range(n):
        negatives = [k for k in range(n) if labels[k] != labels[a]]
        for p in range(n):
            if p == a or labels[p] != labels[a]:
                continue
            if not negatives:
                chosen[a, p] = n - 1
                continue
            farther = [k for k in negatives if d[a, k] > d[a, p]]
            if farther:  # the closest, the first column among equals
                chosen[a, p] = min(farther, key=lambda k: (d[a, k], k))
            else:  # the farthest, the first column among equals
                chosen[a, p] = min(negatives, key=lambda k: (-d[a, k], k))
    return chosen


@settings(max_examples=EXAMPLES, deadline=None)
@given(labels=labels_strategy, seed=st.integers(0, 1000), ties=st.booleans())
def test_semihard_negative_and_miner_match_the_loop_reference_with_ties(labels, seed, ties):
    labels = np.array(labels)
    n = len(labels)
    d = _distances(n, seed, ties)  # diagonal not 0: off-pair entries must keep their own distance
    weights = np.random.default_rng(seed + 1).random((n, n)).astype("float32")
    chosen = _reference_columns(d, labels)
    rows = np.arange(n)[:, None]
    expected_grad = np.zeros((n, n))
    np.add.at(expected_grad, (np.broadcast_to(rows, (n, n)), chosen), weights)

    values, valid = map(to_numpy, semihard_negative(d, labels))
    np.testing.assert_array_equal(values, d[rows, chosen])
    positives = (labels[:, None] == labels[None, :]) & ~np.eye(n, dtype=bool)
    has_negative = (labels[:, None] != labels[None, :]).any(axis=1, keepdims=True)
    np.testing.assert_array_equal(valid, positives & has_negative)
    _, grad = value_and_grad(
        lambda x: keras.ops.sum(keras.ops.multiply(semihard_negative(x * 1, labels)[0], weights)), d
    )
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-6, atol=1e-6)

    # The miner picks the same negatives; its negative mask marks exactly those columns.
    mined = SemiHardMiner()(d, labels)
    table = to_numpy(mined.triplet_negative)
    mined_positives = positives & has_negative
    np.testing.assert_array_equal(table[mined_positives], chosen[mined_positives])
    expected_negatives = np.zeros((n, n), dtype=bool)
    expected_negatives[np.nonzero(mined_positives)[0], chosen[mined_positives]] = True
    np.testing.assert_array_equal(to_numpy(mined.negatives), expected_negatives)


@pytest.mark.skipif(keras.backend.backend() == "tensorflow", reason="string towers work on TensorFlow")
def test_string_tower_raises_a_clear_error_off_tensorflow():
    texts = ["a small cat", "a big dog", "the cat sat", "dogs bark"]
    vectorizer, encoder = build_text_encoder(vocabulary_size=50, sequence_length=8, embedding_dim=8, texts=texts)
    text_model = keras.Sequential([keras.Input(shape=(), dtype="string"), vectorizer, encoder])
    with pytest.raises(ValueError, match=f"only the TensorFlow backend.*KERAS_BACKEND is '{keras.backend.backend()}'"):
        build_siamese_model(text_model)
    # The encoder on token ids runs on this backend.
    siamese = build_siamese_model(encoder)
    token_ids = keras.ops.convert_to_numpy(vectorizer(np.array(texts)))
    assert siamese.predict([token_ids, token_ids[::-1]], verbose=0).shape == (len(texts),)

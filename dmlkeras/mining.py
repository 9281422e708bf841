"""Label relations and in-batch miners over a query x reference layout, in ``keras.ops`` only.

Every in-batch loss and diagnostic metric takes its pairs and triplets from
here, so "positive", "negative", "hardest" and "semi-hard" mean one thing.

**Query x reference.** A batch of ``n`` *queries* (the anchors) is compared
with ``m`` *reference* rows: the batch itself (``m = n``, the default), a
memory of past embeddings, or another device's batch. Every mask is
``(n, m)``, and "self" is explicit: :class:`Relation` knows, for each query,
which reference row *is* that query (the diagonal when the reference is the
batch itself), or that none is. A positive pair ``(a, j)`` relates query
``a`` to reference row ``j != self(a)``; a negative pair has no relation.

**Labels.** :func:`label_relation` is the one place where ``y_true`` is
read: class ids ``(n,)`` or ``(n, 1)`` (positive when equal), multi-hot
``(n, L)`` (positive when two rows share a label), or a precomputed
``(n, m)`` relation (``label_format="relation"``: a 2-D ``y_true`` is
multi-hot unless told so). Class ids are compared exactly in their integer
dtype; float ids are exact only below 2**24 (Keras casts ``y_true`` to
float32), so larger float ids are refused (``ValueError``, or a NaN loss
under ``jit`` where values cannot be checked).

**Memory and speed.** Memory is O(n m): no ``(n, m, m)`` tensor is built,
batch-all included. The triplet miners loop over positive *slots*: in slot
``k`` every query takes its k-th positive, and one masked reduction over
``(n, m)`` tensors serves all queries at once. A P x K batch needs K - 1
slots, so semi-hard and batch-all mining cost O(n m K) time; selection runs
with gradients stopped and the chosen distances are gathered afterwards (with
a custom gradient, an O(n) scatter-add per slot), so gradients are exact.
Every output has a fixed shape, which XLA needs. On torch, which runs the
loops eagerly in Python, each slot's columns are gathered directly under
autograd instead (:func:`_eager_slot_loop`, :func:`semihard_triplets`): same
triplets, values and gradients, fewer ``(n, m)`` passes.

**Miners** (:class:`SemiHardMiner`, :class:`HardMiner`,
:class:`AllTripletsMiner`, :class:`MultiSimilarityMiner`,
:class:`PairMarginMiner`, :class:`DistanceWeightedMiner`) are objects that
the in-batch losses take as ``miner=``. pytorch-metric-learning's miners
return index tuples ``(a, p, n)`` whose length depends on the data; under
XLA (``jax.jit``, ``tf.function(jit_compile=True)``) every shape must be
static, so ours return :class:`Mined`: fixed-shape ``(n, m)`` masks of the
chosen positive and negative pairs, optional ``(n, m)`` negative weights and,
for miners that pick one negative per positive pair, an ``(n, m)`` table of
that negative's column. Any miner feeds any loss: a pair loss uses the
masks; a triplet loss uses the table, or every (positive, negative) triplet
of the masks.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import keras
import numpy as np
from keras import ops

from dmlkeras._validation import as_float32, check_float, concrete_value

Tensor = Any

LABEL_FORMATS = ("auto", "ids", "multi_hot", "relation")
MINING = ("semi-hard", "hard", "all")
#: Float class ids must stay below this: float32 (what Keras casts ``y_true`` to) rounds 2**24 + 1 to 2**24.
MAX_FLOAT_ID = 2**24


def _is_float(x: Tensor) -> bool:
    return "float" in keras.backend.standardize_dtype(x.dtype)


def _check_ids(ids: Tensor, name: str) -> Tensor | None:
    """Refuse float ids of 2**24 and more; return a scalar "ids are exact" flag while traced (else ``None``)."""
    if not _is_float(ids):
        return None
    value = concrete_value(ids)
    if value is None:
        return ops.all(ops.abs(ids) < MAX_FLOAT_ID)
    if value.size and not np.all(np.abs(value) < MAX_FLOAT_ID):
        raise ValueError(
            f"{name} holds float class ids of 2**24 = {MAX_FLOAT_ID} or more, which float32 cannot tell apart "
            "(Keras casts y_true to float32): pass integer labels (int32 / int64) or smaller ids."
        )
    return None


class Relation:
    """Which reference rows are positives and negatives of each query: ``(n, m)`` masks.

    Built by :func:`label_relation`; the losses and miners read it. ``self_index[a]`` is the
    reference row that *is* query ``a`` (never its own positive), ``-1`` where none is;
    ``self_index`` is ``None`` when the reference is the batch itself (the diagonal).

    Attributes
    ----------
    positives, negatives : bool tensors of shape (n, m)
    ids, ref_ids : class-id tensors (n,) and (m,), or ``None`` for multi-hot labels and relations
    labels_ok : scalar bool tensor or ``None``
        False when traced float ids exceed 2**24 (the losses then return NaN).
    """

    def __init__(self, positives, negatives, ids=None, ref_ids=None, self_index=None, labels_ok=None):
        self.positives = positives
        self.negatives = negatives
        self.ids = ids
        self.ref_ids = ref_ids
        self.self_index = self_index
        self.labels_ok = labels_ok
        self._slots = None

    @property
    def is_square(self) -> bool:
        """Whether the reference is the query batch itself (self = the diagonal)."""
        return self.self_index is None

    def positive_slots(self):
        """``(slots, slot)``: the slot tables of the positives (see :func:`_id_slots`), built once."""
        if self._slots is None:
            if self.ids is not None:
                self._slots = _id_slots(self.ids, self.ref_ids, self.self_index, self.positives)
            else:
                self._slots = _mask_slots(self.positives)
        return self._slots


def label_relation(
    labels: Tensor,
    ref_labels: Tensor | None = None,
    self_index: Tensor | None = None,
    label_format: str = "auto",
    reference_size: int | None = None,
) -> Relation:
    """Resolve ``y_true`` (and the reference's labels) into a :class:`Relation`.

    Parameters
    ----------
    labels : tensor
        ``(n,)`` or ``(n, 1)`` class ids, ``(n, L)`` multi-hot labels (0/1 or bool), or, with
        ``label_format="relation"``, a precomputed ``(n, m)`` relation (true = positive).
    ref_labels : tensor, optional
        The reference rows' labels, in the same format as ``labels`` (not with relations).
        ``None``: the reference is the query batch itself (self = the diagonal).
    self_index : int tensor of shape (n,), optional
        With a separate reference: the reference row that is each query (``-1``: none). By
        default no query is in the reference.
    label_format : {"auto", "ids", "multi_hot", "relation"}, default "auto"
        ``"auto"``: 1-D or ``(n, 1)`` is ids, any other 2-D is multi-hot. A relation must be
        named: an ``(n, n)`` multi-hot matrix and a relation cannot be told apart by shape.
    reference_size : int, optional
        ``m`` for a relation whose reference is not the batch (``labels`` is then ``(n, m)``).

    Raises
    ------
    ValueError
        On an unknown format, a shape that does not fit it, mismatched sizes, or float
        class ids above 2**24.

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> r = label_relation(np.array([[1, 0], [1, 1], [0, 1]]))  # multi-hot: share a label
    >>> keras.ops.convert_to_numpy(r.positives)
    array([[False,  True, False],
           [ True, False,  True],
           [False,  True, False]])
    >>> r = label_relation(np.array([0, 1]), ref_labels=np.array([1, 0, 0]), self_index=np.array([1, -1]))
    >>> keras.ops.convert_to_numpy(r.positives)  # query 0 is reference row 1: not its own positive
    array([[False, False,  True],
           [ True, False, False]])
    """
    if label_format not in LABEL_FORMATS:
        raise ValueError(f"label_format must be one of {LABEL_FORMATS}; got {label_format!r}.")
    labels = ops.convert_to_tensor(labels)
    square = ref_labels is None and reference_size is None
    if label_format == "relation":
        if ref_labels is not None:
            raise ValueError("A precomputed relation (label_format='relation') takes no ref_labels.")
        if len(labels.shape) != 2:
            raise ValueError(f"A relation must have shape (n, m); got shape {tuple(labels.shape)}.")
        same = ops.cast(labels, "bool")
        n, m = labels.shape
        if square and n is not None and m is not None and n != m:
            raise ValueError(
                f"A relation without a reference must be square (n, n); got shape {tuple(labels.shape)}."
            )
        ids = ref_ids = None
        labels_ok = None
    else:
        rank = len(labels.shape)
        if label_format == "auto":
            label_format = "ids" if rank == 1 or (rank == 2 and labels.shape[-1] == 1) else "multi_hot"
        ref = labels if ref_labels is None else ops.convert_to_tensor(ref_labels)
        if label_format == "ids":
            labels, ref = (_id_vector(x, name) for x, name in ((labels, "labels"), (ref, "ref_labels")))
            flags = [f for f in (_check_ids(labels, "labels"), None if ref_labels is None else _check_ids(ref, "ref_labels")) if f is not None]
            labels_ok = None if not flags else (flags[0] if len(flags) == 1 else ops.logical_and(*flags))
            same = ops.equal(ops.expand_dims(labels, 1), ops.expand_dims(ref, 0))
            ids, ref_ids = labels, ref
        else:
            for x, name in ((labels, "labels"), (ref, "ref_labels")):
                if len(x.shape) != 2:
                    raise ValueError(f"multi-hot {name} must have shape (n, num_labels); got shape {tuple(x.shape)}.")
            if labels.shape[-1] is not None and ref.shape[-1] is not None and labels.shape[-1] != ref.shape[-1]:
                raise ValueError(
                    f"labels and ref_labels must have the same number of labels; got {labels.shape[-1]} and {ref.shape[-1]}."
                )
            overlap = ops.matmul(ops.cast(labels, "float32"), ops.transpose(ops.cast(ref, "float32")))
            same = overlap > 0.5
            ids = ref_ids = labels_ok = None
    n, m = ops.shape(same)[0], ops.shape(same)[1]
    if square:
        is_self = ops.equal(ops.expand_dims(ops.arange(n, dtype="int32"), 1), ops.expand_dims(ops.arange(m, dtype="int32"), 0))
        self_index = None
    else:
        if self_index is None:
            self_index = -ops.ones((n,), dtype="int32")
        self_index = ops.reshape(ops.cast(ops.convert_to_tensor(self_index), "int32"), (-1,))
        is_self = ops.equal(ops.expand_dims(self_index, 1), ops.expand_dims(ops.arange(m, dtype="int32"), 0))
    positives = ops.logical_and(same, ops.logical_not(is_self))
    negatives = ops.logical_and(ops.logical_not(same), ops.logical_not(is_self))
    return Relation(positives, negatives, ids, ref_ids, self_index, labels_ok)


def _id_vector(x: Tensor, name: str) -> Tensor:
    if len(x.shape) == 2 and x.shape[-1] == 1:
        x = ops.reshape(x, (-1,))
    if len(x.shape) != 1:
        raise ValueError(f"{name} must be class ids of shape (n,) or (n, 1); got shape {tuple(x.shape)}.")
    return x


def _as_relation(labels: Tensor | Relation) -> Relation:
    return labels if isinstance(labels, Relation) else label_relation(labels)


def same_label_mask(labels: Tensor, other_labels: Tensor | None = None) -> Tensor:
    """Boolean ``(n, m)`` mask: ``labels[i] == other_labels[j]`` (self pairs included).

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> keras.ops.convert_to_numpy(same_label_mask(np.array([0, 0, 1])))
    array([[ True,  True, False],
           [ True,  True, False],
           [False, False,  True]])
    """
    labels = ops.reshape(ops.convert_to_tensor(labels), (-1,))
    other = labels if other_labels is None else ops.reshape(ops.convert_to_tensor(other_labels), (-1,))
    return ops.equal(ops.expand_dims(labels, 1), ops.expand_dims(other, 0))


def positive_mask(labels: Tensor | Relation) -> Tensor:
    """Boolean ``(n, m)`` mask of positive pairs: related, not the query itself.

    ``labels`` is anything :func:`label_relation` reads, or a :class:`Relation`.

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> keras.ops.convert_to_numpy(positive_mask(np.array([0, 0, 1])))
    array([[False,  True, False],
           [ True, False, False],
           [False, False, False]])
    """
    return _as_relation(labels).positives


def negative_mask(labels: Tensor | Relation, other_labels: Tensor | None = None) -> Tensor:
    """Boolean ``(n, m)`` mask of negative pairs: different labels.

    With ``other_labels``: class ids ``labels[i] != other_labels[j]``.

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> keras.ops.convert_to_numpy(negative_mask(np.array([0, 0, 1])))
    array([[False, False,  True],
           [False, False,  True],
           [ True,  True, False]])
    """
    if other_labels is not None:
        return ops.logical_not(same_label_mask(labels, other_labels))
    return _as_relation(labels).negatives


def hardest_positive(distances: Tensor, labels: Tensor | Relation) -> tuple[Tensor, Tensor]:
    """Per query, the distance to its farthest positive.

    Parameters
    ----------
    distances : tensor of shape (n, m)
        Non-negative query x reference distances.
    labels : labels (see :func:`label_relation`) or a :class:`Relation`

    Returns
    -------
    values : tensor of shape (n,)
        Hardest positive distance (0 where the query has no positive).
    valid : bool tensor of shape (n,)
        Whether the query has a positive.

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> d = np.array([[0., 1., 3.], [1., 0., 2.], [3., 2., 0.]], "float32")
    >>> v, ok = hardest_positive(d, np.array([0, 0, 1]))
    >>> keras.ops.convert_to_numpy(v), keras.ops.convert_to_numpy(ok)
    (array([1., 1., 0.], dtype=float32), array([ True,  True, False]))
    """
    mask = _as_relation(labels).positives
    values = ops.max(ops.where(mask, distances, ops.zeros_like(distances)), axis=1)
    return values, ops.any(mask, axis=1)


def hardest_negative(distances: Tensor, labels: Tensor | Relation) -> tuple[Tensor, Tensor]:
    """Per query, the distance to its closest negative.

    Returns
    -------
    values : tensor of shape (n,)
        Hardest negative distance (the row maximum where there is no negative).
    valid : bool tensor of shape (n,)
        Whether the query has a negative.

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> d = np.array([[0., 1., 3.], [1., 0., 2.], [3., 2., 0.]], "float32")
    >>> v, ok = hardest_negative(d, np.array([0, 0, 1]))
    >>> keras.ops.convert_to_numpy(v)
    array([3., 2., 2.], dtype=float32)
    """
    mask = _as_relation(labels).negatives
    filler = ops.stop_gradient(ops.max(distances, axis=1, keepdims=True))
    values = ops.min(ops.where(mask, distances, filler), axis=1)
    return values, ops.any(mask, axis=1)


def _id_slots(ids: Tensor, ref_ids: Tensor, self_index: Tensor | None, positives: Tensor):
    """Tables to find the k-th positive of every query in O(n) per slot (class ids).

    Returns ``(slots, slot)``: the number of slots (``max_a |positives(a)|``,
    ``K - 1`` in a P x K batch) and a function ``slot(k) -> (index (n, 2)
    int32, valid (n,) bool)``: row ``a`` of ``index`` is ``(a, j)`` for the
    k-th positive ``j`` of query ``a`` (in column order; against a separate reference, in the order of a sort by class), or a column that is
    not a positive of ``a`` when ``a`` has fewer positives (``valid`` is then
    False), so that per-slot updates are O(n) scatters to distinct places.
    Built with a few ``(n, m)`` row sums and a scatter: no ``(n, m)``
    cumulative sum or sort, which are slow on XLA CPU.
    """
    if self_index is None and _eager_slot_loop():
        return _sorted_id_slots(ids)
    if self_index is None:  # the reference is the batch: self is the diagonal
        same = same_label_mask(ids)
        index = ops.arange(ops.shape(ids)[0], dtype="int32")
        earlier = ops.less(ops.expand_dims(index, 0), ops.expand_dims(index, 1))  # [a, j]: j comes before a
        # occurrence[a]: same-class samples before a; count[a]: size of a's class;
        # start[a]: samples of smaller classes, so members[start[a] + i] is the
        # i-th sample (in index order) of a's class.
        occurrence = ops.sum(ops.cast(ops.logical_and(same, earlier), "int32"), axis=1)
        count = ops.sum(ops.cast(same, "int32"), axis=1)
        start = ops.sum(ops.cast(ops.less(ops.expand_dims(ids, 0), ops.expand_dims(ids, 1)), "int32"), axis=1)
        # A permutation, so a scatter-update (vectorised on every backend; ops.scatter loops in Python on torch).
        members = ops.scatter_update(ops.zeros_like(index), ops.expand_dims(start + occurrence, 1), index)
        return _square_slots(members, start, occurrence, count)

    # A separate reference: group its rows by class with one 1-D sort (O(m log m), no (m, m)
    # table, so that a block of queries against a large reference stays O(n m)).
    m = ops.shape(ref_ids)[0]
    members = ops.cast(ops.argsort(ref_ids), "int32")  # reference rows grouped by class
    sorted_ids = ops.take(ref_ids, members)
    position = ops.scatter_update(
        ops.zeros((m,), dtype="int32"), ops.expand_dims(members, 1), ops.arange(m, dtype="int32")
    )
    ref_occurrence = position - ops.cast(ops.searchsorted(sorted_ids, ref_ids, side="left"), "int32")
    same = same_label_mask(ids, ref_ids)
    count = ops.sum(ops.cast(same, "int32"), axis=1)  # reference rows of the query's class, self included
    start = ops.cast(ops.searchsorted(sorted_ids, ops.cast(ids, sorted_ids.dtype), side="left"), "int32")
    safe_self = ops.clip(self_index, 0, m - 1)
    has_self = ops.logical_and(self_index >= 0, ops.take_along_axis(same, ops.expand_dims(safe_self, 1), axis=1)[:, 0])
    self_occurrence = ops.where(has_self, ops.take(ref_occurrence, safe_self), m)
    query_index = ops.arange(ops.shape(ids)[0], dtype="int32")
    fallback = ops.minimum(_first_column(ops.logical_not(positives)), m - 1)
    tables = (members, start, self_occurrence, count, query_index, fallback)
    return ops.max(count - ops.cast(has_self, "int32")), functools.partial(_reference_id_slot, tables)


# The slot functions take their tables as an argument (``functools.partial``) so that
# ``_take_chosen`` can hand the tables to its custom gradient explicitly: a custom
# gradient that closes over traced values fails under ``jax.checkpoint``.
def _square_id_slot(tables, k):
    members, start, occurrence, count, index = tables
    member = k + ops.cast(k >= occurrence, "int32")  # skip the anchor itself
    valid = member < count
    column = ops.where(valid, ops.take(members, start + ops.minimum(member, count - 1)), index)
    return ops.stack([index, column], axis=1), valid


def _reference_id_slot(tables, k):
    members, start, self_occurrence, count, query_index, fallback = tables
    member = k + ops.cast(k >= self_occurrence, "int32")  # skip the query itself
    valid = member < count
    column = ops.where(valid, ops.take(members, start + ops.clip(member, 0, ops.maximum(count - 1, 0))), fallback)
    return ops.stack([query_index, column], axis=1), valid


def _mask_slot(tables, k):
    order, count, query_index = tables
    column = ops.take(order, k, axis=1)  # past a row's positives: a column that is not one
    return ops.stack([query_index, column], axis=1), k < count


def _sorted_id_slots(ids: Tensor):
    """The square-batch tables of :func:`_id_slots` from one stable sort of the ``n`` ids.

    ``members`` is the stable order of the ids, and ``start``, ``count`` and ``occurrence``
    come from binary searches in the sorted ids: O(n log n), no ``(n, n)`` pass (on torch
    each of those is a separate eager kernel). The same tables, the same slots.
    """
    index = ops.arange(ops.shape(ids)[0], dtype="int32")
    members = ops.cast(ops.argsort(ids), "int32")  # stable on torch: index order within a class
    ordered = ops.take(ids, members)
    start = ops.cast(ops.searchsorted(ordered, ids, side="left"), "int32")
    count = ops.cast(ops.searchsorted(ordered, ids, side="right"), "int32") - start
    position = ops.scatter_update(ops.zeros_like(index), ops.expand_dims(members, 1), index)
    return _square_slots(members, start, position - start, count)


def _square_slots(members: Tensor, start: Tensor, occurrence: Tensor, count: Tensor):
    """``(slots, slot)`` of a square batch from its class tables (see :func:`_id_slots`)."""
    index = ops.arange(ops.shape(members)[0], dtype="int32")
    return ops.max(count) - 1, functools.partial(_square_id_slot, (members, start, occurrence, count, index))


def _mask_slots(positives: Tensor):
    """The slot tables of :func:`_id_slots` for any positive mask (multi-hot labels, relations).

    One ``(n, m)`` sort puts every row's positive columns first, in column order.
    """
    m = ops.shape(positives)[1]
    columns = ops.expand_dims(ops.arange(m, dtype="int32"), 0)
    order = ops.cast(ops.argsort(ops.where(positives, columns, columns + m), axis=1), "int32")
    count = ops.sum(ops.cast(positives, "int32"), axis=1)
    query_index = ops.arange(ops.shape(positives)[0], dtype="int32")
    return ops.max(count), functools.partial(_mask_slot, (order, count, query_index))


def _eager_slot_loop() -> bool:
    """Whether the slot loops run as plain Python loops under autograd (the torch backend).

    On JAX and TensorFlow ``fori_loop`` with a data-dependent trip count is traced into a
    while loop, which reverse-mode autodiff cannot differentiate: there a loop only
    *selects* (gradients stopped) and carries ``(n, m)`` tables, and the chosen values are
    gathered afterwards (:func:`_take_chosen`). Torch runs ``fori_loop`` in Python, eagerly,
    where each ``(n, m)`` op is a separate kernel call: there every slot's ``(n,)`` columns
    are collected and gathered once, differentiably, and the ``(n, m)`` tables are skipped.
    Both paths give the same values and gradients (``tests/test_mining.py`` runs both).
    """
    return keras.backend.backend() == "torch"


def _over_positive_slots(distances: Tensor, positive_slots, body, init):
    """Run ``body`` once per positive *slot*: the k-th positive of every anchor.

    In slot ``k`` every anchor looks at its k-th positive (in column order),
    so the loop runs ``max_a |positives(a)|`` times (``K - 1`` in a P x K
    batch) over ``(n, n)`` tensors: O(n^2 K) time, O(n^2) memory. ``body``
    gets ``(slot_index (n, 2), slot_valid (n,) bool, slot_distance (n, 1),
    carry)``; ``positive_slots`` is what :func:`_positive_slots` returns.
    Selection only: the distances are taken with their gradient stopped, and
    callers gather differentiable values afterwards.
    """
    distances = ops.stop_gradient(distances)
    slots, slot = positive_slots

    def step(k, carry):
        slot_index, slot_valid = slot(k)
        slot_distance = ops.take_along_axis(distances, slot_index[:, 1:], axis=1)
        return body(slot_index, slot_valid, slot_distance, carry)

    return ops.fori_loop(0, slots, step, init)


def _take_chosen(distances: Tensor, chosen: Tensor, positive_slots, positives: Tensor) -> Tensor:
    """``take_along_axis(distances, chosen, axis=1)`` for a per-slot choice.

    ``chosen[a, p]`` is a column for every positive pair ``(a, p)`` (the
    ``positives`` mask) and ``p`` itself elsewhere; ``positive_slots`` is
    what :func:`_positive_slots` returns. The gradient is exact; it is
    accumulated slot by slot with an O(n) scatter-add each, instead of the
    ``(n, n)`` scatter-add that is the gradient of a gather (slow on XLA CPU).
    """
    slots, slot = positive_slots
    slot_function, tables = slot.func, slot.args[0]

    # Everything the gradient reads is an argument (no gradient): see _square_id_slot.
    @ops.custom_gradient
    def take(d, chosen, positives, slots, *tables):
        slot = functools.partial(slot_function, tables)

        def gradient(*args, upstream=None):
            if upstream is None:
                (upstream,) = args

            def step(k, accumulated):
                slot_index, slot_valid = slot(k)
                weight = ops.take_along_axis(upstream, slot_index[:, 1:], axis=1)[:, 0]
                target = ops.take_along_axis(chosen, slot_index[:, 1:], axis=1)  # (n, 1)
                weight = ops.where(slot_valid, weight, ops.zeros_like(weight))
                # One place per row: an O(n) scatter-add, no (n, n) pass.
                return ops.scatter_update(
                    accumulated, ops.concatenate([slot_index[:, :1], target], axis=1), weight, reduction="add"
                )

            own = ops.where(positives, ops.zeros_like(upstream), upstream)
            return (ops.fori_loop(0, slots, step, own), *([None] * (3 + len(tables))))

        return ops.take_along_axis(d, chosen, axis=1), gradient

    return take(distances, chosen, positives, slots, *tables)


def _first_column(condition: Tensor) -> Tensor:
    """Per row, the first column where ``condition`` holds (``m`` where none does).

    A min-reduction over column indices: much faster than ``argmin`` on XLA
    CPU, and faster in float32 (exact below 2**24 columns) than in int32.
    """
    width = ops.shape(condition)[1]
    columns = ops.expand_dims(ops.arange(width, dtype="float32"), 0)
    none = ops.cast(width, "float32")
    return ops.cast(ops.min(ops.where(condition, columns, none), axis=1), "int32")


def _extreme_column(values: Tensor, mask: Tensor, largest: bool) -> Tensor:
    """Per row, the first column holding the masked minimum (or maximum) of ``values``."""
    filler = float("-inf") if largest else float("inf")
    masked = ops.where(mask, values, filler)
    best = (ops.max if largest else ops.min)(masked, axis=1, keepdims=True)
    return _first_column(ops.logical_and(mask, ops.equal(masked, best)))


def _semihard_columns(stopped: Tensor, relation: Relation) -> Tensor:
    """Per positive pair, the column of its semi-hard negative (own column elsewhere); selection only."""
    negatives = relation.negatives
    farthest = _extreme_column(stopped, negatives, largest=True)
    columns = ops.shape(stopped)[1]

    def choose(slot_index, slot_valid, slot_distance, chosen):
        farther = ops.logical_and(negatives, stopped > slot_distance)
        closest_farther = _extreme_column(stopped, farther, largest=False)  # `columns` where none
        column = ops.where(closest_farther < columns, closest_farther, farthest)
        column = ops.where(slot_valid, column, slot_index[:, 1])  # no slot: keep that column's own
        return ops.scatter_update(chosen, slot_index, column)

    # Entries that are not positive pairs keep their own column (values there
    # are the distances themselves); positive pairs get their negative's.
    own_column = ops.broadcast_to(ops.expand_dims(ops.arange(columns, dtype="int32"), 0), ops.shape(stopped))
    chosen = _over_positive_slots(stopped, relation.positive_slots(), choose, own_column)
    # Rows without a negative point one past the end: clip them (they are not valid).
    return ops.minimum(chosen, columns - 1)


def semihard_negative(distances: Tensor, labels: Tensor | Relation) -> tuple[Tensor, Tensor]:
    """Semi-hard negative distance for every query-positive pair (FaceNet).

    For the pair ``(a, p)``: the closest negative of ``a`` that is *farther*
    than ``p`` (``d(a, n) > d(a, p)``); when there is none, the farthest
    negative of ``a``. This is the rule of tensorflow-addons'
    ``TripletSemiHardLoss``.

    Parameters
    ----------
    distances : tensor of shape (n, m)
    labels : labels (see :func:`label_relation`) or a :class:`Relation`

    Returns
    -------
    values : tensor of shape (n, m)
        ``values[a, p]`` is the chosen negative distance for the pair ``(a, p)``
        (meaningful where ``valid``). Gradients flow into ``distances``.
    valid : bool tensor of shape (n, m)
        Positive pairs whose query has at least one negative.

    Notes
    -----
    One masked minimum per positive slot (see :mod:`dmlkeras.mining`):
    O(n m K) time for K samples per class, O(n m) memory.

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> d = np.array([[0., 1., 0.5, 2.], [1., 0., 3., 4.], [0.5, 3., 0., 1.], [2., 4., 1., 0.]], "float32")
    >>> v, ok = semihard_negative(d, np.array([0, 0, 1, 1]))
    >>> float(keras.ops.convert_to_numpy(v)[0, 1])  # d(0,1)=1: negatives 0.5, 2 -> 2
    2.0
    """
    distances = ops.convert_to_tensor(distances)  # torch's stop_gradient rejects NumPy arrays
    relation = _as_relation(labels)
    chosen = _semihard_columns(ops.stop_gradient(distances), relation)
    values = _take_chosen(distances, chosen, relation.positive_slots(), relation.positives)
    valid = ops.logical_and(relation.positives, ops.any(relation.negatives, axis=1, keepdims=True))
    return values, valid


def semihard_triplets(distances: Tensor, labels: Tensor | Relation) -> tuple[Tensor, Tensor, Tensor]:
    """The semi-hard triplets of :func:`semihard_negative`, one per query-positive pair, ready to reduce.

    Parameters
    ----------
    distances : tensor of shape (n, m)
        Any distance (negative values allowed, e.g. a negated similarity).
    labels : labels (see :func:`label_relation`) or a :class:`Relation`

    Returns
    -------
    positive, negative : tensors of shape (n, t)
        ``d(a, p)`` and ``d(a, n)`` of the query's candidate triplets (gradients flow
        into ``distances``).
    valid : bool tensor of shape (n, t)
        Which candidates are triplets (a positive pair whose query has a negative).

    Notes
    -----
    Reduce over axis 1: the layout of the ``t`` candidates depends on the backend. On
    JAX and TensorFlow ``t = m`` (entry ``[a, p]`` is the pair ``(a, p)``, as
    :func:`mined_triplets`); on torch ``t`` is the number of positive slots (entry
    ``[a, k]`` is the query's k-th positive), which spares the eager backend the
    ``(n, m)`` tables. The triplets, their values and gradients are the same.

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> d = np.array([[0., 1., 0.5, 2.], [1., 0., 3., 4.], [0.5, 3., 0., 1.], [2., 4., 1., 0.]], "float32")
    >>> positive, negative, valid = semihard_triplets(d, np.array([0, 0, 1, 1]))
    >>> p, n, v = (keras.ops.convert_to_numpy(t) for t in (positive, negative, valid))
    >>> sorted(zip(p[v].tolist(), n[v].tolist()))  # (d_ap, d_an) of the four triplets
    [(1.0, 2.0), (1.0, 2.0), (1.0, 3.0), (1.0, 3.0)]
    """
    distances = ops.convert_to_tensor(distances)
    relation = _as_relation(labels)
    if not _eager_slot_loop():
        negative, valid = semihard_negative(distances, relation)
        return distances, negative, valid
    stopped = ops.stop_gradient(distances)
    negatives = relation.negatives
    negative_distances = ops.where(negatives, stopped, float("inf"))
    has_negative = ops.any(negatives, axis=1)
    slots, slot = relation.positive_slots()
    columns, closest_columns, found_columns, valid = [], [], [], []
    for k in range(int(slots)):
        slot_index, slot_valid = slot(k)
        slot_distance = ops.take_along_axis(stopped, slot_index[:, 1:], axis=1)
        # max(d, -inf) = d, max(d, inf) = inf, with -+inf = (d_ap - d) * inf where d_ap != d (a
        # difference of floats is 0 only when they are equal) and inf where 0 * inf gave NaN: a select
        # without torch's where, which is ~10x slower than arithmetic on CPU when its mask is random
        # (as this comparison is), nor a comparison and a cast (each ~3x slower than a subtraction),
        # nor torch's sign (~3x slower than the product).
        inf = float("inf")
        excluded = ops.nan_to_num((slot_distance - negative_distances) * inf, nan=inf, posinf=inf, neginf=-inf)
        farther = ops.maximum(negative_distances, excluded)
        # torch's argmin / argmax return the first column among equals, as _extreme_column does.
        closest = ops.cast(ops.argmin(farther, axis=1), "int32")
        columns.append(slot_index[:, 1])
        closest_columns.append(closest)
        found_columns.append(ops.take_along_axis(farther, ops.expand_dims(closest, 1), axis=1)[:, 0] < float("inf"))
        valid.append(ops.logical_and(slot_valid, has_negative))
    if not columns:  # no query has a positive
        empty = distances[:, :0]  # (n, 0), still part of the graph
        return empty, empty, ops.cast(empty, "bool")
    negative_columns = closest_columns
    found = ops.convert_to_numpy(ops.all(ops.stack(found_columns), axis=0))
    if not found.all():
        # Some pair has no farther negative: it takes the farthest, searched in the rows of those
        # pairs only (the others are not read).
        rows = ops.convert_to_tensor(np.flatnonzero(~found).astype("int32"))
        far = ops.where(ops.take(negatives, rows, axis=0), ops.take(stopped, rows, axis=0), float("-inf"))
        farthest = ops.scatter_update(
            ops.zeros((ops.shape(stopped)[0],), "int32"),
            ops.expand_dims(rows, 1),
            ops.cast(ops.argmax(far, axis=1), "int32"),
        )
        negative_columns = [ops.where(f, c, farthest) for f, c in zip(found_columns, closest_columns)]
    slot_count = len(columns)
    chosen = ops.take_along_axis(distances, ops.stack(columns + negative_columns, axis=1), axis=1)
    return chosen[:, :slot_count], chosen[:, slot_count:], ops.stack(valid, axis=1)


def mined_triplets(distances: Tensor, labels: Tensor | Relation, mining: str) -> tuple[Tensor, Tensor, Tensor]:
    """The query-positive and query-negative distances of the mined triplets.

    Parameters
    ----------
    distances : tensor of shape (n, m)
    labels : labels (see :func:`label_relation`) or a :class:`Relation`
    mining : {"hard", "semi-hard"}
        ``"hard"``: one triplet per query, its hardest positive and hardest
        negative (:func:`hardest_positive`, :func:`hardest_negative`); the
        results have shape ``(n,)``. ``"semi-hard"``: one triplet per
        query-positive pair with its :func:`semihard_negative`; shape
        ``(n, m)``.

    Returns
    -------
    positive, negative : tensors
        ``d(a, p)`` and ``d(a, n)`` of every triplet (gradients flow into
        ``distances``).
    valid : bool tensor
        Which entries are triplets: the query has a positive and a negative.

    Raises
    ------
    ValueError
        On another ``mining`` (batch-all has no single triplet per query or
        pair: see :func:`active_triplet_counts`).

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> d = np.array([[0., 1., 0.5, 2.], [1., 0., 3., 4.], [0.5, 3., 0., 1.], [2., 4., 1., 0.]], "float32")
    >>> positive, negative, valid = mined_triplets(d, np.array([0, 0, 1, 1]), mining="hard")
    >>> keras.ops.convert_to_numpy(positive - negative)
    array([ 0.5, -2. ,  0.5, -1. ], dtype=float32)
    """
    if mining == "hard":
        relation = _as_relation(labels)
        positive, has_positive = hardest_positive(distances, relation)
        negative, has_negative = hardest_negative(distances, relation)
        return positive, negative, ops.logical_and(has_positive, has_negative)
    if mining == "semi-hard":
        negative, valid = semihard_negative(distances, labels)
        return distances, negative, valid
    raise ValueError(f"mining must be 'hard' or 'semi-hard' to mine one triplet per anchor or pair; got {mining!r}.")


def active_triplet_counts(
    distances: Tensor,
    labels: Tensor | Relation,
    margin: float,
    positives: Tensor | None = None,
    negative_weights: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Count the active triplets (``d_ap - d_an + margin > 0``) per pair.

    The batch-all triplet loss sums ``d_ap + margin - d_an`` over the active
    triplets; with these counts that sum is
    ``sum(per_positive * (d + margin)) - sum(per_negative * d)``: every
    triplet, values and gradients exact, in O(n m) memory.

    Parameters
    ----------
    distances : tensor of shape (n, m)
    labels : labels (see :func:`label_relation`) or a :class:`Relation`
    margin : float
    positives : bool tensor of shape (n, m), optional
        Only triplets whose positive pair is in this subset of the positives (a miner's).
    negative_weights : float tensor of shape (n, m), optional
        Weight of each negative pair (a miner's mask or weights; default: the negatives).
        Counts are then weighted counts.

    Returns
    -------
    per_positive : float32 tensor of shape (n, m)
        ``[a, p]``: (weighted) number of negatives ``n`` making ``(a, p, n)`` active.
    per_negative : float32 tensor of shape (n, m)
        ``[a, n]``: (weighted) number of positives ``p`` making ``(a, p, n)`` active.

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> d = np.array([[0., 1., 0.5, 2.], [1., 0., 3., 4.], [0.5, 3., 0., 1.], [2., 4., 1., 0.]], "float32")
    >>> per_p, per_n = active_triplet_counts(d, np.array([0, 0, 1, 1]), margin=0.5)
    >>> keras.ops.convert_to_numpy(per_p)[0], keras.ops.convert_to_numpy(per_n)[0]
    (array([0., 1., 0., 0.], dtype=float32), array([0., 0., 1., 0.], dtype=float32))
    """
    relation = _as_relation(labels)
    stopped = ops.stop_gradient(ops.convert_to_tensor(distances))
    eager = _eager_slot_loop()
    if negative_weights is None:
        weights = None if eager else ops.cast(relation.negatives, stopped.dtype)
    else:
        weights = ops.stop_gradient(ops.cast(ops.convert_to_tensor(negative_weights), stopped.dtype))
    # Eager, unweighted: +inf off the negatives puts the mask into the distances (threshold - inf
    # = -inf counts 0), which spares a product per slot.
    candidates = ops.where(relation.negatives, stopped, float("inf")) if weights is None else stopped

    zeros = ops.zeros_like(stopped)

    def active(slot_index, slot_valid, slot_distance):
        """``[a, n]``: the weight of negative ``n`` if ``(a, slot positive, n)`` is active, else 0."""
        if positives is not None:
            slot_valid = ops.logical_and(slot_valid, ops.take_along_axis(positives, slot_index[:, 1:], axis=1)[:, 0])
        # An empty slot gets the threshold -inf, so none of its triplets is active.
        threshold = ops.where(ops.expand_dims(slot_valid, 1), slot_distance + margin, float("-inf"))
        # [d < threshold] as relu(sign(threshold - d)) (1, or 0 for 0 and -1; a difference of floats
        # is 0 only when they are equal): a product, not a select on a random mask, and arithmetic,
        # not a comparison and a cast (each ~3x slower than a subtraction on torch CPU).
        below = ops.relu(ops.sign(threshold - candidates))
        return below if weights is None else weights * below

    if eager:  # one scatter of every slot's counts, not one (n, m) copy per slot
        slots, slot = relation.positive_slots()
        per_negative, indices, counts = zeros, [], []
        for k in range(int(slots)):
            slot_index, slot_valid = slot(k)
            slot_active = active(slot_index, slot_valid, ops.take_along_axis(stopped, slot_index[:, 1:], axis=1))
            indices.append(slot_index)
            counts.append(ops.sum(slot_active, axis=1))
            per_negative = slot_active if k == 0 else per_negative + slot_active
        if not indices:
            return zeros, zeros
        # Empty slots point at columns that are not positives, with a count of 0.
        per_positive = ops.scatter_update(
            zeros, ops.concatenate(indices, axis=0), ops.concatenate(counts, axis=0), reduction="add"
        )
        return per_positive, per_negative

    def count(slot_index, slot_valid, slot_distance, carry):
        per_positive, per_negative = carry
        slot_active = active(slot_index, slot_valid, slot_distance)
        per_positive = ops.scatter_update(per_positive, slot_index, ops.sum(slot_active, axis=1))  # 0 off the positives
        return per_positive, per_negative + slot_active

    return _over_positive_slots(stopped, relation.positive_slots(), count, (zeros, zeros))


def multi_similarity_pairs(similarities: Tensor, labels: Tensor | Relation, epsilon: float = 0.1) -> tuple[Tensor, Tensor]:
    """Multi-similarity pair mining (Wang et al., CVPR 2019, eqs. 5-6).

    A positive pair ``(a, p)`` is kept when it is less similar than the
    query's most similar negative plus ``epsilon``,
    ``s_ap < max_n s_an + epsilon``; a negative pair ``(a, n)`` is kept when
    it is more similar than the query's least similar positive minus
    ``epsilon``, ``s_an > min_p s_ap - epsilon`` (strict inequalities, as in
    the paper and tensorflow-similarity). A query without negatives keeps
    no positive, and one without positives keeps no negative.

    Parameters
    ----------
    similarities : tensor of shape (n, m)
        Query x reference similarities (higher = more alike), e.g.
        :func:`dmlkeras.distances.cosine_similarity_matrix`.
    labels : labels (see :func:`label_relation`) or a :class:`Relation`
    epsilon : float, default 0.1

    Returns
    -------
    positives : bool tensor of shape (n, m)
        Mined positive pairs (a subset of :func:`positive_mask`).
    negatives : bool tensor of shape (n, m)
        Mined negative pairs (a subset of :func:`negative_mask`).

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> s = np.array([[1.0, 0.9, 0.2, 0.85], [0.9, 1.0, 0.1, 0.3],
    ...               [0.2, 0.1, 1.0, 0.5], [0.85, 0.3, 0.5, 1.0]], "float32")
    >>> pos, neg = multi_similarity_pairs(s, np.array([0, 0, 1, 1]), epsilon=0.1)
    >>> keras.ops.convert_to_numpy(pos)[0], keras.ops.convert_to_numpy(neg)[0]
    (array([False,  True, False, False]), array([False, False, False,  True]))
    """
    similarities = ops.stop_gradient(ops.convert_to_tensor(similarities))
    relation = _as_relation(labels)
    positives, negatives = relation.positives, relation.negatives
    hardest_negative_similarity = ops.max(
        ops.where(negatives, similarities, float("-inf")), axis=1, keepdims=True
    )
    hardest_positive_similarity = ops.min(
        ops.where(positives, similarities, float("inf")), axis=1, keepdims=True
    )
    mined_positives = ops.logical_and(positives, similarities < hardest_negative_similarity + epsilon)
    mined_negatives = ops.logical_and(negatives, similarities > hardest_positive_similarity - epsilon)
    return mined_positives, mined_negatives


def hardest_negative_pair(
    distances: Tensor, labels: Tensor, query_labels: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Per query, the closest negative pair that shares no class with the query.

    The second term of the quadruplet loss (Chen et al., CVPR 2017) pushes
    apart a pair ``(l, k)`` with ``labels[l] != labels[k]``,
    ``labels[l] != labels[a]`` and ``labels[k] != labels[a]``. This returns,
    for every query ``a``, ``min d(l, k)`` over those pairs, in O(n m)
    memory: for each row ``l`` the closest negative and the closest negative
    of a *different* class than that one are enough to answer for any query
    class.

    Parameters
    ----------
    distances : tensor of shape (m, m)
        Pairwise distances of the reference rows (symmetric).
    labels : tensor of shape (m,)
        Class ids of the reference rows.
    query_labels : tensor of shape (n,), optional
        Class ids of the queries (default: ``labels``, the reference is the batch).

    Returns
    -------
    values : tensor of shape (n,)
        The distance of the chosen pair (gradients flow into ``distances``;
        the largest distance where there is no such pair).
    valid : bool tensor of shape (n,)
        Whether such a pair exists (it needs at least three classes).

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> x = np.array([0.0, 0.1, 1.0, 1.5, 4.0], "float32")
    >>> d = np.abs(x[:, None] - x[None, :])
    >>> v, ok = hardest_negative_pair(d, np.array([0, 0, 1, 2, 2]))
    >>> keras.ops.convert_to_numpy(v), keras.ops.convert_to_numpy(ok)
    (array([0.5, 0.5, 1.4, 0.9, 0.9], dtype=float32), array([ True,  True,  True,  True,  True]))
    """
    distances = ops.convert_to_tensor(distances)
    labels = ops.reshape(ops.convert_to_tensor(labels), (-1,))
    query_labels = labels if query_labels is None else ops.reshape(ops.convert_to_tensor(query_labels), (-1,))
    negatives = negative_mask(labels, labels)
    largest = ops.stop_gradient(ops.max(distances))
    filler = largest + ops.zeros_like(distances)
    # Row l: its closest negative (of class c1[l]) ...
    first = ops.min(ops.where(negatives, distances, filler), axis=1)
    has_first = ops.any(negatives, axis=1)
    first_column = ops.argmin(ops.where(negatives, ops.stop_gradient(distances), float("inf")), axis=1)
    first_class = ops.take(labels, first_column)
    # ... and its closest negative of another class than c1[l].
    other = ops.logical_and(negatives, negative_mask(first_class, labels))
    second = ops.min(ops.where(other, distances, filler), axis=1)
    has_second = ops.any(other, axis=1)
    # Query a, row l (labels[l] != labels[a]): the first pair unless it
    # involves the query's class, then the second.
    first_allowed = negative_mask(query_labels, first_class)  # (a, l): c1[l] != labels[a]
    candidate = ops.where(first_allowed, ops.expand_dims(first, 0), ops.expand_dims(second, 0))
    candidate_ok = ops.where(
        first_allowed, ops.expand_dims(has_first, 0), ops.expand_dims(has_second, 0)
    )
    eligible = ops.logical_and(negative_mask(query_labels, labels), candidate_ok)
    values = ops.min(ops.where(eligible, candidate, largest + ops.zeros_like(candidate)), axis=1)
    return values, ops.any(eligible, axis=1)


# ----------------------------------------------------------------------------- miner objects


class Mined(NamedTuple):
    """What a miner chose, in fixed shapes (see the module docstring).

    Attributes
    ----------
    positives, negatives : bool tensors of shape (n, m)
        The chosen positive and negative pairs.
    negative_weights : float tensor of shape (n, m) or None
        Weights of the negative pairs (:class:`DistanceWeightedMiner`); ``None``: 1 each.
    triplet_negative : int tensor of shape (n, m) or None
        For miners that pick one negative per positive pair: ``[a, p]`` is that
        negative's column. ``None``: the triplets are every chosen positive with every
        chosen negative of the same query.
    """

    positives: Tensor
    negatives: Tensor
    negative_weights: Tensor | None = None
    triplet_negative: Tensor | None = None


class Miner:
    """Base of the miner objects: ``mine(distances, relation) -> Mined``.

    ``distances`` is the ``(n, m)`` query x reference matrix of the loss's distance, in
    "smaller = closer" orientation (a similarity is passed as a distance, see
    :mod:`dmlkeras.distances`); ``relation`` a :class:`Relation`. Selection only: every
    output is computed with gradients stopped. Miners are Keras-serialisable.
    """

    def mine(self, distances: Tensor, relation: Relation, embedding_dim: int | None = None) -> Mined:
        raise NotImplementedError

    def __call__(self, distances: Tensor, labels: Tensor | Relation, embedding_dim: int | None = None) -> Mined:
        return self.mine(ops.stop_gradient(as_float32(distances)), _as_relation(labels), embedding_dim)

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict) -> "Miner":
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _one_hot_columns(columns: Tensor, width) -> Tensor:
    return ops.equal(ops.expand_dims(columns, 1), ops.expand_dims(ops.arange(width, dtype="int32"), 0))


@keras.saving.register_keras_serializable(package="dmlkeras")
class SemiHardMiner(Miner):
    """One negative per positive pair: the semi-hard one (:func:`semihard_negative`).

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> d = np.array([[0., 1., 0.5, 2.], [1., 0., 3., 4.], [0.5, 3., 0., 1.], [2., 4., 1., 0.]], "float32")
    >>> mined = SemiHardMiner()(d, np.array([0, 0, 1, 1]))
    >>> int(keras.ops.convert_to_numpy(mined.triplet_negative)[0, 1])  # the negative at distance 2
    3
    """

    def mine(self, distances, relation, embedding_dim=None):
        chosen = _semihard_columns(distances, relation)
        positives = ops.logical_and(relation.positives, ops.any(relation.negatives, axis=1, keepdims=True))
        n, m = ops.shape(distances)[0], ops.shape(distances)[1]
        rows = ops.broadcast_to(ops.expand_dims(ops.arange(n, dtype="int32"), 1), (n, m))
        index = ops.reshape(ops.stack([rows, chosen], axis=-1), (-1, 2))
        # A scatter-add (ops.scatter loops in Python on torch).
        hits = ops.scatter_update(
            ops.zeros((n, m), "float32"), index, ops.reshape(ops.cast(positives, "float32"), (-1,)), reduction="add"
        )
        return Mined(positives, hits > 0, None, chosen)


@keras.saving.register_keras_serializable(package="dmlkeras")
class HardMiner(Miner):
    """Batch-hard: per query, its farthest positive and its closest negative (one triplet).

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> d = np.array([[0., 1., 0.5, 2.], [1., 0., 3., 4.], [0.5, 3., 0., 1.], [2., 4., 1., 0.]], "float32")
    >>> mined = HardMiner()(d, np.array([0, 0, 1, 1]))
    >>> keras.ops.convert_to_numpy(mined.negatives)[0]
    array([False, False,  True, False])
    """

    def mine(self, distances, relation, embedding_dim=None):
        m = ops.shape(distances)[1]
        valid = ops.logical_and(ops.any(relation.positives, axis=1), ops.any(relation.negatives, axis=1))
        positive = _extreme_column(distances, relation.positives, largest=True)
        negative = _extreme_column(distances, relation.negatives, largest=False)
        valid = ops.expand_dims(valid, 1)
        return Mined(
            ops.logical_and(_one_hot_columns(positive, m), valid),
            ops.logical_and(_one_hot_columns(negative, m), valid),
        )


@keras.saving.register_keras_serializable(package="dmlkeras")
class AllTripletsMiner(Miner):
    """Every triplet: every positive and negative pair of queries that have both.

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> mined = AllTripletsMiner()(np.zeros((3, 3), "float32"), np.array([0, 0, 1]))
    >>> keras.ops.convert_to_numpy(mined.positives)[2], keras.ops.convert_to_numpy(mined.negatives)[2]
    (array([False, False, False]), array([False, False, False]))
    """

    def mine(self, distances, relation, embedding_dim=None):
        has_positive = ops.any(relation.positives, axis=1, keepdims=True)
        has_negative = ops.any(relation.negatives, axis=1, keepdims=True)
        return Mined(
            ops.logical_and(relation.positives, has_negative), ops.logical_and(relation.negatives, has_positive)
        )


@keras.saving.register_keras_serializable(package="dmlkeras")
class MultiSimilarityMiner(Miner):
    """The multi-similarity pair mining (:func:`multi_similarity_pairs`), on any distance.

    With distances ``d`` it keeps positives with ``d_ap > min_n d_an - epsilon`` and
    negatives with ``d_an < max_p d_ap + epsilon``: the paper's rule for the similarity
    ``-d`` (for the cosine distance ``1 - s``, exactly the paper's on ``s``).

    Parameters
    ----------
    epsilon : float, default 0.1

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> d = 1.0 - np.array([[1.0, 0.9, 0.2, 0.85], [0.9, 1.0, 0.1, 0.3],
    ...                     [0.2, 0.1, 1.0, 0.5], [0.85, 0.3, 0.5, 1.0]], "float32")
    >>> mined = MultiSimilarityMiner(epsilon=0.1)(d, np.array([0, 0, 1, 1]))
    >>> keras.ops.convert_to_numpy(mined.negatives)[0]
    array([False, False, False,  True])
    """

    def __init__(self, epsilon: float = 0.1) -> None:
        self.epsilon = check_float(epsilon, "epsilon", minimum=0.0)

    def mine(self, distances, relation, embedding_dim=None):
        return Mined(*multi_similarity_pairs(-distances, relation, self.epsilon))

    def get_config(self):
        return {"epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="dmlkeras")
class PairMarginMiner(Miner):
    """Pairs that violate a margin: positives farther than ``pos_margin``, negatives closer than ``neg_margin``.

    pytorch-metric-learning's ``PairMarginMiner`` (for a distance).

    Parameters
    ----------
    pos_margin : float, default 0.2
    neg_margin : float, default 0.8

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> d = np.array([[0.0, 0.1, 0.5], [0.1, 0.0, 0.9], [0.5, 0.9, 0.0]], "float32")
    >>> mined = PairMarginMiner(pos_margin=0.2, neg_margin=0.8)(d, np.array([0, 0, 1]))
    >>> keras.ops.convert_to_numpy(mined.negatives)[:, 2]
    array([ True, False, False])
    """

    def __init__(self, pos_margin: float = 0.2, neg_margin: float = 0.8) -> None:
        self.pos_margin = check_float(pos_margin, "pos_margin")
        self.neg_margin = check_float(neg_margin, "neg_margin")

    def mine(self, distances, relation, embedding_dim=None):
        return Mined(
            ops.logical_and(relation.positives, distances > self.pos_margin),
            ops.logical_and(relation.negatives, distances < self.neg_margin),
        )

    def get_config(self):
        return {"pos_margin": self.pos_margin, "neg_margin": self.neg_margin}


@keras.saving.register_keras_serializable(package="dmlkeras")
class DistanceWeightedMiner(Miner):
    """Distance-weighted negatives (Wu et al., ICCV 2017), as expected weights.

    On the unit sphere in ``d`` dimensions pairwise distances have density
    ``q(x) ~ x^(d-2) (1 - x^2/4)^((d-3)/2)``; the paper samples, for every positive pair,
    one negative with probability ``~ 1 / q(max(x, cutoff))`` among negatives closer than
    ``nonzero_loss_cutoff``. Sampling gives data-dependent index lists; here every such
    negative gets its sampling probability as a weight (rows sum to 1), so a loss sees
    the *expected* sampled triplet or pair, in fixed shapes. Use with L2-normalised
    embeddings and the Euclidean distance.

    Parameters
    ----------
    cutoff : float, default 0.5
    nonzero_loss_cutoff : float, default 1.4

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> d = np.array([[0.0, 0.3, 0.6, 1.0], [0.3, 0.0, 0.9, 1.2],
    ...               [0.6, 0.9, 0.0, 0.4], [1.0, 1.2, 0.4, 0.0]], "float32")
    >>> mined = DistanceWeightedMiner()(d, np.array([0, 0, 1, 1]), embedding_dim=8)
    >>> np.round(keras.ops.convert_to_numpy(mined.negative_weights)[0], 3)
    array([0.  , 0.  , 0.93, 0.07], dtype=float32)
    """

    def __init__(self, cutoff: float = 0.5, nonzero_loss_cutoff: float = 1.4) -> None:
        self.cutoff = check_float(cutoff, "cutoff", minimum=0.0, strict=True)
        self.nonzero_loss_cutoff = check_float(nonzero_loss_cutoff, "nonzero_loss_cutoff", minimum=0.0, strict=True)

    def mine(self, distances, relation, embedding_dim=None):
        if embedding_dim is None:
            raise ValueError("DistanceWeightedMiner needs the embedding dimension (embedding_dim=).")
        dim = float(embedding_dim)
        x = ops.maximum(distances, self.cutoff)
        log_weights = (2.0 - dim) * ops.log(x) - ((dim - 3.0) / 2.0) * ops.log(
            ops.maximum(1.0 - 0.25 * ops.square(x), 1e-8)
        )
        allowed = ops.logical_and(relation.negatives, distances < self.nonzero_loss_cutoff)
        shift = ops.max(ops.where(allowed, log_weights, float("-inf")), axis=1, keepdims=True)
        shift = ops.where(ops.isfinite(shift), shift, ops.zeros_like(shift))
        weights = ops.where(allowed, ops.exp(ops.where(allowed, log_weights - shift, ops.zeros_like(x))), 0.0)
        total = ops.sum(weights, axis=1, keepdims=True)
        weights = weights / ops.where(total > 0, total, ops.ones_like(total))
        has_negative = ops.any(allowed, axis=1, keepdims=True)
        return Mined(ops.logical_and(relation.positives, has_negative), allowed, weights)

    def get_config(self):
        return {"cutoff": self.cutoff, "nonzero_loss_cutoff": self.nonzero_loss_cutoff}


_MINERS = {"semi-hard": SemiHardMiner, "hard": HardMiner, "all": AllTripletsMiner}


def get_miner(miner: str | Miner | dict | None) -> Miner | None:
    """A miner from a :data:`MINING` name, a Miner, a serialised config, or ``None``.

    Examples
    --------
    >>> get_miner("hard")
    HardMiner()
    """
    if miner is None or isinstance(miner, Miner):
        return miner
    if isinstance(miner, dict):
        return keras.saving.deserialize_keras_object(miner)
    if isinstance(miner, str) and miner in _MINERS:
        return _MINERS[miner]()
    raise ValueError(f"miner must be a Miner object or one of {tuple(_MINERS)}; got {miner!r}.")


def chosen_pairs(relation: Relation, mined: Mined | None) -> tuple[Tensor, Tensor, Tensor | None]:
    """``(positives, negatives, negative_weights)`` a pair loss uses: the miner's, or every pair.

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> positives, negatives, weights = chosen_pairs(label_relation(np.array([0, 0, 1])), None)
    >>> keras.ops.convert_to_numpy(negatives)[0], weights
    (array([False, False,  True]), None)
    """
    if mined is None:
        return relation.positives, relation.negatives, None
    return mined.positives, mined.negatives, mined.negative_weights


def triplet_negative_distances(distances: Tensor, mined: Mined, relation: Relation) -> Tensor:
    """``distances[a, mined.triplet_negative[a, p]]`` for every pair, differentiable (exact gradient).

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> d = np.array([[0., 1., 0.5, 2.], [1., 0., 3., 4.], [0.5, 3., 0., 1.], [2., 4., 1., 0.]], "float32")
    >>> relation = label_relation(np.array([0, 0, 1, 1]))
    >>> mined = SemiHardMiner()(d, relation)
    >>> float(keras.ops.convert_to_numpy(triplet_negative_distances(d, mined, relation))[0, 1])
    2.0
    """
    return _take_chosen(
        ops.convert_to_tensor(distances), mined.triplet_negative, relation.positive_slots(), relation.positives
    )

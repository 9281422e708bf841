"""Label masks and in-batch miners, written with ``keras.ops`` only.

Every in-batch loss and diagnostic metric takes its pairs and triplets from
here, so "positive", "negative", "hardest" and "semi-hard" mean one thing.

Memory is O(n^2) for a batch of n: no ``(n, n, n)`` tensor is built, batch-all
included. The triplet miners loop over positive *slots*: in
slot k every anchor takes its k-th positive, and one masked reduction over
``(n, n)`` tensors serves all anchors at once. A P x K batch needs K - 1
slots, so semi-hard and batch-all mining cost O(n^2 K) time; selection runs
with gradients stopped and the chosen distances are gathered afterwards, so
gradients are exact.

Labels are integer class ids of shape ``(n,)``. A *positive pair* ``(a, p)``
has ``labels[a] == labels[p]`` and ``a != p``; a *negative pair* ``(a, n)``
has ``labels[a] != labels[n]``.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

Tensor = Any


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


def positive_mask(labels: Tensor) -> Tensor:
    """Boolean ``(n, n)`` mask of positive pairs: same label, not the sample itself.

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> keras.ops.convert_to_numpy(positive_mask(np.array([0, 0, 1])))
    array([[False,  True, False],
           [ True, False, False],
           [False, False, False]])
    """
    same = same_label_mask(labels)
    not_self = ops.logical_not(ops.cast(ops.eye(ops.shape(same)[0]), "bool"))
    return ops.logical_and(same, not_self)


def negative_mask(labels: Tensor, other_labels: Tensor | None = None) -> Tensor:
    """Boolean ``(n, m)`` mask of negative pairs: different labels.

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> keras.ops.convert_to_numpy(negative_mask(np.array([0, 0, 1])))
    array([[False, False,  True],
           [False, False,  True],
           [ True,  True, False]])
    """
    return ops.logical_not(same_label_mask(labels, other_labels))


def hardest_positive(distances: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Per anchor, the distance to its farthest positive.

    Parameters
    ----------
    distances : tensor of shape (n, n)
        Non-negative pairwise distances of the batch.
    labels : tensor of shape (n,)

    Returns
    -------
    values : tensor of shape (n,)
        Hardest positive distance (0 where the anchor has no positive).
    valid : bool tensor of shape (n,)
        Whether the anchor has a positive.

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> d = np.array([[0., 1., 3.], [1., 0., 2.], [3., 2., 0.]], "float32")
    >>> v, ok = hardest_positive(d, np.array([0, 0, 1]))
    >>> keras.ops.convert_to_numpy(v), keras.ops.convert_to_numpy(ok)
    (array([1., 1., 0.], dtype=float32), array([ True,  True, False]))
    """
    mask = positive_mask(labels)
    values = ops.max(ops.where(mask, distances, ops.zeros_like(distances)), axis=1)
    return values, ops.any(mask, axis=1)


def hardest_negative(distances: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Per anchor, the distance to its closest negative.

    Returns
    -------
    values : tensor of shape (n,)
        Hardest negative distance (the row maximum where there is no negative).
    valid : bool tensor of shape (n,)
        Whether the anchor has a negative.

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> d = np.array([[0., 1., 3.], [1., 0., 2.], [3., 2., 0.]], "float32")
    >>> v, ok = hardest_negative(d, np.array([0, 0, 1]))
    >>> keras.ops.convert_to_numpy(v)
    array([3., 2., 2.], dtype=float32)
    """
    mask = negative_mask(labels)
    filler = ops.stop_gradient(ops.max(distances, axis=1, keepdims=True))
    values = ops.min(ops.where(mask, distances, filler), axis=1)
    return values, ops.any(mask, axis=1)


def _positive_slots(labels: Tensor):
    """Tables to find the k-th positive of every anchor in O(n) per slot.

    Returns ``(slots, slot)``: the number of slots (``max_a |positives(a)|``,
    ``K - 1`` in a P x K batch) and a function ``slot(k) -> (index (n, 2)
    int32, valid (n,) bool)``: row ``a`` of ``index`` is ``(a, p)`` for the
    k-th positive ``p`` of anchor ``a`` (in column order), or the diagonal
    ``(a, a)`` when ``a`` has fewer positives (``valid`` is then False), so
    that per-slot updates are O(n) scatters to distinct places. Built once
    with three ``(n, n)`` row sums and a scatter: no ``(n, n)`` cumulative
    sum, which is slow on XLA CPU. On torch, :func:`_positive_slots_sorted`
    builds the same tables without any ``(n, n)`` pass.
    """
    if keras.backend.backend() == "torch":
        return _positive_slots_sorted(labels)
    labels = ops.reshape(ops.convert_to_tensor(labels), (-1,))
    same = same_label_mask(labels)
    index = ops.arange(ops.shape(labels)[0], dtype="int32")
    earlier = ops.less(ops.expand_dims(index, 0), ops.expand_dims(index, 1))  # [a, j]: j comes before a
    # occurrence[a]: same-class samples before a; count[a]: size of a's class;
    # start[a]: samples of smaller classes, so members[start[a] + i] is the
    # i-th sample (in index order) of a's class.
    occurrence = ops.sum(ops.cast(ops.logical_and(same, earlier), "int32"), axis=1)
    count = ops.sum(ops.cast(same, "int32"), axis=1)
    start = ops.sum(ops.cast(ops.less(ops.expand_dims(labels, 0), ops.expand_dims(labels, 1)), "int32"), axis=1)
    # A permutation, so a scatter-update (vectorised on every backend; torch's scatter loops in Python).
    members = ops.scatter_update(ops.zeros_like(index), ops.expand_dims(start + occurrence, 1), index)

    def slot(k):
        member = k + ops.cast(k >= occurrence, "int32")  # skip the anchor itself
        valid = member < count
        column = ops.where(valid, ops.take(members, start + ops.minimum(member, count - 1)), index)
        return ops.stack([index, column], axis=1), valid

    return ops.max(count) - 1, slot


def _positive_slots_sorted(labels: Tensor):
    """:func:`_positive_slots` from a sort of the labels: O(n log n), no ``(n, n)`` pass.

    ``members`` lists the samples class by class (an argsort of the labels),
    ``start`` and ``count`` come from two binary searches in the sorted
    labels, and ``occurrence`` (an anchor's place in its class) from the
    inverse permutation. Any order within a class visits every positive pair
    once, which is all the slot miners need; a stable argsort (torch, JAX)
    keeps column order. Casting the ``(n, n)`` label masks to integers is
    what makes :func:`_positive_slots` slow on torch CPU.
    """
    labels = ops.reshape(ops.convert_to_tensor(labels), (-1,))
    index = ops.arange(ops.shape(labels)[0], dtype="int32")
    members = ops.cast(ops.argsort(labels), "int32")
    sorted_labels = ops.take(labels, members)
    start = ops.cast(ops.searchsorted(sorted_labels, labels, side="left"), "int32")
    count = ops.cast(ops.searchsorted(sorted_labels, labels, side="right"), "int32") - start
    occurrence = ops.scatter_update(ops.zeros_like(index), ops.expand_dims(members, 1), index) - start

    def slot(k):
        member = k + ops.cast(k >= occurrence, "int32")  # skip the anchor itself
        valid = member < count
        column = ops.where(valid, ops.take(members, start + ops.minimum(member, count - 1)), index)
        return ops.stack([index, column], axis=1), valid

    return ops.max(count) - 1, slot


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


def _take_chosen(
    distances: Tensor, chosen: Tensor, positive_slots, positives: Tensor, values: Tensor | None = None
) -> Tensor:
    """``take_along_axis(distances, chosen, axis=1)`` for a per-slot choice.

    ``chosen[a, p]`` is a column for every positive pair ``(a, p)`` (the
    ``positives`` mask) and ``p`` itself elsewhere; ``positive_slots`` is
    what :func:`_positive_slots` returns. The gradient is exact; it is
    accumulated slot by slot with an O(n) scatter-add each, instead of the
    ``(n, n)`` scatter-add that is the gradient of a gather (slow on XLA CPU).
    ``values``, when given, is that gather already made (slot by slot, see
    :func:`_semihard_negative_arithmetic`): the ``(n, n)`` gather is slow on torch CPU.
    """
    slots, slot = positive_slots

    @ops.custom_gradient
    def take(d):
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
            return ops.fori_loop(0, slots, step, own)

        return (ops.take_along_axis(d, chosen, axis=1) if values is None else values), gradient

    return take(distances)


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


def semihard_negative(distances: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Semi-hard negative distance for every anchor-positive pair (FaceNet).

    For the pair ``(a, p)``: the closest negative of ``a`` that is *farther*
    than ``p`` (``d(a, n) > d(a, p)``); when there is none, the farthest
    negative of ``a``. This is the rule of tensorflow-addons'
    ``TripletSemiHardLoss``.

    Parameters
    ----------
    distances : tensor of shape (n, n)
    labels : tensor of shape (n,)

    Returns
    -------
    values : tensor of shape (n, n)
        ``values[a, p]`` is the chosen negative distance for the pair ``(a, p)``
        (meaningful where ``valid``). Gradients flow into ``distances``.
    valid : bool tensor of shape (n, n)
        Positive pairs whose anchor has at least one negative.

    Notes
    -----
    One masked minimum per positive slot (see :mod:`dmlkeras.mining`):
    O(n^2 K) time for K samples per class, O(n^2) memory.

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> d = np.array([[0., 1., 0.5, 2.], [1., 0., 3., 4.], [0.5, 3., 0., 1.], [2., 4., 1., 0.]], "float32")
    >>> v, ok = semihard_negative(d, np.array([0, 0, 1, 1]))
    >>> float(keras.ops.convert_to_numpy(v)[0, 1])  # d(0,1)=1: negatives 0.5, 2 -> 2
    2.0
    """
    distances = ops.convert_to_tensor(distances)
    if keras.backend.backend() == "torch":
        return _semihard_negative_arithmetic(distances, labels)
    positives = positive_mask(labels)
    negatives = negative_mask(labels)
    positive_slots = _positive_slots(labels)
    stopped = ops.stop_gradient(distances)
    farthest = _extreme_column(stopped, negatives, largest=True)

    columns = ops.shape(stopped)[1]

    def choose(slot_index, slot_valid, slot_distance, chosen):
        farther = ops.logical_and(negatives, stopped > slot_distance)
        closest_farther = _extreme_column(stopped, farther, largest=False)  # `columns` where none
        column = ops.where(closest_farther < columns, closest_farther, farthest)
        column = ops.where(slot_valid, column, slot_index[:, 0])  # no slot: keep the diagonal
        return ops.scatter_update(chosen, slot_index, column)

    # Entries that are not positive pairs keep their own column (values there
    # are the distances themselves); positive pairs get their negative's.
    own_column = ops.broadcast_to(ops.expand_dims(ops.arange(columns, dtype="int32"), 0), ops.shape(stopped))
    chosen = _over_positive_slots(stopped, positive_slots, choose, own_column)
    # Rows without a negative point one past the end: clip them (they are not valid).
    chosen = ops.minimum(chosen, columns - 1)
    values = _take_chosen(distances, chosen, positive_slots, positives)
    valid = ops.logical_and(positives, ops.any(negatives, axis=1, keepdims=True))
    return values, valid


def _semihard_negative_arithmetic(distances: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """:func:`semihard_negative` with masks as arithmetic, for torch CPU.

    The same choice, values and gradient (the tests check it on every
    backend). Eager torch on CPU is slow at ``where`` with an irregular
    mask, at ``(n, n)`` gathers and at casts of boolean ``(n, n)`` masks; so
    the masks become additive penalties larger than every distance
    (``big``), the closest farther negative is one ``argmin`` per slot, and
    the chosen distances are gathered slot by slot (O(n) each). Exact: the
    penalties leave the negatives' distances untouched and only push the
    others past ``big``, so ties go to the first column as before.
    """
    distances = ops.convert_to_tensor(distances)
    labels = ops.reshape(ops.convert_to_tensor(labels), (-1,))
    stopped = ops.stop_gradient(distances)
    n = ops.shape(stopped)[0]
    same = same_label_mask(labels)
    positives = ops.logical_and(same, ops.logical_not(ops.cast(ops.eye(n), "bool")))
    same = ops.cast(same, stopped.dtype)
    has_negative = ops.min(same, axis=1) < 1
    big = 2.0 * ops.max(stopped) + 1.0  # above every distance
    penalty = same * big
    negatives_only = stopped + penalty  # negatives keep their distance, the rest >= big
    farthest = ops.cast(ops.argmax(stopped - penalty, axis=1), "int32")
    farthest = ops.where(has_negative, farthest, n - 1)  # no negative: the last column, as before
    positive_slots = _positive_slots(labels)
    slots, slot = positive_slots

    def choose(k, carry):
        chosen, values = carry
        slot_index, slot_valid = slot(k)
        slot_distance = ops.take_along_axis(stopped, slot_index[:, 1:], axis=1)
        candidates = negatives_only + big * ops.cast(stopped <= slot_distance, stopped.dtype)
        column = ops.cast(ops.argmin(candidates, axis=1), "int32")
        found = ops.take_along_axis(candidates, ops.expand_dims(column, 1), axis=1)[:, 0] < big
        column = ops.where(found, column, farthest)
        column = ops.where(slot_valid, column, slot_index[:, 0])  # no slot: keep the diagonal
        value = ops.take_along_axis(stopped, ops.expand_dims(column, 1), axis=1)[:, 0]
        return ops.scatter_update(chosen, slot_index, column), ops.scatter_update(values, slot_index, value)

    own_column = ops.broadcast_to(ops.expand_dims(ops.arange(n, dtype="int32"), 0), ops.shape(stopped))
    chosen, values = ops.fori_loop(0, slots, choose, (own_column, stopped))
    values = _take_chosen(distances, chosen, positive_slots, positives, values=values)
    valid = ops.logical_and(positives, ops.expand_dims(has_negative, 1))
    return values, valid


def mined_triplets(distances: Tensor, labels: Tensor, mining: str) -> tuple[Tensor, Tensor, Tensor]:
    """The anchor-positive and anchor-negative distances of the mined triplets.

    Parameters
    ----------
    distances : tensor of shape (n, n)
    labels : tensor of shape (n,)
    mining : {"hard", "semi-hard"}
        ``"hard"``: one triplet per anchor, its hardest positive and hardest
        negative (:func:`hardest_positive`, :func:`hardest_negative`); the
        results have shape ``(n,)``. ``"semi-hard"``: one triplet per
        anchor-positive pair with its :func:`semihard_negative`; shape
        ``(n, n)``.

    Returns
    -------
    positive, negative : tensors
        ``d(a, p)`` and ``d(a, n)`` of every triplet (gradients flow into
        ``distances``).
    valid : bool tensor
        Which entries are triplets: the anchor has a positive and a negative.

    Raises
    ------
    ValueError
        On another ``mining`` (batch-all has no single triplet per anchor or
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
        positive, has_positive = hardest_positive(distances, labels)
        negative, has_negative = hardest_negative(distances, labels)
        return positive, negative, ops.logical_and(has_positive, has_negative)
    if mining == "semi-hard":
        negative, valid = semihard_negative(distances, labels)
        return distances, negative, valid
    raise ValueError(f"mining must be 'hard' or 'semi-hard' to mine one triplet per anchor or pair; got {mining!r}.")


def active_triplet_counts(distances: Tensor, labels: Tensor, margin: float) -> tuple[Tensor, Tensor]:
    """Count the active triplets (``d_ap - d_an + margin > 0``) per pair.

    The batch-all triplet loss sums ``d_ap + margin - d_an`` over the active
    triplets; with these counts that sum is
    ``sum(per_positive * (d + margin)) - sum(per_negative * d)``: every
    triplet, values and gradients exact, in O(n^2) memory.

    Parameters
    ----------
    distances : tensor of shape (n, n)
    labels : tensor of shape (n,)
    margin : float

    Returns
    -------
    per_positive : float32 tensor of shape (n, n)
        ``[a, p]``: number of negatives ``n`` making ``(a, p, n)`` active.
    per_negative : float32 tensor of shape (n, n)
        ``[a, n]``: number of positives ``p`` making ``(a, p, n)`` active.

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> d = np.array([[0., 1., 0.5, 2.], [1., 0., 3., 4.], [0.5, 3., 0., 1.], [2., 4., 1., 0.]], "float32")
    >>> per_p, per_n = active_triplet_counts(d, np.array([0, 0, 1, 1]), margin=0.5)
    >>> keras.ops.convert_to_numpy(per_p)[0], keras.ops.convert_to_numpy(per_n)[0]
    (array([0., 1., 0., 0.], dtype=float32), array([0., 0., 1., 0.], dtype=float32))
    """
    negatives = negative_mask(labels)
    stopped = ops.stop_gradient(ops.convert_to_tensor(distances))

    def count(slot_index, slot_valid, slot_distance, carry):
        per_positive, per_negative = carry
        has_slot = ops.expand_dims(slot_valid, 1)
        active = ops.logical_and(ops.logical_and(negatives, has_slot), stopped < slot_distance + margin)
        active = ops.cast(active, stopped.dtype)
        per_positive = ops.scatter_update(per_positive, slot_index, ops.sum(active, axis=1))  # 0 on the diagonal
        return per_positive, per_negative + active

    zeros = ops.zeros_like(stopped)
    return _over_positive_slots(stopped, _positive_slots(labels), count, (zeros, zeros))


def multi_similarity_pairs(similarities: Tensor, labels: Tensor, epsilon: float = 0.1) -> tuple[Tensor, Tensor]:
    """Multi-similarity pair mining (Wang et al., CVPR 2019, eqs. 5-6).

    A positive pair ``(a, p)`` is kept when it is less similar than the
    anchor's most similar negative plus ``epsilon``,
    ``s_ap < max_n s_an + epsilon``; a negative pair ``(a, n)`` is kept when
    it is more similar than the anchor's least similar positive minus
    ``epsilon``, ``s_an > min_p s_ap - epsilon`` (strict inequalities, as in
    the paper and tensorflow-similarity). An anchor without negatives keeps
    no positive, and one without positives keeps no negative.

    Parameters
    ----------
    similarities : tensor of shape (n, n)
        Pairwise similarities (higher = more alike), e.g.
        :func:`dmlkeras.distances.cosine_similarity_matrix`.
    labels : tensor of shape (n,)
    epsilon : float, default 0.1

    Returns
    -------
    positives : bool tensor of shape (n, n)
        Mined positive pairs (a subset of :func:`positive_mask`).
    negatives : bool tensor of shape (n, n)
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
    positives = positive_mask(labels)
    negatives = negative_mask(labels)
    hardest_negative_similarity = ops.max(
        ops.where(negatives, similarities, float("-inf")), axis=1, keepdims=True
    )
    hardest_positive_similarity = ops.min(
        ops.where(positives, similarities, float("inf")), axis=1, keepdims=True
    )
    mined_positives = ops.logical_and(positives, similarities < hardest_negative_similarity + epsilon)
    mined_negatives = ops.logical_and(negatives, similarities > hardest_positive_similarity - epsilon)
    return mined_positives, mined_negatives


def hardest_negative_pair(distances: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Per anchor, the closest negative pair that shares no class with the anchor.

    The second term of the quadruplet loss (Chen et al., CVPR 2017) pushes
    apart a pair ``(l, k)`` with ``labels[l] != labels[k]``,
    ``labels[l] != labels[a]`` and ``labels[k] != labels[a]``. This returns,
    for every anchor ``a``, ``min d(l, k)`` over those pairs, in O(n^2)
    memory: for each row ``l`` the closest negative and the closest negative
    of a *different* class than that one are enough to answer for any anchor
    class.

    Parameters
    ----------
    distances : tensor of shape (n, n)
        Pairwise distances of the batch (symmetric).
    labels : tensor of shape (n,)

    Returns
    -------
    values : tensor of shape (n,)
        The distance of the chosen pair (gradients flow into ``distances``;
        the batch's largest distance where there is no such pair).
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
    negatives = negative_mask(labels)
    filler = ops.stop_gradient(ops.max(distances)) + ops.zeros_like(distances)
    # Row l: its closest negative (of class c1[l]) ...
    first = ops.min(ops.where(negatives, distances, filler), axis=1)
    has_first = ops.any(negatives, axis=1)
    first_column = ops.argmin(ops.where(negatives, ops.stop_gradient(distances), float("inf")), axis=1)
    first_class = ops.take(labels, first_column)
    # ... and its closest negative of another class than c1[l].
    other = ops.logical_and(negatives, negative_mask(first_class, labels))
    second = ops.min(ops.where(other, distances, filler), axis=1)
    has_second = ops.any(other, axis=1)
    # Anchor a, row l (labels[l] != labels[a]): the first pair unless it
    # involves the anchor's class, then the second.
    first_allowed = negative_mask(labels, first_class)  # (a, l): c1[l] != labels[a]
    candidate = ops.where(first_allowed, ops.expand_dims(first, 0), ops.expand_dims(second, 0))
    candidate_ok = ops.where(
        first_allowed, ops.expand_dims(has_first, 0), ops.expand_dims(has_second, 0)
    )
    eligible = ops.logical_and(negatives, candidate_ok)
    values = ops.min(ops.where(eligible, candidate, filler), axis=1)
    return values, ops.any(eligible, axis=1)

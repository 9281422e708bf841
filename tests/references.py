"""Plain, loop-based NumPy references that the tests compare dmlkeras against.

Written for clarity, not speed: explicit loops over anchors, pairs and
triplets, in float64, straight from the papers' definitions.
"""

from __future__ import annotations

import numpy as np


def distance(u: np.ndarray, v: np.ndarray, metric: str) -> float:
    u = np.asarray(u, np.float64)
    v = np.asarray(v, np.float64)
    if metric == "euclidean":
        return float(np.sqrt(np.sum((u - v) ** 2)))
    if metric == "squared_euclidean":
        return float(np.sum((u - v) ** 2))
    if metric == "manhattan":
        return float(np.sum(np.abs(u - v)))
    if metric == "cosine":
        nu = max(np.linalg.norm(u), 1e-6)
        nv = max(np.linalg.norm(v), 1e-6)
        return float(max(1.0 - np.dot(u, v) / (nu * nv), 0.0))
    raise ValueError(metric)


def pairwise(x: np.ndarray, metric: str, y: np.ndarray | None = None) -> np.ndarray:
    same = y is None
    y = x if same else y
    out = np.zeros((len(x), len(y)))
    for i in range(len(x)):
        for j in range(len(y)):
            out[i, j] = 0.0 if (same and i == j) else distance(x[i], y[j], metric)
    return out


def contrastive(similar: np.ndarray, distances: np.ndarray, margin: float) -> float:
    total = 0.0
    for y, d in zip(similar, distances):
        total += y * d**2 + (1 - y) * max(margin - d, 0.0) ** 2
    return total / len(distances)


def _hinge(diff: float, margin: float, soft: bool) -> float:
    return float(np.log1p(np.exp(diff))) if soft else max(diff + margin, 0.0)


def triplet_margin(triplets: np.ndarray, margin: float, metric: str, soft: bool) -> float:
    losses = [
        _hinge(distance(a, p, metric) - distance(a, n, metric), margin, soft) for a, p, n in triplets
    ]
    return float(np.mean(losses))


def _positives(labels, a):
    return [p for p in range(len(labels)) if p != a and labels[p] == labels[a]]


def _negatives(labels, a):
    return [k for k in range(len(labels)) if labels[k] != labels[a]]


def triplet_semihard(x, labels, margin, metric, soft=False) -> float:
    d = pairwise(x, metric)
    losses = []
    for a in range(len(labels)):
        negatives = _negatives(labels, a)
        if not negatives:
            continue
        for p in _positives(labels, a):
            farther = [d[a, k] for k in negatives if d[a, k] > d[a, p]]
            chosen = min(farther) if farther else max(d[a, k] for k in negatives)
            losses.append(_hinge(d[a, p] - chosen, margin, soft))
    return float(np.mean(losses)) if losses else 0.0


def triplet_hard(x, labels, margin, metric, soft=False) -> float:
    d = pairwise(x, metric)
    losses = []
    for a in range(len(labels)):
        positives, negatives = _positives(labels, a), _negatives(labels, a)
        if positives and negatives:
            hardest_p = max(d[a, p] for p in positives)
            hardest_n = min(d[a, k] for k in negatives)
            losses.append(_hinge(hardest_p - hardest_n, margin, soft))
    return float(np.mean(losses)) if losses else 0.0


def triplet_all(x, labels, margin, metric) -> float:
    d = pairwise(x, metric)
    total, count = 0.0, 0
    for a in range(len(labels)):
        for p in _positives(labels, a):
            for k in _negatives(labels, a):
                value = d[a, p] - d[a, k] + margin
                if value > 0:
                    total += value
                    count += 1
    return total / count if count else 0.0


def batch_contrastive(x, labels, pos_margin, neg_margin, metric) -> float:
    d = pairwise(x, metric)
    total, count = 0.0, 0
    for i in range(len(labels)):
        for j in range(len(labels)):
            if i == j:
                continue
            if labels[i] == labels[j]:
                cost = max(d[i, j] - pos_margin, 0.0) ** 2
            else:
                cost = max(neg_margin - d[i, j], 0.0) ** 2
            if cost > 0:
                total += cost
                count += 1
    return total / count if count else 0.0

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


# ----------------------------------------------------------------------------
# Query x reference references: every in-batch loss over explicit (n, m)
# positive / negative masks, with per-query weights, and every miner.
# ``pos[a][j]`` / ``neg[a][j]``: reference row j is a positive / negative of
# query a. Weighted means are sum_a w_a (sum of a's values) / sum_a w_a (a's count).


def relation(labels, ref_labels=None, self_index=None):
    """Loop-built (n, m) positive and negative masks; labels are ids or multi-hot rows."""
    labels = np.asarray(labels)
    square = ref_labels is None
    ref = labels if square else np.asarray(ref_labels)
    n, m = len(labels), len(ref)
    pos = np.zeros((n, m), bool)
    neg = np.zeros((n, m), bool)
    for a in range(n):
        for j in range(m):
            if (square and a == j) or (self_index is not None and self_index[a] == j):
                continue
            if labels.ndim == 2:
                same = any(labels[a][k] and ref[j][k] for k in range(labels.shape[1]))
            else:
                same = labels[a] == ref[j]
            pos[a, j], neg[a, j] = same, not same
    return pos, neg


def cross(q, r, metric):
    """(n, m) distances by loops (``metric`` as in :func:`distance`)."""
    return np.array([[distance(u, v, metric) for v in r] for u in q])


def cosine_similarities(q, r):
    return 1.0 - cross(q, r, "cosine")


def _weights(w, n):
    return np.ones(n) if w is None else np.asarray(w, np.float64)


def _ratio(total, count):
    return total / count if count > 0 else 0.0


def ref_triplet(d, pos, neg, margin, mining, w=None, soft=False):
    """Triplet loss on a distance matrix: semi-hard / hard (mean), all (mean over active)."""
    n, m = d.shape
    w = _weights(w, n)
    total = count = 0.0
    for a in range(n):
        negatives = [k for k in range(m) if neg[a, k]]
        positives = [p for p in range(m) if pos[a, p]]
        if not negatives or not positives:
            continue
        if mining == "hard":
            hp = max(d[a, p] for p in positives)
            hn = min(d[a, k] for k in negatives)
            total += w[a] * _hinge(hp - hn, margin, soft)
            count += w[a]
        elif mining == "semi-hard":
            for p in positives:
                farther = [d[a, k] for k in negatives if d[a, k] > d[a, p]]
                chosen = min(farther) if farther else max(d[a, k] for k in negatives)
                total += w[a] * _hinge(d[a, p] - chosen, margin, soft)
                count += w[a]
        else:
            for p in positives:
                for k in negatives:
                    value = d[a, p] - d[a, k] + margin
                    if value > 0:
                        total += w[a] * value
                        count += w[a]
    return _ratio(total, count)


def ref_triplet_mined(d, mined, margin, w=None):
    """Triplet loss on a miner's choice (see :func:`ref_mine`), mean over its triplets."""
    pos, neg, nw, chosen = mined
    n, m = d.shape
    w = _weights(w, n)
    total = count = 0.0
    for a in range(n):
        for p in range(m):
            if not pos[a, p]:
                continue
            if chosen is not None:
                total += w[a] * max(d[a, p] - d[a, chosen[a, p]] + margin, 0.0)
                count += w[a]
                continue
            for k in range(m):
                if neg[a, k]:
                    weight = 1.0 if nw is None else nw[a, k]
                    total += w[a] * weight * max(d[a, p] - d[a, k] + margin, 0.0)
                    count += w[a] * weight
    return _ratio(total, count)


def ref_batch_contrastive(d, pos, neg, pos_margin, neg_margin, w=None, nw=None, nonzero=True):
    n, m = d.shape
    w = _weights(w, n)
    total = count = 0.0
    for a in range(n):
        for j in range(m):
            if pos[a, j]:
                cost, weight = max(d[a, j] - pos_margin, 0.0) ** 2, 1.0
            elif neg[a, j]:
                cost, weight = max(neg_margin - d[a, j], 0.0) ** 2, (1.0 if nw is None else nw[a, j])
            else:
                continue
            if cost > 0 or not nonzero:
                total += w[a] * weight * cost
                count += w[a] * weight
    return _ratio(total, count)


def _log1p_weighted_sum_exp(values, weights=None) -> float:
    values = np.asarray(values, np.float64)
    weights = np.ones_like(values) if weights is None else np.asarray(weights, np.float64)
    top = max(np.max(values), 0.0) if len(values) else 0.0
    return float(top + np.log(np.exp(-top) + np.sum(weights * np.exp(values - top))))


def _log_weighted_sum_exp(values, weights=None) -> float:
    values = np.asarray(values, np.float64)
    weights = np.ones_like(values) if weights is None else np.asarray(weights, np.float64)
    top = np.max(values)
    return float(top + np.log(np.sum(weights * np.exp(values - top))))


def ref_multi_similarity(s, pos, neg, alpha, beta, base, epsilon, w=None, mined=None):
    """Multi-similarity on a similarity matrix; ``mined``: (pos, neg, weights) replaces the paper's mining."""
    n, m = s.shape
    w = _weights(w, n)
    total = 0.0
    for a in range(n):
        if mined is None:
            negatives = [k for k in range(m) if neg[a, k]]
            positives = [p for p in range(m) if pos[a, p]]
            if not negatives or not positives:
                continue
            max_neg = max(s[a, k] for k in negatives)
            min_pos = min(s[a, p] for p in positives)
            kept_p = [p for p in positives if s[a, p] < max_neg + epsilon]
            kept_n = [k for k in negatives if s[a, k] > min_pos - epsilon]
            nwts = None
        else:
            mpos, mneg, mw = mined
            kept_p = [p for p in range(m) if mpos[a, p]]
            kept_n = [k for k in range(m) if mneg[a, k]]
            nwts = None if mw is None else [mw[a, k] for k in kept_n]
        if not kept_p or not kept_n:
            continue
        lp = _log1p_weighted_sum_exp([-alpha * (s[a, p] - base) for p in kept_p]) / alpha
        ln = _log1p_weighted_sum_exp([beta * (s[a, k] - base) for k in kept_n], nwts) / beta
        total += w[a] * (lp + ln)
    return total / np.sum(w) if np.sum(w) > 0 else 0.0


def ref_circle(s, pos, neg, margin, gamma, variant="paper", w=None):
    n, m = s.shape
    w = _weights(w, n)
    total = count = 0.0
    for a in range(n):
        zp = [-gamma * max(1 + margin - s[a, p], 0) * (s[a, p] - (1 - margin)) for p in range(m) if pos[a, p]]
        zn = [gamma * max(s[a, k] + margin, 0) * (s[a, k] - margin) for k in range(m) if neg[a, k]]
        if variant == "paper":
            if zp and zn:
                value = float(np.logaddexp(0.0, _log_weighted_sum_exp(zp) + _log_weighted_sum_exp(zn)))
                if value > 0:
                    total += w[a] * value
                    count += w[a]
        else:
            if zp and zn:
                total += w[a] * (_log1p_weighted_sum_exp(zp) + _log1p_weighted_sum_exp(zn))
            count += w[a]
    return _ratio(total, count)


def ref_supcon(s, pos, neg, temperature, w=None):
    n, m = s.shape
    w = _weights(w, n)
    total = count = 0.0
    for a in range(n):
        others = [j for j in range(m) if pos[a, j] or neg[a, j]]
        positives = [p for p in range(m) if pos[a, p]]
        if not positives:
            continue
        log_norm = _log_weighted_sum_exp([s[a, j] / temperature for j in others])
        value = -np.mean([s[a, p] / temperature - log_norm for p in positives])
        total += w[a] * value
        count += w[a]
    return _ratio(total, count)


def ref_npairs(s, pos, neg, w=None, nw=None):
    n, m = s.shape
    w = _weights(w, n)
    total = count = 0.0
    for a in range(n):
        negatives = [k for k in range(m) if neg[a, k]]
        for p in range(m):
            if not pos[a, p]:
                continue
            if negatives:
                weights = None if nw is None else [nw[a, k] for k in negatives]
                value = _log1p_weighted_sum_exp([s[a, k] - s[a, p] for k in negatives], weights)
            else:
                value = 0.0
            total += w[a] * value
            count += w[a]
    return _ratio(total, count)


def ref_lifted(d, pos, neg, margin, w=None):
    """Lifted structure: the row end's negatives in the reference, the column end's among the queries."""
    n, m = d.shape
    w = _weights(w, n)
    total = count = 0.0
    for a in range(n):
        for j in range(m):
            if not pos[a, j]:
                continue
            terms = [margin - d[a, k] for k in range(m) if neg[a, k]]
            terms += [margin - d[k, j] for k in range(n) if neg[k, j]]
            if not terms:
                continue
            value = 0.5 * max(_log_weighted_sum_exp(terms) + d[a, j], 0.0) ** 2
            total += w[a] * value
            count += w[a]
    return _ratio(total, count)


def ref_quadruplet(d, d_ref, labels, ref_labels, pos, neg, margin_pos, margin_neg, w=None):
    """Batch-hard quadruplet loss; the negative pair is a pair of reference rows (``d_ref``)."""
    n, m = d.shape
    w = _weights(w, n)
    t_total = t_count = q_total = q_count = 0.0
    for a in range(n):
        positives = [d[a, p] for p in range(m) if pos[a, p]]
        negatives = [d[a, k] for k in range(m) if neg[a, k]]
        pairs = [
            d_ref[i, j]
            for i in range(m)
            for j in range(m)
            if ref_labels[i] != ref_labels[j] and labels[a] not in (ref_labels[i], ref_labels[j])
        ]
        if positives and negatives:
            t_total += w[a] * max(max(positives) - min(negatives) + margin_pos, 0.0)
            t_count += w[a]
        if positives and pairs:
            q_total += w[a] * max(max(positives) - min(pairs) + margin_neg, 0.0)
            q_count += w[a]
    return _ratio(t_total, t_count) + _ratio(q_total, q_count)


def ref_mine(kind, d, pos, neg, **params):
    """A miner's choice by loops: ``(positives, negatives, negative_weights, triplet_negative)``."""
    n, m = d.shape
    mpos = np.zeros((n, m), bool)
    mneg = np.zeros((n, m), bool)
    weights = chosen = None
    for a in range(n):
        positives = [p for p in range(m) if pos[a, p]]
        negatives = [k for k in range(m) if neg[a, k]]
        if kind == "semi-hard":
            chosen = np.arange(m)[None].repeat(n, 0) if chosen is None else chosen
            if not negatives:
                continue
            for p in positives:
                farther = [k for k in negatives if d[a, k] > d[a, p]]
                pool = farther or negatives
                target = min(d[a, k] for k in pool) if farther else max(d[a, k] for k in pool)
                k = min(k for k in pool if d[a, k] == target)
                mpos[a, p], mneg[a, k], chosen[a, p] = True, True, k
        elif kind == "hard":
            if positives and negatives:
                hp = max(d[a, p] for p in positives)
                hn = min(d[a, k] for k in negatives)
                mpos[a, min(p for p in positives if d[a, p] == hp)] = True
                mneg[a, min(k for k in negatives if d[a, k] == hn)] = True
        elif kind == "all":
            if positives and negatives:
                mpos[a, positives] = True
                mneg[a, negatives] = True
        elif kind == "multi-similarity":
            eps = params.get("epsilon", 0.1)
            if positives and negatives:
                s = -d
                max_neg = max(s[a, k] for k in negatives)
                min_pos = min(s[a, p] for p in positives)
                for p in positives:
                    mpos[a, p] = s[a, p] < max_neg + eps
                for k in negatives:
                    mneg[a, k] = s[a, k] > min_pos - eps
        elif kind == "pair-margin":
            for p in positives:
                mpos[a, p] = d[a, p] > params.get("pos_margin", 0.2)
            for k in negatives:
                mneg[a, k] = d[a, k] < params.get("neg_margin", 0.8)
        elif kind == "distance-weighted":
            weights = np.zeros((n, m)) if weights is None else weights
            dim, cutoff = params["dim"], params.get("cutoff", 0.5)
            allowed = [k for k in negatives if d[a, k] < params.get("nonzero_loss_cutoff", 1.4)]
            if not allowed:
                continue
            logw = {}
            for k in allowed:
                x = max(d[a, k], cutoff)
                logw[k] = (2 - dim) * np.log(x) - (dim - 3) / 2 * np.log(max(1 - 0.25 * x * x, 1e-8))
            top = max(logw.values())
            norm = sum(np.exp(v - top) for v in logw.values())
            for k in allowed:
                weights[a, k] = np.exp(logw[k] - top) / norm
                mneg[a, k] = True
            mpos[a, positives] = True
        else:
            raise ValueError(kind)
    return mpos, mneg, weights, chosen


def ref_npairs_tuple(labels, anchors, positives, similarity):
    """tensorflow-addons' N-pairs on (anchor, positive) rows for a similarity ``f(u, v)``: loops."""
    n = len(labels)
    total = 0.0
    for i in range(n):
        logits = [similarity(anchors[i], positives[j]) for j in range(n)]
        same = [j for j in range(n) if labels[j] == labels[i]]
        log_norm = _log_weighted_sum_exp(logits)
        total += -np.mean([logits[j] - log_norm for j in same])
    return total / n


def quadruplet_margin(quadruplets, margin_pos, margin_neg, metric):
    """Mean over explicit quadruplets of the two hinge terms, by loops."""
    values = []
    for a, p, n1, n2 in quadruplets:
        d_ap = distance(a, p, metric)
        values.append(max(d_ap - distance(a, n1, metric) + margin_pos, 0.0) + max(d_ap - distance(n1, n2, metric) + margin_neg, 0.0))
    return float(np.mean(values))

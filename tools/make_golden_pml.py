"""Write golden reference values from pytorch-metric-learning (PML).

The dmlkeras tests compare our losses against these files, produced by the
*real* PML losses on fixed random float32 batches.

Run it with the PML virtual environment (see tools/README.md to build it) from
the repository root::

    /work/pmlvenv/bin/python tools/make_golden_pml.py

It writes ``tests/golden/pml_*.npz``.  The run is deterministic (one CPU
thread, fixed seeds, fixed zip timestamps).  The file format is the one of
tools/make_golden.py; in addition ``case{i}_proxies`` / ``case{i}_weights``
hold the class vectors in the dmlkeras layout ``(num_classes, embedding_dim)``.
PML's ``ProxyAnchorLoss.proxies`` already has that layout; the ``W`` of
``ArcFaceLoss`` / ``CosFaceLoss`` is ``(embedding_size, num_classes)``, so the
saved ``weights`` are ``W.T``.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from pytorch_metric_learning import losses, reducers

GENERATOR = "tools/make_golden_pml.py"
OUT_DIR = Path(__file__).resolve().parent.parent / "tests" / "golden"

torch.set_num_threads(1)

Case = dict[str, np.ndarray]

# (members per class, embedding dim) of the SupCon batches, as in make_golden.py.
# Every class has >= 2 members and there are >= 2 classes; batches 2 and 5 are uneven.
BATCH_LAYOUTS: list[tuple[list[int], int]] = [
    ([2] * 4, 4),  # 0: n=8,  P=4 x K=2
    ([4] * 4, 8),  # 1: n=16, P=4 x K=4
    ([2, 3, 5, 6], 4),  # 2: n=16, uneven
    ([4] * 8, 16),  # 3: n=32, P=8 x K=4
    ([8] * 6, 8),  # 4: n=48, P=6 x K=8
    ([2, 2, 3, 5, 9, 11], 16),  # 5: n=32, uneven
]

# Classification-head batches: (num_classes, members per present class, embedding dim).
# Classes absent from a batch are allowed here (they matter for ProxyAnchor's
# normalisation); layout 1 uses 4 of its 10 classes.
HEAD_LAYOUTS: list[tuple[int, list[int], int]] = [
    (4, [4] * 4, 8),  # 0: n=16, every class present
    (10, [3, 5, 2, 6], 16),  # 1: n=16, 4 of 10 classes present, uneven
    (8, [4] * 8, 16),  # 2: n=32, every class present
    (6, [8] * 6, 4),  # 3: n=48, every class present
]

ARCFACE_MARGIN_DEG = math.degrees(0.5)  # 0.5 rad; PML's ArcFaceLoss takes degrees


def versions() -> dict[str, str]:
    """Installed versions of the libraries that produced the values."""
    return {name: metadata.version(name) for name in ("torch", "pytorch-metric-learning", "numpy")}


def make_labels(class_ids: Sequence[int], class_sizes: Sequence[int],
                rng: np.random.Generator) -> np.ndarray:
    """Shuffled int32 labels with ``class_sizes[k]`` copies of ``class_ids[k]``."""
    return rng.permutation(np.repeat(class_ids, class_sizes)).astype(np.int32)


def make_batch(index: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels (n,) int32, ids in [0, 100), and N(0, 1) float32 embeddings (n, d).

    Same seeds and layouts as tools/make_golden.py, hence the same batches.
    """
    class_sizes, dim = BATCH_LAYOUTS[index]
    rng = np.random.default_rng(1000 + index)
    labels = make_labels(rng.choice(100, size=len(class_sizes), replace=False), class_sizes, rng)
    return labels, rng.standard_normal((len(labels), dim)).astype(np.float32)


def make_head_batch(index: int, seed: int) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """A HEAD_LAYOUTS batch: (num_classes, labels, embeddings, class vectors).

    Labels are int32 in [0, num_classes); embeddings (n, d) and class vectors
    (num_classes, d, the dmlkeras layout) are float32 N(0, 1).
    """
    num_classes, class_sizes, dim = HEAD_LAYOUTS[index]
    rng = np.random.default_rng(seed + index)
    present = np.sort(rng.choice(num_classes, size=len(class_sizes), replace=False))
    labels = make_labels(present, class_sizes, rng)
    embeddings = rng.standard_normal((len(labels), dim)).astype(np.float32)
    class_vectors = rng.standard_normal((num_classes, dim)).astype(np.float32)
    return num_classes, labels, embeddings, class_vectors


def scalar(value: torch.Tensor) -> np.ndarray:
    """A reduced loss as a float64 0-d array."""
    return np.asarray(value.detach().numpy(), dtype=np.float64).reshape(())


def float64(value: torch.Tensor) -> np.ndarray:
    """Unreduced loss values as a float64 array."""
    return value.detach().numpy().astype(np.float64)


def json_array(obj: dict[str, Any]) -> np.ndarray:
    """A JSON object as a 0-d numpy string array."""
    return np.array(json.dumps(obj, sort_keys=True))


def write_npz(name: str, meta: dict[str, Any], cases: list[Case]) -> None:
    """Write ``tests/golden/<name>.npz`` (deflated, fixed zip timestamps).

    The result is an ordinary ``.npz``: ``np.load`` reads it without pickle.
    """
    arrays = {"meta": json_array({**meta, "generator": GENERATOR, "cases": len(cases)})}
    for i, case in enumerate(cases):
        arrays.update({f"case{i}_{key}": value for key, value in case.items()})
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(OUT_DIR / f"{name}.npz", "w") as archive:
        for key, value in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asanyarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            archive.writestr(info, buffer.getvalue(), compress_type=zipfile.ZIP_DEFLATED)


def unreduced(loss_class: type, params: dict[str, Any], embeddings: torch.Tensor,
              labels: torch.Tensor, **parameters: np.ndarray) -> dict[str, torch.Tensor]:
    """PML's per-element losses: the same loss built with a DoNothingReducer.

    ``parameters`` sets learnable tensors (``proxies``, ``W``) of that copy.
    Returns ``{sub_loss_name: losses}``.
    """
    loss_obj = loss_class(**params, reducer=reducers.DoNothingReducer())
    for name, value in parameters.items():
        getattr(loss_obj, name).data = torch.from_numpy(value)
    return {name: info["losses"] for name, info in loss_obj(embeddings, labels).items()}


def pml_supcon() -> list[Case]:
    """SupConLoss for temperatures 0.1 and 0.5, three batches each."""
    cases = []
    for temperature, batches in ((0.1, [0, 2, 4]), (0.5, [1, 3, 5])):
        params = {"temperature": temperature}
        for index in batches:
            labels, embeddings = make_batch(index)
            emb_t, lab_t = torch.from_numpy(embeddings), torch.from_numpy(labels).long()
            loss = losses.SupConLoss(**params)(emb_t, lab_t)
            per_anchor = unreduced(losses.SupConLoss, params, emb_t, lab_t)["loss"]
            cases.append({"params": json_array(params), "labels": labels,
                          "embeddings": embeddings, "loss": scalar(loss),
                          "per_sample": float64(per_anchor)})
    return cases


def pml_proxy_anchor() -> list[Case]:
    """ProxyAnchorLoss(margin=0.1, alpha=32) on every head layout, plus one other setting.

    ``per_proxy_pos`` / ``per_proxy_neg`` (C,) are PML's unreduced per-proxy
    positive and negative terms.
    """
    runs = [(index, 0.1, 32.0) for index in range(len(HEAD_LAYOUTS))] + [(1, 0.2, 16.0)]
    cases = []
    for index, margin, alpha in runs:
        num_classes, labels, embeddings, proxies = make_head_batch(index, seed=4000)
        params = {"num_classes": num_classes, "embedding_size": embeddings.shape[1],
                  "margin": margin, "alpha": alpha}
        emb_t, lab_t = torch.from_numpy(embeddings), torch.from_numpy(labels).long()
        loss_obj = losses.ProxyAnchorLoss(**params)
        loss_obj.proxies.data = torch.from_numpy(proxies)
        terms = unreduced(losses.ProxyAnchorLoss, params, emb_t, lab_t, proxies=proxies)
        cases.append({"params": json_array(params), "labels": labels, "embeddings": embeddings,
                      "proxies": proxies, "loss": scalar(loss_obj(emb_t, lab_t)),
                      "per_proxy_pos": float64(terms["pos_loss"]),
                      "per_proxy_neg": float64(terms["neg_loss"])})
    return cases


def head_cases(loss_class: type, runs: list[tuple[int, dict[str, Any]]], seed: int,
               anti_aligned: int | None = None) -> list[Case]:
    """ArcFace/CosFace cases: ``runs`` pairs a HEAD_LAYOUTS index with margin/scale kwargs.

    In case ``anti_aligned`` the first two embeddings are made (nearly) opposite
    to their class vector, so that the target angle exceeds pi - margin.
    """
    cases = []
    for case_index, (index, extra) in enumerate(runs):
        num_classes, labels, embeddings, weights = make_head_batch(index, seed)
        if case_index == anti_aligned:
            noise = np.random.default_rng(seed).standard_normal((2, embeddings.shape[1]))
            embeddings[:2] = (-weights[labels[:2]] + 0.05 * noise).astype(np.float32)
        params = {"num_classes": num_classes, "embedding_size": embeddings.shape[1], **extra}
        emb_t, lab_t = torch.from_numpy(embeddings), torch.from_numpy(labels).long()
        pml_w = np.ascontiguousarray(weights.T)  # PML's W is (embedding_size, num_classes)
        loss_obj = loss_class(**params)
        loss_obj.W.data = torch.from_numpy(pml_w)
        per_sample = unreduced(loss_class, params, emb_t, lab_t, W=pml_w)["loss"]
        cases.append({"params": json_array(params), "labels": labels, "embeddings": embeddings,
                      "weights": weights, "loss": scalar(loss_obj(emb_t, lab_t)),
                      "per_sample": float64(per_sample)})
    return cases


def pml_arcface() -> list[Case]:
    """ArcFaceLoss(margin=0.5 rad given in degrees, scale=64), plus PML's default 28.6 degrees.

    Case 3 has samples whose target angle is beyond pi - margin
    (PML's cos(theta) - margin * sin(margin) branch).
    """
    main = {"margin": ARCFACE_MARGIN_DEG, "scale": 64.0}
    runs = [(index, main) for index in range(len(HEAD_LAYOUTS))]
    runs.append((2, {"margin": 28.6, "scale": 64.0}))
    return head_cases(losses.ArcFaceLoss, runs, seed=5000, anti_aligned=3)


def pml_cosface() -> list[Case]:
    """CosFaceLoss(margin=0.35, scale=64) on every head layout."""
    runs = [(index, {"margin": 0.35, "scale": 64.0}) for index in range(len(HEAD_LAYOUTS))]
    return head_cases(losses.CosFaceLoss, runs, seed=6000)


# ---------------------------------------------------------------------------
# The rest of the proxy family (issue 22): ProxyNCA, NormalizedSoftmax,
# SoftTriple, SubCenterArcFace. Multi-vector weights are saved in the dmlkeras
# layout (num_classes, k, embedding_dim): PML's (embedding_size,
# num_classes * k) column c * k + j is row [c, j].
# ---------------------------------------------------------------------------


def make_multi_vector_batch(index: int, seed: int, per_class: int,
                            near: bool = False) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """A HEAD_LAYOUTS batch with ``per_class`` vectors per class: (num_classes, labels, embeddings, vectors (C, k, d)).

    With ``near``, every other sample is one of its class's vectors plus
    N(0, 0.3^2) noise (so some samples are close to a sub-centre, the others
    are outliers at ~90 degrees).
    """
    num_classes, labels, embeddings, _ = make_head_batch(index, seed)
    rng = np.random.default_rng(seed + 100 + index)
    vectors = rng.standard_normal((num_classes, per_class, embeddings.shape[1])).astype(np.float32)
    if near:
        chosen = rng.integers(0, per_class, size=len(labels))
        close = vectors[labels, chosen] + 0.3 * rng.standard_normal(embeddings.shape)
        embeddings[::2] = close[::2].astype(np.float32)
    return num_classes, labels, embeddings, vectors


def pml_layout(vectors: np.ndarray) -> np.ndarray:
    """(C, k, d) vectors as PML's (d, C * k) weight."""
    return np.ascontiguousarray(vectors.reshape(-1, vectors.shape[-1]).T)


def pml_proxy_nca() -> list[Case]:
    """ProxyNCALoss(softmax_scale=1) (PML's defaults) on every head layout, plus softmax_scale=8."""
    runs = [(index, 1.0) for index in range(len(HEAD_LAYOUTS))] + [(2, 8.0)]
    cases = []
    for index, softmax_scale in runs:
        num_classes, labels, embeddings, proxies = make_head_batch(index, seed=7000)
        params = {"num_classes": num_classes, "embedding_size": embeddings.shape[1], "softmax_scale": softmax_scale}
        emb_t, lab_t = torch.from_numpy(embeddings), torch.from_numpy(labels).long()
        loss_obj = losses.ProxyNCALoss(**params)
        loss_obj.proxies.data = torch.from_numpy(proxies)
        per_sample = unreduced(losses.ProxyNCALoss, params, emb_t, lab_t, proxies=proxies)["loss"]
        cases.append({"params": json_array(params), "labels": labels, "embeddings": embeddings,
                      "proxies": proxies, "loss": scalar(loss_obj(emb_t, lab_t)),
                      "per_sample": float64(per_sample)})
    return cases


def pml_normalized_softmax() -> list[Case]:
    """NormalizedSoftmaxLoss(temperature=0.05) (PML's default) on every head layout, plus temperature=0.5."""
    runs = [(index, {"temperature": 0.05}) for index in range(len(HEAD_LAYOUTS))]
    runs.append((1, {"temperature": 0.5}))
    return head_cases(losses.NormalizedSoftmaxLoss, runs, seed=8000)


def pml_soft_triple() -> list[Case]:
    """SoftTripleLoss(centers_per_class=10, la=20, gamma=0.1, margin=0.01) (PML's defaults) per layout, plus one other.

    ``centers`` is (num_classes, centers_per_class, d).
    """
    default = {"centers_per_class": 10, "la": 20.0, "gamma": 0.1, "margin": 0.01}
    runs = [(index, default) for index in range(len(HEAD_LAYOUTS))]
    runs.append((3, {"centers_per_class": 3, "la": 8.0, "gamma": 0.5, "margin": 0.2}))
    cases = []
    for index, extra in runs:
        num_classes, labels, embeddings, centers = make_multi_vector_batch(index, 9000, extra["centers_per_class"])
        params = {"num_classes": num_classes, "embedding_size": embeddings.shape[1], **extra}
        emb_t, lab_t = torch.from_numpy(embeddings), torch.from_numpy(labels).long()
        loss_obj = losses.SoftTripleLoss(**params)
        loss_obj.fc.data = torch.from_numpy(pml_layout(centers))
        per_sample = unreduced(losses.SoftTripleLoss, params, emb_t, lab_t, fc=pml_layout(centers))["loss"]
        cases.append({"params": json_array(params), "labels": labels, "embeddings": embeddings,
                      "centers": centers, "loss": scalar(loss_obj(emb_t, lab_t)),
                      "per_sample": float64(per_sample)})
    return cases


def pml_subcenter_arcface() -> list[Case]:
    """SubCenterArcFaceLoss(margin=0.5 rad in degrees, scale=64, sub_centers=3) per layout, plus PML's defaults.

    ``weights`` is (num_classes, sub_centers, d). Each case also holds
    ``get_outliers(threshold=75)``: ``outliers`` (n,) bool, and
    ``dominant_centers`` (num_classes, d), rows of absent classes zero
    (``present`` (num_classes,) bool says which rows PML set).
    Batches have half their samples near a sub-centre.
    """
    main = {"margin": ARCFACE_MARGIN_DEG, "scale": 64.0, "sub_centers": 3}
    runs = [(index, main) for index in range(len(HEAD_LAYOUTS))]
    runs.append((1, {"margin": 28.6, "scale": 64.0, "sub_centers": 2}))
    cases = []
    for index, extra in runs:
        num_classes, labels, embeddings, weights = make_multi_vector_batch(index, 10000, extra["sub_centers"], near=True)
        params = {"num_classes": num_classes, "embedding_size": embeddings.shape[1], **extra}
        emb_t, lab_t = torch.from_numpy(embeddings), torch.from_numpy(labels).long()
        loss_obj = losses.SubCenterArcFaceLoss(**params)
        loss_obj.W.data = torch.from_numpy(pml_layout(weights))
        per_sample = unreduced(losses.SubCenterArcFaceLoss, params, emb_t, lab_t, W=pml_layout(weights))["loss"]
        outlier_indices, dominant = loss_obj.get_outliers(emb_t, lab_t, threshold=75)
        present = np.isin(np.arange(num_classes), labels)
        outliers = np.zeros(len(labels), bool)
        outliers[outlier_indices.numpy().astype(int)] = True
        dominant_centers = np.where(present[:, None], dominant.detach().numpy().T, 0.0).astype(np.float32)
        cases.append({"params": json_array(params), "labels": labels, "embeddings": embeddings,
                      "weights": weights, "loss": scalar(loss_obj(emb_t, lab_t)),
                      "per_sample": float64(per_sample), "outliers": outliers,
                      "dominant_centers": dominant_centers, "present": present})
    return cases


def write_proxy_family(meta: dict[str, Any]) -> None:
    """Write the four files of this block."""
    write_npz("pml_proxy_nca", {**meta, "loss": "ProxyNCALoss"}, pml_proxy_nca())
    write_npz("pml_normalized_softmax", {**meta, "loss": "NormalizedSoftmaxLoss"}, pml_normalized_softmax())
    write_npz("pml_soft_triple", {**meta, "loss": "SoftTripleLoss"}, pml_soft_triple())
    write_npz("pml_subcenter_arcface", {**meta, "loss": "SubCenterArcFaceLoss"}, pml_subcenter_arcface())


# --------------------------------------------------------------------------- end of the proxy-family block


# Two-view batches (samples n, embedding dim d) of the self-supervised losses.
VIEW_LAYOUTS: list[tuple[int, int]] = [(4, 4), (8, 8), (16, 4), (32, 16)]


def make_views(index: int, seed: int, scale: float = 1.0) -> np.ndarray:
    """Two correlated views (n, 2, d) float32 of VIEW_LAYOUTS[index]: a shared N(0, 1) part plus noise."""
    n, dim = VIEW_LAYOUTS[index]
    rng = np.random.default_rng(seed + index)
    shared = rng.standard_normal((n, 1, dim))
    return (scale * (shared + 0.5 * rng.standard_normal((n, 2, dim)))).astype(np.float32)


def pml_ntxent() -> list[Case]:
    """NTXentLoss: temperatures 0.07 and 0.5 on labelled batches, then two-view batches.

    Cases 0-5: the SupCon batches (class labels). Cases 6-9: ``views`` (n, 2, d), fed to
    PML as the (2n, d) rows ``views.reshape(-1, d)`` with sample ids ``repeat(arange(n), 2)``
    as labels; ``per_sample`` there is the per-pair loss of each row (one positive each).
    """
    cases = []
    for temperature, batches in ((0.07, [0, 2, 4]), (0.5, [1, 3, 5])):
        params = {"temperature": temperature}
        for index in batches:
            labels, embeddings = make_batch(index)
            emb_t, lab_t = torch.from_numpy(embeddings), torch.from_numpy(labels).long()
            cases.append({"params": json_array(params), "labels": labels, "embeddings": embeddings,
                          "loss": scalar(losses.NTXentLoss(**params)(emb_t, lab_t))})
    for index, temperature in enumerate((0.07, 0.1, 0.5, 0.2)):
        params = {"temperature": temperature}
        views = make_views(index, seed=7000)
        n, _, dim = views.shape
        emb_t = torch.from_numpy(views.reshape(-1, dim))
        lab_t = torch.from_numpy(np.repeat(np.arange(n), 2)).long()
        per_pair = unreduced(losses.NTXentLoss, params, emb_t, lab_t)["loss"]
        cases.append({"params": json_array(params), "views": views,
                      "loss": scalar(losses.NTXentLoss(**params)(emb_t, lab_t)),
                      "per_sample": float64(per_pair)})
    return cases


def pml_vicreg() -> list[Case]:
    """VICRegLoss(embeddings=views[:, 0], ref_emb=views[:, 1]): default weights, then others.

    Cases 4-7 scale the views by 3 (every standard deviation above 1: no variance term).
    """
    default = {"invariance_lambda": 25.0, "variance_mu": 25.0, "covariance_v": 1.0, "eps": 1e-4}
    other = {"invariance_lambda": 5.0, "variance_mu": 10.0, "covariance_v": 2.0, "eps": 1e-3}
    cases = []
    for scale in (1.0, 3.0):
        for index in range(len(VIEW_LAYOUTS)):
            params = default if index % 2 == 0 else other
            views = make_views(index, seed=8000, scale=scale)
            loss = losses.VICRegLoss(**params)(torch.from_numpy(views[:, 0]),
                                               ref_emb=torch.from_numpy(views[:, 1]))
            cases.append({"params": json_array(params), "views": views, "loss": scalar(loss)})
    return cases


def main() -> None:
    """Generate every pml_* golden file."""
    meta = {"library": "pytorch-metric-learning", "versions": versions()}
    write_npz("pml_supcon", {**meta, "loss": "SupConLoss"}, pml_supcon())
    write_npz("pml_proxy_anchor", {**meta, "loss": "ProxyAnchorLoss"}, pml_proxy_anchor())
    write_npz("pml_arcface", {**meta, "loss": "ArcFaceLoss"}, pml_arcface())
    write_npz("pml_cosface", {**meta, "loss": "CosFaceLoss"}, pml_cosface())
    write_proxy_family(meta)
    write_npz("pml_ntxent", {**meta, "loss": "NTXentLoss"}, pml_ntxent())
    write_npz("pml_vicreg", {**meta, "loss": "VICRegLoss"}, pml_vicreg())


if __name__ == "__main__":
    main()

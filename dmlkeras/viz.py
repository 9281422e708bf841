"""Matplotlib plots for embeddings, verification and retrieval results.

Every function takes NumPy arrays and an optional ``ax=`` (or ``fig=``) to
draw into, and returns the Axes (or Figure) it drew on, so plots can be
combined and tested. Nothing here imports tensorflow or a model.

Images (``images=``, ``query_images=``, ...) may be batches of shape
``(n, h, w)``, ``(n, h, w, 1)`` or ``(n, h, w, 3)``, of dtype uint8 (0-255;
other integer types are read the same way) or float in ``[0, 1]``.

* :func:`plot_embeddings` - 2-D t-SNE / PCA / UMAP map coloured by class,
  with optional image thumbnails.
* :func:`plot_roc`, :func:`plot_distance_histograms` - verification (the
  ROC curve is :func:`dmlkeras.evaluation.roc_curve`).
* :func:`plot_neighbors`, :func:`plot_image_pairs`, :func:`plot_image_grid` -
  retrieved items, hardest pairs, galleries.
* :func:`plot_history` - Keras training curves.
* :func:`plot_sweep` - a metric against a swept hyper-parameter, mean +-
  standard error over seeds (the table of
  :func:`dmlkeras.evaluation.compare_runs`).
* :func:`export_projector` - files for the TensorBoard Embedding Projector.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.offsetbox import AnnotationBbox, OffsetImage
from numpy.typing import ArrayLike

from dmlkeras._validation import check_int, check_pairs
from dmlkeras.evaluation import roc_curve

__all__ = [
    "plot_embeddings",
    "plot_roc",
    "plot_distance_histograms",
    "plot_neighbors",
    "plot_image_pairs",
    "plot_image_grid",
    "plot_history",
    "plot_sweep",
    "export_projector",
]

EMBEDDING_METHODS = ("tsne", "pca", "umap")
_METHOD_NAMES = {"tsne": "t-SNE", "pca": "PCA", "umap": "UMAP"}
_CORRECT_COLOR = "tab:green"
_WRONG_COLOR = "red"
_SPRITE_MAX_SIDE = 8192


# ---------------------------------------------------------------- helpers
def _image_batch(images: ArrayLike, name: str, n: int | None = None) -> np.ndarray:
    """Validate a batch of images; return float32 (n, h, w) or (n, h, w, 3) in [0, 1]."""
    arr = np.asarray(images)
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if not (arr.ndim == 3 or (arr.ndim == 4 and arr.shape[-1] == 3)):
        raise ValueError(
            f"{name} must have shape (n, h, w), (n, h, w, 1) or (n, h, w, 3); got shape {np.shape(images)}."
        )
    if n is not None and arr.shape[0] < n:
        raise ValueError(f"{name} has {arr.shape[0]} images; at least {n} are needed.")
    if np.issubdtype(arr.dtype, np.integer):  # 8-bit intensities, whatever the int type
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise ValueError(f"{name}: integer images must be in [0, 255]; got values in [{arr.min()}, {arr.max()}].")
        return arr.astype(np.float32) / 255.0
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{name} must be uint8 or float in [0, 1]; got dtype {arr.dtype}.")
    arr = arr.astype(np.float32)
    if arr.size and (not np.all(np.isfinite(arr)) or arr.min() < -1e-3 or arr.max() > 1.0 + 1e-3):
        raise ValueError(
            f"{name}: float images must be in [0, 1] (uint8 in [0, 255]); got values in "
            f"[{np.nanmin(arr):.3g}, {np.nanmax(arr):.3g}]. Rescale them first."
        )
    return np.clip(arr, 0.0, 1.0)


def _show(ax: Axes, img: np.ndarray) -> None:
    if img.ndim == 2:
        ax.imshow(img, cmap="gray", vmin=0.0, vmax=1.0)
    else:
        ax.imshow(img)


def _bare(ax: Axes) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def _new_ax(ax: Axes | None, figsize: tuple[float, float] = (6.0, 5.0)) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def _new_fig(fig: Figure | None, figsize: tuple[float, float]) -> Figure:
    if fig is None:
        fig = plt.figure(figsize=figsize)
    else:
        fig.clear()
    return fig


def _class_name(label: Any, class_names: Sequence[str] | Mapping[Any, str] | None) -> str:
    if class_names is None:
        return str(label)
    if isinstance(class_names, Mapping):
        return str(class_names.get(label, label))
    try:
        return str(class_names[int(label)])
    except (ValueError, TypeError, IndexError) as err:
        raise ValueError(
            f"class_names as a sequence is indexed by integer labels 0..{len(class_names) - 1}; "
            f"label {label!r} has no entry (pass a dict label -> name instead)."
        ) from err


def _class_colors(n: int) -> list[Any]:
    if n <= 10:
        return [matplotlib.colormaps["tab10"](i) for i in range(n)]
    if n <= 20:
        return [matplotlib.colormaps["tab20"](i) for i in range(n)]
    cmap = matplotlib.colormaps["turbo"]
    return [cmap(v) for v in np.linspace(0.05, 0.95, n)]


# -------------------------------------------------------------- embeddings
def _project_2d(x: np.ndarray, method: str, seed: int) -> tuple[np.ndarray, tuple[str, str]]:
    n, d = x.shape
    if method == "pca":
        from sklearn.decomposition import PCA  # noqa: PLC0415

        pca = PCA(n_components=2, random_state=seed)
        xy = pca.fit_transform(x)
        ratio = pca.explained_variance_ratio_
        return xy, (f"PC 1 ({ratio[0]:.1%} var.)", f"PC 2 ({ratio[1]:.1%} var.)")
    if method == "tsne":
        from sklearn.decomposition import PCA  # noqa: PLC0415
        from sklearn.manifold import TSNE  # noqa: PLC0415

        if d > 50 and n > 50:  # the usual speed-up: t-SNE of the top 50 PCs
            x = PCA(n_components=50, random_state=seed).fit_transform(x)
        perplexity = float(min(30.0, max(1.0, (n - 1) / 3.0)))
        xy = TSNE(
            n_components=2, perplexity=perplexity, init="pca", learning_rate="auto", random_state=seed
        ).fit_transform(x)
        return xy, ("t-SNE 1", "t-SNE 2")
    try:
        import umap  # noqa: PLC0415
    except ImportError as err:
        raise ImportError("method='umap' needs umap-learn: pip install umap-learn (or use 'tsne' / 'pca').") from err
    xy = umap.UMAP(n_components=2, n_neighbors=max(2, min(15, n - 1)), random_state=seed).fit_transform(x)
    return np.asarray(xy), ("UMAP 1", "UMAP 2")


def plot_embeddings(
    embeddings: ArrayLike,
    labels: ArrayLike,
    method: str = "tsne",
    images: ArrayLike | None = None,
    n_images: int = 40,
    class_names: Sequence[str] | Mapping[Any, str] | None = None,
    ax: Axes | None = None,
    seed: int = 0,
    max_points: int = 5000,
    legend: bool | str = "auto",
    image_zoom: float | None = None,
) -> Axes:
    """Scatter plot of a 2-D projection of embeddings, coloured by class.

    Parameters
    ----------
    embeddings : array-like of shape (n, d), d >= 2
    labels : array-like of shape (n,)
    method : {"tsne", "pca", "umap"}, default "tsne"
        scikit-learn ``TSNE`` (``init="pca"``, ``random_state=seed``,
        perplexity ``min(30, (n - 1) / 3)`` so tiny sets work; inputs with
        more than 50 dimensions are first reduced to 50 by PCA), ``PCA``, or
        ``umap.UMAP`` (needs ``pip install umap-learn``).
    images : array-like of shape (n, h, w[, c]), optional
        Images of the embedded items: ``n_images`` of them, picked at random,
        are drawn as thumbnails at their points, framed in their class colour.
    n_images : int, default 40
    class_names : sequence or dict, optional
        Legend names: ``class_names[label]`` (sequence indexed by integer
        labels, or a dict).
    ax : matplotlib Axes, optional
    seed : int, default 0
        Seed of the projection and of the subsampling.
    max_points : int, default 5000
        Larger sets are randomly subsampled to this many points first.
    legend : bool or "auto", default "auto"
        ``"auto"``: a legend when there are at most 20 classes.
    image_zoom : float, optional
        Thumbnail zoom; default: about 28 pixels on screen.

    Returns
    -------
    matplotlib.axes.Axes
        One scatter collection per class (in sorted label order).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> emb = np.concatenate([rng.normal(0, 1, (20, 8)), rng.normal(5, 1, (20, 8))])
    >>> ax = plot_embeddings(emb, np.repeat([0, 1], 20), method="pca", class_names=["cat", "dog"])
    >>> [t.get_text() for t in ax.get_legend().get_texts()]
    ['cat', 'dog']
    >>> sum(len(c.get_offsets()) for c in ax.collections)
    40
    """
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 2:
        raise ValueError(
            f"embeddings must be a 2-D array of shape (n, d) with n >= 2 and d >= 2; got shape {x.shape}."
        )
    if not np.all(np.isfinite(x)):
        raise ValueError("embeddings contains NaN or infinite values.")
    y = np.asarray(labels)
    if y.shape != (x.shape[0],):
        raise ValueError(f"labels must have shape ({x.shape[0]},); got shape {y.shape}.")
    if method not in EMBEDDING_METHODS:
        raise ValueError(f"method must be one of {EMBEDDING_METHODS}; got {method!r}.")
    max_points = check_int(max_points, "max_points")
    imgs = None
    if images is not None:
        imgs = _image_batch(images, "images")
        if imgs.shape[0] != x.shape[0]:
            raise ValueError(f"images must have one image per embedding ({x.shape[0]}); got {imgs.shape[0]}.")
    rng = np.random.default_rng(seed)
    n = x.shape[0]
    sel = np.sort(rng.choice(n, size=max_points, replace=False)) if n > max_points else np.arange(n)
    xy, (xlabel, ylabel) = _project_2d(x[sel], method, seed)

    ax = _new_ax(ax, (7.0, 6.0))
    ys = y[sel]
    classes = np.unique(ys)
    colors = _class_colors(classes.size)
    size = 12 if sel.size <= 2000 else 4
    for color, c in zip(colors, classes):
        m = ys == c
        ax.scatter(xy[m, 0], xy[m, 1], s=size, color=color, label=_class_name(c, class_names), alpha=0.8, linewidths=0)
    if imgs is not None and n_images > 0:
        pick = np.sort(rng.choice(sel.size, size=min(int(n_images), sel.size), replace=False))
        zoom = image_zoom if image_zoom is not None else 28.0 / max(imgs.shape[1:3])
        color_of = {c: col for c, col in zip(classes.tolist(), colors)}
        for j in pick:
            img = imgs[sel[j]]
            box = OffsetImage(img, zoom=zoom, cmap="gray" if img.ndim == 2 else None)
            ab = AnnotationBbox(
                box, (xy[j, 0], xy[j, 1]), frameon=True, pad=0.1,
                bboxprops={"edgecolor": color_of[ys[j].item()], "linewidth": 1.5},
            )
            ax.add_artist(ab)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{_METHOD_NAMES[method]} of {sel.size} embeddings")
    if method != "pca":
        _bare(ax)
    if legend is True or (legend == "auto" and classes.size <= 20):
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", markerscale=1.5, frameon=False)
    return ax


# ----------------------------------------------------------- verification
def plot_roc(
    distances: ArrayLike,
    is_same: ArrayLike,
    ax: Axes | None = None,
    label: str | None = None,
    log_scale: bool = False,
) -> Axes:
    """ROC curve of pair distances (lower = same), with AUC and EER.

    Call it several times on one ``ax`` to compare methods: each call adds
    one curve (legend ``"label: AUC = ..., EER = ..."``) and one EER marker;
    the chance diagonal is drawn once.

    Parameters
    ----------
    distances : array-like of shape (n_pairs,)
    is_same : array-like of shape (n_pairs,)
        Boolean, both classes present.
    ax : matplotlib Axes, optional
    label : str, optional
        Method name for the legend.
    log_scale : bool, default False
        Logarithmic false accept rate axis (to read TAR at small FAR).

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> ax = plot_roc([0.1, 0.4, 0.35, 0.8], [True, True, False, False], label="model")
    >>> ax.get_legend().get_texts()[0].get_text()
    'model: AUC = 0.750, EER = 50.0%'
    """
    d, s = check_pairs(distances, is_same)
    roc = roc_curve(d, s)
    fpr, tpr, auc, eer = roc.far, roc.tar, roc.auc, roc.eer
    ax = _new_ax(ax, (5.5, 5.0))
    if not any(line.get_gid() == "chance" for line in ax.get_lines()) and not log_scale:
        ax.plot([0, 1], [0, 1], ls=":", color="grey", lw=1, gid="chance", label="_nolegend_")
    text = f"AUC = {auc:.3f}, EER = {eer:.1%}"
    (line,) = ax.plot(fpr, tpr, lw=1.8, label=f"{label}: {text}" if label else text, gid="roc")
    ax.plot([eer], [1.0 - eer], "o", color=line.get_color(), ms=6, gid="eer", label="_nolegend_")
    if log_scale:
        ax.set_xscale("log")
        ax.set_xlim(max(1e-4, 0.5 / max(1, int((~s).sum()))), 1.0)
    else:
        ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.01)
    ax.set_xlabel("False accept rate (FPR)")
    ax.set_ylabel("True accept rate (TPR)")
    if not ax.get_title():
        ax.set_title("ROC (dot: equal error rate)")
    ax.legend(loc="lower right", fontsize="small")
    return ax


def plot_distance_histograms(
    distances: ArrayLike,
    is_same: ArrayLike,
    threshold: float | None = None,
    ax: Axes | None = None,
    bins: int = 50,
) -> Axes:
    """Histograms of same-pair and different-pair distances.

    Both are normalised to densities (pair counts in the legend) on shared
    bins; ``threshold`` is drawn as a vertical dashed line.

    Parameters
    ----------
    distances : array-like of shape (n_pairs,)
    is_same : array-like of shape (n_pairs,)
    threshold : float, optional
    ax : matplotlib Axes, optional
    bins : int, default 50

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> ax = plot_distance_histograms([0.1, 0.2, 0.7, 0.9], [1, 1, 0, 0], threshold=0.5, bins=4)
    >>> [t.get_text() for t in ax.get_legend().get_texts()]
    ['same (n=2)', 'different (n=2)', 'threshold = 0.5']
    """
    d, s = check_pairs(distances, is_same)
    bins = check_int(bins, "bins")
    edges = np.histogram_bin_edges(d, bins=bins)
    ax = _new_ax(ax, (6.0, 4.0))
    for mask, name, color in ((s, "same", "tab:green"), (~s, "different", "tab:red")):
        if mask.any():
            ax.hist(d[mask], bins=edges, density=True, alpha=0.5, color=color, label=f"{name} (n={int(mask.sum())})")
    if threshold is not None:
        thr = float(threshold)
        ax.axvline(thr, color="black", ls="--", lw=1.5, label=f"threshold = {thr:.3g}")
    ax.set_xlabel("distance")
    ax.set_ylabel("density")
    ax.set_title("Pair distances")
    ax.legend(fontsize="small")
    return ax


# ---------------------------------------------------------------- images
def plot_neighbors(
    query_images: ArrayLike,
    gallery_images: ArrayLike,
    indices: ArrayLike,
    correct: ArrayLike | None = None,
    n_queries: int = 8,
    fig: Figure | None = None,
    distances: ArrayLike | None = None,
) -> Figure:
    """Rows of query images followed by their retrieved gallery items.

    Parameters
    ----------
    query_images : array-like of shape (q, h, w[, c])
    gallery_images : array-like of shape (n, h', w'[, c])
    indices : array-like of int, shape (q, k)
        Gallery indices retrieved for each query (e.g. from
        :meth:`dmlkeras.index.NearestNeighbors.search`).
    correct : array-like of bool, shape (q, k), optional
        Whether each retrieved item is relevant: outlined green when True,
        red when False (no outline when omitted).
    n_queries : int, default 8
        The first ``n_queries`` rows are drawn.
    fig : matplotlib Figure, optional
        Cleared and reused.
    distances : array-like of shape (q, k), optional
        Written under each retrieved item.

    Returns
    -------
    matplotlib.figure.Figure
        ``n_queries * (k + 1)`` axes, row-major.

    Examples
    --------
    >>> import numpy as np
    >>> gallery = np.random.default_rng(0).random((5, 8, 8))
    >>> fig = plot_neighbors(gallery[:2], gallery, [[0, 3], [1, 2]], correct=[[True, False], [True, True]])
    >>> len(fig.axes)
    6
    """
    idx = np.asarray(indices)
    if idx.ndim != 2 or idx.shape[1] == 0 or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"indices must be an int array of shape (q, k); got {idx.dtype} array of shape {idx.shape}.")
    rows = min(check_int(n_queries, "n_queries"), idx.shape[0])
    qimg = _image_batch(query_images, "query_images", n=rows)
    gimg = _image_batch(gallery_images, "gallery_images")
    if idx[:rows].min() < 0 or idx[:rows].max() >= gimg.shape[0]:
        raise ValueError(f"indices must be in [0, {gimg.shape[0] - 1}] (gallery_images has {gimg.shape[0]} images).")
    ok = None
    if correct is not None:
        ok = np.asarray(correct)
        if ok.shape != idx.shape:
            raise ValueError(f"correct must have the shape of indices {idx.shape}; got {ok.shape}.")
        ok = ok.astype(bool)
    dist = None
    if distances is not None:
        dist = np.asarray(distances, dtype=np.float64)
        if dist.shape != idx.shape:
            raise ValueError(f"distances must have the shape of indices {idx.shape}; got {dist.shape}.")
    k = idx.shape[1]
    fig = _new_fig(fig, (1.2 * (k + 1) + 0.3, 1.35 * rows + 0.4))
    axes = fig.subplots(rows, k + 1, squeeze=False)
    for r in range(rows):
        _show(axes[r, 0], qimg[r])
        axes[r, 0].set_axis_off()
        for j in range(k):
            ax = axes[r, j + 1]
            _show(ax, gimg[idx[r, j]])
            _bare(ax)
            if ok is None:
                for spine in ax.spines.values():
                    spine.set_visible(False)
            else:
                color = _CORRECT_COLOR if ok[r, j] else _WRONG_COLOR
                for spine in ax.spines.values():
                    spine.set_edgecolor(color)
                    spine.set_linewidth(3)
            if dist is not None:
                ax.set_xlabel(f"{dist[r, j]:.3g}", fontsize="small")
    axes[0, 0].set_title("query", fontsize="small")
    for j in range(k):
        axes[0, j + 1].set_title(f"#{j + 1}", fontsize="small")
    return fig


def _pad_to(img: np.ndarray, h: int, rgb: bool) -> np.ndarray:
    if rgb and img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    if img.shape[0] < h:
        pad = [(0, h - img.shape[0]), (0, 0)] + ([(0, 0)] if img.ndim == 3 else [])
        img = np.pad(img, pad, constant_values=1.0)
    return img


def plot_image_pairs(
    images_a: ArrayLike,
    images_b: ArrayLike,
    titles: Sequence[str] | None = None,
    ncols: int = 4,
    fig: Figure | None = None,
) -> Figure:
    """Grid of image pairs, each pair side by side in one panel.

    Typical use: the hardest false accepts / rejects of a verification
    model (:func:`dmlkeras.evaluation.hardest_errors`) with their distances
    as titles.

    Parameters
    ----------
    images_a, images_b : array-like of shape (n, h, w[, c])
        First and second image of each pair (gray and colour may be mixed;
        a shorter image is padded with white).
    titles : sequence of str, optional
        One per pair.
    ncols : int, default 4
        Pairs per row.
    fig : matplotlib Figure, optional

    Returns
    -------
    matplotlib.figure.Figure
        One axes per pair (empty grid cells are removed).

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((3, 4, 4), dtype=np.uint8)
    >>> fig = plot_image_pairs(a, a + 255, titles=["d=0.1", "d=0.2", "d=0.3"], ncols=2)
    >>> [ax.get_title() for ax in fig.axes]
    ['d=0.1', 'd=0.2', 'd=0.3']
    """
    a = _image_batch(images_a, "images_a")
    b = _image_batch(images_b, "images_b")
    n = a.shape[0]
    if b.shape[0] != n or n == 0:
        raise ValueError(f"images_a and images_b must hold the same number (>= 1) of images; got {n} and {b.shape[0]}.")
    if titles is not None and len(titles) != n:
        raise ValueError(f"titles must have one entry per pair ({n}); got {len(titles)}.")
    ncols = min(check_int(ncols, "ncols"), n)
    nrows = math.ceil(n / ncols)
    rgb = a.ndim == 4 or b.ndim == 4
    h = max(a.shape[1], b.shape[1])
    fig = _new_fig(fig, (2.6 * ncols, 1.6 * nrows + 0.3))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for i in range(n):
        left, right = _pad_to(a[i], h, rgb), _pad_to(b[i], h, rgb)
        gap = np.ones((h, max(1, h // 16)) + left.shape[2:], dtype=np.float32)
        _show(axes[i], np.concatenate([left, gap, right], axis=1))
        axes[i].set_axis_off()
        if titles is not None:
            axes[i].set_title(str(titles[i]), fontsize="small")
    for ax in axes[n:]:
        fig.delaxes(ax)
    return fig


def plot_image_grid(
    images: ArrayLike,
    titles: Sequence[str] | None = None,
    ncols: int = 8,
    fig: Figure | None = None,
) -> Figure:
    """Grid of images with optional titles (e.g. faces with names).

    Parameters
    ----------
    images : array-like of shape (n, h, w[, c])
    titles : sequence of str, optional
        One per image.
    ncols : int, default 8
    fig : matplotlib Figure, optional

    Returns
    -------
    matplotlib.figure.Figure
        One axes per image (empty grid cells are removed).

    Examples
    --------
    >>> import numpy as np
    >>> fig = plot_image_grid(np.zeros((5, 6, 6, 3)), titles=list("abcde"), ncols=2)
    >>> len(fig.axes), fig.axes[4].get_title()
    (5, 'e')
    """
    imgs = _image_batch(images, "images")
    n = imgs.shape[0]
    if n == 0:
        raise ValueError("images must hold at least one image.")
    if titles is not None and len(titles) != n:
        raise ValueError(f"titles must have one entry per image ({n}); got {len(titles)}.")
    ncols = min(check_int(ncols, "ncols"), n)
    nrows = math.ceil(n / ncols)
    fig = _new_fig(fig, (1.4 * ncols, 1.5 * nrows + 0.2))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for i in range(n):
        _show(axes[i], imgs[i])
        axes[i].set_axis_off()
        if titles is not None:
            axes[i].set_title(str(titles[i]), fontsize="small")
    for ax in axes[n:]:
        fig.delaxes(ax)
    return fig


# ---------------------------------------------------------------- history
def _history_dict(history: Any) -> dict[str, list[float]]:
    if hasattr(history, "history") and isinstance(history.history, Mapping):  # keras History
        history = history.history
    if hasattr(history, "columns") and hasattr(history, "to_dict"):  # pandas DataFrame
        return {str(c): [float(v) for v in history[c]] for c in history.columns}
    if isinstance(history, Mapping):
        return {str(k): [float(v) for v in np.ravel(np.asarray(vals, dtype=np.float64))] for k, vals in history.items()}
    raise ValueError(
        "history must be a keras History, a dict of lists or a pandas DataFrame; "
        f"got {type(history).__name__}."
    )


def plot_history(history: Any, metrics: Sequence[str] | None = None, fig: Figure | None = None) -> Figure:
    """Training curves: one panel per metric, train and ``val_`` together.

    Parameters
    ----------
    history : keras History, dict of lists, or pandas DataFrame
        E.g. ``model.fit(...)``, ``history.history`` or
        ``pandas.read_csv`` of a ``CSVLogger`` file (an ``epoch`` column is
        used as the x axis). NaN values (epochs a callback skipped) leave
        gaps; points are marked so isolated values stay visible.
    metrics : sequence of str, optional
        Base names to plot (without ``val_``), e.g. ``["loss"]``; default:
        every metric, in order of appearance.
    fig : matplotlib Figure, optional

    Returns
    -------
    matplotlib.figure.Figure
        One axes per metric, titled with its name.

    Examples
    --------
    >>> h = {"loss": [1.0, 0.5], "val_loss": [1.2, 0.7], "val_precision_at_1": [0.3, 0.6]}
    >>> fig = plot_history(h)
    >>> [ax.get_title() for ax in fig.axes]
    ['loss', 'precision_at_1']
    >>> [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    ['train', 'validation']
    """
    h = _history_dict(history)
    epochs = h.pop("epoch", None)
    names: list[str] = []
    for key in h:
        base = key[4:] if key.startswith("val_") else key
        if base not in names:
            names.append(base)
    if metrics is not None:
        metrics = [metrics] if isinstance(metrics, str) else list(metrics)
        unknown = [m for m in metrics if m not in names]
        if unknown:
            raise ValueError(f"metrics {unknown} not in history; available: {names}.")
        names = metrics
    if not names:
        raise ValueError("history holds no metric.")
    ncols = min(3, len(names))
    nrows = math.ceil(len(names) / ncols)
    fig = _new_fig(fig, (4.2 * ncols, 3.2 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, name in zip(axes, names):
        for key, label in ((name, "train"), (f"val_{name}", "validation")):
            if key in h:
                values = np.asarray(h[key], dtype=np.float64)
                x = np.asarray(epochs, dtype=np.float64)[: values.size] if epochs is not None else np.arange(1, values.size + 1)
                ax.plot(x, values, marker="o" if np.isnan(values).any() or values.size < 30 else None, ms=3, label=label)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    for ax in axes[len(names):]:
        fig.delaxes(ax)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------ sweeps
def plot_sweep(
    table: Any,
    ax: Axes | None = None,
    xlabel: str | None = None,
    ylabel: str = "validation MAP@R",
    log_x: bool | None = None,
    order: Sequence[Any] | None = None,
) -> Axes:
    """A metric against a swept value: mean +- standard error over seeds, the best and its ties marked.

    ``table`` is what :func:`dmlkeras.evaluation.compare_runs` returns when
    its ``method`` column holds the swept value (a learning rate, a margin,
    ``"6x16"``): one row per value with ``mean`` and ``se`` (and ``tied``).
    The points are joined in the order of the values (numeric values
    sorted, others in ``order`` or the table's order); the error bars are
    one standard error (none where it is NaN, e.g. with one seed). The best
    value is a star; values tied with it (the ``tied`` column) are filled
    circles, the others hollow, so the lesson of the sweep ("anything from
    3e-4 to 3e-3 is as good") can be read off the plot.

    Parameters
    ----------
    table : pandas.DataFrame
        Indexed by the swept value, with columns ``mean`` and ``se``;
        ``tied`` (bool) is optional (without it only the best is marked).
    ax : matplotlib Axes, optional
    xlabel : str, optional
        Default: the name of the table's index.
    ylabel : str, default "validation MAP@R"
    log_x : bool, optional
        Logarithmic x axis; default: when the values are positive numbers
        spanning a factor of 10 or more. Non-numeric values are placed at
        0, 1, 2, ... and labelled.
    order : sequence, optional
        The x order of non-numeric values (each value of the index once).

    Returns
    -------
    matplotlib.axes.Axes
        The error bars are ``ax.containers[0]``; the title names the best value.

    Raises
    ------
    ValueError
        If ``table`` lacks ``mean`` / ``se``, is empty, has no finite mean,
        or ``order`` is not a permutation of its index.

    Examples
    --------
    >>> from dmlkeras.evaluation import compare_runs
    >>> runs = {"lr": [1e-4] * 3 + [1e-3] * 3 + [1e-2] * 3, "seed": [0, 1, 2] * 3,
    ...         "map_at_r": [0.40, 0.42, 0.41, 0.50, 0.52, 0.51, 0.49, 0.53, 0.50]}
    >>> ax = plot_sweep(compare_runs(runs, "map_at_r", method="lr"))
    >>> ax.get_xscale(), ax.get_title()
    ('log', 'best lr: 0.001 (filled: tied with it)')
    >>> [float(v) for v in ax.lines[0].get_xdata()]   # sorted by value
    [0.0001, 0.001, 0.01]
    """
    for column in ("mean", "se"):
        if not hasattr(table, "columns") or column not in table.columns:
            raise ValueError(
                "table must be a DataFrame indexed by the swept value with columns 'mean' and 'se' "
                "(the output of dmlkeras.evaluation.compare_runs)."
            )
    if len(table) == 0:
        raise ValueError("table is empty: nothing was swept.")
    values = list(table.index)
    numeric = all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in values)
    if order is not None:
        order = list(order)
        if sorted(map(str, order)) != sorted(map(str, values)) or len(order) != len(values):
            raise ValueError(f"order must hold each swept value once: {values}; got {order}.")
        values = order
    elif numeric:
        values = sorted(values)
    rows = table.loc[values]
    means = rows["mean"].to_numpy(dtype=np.float64)
    se = np.nan_to_num(rows["se"].to_numpy(dtype=np.float64), nan=0.0)
    if not np.isfinite(means).any():
        raise ValueError("table['mean'] holds no finite value.")
    j = int(np.nanargmax(means))
    best = values[j]
    tied = rows["tied"].to_numpy(dtype=bool) if "tied" in rows.columns else np.arange(len(values)) == j
    x = np.asarray(values, dtype=np.float64) if numeric else np.arange(len(values), dtype=np.float64)
    if log_x is None:
        log_x = bool(numeric and x.min() > 0 and x.max() >= 10 * x.min())

    ax = _new_ax(ax, (5.0, 3.6))
    ax.errorbar(x, means, yerr=se, color="tab:blue", capsize=3, marker="none", linewidth=1)
    ax.scatter(x[tied], means[tied], color="tab:blue", zorder=3, s=30)
    ax.scatter(x[~tied], means[~tied], facecolors="white", edgecolors="tab:blue", zorder=3, s=30)
    ax.scatter([x[j]], [means[j]], marker="*", s=160, color="tab:orange", zorder=4)
    if log_x:
        ax.set_xscale("log")
    if not numeric:
        ax.set_xticks(x)
        ax.set_xticklabels([str(v) for v in values])
    name = table.index.name or "value"
    ax.set_xlabel(xlabel if xlabel is not None else name)
    ax.set_ylabel(ylabel)
    ax.set_title(f"best {name}: {best:g} (filled: tied with it)" if numeric else f"best {name}: {best} (filled: tied with it)")
    ax.grid(alpha=0.3)
    return ax


# --------------------------------------------------------------- projector
def _tsv_field(value: Any) -> str:
    return str(value).replace("\t", " ").replace("\n", " ").replace("\r", " ")


def export_projector(
    embeddings: ArrayLike,
    labels: ArrayLike,
    logdir: str | os.PathLike[str],
    images: ArrayLike | None = None,
    class_names: Sequence[str] | Mapping[Any, str] | None = None,
) -> dict[str, Path]:
    """Write files for the TensorBoard Embedding Projector.

    Writes into ``logdir`` (created if needed):

    * ``vectors.tsv``: one tab-separated embedding per line.
    * ``metadata.tsv``: the label of each embedding, one per line without a
      header; with ``class_names`` two columns ``label`` and ``class_name``
      under a header line (the projector expects a header exactly when
      there is more than one column).
    * ``sprite.png`` (with ``images``): all images as a square grid of
      thumbnails, row-major, at most 8192 pixels a side (thumbnails are
      shrunk when needed).
    * ``projector_config.pbtxt``: points at the files above (paths relative
      to ``logdir``).

    Open with ``tensorboard --logdir LOGDIR`` (Projector tab), or load the
    two TSV files at projector.tensorflow.org.

    Parameters
    ----------
    embeddings : array-like of shape (n, d)
    labels : array-like of shape (n,)
    logdir : str or path
    images : array-like of shape (n, h, w[, c]), optional
    class_names : sequence or dict, optional
        ``class_names[label]`` for a second metadata column.

    Returns
    -------
    dict
        ``{"vectors": Path, "metadata": Path, "config": Path}`` plus
        ``"sprite"`` when images are given.

    Examples
    --------
    >>> import numpy as np, tempfile
    >>> paths = export_projector(np.eye(3), [0, 1, 1], tempfile.mkdtemp(), class_names=["a", "b"])
    >>> paths["metadata"].read_text().splitlines()
    ['label\\tclass_name', '0\\ta', '1\\tb', '1\\tb']
    """
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"embeddings must be a 2-D array of shape (n, d); got shape {x.shape}.")
    if not np.all(np.isfinite(x)):
        raise ValueError("embeddings contains NaN or infinite values.")
    y = np.asarray(labels)
    if y.shape != (x.shape[0],):
        raise ValueError(f"labels must have shape ({x.shape[0]},); got shape {y.shape}.")
    imgs = None
    if images is not None:
        imgs = _image_batch(images, "images")
        if imgs.shape[0] != x.shape[0]:
            raise ValueError(f"images must have one image per embedding ({x.shape[0]}); got {imgs.shape[0]}.")
    out = Path(logdir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"vectors": out / "vectors.tsv", "metadata": out / "metadata.tsv", "config": out / "projector_config.pbtxt"}
    np.savetxt(paths["vectors"], x, fmt="%.7g", delimiter="\t")
    with open(paths["metadata"], "w", encoding="utf-8") as f:
        if class_names is None:
            f.writelines(f"{_tsv_field(v)}\n" for v in y.tolist())
        else:
            f.write("label\tclass_name\n")
            f.writelines(f"{_tsv_field(v)}\t{_tsv_field(_class_name(v, class_names))}\n" for v in y.tolist())
    config = [
        "embeddings {",
        '  tensor_name: "embeddings"',
        f"  tensor_shape: {x.shape[0]}",
        f"  tensor_shape: {x.shape[1]}",
        '  tensor_path: "vectors.tsv"',
        '  metadata_path: "metadata.tsv"',
    ]
    if imgs is not None:
        paths["sprite"] = out / "sprite.png"
        th, tw = _write_sprite(imgs, paths["sprite"])
        config += ["  sprite {", '    image_path: "sprite.png"', f"    single_image_dim: {tw}", f"    single_image_dim: {th}", "  }"]
    config.append("}")
    paths["config"].write_text("\n".join(config) + "\n", encoding="utf-8")
    return paths


def _write_sprite(imgs: np.ndarray, path: Path) -> tuple[int, int]:
    """Square sprite of thumbnails; returns the thumbnail (height, width)."""
    from PIL import Image  # noqa: PLC0415  (pillow ships with matplotlib)

    n, h, w = imgs.shape[:3]
    grid = math.ceil(math.sqrt(n))
    cell = _SPRITE_MAX_SIDE // grid
    if cell < 1:
        raise ValueError(f"{n} images do not fit a {_SPRITE_MAX_SIDE}-pixel sprite; export fewer.")
    scale = min(1.0, cell / max(h, w))
    th, tw = max(1, int(h * scale)), max(1, int(w * scale))
    u8 = np.round(imgs * 255.0).astype(np.uint8)
    sprite = np.zeros((grid * th, grid * tw) + u8.shape[3:], dtype=np.uint8)
    for i in range(n):
        thumb = u8[i]
        if (th, tw) != (h, w):
            thumb = np.asarray(Image.fromarray(thumb).resize((tw, th), Image.Resampling.BILINEAR))
        r, c = divmod(i, grid)
        sprite[r * th : (r + 1) * th, c * tw : (c + 1) * tw] = thumb
    Image.fromarray(sprite).save(path)
    return th, tw

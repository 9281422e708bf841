"""Tests of dmlkeras.viz: render with Agg and check what was drawn."""

from __future__ import annotations


import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402
from matplotlib.offsetbox import AnnotationBbox  # noqa: E402
from PIL import Image  # noqa: E402

import dmlkeras.viz as viz  # noqa: E402
from dmlkeras.evaluation import verification_metrics  # noqa: E402
from dmlkeras.viz import (  # noqa: E402
    export_projector,
    plot_distance_histograms,
    plot_embeddings,
    plot_history,
    plot_image_grid,
    plot_image_pairs,
    plot_neighbors,
    plot_roc,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def n_points(ax):
    return sum(len(c.get_offsets()) for c in ax.collections)


def legend_texts(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def clustered(n_per=15, n_classes=3, d=6, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), n_per)
    emb = rng.normal(size=(labels.size, d)) + 4 * np.eye(d)[labels % d]
    return emb, labels


# -------------------------------------------------------------- embeddings
def test_plot_embeddings_pca_points_legend_labels():
    emb, labels = clustered()
    ax = plot_embeddings(emb, labels, method="pca", class_names={0: "zero", 1: "one", 2: "two"})
    assert n_points(ax) == 45
    assert len(ax.collections) == 3
    assert legend_texts(ax) == ["zero", "one", "two"]
    assert ax.get_xlabel().startswith("PC 1 (") and ax.get_ylabel().startswith("PC 2 (")
    assert ax.get_title() == "PCA of 45 embeddings"
    # each class is drawn at its own PCA coordinates: the class clouds are apart
    centers = [c.get_offsets().mean(axis=0) for c in ax.collections]
    assert min(np.linalg.norm(centers[i] - centers[j]) for i in range(3) for j in range(i)) > 2


def test_plot_embeddings_tsne_tiny_and_subsampled():
    emb, labels = clustered(n_per=2, n_classes=2)
    ax = plot_embeddings(emb, labels, method="tsne")  # n = 4: perplexity clipped
    assert n_points(ax) == 4 and ax.get_xlabel() == "t-SNE 1"
    emb, labels = clustered(n_per=100, n_classes=3)
    fig, ax = plt.subplots()
    out = plot_embeddings(emb, labels, method="pca", ax=ax, max_points=50, seed=1)
    assert out is ax and n_points(ax) == 50 and "50 embeddings" in ax.get_title()
    # deterministic for a fixed seed
    again = plot_embeddings(emb, labels, method="pca", max_points=50, seed=1)
    np.testing.assert_allclose(
        np.concatenate([c.get_offsets() for c in again.collections]),
        np.concatenate([c.get_offsets() for c in ax.collections]),
    )


def test_plot_embeddings_thumbnails_and_legend_rules():
    emb, labels = clustered()
    images = np.random.default_rng(0).integers(0, 256, size=(45, 8, 8, 1), dtype=np.uint8)
    ax = plot_embeddings(emb, labels, method="pca", images=images, n_images=7)
    boxes = [a for a in ax.artists if isinstance(a, AnnotationBbox)]
    assert len(boxes) == 7
    many = np.repeat(np.arange(25), 2)
    emb2 = np.random.default_rng(1).normal(size=(50, 3))
    assert plot_embeddings(emb2, many, method="pca").get_legend() is None
    assert len(legend_texts(plot_embeddings(emb2, many, method="pca", legend=True))) == 25
    assert plot_embeddings(emb, labels, method="pca", legend=False).get_legend() is None


def test_plot_embeddings_umap_or_clear_import_error():
    emb, labels = clustered()
    try:
        import umap  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install umap-learn"):
            plot_embeddings(emb, labels, method="umap")
    else:  # pragma: no cover - umap-learn is optional
        assert n_points(plot_embeddings(emb, labels, method="umap")) == 45


def test_plot_embeddings_errors():
    emb, labels = clustered()
    with pytest.raises(ValueError, match="method must be one of"):
        plot_embeddings(emb, labels, method="mds")
    with pytest.raises(ValueError, match=r"labels must have shape \(45,\)"):
        plot_embeddings(emb, labels[:3])
    with pytest.raises(ValueError, match="d >= 2"):
        plot_embeddings(emb[:, :1], labels)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        plot_embeddings(emb, labels, method="pca", images=np.full((45, 4, 4), 2.0))
    with pytest.raises(ValueError, match=r"integer images must be in \[0, 255\]"):
        plot_embeddings(emb, labels, method="pca", images=np.full((45, 4, 4), 300))
    with pytest.raises(ValueError, match="one image per embedding"):
        plot_embeddings(emb, labels, method="pca", images=np.zeros((3, 4, 4)))
    with pytest.raises(ValueError, match=r"\(n, h, w, 3\)"):
        plot_embeddings(emb, labels, method="pca", images=np.zeros((45, 4, 4, 2)))
    with pytest.raises(ValueError, match="class_names"):
        plot_embeddings(emb, labels, method="pca", class_names=["only one"])


# ------------------------------------------------------------ verification
def pairs(seed=0, n=200, shift=0.5):
    rng = np.random.default_rng(seed)
    s = rng.random(n) < 0.5
    return rng.random(n) + shift * ~s, s


def test_plot_roc_several_methods_on_one_ax():
    d1, s1 = pairs(0, shift=0.5)
    d2, s2 = pairs(1, shift=0.1)
    ax = plot_roc(d1, s1, label="good")
    assert plot_roc(d2, s2, ax=ax, label="weak") is ax
    rocs = [line for line in ax.get_lines() if line.get_gid() == "roc"]
    eers = [line for line in ax.get_lines() if line.get_gid() == "eer"]
    chance = [line for line in ax.get_lines() if line.get_gid() == "chance"]
    assert len(rocs) == 2 and len(eers) == 2 and len(chance) == 1
    texts = legend_texts(ax)
    assert len(texts) == 2
    for text, (d, s), name in zip(texts, [(d1, s1), (d2, s2)], ["good", "weak"]):
        m = verification_metrics(d, s)
        assert text == f"{name}: AUC = {m['roc_auc']:.3f}, EER = {m['eer']:.1%}"
    m = verification_metrics(d1, s1)
    x, y = eers[0].get_data()
    assert x[0] == pytest.approx(m["eer"]) and y[0] == pytest.approx(1 - m["eer"])
    assert eers[0].get_color() == rocs[0].get_color()
    assert ax.get_xlabel() == "False accept rate (FPR)" and ax.get_ylabel() == "True accept rate (TPR)"
    ax_log = plot_roc(d1, s1, log_scale=True)
    assert ax_log.get_xscale() == "log"


def test_plot_distance_histograms_content():
    d, s = pairs()
    ax = plot_distance_histograms(d, s, threshold=0.7, bins=20)
    assert len(ax.patches) == 40
    same_bars, diff_bars = ax.patches[:20], ax.patches[20:]
    for bars in (same_bars, diff_bars):  # densities integrate to 1
        assert sum(b.get_height() * b.get_width() for b in bars) == pytest.approx(1.0)
    assert legend_texts(ax) == [f"same (n={s.sum()})", f"different (n={(~s).sum()})", "threshold = 0.7"]
    vlines = [line for line in ax.get_lines() if np.allclose(line.get_xdata(), 0.7)]
    assert len(vlines) == 1
    assert ax.get_xlabel() == "distance"
    ax = plot_distance_histograms(d, s, bins=5)
    assert len(ax.get_lines()) == 0 and len(ax.patches) == 10
    with pytest.raises(ValueError, match="bins"):
        plot_distance_histograms(d, s, bins=0)


# ------------------------------------------------------------------ images
def spine_color_count(fig, color):
    target = to_rgba(color)
    return sum(
        all(sp.get_visible() and to_rgba(sp.get_edgecolor()) == target for sp in ax.spines.values())
        for ax in fig.axes
    )


def test_plot_neighbors_layout_and_outlines():
    rng = np.random.default_rng(0)
    gallery = rng.random((10, 6, 6, 3))
    queries = rng.integers(0, 256, (5, 6, 6), dtype=np.uint8)
    idx = rng.integers(0, 10, (5, 4))
    correct = rng.random((5, 4)) < 0.5
    dist = rng.random((5, 4))
    fig = plot_neighbors(queries, gallery, idx, correct=correct, n_queries=3, distances=dist)
    assert len(fig.axes) == 3 * 5
    assert spine_color_count(fig, "red") == int((~correct[:3]).sum())
    assert spine_color_count(fig, "tab:green") == int(correct[:3].sum())
    assert fig.axes[0].get_title() == "query" and fig.axes[1].get_title() == "#1"
    assert fig.axes[1].get_xlabel() == f"{dist[0, 0]:.3g}"
    # the shown neighbour is the gallery image at that index
    np.testing.assert_allclose(fig.axes[2].get_images()[0].get_array(), gallery[idx[0, 1]], rtol=1e-6)
    fig = plot_neighbors(queries, gallery, idx)
    assert len(fig.axes) == 5 * 5 and spine_color_count(fig, "red") == 0
    with pytest.raises(ValueError, match=r"indices must be in \[0, 9\]"):
        plot_neighbors(queries, gallery, idx + 10)
    with pytest.raises(ValueError, match="correct must have the shape"):
        plot_neighbors(queries, gallery, idx, correct=correct[:, :2])
    with pytest.raises(ValueError, match=r"shape \(q, k\)"):
        plot_neighbors(queries, gallery, idx[0])


def test_plot_image_pairs_grid_titles_and_mixed_channels():
    a = np.zeros((5, 8, 6), dtype=np.uint8)  # gray
    b = np.ones((5, 8, 4, 3))  # colour, narrower
    titles = [f"d={v:.2f}" for v in np.linspace(0.1, 0.5, 5)]
    fig = plot_image_pairs(a, b, titles=titles, ncols=2)
    assert len(fig.axes) == 5  # 3 x 2 grid, empty cell removed
    assert [ax.get_title() for ax in fig.axes] == titles
    shown = fig.axes[0].get_images()[0].get_array()
    assert shown.shape == (8, 6 + 1 + 4, 3)
    assert np.all(shown[:, :6] == 0) and np.all(shown[:, 7:] == 1)
    with pytest.raises(ValueError, match="same number"):
        plot_image_pairs(a, b[:3])
    with pytest.raises(ValueError, match="one entry per pair"):
        plot_image_pairs(a, b, titles=["x"])


def test_plot_image_grid():
    imgs = np.random.default_rng(0).integers(0, 256, (10, 5, 5, 1), dtype=np.uint8)
    names = [f"person {i}" for i in range(10)]
    fig = plot_image_grid(imgs, titles=names, ncols=4)
    assert len(fig.axes) == 10
    assert [ax.get_title() for ax in fig.axes] == names
    assert fig.axes[0].get_gridspec().get_geometry() == (3, 4)
    np.testing.assert_allclose(fig.axes[3].get_images()[0].get_array(), imgs[3, ..., 0] / 255.0, rtol=1e-6)
    reused = plot_image_grid(imgs[:2], fig=fig)
    assert reused is fig and len(fig.axes) == 2


def test_plot_history_sources():
    h = {"loss": [1.0, 0.8, 0.6], "val_loss": [1.1, 0.9, 0.7], "val_map_at_r": [np.nan, 0.4, 0.5], "lr": [0.1] * 3}
    fig = plot_history(h)
    assert [ax.get_title() for ax in fig.axes] == ["loss", "map_at_r", "lr"]
    assert [len(ax.get_lines()) for ax in fig.axes] == [2, 1, 1]
    assert legend_texts(fig.axes[0]) == ["train", "validation"]
    np.testing.assert_array_equal(fig.axes[0].get_lines()[0].get_xdata(), [1, 2, 3])
    assert fig.axes[1].get_lines()[0].get_marker() == "o"

    class FakeHistory:  # duck-typed keras.callbacks.History
        history = {"loss": [3.0, 2.0]}

    fig = plot_history(FakeHistory())
    assert len(fig.axes) == 1 and fig.axes[0].get_xlabel() == "epoch"
    df = pd.DataFrame({"epoch": [0, 1, 2], "loss": [3.0, 2.0, 1.0], "val_loss": [3.5, 2.5, 1.5], "acc": [0.1, 0.2, 0.3]})
    fig = plot_history(df, metrics=["loss"])
    assert len(fig.axes) == 1 and len(fig.axes[0].get_lines()) == 2
    np.testing.assert_array_equal(fig.axes[0].get_lines()[0].get_xdata(), [0, 1, 2])
    with pytest.raises(ValueError, match="available"):
        plot_history(h, metrics=["accuracy"])
    with pytest.raises(ValueError, match="keras History"):
        plot_history([1, 2, 3])


# --------------------------------------------------------------- projector
def test_export_projector_files(tmp_path):
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(10, 4)).astype(np.float32)
    labels = np.arange(10) % 3
    images = rng.integers(0, 256, (10, 7, 5, 3), dtype=np.uint8)
    paths = export_projector(emb, labels, tmp_path / "proj", images=images, class_names=["a", "b", "c"])
    assert set(paths) == {"vectors", "metadata", "config", "sprite"}
    vec_lines = paths["vectors"].read_text().splitlines()
    assert len(vec_lines) == 10 and all(len(line.split("\t")) == 4 for line in vec_lines)
    np.testing.assert_allclose(np.loadtxt(paths["vectors"], delimiter="\t"), emb, rtol=1e-6)
    meta = paths["metadata"].read_text().splitlines()
    assert meta[0] == "label\tclass_name" and len(meta) == 11 and meta[2] == "1\tb"
    sprite = np.asarray(Image.open(paths["sprite"]))
    assert sprite.shape == (4 * 7, 4 * 5, 3)  # ceil(sqrt(10)) = 4 cells a side
    np.testing.assert_array_equal(sprite[:7, :5], images[0])
    np.testing.assert_array_equal(sprite[7:14, 5:10], images[5])  # row 1, column 1
    config = paths["config"].read_text()
    for expected in ('tensor_path: "vectors.tsv"', 'metadata_path: "metadata.tsv"', 'image_path: "sprite.png"',
                     "single_image_dim: 5\n    single_image_dim: 7", "tensor_shape: 10"):
        assert expected in config
    assert config.count("{") == config.count("}") == 2


def test_export_projector_single_column_and_big_sprite(tmp_path):
    labels = np.array(["cat\tdog", "bird", "fish"])
    paths = export_projector(np.eye(3), labels, tmp_path)
    assert paths["metadata"].read_text().splitlines() == ["cat dog", "bird", "fish"]  # no header
    assert "sprite" not in paths and "sprite" not in paths["config"].read_text()
    big = np.ones((5, 6000, 30), dtype=np.float32)  # 3 x 3 grid of 6000-pixel images: shrunk
    paths = export_projector(np.zeros((5, 2)), np.arange(5), tmp_path / "big", images=big)
    sprite = Image.open(paths["sprite"])
    assert max(sprite.size) <= 8192
    assert sprite.size == (3 * int(30 * 2730 / 6000), 3 * 2730)
    with pytest.raises(ValueError, match=r"labels must have shape \(3,\)"):
        export_projector(np.eye(3), [0, 1], tmp_path)

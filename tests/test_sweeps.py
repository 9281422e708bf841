"""Tests of the sweep tools: evaluation.describe_comparison (the lesson line of a compare_runs table) and viz.plot_sweep."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from matplotlib.collections import PathCollection  # noqa: E402

from dmlkeras.evaluation import compare_runs  # noqa: E402
from dmlkeras.viz import plot_sweep  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def sweep_runs():
    # margin 0.2 best; 0.1 tied with it (same per-seed gaps noise), 0.8 clearly worse
    rows = []
    per_seed = {0.1: [0.50, 0.53, 0.51], 0.2: [0.51, 0.53, 0.52], 0.4: [0.45, 0.46, 0.44], 0.8: [0.30, 0.31, 0.29]}
    for margin, values in per_seed.items():
        for seed, value in enumerate(values):
            rows.append({"margin": margin, "seed": seed, "map_at_r": value})
    return pd.DataFrame(rows)


def scatters(ax):
    return [c for c in ax.collections if isinstance(c, PathCollection) and len(c.get_offsets())]


def marker_points(ax, filled):
    """(x, y) of the scatter points drawn filled (or hollow), excluding the star."""
    out = []
    for collection in scatters(ax):
        if collection.get_sizes()[0] > 100:  # the star
            continue
        face = collection.get_facecolors()
        is_filled = not np.allclose(face[0][:3], 1.0)
        if is_filled == filled:
            out.extend(map(tuple, collection.get_offsets()))
    return sorted(out)


def test_points_are_sorted_means_with_standard_error_bars():
    runs = sweep_runs()
    table = compare_runs(runs, "map_at_r", method="margin")
    ax = plot_sweep(table)
    line = ax.lines[0]
    assert list(line.get_xdata()) == [0.1, 0.2, 0.4, 0.8]
    expected = runs.groupby("margin")["map_at_r"].mean().loc[[0.1, 0.2, 0.4, 0.8]].to_numpy()
    np.testing.assert_allclose(line.get_ydata(), expected)
    # error bar half-heights are the standard errors over seeds
    segments = ax.containers[0].lines[2][0].get_segments()
    half = [(seg[1, 1] - seg[0, 1]) / 2 for seg in segments]
    se = runs.groupby("margin")["map_at_r"].std(ddof=1) / np.sqrt(3)
    np.testing.assert_allclose(half, se.loc[[0.1, 0.2, 0.4, 0.8]].to_numpy(), rtol=1e-6)


def test_best_is_starred_tied_filled_others_hollow():
    table = compare_runs(sweep_runs(), "map_at_r", method="margin")
    assert table["tied"].to_dict() == {0.2: True, 0.1: True, 0.4: False, 0.8: False}
    ax = plot_sweep(table)
    star = [c for c in scatters(ax) if c.get_sizes()[0] > 100]
    assert len(star) == 1
    np.testing.assert_allclose(star[0].get_offsets()[0], [0.2, table.loc[0.2, "mean"]])
    assert [x for x, _ in marker_points(ax, filled=True)] == [0.1, 0.2]
    assert [x for x, _ in marker_points(ax, filled=False)] == [0.4, 0.8]
    assert ax.get_title() == "best margin: 0.2 (filled: tied with it)"
    assert ax.get_xlabel() == "margin" and ax.get_ylabel() == "validation MAP@R"


def test_log_axis_is_automatic_for_wide_positive_ranges():
    table = compare_runs(sweep_runs(), "map_at_r", method="margin")
    assert plot_sweep(table).get_xscale() == "linear"  # 0.1 .. 0.8 spans less than 10x
    assert plot_sweep(table, log_x=True).get_xscale() == "log"
    wide = table.rename(index={0.1: 0.01})
    assert plot_sweep(wide).get_xscale() == "log"


def test_categorical_values_keep_the_given_order():
    runs = pd.DataFrame({"batch": ["2x48"] * 2 + ["3x32"] * 2 + ["6x16"] * 2, "seed": [0, 1] * 3,
                         "map_at_r": [0.40, 0.42, 0.45, 0.47, 0.52, 0.50]})
    table = compare_runs(runs, "map_at_r", method="batch")  # sorted by mean: 6x16 first
    ax = plot_sweep(table, order=["2x48", "3x32", "6x16"], xlabel="P x K")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["2x48", "3x32", "6x16"]
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [0.41, 0.46, 0.51])
    assert ax.get_xlabel() == "P x K" and ax.get_title().startswith("best batch: 6x16")


def test_one_seed_draws_no_error_bar_and_marks_only_the_best_without_tied():
    table = pd.DataFrame({"mean": [0.3, 0.5], "se": [np.nan, np.nan]}, index=pd.Index([8, 32], name="dim"))
    ax = plot_sweep(table)
    segments = ax.containers[0].lines[2][0].get_segments()
    assert all(np.isclose(seg[0, 1], seg[1, 1]) for seg in segments)  # zero-height bars
    assert [x for x, _ in marker_points(ax, filled=True)] == [32.0]


def test_bad_tables_are_refused():
    with pytest.raises(ValueError, match="'mean' and 'se'"):
        plot_sweep(pd.DataFrame({"mean": [0.1]}))
    with pytest.raises(ValueError, match="'mean' and 'se'"):
        plot_sweep({"mean": [0.1], "se": [0.0]})
    with pytest.raises(ValueError, match="empty"):
        plot_sweep(pd.DataFrame({"mean": [], "se": []}))
    with pytest.raises(ValueError, match="no finite"):
        plot_sweep(pd.DataFrame({"mean": [np.nan], "se": [0.0]}))
    table = compare_runs(sweep_runs(), "map_at_r", method="margin")
    with pytest.raises(ValueError, match="order must hold each swept value once"):
        plot_sweep(table, order=[0.1, 0.2])


# ------------------------------------------------------ the lesson line of a comparison
def test_describe_comparison_states_best_gaps_and_verdicts():
    from dmlkeras.evaluation import describe_comparison

    table = compare_runs(sweep_runs(), "map_at_r", method="margin")
    line = describe_comparison(table)
    # by hand: best 0.2 = mean(0.51, 0.53, 0.52) = 0.52, se = 0.01 / sqrt(3)
    assert line.startswith("margin: best 0.2 (0.520 +- 0.006); ")
    # 0.1: per-seed gaps (0.01, 0.00, 0.01): -0.007 +- 0.003, within 2 s.e. -> tied
    assert "0.1 -0.007 +- 0.003 (tied)" in line
    # 0.8: gaps (0.21, 0.22, 0.23): -0.220 +- 0.006 -> real
    assert "0.8 -0.220 +- 0.006 (real)" in line
    assert describe_comparison(table, name="triplet margin", digits=2).startswith("triplet margin: best 0.2 (0.52 +- 0.01)")


def test_describe_comparison_with_one_seed_calls_nothing_real():
    from dmlkeras.evaluation import describe_comparison

    runs = pd.DataFrame({"dim": [8, 32], "seed": [0, 0], "map_at_r": [0.3, 0.5]})
    line = describe_comparison(compare_runs(runs, "map_at_r", method="dim"))
    assert line == "dim: best 32 (0.500 +- nan); 8 -0.200 +- nan (no interval)"


def test_describe_comparison_refuses_other_tables():
    from dmlkeras.evaluation import describe_comparison

    with pytest.raises(ValueError, match="output of compare_runs"):
        describe_comparison(pd.DataFrame({"mean": [0.1], "se": [0.0]}))
    empty = compare_runs(sweep_runs(), "map_at_r", method="margin").iloc[:0]
    with pytest.raises(ValueError, match="empty"):
        describe_comparison(empty)

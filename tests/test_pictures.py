"""Every picture's text fits its canvas: titles, labels and legends are drawn inside the image."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # noqa: E402

LONG_TITLE = ("Walk-forward gold-h1 (12 folds x 3 seeds, rolling windows): agent Sharpe 0.41 [-0.62, 1.44] vs buy and "
              "hold 0.68 [-0.21, 1.57], return +12.41% vs +31.02%, edge captured 0.17 of the oracle's")


@pytest.fixture
def kept_figures(monkeypatch):
    """The figures a plotting function closes, kept to be measured."""
    kept = []
    monkeypatch.setattr(plt, "close", lambda figure=None: kept.append(figure))
    return kept


def _outside(figure) -> list[str]:  # noqa: ANN001
    """What is drawn beyond the canvas: the figure's tight box (every drawn artist) against its size, and each
    title's own box."""
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    width, height = figure.get_size_inches()
    tight = figure.get_tightbbox(renderer)
    outside = []
    if tight.x0 < -0.01 or tight.y0 < -0.01 or tight.x1 > width + 0.01 or tight.y1 > height + 0.01:
        outside.append(f"drawing spans {tight.x0:.2f}..{tight.x1:.2f} x {tight.y0:.2f}..{tight.y1:.2f} in of "
                       f"{width:.2f} x {height:.2f}")
    for axis in figure.axes:
        title = axis.title
        box = title.get_window_extent(renderer)
        if title.get_text() and (box.x0 < -1 or box.x1 > figure.bbox.width + 1 or box.y1 > figure.bbox.height + 1):
            outside.append(f"title {title.get_text()[:40]!r} at {box.x0:.0f}..{box.x1:.0f} of {figure.bbox.width:.0f}")
    return outside


def test_the_walk_forward_picture_keeps_a_long_title_inside(tmp_path, kept_figures):
    from rltrader.display.walkforward import plot_stitched

    times = pd.date_range("2024-01-01", periods=300, freq="h")
    curves = pd.DataFrame({"timestamp": times, "agent_seed_42": np.linspace(1e4, 1.1e4, 300),
                           "agent_equity": np.linspace(1e4, 1.1e4, 300), "buy_and_hold_equity": np.linspace(1e4, 1.3e4, 300),
                           "flat_equity": 1e4, "fold": np.repeat([0, 1, 2], 100)})
    plot_stitched(curves, LONG_TITLE, tmp_path / "walk.png")
    assert (tmp_path / "walk.png").is_file() and _outside(kept_figures[0]) == []


def test_the_evaluation_picture_keeps_a_long_title_inside(tmp_path, kept_figures):
    from rltrader.evaluation.report import plot_equity

    times = pd.date_range("2024-01-01", periods=300, freq="h")
    frame = pd.DataFrame({"timestamp": times, "agent_equity": np.linspace(1e4, 1.1e4, 300),
                          "buy_and_hold_equity": np.linspace(1e4, 1.3e4, 300), "agent_drawdown": 0.0,
                          "buy_and_hold_drawdown": 0.0, "agent_position": np.tile([1.0, -1.0, 0.0], 100)})
    plot_equity(frame, LONG_TITLE, tmp_path / "equity.png")
    assert _outside(kept_figures[0]) == []

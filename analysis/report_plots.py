"""Figures for ``recarena report``, rendered as inline SVG strings.

matplotlib is used through ``Figure`` objects only (never pyplot), so no GUI backend is touched
and there is no global figure state; the SVG canvas draws them. Text is kept as SVG text (not
glyph paths), which keeps each figure a few tens of KB, and element ids are salted per figure so
several SVGs can live in one HTML document without clashing ids. Fixed salts and no date make
the output deterministic.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from typing import Any

import matplotlib
import numpy as np
import polars as pl
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from matplotlib.typing import RcKeyType

from recarena.analysis.report_data import Lorenz
from recarena.analysis.scalars import as_int

_RC: dict[RcKeyType, Any] = {
    "svg.fonttype": "none",
    "font.family": "DejaVu Sans",  # bundled with matplotlib, so text metrics are the same anywhere
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
}
_PROLOGUE = re.compile(r"^.*?(?=<svg)", re.DOTALL)
# RDF metadata and namespace declarations name URLs; inline SVG in HTML needs neither
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.DOTALL)
_XMLNS = re.compile(r'\s+xmlns(:\w+)?="[^"]*"')
_STYLES = ["-", "--", ":", "-."]
_LEGEND_ROW_CHARACTERS = 96
_SHORT_LABEL = 12
_COLORS = [
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#ff7f0e",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
]


def arm_colors(arms: Sequence[str]) -> dict[str, str]:
    """One stable colour per arm, in the scenario's arm order, shared by every figure."""
    return {arm: _COLORS[i % len(_COLORS)] for i, arm in enumerate(arms)}


def to_svg(fig: Figure, salt: str) -> str:
    """The figure as an ``<svg>`` element for inlining (no XML prologue or DOCTYPE)."""
    buf = io.StringIO()
    with matplotlib.rc_context(_RC | {"svg.hashsalt": salt}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    svg = _PROLOGUE.sub("", buf.getvalue(), count=1)
    return _XMLNS.sub("", _METADATA.sub("", svg, count=1))


def _figure(width: float, height: float) -> Figure:
    with matplotlib.rc_context(_RC):
        return Figure(figsize=(width, height), layout="constrained")


SERIES = [
    ("ctr", "Daily CTR", "clicks / impressions"),
    ("coverage", "Daily coverage", "share of catalog exposed that day"),
    ("item_gini", "Daily item exposure Gini", "over all published items"),
    ("creators_exposed", "Creators exposed", "share with ≥ 1 exposure that day"),
]


def _line_style(index: int) -> str:
    """Solid for the first ten arms; the next ten reuse the colours dashed, then dotted: the
    eleventh arm was drawn exactly as the first, so two lines of a legend could not be told
    apart."""
    return _STYLES[(index // len(_COLORS)) % len(_STYLES)]


def _legend_columns(labels: Sequence[str]) -> int:
    """Up to 6 arms a legend row, fewer for long names: 6 columns of 64-character names
    made the figure ~2,000 pixels wide with its four panels squeezed into the middle."""
    longest = max((len(label) for label in labels), default=1)
    return max(1, min(len(labels), 6, _LEGEND_ROW_CHARACTERS // longest))


def _label_inches(labels: Sequence[str]) -> float:
    """Width to add for tick labels longer than a short arm name (at font size 9): long
    names left the heatmap's axes no room and matplotlib warned on stderr."""
    longest = max((len(label) for label in labels), default=0)
    return 0.07 * max(0, longest - _SHORT_LABEL)


def time_series_figure(means: pl.DataFrame, colors: dict[str, str]) -> Figure:
    """2×2 panels of daily series: mean over replicates, band = min–max over replicates."""
    with matplotlib.rc_context(_RC):
        legend_rows = math.ceil(len(colors) / _legend_columns(list(colors)))
        fig = _figure(9.0, 6.0 + 0.2 * max(0, legend_rows - 2))  # room for a tall legend
        axes = fig.subplots(2, 2, sharex=True)
        for ax, (column, title, ylabel) in zip(axes.flat, SERIES, strict=True):
            for i, (arm, color) in enumerate(colors.items()):
                part = means.filter(pl.col("arm") == arm).sort("day")
                if part.height == 0:
                    continue
                days = part["day"].to_numpy()
                ax.plot(days, part[column].to_numpy(), color=color, marker="o", ms=3, label=arm,
                        linestyle=_line_style(i))  # fmt: skip
                ax.fill_between(
                    days,
                    part[f"{column}_min"].to_numpy(),
                    part[f"{column}_max"].to_numpy(),
                    color=color,
                    alpha=0.15,
                    linewidth=0,
                )
            ax.set_title(title)
            ax.set_ylabel(ylabel)
        for ax in axes[-1]:
            ax.set_xlabel("simulated day")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        handles, labels = axes.flat[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=_legend_columns(labels))
    return fig


def lorenz_figure(items: list[Lorenz], creators: list[Lorenz], colors: dict[str, str]) -> Figure:
    """Exposure Lorenz curves over items and over creators, one line per arm."""
    with matplotlib.rc_context(_RC):
        fig = _figure(9.0, 4.0)
        axes = fig.subplots(1, 2)
        for ax, curves, what in [(axes[0], items, "items"), (axes[1], creators, "creators")]:
            ax.plot([0, 1], [0, 1], color="#999999", linestyle="--", linewidth=1, label="equal")
            order = {arm: i for i, arm in enumerate(colors)}
            for curve in curves:
                style = _line_style(order.get(curve.arm, 0))
                if curve.gini is None:  # no exposure: no curve, and the legend says so
                    ax.plot([], [], color=colors.get(curve.arm, "#333333"), linestyle=style,
                            label=f"{curve.arm} (no exposures)")  # fmt: skip
                    continue
                ax.plot(
                    curve.x,
                    curve.y,
                    color=colors.get(curve.arm, "#333333"),
                    linestyle=style,
                    label=f"{curve.arm} (Gini {curve.gini:.3f})",
                )
            ax.set_title(f"Exposure Lorenz curve over {what}")
            ax.set_xlabel(f"share of {what}, least exposed first")
            ax.set_ylabel("share of exposures")
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
            ax.set_aspect("equal")
            ax.legend(loc="upper left", fontsize=8)
    return fig


def _annotate(ax, grid: np.ndarray) -> None:
    if grid.size > 150:
        return
    top = np.nanmax(grid) if np.isfinite(grid).any() else 0.0
    for (r, c), value in np.ndenumerate(grid):
        if np.isfinite(value):
            ax.text(
                c,
                r,
                f"{value:.3f}",
                ha="center",
                va="center",
                fontsize=7,
                color="black" if value > 0.6 * top else "white",  # viridis is light at the top
            )


def list_heatmap(slots: pl.DataFrame, arms: list[str]) -> Figure:
    """CTR by list position (columns) for each list arm (rows)."""
    k = as_int(slots["col"].max()) + 1
    grid = np.full((len(arms), k), np.nan)
    for row in slots.iter_rows(named=True):
        grid[arms.index(row["arm"]), int(row["col"])] = row["ctr"]
    with matplotlib.rc_context(_RC):
        fig = _figure(min(1.2 + 0.6 * k, 12.0) + _label_inches(arms), 0.9 + 0.45 * len(arms))
        ax = fig.subplots()
        ax.grid(False)
        image = ax.imshow(grid, aspect="auto", cmap="viridis", vmin=0)
        _annotate(ax, grid)
        ax.set_xticks(range(k), [str(i + 1) for i in range(k)])
        ax.set_yticks(range(len(arms)), arms)
        ax.set_xlabel("position on the list (1 = top)")
        ax.set_title("CTR by list position")
        fig.colorbar(image, ax=ax, label="CTR")
    return fig


def carousel_heatmap(slots: pl.DataFrame, arm: str) -> Figure:
    """CTR for each (row, col) slot of one carousel arm."""
    part = slots.filter(pl.col("arm") == arm)
    rows, cols = as_int(part["row"].max()) + 1, as_int(part["col"].max()) + 1
    grid = np.full((rows, cols), np.nan)
    for row in part.iter_rows(named=True):
        grid[int(row["row"]), int(row["col"])] = row["ctr"]
    with matplotlib.rc_context(_RC):
        fig = _figure(min(1.5 + 0.65 * cols, 12.0), 1.0 + 0.5 * rows)
        ax = fig.subplots()
        ax.grid(False)
        image = ax.imshow(grid, aspect="auto", cmap="viridis", vmin=0)
        _annotate(ax, grid)
        ax.set_xticks(range(cols), [str(i + 1) for i in range(cols)])
        ax.set_yticks(range(rows), [str(i + 1) for i in range(rows)])
        ax.set_xlabel("column (1 = left)")
        ax.set_ylabel("row (1 = top)")
        ax.set_title(f"CTR by carousel slot: {arm}")
        fig.colorbar(image, ax=ax, label="CTR")
    return fig

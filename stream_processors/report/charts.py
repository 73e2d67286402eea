"""The report's charts: matplotlib figures as SVG data URIs, so one HTML file holds them all.

Figures are built with ``matplotlib.figure.Figure`` (no pyplot, no global
state). Text from users (category names) is never parsed as mathtext, its
control characters are shown as escapes (characters XML does not allow would
make the SVG unreadable) and it is shortened to ``LABEL_LIMIT`` characters;
the SVG goes into an ``<img>``, where a browser runs no script and resolves
no link.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from contextlib import contextmanager

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from stream_processors.display import printable, shorten
from stream_processors.report.data import Distribution, FeatureSection, OutputSection, PerformanceSeries

__all__ = ["chart_style", "distribution_chart", "chart_label", "feature_chart", "performance_chart", "svg_data_uri"]

REFERENCE, PRODUCTION, THRESHOLD, EPISODE = "#6b7b8c", "#d9480f", "#c92a2a", "#ffd8a8"
MAX_CATEGORIES = 15  # the rest are summed into one bar
LABEL_LIMIT = 24  # characters of a category name on its bar
_STYLE = {
    "text.parse_math": False,  # a category named "$x$" is text, not a formula
    "svg.fonttype": "none",    # text as <text>, set in the browser's sans-serif: a third of the size of glyph paths
    "svg.hashsalt": "driftline",  # the same data renders the same bytes
    "font.family": "sans-serif",
    "font.size": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


@contextmanager
def chart_style() -> Iterator[None]:
    with matplotlib.rc_context(_STYLE):
        yield


def svg_data_uri(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def chart_label(name: str) -> str:
    """A name as a chart shows it: control characters escaped, at most ``LABEL_LIMIT`` characters."""
    return shorten(printable(name), LABEL_LIMIT)


def _shares(counts: tuple[float, ...]) -> np.ndarray:
    values = np.asarray(counts, dtype=np.float64)
    total = values.sum()
    return values / total if total > 0 else values


def _draw_distribution(ax, dist: Distribution) -> None:
    if dist.kind == "numeric":
        edges = np.asarray(dist.edges, dtype=np.float64)
        widths = np.diff(edges)  # density, so that unequal (e.g. equiprobable) bins show the shape
        if dist.reference is not None:
            ax.stairs(_shares(dist.reference) / widths, edges, fill=True, color=REFERENCE, alpha=0.35,
                      label="reference")
        ax.stairs(_shares(dist.production) / widths, edges, color=PRODUCTION, linewidth=1.5, label="production")
    else:
        names = list(dist.categories)
        production = _shares(dist.production)
        reference = _shares(dist.reference) if dist.reference is not None else None
        order = np.argsort(-(production + (reference if reference is not None else 0)), kind="stable")
        if len(order) > MAX_CATEGORIES:
            keep, rest = order[:MAX_CATEGORIES - 1], order[MAX_CATEGORIES - 1:]
            names = [names[i] for i in keep] + [f"({len(rest)} others)"]
            production = np.r_[production[keep], production[rest].sum()]
            reference = None if reference is None else np.r_[reference[keep], reference[rest].sum()]
        else:
            names = [names[i] for i in order]
            production = production[order]
            reference = None if reference is None else reference[order]
        y = np.arange(len(names))
        if reference is not None:
            ax.barh(y + 0.2, reference, height=0.4, color=REFERENCE, alpha=0.6, label="reference")
        ax.barh(y - 0.2, production, height=0.4, color=PRODUCTION, label="production")
        ax.set_yticks(y, [chart_label(n) for n in names])
        ax.invert_yaxis()
    ax.set_xlabel("share" if dist.kind == "categorical" else "")
    ax.set_ylabel("density" if dist.kind == "numeric" else "")
    ax.legend(frameon=False, fontsize=7)


def distribution_chart(section: OutputSection) -> str:
    with chart_style():
        fig = Figure(figsize=(4.6, 2.4))
        _draw_distribution(fig.add_subplot(), section.distribution)
        return svg_data_uri(fig)


def feature_chart(section: FeatureSection, period: tuple[int, int] | None) -> str:
    """Left: reference vs production distribution. Right: the drift statistic over time, its threshold, episodes."""
    with chart_style():
        fig = Figure(figsize=(9.6, 2.6))
        left, right = fig.subplots(1, 2, width_ratios=(1, 1.5))
        _draw_distribution(left, section.distribution)
        x = np.array([p[0] for p in section.statistic], dtype=np.float64)
        y = np.array([p[1] for p in section.statistic], dtype=np.float64)
        end = period[1] if period else (x[-1] if x.size else 1.0)
        for episode in section.episodes:
            stop = episode.ended_at if episode.ended_at is not None else end
            right.axvspan(episode.started_at, stop, color=EPISODE, alpha=0.6, linewidth=0)
            right.axvline(episode.started_at, color=THRESHOLD, linewidth=0.8)
            if episode.ended_at is not None:
                right.axvline(episode.ended_at, color=THRESHOLD, linewidth=0.8, linestyle=":")
        if x.size:
            # a bucket covers the events up to its index: its value is drawn over them
            right.step(x, y, where="pre", color=PRODUCTION, linewidth=1.0, label=section.statistic_name)
        right.axhline(section.threshold, color=THRESHOLD, linestyle="--", linewidth=1.0, label="threshold")
        if period:
            right.set_xlim(period)
        right.set_xlabel("event")
        right.legend(frameon=False, fontsize=7, loc="upper left")
        if any(v > 0 for _, v in section.missing):  # drawn only when something was missing: a chart costs
            rate = right.twinx()
            rate.step([p[0] for p in section.missing], [p[1] for p in section.missing], where="pre",
                      color=REFERENCE, linewidth=0.9, label="missing rate")
            rate.set_ylim(bottom=0)
            rate.set_ylabel("missing rate", fontsize=7)
            rate.legend(frameon=False, fontsize=7, loc="upper right")
        return svg_data_uri(fig)


def performance_chart(series: PerformanceSeries, period: tuple[int, int] | None) -> str:
    with chart_style():
        fig = Figure(figsize=(9.6, 2.6))
        ax = fig.add_subplot()
        for points, style, label in ((series.realized, "-o", "realized (labels)"),
                                     (series.estimated, "--", "estimated (scores)")):
            if points:
                ax.plot([p[0] for p in points], [p[1] for p in points], style, markersize=2.5, linewidth=1.2,
                        color=PRODUCTION if style == "-o" else REFERENCE, label=label)
        if series.reference is not None:
            ax.axhline(series.reference, color="#2b8a3e", linewidth=1.0, label="reference")
        if series.bound is not None:
            ax.axhline(series.bound, color=THRESHOLD, linestyle="--", linewidth=1.0, label="alert bound")
        if period:
            ax.set_xlim(period)
        ax.set_xlabel("event")
        ax.set_ylabel(chart_label(series.metric))
        ax.legend(frameon=False, fontsize=7, loc="lower left" if series.higher_is_better else "upper left")
        return svg_data_uri(fig)

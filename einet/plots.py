"""Terminal plots of runs with plotext: rasters, PSTHs and weight histograms.

Each function draws into a plotext module or figure object (``plt``), so the CLI (plain
``plotext``) and the dashboard (a ``PlotextPlot`` widget's ``plt``) share one drawing code.
Plots draw a bounded number of points whatever the network size: rendering is the slow part.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .analysis import weight_bins, weight_histogram

MAX_RASTER_POINTS = 6000
COLORS = ["blue", "orange", "green", "red", "magenta", "cyan", "yellow", "white"]


def raster_points(senders: np.ndarray, times: np.ndarray, t0: float, t1: float, raster_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spikes of the raster's neurons inside [t0, t1) as (times, row 1..len(raster_ids)),
    thinned to a point budget."""
    ids = np.asarray(raster_ids)
    if not len(ids) or not len(senders):
        return np.empty(0), np.empty(0, dtype=np.int64)
    pos = np.searchsorted(ids, senders)
    pos_c = np.minimum(pos, len(ids) - 1)
    keep = (ids[pos_c] == senders) & (times >= t0) & (times < t1)
    t, rows = times[keep], pos_c[keep] + 1
    if len(t) > MAX_RASTER_POINTS:
        idx = np.linspace(0, len(t) - 1, MAX_RASTER_POINTS).astype(int)
        t, rows = t[idx], rows[idx]
    return t, rows


def draw_raster(plt: Any, senders: np.ndarray, times: np.ndarray, t0: float, t1: float, raster_ids: np.ndarray, *, title: str = "", color: str = "blue", marker: str = "dot", xlabel: str = "time [ms]") -> None:
    """Spikes of ``raster_ids`` (one row each, y = 1..n) between ``t0`` and ``t1``. plotext
    writes a y label under the x axis, so what the rows are belongs in ``title``."""
    t, rows = raster_points(senders, times, t0, t1, raster_ids)
    if len(t):
        plt.scatter(t.tolist(), rows.tolist(), marker=marker, color=color)
    n = max(1, len(raster_ids))
    plt.xlim(t0, t1)
    plt.ylim(0, n + 1)
    plt.yticks(sorted({1, max(1, n // 2), n}))
    plt.title(title)
    if xlabel:
        plt.xlabel(xlabel)


def draw_psth(plt: Any, curves: Sequence[tuple[str, np.ndarray, np.ndarray]], *, marker: str = "dot", align: bool = False, title: str = "PSTH: rate per neuron [Hz]", xlabel: str = "time [ms]") -> None:
    """PSTH lines: (legend label, left bin edges in ms, rate in Hz). ``align`` shifts each to
    start at 0 (runs that began at different times, compared)."""
    for i, (label, t, hz) in enumerate(curves):
        if len(t):
            x = t - t[0] if align else t
            plt.plot(x.tolist(), hz.tolist(), label=label, color=COLORS[i % len(COLORS)], marker=marker)
    plt.title(title)
    if xlabel:
        plt.xlabel(xlabel)


def draw_weights(plt: Any, samples: Sequence[tuple[str, np.ndarray]], *, model: str = "", marker: str = "dot", title: str = "", xlabel: str = "weight") -> None:
    """Overlaid density histograms of one synapse model's weights, one per (legend label,
    sample); bins shared, from the data."""
    bins = weight_bins([w for _, w in samples])
    centers = (bins[:-1] + bins[1:]) / 2
    for i, (label, w) in enumerate(samples):
        if len(w):
            plt.plot(centers.tolist(), weight_histogram(w, bins).tolist(), label=label, color=COLORS[i % len(COLORS)], marker=marker)
    plt.xlim(float(bins[0]), float(bins[-1]))
    plt.title(title or (f"{model} weights: density" if model else "weights: density"))
    if xlabel:
        plt.xlabel(xlabel)


def draw_conditions(plt: Any, names: Sequence[str], values: Sequence[Sequence[float]], intervals: Sequence[tuple[float, float, float]], *, marker: str = "dot", title: str = "", ylabel: str = "") -> None:
    """One figure of a set of trials: per condition (x = 1, 2, …, labelled with ``names``) one
    point per trial (``values``), and its mean with the 95 % interval (``intervals``: (mean,
    low, high), NaN where there is none) as a bar from low to high and a cross at the mean.
    Trials of a condition are spread a little sideways so equal values stay apart."""
    for i, vals in enumerate(values):
        color = COLORS[i % len(COLORS)]
        finite = [float(v) for v in vals if v is not None and np.isfinite(v)]
        if finite:
            jitter = np.linspace(-0.15, 0.15, len(finite)) if len(finite) > 1 else np.zeros(1)
            plt.scatter((i + 1 + jitter).tolist(), finite, marker=marker, color=color)
        mean, low, high = intervals[i] if i < len(intervals) else (float("nan"),) * 3
        if np.isfinite(low) and np.isfinite(high):
            plt.plot([i + 1.3, i + 1.3], [low, high], color=color, marker=marker)
        if np.isfinite(mean):
            plt.scatter([i + 1.3], [mean], marker="x", color=color)
    n = max(1, len(names))
    plt.xlim(0.5, n + 0.5)
    plt.xticks(list(range(1, n + 1)), [str(k) for k in range(1, n + 1)])
    plt.title(title)
    if ylabel:
        plt.ylabel(ylabel)

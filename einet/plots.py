"""Terminal plots of runs with plotext: rasters, PSTHs and weight histograms.

Each function draws into a plotext module or figure object (``plt``), so the CLI (plain
``plotext``) and the dashboard (a ``PlotextPlot`` widget's ``plt``) share one drawing code.
Plots draw a bounded number of points whatever the network size: rendering is the slow part.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .analysis import WEIGHT_BINS, weight_histogram

RASTER_NEURONS = 100
MAX_RASTER_POINTS = 6000
COLORS = ["blue", "orange", "green", "red", "magenta", "cyan", "yellow", "white"]


def raster_points(senders: np.ndarray, times: np.ndarray, t0: float, t1: float, n_max: int = RASTER_NEURONS, first_id: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Spikes of the first ``n_max`` recorded neurons inside [t0, t1), thinned to a point budget."""
    keep = (senders < first_id + n_max) & (times >= t0) & (times < t1)
    t, s = times[keep], senders[keep]
    if len(t) > MAX_RASTER_POINTS:
        idx = np.linspace(0, len(t) - 1, MAX_RASTER_POINTS).astype(int)
        t, s = t[idx], s[idx]
    return t, s


def draw_raster(plt: Any, senders: np.ndarray, times: np.ndarray, t0: float, t1: float, *, title: str = "", color: str = "blue", marker: str = "dot") -> None:
    t, s = raster_points(senders, times, t0, t1)
    if len(t):
        plt.scatter(t.tolist(), s.tolist(), marker=marker, color=color)
    plt.xlim(t0, t1)
    plt.ylim(0, RASTER_NEURONS + 1)
    plt.yticks([1, 25, 50, 75, 100])
    plt.title(title)
    plt.ylabel("neuron id")


def draw_psth(plt: Any, curves: Sequence[tuple[str, np.ndarray, np.ndarray]], *, marker: str = "dot", align: bool = False) -> None:
    """PSTH lines: (label, left bin edges in ms, rate in Hz). ``align`` shifts each to start at 0."""
    for i, (label, t, hz) in enumerate(curves):
        if len(t):
            x = t - t[0] if align else t
            plt.plot(x.tolist(), hz.tolist(), label=label, color=COLORS[i % len(COLORS)], marker=marker)
    plt.title("PSTH (rate per E neuron)")
    plt.ylabel("Hz")


def draw_weights(plt: Any, samples: Sequence[tuple[str, np.ndarray]], *, marker: str = "dot") -> None:
    """Overlaid density histograms of e_syn weights over the example's bins (0.7-1.4 mV)."""
    centers = (WEIGHT_BINS[:-1] + WEIGHT_BINS[1:]) / 2
    for i, (label, w) in enumerate(samples):
        if len(w):
            plt.plot(centers.tolist(), weight_histogram(w).tolist(), label=label, color=COLORS[i % len(COLORS)], marker=marker)
    plt.xlim(float(WEIGHT_BINS[0]), float(WEIGHT_BINS[-1]))
    plt.title("e_syn weights (density)")
    plt.xlabel("weight [mV]")

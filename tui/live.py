"""What the dashboard draws while a run streams in: a thread-safe, bounded accumulator.

The engine's reader thread adds frames; the UI thread takes immutable copies at most ~10
times a second. Only what the plots need is kept (spikes of the raster's neurons, PSTH bin
counts), so memory and drawing cost do not grow with the network.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from einet.plots import RASTER_NEURONS

PSTH_BIN_MS = 10.0
WINDOW_MS = 500.0
PSTH_WINDOW_MS = 2000.0  # a bounded number of PSTH points, however long the run


@dataclass(frozen=True)
class LiveView:
    """An immutable copy of the live run for drawing."""

    label: str
    t_ms: float
    t_start_ms: float
    t_stop_ms: float
    n_spikes: int
    raster_senders: np.ndarray
    raster_times: np.ndarray
    psth_t_ms: np.ndarray
    psth_hz: np.ndarray
    weights: np.ndarray | None
    version: int


class LiveRun:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.version = 0
        self.n_recorded = 1
        self._start("", 0.0, 0.0)

    def set_recorded(self, n_recorded: int) -> None:
        with self._lock:
            self.n_recorded = max(1, n_recorded)

    def reset(self, label: str, t_start_ms: float, t_stop_ms: float, n_recorded: int) -> None:
        """A run is about to start (frames of a new run also start one by themselves)."""
        with self._lock:
            self.n_recorded = max(1, n_recorded)
            self._start(label, t_start_ms, t_stop_ms)

    def _start(self, label: str, t_start_ms: float, t_stop_ms: float) -> None:
        self.label = label
        self.t_start = self.t = t_start_ms
        self.t_stop = t_stop_ms
        self.n_spikes = 0
        self._senders: list[np.ndarray] = []
        self._times: list[np.ndarray] = []
        self._counts = np.zeros(max(1, int(np.ceil((t_stop_ms - t_start_ms) / PSTH_BIN_MS))), dtype=np.int64)
        self.weights: np.ndarray | None = None
        self.version += 1

    def add_frame(self, fields: dict, senders: np.ndarray, times: np.ndarray, weights: np.ndarray | None) -> None:
        with self._lock:
            if fields.get("label") != self.label or fields.get("t_start_ms") != self.t_start:
                self._start(str(fields.get("label")), float(fields["t_start_ms"]), float(fields["t_stop_ms"]))
            self.t = float(fields["t_ms"])
            self.n_spikes = int(fields.get("n_spikes_total", self.n_spikes + len(senders)))
            keep = senders < 1 + RASTER_NEURONS  # E neurons come first: ids 1..n_exc
            self._senders.append(senders[keep])
            self._times.append(times[keep])
            self._trim()
            if len(times):
                bins = ((times - self.t_start) // PSTH_BIN_MS).astype(np.int64)
                bins = bins[(bins >= 0) & (bins < len(self._counts))]
                self._counts += np.bincount(bins, minlength=len(self._counts))[: len(self._counts)]
            if weights is not None:
                self.weights = np.array(weights)
            self.version += 1

    def _trim(self) -> None:
        # Keep only what the sliding raster window can show.
        lo = self.t - WINDOW_MS
        while len(self._times) > 1 and (len(self._times[0]) == 0 or self._times[0].max() < lo):
            self._times.pop(0)
            self._senders.pop(0)

    def view(self) -> LiveView:
        with self._lock:
            senders = np.concatenate(self._senders) if self._senders else np.empty(0, np.int64)
            times = np.concatenate(self._times) if self._times else np.empty(0)
            n_done = max(0, min(len(self._counts), int(np.ceil((self.t - self.t_start) / PSTH_BIN_MS))))
            first = max(0, n_done - int(PSTH_WINDOW_MS / PSTH_BIN_MS))
            edges = self.t_start + PSTH_BIN_MS * np.arange(first, n_done)
            hz = self._counts[first:n_done] / self.n_recorded / (PSTH_BIN_MS / 1000.0)
            return LiveView(self.label, self.t, self.t_start, self.t_stop, self.n_spikes, senders, times, edges, hz, self.weights, self.version)

"""What the dashboard draws while a run streams in: a thread-safe, bounded accumulator.

The engine's reader thread adds frames; the UI thread takes immutable copies at most ~10
times a second. Only what the plots need is kept (spikes of the shown population's raster
neurons, PSTH bin counts per population), so memory and drawing cost do not grow with the
network.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from einet.runs import Group

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
    """One row per population."""
    weights: dict[str, np.ndarray] | None
    version: int
    finished: bool
    """The run's result has arrived: the idle plots show it, not this."""


class LiveRun:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.version = 0
        self.sizes = np.ones(1)
        self.raster_ids = np.empty(0, dtype=np.int64)
        self.label = ""
        self.t_start = self.t = self.t_stop = 0.0
        self.n_spikes = 0
        self._senders: list[np.ndarray] = []
        self._times: list[np.ndarray] = []
        self._counts = np.zeros((1, 1), dtype=np.int64)
        self.weights: dict[str, np.ndarray] | None = None
        self.finished = False
        self._start("", 0.0, 0.0)

    def set_groups(self, groups: tuple[Group, ...], raster_group: int) -> None:
        """The network's populations, and the index of the one whose raster is kept."""
        with self._lock:
            self.sizes = np.array([max(1, g.size) for g in groups] or [1], dtype=float)
            self.raster_ids = np.asarray(groups[raster_group].raster_ids if groups else np.empty(0), dtype=np.int64)
            self._senders, self._times = [], []
            self._counts = np.zeros((len(self.sizes), self._counts.shape[1]), dtype=np.int64)
            self.version += 1

    def reset(self, label: str, t_start_ms: float, t_stop_ms: float) -> None:
        """A run is about to start (frames of a new run also start one by themselves)."""
        with self._lock:
            self._start(label, t_start_ms, t_stop_ms)

    def _start(self, label: str, t_start_ms: float, t_stop_ms: float) -> None:
        self.label = label
        self.t_start = self.t = t_start_ms
        self.t_stop = t_stop_ms
        self.n_spikes = 0
        self._senders = []
        self._times = []
        self._counts = np.zeros((len(self.sizes), max(1, int(np.ceil((t_stop_ms - t_start_ms) / PSTH_BIN_MS)))), dtype=np.int64)
        self.weights = None
        self.finished = False
        self.version += 1

    def finish(self, label: str, t_start_ms: float) -> None:
        """The run ``label`` from ``t_start_ms`` has its result. Its frames can still be on
        their way (they come on the engine's event thread, the result on a worker's): they
        are dropped, so the live plot cannot draw over the result's."""
        with self._lock:
            if (label, t_start_ms) == (self.label, self.t_start):
                self.finished = True
                self.version += 1

    def add_frame(self, fields: dict, senders: np.ndarray, times: np.ndarray, groups: np.ndarray | None, weights: dict[str, np.ndarray] | None) -> None:
        with self._lock:
            if fields.get("label") != self.label or fields.get("t_start_ms") != self.t_start:
                self._start(str(fields.get("label")), float(fields["t_start_ms"]), float(fields["t_stop_ms"]))
            elif self.finished:
                return
            self.t = float(fields["t_ms"])
            self.n_spikes = int(fields.get("n_spikes_total", self.n_spikes + len(senders)))
            keep = np.isin(senders, self.raster_ids)
            self._senders.append(senders[keep])
            self._times.append(times[keep])
            self._trim()
            if len(times) and groups is not None and len(groups) == len(times):
                n_groups, n_bins = self._counts.shape
                bins = ((times - self.t_start) // PSTH_BIN_MS).astype(np.int64)
                ok = (bins >= 0) & (bins < n_bins) & (groups >= 0) & (groups < n_groups)
                flat = groups[ok].astype(np.int64) * n_bins + bins[ok]
                self._counts += np.bincount(flat, minlength=n_groups * n_bins)[: n_groups * n_bins].reshape(n_groups, n_bins)
            if weights is not None:
                self.weights = {k: np.array(v) for k, v in weights.items()}
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
            n_done = max(0, min(self._counts.shape[1], int(np.ceil((self.t - self.t_start) / PSTH_BIN_MS))))
            first = max(0, n_done - int(PSTH_WINDOW_MS / PSTH_BIN_MS))
            edges = self.t_start + PSTH_BIN_MS * np.arange(first, n_done)
            hz = self._counts[:, first:n_done] / self.sizes[:, None] / (PSTH_BIN_MS / 1000.0)
            return LiveView(self.label, self.t, self.t_start, self.t_stop, self.n_spikes, senders, times, edges, hz, self.weights, self.version, self.finished)

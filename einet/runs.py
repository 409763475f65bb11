"""What a run produces: immutable results and the per-step updates streamed while it runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

OriginKind = Literal["fresh", "continued", "restored"]

RASTER_NEURONS = 100
"""Neurons per population a raster shows (the first ones by id)."""


@dataclass(frozen=True)
class Origin:
    """Where a run's network state came from."""

    kind: OriginKind
    snapshot: str = ""
    snapshot_t_ms: float = 0.0

    def describe(self) -> str:
        if self.kind == "restored":
            return f"restored from {Path(self.snapshot).name} (t={self.snapshot_t_ms:g} ms)"
        return self.kind


@dataclass(frozen=True)
class Group:
    """A recorded population as results show it: its name, size and the neurons of its raster."""

    name: str
    size: int
    raster_ids: np.ndarray
    sends: str = "spikes"
    """What its neurons send: ``"spikes"``, ``"rate"`` (rate models: their PSTH row is the
    mean ``rate`` einet's multimeter recorded) or ``"nothing"`` einet records."""


@dataclass(frozen=True)
class StepUpdate:
    """New data after one simulation step: only what is new since the previous step."""

    t_ms: float
    t_start_ms: float
    t_stop_ms: float
    senders: np.ndarray
    times: np.ndarray
    n_spikes_total: int
    rate_hz: float
    groups: np.ndarray | None = None
    """Population index of each new spike."""

    @property
    def progress(self) -> float:
        span = self.t_stop_ms - self.t_start_ms
        return 1.0 if span <= 0 else (self.t_ms - self.t_start_ms) / span


@dataclass(frozen=True)
class RunResult:
    """One simulation run: its provenance, the spikes of every recorded population, summaries.

    ``groups`` are the populations; ``spike_group`` gives each spike's population index;
    ``psth_hz`` has one row per population; ``weights`` is a weight sample per synapse model.
    """

    label: str
    seed: int
    threads: int
    origin: Origin
    t_start_ms: float
    t_stop_ms: float
    senders: np.ndarray
    times: np.ndarray
    n_recorded: int
    rate_hz: float
    psth_t_ms: np.ndarray
    psth_hz: np.ndarray
    weights: dict[str, np.ndarray]
    digest: str
    groups: tuple[Group, ...] = ()
    spike_group: np.ndarray | None = None
    model: str = ""
    cancelled: bool = False
    bit_comparable: bool = True
    exact: bool = False
    """Its network was restored with its whole hidden state: the run is the continued run of
    the snapshot's, spike for spike (docs/hidden-state.md)."""
    wall_s: float = 0.0
    ranks: int = 1
    """MPI ranks the run used (each with ``threads`` threads)."""
    changes: tuple[dict[str, Any], ...] = ()
    """The protocol's changes made for this run (``t_ms``, ``target``, ``key``, ``value``)."""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_spikes(self) -> int:
        return len(self.senders)

    @property
    def short_digest(self) -> str:
        return self.digest[:12]

    def group_rates_hz(self) -> dict[str, float]:
        """Mean rate per neuron of each population."""
        span_s = max(1e-12, (self.t_stop_ms - self.t_start_ms) / 1000.0)
        counts = np.bincount(self.spike_group[self.spike_group >= 0], minlength=len(self.groups)) if self.spike_group is not None and len(self.spike_group) else np.zeros(len(self.groups))
        return {g.name: (float(np.mean(self.psth_hz[k])) if g.sends == "rate" and len(self.psth_hz) > k and self.psth_hz.shape[1] else float(counts[k]) / max(1, g.size) / span_s) for k, g in enumerate(self.groups)}

    def spikes_frame(self) -> Any:
        """Spikes as a pandas DataFrame with columns ``senders``, ``times`` and ``population``."""
        import pandas as pd

        names = np.array([g.name for g in self.groups] + [""], dtype=object)
        group = self.spike_group if self.spike_group is not None else np.full(len(self.senders), -1)
        return pd.DataFrame({"senders": self.senders, "times": self.times, "population": names[group]})

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary (what ``--json`` prints)."""
        return {
            "label": self.label,
            "seed": self.seed,
            "threads": self.threads,
            "ranks": self.ranks,
            "origin": self.origin.kind,
            "snapshot": self.origin.snapshot or None,
            "snapshot_t_ms": self.origin.snapshot_t_ms if self.origin.kind == "restored" else None,
            "t_start_ms": self.t_start_ms,
            "t_stop_ms": self.t_stop_ms,
            "spikes": self.n_spikes,
            "rate_hz": round(self.rate_hz, 4),
            "population_rates_hz": {k: round(v, 4) for k, v in self.group_rates_hz().items()},
            "model": self.model or None,
            "digest": self.digest,
            "cancelled": self.cancelled,
            "bit_comparable": self.bit_comparable,
            "exact": self.exact,
            "wall_s": round(self.wall_s, 3),
            "changes": [dict(c) for c in self.changes],
        }

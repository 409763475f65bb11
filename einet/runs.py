"""What a run produces: immutable results and the per-step updates streamed while it runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

OriginKind = Literal["fresh", "continued", "restored"]


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
class StepUpdate:
    """New data after one simulation step: only what is new since the previous step."""

    t_ms: float
    t_start_ms: float
    t_stop_ms: float
    senders: np.ndarray
    times: np.ndarray
    n_spikes_total: int
    rate_hz: float

    @property
    def progress(self) -> float:
        span = self.t_stop_ms - self.t_start_ms
        return 1.0 if span <= 0 else (self.t_ms - self.t_start_ms) / span


@dataclass(frozen=True)
class RunResult:
    """One simulation run: its provenance, spikes of the E population, and summaries."""

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
    weights: np.ndarray
    digest: str
    cancelled: bool = False
    bit_comparable: bool = True
    wall_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_spikes(self) -> int:
        return int(len(self.senders))

    @property
    def short_digest(self) -> str:
        return self.digest[:12]

    def spikes_frame(self) -> Any:
        """Spikes as a pandas DataFrame with columns ``senders`` and ``times``."""
        import pandas as pd

        return pd.DataFrame({"senders": self.senders, "times": self.times})

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary (what ``--json`` prints)."""
        return {
            "label": self.label,
            "seed": self.seed,
            "threads": self.threads,
            "origin": self.origin.kind,
            "snapshot": self.origin.snapshot or None,
            "snapshot_t_ms": self.origin.snapshot_t_ms if self.origin.kind == "restored" else None,
            "t_start_ms": self.t_start_ms,
            "t_stop_ms": self.t_stop_ms,
            "spikes": self.n_spikes,
            "rate_hz": round(self.rate_hz, 4),
            "digest": self.digest,
            "cancelled": self.cancelled,
            "bit_comparable": self.bit_comparable,
            "wall_s": round(self.wall_s, 3),
        }

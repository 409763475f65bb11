"""Is a restored run within the network's own variability? Numbers for comparing runs.

For each run: its rate, mean CV of inter-spike intervals and mean weight. For a run restored
from a snapshot: its difference to the run that continued from the same state (on the kernel
that stored it), next to the spread of the runs restored from that snapshot with different
seeds. A difference well inside that spread means the restore changed nothing the network's
own noise would not.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .analysis import isi_cv, mean_weight
from .runs import RunResult

METRICS = ("rate_hz", "cv", "mean_weight")
MIN_SEEDS = 3
"""Seeds needed before a difference is judged: the reference network's 1-s rate varies by
±3–4 Hz between random streams from one state (it fires in population bursts), so the
spread of two seeds says little."""


@dataclass(frozen=True)
class RunStats:
    rate_hz: float
    cv: float
    """Mean coefficient of variation of the inter-spike intervals (NaN: too few spikes)."""
    mean_weight: float
    """Mean of the weight sample of the synapse model compared (NaN: none sampled)."""

    def get(self, metric: str) -> float:
        return float(getattr(self, metric))


@dataclass(frozen=True)
class Versus:
    """A restored run against the run that continued from the same snapshot."""

    continued: int
    """Index of the continued run in the compared list."""
    delta: RunStats
    """This run minus the continued run."""
    spread: RunStats | None
    """Standard deviation across the runs restored from the snapshot with different seeds
    (one run per seed); None with fewer than two seeds."""
    n_seeds: int

    def within(self, metric: str) -> bool | None:
        """|difference| ≤ 2 × spread (None: fewer than :data:`MIN_SEEDS` seeds to judge by)."""
        if self.spread is None or self.n_seeds < MIN_SEEDS:
            return None
        d, s = abs(self.delta.get(metric)), self.spread.get(metric)
        if math.isnan(d) or math.isnan(s):
            return None
        return d <= 2 * s


@dataclass(frozen=True)
class SeedRerun:
    """A run restored from ``snapshot`` with ``seed`` and no change, made elsewhere than the
    compared runs (a trial of ``einet trials`` or the dashboard's ``t``): its figures count in
    the spread across seeds. ``mean_weights``: per synapse model, the mean of its weight sample."""

    snapshot: str
    seed: int
    length_ms: float
    rate_hz: float
    cv: float
    mean_weights: Mapping[str, float]

    @classmethod
    def of(cls, run: RunResult, snapshot: str) -> SeedRerun:
        """The figures of ``run``, restored from ``snapshot`` (its spikes are not kept)."""
        return cls(snapshot, run.seed, run.t_stop_ms - run.t_start_ms, run.rate_hz, isi_cv(run.senders, run.times), {m: mean_weight(run.weights, m) for m in run.weights})

    def stats(self, weight_model: str = "") -> RunStats:
        """As :func:`run_stats` gives them (``weight_model``, else the first sampled model)."""
        model = weight_model or next(iter(self.mean_weights), "")
        return RunStats(self.rate_hz, self.cv, self.mean_weights.get(model, math.nan))


def run_stats(run: RunResult, weight_model: str = "") -> RunStats:
    return RunStats(run.rate_hz, isi_cv(run.senders, run.times), mean_weight(run.weights, weight_model))


def versus_continued(runs: Sequence[RunResult], continued_from: Mapping[str, int], weight_model: str = "", *, stats: Sequence[RunStats] | None = None, reruns: Sequence[SeedRerun] = ()) -> list[Versus | None]:
    """For each run restored from a snapshot named in ``continued_from`` (snapshot path →
    index of the run that continued from it), how it compares; None for the others.

    Only runs of the same length as the continued run are compared with it. ``stats``: the
    runs' :func:`run_stats`, if already computed. ``reruns``: seed reruns made elsewhere
    (trials); those of the snapshot, of the same length, join the spread across seeds, one
    run per seed (a seed among ``runs`` is taken from there)."""
    stats = [run_stats(r, weight_model) for r in runs] if stats is None else stats
    out: list[Versus | None] = []
    for i, r in enumerate(runs):
        c = continued_from.get(r.origin.snapshot) if r.origin.kind == "restored" else None
        if c is None or c >= len(runs) or not _same_length(r, runs[c]) or r.cancelled:
            out.append(None)
            continue
        delta = RunStats(*(stats[i].get(m) - stats[c].get(m) for m in METRICS))
        first_per_seed: dict[int, int] = {}
        for j, other in enumerate(runs):
            if other.origin.kind == "restored" and other.origin.snapshot == r.origin.snapshot and _same_length(other, r) and not other.cancelled:
                first_per_seed.setdefault(other.seed, j)
        per_seed = {seed: stats[j] for seed, j in first_per_seed.items()}
        for rerun in reruns:
            if rerun.snapshot == r.origin.snapshot and abs(rerun.length_ms - (r.t_stop_ms - r.t_start_ms)) < 1e-6:
                per_seed.setdefault(rerun.seed, rerun.stats(weight_model))
        spread = None
        if len(per_seed) >= 2:
            spread = RunStats(*(_std([st.get(m) for st in per_seed.values()]) for m in METRICS))
        out.append(Versus(c, delta, spread, len(per_seed)))
    return out


def _same_length(a: RunResult, b: RunResult) -> bool:
    return abs((a.t_stop_ms - a.t_start_ms) - (b.t_stop_ms - b.t_start_ms)) < 1e-6


def _std(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.std(finite, ddof=1)) if len(finite) >= 2 else float("nan")

"""A set of trials as the dashboard knows it: what was asked (``TrialsRequest``, parsed by the
library's own parsers, as ``einet trials`` does) and what has come back (``TrialsBook``).

Both are immutable and free of Textual and NEST: the trials' worker thread makes a new book
for every trial that finishes and posts it; the view draws whichever book it is given, and
tests give it books made by hand.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from einet.compare import SeedRerun
from einet.config import ConfigError
from einet.protocol import parse_changes
from einet.trials import TrialSet, parse_seeds, parse_vary, plan_conditions
from einet.trials.output import FigureLine, condition_table

MAX_WORKERS = 256
"""More local worker processes than this is a typo, not a machine."""


@dataclass(frozen=True)
class TrialsRequest:
    """A set of trials asked for in the dialog: from ``snapshot``, ``plan`` (conditions ×
    seeds), ``t_ms`` per trial, on ``workers`` local processes."""

    snapshot: Path
    plan: TrialSet
    t_ms: float
    workers: int


def parse_request(snapshot: str | Path, seeds: str, at: str, vary: str, t_ms: str, workers: str) -> TrialsRequest:
    """The dialog's fields as a request. ``at`` holds ``T:TARGET.KEY=VALUE`` items and
    ``vary`` ``TARGET.KEY=V1,V2,…`` items, separated by spaces (quoted as in a shell when a
    value holds one): the ``--at`` and ``--vary`` flags of ``einet trials``, parsed by the
    same functions. Raises :class:`~einet.config.ConfigError` with one line."""
    try:
        at_items, vary_items = shlex.split(at), shlex.split(vary)
    except ValueError as exc:  # an unclosed quote
        raise ConfigError(f"changes: {exc}") from None
    plan = TrialSet(plan_conditions(parse_changes(at_items), tuple(parse_vary(v) for v in vary_items)), parse_seeds(seeds))
    try:
        length = float(t_ms)
    except ValueError:
        raise ConfigError(f"run length must be a number of ms, not {t_ms.strip()!r}") from None
    if not (length > 0 and math.isfinite(length)):
        raise ConfigError(f"run length must be a positive number of ms, not {t_ms.strip()}")
    try:
        n = int(workers)
    except ValueError:
        raise ConfigError(f"workers must be a whole number, not {workers.strip()!r}") from None
    if not 1 <= n <= MAX_WORKERS:
        raise ConfigError(f"workers must be 1 to {MAX_WORKERS}, not {n}")
    return TrialsRequest(Path(snapshot), plan, length, min(n, len(plan.trials)))


State = Literal["starting", "running", "done", "stopped", "failed"]


@dataclass(frozen=True)
class TrialsBook:
    """A set of trials so far: its trials' rows (as ``einet trials`` writes them, in the order
    they finished) and the seed reruns among them (trials of a condition without changes),
    which the compare view counts in its spread across seeds."""

    set_id: str
    snapshot: str
    conditions: tuple[str, ...]
    total: int
    figures: tuple[str, ...] = ()
    """The figures of its rows (``rate_hz.E``, …), known once the set started; ``spikes`` is added."""
    t_ms: float = math.nan
    where: str = ""
    state: State = "starting"
    problem: str = ""
    """Why the set failed, in one line."""
    rows: tuple[Mapping[str, Any], ...] = ()
    reruns: tuple[SeedRerun, ...] = ()
    _lines: dict[str, tuple[FigureLine, ...]] = field(default_factory=dict, compare=False, repr=False)

    @property
    def running(self) -> bool:
        return self.state in ("starting", "running")

    @property
    def failed(self) -> tuple[Mapping[str, Any], ...]:
        """The rows of trials that failed (each with its one-line ``error``)."""
        return tuple(r for r in self.rows if r.get("error"))

    @property
    def pages(self) -> tuple[str, ...]:
        """The figures the view shows, one per page: the figures some trial has (a synapse
        model without a weight sample has none), then ``spikes``."""
        had = tuple(f for f in self.figures if any(f in r for r in self.rows))
        return (*(had or self.figures), "spikes")

    def with_row(self, row: Mapping[str, Any], rerun: SeedRerun | None = None) -> TrialsBook:
        """This book with one more finished (or failed) trial."""
        return replace(self, state="running", rows=(*self.rows, dict(row)), reruns=(*self.reruns, *((rerun,) if rerun is not None else ())), _lines={})

    def ended(self, state: State, problem: str = "") -> TrialsBook:
        return replace(self, state=state, problem=problem, _lines=self._lines)

    def lines(self, figure: str) -> tuple[FigureLine, ...]:
        """Per condition, ``figure``'s summary and comparison with the baseline, from the
        library's :func:`~einet.trials.output.condition_table` (so the same figures as
        ``einet trials`` prints). Kept once made: a book never changes."""
        if figure not in self._lines:
            table = condition_table([dict(r) for r in self.rows], list(self.conditions), [] if figure == "spikes" else [figure])
            self._lines[figure] = tuple(line for line in table if line.figure == figure)
        return self._lines[figure]

    def values(self, figure: str) -> list[list[float]]:
        """Per condition, ``figure`` of each of its finished trials (NaN where it has none)."""
        out: list[list[float]] = [[] for _ in self.conditions]
        for r in self.rows:
            if not r.get("error") and 0 <= int(r["condition_index"]) < len(out):
                v = r.get(figure)
                out[int(r["condition_index"])].append(math.nan if v is None else float(v))
        return out


def verdict_line(book: TrialsBook, figure: str) -> str:
    """The set's verdict on ``figure`` in one line: per condition against the baseline, or, for
    seed reruns alone, what they are for."""
    lines = book.lines(figure)
    if len(book.conditions) == 1:
        n = lines[0].summary.n if lines else 0
        return f"{n} seed rerun{'s' if n != 1 else ''} of the snapshot, no change: the compare view (v) counts them in its spread across seeds"
    if not lines:
        return "no trial finished yet"
    said = []
    for k, line in enumerate(lines):
        if line.versus is None:
            continue
        v = line.versus
        diff = "" if math.isnan(v.difference) else f" (Δ {v.difference:+.3g}, 95 % [{v.ci_low:.3g}, {v.ci_high:.3g}])"
        said.append(f"{k + 1} {v.verdict}{diff}")
    return f"{figure} against the baseline: " + "; ".join(said)


def number(x: float, digits: int = 3) -> str:
    """A figure in a table cell (– for none)."""
    return "–" if x is None or not math.isfinite(x) else f"{x:.{digits}g}"


def interval(low: float, high: float) -> str:
    return "–" if not (math.isfinite(low) and math.isfinite(high)) else f"[{low:.3g}, {high:.3g}]"


def table_cells(book: TrialsBook, figure: str) -> list[tuple[str, ...]]:
    """The per-condition table of ``figure``: #, condition, n, mean, sd, 95 % interval,
    difference to the baseline, its interval, verdict."""
    out = []
    for k, line in enumerate(book.lines(figure)):
        s, v = line.summary, line.versus
        versus: Sequence[str] = ("baseline", "", "") if v is None else (number(v.difference) if not math.isnan(v.difference) else "–", interval(v.ci_low, v.ci_high), v.verdict)
        out.append((str(k + 1), line.condition, str(s.n), number(s.mean), number(s.sd), interval(s.ci_low, s.ci_high), *versus))
    return out

"""The trials of a set: conditions (changes made at the restore) crossed with seeds."""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..config import ConfigError, parse_value
from ..protocol import Change

MAX_SEED = 2147483647
MAX_TRIALS = 100_000
"""A set larger than this is a typo (``--seeds 1e9``), not an experiment."""


class PlanError(ConfigError):
    """Seeds or changes that make no set of trials."""


@dataclass(frozen=True)
class Condition:
    """One condition: the changes made to every trial of it (none for a plain baseline)."""

    name: str
    changes: tuple[Change, ...] = ()


@dataclass(frozen=True)
class Trial:
    """One trial: a condition and a seed (``index`` numbers the set's trials from 0)."""

    index: int
    condition: int
    """Index of the condition in the set's list (0 is the baseline)."""
    seed: int


@dataclass(frozen=True)
class TrialSet:
    """Conditions × seeds. Trials go seed by seed, each seed through every condition, so a set
    stopped part way has compared the conditions on the seeds it finished."""

    conditions: tuple[Condition, ...]
    seeds: tuple[int, ...]
    trials: tuple[Trial, ...] = field(init=False)

    def __post_init__(self) -> None:
        if not self.conditions or not self.seeds:
            raise PlanError("a set of trials needs at least one condition and one seed")
        if len(self.conditions) * len(self.seeds) > MAX_TRIALS:
            raise PlanError(f"{len(self.conditions)} conditions × {len(self.seeds)} seeds is more than {MAX_TRIALS} trials")
        trials = tuple(Trial(k, c, s) for k, (s, c) in enumerate(itertools.product(self.seeds, range(len(self.conditions)))))
        object.__setattr__(self, "trials", trials)

    @property
    def baseline(self) -> Condition:
        return self.conditions[0]


def parse_seeds(text: str) -> tuple[int, ...]:
    """``--seeds``: ``N`` (seeds 1 to N) or a comma-separated list (``3,7,11``), each 1 to
    2147483647, none twice."""
    text = text.strip()
    try:
        seeds = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise PlanError(f"--seeds takes N or a list of seeds (3,7,11), not {text!r}") from None
    if "," not in text:
        n = seeds[0] if seeds else 0
        if not 1 <= n <= MAX_TRIALS:
            raise PlanError(f"--seeds N takes 1 to {MAX_TRIALS} seeds, not {n}")
        return tuple(range(1, n + 1))
    if not seeds:
        raise PlanError("--seeds names no seed")
    bad = [s for s in seeds if not 1 <= s <= MAX_SEED]
    if bad:
        raise PlanError(f"seeds are 1 to {MAX_SEED}, not {bad[0]}")
    if len(set(seeds)) != len(seeds):
        raise PlanError(f"--seeds names a seed twice ({text})")
    return seeds


def parse_vary(text: str) -> tuple[Change, ...]:
    """``--vary TARGET.KEY=V1,V2,…``: one change per value, made at the restore (time 0: at or
    before the stored time, so at once). Values are TOML literals, as for ``--at``."""
    lhs, eq, values = text.partition("=")
    target, dot, key = lhs.strip().rpartition(".")
    items = [v.strip() for v in values.split(",")]
    if not (eq and dot and target and key) or not all(items):
        raise PlanError(f"--vary takes TARGET.KEY=V1,V2,… (e.g. poisson_generator.rate=800,900), not {text!r}")
    changes = tuple(Change(0.0, target.strip(), key.strip(), parse_value(v)) for v in items)
    if len({repr(c.value) for c in changes}) != len(changes):
        raise PlanError(f"--vary names a value twice ({text})")
    return changes


def new_set_id() -> str:
    """A set's name in the run history: when it started (UTC), and a random tail for sets
    started in one second."""
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def _value(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def plan_conditions(at: tuple[Change, ...] = (), vary: tuple[tuple[Change, ...], ...] = ()) -> tuple[Condition, ...]:
    """The conditions of a set, the baseline first.

    Without ``vary``: the baseline (no change), then, if ``at`` holds changes, the condition
    with them. With ``vary`` (each a list of alternatives; two or more are crossed): one
    condition per combination, each with the ``at`` changes too; the first combination (the
    first value of each) is the baseline.
    """
    if not vary:
        conditions = [Condition("baseline")]
        if at:
            conditions.append(Condition(" ".join(f"{c.target}.{c.key}={_value(c.value)}" + (f"@{c.t_ms:g}" if c.t_ms else "") for c in at), at))
        return tuple(conditions)
    return tuple(Condition(" ".join(f"{c.target}.{c.key}={_value(c.value)}" for c in combo), (*at, *combo)) for combo in itertools.product(*vary))

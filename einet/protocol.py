"""Protocols: changes to a network at chosen biological times, as NEST scripts make them
between ``Simulate`` calls ("raise the drive, simulate, switch the stimulus off, simulate").

A :class:`Change` sets ``key`` of ``target`` to ``value`` at ``t_ms`` on the network's clock
(the stored clock after a restore). A target is, in this order, a population einet shows, a
device by its ``label``, a node model (all its nodes) or a synapse model (all its
connections). Changes come from ``--at T:TARGET.KEY=VALUE``, ``[[protocol]]`` tables in the
TOML file and a model's ``protocol(scale, **params)``; those still to come are stored in a
snapshot, so a restore goes on with them (as data: no model code runs).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .config import ConfigError, parse_value

MAX_TIME_MS = 1e12
"""Biological times beyond ~30 years are no experiment's."""


class ProtocolError(ConfigError):
    """A change that names no target or key of the network, or a value of the wrong kind."""


@dataclass(frozen=True)
class Change:
    """Set ``key`` of ``target`` to ``value`` at biological time ``t_ms``."""

    t_ms: float
    target: str
    key: str
    value: Any

    def __post_init__(self) -> None:
        if not (isinstance(self.t_ms, (int, float)) and not isinstance(self.t_ms, bool) and math.isfinite(self.t_ms) and 0 <= self.t_ms <= MAX_TIME_MS):
            raise ProtocolError(f"a change's time must be in [0, {MAX_TIME_MS:g}] ms, not {self.t_ms!r}")
        if not (isinstance(self.target, str) and self.target and self.target.isprintable()):
            raise ProtocolError(f"a change needs a target name, not {self.target!r}")
        if not (isinstance(self.key, str) and self.key.isidentifier()):
            raise ProtocolError(f"a change needs a parameter name, not {self.key!r}")
        if not _json_value(self.value):
            raise ProtocolError(f"{self}: the value must be a number, boolean, printable text or a list of them")

    @classmethod
    def parse(cls, text: str) -> Change:
        """``"300:noise.rate=900"`` (the ``--at`` syntax; VALUE is a TOML literal or text)."""
        when, colon, rest = text.partition(":")
        lhs, eq, value = rest.partition("=")
        target, dot, key = lhs.strip().rpartition(".")
        try:
            t_ms = float(when)
        except ValueError:
            t_ms = math.nan
        if not (colon and eq and dot) or math.isnan(t_ms):
            raise ProtocolError(f"--at takes T:TARGET.KEY=VALUE (e.g. 300:noise.rate=900), not {text!r}")
        return cls(t_ms, target.strip(), key.strip(), parse_value(value.strip()))

    @classmethod
    def from_dict(cls, data: Any) -> Change:
        """A ``[[protocol]]`` table or a stored change: ``t_ms`` (or ``t``), ``target``, ``key``, ``value``."""
        if not isinstance(data, dict):
            raise ProtocolError("a protocol entry must be a table with t_ms, target, key and value")
        data = dict(data)
        if "t" in data and "t_ms" not in data:
            data["t_ms"] = data.pop("t")
        missing = {"t_ms", "target", "key", "value"} - set(data)
        extra = set(data) - {"t_ms", "target", "key", "value"}
        if missing or extra:
            raise ProtocolError(f"a protocol entry has t_ms, target, key and value ({'missing ' + ', '.join(sorted(missing)) if missing else 'unknown ' + ', '.join(sorted(extra))})")
        t_ms = data["t_ms"]
        if isinstance(t_ms, int) and not isinstance(t_ms, bool):
            t_ms = float(t_ms)
        return cls(t_ms, data["target"], data["key"], data["value"])

    def to_dict(self) -> dict[str, Any]:
        return {"t_ms": float(self.t_ms), "target": self.target, "key": self.key, "value": self.value}

    def __str__(self) -> str:
        return f"{self.t_ms:g}:{self.target}.{self.key}={self.value!r}"


def _json_value(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        return value.isprintable()  # shown on terminals: no escape sequences
    if isinstance(value, (bool, int)):
        return True
    if isinstance(value, list):
        return all(_json_value(v) and not isinstance(v, list) for v in value)
    return False


def parse_changes(items: Iterable[str] | None) -> tuple[Change, ...]:
    """The ``--at`` flags, in order."""
    return tuple(Change.parse(item) for item in items or ())


def ordered(changes: Iterable[Change]) -> list[Change]:
    """By time; changes at one time keep the order they were given in."""
    return sorted(changes, key=lambda c: c.t_ms)


def describe(changes: Sequence[Change], limit: int = 3) -> str:
    """``"300:noise.rate=900.0, 500:E.I_e=0.0 (+2 more)"``."""
    shown = ", ".join(str(c) for c in changes[:limit])
    return shown + (f" (+{len(changes) - limit} more)" if len(changes) > limit else "")

"""One typed Textual message per engine event.

The engine's reader thread turns each wire event into one of these (:func:`from_engine`) and
posts it; handlers on the UI thread read typed fields, never a dict by key. Frames are the
exception: they go into the bounded ``LiveRun`` accumulator, drawn by a timer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from textual.message import Message

from einet.engine import Message as WireMessage
from einet.engine.protocol import EngineState, groups_from
from einet.history import HistoryRun
from einet.runs import Group


@dataclass(frozen=True)
class EngineStatus:
    """The engine's last reported state (``state`` event)."""

    state: EngineState = EngineState.STARTING
    t_ms: float = 0.0
    seed: int = 0
    threads: int = 0
    n_nodes: int = 0
    snapshot: str = ""
    snapshot_t_ms: float = 0.0
    bit_comparable: bool = True
    protocol: tuple[str, ...] = ()
    """The protocol's changes still to come, as ``T:TARGET.KEY=VALUE`` text, by time."""


class StateChanged(Message):
    def __init__(self, status: EngineStatus) -> None:
        super().__init__()
        self.status = status


class NetworkChanged(Message):
    """After a build, restore or reset: populations, weighted synapse models, what is not stored."""

    def __init__(self, groups: tuple[Group, ...], weight_models: list[str], not_stored: list[str]) -> None:
        super().__init__()
        self.groups = groups
        self.weight_models = weight_models
        self.not_stored = not_stored


class NestLog(Message):
    def __init__(self, lines: list[str]) -> None:
        super().__init__()
        self.lines = lines


class OpProgress(Message):
    def __init__(self, op: str, fraction: float) -> None:
        super().__init__()
        self.op = op
        self.fraction = fraction


@dataclass(frozen=True)
class StoreReport:
    """A published snapshot and how long its phases took."""

    path: Path
    bytes: int
    t_stored_ms: float
    seconds: float
    pause_s: float
    capture_s: float
    write_s: float
    background: bool


class Stored(Message):
    def __init__(self, report: StoreReport) -> None:
        super().__init__()
        self.report = report


class StoreFailed(Message):
    def __init__(self, path: Path, text: str) -> None:
        super().__init__()
        self.path = path
        self.text = text


class EngineDied(Message):
    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


def _state(e: WireMessage) -> Message:
    protocol = tuple(f"{float(c['t_ms']):g}:{c['target']}.{c['key']}={c['value']!r}" for c in e.get("protocol", []))
    return StateChanged(EngineStatus(EngineState(str(e["state"])), float(e["t_ms"]), int(e["seed"]), int(e["threads"]), int(e.get("n_nodes", 0)), str(e["snapshot"]), float(e["snapshot_t_ms"]), bool(e["bit_comparable"]), protocol))


def _stored(e: WireMessage) -> Message:
    return Stored(StoreReport(Path(str(e["path"])), int(e["bytes"]), float(e["t_stored_ms"]), float(e["seconds"]), float(e.get("pause_s", 0.0)), float(e.get("capture_s", 0.0)), float(e.get("write_s", 0.0)), bool(e.get("background", True))))


_PARSERS: dict[str, Callable[[WireMessage], Message]] = {
    "state": _state,
    "network": lambda e: NetworkChanged(groups_from(e.get("groups", []), e.arrays), [str(m) for m in e.get("weight_models", [])], [str(s) for s in e.get("not_stored", [])]),
    "log": lambda e: NestLog([str(line) for line in e.get("lines", [])]),
    "progress": lambda e: OpProgress(str(e["op"]), float(e["fraction"])),
    "stored": _stored,
    "store_failed": lambda e: StoreFailed(Path(str(e["path"])), str(e["message"])),
    "died": lambda e: EngineDied(str(e["reason"])),
}


def from_engine(event: WireMessage) -> Message | None:
    """The typed message for an engine event (None for frames, heartbeats and replies)."""
    parse = _PARSERS.get(event.kind)
    return parse(event) if parse is not None else None


class HistoryOpened(Message):
    """(From the history thread.) Earlier sessions' runs, and for each the id of the first
    run with its digest; ``warning`` if the history is off."""

    def __init__(self, earlier: list[HistoryRun], same: dict[int, int], warning: str) -> None:
        super().__init__()
        self.earlier = earlier
        self.same = same
        self.warning = warning


class RunRecorded(Message):
    """(From the history thread.) This session's run ``index`` got history id ``run_id``
    (None: not recorded); ``earlier`` is an earlier session's run with the same spikes."""

    def __init__(self, index: int, run_id: int | None, earlier: HistoryRun | None, warning: str) -> None:
        super().__init__()
        self.index = index
        self.run_id = run_id
        self.earlier = earlier
        self.warning = warning

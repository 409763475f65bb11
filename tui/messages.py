"""Typed Textual messages: one per engine event, and those of the history's and the tour's threads.

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

from .trials_book import TrialsBook


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


@dataclass
class StateChanged(Message):
    status: EngineStatus


@dataclass
class NetworkChanged(Message):
    """After a build, restore or reset: populations, weighted synapse models, what is not stored."""

    groups: tuple[Group, ...]
    weight_models: list[str]
    not_stored: list[str]


@dataclass
class NestLog(Message):
    lines: list[str]


@dataclass
class OpProgress(Message):
    op: str
    fraction: float

    def can_replace(self, message: Message) -> bool:
        """Only the newest fraction is drawn: a backlog of one operation's progress (the UI
        thread busy drawing a plot) collapses into it instead of being worked through."""
        return isinstance(message, OpProgress) and message.op == self.op


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


@dataclass
class Stored(Message):
    report: StoreReport


@dataclass
class StoreFailed(Message):
    path: Path
    text: str


@dataclass
class CheckpointDue(Message):
    """A run's frames passed the time a checkpoint is due (``--checkpoint-every``)."""

    path: Path


@dataclass
class EngineDied(Message):
    reason: str


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


@dataclass
class HistoryOpened(Message):
    """(From the history thread.) Earlier sessions' runs, and for each the id of the first
    run with its digest; ``warning`` if the history is off."""

    earlier: list[HistoryRun]
    same: dict[int, int]
    warning: str


@dataclass
class RunRecorded(Message):
    """(From the history thread.) This session's run ``index`` got history id ``run_id``
    (None: not recorded); ``earlier`` is an earlier session's run with the same spikes."""

    index: int
    run_id: int | None
    earlier: HistoryRun | None
    warning: str


@dataclass
class TourCaption(Message):
    """(From the tour's worker.) The step the tour is at, said in a caption."""

    text: str


@dataclass
class TourEnded(Message):
    """(From the tour's worker.) ``complete``: every step ran; otherwise it was stopped or a step failed."""

    complete: bool


@dataclass
class TrialsProgress(Message):
    """(From the trials' worker.) The set as it stands: started, a trial finished, or ended.
    Each carries the whole set so far (immutable), so a handler draws it as it is."""

    book: TrialsBook

"""The dashboard's checkpoints (``einet --checkpoint-every MS``): during each run, a background
store at every multiple of MS on the biological clock, into a folder of the run's own that
``einet resume`` goes on from (see ``docs/checkpoints.md``).

The dashboard asks its engine for each checkpoint as its frames pass the time it is due; the
engine takes the state at its next step boundary (as for ``s``), so a checkpoint holds the
state of a moment within one step after the time its name gives. One is written at a time: a
checkpoint that falls due while a store is being written is skipped, and the log says so.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from einet.checkpoints import CheckpointPlan, checkpoint_name, list_checkpoints
from einet.runs import RunResult


@dataclass
class RunCheckpoints:
    """Checkpoints of the dashboard's runs: each run gets ``root/run-DATE-TIME/`` with its plan."""

    root: Path
    every_ms: float
    keep: int
    folder: Path | None = None
    """The current (or last) run's checkpoint folder."""
    plan: CheckpointPlan | None = None
    _marks: Sequence[float] = ()
    _next: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, label: str, t_start_ms: float, t_stop_ms: float) -> Path:
        """A run begins (worker thread, before the engine runs it): its folder and plan."""
        self.root.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("run-%Y%m%d-%H%M%S")
        folder, k = self.root / stamp, 1
        while folder.exists():  # two runs within one second
            k += 1
            folder = self.root / f"{stamp}-{k}"
        folder.mkdir()
        plan = CheckpointPlan(t_start_ms, t_stop_ms, self.every_ms, self.keep, label)
        plan.write(folder)
        with self._lock:
            self.folder, self.plan = folder, plan
            self._marks, self._next = plan.marks(t_start_ms, t_stop_ms), 0
        return folder

    def due(self, t_ms: float) -> Path | None:
        """The checkpoint a frame at ``t_ms`` makes due, if any (the engine's reader thread).
        Marks passed within one frame are one checkpoint: the frames' steps are not the marks."""
        with self._lock:
            k = bisect.bisect_right(self._marks, t_ms + 1e-6, lo=self._next)
            if k == self._next or self.folder is None:
                return None
            mark, self._next = self._marks[k - 1], k
            return self.folder / checkpoint_name(mark)

    def finish(self, result: RunResult) -> None:
        """A run ended: its plan says finished when it reached its end (not cancelled)."""
        with self._lock:
            self._marks, self._next = (), 0
            plan, folder = self.plan, self.folder
        if plan is not None and folder is not None and not result.cancelled and result.t_stop_ms >= plan.t_stop_ms - 1e-6:
            self.plan = replace(plan, finished=True)
            self.plan.write(folder)

    def rotate(self, published: Path) -> list[Path]:
        """After ``published`` is whole: remove its folder's oldest checkpoints beyond ``keep``."""
        removed = []
        for old in list_checkpoints(published.parent)[self.keep :]:
            try:
                old.unlink()
            except OSError:
                continue
            removed.append(old)
        return removed

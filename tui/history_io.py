"""The run history, read and written on a thread of its own.

sqlite calls wait on locks (another process may hold the file), and the UI thread must never
wait: every call runs here, in order, and what the dashboard needs back arrives as a message
(``HistoryOpened``, ``RunRecorded``). One thread, so a run is recorded before the snapshot
stored from its end state is noted against it.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from textual.message import Message

from einet.history import History, file_sha256
from einet.runs import RunResult

from .messages import HistoryOpened, RunRecorded

EARLIER_RUNS = 10
"""Runs of earlier sessions the table shows (``einet history`` lists them all)."""


class HistoryIO:
    """The history of ``path``; results are handed to ``post`` (thread-safe, never waits)."""

    def __init__(self, path: Path, post: Callable[[Message], object]) -> None:
        self.path = path
        self._post = post
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="einet-history")
        self.history: History | None = None
        """Set once opened (enabled or off); used by the history thread only."""
        self._ids: dict[int, int] = {}  # run index → history id (history thread only)

    def open(self) -> None:
        self._thread.submit(self._open)

    def record(self, index: int, result: RunResult) -> None:
        self._thread.submit(self._record, index, result)

    def record_trial(self, result: RunResult, sha256: str, trial_set: str) -> None:
        """A trial of set ``trial_set`` (any thread): recorded with its set, not in this
        session's run table (the trials view shows it)."""
        self._thread.submit(self._record_trial, result, sha256, trial_set)

    def note_stored(self, index: int, path: Path) -> None:
        """The snapshot at ``path`` holds the end state of this session's run ``index``."""
        self._thread.submit(self._note_stored, index, path)

    def written(self) -> Future[None]:
        """Done once every call asked for before has run (they run in order): what they post
        is posted by then."""
        return self._thread.submit(lambda: None)

    def close(self) -> None:
        """Finish the writes and close the file on the history thread: waiting for them here,
        on the UI thread, could wait on a locked database."""
        self._thread.submit(self._close)
        self._thread.shutdown(wait=False)

    def _open(self) -> None:
        history = History.open(self.path)
        earlier = history.runs(EARLIER_RUNS) if history.enabled else []
        same = {}
        for h in earlier:
            first = history.first_with_digest(h.digest, before_id=h.id)
            if first is not None:
                same[h.id] = first.id
        self.history = history
        self._post(HistoryOpened(earlier, same, history.warning))

    def _record(self, index: int, result: RunResult) -> None:
        history = self.history
        if history is None or not history.enabled:
            return
        sha = file_sha256(Path(result.origin.snapshot)) if result.origin.kind == "restored" else ""
        run_id = history.record(result, snapshot_sha256=sha)
        if run_id is not None:
            self._ids[index] = run_id
        first = history.first_with_digest(result.digest, before_id=run_id) if run_id is not None else None
        earlier = first if first is not None and first.session != history.session else None
        self._post(RunRecorded(index, run_id, earlier, history.warning))

    def _record_trial(self, result: RunResult, sha256: str, trial_set: str) -> None:
        if self.history is not None and self.history.enabled:
            self.history.record(result, snapshot_sha256=sha256, trial_set=trial_set)

    def _note_stored(self, index: int, path: Path) -> None:
        run_id = self._ids.get(index)
        if run_id is not None and self.history is not None and self.history.enabled:
            self.history.note_stored(run_id, path, file_sha256(path))

    def _close(self) -> None:
        if self.history is not None:
            self.history.close()

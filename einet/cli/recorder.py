"""The CLI's run history: runs recorded as they finish, warnings once."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..text import visible


def history_file(args: argparse.Namespace) -> Path:
    """--history, else $EINET_HISTORY, else einet-history.sqlite in --snapshot-dir (``history``
    only) or in snapshots/ (from the current folder), as the dashboard finds it."""
    from ..history import history_path

    if getattr(args, "history", None) is not None:
        return args.history
    return history_path(getattr(args, "snapshot_dir", None) or Path("snapshots"))


class HistoryRecorder:
    """A command's run history (--history, --no-history): opened at the first run recorded,
    so a command refused earlier touches no file. When the history is or turns off, its one
    warning line goes to stderr, once; nothing goes to stdout and nothing here raises."""

    def __init__(self, args: argparse.Namespace) -> None:
        self._off = bool(getattr(args, "no_history", False))
        self._path = None if self._off else history_file(args)
        self._history: Any = None
        self._warned = False

    @property
    def wanted(self) -> bool:
        """Whether runs are (still) to be recorded: hashing files for it is worth it."""
        return not self._off and (self._history is None or self._history.enabled)

    def record(self, result: Any, snapshot: Path | None = None, sha256: str | None = None, trial_set: str = "") -> int | None:
        """Record a run; ``snapshot`` is the file a restored run came from (hashed here unless
        its ``sha256`` is given: a file that may be gone by the run's end is hashed before);
        ``trial_set`` names the set of trials it is one of."""
        if not self.wanted:
            return None
        from ..history import History, file_sha256

        if self._history is None:
            self._history = History.open(self._path)  # type: ignore[arg-type]
        sha = sha256 if sha256 is not None else file_sha256(snapshot) if snapshot is not None and self._history.enabled else ""
        run_id = self._history.record(result, snapshot_sha256=sha, trial_set=trial_set)
        self._warn()
        return run_id

    def stored(self, run_id: int | None, path: Path | None) -> None:
        """Note a snapshot stored from run ``run_id``'s end state (its path and SHA-256)."""
        if run_id is None or path is None or not self.wanted:
            return
        from ..history import file_sha256

        self._history.note_stored(run_id, path, file_sha256(path))
        self._warn()

    def close(self) -> None:
        if self._history is not None:
            self._history.close()

    def _warn(self) -> None:
        if self._history is not None and not self._history.enabled and not self._warned:
            self._warned = True
            print(f"einet: warning: {visible(self._history.warning)}", file=sys.stderr)

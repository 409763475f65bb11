"""Periodic checkpoints of a long run, and resuming it after a crash.

A run with checkpoints stores a snapshot every ``every_ms`` of biological time into a folder of
its own. Where a core is free of NEST's threads this happens in the background
(:func:`einet.store.store_in_background`: the run pauses for the state to be taken and a process
to fork, not for the file to be written), and at most one such store is in flight: when a
checkpoint falls due while the previous one is still being written, the run waits for it
(logged), then takes the new one. Where NEST's threads take every core, each checkpoint is a
store in the foreground: written beside the run, at idle priority, it costs the run more
than the pause. Every checkpoint is written either way. Files are named by their time
(``ckpt-<ms>ms.h5``, fixed width, so names sort as times do) and published atomically; once a
checkpoint is whole, the oldest beyond ``keep`` are removed.

The folder also holds the run's *plan*, ``checkpoints.json``: where the run started, where it
is to end, the interval, how many to keep, the run's label, and whether it reached its end.
Everything about the network (its state, the protocol's changes still to come, seed, threads,
the model's record) is in each checkpoint itself, as in any snapshot, so the plan is all a
resume needs besides the newest whole checkpoint. The plan is read as input from a stranger:
every field is checked, and nothing in it names a file to write.

:func:`resume_point` finds where to go on: the newest checkpoint that validates in full,
skipping (with one line each) damaged files and the hidden temporary files of stores that were
killed. :class:`Checkpointer` takes the checkpoints during one :meth:`Session.run
<einet.session.Session.run>`; the CLI's ``run --checkpoint-every`` and ``resume`` are built
from these two. See ``docs/checkpoints.md``.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import math
import os
import re
import stat
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from .config import ConfigError, usable_cores
from .protocol import MAX_TIME_MS
from .snapshot import CannotStoreError, Snapshot, SnapshotError, open_snapshot
from .snapshot.files import write_atomic
from .text import one_line, visible

if TYPE_CHECKING:
    from .runs import RunResult, StepUpdate
    from .session import Session
    from .store import StoreHandle

PLAN_NAME = "checkpoints.json"
PLAN_FORMAT = "einet-checkpoints"
PLAN_VERSION = 1
DEFAULT_KEEP = 3
_MAX_PLAN_BYTES = 64 * 1024
_NAME = re.compile(r"^ckpt-(\d{13}\.\d{3})ms\.h5$")
_LABEL_MAX = 200


class CheckpointError(SnapshotError):
    """A checkpoint folder whose plan or checkpoints are damaged: nothing whole to resume from."""


class CheckpointUsageError(ConfigError):
    """A checkpoint folder or file that cannot serve as asked: missing, not a checkpoint folder,
    holding another run's checkpoints, or holding newer checkpoints than the file named."""


def checkpoint_name(t_ms: float) -> str:
    """The file name of a checkpoint at biological time ``t_ms``: ``ckpt-0000000012000.000ms.h5``
    (13 digits hold any time up to 10¹² ms, so the names sort as the times do)."""
    return f"ckpt-{t_ms:017.3f}ms.h5"


def time_of(path: str | Path) -> float | None:
    """The biological time a checkpoint's name says, or None for any other name."""
    m = _NAME.match(Path(path).name)
    return float(m.group(1)) if m else None


def list_checkpoints(folder: str | Path) -> list[Path]:
    """The checkpoints in ``folder`` by their names, newest first (regular files only; the
    hidden temporary files of stores in flight or killed are never listed)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(t, p) for p in folder.iterdir() if (t := time_of(p)) is not None and p.is_file() and not p.is_symlink()]
    return [p for _, p in sorted(found, reverse=True)]


def unfinished(folder: str | Path) -> list[Path]:
    """Hidden temporary files of checkpoint stores that are in flight or were killed mid-write."""
    return sorted(Path(folder).glob(".ckpt-*.partial"))


class Marks(Sequence[float]):
    """``n`` multiples of ``every_ms`` from the ``first``-th on, made as they are read: a
    long run with a short interval has more of them than memory would hold as a list."""

    def __init__(self, every_ms: float, first: int, n: int) -> None:
        self.every_ms, self.first, self.n = every_ms, first, n

    def __len__(self) -> int:
        return self.n

    @overload
    def __getitem__(self, i: int) -> float: ...

    @overload
    def __getitem__(self, i: slice) -> list[float]: ...

    def __getitem__(self, i: int | slice) -> float | list[float]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(self.n))]
        if not -self.n <= i < self.n:
            raise IndexError(i)
        return round((self.first + i % self.n) * self.every_ms, 6)


@dataclass(frozen=True)
class CheckpointPlan:
    """What a resume needs to know of a run besides its state: its span on the biological
    clock, the checkpoint interval and how many to keep, its label, and whether it ended."""

    t_start_ms: float
    t_stop_ms: float
    every_ms: float
    keep: int = DEFAULT_KEEP
    label: str = "run 1"
    finished: bool = False
    """Whether the run reached ``t_stop_ms`` (a resume then has nothing left to do)."""

    def __post_init__(self) -> None:
        def time(v: Any) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and 0 <= v <= MAX_TIME_MS

        checks = [
            (time(self.t_start_ms) and time(self.t_stop_ms) and self.t_start_ms < self.t_stop_ms, f"a run's span must be times in [0, {MAX_TIME_MS:g}] ms, start before stop"),
            (time(self.every_ms) and self.every_ms > 0, f"the checkpoint interval must be a positive time in ms, not {self.every_ms!r}"),
            (isinstance(self.keep, int) and not isinstance(self.keep, bool) and 1 <= self.keep <= 10_000, f"checkpoints to keep must be a whole number in [1, 10000], not {self.keep!r}"),
            (isinstance(self.label, str) and 0 < len(self.label) <= _LABEL_MAX and self.label.isprintable(), "a run's label must be printable text"),
            (isinstance(self.finished, bool), "finished must be true or false"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    def marks(self, t_from: float, t_to: float) -> Marks:
        """The times in (``t_from``, ``t_to``) at which a checkpoint is due: the multiples of
        the interval on the biological clock, so a resumed run keeps the same times."""
        first = math.floor(t_from / self.every_ms + 1e-9) + 1
        last = math.ceil(t_to / self.every_ms - 1e-9) - 1
        return Marks(self.every_ms, first, max(0, last - first + 1))

    def first_mark(self) -> float:
        """When the run's first checkpoint is due."""
        return self._mark(math.floor(self.t_start_ms / self.every_ms + 1e-9) + 1)

    def _mark(self, k: int) -> float:
        return Marks(self.every_ms, k, 1)[0]

    def to_json(self) -> bytes:
        return json.dumps({"format": PLAN_FORMAT, "version": PLAN_VERSION, **asdict(self)}, indent=2).encode() + b"\n"

    @classmethod
    def read(cls, folder: str | Path) -> CheckpointPlan:
        """The plan in ``folder``; :class:`CheckpointUsageError` when there is none (not a
        checkpoint folder), :class:`CheckpointError` when it is damaged."""
        path = Path(folder) / PLAN_NAME
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            raise CheckpointUsageError(f"{folder} is not a checkpoint folder (no {PLAN_NAME}: made by einet run --checkpoint-every)") from None
        except OSError as exc:
            raise CheckpointError(f"{path}: {exc.strerror}") from None
        if not stat.S_ISREG(st.st_mode):  # a FIFO would block the read, a link could point anywhere
            raise CheckpointError(f"{path} is not a regular file")
        if st.st_size > _MAX_PLAN_BYTES:
            raise CheckpointError(f"{path} is larger than {_MAX_PLAN_BYTES // 1024} KiB: not a checkpoint plan")
        try:
            data = json.loads(path.read_bytes().decode("utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise CheckpointError(f"{path} is not a checkpoint plan: {one_line(exc)}") from None
        if not isinstance(data, dict) or data.get("format") != PLAN_FORMAT or data.get("version") != PLAN_VERSION:
            raise CheckpointError(f"{path} is not a checkpoint plan of this einet (format {PLAN_FORMAT}, version {PLAN_VERSION})")
        fields = {"t_start_ms", "t_stop_ms", "every_ms", "keep", "label", "finished"}
        if set(data) != fields | {"format", "version"}:
            raise CheckpointError(f"{path}: its fields differ from a checkpoint plan's ({', '.join(sorted(set(data) ^ (fields | {'format', 'version'})))[:80]})")
        try:
            return cls(**{k: data[k] for k in fields})
        except ConfigError as exc:
            raise CheckpointError(f"{path}: {exc}") from None

    def write(self, folder: str | Path) -> None:
        """Publish the plan in ``folder`` atomically (a reader sees the old plan or the new one)."""
        write_atomic(Path(folder) / PLAN_NAME, self.to_json(), overwrite=True)


def default_folder(store: Path | None) -> Path:
    """Where a run's checkpoints go without ``--checkpoint-dir``: beside its ``--store`` target
    (``final.h5`` → ``final.checkpoints/``), else ``checkpoints/`` in the current folder."""
    if store is not None:
        return store.parent / f"{store.stem}.checkpoints"
    return Path("checkpoints")


def check_folder(folder: Path) -> None:
    """Refuse, before anything is built, a folder a new run's checkpoints cannot go to: one
    that holds another run's checkpoints (a resume must never mix two runs), or whose parent
    is missing. A plan without checkpoints (a run stopped before its first) is replaced."""
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise CheckpointUsageError(f"checkpoint folder {folder} is not a folder")
    if not folder.parent.is_dir():
        raise CheckpointUsageError(f"cannot make checkpoint folder {folder}: folder {folder.parent} does not exist")
    if list_checkpoints(folder):
        raise CheckpointUsageError(f"{folder} holds the checkpoints of another run: resume it (einet resume {folder}), remove it, or choose --checkpoint-dir")


@dataclass(frozen=True)
class ResumePoint:
    """Where a resume goes on: the run's plan and its newest whole checkpoint (validated)."""

    folder: Path
    plan: CheckpointPlan
    path: Path
    snapshot: Snapshot
    skipped: tuple[str, ...] = ()
    """One line per file passed over (damaged, or a store that did not finish)."""

    @property
    def t_ms(self) -> float:
        return self.snapshot.t_stored_ms

    @property
    def remaining_ms(self) -> float:
        """Biological time left to the run's planned end (0 once it is reached)."""
        left = self.plan.t_stop_ms - self.snapshot.t_stored_ms
        return 0.0 if left < self.snapshot.resolution_ms / 2 else left


def plan_of(path: str | Path) -> tuple[Path, CheckpointPlan]:
    """The checkpoint folder ``path`` names (itself, or a checkpoint's folder) and its plan;
    :class:`CheckpointUsageError` for a path that is neither."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise CheckpointUsageError(f"{path}: no such checkpoint folder or file")
    if path.is_dir():
        return path, CheckpointPlan.read(path)
    if time_of(path) is None:
        raise CheckpointUsageError(f"{path} is not a checkpoint (named ckpt-<ms>ms.h5; einet restore continues any snapshot)")
    return path.parent, CheckpointPlan.read(path.parent)


def resume_point(path: str | Path, *, warn: Callable[[str], None] | None = None) -> ResumePoint:
    """The checkpoint to resume from: for a folder, its newest checkpoint that validates in
    full; for a file, that checkpoint (refused while newer ones are beside it: they belong to
    the run a resume from this one would replace). Each file passed over is told to ``warn``
    in one line. Refuses a path that is no checkpoint folder or file
    (:class:`CheckpointUsageError`) and a folder with nothing whole to resume from
    (:class:`CheckpointError`); a named checkpoint that does not validate raises its
    :class:`~einet.snapshot.SnapshotError`. (A plan marked finished is :func:`plan_of`'s to tell.)"""
    path = Path(path)
    folder, plan = plan_of(path)
    named = not path.is_dir()
    skipped: list[str] = []

    def passed_over(line: str) -> None:
        skipped.append(line)
        if warn is not None:
            warn(line)

    if named:
        t = time_of(path) or 0.0
        newer = [p for p in list_checkpoints(folder) if (time_of(p) or 0.0) > t]
        if newer:
            raise CheckpointUsageError(f"{folder} holds checkpoints newer than {path.name} ({newer[-1].name}): einet resume {folder} goes on from the newest; move the newer ones away to go on from this one")
        candidates = [path]
    else:
        candidates = list_checkpoints(folder)
    for partial in unfinished(folder):
        passed_over(f"skipping {visible(partial.name)}: a checkpoint whose store did not finish")
    for candidate in candidates:
        try:
            snap = open_snapshot(candidate)
        except SnapshotError as exc:
            if named:
                raise
            passed_over(f"skipping {visible(candidate.name)}: {visible(exc)}")
            continue
        if not plan.t_start_ms - 1e-6 <= snap.t_stored_ms <= plan.t_stop_ms + 1e-6:
            problem = f"stored at {snap.t_stored_ms:g} ms, outside the run's {plan.t_start_ms:g}-{plan.t_stop_ms:g} ms"
            if named:
                raise CheckpointError(f"{candidate}: {problem}")
            passed_over(f"skipping {visible(candidate.name)}: {problem}")
            continue
        return ResumePoint(folder, plan, candidate, snap, tuple(skipped))
    if not candidates:
        raise CheckpointUsageError(f"{folder} holds no checkpoint yet (the run stopped before its first, due at {plan.first_mark():g} ms): run it again")
    raise CheckpointError(f"{folder}: none of its {len(candidates)} checkpoints is whole")


@dataclass
class Checkpointer:
    """Takes a run's checkpoints: call :meth:`run` instead of :meth:`Session.run
    <einet.session.Session.run>`. Steps end at the times checkpoints are due; at each, a
    store: in the background if ``background`` (default: if a core is free of NEST's
    threads), once the previous one (if still in flight) is written: the run waits for it,
    and ``log`` is told; else in the foreground. A checkpoint that fails is told to ``log`` and
    the run goes on."""

    session: Session
    folder: Path
    plan: CheckpointPlan
    log: Callable[[str], None] = lambda line: None
    background: bool | None = None
    written: list[Path] = field(default_factory=list)
    skipped_ms: list[float] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    waited_s: float = 0.0
    """How long the run waited, in all, for checkpoints to be written (foreground stores
    included)."""
    abandoned: str | None = None
    """The checkpoint still being written when the run reached its end, and so stopped."""
    _marks: Sequence[float] = ()
    _next: int = 0
    """Index of the next mark not yet passed."""
    _handle: StoreHandle | None = None

    def run(self, t_ms: float, *, label: str, step_ms: float, on_step: Callable[[StepUpdate], None] | None = None) -> RunResult:
        """Simulate ``t_ms`` from the session's current time with checkpoints; publish the plan
        first and mark it finished when the run reaches its end."""
        t0 = self.session.time_ms
        if self.background is None:
            self.background = usable_cores() > self.session.threads
            if not self.background:
                self.log(f"checkpoints are stored in the foreground: NEST's {self.session.threads} threads take every core")
        self.folder.mkdir(exist_ok=True)
        self.plan.write(self.folder)
        self._marks, self._next = self.plan.marks(t0, self.plan.t_stop_ms), 0

        def step(update: StepUpdate) -> None:
            self._on_step(update)
            if on_step is not None:
                on_step(update)

        try:
            result = self.session.run(t_ms, label=label, step_ms=step_ms, on_step=step, marks=self._marks)
        finally:
            self._settle()
            if self._handle is not None:
                # the end state is the run's (and --store's) now: a checkpoint of a moment
                # before it is not worth waiting for, at idle priority, on a busy machine
                self._handle.abandon()
                self.abandoned, self._handle = self._handle.path.name, None
        if not result.cancelled and result.t_stop_ms >= self.plan.t_stop_ms - 1e-6:
            self.plan = replace(self.plan, finished=True)
            self.plan.write(self.folder)
        return result

    def summary(self) -> dict[str, Any]:
        """For a run's JSON document: the folder, interval, what was written, skipped, failed,
        and how long the run waited for writes."""
        return {
            "dir": str(self.folder),
            "every_ms": self.plan.every_ms,
            "keep": self.plan.keep,
            "written": [p.name for p in self.written],
            "kept": [p.name for p in reversed(list_checkpoints(self.folder))],
            "skipped_ms": list(self.skipped_ms),
            "failed": list(self.failed),
            "waited_s": round(self.waited_s, 3),
            "abandoned": self.abandoned,
        }

    def _on_step(self, update: StepUpdate) -> None:
        self._settle()
        k = bisect.bisect_right(self._marks, update.t_ms + 1e-6, lo=self._next)  # a long run has many marks: no scan per step
        if k == self._next:
            return
        due, self._next = self._marks[self._next : k], k
        if len(due) > 1:  # steps end at every mark: only an interval below the resolution gets here
            self.skipped_ms.extend(due[:-1])
            self.log(f"{len(due) - 1} checkpoints due before {update.t_ms:g} ms skipped: the interval is shorter than one step")
        if self._handle is not None:
            self._wait_for_previous(update.t_ms)
        path = self.folder / checkpoint_name(update.t_ms)
        t_store = time.monotonic()
        try:
            if self.background:
                self._handle = self.session.store(path, background=True)
            else:
                self.session.store(path)
                self.written.append(path)
                self._rotate()
        except (SnapshotError, OSError) as exc:
            self._fail(path, one_line(exc))
        finally:
            if not self.background:
                self.waited_s += time.monotonic() - t_store

    def _settle(self) -> None:
        """Note the in-flight checkpoint's end, if it came, and rotate once it is whole."""
        h = self._handle
        if h is None or not h.done:
            return
        self._handle = None
        if h.ok:
            self.written.append(h.path)
            self._rotate()
        else:
            self._fail(h.path, h.problem or "failed")

    def _wait_for_previous(self, t_ms: float) -> None:
        # Skipping instead would lose every checkpoint when NEST's threads keep every core busy:
        # the writer, at idle priority, gets no time until the run stops (measured at scale 40:
        # none of 3 written). Waiting costs the run the rest of one write.
        h = self._handle
        assert h is not None
        self.log(f"checkpoint at {t_ms:g} ms waits for {visible(h.path.name)} to be written")
        t0 = time.monotonic()
        with contextlib.suppress(CannotStoreError):  # a failure is told by _settle
            h.wait()
        self.waited_s += time.monotonic() - t0
        self._settle()

    def _rotate(self) -> None:
        # only ever called right after a checkpoint is published whole, so the newest `keep`
        # include it: what goes is older than a whole one
        for old in list_checkpoints(self.folder)[self.plan.keep :]:
            try:
                old.unlink()
            except OSError as exc:
                self.log(f"warning: cannot remove old checkpoint {visible(old.name)}: {visible(exc.strerror)}")

    def _fail(self, path: Path, why: str) -> None:
        self.failed.append(f"{path.name}: {why}")
        self.log(f"warning: checkpoint {visible(path.name)} failed: {visible(why)}; the run goes on")


def check_interval(every_ms: float | None, keep: int | None) -> None:
    """Refuse, with one line, an interval or keep count a plan could not hold."""
    if every_ms is not None and not (math.isfinite(every_ms) and 0 < every_ms <= MAX_TIME_MS):
        raise CheckpointUsageError(f"--checkpoint-every must be a positive time in ms, not {every_ms:g}")
    if keep is not None and not 1 <= keep <= 10_000:
        raise CheckpointUsageError(f"--keep must be 1 to 10000, not {keep}")


__all__ = [
    "DEFAULT_KEEP",
    "PLAN_NAME",
    "CheckpointError",
    "CheckpointPlan",
    "CheckpointUsageError",
    "Checkpointer",
    "ResumePoint",
    "check_folder",
    "check_interval",
    "checkpoint_name",
    "default_folder",
    "list_checkpoints",
    "plan_of",
    "resume_point",
    "time_of",
    "unfinished",
]

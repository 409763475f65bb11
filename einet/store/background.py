"""A store that leaves the simulation running: a forked process reads the network (with
workers of its own), builds, validates and publishes the file while the parent simulates.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import usable_cores
from ..snapshot import CannotStoreError, validate_snapshot
from ..snapshot.files import Reserved, check_store_target
from .assemble import finish, plan_capture
from .bulk import read_local
from .checks import check_written
from .hidden import read_asked, take_hidden
from .workers import Child, failure_of, fork_reader, pump, reap, say


# -- the background store ----------------------------------------------------------------------
@dataclass
class StoreHandle:
    """A store running in a forked process while this one goes on simulating.

    ``done`` and ``progress`` poll without blocking; :meth:`wait` blocks and raises
    :class:`~einet.snapshot.CannotStoreError` if the store failed; :meth:`abandon` stops it and
    removes its temporary file (an earlier file of that name is untouched either way).
    """

    path: Path
    t_stored_ms: float
    pause_s: float
    n_connections: int
    free_cores: int
    """Usable cores beyond NEST's threads: with none, the readers (at idle priority) get next
    to no time while a run goes on, and read once it stops."""
    _child: Child
    _tmp: Reserved
    _read: int = 0
    _started: float = field(default_factory=time.monotonic)
    _finished: float | None = None
    _problem: str | None = None

    def _poll(self, timeout: float | None) -> None:
        if self._finished is not None:
            return

        def on_read(k: int) -> None:
            self._read += k

        pump([self._child], timeout, on_read)
        if self._child.exited is not None:
            self._finished = time.monotonic()
            self._problem = failure_of([self._child], "store process")
            with contextlib.suppress(OSError):
                os.close(self._child.fd)
            if self._problem or self._child.published < 0:
                self._problem = self._problem or "the store process ended without publishing the file"
                with contextlib.suppress(OSError):
                    self._tmp.unlink()

    @property
    def done(self) -> bool:
        self._poll(0.0)
        return self._finished is not None

    @property
    def progress(self) -> float:
        """Fraction of connections read (writing the file is the last few per cent)."""
        self._poll(0.0)
        if self._finished is not None:
            return 1.0
        return min(0.99, self._read / max(1, self.n_connections))

    @property
    def ok(self) -> bool:
        return self.done and self._problem is None

    @property
    def problem(self) -> str | None:
        return self._problem if self.done else None

    @property
    def bytes(self) -> int:
        return max(0, self._child.published)

    @property
    def phases(self) -> dict[str, float]:
        """Seconds of the pause (this process), the connection reads and the writing (forked)."""
        read = self._child.read_s
        return {"pause_s": self.pause_s, "capture_s": read, "write_s": max(0.0, self.seconds - read) if self.done else 0.0}

    @property
    def seconds(self) -> float:
        end = self._finished if self._finished is not None else time.monotonic()
        return end - self._started

    def wait(self, timeout_s: float | None = None) -> Path:
        """Block until the file is published; raise CannotStoreError if the store failed."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while self._finished is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError(f"store of {self.path.name} still running after {timeout_s:g} s")
            self._poll(left)
        if self._problem:
            raise CannotStoreError(f"store of {self.path.name} failed: {self._problem}")
        return self.path

    def abandon(self) -> None:
        """Stop the store; its temporary file is removed and no file is published by it."""
        if self._finished is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._child.pid, signal.SIGKILL)
            reap([self._child], kill=True)
            self._finished = time.monotonic()
            self._problem = "abandoned"
            self._tmp.unlink()


def store_in_background(net: Any, path: str | Path, *, seed: int, overwrite: bool = False, workers: int = 1) -> StoreHandle:
    """Take the snapshot now and leave the reading, writing and publishing to a forked
    process; return at once. The pause is the plan (which does not grow with the connections)
    and the fork."""
    from ..snapshot.files import publish, reserve

    path = Path(path)
    check_store_target(path, overwrite)
    t0 = time.perf_counter()
    plan = plan_capture(net, seed=seed, read_nodes=False)  # node state: read by the child
    # only what PyNEST must tell of the hidden state here: the child reads the rest from the
    # memory it shares with this instant, by the accessor alone (NEST calls that open an
    # OpenMP region hang there)
    take_hidden(plan, in_child=True)
    tmp = reserve(path)

    def body(fd: int) -> None:
        # the simulation keeps its cores: NEST's threads wait for each other at every step, so
        # one of them losing its core to this process would slow the whole run down. At idle
        # priority (inherited by the readers and their threads) a waking NEST thread always
        # takes its core back at once.
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        except (AttributeError, OSError):
            os.nice(19)
        t_read = time.perf_counter()
        reported = 0

        def report(fraction: float) -> None:  # as connections read, which the handle counts
            nonlocal reported
            now = int(fraction * plan.n_connections)
            say(fd, f"p {now - reported}")
            reported = now

        read_asked(plan)
        buffers = read_local(plan, workers, report, idle=True)
        say(fd, f"c {time.perf_counter() - t_read:.6f}")
        snap = finish(plan, buffers)
        validate_snapshot(snap)
        check_written(snap)
        from ..snapshot.h5 import write_h5

        publish(tmp, path, lambda fh: write_h5(snap, fh), overwrite=overwrite)
        say(fd, f"d {path.stat().st_size}")

    try:
        child = fork_reader(body, plan.n_threads)
    except BaseException:
        tmp.unlink()
        raise
    finally:
        tmp.close()  # the child writes and publishes through its own copy of the descriptor
    pause = time.perf_counter() - t0
    free = max(0, usable_cores() - plan.n_threads)
    return StoreHandle(path=path, t_stored_ms=plan.t_stored_ms, pause_s=pause, n_connections=plan.n_connections, free_cores=free, _child=child, _tmp=tmp)

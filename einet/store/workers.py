"""Reading connections on every core: forked processes that see the kernel copy-on-write.

The parent takes what does not grow with the network (kernel settings, counts, keys; see
:func:`einet.store.plan_capture`) and forks; the children fetch their blocks of connections
and read their status (:func:`einet.store.connections.read_blocks`) into shared memory, then build and
write the file. Fetching connections opens an OpenMP region in NEST. Entered from the thread
that forked, one hangs for ever (measured: ``GetConnections`` never returns): that thread's
OpenMP runtime state still names the parent's OpenMP threads, which do not exist in the child.
A thread the child starts has no such state and starts a team of its own, so everything a
child asks of NEST runs in a new thread (:func:`_in_new_thread`). :mod:`.background` uses the same children for a whole store. Children report over a pipe
in lines: ``p N`` (N more connections read), ``c SECONDS`` (reading done), ``d BYTES`` (file
published), ``e MESSAGE`` (failed). A child that dies, errs or stops reporting fails the store
with one line; no process is left behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import mmap
import multiprocessing
import os
import re
import select
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..children import fork_child
from ..config import usable_cores
from ..kernel import nest_output_to
from ..snapshot import CannotStoreError
from ..text import one_line
from .connections import Columns, Cursor, allocate, read_blocks, read_connections
from .plan import CapturePlan, Progress, ReadCounter

# A reader that says nothing for this long is taken to hang: a block of ~130k connections takes
# about a second to fetch and read, so only a reader that cannot go on stays silent this long.
# (Not for a background store: its readers run at idle priority and may wait for cores.)
STALL_S = 300.0


def _shared(shape: tuple[int, ...], dtype: Any = np.float64) -> np.ndarray:
    """An array in anonymous shared memory (column-major): a forked child's writes reach the
    parent."""
    count = int(np.prod(shape))
    mem = mmap.mmap(-1, max(8, count * np.dtype(dtype).itemsize), flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
    return np.frombuffer(mem, dtype=dtype, count=count).reshape(shape, order="F")


def say(fd: int, line: str) -> None:
    os.write(fd, (line.replace("\n", " ") + "\n").encode("utf-8", "replace"))


@functools.cache
def _openmp() -> Any:
    """The OpenMP runtime NEST runs on in this process (None if there is none)."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1]
            if re.search(r"/lib(g|i|)omp[^/]*\.so", path):
                return ctypes.CDLL(path)
    return None


def _in_new_thread(body: Callable[[], None], threads: int) -> None:
    """Run ``body`` in a new thread whose OpenMP team has NEST's ``threads`` (see the module's
    docstring); an exception in it is raised here."""
    failed: list[BaseException] = []

    def run() -> None:
        try:
            runtime = _openmp()
            if runtime is not None:
                # a new thread starts from the runtime's default (all cores), not from what NEST
                # set in the thread that built the network: a bigger team would index threads
                # NEST does not have
                runtime.omp_set_num_threads(ctypes.c_int(threads))
            body()
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            failed.append(exc)

    thread = threading.Thread(target=run, name="einet-reader")
    thread.start()
    thread.join()
    if failed:
        raise failed[0]


@dataclass
class Child:
    pid: int
    fd: int
    buf: bytes = b""
    exited: int | None = None
    error: str = ""
    published: int = -1
    read_s: float = 0.0
    heard: float = field(default_factory=time.monotonic)


def reap(children: list[Child], kill: bool) -> None:
    for c in children:
        if c.exited is None:
            if kill:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(c.pid, signal.SIGKILL)
            _, status = os.waitpid(c.pid, 0)
            c.exited = status
        with contextlib.suppress(OSError):
            os.close(c.fd)


def pump(children: list[Child], timeout: float | None, on_read: Callable[[int], None]) -> None:
    """Read whatever the children said within ``timeout``; reap those whose pipe closed."""
    open_ = {c.fd: c for c in children if c.exited is None}
    if not open_:
        return
    ready, _, _ = select.select(list(open_), [], [], timeout)
    for fd in ready:
        c = open_[fd]
        data = os.read(fd, 65536)
        c.heard = time.monotonic()
        if not data:  # the child closed its end: it has exited or is exiting
            _, c.exited = os.waitpid(c.pid, 0)
            continue
        c.buf += data
        *lines, c.buf = c.buf.split(b"\n")
        for line in lines:
            kind, _, rest = line.decode("utf-8", "replace").partition(" ")
            if kind == "p":
                on_read(int(rest))
            elif kind == "e":
                c.error = rest
            elif kind == "d":
                c.published = int(rest)
            elif kind == "c":
                c.read_s = float(rest)


def failure_of(children: list[Child], what: str, stall_s: float | None = None) -> str | None:
    for i, c in enumerate(children):
        if c.error:
            return c.error
        if c.exited is not None and c.exited != 0:
            if os.WIFSIGNALED(c.exited):
                return f"{what} {i + 1} was killed by signal {os.WTERMSIG(c.exited)}"
            return f"{what} {i + 1} exited with code {os.WEXITSTATUS(c.exited)}"
        if stall_s is not None and c.exited is None and time.monotonic() - c.heard > stall_s:
            return f"{what} {i + 1} reported nothing for {stall_s:.0f} s"
    return None


def fork_reader(body: Callable[[int], None], threads: int) -> Child:
    """Run ``body(write_fd)`` in a forked child, in a new thread (see :func:`_in_new_thread`),
    that never returns into the caller's code."""
    r, w = os.pipe()

    def child() -> None:
        gc.disable()
        os.close(r)
        _in_new_thread(lambda: body(w), threads)

    # A collection in the child would write to every tracked object's header and so copy the
    # parent's whole heap page by page: freeze them first, and the child collects nothing.
    gc.freeze()
    try:
        pid = fork_child(child, on_error=lambda exc: say(w, f"e {one_line(exc)}"), ignore_interrupt=True)
    finally:
        gc.unfreeze()
    os.close(w)
    return Child(pid, r)


def read_in_workers(plan: CapturePlan, workers: int, progress: Progress | None = None, *, idle: bool = False) -> list[Columns]:
    """Fill the connection arrays with ``workers`` forked processes reading in parallel, each
    taking the next block of sources until none is left. A worker silent for ``STALL_S``
    fails the store, unless the readers run at ``idle`` priority (they may wait for cores)."""
    stall_s = None if idle else STALL_S
    workers = min(workers, len(plan.blocks()))
    if workers <= 1 or not hasattr(os, "fork"):
        return read_connections(plan, progress)
    buffers = allocate(plan, _shared)
    cursor = Cursor(_shared((1 + len(plan.models),), np.int64), multiprocessing.get_context("fork").Lock())
    on_read = ReadCounter(plan.n_connections, progress)

    def body(fd: int) -> None:
        with nest_output_to():
            read_blocks(plan, buffers, cursor, lambda k: say(fd, f"p {k}"))

    children: list[Child] = []
    try:
        for _ in range(workers):
            children.append(fork_reader(body, plan.n_threads))
        while any(c.exited is None for c in children):
            pump(children, 1.0, on_read)
            problem = failure_of(children, "store worker", stall_s)
            if problem:
                raise CannotStoreError(f"store failed: {problem}")
        problem = failure_of(children, "store worker")
        if problem:
            raise CannotStoreError(f"store failed: {problem}")
        cursor.check_complete(plan)
        if on_read.done != plan.n_connections:
            raise CannotStoreError(f"store failed: workers read {on_read.done} of {plan.n_connections} connections")
    finally:
        reap(children, kill=True)
    return buffers


def default_workers(requested: int | None) -> int:
    """``requested`` if given (≥ 1), else the usable cores."""
    return usable_cores() if not requested else max(1, int(requested))

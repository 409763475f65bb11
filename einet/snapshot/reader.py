"""Reading snapshots in a forked child: libhdf5 never parses a file in the caller's process.

Fuzzing found damaged files on which libhdf5 loops forever or crashes; neither may take the
caller (a dashboard, an engine holding a kernel) down with it. The child parses and validates
the file and writes its answer (manifest + raw arrays, :mod:`einet.wire`) into an in-memory
file; the parent maps it, so tens of MB cross without a copy. h5py is imported only in the
child, so the dashboard process never loads it.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import select
import signal
import time
from pathlib import Path

from ..wire import Message, WireError, buffer_reader, decode, encode_parts
from .files import sniff
from .model import Snapshot, SnapshotError, SnapshotInfo

_MAX_ANSWER_HEADER = 80 << 20


def _load_here(path: Path) -> Message:
    """Parse and validate in this process; the result as a message (runs in the child)."""
    try:
        from .h5 import load

        snap = load(path)
    except SnapshotError as exc:
        return Message("refused", {"message": str(exc)})
    manifest, arrays = snap.to_parts()
    manifest["read_from_version"] = snap.format_version
    return Message("snapshot", {"manifest": manifest}, arrays)


def read_isolated(path: Path, timeout_s: float | None = None) -> Message:
    """Run :func:`_load_here` in a forked child and return its message.

    A child that loops is killed at the deadline and one that crashes is reported, both as
    :class:`SnapshotError`.
    """
    sniff(path)
    if not hasattr(os, "fork") or not hasattr(os, "memfd_create"):  # pragma: no cover - non-Linux
        return _load_here(path)
    size = path.stat().st_size
    deadline = time.monotonic() + (timeout_s if timeout_s is not None else 10.0 + size / 20e6)
    answer = os.memfd_create("einet-snapshot-reader")
    done_r, done_w = os.pipe()  # closes when the child exits: the parent waits on it
    try:
        pid = os.fork()
        if pid == 0:  # child: parse, answer, leave without running any of the parent's cleanup
            code = 1
            try:
                _die_with_parent()
                os.close(done_r)
                with os.fdopen(answer, "wb", closefd=False) as out:
                    for part in encode_parts(_load_here(path)):
                        out.write(part)
                code = 0
            finally:
                os._exit(code)
        os.close(done_w)
        done_w = -1
        finished = False
        try:
            ready, _, _ = select.select([done_r], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise SnapshotError(f"{path}: reading did not finish in time (a damaged file can make the HDF5 library loop)")
            finished = True
        finally:
            if not finished:  # the deadline, or Ctrl-C while a damaged file keeps libhdf5 busy
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
        if status != 0:
            raise SnapshotError(f"{path}: the HDF5 library crashed reading this file (it is damaged)")
        length = os.fstat(answer).st_size
        if length == 0:
            raise SnapshotError(f"{path}: the reader gave no answer")
        # the arrays are views of the mapped answer: no copy of tens of MB
        mapped = mmap.mmap(answer, length, mmap.MAP_SHARED, mmap.PROT_READ)
        try:
            return decode(buffer_reader(memoryview(mapped)), max_header=_MAX_ANSWER_HEADER)
        except WireError as exc:
            raise SnapshotError(f"{path}: bad answer from the reader: {exc}") from None
    finally:
        for fd in (answer, done_r, done_w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)


def _die_with_parent() -> None:
    """The reader must not outlive whoever asked (a killed CLI or engine): PR_SET_PDEATHSIG."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)
    if os.getppid() == 1:  # the parent died before the line above took effect
        os._exit(1)


def open_snapshot(path: str | Path, *, timeout_s: float | None = None) -> Snapshot:
    """Read and fully validate a snapshot; raise :class:`SnapshotError` if anything is off."""
    path = Path(path)
    msg = read_isolated(path, timeout_s)
    if msg.kind != "snapshot":
        raise SnapshotError(str(msg.get("message")))
    return Snapshot.from_parts(msg["manifest"], msg.arrays, str(path))


def inspect_snapshot(path: str | Path) -> SnapshotInfo:
    """Metadata, counts, weight statistics and an integrity verdict; never raises for content."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError:
        size = 0
    try:
        snap = open_snapshot(path)
    except SnapshotError as exc:
        return SnapshotInfo(path=path, file_bytes=size, valid=False, problem=str(exc))
    return SnapshotInfo.of(snap, path, size)

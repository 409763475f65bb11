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
import struct
import time
from collections.abc import Callable
from pathlib import Path

from ..children import fork_child
from ..wire import Message, WireError, buffer_reader, decode, encode_parts
from .files import sniff
from .info import SnapshotInfo
from .manifest import from_parts
from .model import Snapshot, SnapshotError

_MAX_ANSWER_HEADER = 80 << 20
_SIZE = struct.Struct("!Q")


READ_BASE_S = 10.0
"""The reader's deadline before the file's size and manifest add to it."""

MANIFEST_BYTES_PER_S = 1 << 20
"""The reader's deadline grows by a second per MiB of manifest (JSON parsed, validated and
sent on at ~3 MiB/s: a network with a run per node has a large one, which the file's
compressed size does not show)."""


def _load_here(path: Path, on_manifest: Callable[[int], None] | None = None) -> Message:
    """Parse and validate in this process; the result as a message (runs in the child)."""
    try:
        from .load import load_parts

        snap, manifest, arrays = load_parts(path, on_manifest)
    except SnapshotError as exc:
        return Message("refused", {"message": str(exc)})
    return Message("snapshot", {"manifest": {**manifest, "read_from_version": snap.format_version}}, arrays)


def read_isolated(path: Path, timeout_s: float | None = None) -> Message:
    """Run :func:`_load_here` in a forked child and return its message.

    A child that loops is killed at the deadline and one that crashes is reported, both as
    :class:`SnapshotError`.
    """
    sniff(path)
    if not hasattr(os, "fork") or not hasattr(os, "memfd_create"):  # pragma: no cover - non-Linux
        return _load_here(path)
    size = path.stat().st_size
    deadline = time.monotonic() + (timeout_s if timeout_s is not None else READ_BASE_S + size / 20e6)
    answer = os.memfd_create("einet-snapshot-reader")
    # the child writes the manifest's size here once it has read it, and the pipe closes when
    # it exits: the parent waits on it
    done_r, done_w = os.pipe()
    try:

        def child() -> None:  # parse, answer, leave without running any of the parent's cleanup
            os.close(done_r)

            def tell(nbytes: int) -> None:
                os.write(done_w, _SIZE.pack(nbytes))

            with os.fdopen(answer, "wb", closefd=False) as out:
                for part in encode_parts(_load_here(path, tell if timeout_s is None else None)):
                    out.write(part)

        pid = fork_child(child)
        os.close(done_w)
        done_w = -1
        finished = False
        try:
            heard = b""
            while True:
                ready, _, _ = select.select([done_r], [], [], max(0.0, deadline - time.monotonic()))
                if not ready:
                    raise SnapshotError(f"{path}: reading did not finish in time (a damaged file can make the HDF5 library loop)")
                got = os.read(done_r, _SIZE.size)
                if not got:
                    break
                heard += got
                if len(heard) == _SIZE.size:  # libhdf5 has read the manifest: time for the rest
                    deadline += _SIZE.unpack(heard)[0] / MANIFEST_BYTES_PER_S
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


def open_snapshot(path: str | Path, *, timeout_s: float | None = None) -> Snapshot:
    """Read and fully validate a snapshot; raise :class:`SnapshotError` if anything is off."""
    path = Path(path)
    msg = read_isolated(path, timeout_s)
    if msg.kind != "snapshot":
        raise SnapshotError(str(msg.get("message")))
    return from_parts(msg["manifest"], msg.arrays, str(path))


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

"""Reading snapshots in a forked child: libhdf5 never parses a file in the caller's process.

Fuzzing found damaged files on which libhdf5 loops forever or crashes; neither may take the
caller (a dashboard, an engine holding a kernel) down with it. The child parses and validates
the file into an in-memory file, its arrays read straight into their place there, and ends it
with a JSON header saying where each array is; the parent maps it, so tens of MB cross
without a copy. h5py is imported only in the child, so the dashboard process never loads it.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import select
import signal
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..children import fork_child
from ..wire import Message, WireError
from .files import sniff
from .info import SnapshotInfo
from .manifest import from_parts
from .model import Snapshot, SnapshotError
from .packed import Chunks, PackedColumn

if TYPE_CHECKING:
    from .load import Place  # h5py: never imported in the caller's process

_MAX_ANSWER_HEADER = 80 << 20
_SIZE = struct.Struct("!Q")
_TRAILER = struct.Struct("!QQ")
_ALIGN = 64


READ_BASE_S = 10.0
"""The reader's deadline before the file's size and manifest add to it."""

MANIFEST_BYTES_PER_S = 1 << 20
"""The reader's deadline grows by a second per MiB of manifest (JSON parsed, validated and
sent on at ~3 MiB/s: a network with a run per node has a large one, which the file's
compressed size does not show)."""


def _load_here(path: Path, on_manifest: Callable[[int], None] | None = None, place: Place | None = None) -> tuple[Message, dict[str, Chunks]]:
    """Parse and validate in this process; the result as a message, and the arrays of it to
    send as their deflated chunks (runs in the child)."""
    try:
        from .load import load_parts

        snap, manifest, arrays, packs = load_parts(path, on_manifest, place)
    except SnapshotError as exc:
        return Message("refused", {"message": str(exc)}), {}
    return Message("snapshot", {"manifest": {**manifest, "read_from_version": snap.format_version}}, arrays), packs


class _Answer:
    """The child's answer in the in-memory file: arrays first, each at an aligned offset (read
    into place by :meth:`place`, or copied there by :meth:`finish`), then the JSON header
    ``{"kind", "fields", "arrays": [[name, dtype, shape, offset], ...]}``, then the header's
    offset and length. A packed array's entry has a fifth item, ``[chunk_rows, width,
    bounds, extremes]``: its offset is that of its deflated chunks, chunk k at ``bounds[k]`` to
    ``bounds[k + 1]`` from there, and ``extremes`` its least and largest value or null
    (:class:`~.packed.PackedColumn`)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.end = 0
        self.placed: dict[str, tuple[np.ndarray, int]] = {}

    def _reserve(self, nbytes: int) -> int:
        offset = -(-self.end // _ALIGN) * _ALIGN
        self.end = offset + nbytes
        return offset

    def place(self, spec: dict[str, tuple[np.dtype, tuple[int, ...]]]) -> dict[str, np.ndarray]:
        offsets = {name: self._reserve(int(np.prod(shape)) * np.dtype(dt).itemsize) for name, (dt, shape) in spec.items()}
        if not self.end:
            return {}
        os.ftruncate(self.fd, self.end)
        region = mmap.mmap(self.fd, self.end, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        for name, (dt, shape) in spec.items():
            dtype = np.dtype(dt).newbyteorder("<")
            self.placed[name] = (np.frombuffer(region, dtype=dtype, count=int(np.prod(shape)), offset=offsets[name]).reshape(shape), offsets[name])
        return {name: array for name, (array, _) in self.placed.items()}

    def finish(self, msg: Message, packs: dict[str, Chunks]) -> None:
        specs: list[list[Any]] = []
        for name, array in msg.arrays.items():
            chunks = packs.get(name)
            if chunks is not None:
                bounds = np.cumsum([0, *(len(raw) for raw in chunks.raw)]).tolist()
                offset = self._reserve(bounds[-1])
                for raw, at in zip(chunks.raw, bounds):
                    self._write(memoryview(raw), offset + at)
                specs.append([name, array.dtype.str, list(array.shape), offset, [chunks.rows, chunks.width, bounds, chunks.extremes]])
                continue
            here = self.placed.get(name)
            if here is not None and here[0] is array:
                offset = here[1]
            else:  # made, not read (a converted v1 file): copied after the others
                array = np.ascontiguousarray(array.astype(array.dtype.newbyteorder("<"), copy=False))
                offset = self._reserve(array.nbytes)
                self._write(array.data.cast("B"), offset)
            specs.append([name, array.dtype.str, list(array.shape), offset])
        header = json.dumps({"kind": msg.kind, "fields": msg.fields, "arrays": specs}).encode()
        at = self._reserve(len(header))
        self._write(memoryview(header + _TRAILER.pack(at, len(header))), at)

    def _write(self, data: memoryview, offset: int) -> None:
        while len(data):  # a write may take fewer bytes than it was given (2 GiB at most)
            done = os.pwrite(self.fd, data, offset)
            data, offset = data[done:], offset + done


def _decode_answer(mapped: mmap.mmap, length: int) -> Message:
    """The message of an answer :class:`_Answer` wrote; its arrays are views of ``mapped``."""
    if length < _TRAILER.size:
        raise WireError("no trailer")
    at, size = _TRAILER.unpack_from(mapped, length - _TRAILER.size)
    if size > _MAX_ANSWER_HEADER or at + size != length - _TRAILER.size:
        raise WireError("the header is not where the trailer says")
    try:
        header = json.loads(bytes(mapped[at : at + size]))
        specs = [(str(name), np.dtype(dt), tuple(int(x) for x in shape), int(offset), packed[0] if packed else None) for name, dt, shape, offset, *packed in header["arrays"]]
        kind, fields = str(header["kind"]), dict(header.get("fields", {}))
    except (ValueError, TypeError, KeyError) as exc:
        raise WireError(f"malformed header: {exc}") from None
    arrays: dict[str, Any] = {}
    for name, dtype, shape, offset, packed in specs:
        count = int(np.prod(shape)) if shape else 1
        if packed is not None:
            try:
                rows, width, bounds = int(packed[0]), int(packed[1]), np.asarray(packed[2], dtype=np.int64)
                if offset < 0 or len(shape) != 1 or dtype.hasobject or not len(bounds) or offset + int(bounds[-1]) > at:
                    raise ValueError("not inside the answer")
                known = (float(packed[3][0]), float(packed[3][1])) if len(packed) > 3 and packed[3] is not None else None
                arrays[name] = PackedColumn(dtype, shape[0], rows, width, memoryview(mapped)[offset : offset + int(bounds[-1])], bounds, known)
            except (ValueError, TypeError, IndexError) as exc:
                raise WireError(f"packed array {name}: {exc}") from None
            continue
        if dtype.hasobject or offset < 0 or any(x < 0 for x in shape) or offset + count * dtype.itemsize > at:
            raise WireError(f"array {name} is not inside the answer")
        arrays[name] = np.frombuffer(mapped, dtype=dtype, count=count, offset=offset).reshape(shape)
    return Message(kind, fields, arrays)


def read_isolated(path: Path, timeout_s: float | None = None) -> Message:
    """Run :func:`_load_here` in a forked child and return its message.

    A child that loops is killed at the deadline and one that crashes is reported, both as
    :class:`SnapshotError`.
    """
    sniff(path)
    if not hasattr(os, "fork") or not hasattr(os, "memfd_create"):  # pragma: no cover - non-Linux
        return _load_here(path)[0]
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

            out = _Answer(answer)
            out.finish(*_load_here(path, tell if timeout_s is None else None, out.place))

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
            return _decode_answer(mapped, length)
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

"""Snapshot files in HDF5: the format v2 layout, writing it, and the reading helpers that
loading v2 and v1 files shares (:mod:`.load`).

Layout of a v2 file (see ``docs/snapshot-format.md``)::

    /                root attributes: format, format_version, einet_version, nest_version,
                     t_stored_ms, seed, n_vp, created, header_crc32
    /manifest        uint8: JSON describing everything below (and the model, kernel
                     settings, model calls, stored / not stored)
    /nodes/K/KEY     per-node values of node run K          (float64, int64 or uint8)
    /nodes/K/ragged/KEY/{values,offsets}   per-node arrays (spike_times, …)
    /nodes/K/positions                     float64 [count, dims] for spatial runs
    /synapses/K/{source,target}            int32 [count]
    /synapses/K/KEY                        per-connection values
    /groups/K                              int32 node ids of population K

Every dataset has a ``crc32`` attribute over its little-endian bytes; ``header_crc32`` covers
the root attributes, the manifest's checksum and the name of every group and dataset (files
written before names were covered are still read). The file must be self-contained: external
and virtual storage are refused on structure, before any data is read.
"""

from __future__ import annotations

import contextlib
import json
import mmap
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

import h5py
import numpy as np
from isal import isal_zlib

from ..config import usable_cores
from ..text import one_line
from .files import sniff
from .manifest import to_parts
from .model import Snapshot, SnapshotError
from .packed import Chunks, inflate_chunk
from .validate import require

MAX_MANIFEST_BYTES = 64 << 20
_CHUNK = 1 << 17
HEADER_TYPES: dict[str, type] = {
    "format": str,
    "format_version": int,
    "einet_version": str,
    "nest_version": str,
    "t_stored_ms": float,
    "seed": int,
    "n_vp": int,
    "created": str,
}


def crc(values: np.ndarray) -> int:
    # ISA-L's CRC-32 is zlib's, about 3x as fast here
    return isal_zlib.crc32(np.ascontiguousarray(values).data.cast("B"))


def header_crc(header: dict[str, Any], manifest_crc: int, names: list[str] | None = None) -> int:
    """``header_crc32``: the root attributes, the manifest's checksum and ``names`` (every group
    and dataset, sorted: see :func:`object_names`). Without ``names``, the form of files written
    before names were covered."""
    covered: dict[str, Any] = {**{k: header[k] for k in HEADER_TYPES}, "manifest_crc32": manifest_crc}
    if names is not None:
        covered["names"] = names
    return isal_zlib.crc32(json.dumps(covered, sort_keys=True).encode())


def object_names(h5: h5py.File) -> list[str]:
    """Every group and dataset in the file, by path, sorted (the root excluded)."""
    names: list[str] = []
    h5.visit(names.append)
    return sorted(names)


# -- writing -------------------------------------------------------------------------------
def write_h5(snap: Snapshot, fh: BinaryIO) -> None:
    """Write the snapshot as an HDF5 file into ``fh`` (a file open for reading and writing).

    HDF5 writes through ``fh``'s Python methods, so a failed write (a full disk) is a Python
    exception here, not a crash inside libhdf5. Large datasets go chunk by chunk, each chunk
    shuffled and compressed on a pool of threads and written as it is: the file is never
    held whole in memory, and compressing uses every core.
    """
    manifest, arrays = to_parts(snap)
    raw = np.frombuffer(json.dumps(manifest, sort_keys=True, allow_nan=True).encode(), dtype=np.uint8)
    require(len(raw) <= MAX_MANIFEST_BYTES, f"the network's description needs {len(raw) >> 20} MiB, more than a snapshot's manifest may hold")
    cores = usable_cores()
    with h5py.File(fh, "w") as h5, ThreadPoolExecutor(max_workers=cores, thread_name_prefix="einet-deflate") as pool:
        header = snap.header()
        h5.attrs.update(header)
        # one queue of chunks for the whole file: a dataset's last chunks deflate while the
        # next dataset is made and its first chunks are cut (many datasets are a chunk or two)
        chunks: deque[_Chunk] = deque()
        _write_dataset(h5, "manifest", raw, pool, 2 * cores, chunks=chunks)
        for name, values in arrays.items():
            _write_dataset(h5, name, np.asarray(values), pool, 2 * cores, shuffle=name not in UNSHUFFLED, chunks=chunks)
        while chunks:
            _write_chunk(*chunks.popleft())
        h5.attrs["header_crc32"] = np.uint32(header_crc(header, crc(raw), object_names(h5)))


UNSHUFFLED = frozenset({"hidden/nodes/records"})
"""Datasets deflated without the byte shuffle: a hidden record holds values of every kind one
after another, and runs of zeros (a buffer's empty slots), which shuffling spreads apart;
unshuffled they deflate faster and smaller. Every other dataset is a column of one kind,
which shuffling makes smaller and faster to deflate."""


_Chunk = tuple[h5py.Dataset, int, Future[bytes]]
"""A chunk of a dataset being deflated: the dataset, its first row, the deflated bytes."""


def _write_dataset(h5: h5py.File, name: str, values: np.ndarray, pool: Executor, in_flight: int, *, shuffle: bool = True, chunks: deque[_Chunk] | None = None) -> None:
    """One dataset and its checksum; at most ``in_flight`` chunks wait, compressed or not.
    With ``chunks``, its chunks join that queue (of earlier datasets' chunks), whose last
    ones are the caller's to write; else all are written here."""
    values = np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("<") if values.dtype.byteorder not in ("|", "=") else values.dtype)
    if values.size <= 1024 or values.ndim == 0:
        ds = h5.create_dataset(name, data=values)
        ds.attrs["crc32"] = np.uint32(crc(values))
        return
    # Byte-shuffle + fast gzip: ids in source order, uniform-ish parameters and traces shrink
    # many times; STDP weights by ~20%. Level 1 keeps store and restore quick. The chunks are
    # what HDF5's own shuffle and deflate filters would write, so any HDF5 reader reads them.
    rows = min(len(values), _CHUNK)
    ds = h5.create_dataset(name, shape=values.shape, dtype=values.dtype, chunks=(rows, *values.shape[1:]), compression="gzip", compression_opts=1, shuffle=shuffle)
    checksum = 0
    pending: deque[_Chunk] = deque() if chunks is None else chunks
    for lo in range(0, len(values), rows):
        part = values[lo : lo + rows]
        checksum = isal_zlib.crc32(part.data.cast("B"), checksum)
        pending.append((ds, lo, pool.submit(_deflate, part, rows, shuffle)))
        while len(pending) > in_flight:
            _write_chunk(*pending.popleft())
    while chunks is None and pending:
        _write_chunk(*pending.popleft())
    ds.attrs["crc32"] = np.uint32(checksum)


def _deflate(part: np.ndarray, rows: int, shuffle: bool) -> bytes:
    """One chunk as HDF5's shuffle (if ``shuffle``) then deflate (level 1) filters store it: a
    last chunk is padded to the full chunk (HDF5 stores edge chunks whole)."""
    if len(part) < rows:
        part = np.concatenate([part, np.zeros((rows - len(part), *part.shape[1:]), dtype=part.dtype)])
    width = part.dtype.itemsize
    shuffled = part.view(np.uint8).reshape(-1, width).T.copy() if width > 1 and shuffle else part.view(np.uint8)
    # ISA-L's deflate: the same zlib stream format, several times faster than zlib's level 1
    # and no larger
    return isal_zlib.compress(shuffled.data.cast("B"), 1)


def _write_chunk(ds: h5py.Dataset, lo: int, done: Future[bytes]) -> None:
    ds.id.write_direct_chunk((lo, *(0,) * (ds.ndim - 1)), done.result())


# -- reading (shared by format v2 and v1: see load.py) ---------------------------------
def check_structure(h5: h5py.File, want_sets: set[str], *, ignored: str | None = None) -> None:
    """Exactly these datasets (and the groups that hold them), all stored inside the file;
    the group ``ignored`` and what it holds are passed over (never read)."""
    want_groups = {name.rsplit("/", k)[0] for name in want_sets for k in range(1, name.count("/") + 1)}
    found_groups: set[str] = set()
    found_sets: set[str] = set()

    def visit(name: str, obj: Any) -> None:
        if ignored is not None and (name == ignored or name.startswith(f"{ignored}/")):
            return
        if isinstance(obj, h5py.Dataset):
            found_sets.add(name)
            require(not obj.is_virtual, f"{name} is a virtual dataset (a snapshot must be self-contained)")
            require(not obj.external, f"{name} keeps its data in another file (a snapshot must be self-contained)")
        else:
            found_groups.add(name)

    h5.visititems(visit)
    missing = sorted((want_groups - found_groups) | (want_sets - found_sets))
    extra = sorted((found_groups - want_groups) | (found_sets - want_sets))
    require(not missing, f"missing {', '.join(missing[:3])}")
    require(not extra, f"unexpected {', '.join(extra[:3])}")


HOLLOW_RATIO = 1100
"""Deflate cannot shrink data more than ~1032:1: a dataset whose bytes on disk are fewer than
its declared size over this holds bytes the file does not have (HDF5 makes them up)."""


def check_stored(h5: h5py.File, spec: dict[str, tuple[np.dtype, tuple[int, ...]]]) -> None:
    """All datasets together hold bytes for what they declare, before any is read: each one
    under 1 MiB is let through alone (:func:`read_dataset`), so a manifest declaring thousands
    of them, none stored, would have the reader allocate and checksum gigabytes of nothing."""
    declared = stored = 0
    for name, (dt, shape) in spec.items():
        declared += int(np.prod(shape)) * dt.itemsize
        stored += h5[name].id.get_storage_size()
    require(declared <= (1 << 20) + stored * HOLLOW_RATIO, f"the datasets declare {declared} bytes but the file holds only {stored} for them")


def read_dataset(h5: h5py.File, name: str, want: np.dtype, shape: tuple[int, ...], out: np.ndarray | None = None, chunks: Chunks | None = None) -> np.ndarray:
    """Read one dataset after checking dtype, shape and that its bytes are really there; into
    ``out`` if given (of that dtype and shape). ``chunks``: where a dataset stored as
    :func:`write_h5` stores one leaves its deflated chunks (left empty otherwise)."""
    ds = h5[name]
    require(isinstance(ds, h5py.Dataset), f"{name} is not a dataset")
    require(ds.dtype == want, f"{name} has dtype {ds.dtype}, expected {want}")
    require(ds.shape == tuple(shape), f"{name} has shape {ds.shape}, expected {tuple(shape)}")
    stored_crc = ds.attrs.get("crc32")
    require(stored_crc is not None and np.asarray(stored_crc).shape == (), f"{name} has no checksum")
    # a dataset whose bytes on disk are far fewer than its declared size is hollow: refuse it
    # before allocating memory for it
    nbytes = int(np.prod(shape)) * want.itemsize
    require(nbytes <= 1 << 20 or ds.id.get_storage_size() * HOLLOW_RATIO >= nbytes, f"{name} declares {nbytes} bytes but the file holds far fewer")
    values = _fresh(shape, want) if out is None else out
    if values.size and not _inflate_chunks(ds, values, chunks):
        if chunks is not None:
            chunks.raw.clear()
        ds.read_direct(values)
    require(crc(values) == int(stored_crc), f"{name} fails its checksum (the file is corrupted)")
    return values


def _fresh(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An array in memory of its own (an anonymous map), not taken from the heap: in the
    forked reader the heap is the parent's, shared copy-on-write, and filling an array there
    copied every page of it first (a parent holding a network made reading twice as slow)."""
    nbytes = int(np.prod(shape)) * dtype.itemsize
    if nbytes < _FRESH_BYTES:
        return np.empty(shape, dtype=dtype)
    return np.frombuffer(mmap.mmap(-1, nbytes), dtype=dtype).reshape(shape)


_FRESH_BYTES = 1 << 20


def _inflate_chunks(ds: h5py.Dataset, values: np.ndarray, keep: Chunks | None = None) -> bool:
    """Fill ``values`` from a dataset stored as :func:`write_h5` stores one (chunks of whole
    rows, deflated, shuffled first or not), inflating its chunks on every core: libhdf5 inflates one
    chunk at a time, which was half of reading a snapshot. False, with nothing promised about
    ``values`` or ``keep``, for any other layout or anything unexpected: the caller then reads
    through libhdf5, which raises what it raises for such a file. The checksum is the
    caller's. ``keep`` gets the deflated chunks."""
    try:
        plist = ds.id.get_create_plist()
        if plist.get_layout() != h5py.h5d.CHUNKED or ds.chunks is None or tuple(ds.chunks[1:]) != tuple(ds.shape[1:]):
            return False
        filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
        if filters not in ([h5py.h5z.FILTER_SHUFFLE, h5py.h5z.FILTER_DEFLATE], [h5py.h5z.FILTER_DEFLATE]):
            return False
        rows, width = ds.chunks[0], values.dtype.itemsize if len(filters) == 2 else 1
        if keep is not None:
            keep.rows, keep.width = int(rows), int(width)
        flat = values.reshape(len(values), -1).view(np.uint8).reshape(len(values), -1)
        chunk_bytes = rows * flat.shape[1]
        tail = (0,) * (ds.ndim - 1)
        cores = usable_cores()
        with ThreadPoolExecutor(max_workers=cores) as pool:
            pending: deque[Future[bool]] = deque()
            for lo in range(0, len(values), rows):
                mask, raw = ds.id.read_direct_chunk((lo, *tail))  # libhdf5 reads in this thread
                if mask != 0:
                    return False
                if keep is not None:
                    keep.raw.append(raw)
                pending.append(pool.submit(inflate_chunk, raw, chunk_bytes, width, flat[lo : lo + rows]))
                while len(pending) > 2 * cores:
                    if not pending.popleft().result():
                        return False
            return all(f.result() for f in pending)
    except Exception:  # noqa: BLE001 - a damaged file: libhdf5's own read says what is wrong
        return False


@contextlib.contextmanager
def open_h5(path: str | Path) -> Iterator[h5py.File]:
    path = Path(path)
    sniff(path)
    try:
        h5 = h5py.File(path, "r")
    except Exception:  # noqa: BLE001 - h5py raises many kinds for damaged files
        raise SnapshotError(f"{path} is not a readable HDF5 file (truncated or damaged)") from None
    try:
        yield h5
    except SnapshotError:
        raise
    except Exception as exc:  # noqa: BLE001 - h5py raises many kinds for damaged files
        raise SnapshotError(f"{path} is damaged: {type(exc).__name__}: {one_line(exc, 120)}") from None
    finally:
        with contextlib.suppress(Exception):
            h5.close()


def read_attr(h5: h5py.File, name: str, kind: type) -> Any:
    if name not in h5.attrs:
        raise SnapshotError(f"missing attribute {name!r}")
    value = h5.attrs[name]
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if kind is int and isinstance(value, np.integer):
        value = int(value)
    if kind is float and isinstance(value, (np.floating, np.integer)):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise SnapshotError(f"attribute {name!r} has the wrong type")
    return value

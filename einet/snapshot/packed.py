"""Connection columns kept as the file's deflated chunks, inflated a block at a time.

A restore used to hold every connection table whole, as read, beside the network it makes
(about a quarter of NEST's own memory at scale 40). The isolated reader checks each column
whole (checksum and values) and then sends its chunks as the file stores them: a
:class:`PackedColumn` inflates the rows asked for, so a restore connects block by block and
holds the deflated tables (a few bytes a connection) plus one block. The chunks it inflates
are the bytes the reader checked, whatever happens to the file after.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from isal import isal_zlib
from numpy.lib.mixins import NDArrayOperatorsMixin

from ..config import usable_cores


def inflate_chunk(raw: bytes | memoryview, chunk_bytes: int, width: int, out: np.ndarray) -> bool:
    """One chunk as :func:`einet.snapshot.h5.write_h5` deflates it (HDF5's shuffle filter, if
    ``width`` > 1, then deflate) back into ``out`` (its rows as bytes; a last chunk is padded in
    the file); False if it does not inflate to exactly a chunk."""
    inflater = isal_zlib.decompressobj()
    try:
        plain = inflater.decompress(raw, chunk_bytes)
    except Exception:  # noqa: BLE001 - ISA-L's error (its stubs do not type it): the caller says what is wrong
        return False
    if len(plain) != chunk_bytes or inflater.unconsumed_tail or not inflater.eof:
        return False
    # unshuffled: byte k of every element was stored together; the padding's elements dropped
    out.reshape(-1, width)[...] = np.frombuffer(plain, dtype=np.uint8).reshape(width, -1).T[: out.size // width]
    return True


@dataclass
class Chunks:
    """A dataset's deflated chunks as the reader found them: ``rows`` rows each, shuffled by
    ``width`` bytes (1: not shuffled)."""

    raw: list[bytes] = field(default_factory=list)
    rows: int = 0
    width: int = 1
    extremes: tuple[float, float] | None = None
    """The column's least and largest value, found where it was checked (numbers only)."""


class PackedColumn(NDArrayOperatorsMixin):
    """A 1-D column of ``length`` values of ``dtype`` as deflated chunks of ``chunk_rows``
    rows: chunk k is ``blob[bounds[k]:bounds[k + 1]]``, shuffled by ``width`` bytes (1: not
    shuffled). Made by the reader from chunks it has inflated once.

    It reads as a read-only numpy array: slicing and indexing inflate only the chunks they
    need; ``np.asarray``, numpy functions, operators and array methods (``col.max()``) work
    on the column inflated whole, each time."""

    ndim = 1

    def __init__(self, dtype: np.dtype, length: int, chunk_rows: int, width: int, blob: Any, bounds: np.ndarray, extremes: tuple[float, float] | None = None) -> None:
        self.extremes = extremes
        """Its least and largest value if known (then :func:`extremes` inflates nothing)."""
        self.dtype = np.dtype(dtype)
        self.shape = (int(length),)
        self.chunk_rows = int(chunk_rows)
        self.width = int(width)
        self._blob = memoryview(blob).cast("B")
        self._bounds = np.asarray(bounds, dtype=np.int64)
        if self.chunk_rows < 1 or len(self._bounds) != -(-length // self.chunk_rows) + 1:
            raise ValueError("chunks do not cover the column")
        if len(self._bounds) and (self._bounds[0] < 0 or self._bounds[-1] > len(self._blob) or np.any(np.diff(self._bounds) < 0)):
            raise ValueError("chunks outside their bytes")

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def size(self) -> int:
        return self.shape[0]

    @property
    def nbytes(self) -> int:
        """The inflated size (what ``np.asarray`` makes)."""
        return self.shape[0] * self.dtype.itemsize

    @property
    def packed_bytes(self) -> int:
        """What it holds: the deflated chunks."""
        return int(self._bounds[-1] - self._bounds[0])

    def __repr__(self) -> str:
        return f"PackedColumn({self.dtype}, {len(self)} rows, {self.packed_bytes} bytes deflated)"

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        whole = self.rows(0, len(self))
        return whole if dtype is None else whole.astype(dtype, copy=False)

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        if "out" in kwargs and any(isinstance(x, PackedColumn) for x in kwargs["out"]):
            return NotImplemented  # read-only
        return getattr(ufunc, method)(*(np.asarray(x) if isinstance(x, PackedColumn) else x for x in inputs), **kwargs)

    def __getattr__(self, name: str) -> Any:
        # an array method or attribute (max, astype, tolist, T, …): of the column inflated whole
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(np.asarray(self), name)

    def __iter__(self) -> Iterator[Any]:
        return iter(np.asarray(self))

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, slice):
            lo, hi, step = key.indices(len(self))
            if step == 1:
                return self.rows(lo, max(lo, hi))
            return self.take(np.arange(lo, hi, step))
        if isinstance(key, (int, np.integer)):
            k = int(key) + (len(self) if key < 0 else 0)
            if not 0 <= k < len(self):
                raise IndexError(key)
            return self.rows(k, k + 1)[0]
        at = np.asarray(key)
        if at.dtype == bool:
            if at.shape != self.shape:
                raise IndexError("boolean index of another length")
            at = np.flatnonzero(at)
        return self.take(at)

    def rows(self, lo: int, hi: int) -> np.ndarray:
        """Rows ``lo`` to ``hi - 1`` as a new array, their chunks inflated on every core."""
        lo, hi = max(0, lo), min(len(self), hi)
        out = np.empty(max(0, hi - lo), dtype=self.dtype)
        if hi <= lo:
            return out
        first, last = lo // self.chunk_rows, (hi - 1) // self.chunk_rows
        chunks = range(first, last + 1)
        if len(chunks) == 1:
            out[:] = self._chunk(first)[lo - first * self.chunk_rows : hi - first * self.chunk_rows]
            return out

        def one(k: int) -> None:
            a, b = max(lo, k * self.chunk_rows), min(hi, (k + 1) * self.chunk_rows)
            if a == k * self.chunk_rows and b - a == self._rows_in(k):
                self._inflate_into(k, out[a - lo : b - lo])
            else:
                out[a - lo : b - lo] = self._chunk(k)[a - k * self.chunk_rows : b - k * self.chunk_rows]

        with ThreadPoolExecutor(max_workers=min(usable_cores(), len(chunks))) as pool:
            list(pool.map(one, chunks))
        return out

    def take(self, at: np.ndarray) -> np.ndarray:
        """The rows at the positions ``at`` (any order), inflating only their chunks."""
        at = np.asarray(at, dtype=np.int64)
        at = np.where(at < 0, at + len(self), at)
        if len(at) and (at.min() < 0 or at.max() >= len(self)):
            raise IndexError("index out of range")
        out = np.empty(at.shape, dtype=self.dtype)
        which = at // self.chunk_rows
        for k in np.unique(which):
            here = which == k
            out[here] = self._chunk(int(k))[at[here] - int(k) * self.chunk_rows]
        return out

    def _rows_in(self, k: int) -> int:
        return min(self.chunk_rows, len(self) - k * self.chunk_rows)

    def _chunk(self, k: int) -> np.ndarray:
        out = np.empty(self._rows_in(k), dtype=self.dtype)
        self._inflate_into(k, out)
        return out

    def _inflate_into(self, k: int, out: np.ndarray) -> None:
        raw = self._blob[self._bounds[k] : self._bounds[k + 1]]
        if not inflate_chunk(raw, self.chunk_rows * self.dtype.itemsize, self.width, out.view(np.uint8)):
            # the reader inflated these very bytes: only a fault of this process's memory
            raise RuntimeError(f"a stored chunk no longer inflates (chunk {k} of a column of {len(self)} rows)")


BLOCK_ROWS = 1 << 22
"""Rows inflated at a time by whoever walks a whole column (the accessor's connects, the
rehearsal's sample, the delay range)."""


def block_of(column: Any, lo: int, hi: int) -> np.ndarray:
    """Rows ``lo`` to ``hi - 1`` of a column, packed or not, as an array."""
    return column.rows(lo, hi) if isinstance(column, PackedColumn) else np.asarray(column[lo:hi])


def extremes(column: Any) -> tuple[float, float]:
    """(least, largest) value of a non-empty column, packed or not, a block at a time (a
    packed column's own, if it knows them)."""
    if isinstance(column, PackedColumn) and column.extremes is not None:
        return column.extremes
    least, most = math.inf, -math.inf
    for lo in range(0, len(column), BLOCK_ROWS):
        block = block_of(column, lo, lo + BLOCK_ROWS)
        least, most = min(least, float(block.min())), max(most, float(block.max()))
    return least, most

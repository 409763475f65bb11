"""Loading the accelerator into this process, and its two calls.

The library is loaded with ctypes after NEST (it links to the ``nestkernel_api.so`` PyNEST has
loaded, so both share one kernel), and only if it says it was built for that very file.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..kernel import nest
from .build import AccelUnavailable, Nest, build, library_path, load, nest_of

log = logging.getLogger("einet")

_MAX_THREADS = 4096
_ERR = 1024
_L = ctypes.c_long
_P = ctypes.c_void_p
_COLUMN_DTYPES = (np.dtype(np.float64), np.dtype(np.int32))
_FLOAT64, _INT32, _PER_RUN = 0, 1, 2
"""What a key's array holds (connections.cpp, Kind)."""


@dataclass(frozen=True)
class Runs:
    """Values read per run of rows, not per row: run ``r`` covers rows ``[start[r], start[r +
    1])`` and holds ``values[key][r]`` (``start`` ends with the row count). Neighbouring runs
    hold different values, compared bit for bit (NaN equals NaN, -0.0 is not 0.0)."""

    start: np.ndarray
    values: dict[str, np.ndarray]

    @classmethod
    def of(cls, start: np.ndarray, rows: int, values: dict[str, np.ndarray]) -> Runs:
        """The runs that begin at ``start`` with ``values``, neighbours of equal values joined."""
        same = np.ones(max(len(start) - 1, 0), dtype=bool)
        for v in values.values():
            bits = np.ascontiguousarray(v, dtype=np.float64).view(np.int64)
            same &= bits[1:] == bits[:-1]
        new = np.r_[True, ~same] if len(start) else same
        return cls(np.append(start[new], rows).astype(np.int64), {k: v[new] for k, v in values.items()})

    def of_rows(self, keep: np.ndarray) -> Runs:
        """The runs of the rows that ``keep`` (a mask of every row) keeps, renumbered."""
        run_of_row = np.repeat(np.arange(len(self.start) - 1), np.diff(self.start))[keep]
        first = np.flatnonzero(np.r_[True, run_of_row[1:] != run_of_row[:-1]]) if len(run_of_row) else np.empty(0, np.int64)
        return Runs.of(first, len(run_of_row), {k: v[run_of_row[first]] for k, v in self.values.items()})


@dataclass(frozen=True)
class Read:
    """What :meth:`ConnectionLibrary.read` found besides its columns."""

    typed_threads: int
    """NEST threads read by a typed reader."""
    runs: Runs | None
    """The per-run keys' values (None without them)."""


class ConnectionLibrary:
    """The loaded accelerator: counts and reads the local connections of a synapse model."""

    def __init__(self, path: Path, nest_: Nest) -> None:
        lib = load(path, nest_, "accelerator", "einet_built_for")
        lib.einet_threads.restype = _L
        lib.einet_connections_changed.restype = _L
        lib.einet_count.restype = _L
        lib.einet_count.argtypes = [ctypes.c_char_p, _P, _L, _P, ctypes.c_size_t]
        lib.einet_first.restype = _L
        lib.einet_first.argtypes = [ctypes.c_char_p, _P, _P, _P, ctypes.c_size_t]
        lib.einet_read.restype = _L
        lib.einet_read.argtypes = [ctypes.c_char_p, _P, _L, _P, _P, _P, _P, _L, _P, _P, _L, _P, _P, _P, ctypes.c_size_t]
        self._lib = lib
        self.path = path

    def count(self, model: str) -> np.ndarray:
        """The enabled local connections of ``model`` per NEST thread."""
        per_thread = np.zeros(_MAX_THREADS, dtype=np.int64)
        err = ctypes.create_string_buffer(_ERR)
        total = self._lib.einet_count(model.encode(), per_thread.ctypes.data, _MAX_THREADS, err, _ERR)
        if total < 0:
            raise AccelUnavailable(f"{model}: counting failed: {err.value.decode(errors='replace')}")
        return per_thread[: self._lib.einet_threads()].copy()

    def tables_are_current(self) -> bool:
        """Whether NEST's connection tables hold every connection made so far (nothing was
        connected or disconnected since they were last built)."""
        return self._lib.einet_connections_changed() == 0

    def first(self, model: str) -> tuple[int, int] | None:
        """Source and target of one local connection of ``model`` (None: it has none here)."""
        source, target = _L(0), _L(0)
        err = ctypes.create_string_buffer(_ERR)
        found = self._lib.einet_first(model.encode(), ctypes.addressof(source), ctypes.addressof(target), err, _ERR)
        if found < 0:
            raise AccelUnavailable(f"{model}: finding a connection failed: {err.value.decode(errors='replace')}")
        return (int(source.value), int(target.value)) if found else None

    def read(self, model: str, keys: list[str], per_thread: np.ndarray, columns: list[np.ndarray], report: Callable[[int], None] | None = None, *, typed: bool = True, run_keys: Sequence[str] = ()) -> Read:
        """Fill ``columns`` (one contiguous float64 or int32 array per key, one element per
        connection) with ``keys`` of every local connection of ``model``, thread by thread as
        :meth:`count` gave them, and ``run_keys`` per run of rows (:class:`Runs`; a read
        through NEST's dictionaries gives NaN for those its status lacks);
        ``report(k)`` is told of every ``k`` rows read, from this thread. Reads typed where it
        can, unless not ``typed``."""
        rows = int(per_thread.sum())
        if len(columns) != len(keys) or any(c.shape != (rows,) or not c.flags.c_contiguous or c.dtype not in _COLUMN_DTYPES for c in columns):
            raise ValueError("columns must be one contiguous float64 or int32 array per key, one element per connection")
        # the runs' arrays are as long as the rows, but written only where runs begin: the
        # pages beyond are never touched (a store of 2M STDP connections writes a few)
        per_run = [np.empty(rows, dtype=np.float64) for _ in run_keys]
        run_start = np.empty(rows if run_keys else 0, dtype=np.int64)
        run_count = np.zeros(len(per_thread), dtype=np.int64)
        arrays = [*columns, *per_run]
        pointers = (_P * len(arrays))(*(c.ctypes.data for c in arrays))
        kind = np.array([_INT32 if c.dtype == np.int32 else _FLOAT64 for c in columns] + [_PER_RUN] * len(run_keys), dtype=np.int64)
        first = np.concatenate([[0], np.cumsum(per_thread)[:-1]]).astype(np.int64)
        per = np.ascontiguousarray(per_thread, dtype=np.int64)
        names = (ctypes.c_char_p * len(arrays))(*(k.encode() for k in [*keys, *run_keys]))
        done, typed_threads = _L(0), _L(0)
        err = ctypes.create_string_buffer(_ERR)
        result: list[int] = []

        def call() -> None:
            result.append(
                self._lib.einet_read(
                    model.encode(),
                    ctypes.cast(names, _P),
                    len(arrays),
                    first.ctypes.data,
                    per.ctypes.data,
                    ctypes.cast(pointers, _P),
                    kind.ctypes.data,
                    rows,
                    run_start.ctypes.data if run_keys else None,
                    run_count.ctypes.data,
                    int(typed),
                    ctypes.addressof(done),
                    ctypes.addressof(typed_threads),
                    err,
                    _ERR,
                )
            )

        # the call runs in a thread of its own (ctypes lets go of the GIL) so that progress is
        # reported from the caller's thread, which is the one its callbacks expect
        worker = threading.Thread(target=call, name="einet-bulk-read")
        worker.start()
        told = 0
        while worker.is_alive():
            worker.join(0.1)
            if report is not None and done.value > told:
                report(done.value - told)
                told = done.value
        if not result or result[0] < 0:
            raise AccelUnavailable(f"{model}: reading failed: {err.value.decode(errors='replace')}")
        if report is not None and done.value > told:
            report(done.value - told)
        runs = None
        if run_keys:
            slots = np.concatenate([np.empty(0, np.int64), *(np.arange(f, f + c) for f, c in zip(first, run_count))])
            runs = Runs.of(run_start[slots], rows, {key: values[slots] for key, values in zip(run_keys, per_run)})
        return Read(int(typed_threads.value), runs)


_loaded: ConnectionLibrary | None = None
_why_not: str | None = None
_lock = threading.Lock()


def connection_library(*, build_it: bool = True) -> ConnectionLibrary | None:
    """The accelerator for the NEST in this process, built if need be; None if it cannot be
    had here (said once per process, in one log line) or ``EINET_ACCEL=0`` turns it off.
    ``build_it=False``: None unless it is built already (for a caller that can do without it
    and must not wait for a compiler)."""
    global _loaded, _why_not
    if os.environ.get("EINET_ACCEL", "1") == "0":
        return None
    with _lock:
        if _loaded is None and _why_not is None:
            try:
                found = installed()
                if not build_it and not library_path(found).is_file():
                    return None
                _loaded = ConnectionLibrary(build(found), found)
            except AccelUnavailable as exc:
                _give_up(str(exc))
        return _loaded


def installed() -> Nest:
    """The NEST this process has imported."""
    where = nest().__file__
    if where is None:
        raise AccelUnavailable("NEST's package folder is unknown")
    return nest_of(Path(where).parent)


def disable(reason: str) -> None:
    """Read through PyNEST for the rest of this process, saying why (once)."""
    global _loaded
    with _lock:
        _loaded = None
        _give_up(reason)


def _give_up(reason: str) -> None:
    global _why_not
    if _why_not is None:
        _why_not = reason
        log.warning("connections are read through PyNEST: %s", reason)


def why_not() -> str | None:
    """Why the accelerator is not in use in this process (None: it is, or was not tried)."""
    return _why_not


def reset() -> None:
    """Forget what was loaded or refused (for tests that change the environment)."""
    global _loaded, _why_not
    with _lock:
        _loaded, _why_not = None, None

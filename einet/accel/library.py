"""Loading the accelerator into this process, and its two calls.

The library is loaded with ctypes after NEST (it links to the ``nestkernel_api.so`` PyNEST has
loaded, so both share one kernel), and only if it says it was built for that very file.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from collections.abc import Callable
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
        lib.einet_read.argtypes = [ctypes.c_char_p, _P, _L, _P, _P, _P, _P, _L, _L, _P, _P, _P, ctypes.c_size_t]
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

    def read(self, model: str, keys: list[str], per_thread: np.ndarray, columns: list[np.ndarray], report: Callable[[int], None] | None = None, *, typed: bool = True) -> int:
        """Fill ``columns`` (one contiguous float64 or int32 array per key, one element per
        connection) with ``keys`` of every local connection of ``model``, thread by thread as
        :meth:`count` gave them; ``report(k)`` is told of every ``k`` rows read, from this
        thread. Returns how many NEST threads were read by a typed reader (none unless
        ``typed``)."""
        rows = int(per_thread.sum())
        if len(columns) != len(keys) or any(c.shape != (rows,) or not c.flags.c_contiguous or c.dtype not in _COLUMN_DTYPES for c in columns):
            raise ValueError("columns must be one contiguous float64 or int32 array per key, one element per connection")
        pointers = (_P * len(columns))(*(c.ctypes.data for c in columns))
        int32 = np.array([c.dtype == np.int32 for c in columns], dtype=np.int64)
        first = np.concatenate([[0], np.cumsum(per_thread)[:-1]]).astype(np.int64)
        per = np.ascontiguousarray(per_thread, dtype=np.int64)
        names = (ctypes.c_char_p * len(keys))(*(k.encode() for k in keys))
        done, typed_threads = _L(0), _L(0)
        err = ctypes.create_string_buffer(_ERR)
        result: list[int] = []

        def call() -> None:
            result.append(
                self._lib.einet_read(
                    model.encode(),
                    ctypes.cast(names, _P),
                    len(keys),
                    first.ctypes.data,
                    per.ctypes.data,
                    ctypes.cast(pointers, _P),
                    int32.ctypes.data,
                    rows,
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
        return int(typed_threads.value)


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

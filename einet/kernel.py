"""Quiet access to the NEST kernel.

NEST prints a banner on import and writes to file descriptors 1 and 2 from C++; Python's
``sys.stdout`` cannot catch that. Every call into NEST from einet runs inside
:func:`nest_output_to`, which points descriptors 1 and 2 at a log file for the call's duration.
This module is the only place that imports ``nest``, and only when first asked to (without
pandas and matplotlib, which PyNEST gets when it first uses them);
:mod:`einet.nest_api` alone reaches into PyNEST's low-level kernel API.
Set ``EINET_NEST_VERBOSE=1`` to let NEST print its banner and INFO messages (into the log).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

_nest: ModuleType | None = None
_log_path: str = os.devnull
_builtin: tuple[frozenset[str], frozenset[str]] = (frozenset(), frozenset())


def current_log_path() -> str:
    """Where NEST's (and models') output goes now (``os.devnull`` when discarded)."""
    return _log_path


def set_log_path(path: str | Path | None) -> None:
    """Send NEST's output to ``path`` (appended); ``None`` discards it."""
    global _log_path
    _log_path = os.devnull if path is None else str(path)


@contextlib.contextmanager
def nest_output_to(path: str | None = None) -> Iterator[None]:
    """Redirect file descriptors 1 and 2 to the log for the duration of a NEST call."""
    target = path or _log_path
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    saved = [os.dup(1), os.dup(2)]
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for f in (*saved, fd):
            os.close(f)


def nest() -> ModuleType:
    """Import PyNEST once, silently, and return the module."""
    global _nest
    if _nest is None:
        verbose = verbose_nest()
        if not verbose:
            os.environ.setdefault("PYNEST_QUIET", "1")
        with nest_output_to(), warnings.catch_warnings(), _ctrl_c_deferred(), _optional_imports_deferred():
            warnings.simplefilter("ignore")
            import nest as module

            module.verbosity = module.VerbosityLevel.INFO if verbose else module.VerbosityLevel.ERROR
        _imports_on_first_use()
        global _builtin
        # NEST's own models, before any CopyModel of ours (a reset removes copies, not these)
        _builtin = (frozenset(module.node_models), frozenset(module.synapse_models))
        _nest = module
    return _nest


# PyNEST imports these at its own import for a few functions (``output="pandas"``, the
# spatial plots); together they take longer to import than NEST. Each is imported when one of
# those functions first uses it: (PyNEST module, its flag, {its name: the module}) as in 3.10.
_DEFERRED = ("pandas", "matplotlib")
_ON_FIRST_USE = (
    ("nest.lib.hl_api_types", "HAVE_PANDAS", {"pandas": "pandas"}),
    ("nest.lib.hl_api_spatial", "HAVE_MPL", {"mpl": "matplotlib", "mpatches": "matplotlib.patches", "mpath": "matplotlib.path"}),
)


@contextlib.contextmanager
def _optional_imports_deferred() -> Iterator[None]:
    """PyNEST's import without :data:`_DEFERRED` (those imported before stay as they are):
    a ``None`` in ``sys.modules`` makes its ``import`` fail, and PyNEST goes on without."""
    hidden = [name for name in _DEFERRED if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for name in hidden:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]


class _OnFirstUse:
    """Stands for a module in PyNEST until PyNEST first uses it."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)


def _imports_on_first_use() -> None:
    """Give PyNEST back what :func:`_optional_imports_deferred` kept from it, where installed."""
    for where, flag, names in _ON_FIRST_USE:
        module = sys.modules.get(where)
        if module is not None and getattr(module, flag, True) is False and all(importlib.util.find_spec(m.partition(".")[0]) for m in names.values()):
            for attr, name in names.items():
                setattr(module, attr, _OnFirstUse(name))
            setattr(module, flag, True)


@contextlib.contextmanager
def _ctrl_c_deferred() -> Iterator[None]:
    """Hold Ctrl-C back while NEST's extension initialises: interrupted half-way, its C++
    state crashes the interpreter when it exits ("Fatal Python error … finalizing"). The
    interrupt is raised as soon as the import is complete."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught and previous is signal.default_int_handler:
        raise KeyboardInterrupt


def builtin_models() -> tuple[frozenset[str], frozenset[str]]:
    """NEST's own node and synapse models (without copies made since)."""
    nest()
    return _builtin


def verbose_nest() -> bool:
    return os.environ.get("EINET_NEST_VERBOSE", "") not in ("", "0")


def nest_version() -> str:
    return str(nest().__version__)

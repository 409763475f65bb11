"""What a Dask worker can import, asked before any trial is sent to it.

A task naming one of einet's functions cannot even be read by a worker without einet: with
``dask.distributed`` the worker fails to unpickle the scheduler's message, drops its connection
and is removed, and the set sees only a cancelled task. So this module is sent by value
(``cloudpickle.register_pickle_by_value``): it imports nothing but the standard library, and
runs on a worker that has no einet.
"""

from __future__ import annotations

REQUIRED = ("einet", "nest")


def missing_modules(names: tuple[str, ...] = REQUIRED) -> list[str]:
    """Which of ``names`` this process cannot find (found, not imported: NEST stays unloaded)."""
    import importlib.util

    missing = []
    for name in names:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing

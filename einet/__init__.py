"""einet: store and restore spiking-network simulations in NEST.

The public API, importable without loading NEST (NEST loads on first use of a Session)::

    from einet import NetworkConfig, Session, Snapshot
    session = Session(NetworkConfig(scale=0.2))
    session.build()
    first = session.run(1000)
    session.store("snapshots/after-1s.h5")
    session.restore("snapshots/after-1s.h5", seed=1)
    again = session.run(1000)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "CannotStoreError",
    "NetworkConfig",
    "Origin",
    "RunResult",
    "Session",
    "Snapshot",
    "SnapshotError",
    "SnapshotInfo",
    "StepUpdate",
    "__version__",
    "inspect_snapshot",
    "load_frames",
    "open_snapshot",
    "write_snapshot",
]

_EXPORTS = {
    "CannotStoreError": "snapshot",
    "NetworkConfig": "config",
    "Origin": "runs",
    "RunResult": "runs",
    "StepUpdate": "runs",
    "Session": "session",
    "Snapshot": "snapshot",
    "SnapshotError": "snapshot",
    "SnapshotInfo": "snapshot",
    "inspect_snapshot": "snapshot",
    "load_frames": "snapshot",
    "open_snapshot": "snapshot",
    "write_snapshot": "snapshot",
}

if TYPE_CHECKING:
    from .config import NetworkConfig
    from .runs import Origin, RunResult, StepUpdate
    from .session import Session
    from .snapshot import CannotStoreError, Snapshot, SnapshotError, SnapshotInfo, inspect_snapshot, load_frames, open_snapshot, write_snapshot


def __getattr__(name: str) -> Any:
    # Lazy so that `import einet` stays cheap (no h5py, no pandas) for the dashboard process.
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'einet' has no attribute {name!r}")

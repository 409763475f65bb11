"""Snapshots: the stored state of any PyNEST network, one checksummed HDF5 file each.

- :mod:`.model` — the data (:class:`Snapshot`, node runs, synapse tables), format-independent;
- :mod:`.validate` — checks of a manifest before any data is read and of values after;
- :mod:`.h5` — the HDF5 layout (format v2), writing and reading;
- :mod:`.v1` — format v1 files, read and converted to v2 data;
- :mod:`.reader` — reading in a forked child with a deadline;
- :mod:`.files` — names, listings, first-bytes checks and atomic publication (no h5py).

The format is specified in ``docs/snapshot-format.md``. Nothing here imports NEST, and
nothing is ever unpickled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .files import SnapshotNameError, list_snapshots, snapshot_path_in, write_atomic
from .model import FORMAT, FORMAT_VERSION, GENERAL_NOT_STORED, STORED, SUFFIX, CannotStoreError, NodeRun, Snapshot, SnapshotError, SnapshotExistsError, SnapshotInfo, SynapseTable
from .reader import inspect_snapshot, open_snapshot

__all__ = [
    "CannotStoreError",
    "FORMAT",
    "FORMAT_VERSION",
    "GENERAL_NOT_STORED",
    "STORED",
    "SUFFIX",
    "NodeRun",
    "Snapshot",
    "SnapshotError",
    "SnapshotExistsError",
    "SnapshotInfo",
    "SnapshotNameError",
    "SynapseTable",
    "inspect_snapshot",
    "list_snapshots",
    "load_frames",
    "open_snapshot",
    "snapshot_path_in",
    "write_snapshot",
]


def write_snapshot(snap: Snapshot, path: str | Path, *, overwrite: bool = False) -> Path:
    """Validate ``snap`` as a reader would (refused as :class:`CannotStoreError`), then publish
    it atomically at ``path``."""
    from .h5 import to_bytes

    try:
        snap.validate()
    except SnapshotError as exc:
        raise CannotStoreError(str(exc)) from None
    path = Path(path)
    if not overwrite and path.exists():
        raise SnapshotExistsError(f"{path} exists (pass overwrite to replace it)")
    return write_atomic(path, to_bytes(snap), overwrite=overwrite)


def load_frames(path: str | Path) -> dict[str, Any]:
    """Open a snapshot as pandas DataFrames: one per population, node run and synapse model."""
    return open_snapshot(path).to_pandas()

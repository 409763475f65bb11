"""Snapshots: the stored state of any PyNEST network, one checksummed HDF5 file each.

- :mod:`.model` — the data (:class:`Snapshot`, node runs, synapse tables), format-independent;
- :mod:`.manifest` — a snapshot as a JSON manifest plus named arrays (file and wire form);
- :mod:`.info` — what ``inspect`` reports; :mod:`.frames` — pandas DataFrames for analysis;
- :mod:`.validate` — checks of a manifest before any data is read and of values after;
- :mod:`.publish` — validating and writing a snapshot atomically;
- :mod:`.h5` — the HDF5 layout (format v2), writing and reading;
- :mod:`.v1` — format v1 files, read and converted to v2 data;
- :mod:`.reader` — reading in a forked child with a deadline;
- :mod:`.files` — names, listings, first-bytes checks and atomic publication (no h5py).

The format is specified in ``docs/snapshot-format.md``. Nothing here imports NEST, and
nothing is ever unpickled.
"""

from __future__ import annotations

from .files import SnapshotNameError, list_snapshots, snapshot_path_in
from .frames import load_frames, to_pandas
from .info import SnapshotInfo
from .model import FORMAT, FORMAT_VERSION, GENERAL_NOT_STORED, STORED, SUFFIX, CannotStoreError, NodeRun, Snapshot, SnapshotError, SnapshotExistsError, SynapseTable
from .publish import write_snapshot
from .reader import inspect_snapshot, open_snapshot
from .validate import validate_snapshot

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "GENERAL_NOT_STORED",
    "STORED",
    "SUFFIX",
    "CannotStoreError",
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
    "to_pandas",
    "validate_snapshot",
    "write_snapshot",
]

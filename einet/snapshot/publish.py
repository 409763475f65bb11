"""Writing a snapshot: validated as a reader would, then published atomically."""

from __future__ import annotations

from pathlib import Path

from .files import write_atomic
from .model import CannotStoreError, Snapshot, SnapshotError, SnapshotExistsError
from .validate import validate_snapshot


def write_snapshot(snap: Snapshot, path: str | Path, *, overwrite: bool = False) -> Path:
    """Validate ``snap`` as a reader would (refused as :class:`CannotStoreError`), then publish
    it atomically at ``path`` (never replacing an existing file unless ``overwrite``)."""
    from .h5 import write_h5  # h5py only when writing

    try:
        validate_snapshot(snap)
    except SnapshotError as exc:
        raise CannotStoreError(str(exc)) from None
    path = Path(path)
    if not overwrite and path.exists():
        raise SnapshotExistsError(f"{path} exists (pass overwrite to replace it)")
    return write_atomic(path, lambda fh: write_h5(snap, fh), overwrite=overwrite)

"""Snapshot files without parsing them: names inside the snapshot folder, listings, the
first-bytes check, and atomic publication. No h5py here, so the dashboard can import it."""

from __future__ import annotations

import contextlib
import glob
import os
import stat
import tempfile
import time
from pathlib import Path

from .model import SUFFIX, SnapshotError, SnapshotExistsError

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


class SnapshotNameError(ValueError):
    """A typed snapshot name is not a plain file name inside the snapshot folder."""


def snapshot_path_in(folder: str | Path, name: str) -> Path:
    """Resolve a user-typed snapshot name inside ``folder``; ``.h5`` is added if missing.

    Refuses anything that could land outside the folder or be mistaken for something else:
    path separators, ``..``, hidden names (temporary files start with a dot), control
    characters, over-long names.
    """
    name = name.strip()
    if not name:
        raise SnapshotNameError("the name is empty")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise SnapshotNameError("the name contains control characters")
    if "/" in name or "\\" in name or name.startswith(".") or os.path.isabs(name):
        raise SnapshotNameError("give a plain name, not a path (snapshots stay in the snapshot folder)")
    if not name.endswith(SUFFIX):
        name += SUFFIX
    if len(name.encode()) > 255:
        raise SnapshotNameError("the name is too long")
    folder = Path(folder)
    path = folder / name
    if path.resolve().parent != folder.resolve():
        raise SnapshotNameError("the name leaves the snapshot folder")
    return path


def list_snapshots(folder: str | Path) -> list[Path]:
    """Snapshot files in ``folder``, newest first (hidden temporary files are never listed)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    files = [p for p in folder.glob(f"*{SUFFIX}") if p.is_file() and not p.name.startswith(".")]
    return sorted(files, key=lambda p: p.stat().st_mtime, reverse=True)


def sniff(path: Path) -> None:
    """Refuse what is not a regular HDF5 file by its type and first bytes, before any parser.

    FIFOs and devices are refused before they are opened: opening a FIFO for reading blocks
    until a writer appears, and a device can stream forever.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise SnapshotError(f"{path}: no such file") from None
    except OSError as exc:
        raise SnapshotError(f"{path}: {exc.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise SnapshotError(f"{path} is a directory, not a snapshot")
    if not stat.S_ISREG(st.st_mode):
        raise SnapshotError(f"{path} is not a regular file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise SnapshotError(f"{path}: {exc.strerror}") from None
    if not head:
        raise SnapshotError(f"{path} is empty")
    if head[:1] == b"\x80":
        raise SnapshotError(f"{path} is a pickle file; einet never unpickles (only HDF5 snapshots)")
    if head != HDF5_MAGIC:
        raise SnapshotError(f"{path} is not an HDF5 snapshot")


def reserve(path: str | Path) -> Path:
    """A hidden temporary file beside ``path`` for :func:`publish` (never listed as a snapshot)."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise SnapshotError(f"cannot store {path}: folder {folder} does not exist")
    _remove_stale_partials(folder, path.name)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=folder)
    os.close(fd)
    return Path(tmp_name)


def publish(tmp: Path, path: str | Path, image: bytes, *, overwrite: bool = False) -> Path:
    """Write ``image`` into the reserved ``tmp``, fsync, then ``link`` it to ``path`` (never
    replaces an existing file, even one a concurrent writer just made) or, with ``overwrite``,
    ``rename``. On any failure ``tmp`` is removed and an earlier file of that name is untouched."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    try:
        with open(tmp, "wb") as fh:
            fh.write(image)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise SnapshotExistsError(f"{path} exists (another store won the race)") from None
            tmp.unlink()
        _fsync_dir(folder)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path


def check_store_target(path: str | Path, overwrite: bool = False) -> None:
    """Refuse, before any reading, a target that exists (unless ``overwrite``) or whose folder
    does not (:func:`publish` still refuses a file that appears meanwhile)."""
    path = Path(path)
    if not overwrite and (path.exists() or path.is_symlink()):
        raise SnapshotExistsError(f"{path} exists (pass overwrite to replace it)")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise SnapshotError(f"cannot store {path}: folder {folder} does not exist")


def write_atomic(path: str | Path, image: bytes, *, overwrite: bool = False) -> Path:
    """Publish ``image`` at ``path`` atomically (see :func:`publish`)."""
    check_store_target(path, overwrite)
    return publish(reserve(path), path, image, overwrite=overwrite)


def _remove_stale_partials(folder: Path, name: str, max_age_s: float = 3600.0) -> None:
    """Remove temporary files of writers killed long ago (a live writer's file is fresh)."""
    now = time.time()
    for stale in folder.glob(f".{glob.escape(name)}.*.partial"):
        with contextlib.suppress(OSError):
            if now - stale.stat().st_mtime > max_age_s:
                stale.unlink()


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

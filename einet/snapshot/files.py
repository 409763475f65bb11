"""Snapshot files without parsing them: names inside the snapshot folder, listings, the
first-bytes check, and atomic publication. No h5py here, so the dashboard can import it."""

from __future__ import annotations

import contextlib
import glob
import os
import stat
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

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


@dataclass
class Reserved:
    """A hidden temporary file beside a snapshot's name, created exclusively (``O_EXCL``, never
    through a link) and kept open: :func:`publish` writes and publishes it through ``fd`` and
    never opens ``path`` again, so whatever replaces ``path`` meanwhile (a link to another
    file) is never written to. A forked child inherits ``fd``."""

    path: Path
    fd: int

    def close(self) -> None:
        """Close the descriptor (the file's name is left to :func:`publish` or the caller)."""
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1

    def unlink(self) -> None:
        """Remove the temporary name, whatever is there now (a link only loses its name)."""
        with contextlib.suppress(OSError):
            self.path.unlink()

    def is_named(self) -> bool:
        """Whether ``path`` still names the file of ``fd`` (and not a link put in its place)."""
        return _holds(self.path, self)


def reserve(path: str | Path) -> Reserved:
    """A hidden temporary file beside ``path`` for :func:`publish` (never listed as a snapshot)."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise SnapshotError(f"cannot store {path}: folder {folder} does not exist")
    _remove_stale_partials(folder, path.name)
    # mkstemp opens with O_CREAT | O_EXCL | O_NOFOLLOW, mode 0600: a new file, never a link's target
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=folder)
    return Reserved(Path(tmp_name), fd)


def publish(tmp: Reserved, path: str | Path, image: bytes | Callable[[BinaryIO], None], *, overwrite: bool = False) -> Path:
    """Write ``image`` (bytes, or a function writing into the file it is given) through the
    reserved descriptor, fsync it, then link that very file to
    ``path`` (never replaces an existing file, even one a concurrent writer just made) or, with
    ``overwrite``, rename it there. On any failure the temporary name is removed and an earlier
    file of that name is untouched; the descriptor is closed either way.

    Nothing is opened, written, chmod-ed or linked by the temporary file's name: a link put in
    its place cannot make a store write to (or change the mode of) another file. The rename
    of ``overwrite`` must go by name; it is refused if the name no longer holds this file
    (who can replace it between that check and the rename can write the folder, and so replace
    the published file anyway)."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    try:
        with os.fdopen(tmp.fd, "w+b", closefd=False) as fh:
            if callable(image):
                image(fh)
            else:
                fh.write(image)
            fh.flush()
            os.fchmod(fh.fileno(), 0o644)
            os.fsync(fh.fileno())
        if overwrite:
            if not tmp.is_named():
                raise _replaced(tmp, path)
            os.replace(tmp.path, path)
            if not _holds(path, tmp):  # replaced between the check and the rename
                with contextlib.suppress(OSError):
                    path.unlink()
                raise _replaced(tmp, path)
        else:
            try:
                _link_open_file(tmp, path)
            except FileExistsError:
                raise SnapshotExistsError(f"{path} exists (another store won the race)") from None
            tmp.unlink()
        _fsync_dir(folder)
    except BaseException:
        tmp.unlink()
        raise
    finally:
        tmp.close()
    return path


def _link_open_file(tmp: Reserved, path: Path) -> None:
    """``link()`` the file open as ``tmp.fd`` to ``path``, whatever its name holds now: through
    ``/proc/self/fd`` (Linux), else by name without following it, and what the name linked is
    checked: not this file, it is unlinked again (the name did not exist: ``link`` made it)."""
    try:
        os.link(f"/proc/self/fd/{tmp.fd}", path, follow_symlinks=True)
        return
    except FileExistsError:
        raise
    except OSError:  # no /proc, a sandbox refusing it (EXDEV), or a file without a name left
        pass
    if not tmp.is_named():
        raise _replaced(tmp, path)
    os.link(tmp.path, path, follow_symlinks=False)
    if not _holds(path, tmp):
        with contextlib.suppress(OSError):
            path.unlink()
        raise _replaced(tmp, path)


def _holds(path: Path, tmp: Reserved) -> bool:
    """Whether ``path`` is the file open as ``tmp.fd`` (not a link to another one)."""
    try:
        named, opened = os.lstat(path), os.fstat(tmp.fd)
    except OSError:
        return False
    return stat.S_ISREG(named.st_mode) and (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


def _replaced(tmp: Reserved, path: Path) -> SnapshotError:
    return SnapshotError(f"cannot store {path}: its temporary file {tmp.path.name} was replaced while storing; nothing was published")


def check_store_target(path: str | Path, overwrite: bool = False) -> None:
    """Refuse, before any reading, a target that exists (unless ``overwrite``) or whose folder
    does not (:func:`publish` still refuses a file that appears meanwhile)."""
    path = Path(path)
    if not overwrite and (path.exists() or path.is_symlink()):
        raise SnapshotExistsError(f"{path} exists (pass overwrite to replace it)")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise SnapshotError(f"cannot store {path}: folder {folder} does not exist")


def write_atomic(path: str | Path, image: bytes | Callable[[BinaryIO], None], *, overwrite: bool = False) -> Path:
    """Publish ``image`` at ``path`` atomically through a file created for it (see
    :func:`reserve` and :func:`publish`)."""
    check_store_target(path, overwrite)
    return publish(reserve(path), path, image, overwrite=overwrite)


def _remove_stale_partials(folder: Path, name: str, max_age_s: float = 3600.0) -> None:
    """Remove temporary files of writers killed long ago (a live writer's file is fresh)."""
    now = time.time()
    for stale in folder.glob(f".{glob.escape(name)}.*.partial"):
        with contextlib.suppress(OSError):
            if now - stale.lstat().st_mtime > max_age_s:
                stale.unlink()


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

"""The CLI's exit codes, and a failure as its exit code and its one line."""

from __future__ import annotations

from ..config import ConfigError
from ..models import ModelBuildError, ModelError
from ..text import one_line, visible
from .parser import UsageError

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_SNAPSHOT, EXIT_CANNOT_STORE = 0, 1, 2, 3, 4


ENGINE_EXITS = {
    "CannotStoreError": (EXIT_CANNOT_STORE, "cannot store"),
    "SnapshotError": (EXIT_SNAPSHOT, "invalid snapshot"),
    "ConfigError": (EXIT_USAGE, "usage"),
    "ModelError": (EXIT_USAGE, "usage"),
    "ProtocolError": (EXIT_USAGE, "usage"),
    "RunLengthError": (EXIT_USAGE, "usage"),
    "SnapshotExistsError": (EXIT_ERROR, "error"),
}


def exit_of(exc: Exception) -> tuple[int, str]:
    """A command's failure as its exit code and its one line (after ``einet: ``)."""
    from ..engine.errors import EngineError
    from ..session import RunLengthError, SessionError
    from ..snapshot import CannotStoreError, SnapshotError, SnapshotExistsError

    if isinstance(exc, ModelBuildError):
        return EXIT_ERROR, f"error: {visible(exc)}"
    if isinstance(exc, (UsageError, ConfigError, ModelError, RunLengthError)):
        return EXIT_USAGE, f"usage: {visible(exc)}"
    if isinstance(exc, CannotStoreError):
        return EXIT_CANNOT_STORE, f"cannot store: {visible(exc)}"
    if isinstance(exc, SnapshotExistsError):
        return EXIT_ERROR, f"error: {visible(exc)}"
    if isinstance(exc, SnapshotError):
        return EXIT_SNAPSHOT, f"invalid snapshot: {visible(exc)}"
    if isinstance(exc, (SessionError, OSError)):
        message = exc.args[0] if isinstance(exc, FileNotFoundError) and exc.args else exc
        return EXIT_ERROR, f"error: {visible(message)}"
    if isinstance(exc, EngineError):  # from an engine (--ranks): its kind says which exit code
        code, what = ENGINE_EXITS.get(exc.kind, (EXIT_ERROR, "error"))
        return code, f"{what}: {visible(exc)}"
    return EXIT_ERROR, f"error: {type(exc).__name__}: {visible(one_line(exc))}"

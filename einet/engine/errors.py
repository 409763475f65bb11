"""What the engine's client raises (apart from the client, so that launching needs only these)."""

from __future__ import annotations


class EngineError(RuntimeError):
    """A command failed inside the engine; the message is one line and the engine lives on."""

    def __init__(self, message: str, op: str = "", kind: str = "") -> None:
        super().__init__(message)
        self.op = op
        self.kind = kind


class EngineDied(EngineError):
    """The engine process exited or stopped answering."""

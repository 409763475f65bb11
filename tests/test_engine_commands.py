"""The engine's commands are in one table (einet.engine.child.COMMANDS), and the client has a
typed method for each: a command added on one side only fails here."""

from __future__ import annotations

import inspect

from einet.engine import Engine
from einet.engine.child import COMMANDS

# run(continued=True) sends "continue"; close() sends "shutdown"
CLIENT_METHOD = {"continue": "run", "shutdown": "close"}


def test_the_client_has_a_typed_method_for_every_command_the_engine_serves() -> None:
    for op in COMMANDS:
        method = getattr(Engine, CLIENT_METHOD.get(op, op), None)
        assert callable(method), f"the engine serves {op!r} but the client has no method for it"
        assert inspect.signature(method).return_annotation not in (inspect.Signature.empty, "Any"), op


def test_each_command_is_served_between_runs_or_between_steps() -> None:
    assert all(c.idle or c.running for c in COMMANDS.values())
    assert {op for op, c in COMMANDS.items() if not c.idle} == {"pause", "resume", "cancel"}
    assert {op for op, c in COMMANDS.items() if c.running} == {"ping", "shutdown", "store", "pause", "resume", "cancel"}

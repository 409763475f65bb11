"""NEST in its own process: the dashboard's only way to the kernel, usable from plain Python.

See :mod:`einet.engine.protocol` for the messages and :class:`einet.engine.client.Engine`.
"""

from .client import Engine
from .errors import EngineDied, EngineError
from .protocol import Message, result_from_message

__all__ = ["Engine", "EngineDied", "EngineError", "Message", "result_from_message"]

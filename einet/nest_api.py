"""The one module that touches PyNEST's low-level API: ``nest.nestkernel_api``'s ``llapi_*``
functions and the handles (``_datum``) behind node and synapse collections.

einet reads and sets status in bulk through these because PyNEST's ``get``/``set`` convert
every value through Python objects per node and key on top of the same calls, and because a
forked reader may only use calls that open no OpenMP region. They are internal to PyNEST: a
NEST upgrade is this file to read, and the C++ accelerator in :mod:`einet.accel`, which reads
the kernel's connection tables directly.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from .kernel import nest


def kernel_api() -> ModuleType:
    """PyNEST's kernel module itself (:mod:`einet.ownership` wraps some of its functions)."""
    nest()  # imported quietly first
    from nest import nestkernel_api

    return nestkernel_api


def node_status(nodes: Any, key: str | None = None) -> Any:
    """Every node's status (a dict of tuples), or one key's values, of a NodeCollection."""
    api = kernel_api()
    return api.llapi_get_nc_status(nodes._datum) if key is None else api.llapi_get_nc_status(nodes._datum, key)


def set_node_status(nodes: Any, params: list[dict[str, Any]]) -> None:
    """Set status per node (one dict, or one per node) of a NodeCollection."""
    kernel_api().llapi_set_nc_status(nodes._datum, params)


def connection_handles(connections: Any) -> list[Any]:
    """The handles of a SynapseCollection's connections (empty for none)."""
    return connections._datum or []


def connection_status(handles: list[Any]) -> list[dict[str, Any]]:
    """Every connection's status, one dict each; usable in a forked reader."""
    return list(kernel_api().llapi_get_connection_status(handles))


def set_connection_status(handles: list[Any], params: dict[str, Any]) -> None:
    kernel_api().llapi_set_connection_status(handles, params)

"""The optional C++ accelerator: NEST's connections read inside the kernel, many times faster
than through PyNEST's per-connection dictionaries.

Built against the installed NEST on first use (or by ``make setup``; see :mod:`.build`),
cached per NEST binary, and guarded: it loads only for the ``nestkernel_api.so`` it was built
for, and its first read of each synapse model in a process is checked against PyNEST
(:mod:`einet.store.bulk`). When it cannot be had, einet reads through PyNEST, as before, and
says why in one log line. ``EINET_ACCEL=0`` turns it off.
"""

from __future__ import annotations

from .build import AccelUnavailable
from .library import ConnectionLibrary, connection_library, disable, why_not

__all__ = ["AccelUnavailable", "ConnectionLibrary", "connection_library", "disable", "why_not"]

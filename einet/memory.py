"""Will a network fit? NEST's memory estimated from node and connection counts, checked
against what this machine has available, before NEST starts allocating.

The bytes per node and per connection are measured (README, "Measured facts the code relies
on"); the estimate takes a middle value per connection and refuses only what would clearly not
fit: a build that outgrows memory would otherwise take the machine down with it.
"""

from __future__ import annotations

import os

NODE_BYTES = 2048
CONNECTION_BYTES = 64


def available_bytes() -> int:
    """Memory the kernel says can be allocated without swapping (``MemAvailable``)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def network_bytes(nodes: int, connections: int) -> int:
    return nodes * NODE_BYTES + connections * CONNECTION_BYTES


def shortfall(nodes: int, connections: int, *, ranks: int = 1, extra_bytes: int = 0) -> str:
    """Empty if a network of this size (plus ``extra_bytes``) fits, spread over ``ranks``
    processes on this machine's memory each; else one line saying how far it is from fitting."""
    need = (network_bytes(nodes, connections) + extra_bytes) // max(1, ranks)
    have = available_bytes()
    if need <= have:
        return ""
    return f"it would need about {_gb(need)} ({nodes:,} nodes, {connections:,} connections) and this machine has {_gb(have)} available"


def _gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n < 1e12 else f"{n / 1e12:.1f} TB"

"""What a store takes from the kernel before reading connections, and how it splits the
reading into blocks of source nodes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..accel.build import Nest
from ..accel.library import Runs
from ..accel.state import KernelNow
from ..config import usable_cores
from ..network import Network
from ..snapshot.hidden import HiddenSection
from ..snapshot.model import NodeRun

# Status reads cost ~3.5 µs per synapse whatever is asked and block size barely changes
# speed, so memory sets it: 4096 connections per read keep each reader's transient status
# dicts near 4 MB.
BLOCK_SYNAPSES = 1 << 12


# Connections are fetched (as handles, ~70 bytes each) per block of source nodes of about this
# many connections: a reader holds one block's handles at a time. Every fetch scans the model's
# whole connection table in C++ (~1 ns per connection), so the number of blocks is capped and
# that scan stays a small, linear cost: 4 blocks per core at most beyond 64, so each reader
# scans ≤ ~4 ns (≤ 32 ns on few cores) per connection, against ~3.5 µs to read one.
_BLOCK_CONNECTIONS = 1 << 17


_MIN_BLOCKS, _MAX_BLOCKS, _BLOCKS_PER_CORE = 16, 64, 4


Progress = Callable[[float], None]

STDP_RUN_KEYS = ("Kplus", "t_lastspike")
"""The connection keys of the hidden section's STDP rows (docs/hidden-state.md), read per run
of rows (:class:`~einet.accel.library.Runs`) by the accelerator's typed readers only, NaN
where it reads through NEST's status, which lacks ``t_lastspike``; never written into a
synapse table."""


@dataclass
class ReadCounter:
    """Connections read so far (call it with each ``k`` more), told to ``progress`` as a
    fraction of ``total``."""

    total: int
    progress: Progress | None = None
    done: int = 0

    def __call__(self, k: int) -> None:
        self.done += k
        if self.progress is not None:
            self.progress(min(1.0, self.done / max(1, self.total)))


@dataclass
class ModelPlan:
    """One synapse model's connections: how many the kernel holds, and the keys to read."""

    model: str
    count: int
    keys: list[str]
    run_keys: list[str] = field(default_factory=list)
    """Keys read per run of rows for the hidden section (:data:`STDP_RUN_KEYS` or none)."""


@dataclass(frozen=True)
class HiddenAsked:
    """What a hidden-state read needs to be told through PyNEST: asked in the store's pause,
    so that a background store's forked child, which must not call into the kernel through
    PyNEST, reads the rest with the accessor alone (:func:`read_asked`)."""

    found: Nest
    status: dict[str, Any]
    now: KernelNow
    uncovered: list[str]


@dataclass
class CapturePlan:
    """What a store takes from the kernel at one step boundary before reading connections:
    kernel settings, node models, connection counts and the keys to read (node state too,
    unless a forked process reads it).

    Nothing here grows with the number of connections: their handles are fetched and their
    status read per block of source nodes (:func:`read_blocks`), by forked processes that see
    the kernel copy-on-write while the parent goes on (see :mod:`einet.store.workers`)."""

    net: Network
    seed: int
    runs: list[NodeRun] | None
    """None until read: a background store reads node state in its forked process too."""
    node_models: np.ndarray
    models: list[ModelPlan]
    loggers: np.ndarray
    kernel: dict[str, Any]
    t_stored_ms: float
    n_vp: int
    n_threads: int
    """NEST's threads in this process: an OpenMP team in a forked reader must have as many."""
    not_stored: list[str] = field(default_factory=list)
    trace_taus: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per synapse model with traces: its model-wide time constants (see :mod:`einet.traces`)."""
    last_spike: np.ndarray | None = None
    """Each node's last spike time by id (index 0 unused; < 0: none), read with node state."""
    hidden: HiddenSection | None = None
    """The state NEST does not expose, read at the plan's instant (:mod:`.hidden`); its STDP
    rows are added by :func:`~einet.store.assemble.finish` from the connections read."""
    not_stored_without_hidden: list[str] = field(default_factory=list)
    """``not_stored`` as it was before the hidden section changed it (for a store that must
    drop the section after all)."""
    hidden_asked: HiddenAsked | None = None
    """What the pause asked for a hidden section that a background store's child reads."""
    stdp_runs: dict[str, Runs] = field(default_factory=dict)
    """Per synapse model, its ``run_keys`` as the accelerator read them (finish() takes them)."""

    @property
    def n_connections(self) -> int:
        return sum(m.count for m in self.models)

    def blocks(self) -> list[tuple[int, int]]:
        """[first, end) node ids of the blocks of sources whose connections are read together,
        about ``_BLOCK_CONNECTIONS`` connections each on average; the last two blocks' ids are
        split in halves and quarters."""
        ids = int(self.net.last_id)  # every node, einet's recorder (and multimeter) included
        most = max(_MAX_BLOCKS, _BLOCKS_PER_CORE * usable_cores())
        count = min(most, max(_MIN_BLOCKS, -(-self.n_connections // _BLOCK_CONNECTIONS)))
        size = -(-ids // count)
        edges = [*range(1, ids + 1, size), ids + 1]
        if len(edges) > 3 and size >= 8:
            # Readers take blocks in order, so the last ones decide when all are done: small
            # last blocks let readers that ran out of work early take them, and all finish
            # within about a quarter block of each other instead of up to a whole one.
            lo = edges[-3]
            tail = [lo + size // 2, lo + size, *(lo + size + k * size // 4 for k in (1, 2, 3))]
            edges = [*edges[:-2], *(e for e in tail if e <= ids), ids + 1]
        return list(itertools.pairwise(edges))

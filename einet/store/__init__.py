"""Storing: reading a network's state out of the NEST kernel into a :class:`~einet.snapshot.Snapshot`.

- :mod:`.plan` — what a store takes from the kernel before reading connections, in blocks;
- :mod:`.nodes` — node state per run of one model, only the keys a restore can set back;
- :mod:`.bulk` — connections read by the C++ accelerator, checked against NEST, or else through PyNEST;
- :mod:`.connections` — connections per block of source nodes into preallocated arrays (PyNEST);
- :mod:`.assemble` — the plan taken at a step boundary, and the Snapshot made from it;
- :mod:`.checks` — what a store refuses or says it does not hold, decided before reading;
- :mod:`.workers` — forked processes reading connections on every core, copy-on-write;
- :mod:`.background` — a store that leaves the simulation running;
- :mod:`.mpi` — every rank reading its own share, rank 0 building the Snapshot;
- :mod:`.hidden` — the state NEST does not expose, read at the store's instant and written back by a restore.

:func:`capture` chooses the reader (:func:`.bulk.read_local`). Whatever cannot be stored faithfully is refused with one
line.
"""

from __future__ import annotations

from ..network import Network
from ..ranks import ranks
from ..snapshot.model import Snapshot
from .assemble import finish, plan_capture
from .background import StoreHandle, store_in_background
from .bulk import read_local
from .checks import check_storable, check_written, not_stored_of
from .connections import probe_synapse_models, read_connections
from .hidden import take_hidden
from .mpi import capture_ranks
from .plan import Progress
from .workers import default_workers, read_in_workers

__all__ = ["StoreHandle", "capture", "check_storable", "check_written", "default_workers", "not_stored_of", "plan_capture", "probe_synapse_models", "read_connections", "read_in_workers", "read_local", "store_in_background"]


def capture(net: Network, *, seed: int, progress: Progress | None = None, workers: int = 1) -> Snapshot:
    """Read every node's settable state and every connection into a Snapshot: under MPI each
    rank its own share (rank 0 gets the Snapshot). Connections are read by the C++
    accelerator where it can be had, else by ``workers`` > 1 forked processes reading through
    PyNEST into shared arrays, else by this process (the same result every way)."""
    if ranks().size > 1:
        return capture_ranks(net, seed, progress)  # type: ignore[return-value]
    plan = plan_capture(net, seed=seed)
    take_hidden(plan)
    return finish(plan, read_local(plan, workers, progress))

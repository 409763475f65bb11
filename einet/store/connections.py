"""Reading connections: per block of source nodes into preallocated arrays, so memory stays
flat (PyNEST's ``GetConnections().get(output="pandas")`` reads every status twice and holds
all of them as Python objects at once).
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..accel import AccelUnavailable, ConnectionLibrary, connection_library
from ..kernel import nest, nest_output_to
from ..nest_api import connection_handles, connection_status, set_connection_status
from ..network import UNSUPPORTED_SYNAPSES, Network
from ..snapshot.model import ID_DTYPE, INT_DTYPE, CannotStoreError, SynapseTable
from .plan import BLOCK_SYNAPSES, CapturePlan, ModelPlan, Progress, ReadCounter

_CONNECTION_IDS = ("source", "target", "receptor")


CONNECTION_READ_ONLY = {"source", "target", "receptor", "port", "synapse_id", "synapse_model", "target_thread", "sizeof"}


# -- connections -------------------------------------------------------------------------------
def connection_counts() -> dict[str, int]:
    n = nest()
    counts = {}
    for model in n.synapse_models:
        k = int(n.GetDefaults(model, "num_connections"))
        if k:
            counts[str(model)] = k
    return counts


def base_of(net: Network, model: str) -> str:
    base = model
    for call in reversed(net.model_calls):
        if call["op"] == "CopyModel" and call["model"] == base:
            base = call["base"]
    return base


def connection_plans(net: Network) -> list[ModelPlan]:
    """Per synapse model in use: how many connections the kernel holds, and (probed on its
    first connection, once per network) the keys NEST lets us set back."""
    library = connection_library()
    _tables_current(net, library)
    plans = []
    for model, count in connection_counts().items():  # none unsupported: see refuse_unsupported
        if model not in net.settable_synapses:
            _probe_synapse(net, model, _first_connection(net, model, library))
        plans.append(ModelPlan(model, count, []))
    return plans


def probe_synapse_models(net: Network) -> None:
    """Probe the keys each synapse model in use lets us set back, once the network is built or
    restored: a background store would otherwise pause the simulation for it. A model NEST
    cannot store (unsupported, a property that is not a number) is left to the store, which
    refuses it in one line; building is not refused for it."""
    library = connection_library(build_it=False)  # compiling it is for the first store
    _tables_current(net, library)
    for model in connection_counts():
        if model not in net.settable_synapses and base_of(net, model) not in UNSUPPORTED_SYNAPSES:
            with contextlib.suppress(CannotStoreError):
                _probe_synapse(net, model, _first_connection(net, model, library))


def _tables_current(net: Network, library: ConnectionLibrary | None) -> None:
    """The kernel's connection tables hold every connection: a fetch of connections (re)builds
    them when connections have changed since the last one or the last Simulate."""
    # Done here, in this process, so that forked readers find them built: one of them
    # rebuilding its copy-on-write copy would copy them whole. The fetch scans every
    # connection, so it is skipped when the accelerator can tell the tables are current (a
    # background store pauses the simulation for it).
    n = nest()
    if library is None or not library.tables_are_current():
        n.GetConnections(source=n.NodeCollection([net.recorder_id]))


def _first_connection(net: Network, model: str, library: ConnectionLibrary | None) -> Any:
    """A handle of one connection of ``model``: the accelerator names one (fetching it is then
    one scan of the table), else sources are searched in growing windows, as fetching all of a
    model's connections would cost time and memory for each of them."""
    n = nest()
    with contextlib.suppress(AccelUnavailable):  # a failing accelerator fails again where it reads
        pair = library.first(model) if library is not None else None
        if pair is not None:
            handles = connection_handles(n.GetConnections(source=n.NodeCollection([pair[0]]), target=n.NodeCollection([pair[1]]), synapse_model=model))
            if handles:
                return handles[0]
    end = net.last_id + 1
    lo, width = 1, 64
    while lo < end:
        hi = min(end, lo + width)
        handles = connection_handles(n.GetConnections(source=n.NodeCollection(list(range(lo, hi))), synapse_model=model))
        if handles:
            return handles[0]
        lo, width = hi, width * 4
    raise CannotStoreError(f"{model}: NEST counts connections but lists none from any node")


def set_keys(net: Network, plans: list[ModelPlan]) -> None:
    for m in plans:
        m.keys = [*_CONNECTION_IDS, *net.settable_synapses[m.model][0]]


Columns = list[np.ndarray]
"""One model's connections: an array per key of its :class:`ModelPlan` (node ids as the
snapshot's int32, everything else float64), each of the model's count."""


def column_dtype(key: str) -> np.dtype:
    return ID_DTYPE if key in ("source", "target") else np.dtype(np.float64)


def allocate(plan: CapturePlan, make: Callable[[tuple[int, ...], np.dtype], np.ndarray] = np.empty) -> list[Columns]:
    """The arrays connections are read into, per model and key: they become the snapshot's
    arrays without a copy (a copy would raise the store's peak memory)."""
    return [[make((m.count,), column_dtype(key)) for key in m.keys] for m in plan.models]


@dataclass
class Cursor:
    """Which block of sources is read next, and where each model's next rows go: in one
    process, or shared by forked readers (``counters`` in shared memory, ``lock`` across
    processes). Rows go where they are taken, so connections are stored in the order their
    blocks were read (the order of connections is not part of a network's state)."""

    counters: np.ndarray
    """int64: the next block, then the next free row of each model."""
    lock: Any = field(default_factory=contextlib.nullcontext)

    @classmethod
    def local(cls, plan: CapturePlan) -> Cursor:
        return cls(np.zeros(1 + len(plan.models), dtype=np.int64))

    def next_block(self) -> int:
        with self.lock:
            block = int(self.counters[0])
            self.counters[0] += 1
        return block

    def take(self, model_index: int, k: int) -> int:
        with self.lock:
            at = int(self.counters[1 + model_index])
            self.counters[1 + model_index] += k
        return at

    def check_complete(self, plan: CapturePlan) -> None:
        """Raise unless every model's rows were filled exactly."""
        for m, rows in zip(plan.models, self.counters[1:]):
            if rows != m.count:
                raise CannotStoreError(f"{m.model}: NEST listed {int(rows)} connections but counted {m.count}")


def read_blocks(plan: CapturePlan, buffers: list[Columns], cursor: Cursor, report: Callable[[int], None]) -> None:
    """Take blocks of sources from ``cursor`` until none is left; for each, fetch its
    connections' handles per model and read their status into the rows taken for them.
    ``report(k)`` is told of every ``k`` connections read."""
    n = nest()

    blocks = plan.blocks()
    while (b := cursor.next_block()) < len(blocks):
        sources = n.NodeCollection(list(range(*blocks[b])))
        for i, m in enumerate(plan.models):
            handles = connection_handles(n.GetConnections(source=sources, synapse_model=m.model))
            if not handles:
                continue
            at = cursor.take(i, len(handles))
            if at + len(handles) > m.count:
                raise CannotStoreError(f"{m.model}: NEST listed more connections than it counted ({m.count})")
            row = np.dtype((np.float64, len(m.keys)))
            pick = operator.itemgetter(*m.keys)
            for lo in range(0, len(handles), BLOCK_SYNAPSES):
                part = handles[lo : lo + BLOCK_SYNAPSES]
                status = connection_status(part)
                try:
                    rows = np.fromiter(map(pick, status), dtype=row, count=len(part))
                except (TypeError, ValueError):
                    raise CannotStoreError(f"{m.model}: a per-connection property is not a number (cannot be stored yet)") from None
                for column, values in zip(buffers[i], rows.T):
                    column[at + lo : at + lo + len(part)] = values
                report(len(part))
            del handles


def read_connections(plan: CapturePlan, progress: Progress | None = None) -> list[Columns]:
    """Every connection's status, in this process, block by block into preallocated arrays."""
    buffers = allocate(plan)
    cursor = Cursor.local(plan)
    with nest_output_to():
        read_blocks(plan, buffers, cursor, ReadCounter(plan.n_connections, progress))
    cursor.check_complete(plan)
    return buffers


def _probe_synapse(net: Network, model: str, conn: Any) -> None:
    """The properties NEST accepts back, probed on one connection."""
    if model not in net.settable_synapses:
        status = connection_status([conn])[0]
        ok, failed = [], []
        for key, value in status.items():
            if key in CONNECTION_READ_ONLY:
                continue
            try:
                set_connection_status([conn], {key: value})
                ok.append(key)
            except Exception:  # noqa: BLE001 - NEST raises its own types for a key it will not set
                failed.append(key)
        for key in ok:
            if not isinstance(status[key], (int, float)) or isinstance(status[key], bool):
                raise CannotStoreError(f"{model}: per-connection property {key} is not a number (cannot be stored yet)")
        net.settable_synapses[model] = (sorted(ok), sorted(failed))


def synapse_table(model: str, cols: dict[str, np.ndarray]) -> SynapseTable:
    """The table of one model from its columns (taken: a column stored once for all is
    dropped from ``cols`` at once, so its memory goes back before the next is looked at)."""
    source = cols.pop("source").astype(ID_DTYPE, copy=False)
    target = cols.pop("target").astype(ID_DTYPE, copy=False)
    receptor = cols.pop("receptor")
    uniform: dict[str, Any] = {}
    columns: dict[str, np.ndarray] = {}
    if (receptor != 0).any():
        cols["receptor_type"] = receptor
    del receptor
    for key in list(cols):
        col = cols.pop(key)
        if (col == col[0]).all():
            uniform[key] = int(col[0]) if key == "receptor_type" else float(col[0])
        else:
            columns[key] = col.astype(INT_DTYPE) if key == "receptor_type" else col
    return SynapseTable(model, source, target, columns, uniform)

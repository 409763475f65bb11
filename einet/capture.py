"""Reading a network's state out of the NEST kernel into a :class:`~einet.snapshot.Snapshot`.

Nodes are read in bulk per run of one model, only the keys NEST lets us set back (probed per
model, see :func:`einet.network.probe_node_models`). Connections are read in blocks of source
nodes into preallocated arrays, so memory stays flat: PyNEST's own
``GetConnections().get(output="pandas")`` reads every status twice and holds all of them as
Python objects at once. Whatever cannot be stored faithfully is refused with one line.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .clock import schedule_from
from .config import usable_cores
from .kernel import nest, nest_output_to, nest_version
from .ownership import plain
from .network import MEMORY, UNSUPPORTED_SYNAPSES, Network, check_restorable, node_kinds, node_models, probe_node_models, settle_probes
from .ranks import ranks
from .traces import LAST_SPIKE_CLOCKED, at_stored_time, family, lost_after, traces_of
from .snapshot.model import BOOL_DTYPE, FLOAT_DTYPE, GENERAL_NOT_STORED, ID_DTYPE, INT_DTYPE, CannotStoreError, NodeRun, Snapshot, SnapshotError, SynapseTable

# Status reads cost ~3.5 µs per synapse whatever is asked and block size barely changes
# speed, so memory sets it: 4096 connections per read keep each reader's transient status
# dicts near 4 MB.
_BLOCK_SYNAPSES = 1 << 12
# Connections are fetched (as handles, ~70 bytes each) per block of source nodes of about this
# many connections: a reader holds one block's handles at a time. Every fetch scans the model's
# whole connection table in C++ (~1 ns per connection), so the number of blocks is capped and
# that scan stays a small, linear cost: 4 blocks per core at most beyond 64, so each reader
# scans ≤ ~4 ns (≤ 32 ns on few cores) per connection, against ~3.5 µs to read one.
_BLOCK_CONNECTIONS = 1 << 17
_MIN_BLOCKS, _MAX_BLOCKS, _BLOCKS_PER_CORE = 16, 64, 4
_CONNECTION_IDS = ("source", "target", "receptor")
_CONNECTION_READ_ONLY = {"source", "target", "receptor", "port", "synapse_id", "synapse_model", "target_thread", "sizeof"}
_NODE_METADATA = {
    "archiver_length", "element_type", "global_id", "local", "model", "model_id", "node_uses_wfr",
    "thread", "thread_local_id", "vp", "recordables", "has_connections", "n_synapses", "events", "n_events",
    "synaptic_elements_param", "time_in_steps",
}
_KERNEL_ALWAYS = ("resolution", "tics_per_ms", "min_delay", "max_delay", "rng_type")

Progress = Callable[[float], None]


@dataclass
class ModelPlan:
    """One synapse model's connections: how many the kernel holds, and the keys to read."""

    model: str
    count: int
    keys: list[str]


@dataclass
class CapturePlan:
    """What a store takes from the kernel at one step boundary before reading connections:
    kernel settings, node models, connection counts and the keys to read (node state too,
    unless a forked process reads it).

    Nothing here grows with the number of connections: their handles are fetched and their
    status read per block of source nodes (:func:`read_blocks`), by forked processes that see
    the kernel copy-on-write while the parent goes on (see :mod:`einet.forked`)."""

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
        return list(zip(edges[:-1], edges[1:]))


def capture(net: Network, *, seed: int, progress: Progress | None = None, workers: int = 1) -> Snapshot:
    """Read every node's settable state and every connection into a Snapshot.

    With ``workers`` > 1 the connections' status is read by that many forked processes
    filling shared arrays (the result is identical)."""
    if ranks().size > 1:
        return _capture_ranks(net, seed, progress)  # type: ignore[return-value]
    plan = plan_capture(net, seed=seed)
    if workers > 1:
        from .forked import read_in_workers

        buffers = read_in_workers(plan, workers, progress)
    else:
        buffers = read_connections(plan, progress)
    return finish(plan, buffers)


def plan_capture(net: Network, *, seed: int, read_nodes: bool = True) -> CapturePlan:
    """Kernel settings, connection counts and keys and (unless ``read_nodes`` is false) node
    state. Its cost does not grow with the connections (node models are read once per
    network), so a background store, which leaves node state to its forked process, pauses the
    simulation for little more than the fork."""
    with nest_output_to():
        per_node = node_models(net)
        probe_node_models(net, per_node)
        _refuse_unsupported(net)
        runs, last_spike = _node_runs(net, per_node) if read_nodes else (None, None)
        models = _connection_plans(net)
        _set_keys(net, models)
    plan = _plan(net, seed, per_node, models, runs)
    plan.last_spike = last_spike
    return plan


def _plan(net: Network, seed: int, per_node: np.ndarray, models: list[ModelPlan], runs: list[NodeRun] | None) -> CapturePlan:
    """The plan around node state and connection handles already taken: kernel settings."""
    n = nest()
    with nest_output_to():
        status = n.GetKernelStatus()
        kernel = {k: plain(status[k]) for k in (*_KERNEL_ALWAYS, *net.kernel_set) if k in status}
        # model-wide time constants, read here: a forked reader must not ask NEST more than it needs
        trace_taus = {}
        for m in models:
            if taus := set(traces_of(_base_of(net, m.model)).values()):
                defaults = n.GetDefaults(m.model)
                trace_taus[m.model] = {k: float(defaults[k]) for k in taus if k in defaults}
    t_stored = float(status["biological_time"])
    return CapturePlan(
        net=net,
        seed=seed,
        runs=runs,
        node_models=per_node,
        models=models,
        loggers=np.flatnonzero(node_kinds(net) == "recorder") + 1,
        kernel=kernel,
        t_stored_ms=t_stored,
        n_vp=int(status["total_num_virtual_procs"]),
        n_threads=int(status["local_num_threads"]),
        not_stored=not_stored_of(net) + _clock_notes(net, models, trace_taus, t_stored),
        trace_taus=trace_taus,
    )


def _clock_notes(net: Network, models: list[ModelPlan], trace_taus: dict[str, dict[str, float]], t_stored: float) -> list[str]:
    """What of the connections' time-dependent state a restore at ``t_stored`` cannot give back."""
    notes = []
    for m in models:
        base = _base_of(net, m.model)
        if family(base) in LAST_SPIKE_CLOCKED:
            notes.append(f"{m.model} connections: state that evolves from each connection's last spike restarts as if that spike was at t = 0 (NEST's t_lastspike cannot be set)")
        limit = lost_after(base, trace_taus.get(m.model, {}))
        if limit is not None and t_stored > limit:
            notes.append(f"{m.model} connections: presynaptic traces, stored at {t_stored:g} ms, beyond the {limit:g} ms a restore can carry them (they restart from zero)")
    return notes


def finish(plan: CapturePlan, buffers: list[np.ndarray]) -> Snapshot:
    """The Snapshot from a plan and its filled connection arrays (reading node state first if
    the plan has none)."""
    net = plan.net
    if plan.runs is None:
        with nest_output_to():
            plan.runs, plan.last_spike = _node_runs(net, plan.node_models)
    runs = [schedule_from(run, plan.t_stored_ms, float(plan.kernel["resolution"])) for run in plan.runs]
    tables = []
    for m, buf in zip(plan.models, buffers):
        data = buf
        _refer_traces(plan, m, data)
        # einet's own recorder and multimeter are not part of the network
        einets = (data[:, 1] == net.recorder_id) | (data[:, 0] == net.last_id if net.meter is not None else False)
        if einets.any():
            data = data[~einets]
        _receptor_types(plan, data)
        # a recorder sending data-logging requests (multimeter, voltmeter): NEST reports its
        # logger index on the target as the receptor; it was connected, and is restored, with 0
        if len(plan.loggers):
            data[np.isin(data[:, 0], plan.loggers), 2] = 0
        if len(data):
            tables.append(_table(m.model, m.keys, data))
    return Snapshot(
        nodes=tuple(runs),
        synapses=tuple(tables),
        groups={p.name: p.ids.astype(ID_DTYPE) for p in net.populations},
        kernel=plan.kernel,
        kernel_set=tuple(net.kernel_set),
        model_calls=tuple(_json_checked(c, f"{c['op']} of {c['model']}") for c in net.model_calls),
        model=net.config.model,
        scale=float(net.config.scale),
        params=dict(net.config.params),
        t_stored_ms=plan.t_stored_ms,
        seed=plan.seed,
        n_vp=plan.n_vp,
        t_sim_ms=float(net.config.t_sim_ms),
        not_stored=tuple(plan.not_stored),
        protocol=tuple(c.to_dict() for c in net.protocol if c.t_ms > plan.t_stored_ms),
        nest_version=nest_version(),
    )


RECEPTOR_PORT_OFFSET = {"ht_neuron": 1, "iaf_cond_alpha_mc": 1, "pp_cond_exp_mc_urbanczik": 1}
"""Node models whose connections report their receptor as ``receptor_type - 1`` (NEST 3.10,
measured by connecting each receptor type; every other model reports the type it was given)."""


def _receptor_types(plan: CapturePlan, data: np.ndarray) -> None:
    """Each connection's receptor as the ``receptor_type`` a Connect takes (in place)."""
    if not len(data):
        return
    targets = data[:, 1].astype(np.int64)
    models = plan.node_models[np.clip(targets, 1, len(plan.node_models)) - 1]
    for model in np.unique(models):
        offset = RECEPTOR_PORT_OFFSET.get(_base_of(plan.net, str(model)), 0)
        if offset:
            data[models == model, 2] += offset


def _refer_traces(plan: CapturePlan, m: ModelPlan, data: np.ndarray) -> None:
    """Replace a plastic model's traces by their values at the stored time (in place)."""
    base = _base_of(plan.net, m.model)
    if not traces_of(base) or not len(data) or plan.last_spike is None:
        return
    index = {key: i for i, key in enumerate(m.keys)}
    taus = plan.trace_taus.get(m.model, {})

    def tau(key: str) -> Any:
        return data[:, index[key]] if key in index else taus[key]

    sources = data[:, 0].astype(np.int64)
    last = plan.last_spike[np.clip(sources, 0, len(plan.last_spike) - 1)]
    columns = {key: data[:, index[key]] for key in traces_of(base) if key in index}
    for key, values in at_stored_time(columns, tau, last, plan.t_stored_ms, base).items():
        data[:, index[key]] = values


# -- from several MPI ranks ------------------------------------------------------------------
def _capture_ranks(net: Network, seed: int, progress: Progress | None) -> Snapshot | None:
    """Every rank reads its own nodes and connections (in its own process: no fork under MPI),
    rank 0 gathers the parts and builds the one Snapshot; the other ranks return None.

    Node state comes to rank 0 as values, connections as arrays per synapse model in rank
    order (the order a restore recreates them in, whatever its ranks and threads)."""
    r = ranks()
    with r.together():
        with nest_output_to():
            per_node = node_models(net)
            probe_node_models(net, per_node)
            _refuse_unsupported(net)
            models = _connection_plans(net)
    settle_probes(net)
    with r.together():
        _set_keys(net, models)
        plan = _plan(net, seed, per_node, models, None)
        with nest_output_to():
            to_read = _runs_to_read(net, per_node)
            node_parts = [_local_part(_run_status(nodes, keys)) for _, _, nodes, keys, _ in to_read]
        buffers = read_connections(plan, progress)
    parts = r.gather((node_parts, [(m.model, m.keys, b) for m, b in zip(plan.models, buffers)]))
    del buffers
    snap: Snapshot | None = None
    with r.together():
        if parts is not None:
            merged_status = [(lo, hi, _merge_status([p[0][k] for p in parts], hi - lo)) for k, (lo, hi, _, _, _) in enumerate(to_read)]
            plan.runs = [_classify(lo + 1, hi - lo, str(per_node[lo]), keys, status, layer) for (lo, hi, status), (_, _, _, keys, layer) in zip(merged_status, to_read)]
            plan.last_spike = _last_spikes(net.recorder_id, merged_status)
            merged: dict[str, tuple[list[str], list[np.ndarray]]] = {}
            for _, tables in parts:
                for model, keys, buf in tables:
                    merged.setdefault(model, (keys, []))[1].append(buf)
            del parts
            plan.models = [ModelPlan(model, sum(len(b) for b in bufs), keys) for model, (keys, bufs) in merged.items()]
            snap = finish(plan, [np.concatenate(bufs) if len(bufs) > 1 else bufs[0] for _, bufs in merged.values()])
    return snap


def _local_part(status: dict[str, Any]) -> tuple[np.ndarray, dict[str, list[Any]]]:
    """This rank's nodes of a run: their positions in the run and their values."""

    def values_of(v: Any) -> tuple[Any, ...]:
        return v if isinstance(v, tuple) else (v,)  # a run of one node reads a bare value

    local = np.flatnonzero(np.asarray(values_of(status.pop("local")), dtype=bool))
    return local, {key: [values_of(values)[i] for i in local] for key, values in status.items()}


def _merge_status(parts: list[tuple[np.ndarray, dict[str, list[Any]]]], count: int) -> dict[str, Any]:
    """One run's values from every rank's part; a node every rank holds (a device) takes the
    lowest rank's values."""
    merged: dict[str, list[Any]] = {}
    seen = np.zeros(count, dtype=bool)
    for local, values in parts:
        fresh = ~seen[local]
        for key, vals in values.items():
            column = merged.setdefault(key, [None] * count)
            for i, v, new in zip(local, vals, fresh):
                if new:
                    column[i] = v
        seen[local] = True
    if not seen.all():
        raise CannotStoreError(f"no MPI rank holds node {int(np.flatnonzero(~seen)[0])} of a run")
    return {key: tuple(column) for key, column in merged.items()}


def check_storable(net: Network) -> None:
    """Refuse (:class:`~einet.snapshot.CannotStoreError`, one line) a network einet cannot
    store faithfully, from what it is made of, before anything is simulated: structural
    plasticity, compartmental models, synapse models NEST builds in pairs or that carry rates
    or currents (gap junctions, …), nodes created after einet's recorder, model calls holding
    values a snapshot cannot (a random Parameter). Reads no state and no connection; what only
    the state shows (a per-connection property that is not a number) a store still refuses."""
    with nest_output_to():
        probe_node_models(net)
        _refuse_unsupported(net)
    for call in net.model_calls:
        _json_checked(call, f"{call['op']} of {call['model']}")


def check_written(snap: Snapshot) -> None:
    """What einet writes, it can restore: the restore's own check against this NEST
    (:func:`~einet.network.check_restorable`, but for memory: this network is in it already),
    run on a captured snapshot before it is published."""
    try:
        check_restorable(snap, fits=False)
    except SnapshotError as exc:
        raise CannotStoreError(f"einet could not restore it: {exc}") from None


def _refuse_unsupported(net: Network) -> None:
    n = nest()
    if n.GetKernelStatus("structural_plasticity_synapses"):
        raise CannotStoreError("structural plasticity is enabled: its synaptic elements and rewiring state cannot be stored faithfully")
    for model, (_, failed) in net.settable_nodes.items():
        if "compartments" in failed:
            raise CannotStoreError(f"{model}: compartmental models cannot be stored yet")
    if int(n.network_size) != net.last_id:
        raise CannotStoreError("nodes were created after einet's spike recorder: store before adding nodes by hand")
    for model in _connection_counts():
        base = _base_of(net, model)
        if base in UNSUPPORTED_SYNAPSES:
            raise CannotStoreError(f"{UNSUPPORTED_SYNAPSES[base]} ({model}) cannot be stored yet")


def _json_checked(value: Any, what: str) -> Any:
    value = plain(value)
    try:
        json.dumps(value, allow_nan=True)
    except (TypeError, ValueError):
        raise CannotStoreError(f"{what} holds a value a snapshot cannot store (e.g. a random Parameter)") from None
    return value


# -- nodes -----------------------------------------------------------------------------------
def _node_runs(net: Network, models: np.ndarray) -> tuple[list[NodeRun], np.ndarray]:
    """Every run's stored state, and every node's last spike time (see :func:`_last_spikes`)."""
    runs, statuses = [], []
    for lo, hi, nodes, keys, layer in _runs_to_read(net, models):
        status = _run_status(nodes, keys)
        runs.append(_classify(lo + 1, hi - lo, str(models[lo]), keys, status, layer))
        statuses.append((lo, hi, status))
    return runs, _last_spikes(net.recorder_id, statuses)


def _last_spikes(size: int, statuses: list[tuple[int, int, dict[str, Any]]]) -> np.ndarray:
    """Each node's ``t_spike`` by id (< 0 where it has none: never spiked, or not a neuron):
    where the presynaptic traces of its connections last jumped (see :mod:`einet.traces`)."""
    last = np.full(size + 1, -1.0)
    for lo, hi, status in statuses:
        values = status.get("t_spike")
        if values is None:
            continue
        values = values if isinstance(values, tuple) else (values,)
        last[lo + 1 : hi + 1] = [v if isinstance(v, (int, float)) else -1.0 for v in values]
    return last


def _runs_to_read(net: Network, models: np.ndarray) -> list[tuple[int, int, Any, list[str], Any]]:
    """(first index, end index, nodes, keys, layer) of every run of one model (and layer)."""
    n = nest()
    size = net.n_nodes
    cuts = set(np.flatnonzero(models[1:] != models[:-1]) + 1)
    layers = {}
    for layer in net.layers:
        ids = layer.tolist()
        first, last = int(min(ids)), int(max(ids))
        layers[first] = layer
        cuts |= {first - 1, last}
    bounds = sorted({0, size, *(int(c) for c in cuts if 0 < c < size)})
    return [(lo, hi, n.NodeCollection(list(range(lo + 1, hi + 1))), net.settable_nodes[str(models[lo])][0], layers.get(lo + 1)) for lo, hi in itertools.pairwise(bounds)]


def _run_status(nodes: Any, keys: list[str]) -> dict[str, Any]:
    """Each key's values over the run, plus ``local`` (under MPI other ranks' nodes read None)."""
    from nest import nestkernel_api as api

    wanted = [*keys, "local", "t_spike"]  # t_spike: not stored, but where traces last jumped
    if "n_events" in api.llapi_get_nc_status(nodes[0]._datum):
        wanted.remove("t_spike")
        # a recorder: its whole status would include every recorded event
        return {key: api.llapi_get_nc_status(nodes._datum, key) for key in wanted}
    # one read of every key (a read per key costs a whole status per node each time); under
    # MPI a run held wholly by other ranks reads only their nodes' metadata
    everything = api.llapi_get_nc_status(nodes._datum)
    missing = (None,) * len(nodes)
    return {key: everything.get(key, missing) for key in wanted if key != "t_spike" or key in everything}


def _classify(first_id: int, count: int, model: str, keys: list[str], status: dict[str, Any], layer: Any) -> NodeRun:
    uniform: dict[str, Any] = {}
    columns: dict[str, np.ndarray] = {}
    ragged: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    varying: dict[str, list[Any]] = {}
    for key in keys:
        values = status[key]
        if count == 1 and not isinstance(values, tuple):
            values = (values,)
        first = values[0]
        if isinstance(first, (bool, np.bool_)):
            arr = np.asarray(values, dtype=BOOL_DTYPE)
            uniform[key] = bool(first) if (arr == arr[0]).all() else None
            if uniform[key] is None:
                del uniform[key]
                columns[key] = arr
        elif isinstance(first, (int, float, np.integer, np.floating)):
            arr = np.asarray(values, dtype=INT_DTYPE if isinstance(first, (int, np.integer)) else FLOAT_DTYPE)
            if (arr == arr[0]).all():
                uniform[key] = arr[0].item()
            else:
                columns[key] = arr
        elif _numeric_sequence(first):
            arrays = [np.asarray(v) for v in values]
            if all(a.shape == arrays[0].shape and np.array_equal(a, arrays[0]) for a in arrays):
                uniform[key] = arrays[0].tolist()
            else:
                dtype = INT_DTYPE if all(a.dtype.kind in "iu" for a in arrays if a.size) else FLOAT_DTYPE
                offsets = np.zeros(count + 1, dtype=INT_DTYPE)
                offsets[1:] = np.cumsum([a.size for a in arrays])
                flat = np.concatenate([a.ravel() for a in arrays]).astype(dtype) if offsets[-1] else np.empty(0, dtype)
                ragged[key] = (flat, offsets)
        else:
            as_json = [_json_checked(v, f"{model} {key}") for v in values]
            if all(v == as_json[0] for v in as_json):
                uniform[key] = as_json[0]
            else:
                varying[key] = as_json
    spatial = None
    positions = None
    if layer is not None:
        meta = layer.spatial
        positions = np.asarray(nest().GetPosition(layer), dtype=FLOAT_DTYPE).reshape(count, -1)
        spatial = {
            "kind": "grid" if "shape" in meta else "free",
            "dims": int(positions.shape[1]),
            "extent": [float(x) for x in meta["extent"]],
            "center": [float(x) for x in meta["center"]],
            "edge_wrap": bool(meta["edge_wrap"]),
        }
        if "shape" in meta:
            spatial["shape"] = [int(x) for x in meta["shape"]]
    return NodeRun(first_id, count, model, uniform, columns, ragged, varying, spatial, positions)


def _numeric_sequence(value: Any) -> bool:
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "iuf"
    return isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)


# -- connections -------------------------------------------------------------------------------
def _connection_counts() -> dict[str, int]:
    n = nest()
    counts = {}
    for model in n.synapse_models:
        k = int(n.GetDefaults(model, "num_connections"))
        if k:
            counts[str(model)] = k
    return counts


def _base_of(net: Network, model: str) -> str:
    base = model
    for call in reversed(net.model_calls):
        if call["op"] == "CopyModel" and call["model"] == base:
            base = call["base"]
    return base


def _connection_plans(net: Network) -> list[ModelPlan]:
    """Per synapse model in use: how many connections the kernel holds, and (probed on its
    first connection, once per network) the keys NEST lets us set back."""
    n = nest()
    # A fetch of connections (re)builds the kernel's connection tables when connections have
    # changed since the last one or the last Simulate. Done here, in this process, so that
    # forked readers find them built: one of them rebuilding its copy-on-write copy would copy
    # them whole.
    n.GetConnections(source=n.NodeCollection([net.recorder_id]))
    plans = []
    for model, count in _connection_counts().items():  # none unsupported: see _refuse_unsupported
        if model not in net.settable_synapses:
            _probe_synapse(net, model, _first_connection(net, model))
        plans.append(ModelPlan(model, count, []))
    return plans


def _first_connection(net: Network, model: str) -> Any:
    """A handle of one connection of ``model``: sources are searched in growing windows, as
    fetching all of a model's connections would cost ~100 ns and ~70 bytes each."""
    n = nest()
    end = net.last_id + 1
    lo, width = 1, 64
    while lo < end:
        hi = min(end, lo + width)
        handles = n.GetConnections(source=n.NodeCollection(list(range(lo, hi))), synapse_model=model)._datum
        if handles:
            return handles[0]
        lo, width = hi, width * 4
    raise CannotStoreError(f"{model}: NEST counts connections but lists none from any node")


def _set_keys(net: Network, plans: list[ModelPlan]) -> None:
    for m in plans:
        m.keys = [*_CONNECTION_IDS, *net.settable_synapses[m.model][0]]


def allocate(plan: CapturePlan, make: Callable[[tuple[int, int]], np.ndarray] = lambda shape: np.empty(shape, order="F")) -> list[np.ndarray]:
    """One (connections × keys) float64 array per model, column-major: its columns become the
    snapshot's arrays without a copy (at scale 10 a copy would be ~300 MB more at the peak)."""
    return [make((m.count, len(m.keys))) for m in plan.models]


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


def read_blocks(plan: CapturePlan, buffers: list[np.ndarray], cursor: Cursor, report: Callable[[int], None]) -> None:
    """Take blocks of sources from ``cursor`` until none is left; for each, fetch its
    connections' handles per model and read their status into the rows taken for them.
    ``report(k)`` is told of every ``k`` connections read."""
    n = nest()
    from nest import nestkernel_api as api

    blocks = plan.blocks()
    while (b := cursor.next_block()) < len(blocks):
        sources = n.NodeCollection(list(range(*blocks[b])))
        for i, m in enumerate(plan.models):
            handles = n.GetConnections(source=sources, synapse_model=m.model)._datum or []
            if not handles:
                continue
            at = cursor.take(i, len(handles))
            if at + len(handles) > m.count:
                raise CannotStoreError(f"{m.model}: NEST listed more connections than it counted ({m.count})")
            row = np.dtype((np.float64, len(m.keys)))
            pick = operator.itemgetter(*m.keys)
            for lo in range(0, len(handles), _BLOCK_SYNAPSES):
                part = handles[lo : lo + _BLOCK_SYNAPSES]
                status = api.llapi_get_connection_status(part)
                try:
                    buffers[i][at + lo : at + lo + len(part)] = np.fromiter(map(pick, status), dtype=row, count=len(part))
                except (TypeError, ValueError):
                    raise CannotStoreError(f"{m.model}: a per-connection property is not a number (cannot be stored yet)") from None
                report(len(part))
            del handles


def read_connections(plan: CapturePlan, progress: Progress | None = None) -> list[np.ndarray]:
    """Every connection's status, in this process, block by block into preallocated arrays."""
    buffers = allocate(plan)
    cursor = Cursor.local(plan)
    total = max(1, plan.n_connections)
    done = 0

    def report(k: int) -> None:
        nonlocal done
        done += k
        if progress is not None:
            progress(done / total)

    with nest_output_to():
        read_blocks(plan, buffers, cursor, report)
    cursor.check_complete(plan)
    return buffers


def _probe_synapse(net: Network, model: str, conn: Any) -> None:
    """The properties NEST accepts back, probed on one connection."""
    if model not in net.settable_synapses:
        from nest import nestkernel_api as api

        status = api.llapi_get_connection_status([conn])[0]
        ok, failed = [], []
        for key, value in status.items():
            if key in _CONNECTION_READ_ONLY:
                continue
            try:
                api.llapi_set_connection_status([conn], {key: value})
                ok.append(key)
            except Exception:
                failed.append(key)
        for key in ok:
            if not isinstance(status[key], (int, float)) or isinstance(status[key], bool):
                raise CannotStoreError(f"{model}: per-connection property {key} is not a number (cannot be stored yet)")
        net.settable_synapses[model] = (sorted(ok), sorted(failed))


def _table(model: str, keys: list[str], data: np.ndarray) -> SynapseTable:
    cols = {key: np.ascontiguousarray(data[:, i]) for i, key in enumerate(keys)}
    source = cols.pop("source").astype(ID_DTYPE)
    target = cols.pop("target").astype(ID_DTYPE)
    receptor = cols.pop("receptor")
    uniform: dict[str, Any] = {}
    columns: dict[str, np.ndarray] = {}
    if (receptor != 0).any():
        cols["receptor_type"] = receptor
    for key, col in cols.items():
        if (col == col[0]).all():
            uniform[key] = int(col[0]) if key == "receptor_type" else float(col[0])
        else:
            columns[key] = col.astype(INT_DTYPE) if key == "receptor_type" else col
    return SynapseTable(model, source, target, columns, uniform)


# -- what is not stored ------------------------------------------------------------------------
def not_stored_of(net: Network) -> list[str]:
    """What a snapshot of this network does not hold: the general limits, plus the read-only
    state of its node models and connections (known once probed)."""
    out = list(GENERAL_NOT_STORED)
    for model in net.settable_nodes:
        readonly = sorted(set(net.settable_nodes[model][1]) - _NODE_METADATA)
        if readonly:
            out.append(f"{model}: {', '.join(readonly)} (NEST does not let them be set)")
    for model, (_, failed) in net.settable_synapses.items():
        readonly = sorted(set(failed) - _CONNECTION_READ_ONLY)
        if readonly:
            out.append(f"{model} connections: {', '.join(readonly)} per connection (model-wide values come from the model's defaults)")
    return out + _recorder_notes(net)


def _recorder_notes(net: Network) -> list[str]:
    """One line per model and backend of the recorders that write elsewhere than to memory:
    a restore records to memory (it never makes NEST write a file), so their backend and its
    settings are in the snapshot for the record only."""
    ids = np.flatnonzero(node_kinds(net) == "recorder") + 1
    # correlation detectors are recorders without a recording backend
    with_backend = {m for m in set(node_models(net)[ids - 1].tolist()) if "record_to" in nest().GetDefaults(m)}
    ids = ids[np.isin(node_models(net)[ids - 1], list(with_backend))]
    if not len(ids):
        return []
    from nest import nestkernel_api as api

    with nest_output_to():
        nodes = nest().NodeCollection(ids.tolist())._datum
        backends, labels = (np.atleast_1d(np.array(api.llapi_get_nc_status(nodes, key), dtype=object)) for key in ("record_to", "label"))
    models = node_models(net)[ids - 1]
    out = []
    for model, backend in dict.fromkeys(zip(models.tolist(), backends.tolist())):
        if backend in (MEMORY, None):  # None: under MPI, a node of another rank
            continue
        mine = (models == model) & (backends == backend)
        named = ", ".join(sorted({str(label) for label in labels[mine] if label}))
        out.append(
            f"{model} {_id_list(ids[mine])}: recorded to {backend}{f' (label {named})' if named else ''}; "
            "a restore records to memory: the backend and its settings are kept for the record only"
        )
    return out


def _id_list(ids: np.ndarray) -> str:
    shown = ", ".join(str(int(i)) for i in ids[:5])
    return f"node {shown}" if len(ids) == 1 else f"nodes {shown}{', …' if len(ids) > 5 else ''}"

"""A network inside the NEST kernel: built by a model, or rebuilt from a snapshot, plus the
spike recorder einet adds to it. Reading its state out lives in :mod:`einet.store`."""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .accel.build import AccelUnavailable
from .accel.state import StateLibrary, forget_connected_kplus, state_library, write_connected_kplus
from .clock import FIXED_AT_FIRST_SIMULATE, MAX_CLOCK_SLICES, advance_clock, clock_delays, clock_slices
from .config import NetworkConfig
from .kernel import builtin_models, nest, nest_output_to
from .limits import check_limits, restore_extra_bytes
from .memory import shortfall
from .models import BuildFunction, ModelBuildError, ModelError, load_model, network_size
from .nest_api import connection_handles, connection_status, node_status, set_node_status
from .ownership import SHAPING_KERNEL_KEYS, apply_owned, model_owned_by_einet, output_to_log
from .ranks import local_ids, ranks
from .runs import RASTER_NEURONS
from .snapshot import Snapshot, SnapshotError, SynapseTable
from .snapshot.hidden import STDP_BASES, hidden_base
from .snapshot.packed import BLOCK_ROWS, block_of, extremes
from .text import one_line
from .traces import for_new_connections, traces_of

# Status reads cost ~3.5 µs per synapse whatever is asked, so a weight sample of ~4k
# connections costs ~15-20 ms per run; the example's 12k cost ~5 % of a 1 s run at scale 1.
WEIGHT_SAMPLE = 4000
_WEIGHT_SAMPLE_SOURCES = 49  # the example samples e_neurons[::41] of 2000: 49 sources
_WEIGHT_SAMPLE_TARGET_STRIDE = 3

UNSUPPORTED_SYNAPSES = {
    "gap_junction": "gap junctions",
}


@dataclass(frozen=True)
class Population:
    """A group of neurons einet records and shows."""

    name: str
    ids: np.ndarray
    model: str = ""
    sends: str = "spikes"
    """``"spikes"``, ``"rate"`` for rate models (recorded by einet's multimeter), or
    ``"nothing"`` einet can record (a model that sends neither, such as an astrocyte)."""

    @property
    def size(self) -> int:
        return len(self.ids)

    @property
    def raster_ids(self) -> np.ndarray:
        return self.ids[:RASTER_NEURONS]


@dataclass
class Network:
    """Handles to the nodes of a built network (valid until the next kernel reset)."""

    config: NetworkConfig
    populations: tuple[Population, ...]
    recorder: Any
    model_calls: list[dict[str, Any]] = field(default_factory=list)
    kernel_set: dict[str, Any] = field(default_factory=dict)
    layers: list[Any] = field(default_factory=list)
    settable_nodes: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)
    settable_synapses: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    protocol: list[Any] = field(default_factory=list)
    """The :class:`~einet.protocol.Change` s still to come, by time (a snapshot stores them)."""
    meter: Any = None
    """einet's multimeter of the rate populations' ``rate`` (after the recorder), if any."""
    labels: np.ndarray | None = field(default=None, repr=False)
    _lookup: np.ndarray | None = field(default=None, repr=False)
    _nodes: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    file_recorders: tuple[str, ...] | None = field(default=None, repr=False)
    """:func:`recorders_writing_files`, once asked."""
    _firsts: dict[str, int] | None = field(default=None, repr=False)

    @property
    def recorded(self) -> np.ndarray:
        return np.unique(np.concatenate([p.ids for p in self.populations]))

    @property
    def spiking(self) -> np.ndarray:
        """The recorded neurons that send spikes (einet's spike recorder records them)."""
        ids = [p.ids for p in self.populations if p.sends == "spikes"]
        return np.unique(np.concatenate(ids)) if ids else np.empty(0, np.int32)

    @property
    def n_recorded(self) -> int:
        """Recorded neurons that spike (rates of runs are per spiking neuron)."""
        return len(self.spiking)

    @property
    def recorder_id(self) -> int:
        return int(self.recorder.global_id)

    @property
    def last_id(self) -> int:
        """The last node id in the kernel: einet's recorder, or its multimeter after it."""
        return int(self.meter.global_id) if self.meter is not None else self.recorder_id

    @property
    def n_nodes(self) -> int:
        """Nodes of the model (einet's recorder excluded)."""
        return self.recorder_id - 1

    def group_of(self, senders: np.ndarray) -> np.ndarray:
        """Index of each sender's population (-1 for none): the first population it is in."""
        if self._lookup is None:  # once per network: this runs every simulation step
            self._lookup = np.full(self.recorder_id + 1, -1, dtype=np.int16)
            for k, p in reversed(list(enumerate(self.populations))):
                self._lookup[p.ids] = k
        return self._lookup[np.clip(senders, 0, self.recorder_id)]


# -- building --------------------------------------------------------------------------------
def checked_model(config: NetworkConfig) -> BuildFunction:
    """The model's build function, refused (:class:`ModelError`) before the kernel is touched
    if it cannot load, does not take the parameters, or says it will not fit in memory."""
    nest()  # quietly, before a model's own `import nest` would print NEST's banner
    with output_to_log():  # a script's module-level prints too
        build = load_model(config.model, config.params)
        size = network_size(build, config.scale, config.params, config.model)
    if size is not None and (short := shortfall(*size, ranks=ranks().size)):
        raise ModelError(f"model {config.model} at scale {config.scale:g} does not fit: {short}; lower --scale")
    return build


def build_model(config: NetworkConfig, build: BuildFunction | None = None) -> Network:
    """Reset the kernel, set threads and seed, run the model's build (``build``, or
    :func:`checked_model`'s), add einet's recorder."""
    n = nest()
    if build is None:
        build = checked_model(config)
    with model_owned_by_einet(config.threads, config.seed) as record:
        try:
            shown = build(n, scale=config.scale, **config.params)
        except (ModelError, SnapshotError):
            raise
        except Exception as exc:  # noqa: BLE001 - a user model may raise anything: one line names it
            raise ModelBuildError(f"model {config.model} failed while building: {type(exc).__name__}: {one_line(exc, 200)}") from None
    with nest_output_to():
        populations, nodes = _populations(shown, config.model)
        net = Network(config, populations, None, list(record.model_calls), dict(record.kernel_set), list(record.layers), notes=list(record.notes), _nodes=nodes)
        _add_recorder(net)
        probe_node_models(net)
    return net


def _populations(shown: Any, ref: str) -> tuple[tuple[Population, ...], tuple[np.ndarray, np.ndarray]]:
    """The model's populations (neurons only), or every neuron grouped by NEST model; and
    every node's model and element type."""
    n = nest()
    size = int(n.network_size)
    if size == 0:
        raise ModelError(f"model {ref} built no nodes")
    everything = n.NodeCollection(list(range(1, size + 1)))

    kinds = np.atleast_1d(np.array(node_status(everything, "element_type")))
    models = np.atleast_1d(np.array(node_status(everything, "model")))
    is_neuron = kinds == "neuron"
    if shown is not None:
        if not isinstance(shown, Mapping) or not all(isinstance(k, str) for k in shown):
            raise ModelError(f"model {ref} must return None or {{population name: NodeCollection}}, not {type(shown).__name__}")
        out = []
        for name, nc in shown.items():
            try:
                ids = np.asarray(nc.tolist(), dtype=np.int64)
            except AttributeError:
                raise ModelError(f"population {name!r} of model {ref} is not a NodeCollection") from None
            ids = np.unique(ids[(ids >= 1) & (ids <= size)])
            ids = ids[is_neuron[ids - 1]]
            if len(ids):
                out.append(population(name, ids, str(models[ids[0] - 1])))
        if out:
            return tuple(out), (models, kinds)
    ids = np.flatnonzero(is_neuron) + 1
    if not len(ids):
        raise ModelError(f"model {ref} built no neurons to record")
    return tuple(population(str(m), ids[models[ids - 1] == m], str(m)) for m in dict.fromkeys(models[ids - 1])), (models, kinds)


def population(name: str, ids: np.ndarray, model: str) -> Population:
    """A population of a model's neurons: spiking, or a rate model (one whose recordables have
    ``rate``), which sends no spikes for a spike recorder to take."""
    sends = "rate" if "rate" in (nest().GetDefaults(model).get("recordables") or ()) else "spikes"
    return Population(name, ids.astype(np.int32), model, sends)


RATE_SAMPLE_MS = 1.0
"""How often einet's multimeter samples the rate of rate neurons (or every step, if longer)."""


def _add_recorder(net: Network) -> None:
    """einet's spike recorder right after the model's nodes (onto the spiking populations),
    and, for rate populations, a multimeter of their ``rate`` after it."""
    n = nest()
    # to memory whatever the spike_recorder's defaults say (a model's or a snapshot's
    # SetDefaults may have chosen files)
    net.recorder = n.Create("spike_recorder", params={"record_to": MEMORY})
    spec = {}
    if n.biological_time > 0:
        # a kernel whose clock was advanced takes no delay outside its fixed range (a
        # recorder's delay does not change the spike times it records)
        default = float(n.GetDefaults("static_synapse", "delay"))
        spec = {"delay": min(max(default, float(n.min_delay)), float(n.max_delay))}
    silent = set()
    for model in dict.fromkeys(p.model for p in net.populations if p.sends == "spikes"):
        ids = np.unique(np.concatenate([p.ids for p in net.populations if p.sends == "spikes" and p.model == model]))
        try:
            n.Connect(n.NodeCollection(ids.tolist()), net.recorder, syn_spec=spec or None)
        except Exception as exc:
            if "does not send output" not in str(exc):
                raise
            silent.add(model)  # e.g. an astrocyte: neither spikes nor a rate to record
    if silent:
        net.populations = tuple(dataclasses.replace(p, sends="nothing") if p.model in silent and p.sends == "spikes" else p for p in net.populations)
    rate_ids = [p.ids for p in net.populations if p.sends == "rate"]
    if rate_ids:
        net.meter = n.Create("multimeter", params={"record_from": ["rate"], "interval": max(RATE_SAMPLE_MS, float(n.resolution))})
        n.Connect(net.meter, n.NodeCollection(np.unique(np.concatenate(rate_ids)).tolist()), syn_spec=spec or None)


# -- probing what NEST lets us set -------------------------------------------------------------
_NEVER_STORED = {"events", "n_events"}  # a recorder's events belong to runs, not to the network
# a multimeter's (voltmeter's) settings: NEST refuses them once it is connected, and a restore
# sets every node's values before it connects anything
_RECORDER_SET_BEFORE_CONNECTING = {"interval", "offset", "record_from"}
MEMORY = "memory"
"""The recording backend of every recorder einet restores: a restore never makes NEST write a
file (or to the screen, or over MPI); the stored backend and its settings stay in the snapshot
for the record."""
# keys a weight_recorder's nodes report (its filters) but NEST's GetDefaults does not
_NODE_ONLY_KEYS = {"weight_recorder": frozenset({"senders", "targets"})}


def node_models(net: Network) -> np.ndarray:
    """The NEST model of every node of the network, by id - 1 (einet's recorder excluded)."""
    return _node_table(net)[0]


def node_kinds(net: Network) -> np.ndarray:
    """The NEST element type ("neuron", "recorder", "stimulator", …) of every node, by id - 1."""
    return _node_table(net)[1]


def recorder_backends(net: Network) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The ids, models, ``record_to`` and ``label`` of the network's recorders that have a
    recording backend (correlation detectors are recorders without one)."""
    ids = np.flatnonzero(node_kinds(net) == "recorder") + 1
    with_backend = {m for m in set(node_models(net)[ids - 1].tolist()) if "record_to" in nest().GetDefaults(m)}
    ids = ids[np.isin(node_models(net)[ids - 1], list(with_backend))]
    if not len(ids):
        return ids, np.empty(0, dtype=str), np.empty(0, dtype=object), np.empty(0, dtype=object)
    with nest_output_to():
        nodes = nest().NodeCollection(ids.tolist())
        backends, labels = (np.atleast_1d(np.array(node_status(nodes, key), dtype=object)) for key in ("record_to", "label"))
    return ids, node_models(net)[ids - 1], backends, labels


def recorders_writing_files(net: Network) -> list[str]:
    """The labels (or models) of the network's recorders that write files: NEST's file
    backends open their files at every ``Simulate`` and refuse one that exists unless the
    kernel's ``overwrite_files`` is on, so a run must not be cut into several calls."""
    _, models, backends, labels = recorder_backends(net)
    return sorted({str(label) or str(model) for model, backend, label in zip(models, backends, labels) if backend in FILE_BACKENDS})


FILE_BACKENDS = frozenset({"ascii", "sionlib"})
"""NEST's recording backends that write files."""


def _node_table(net: Network) -> tuple[np.ndarray, np.ndarray]:
    # read once per network (~6 µs a node): a node's model never changes, and a background
    # store must not pause the simulation for it
    if net._nodes is None:
        if net.n_nodes < 1:
            net._nodes = (np.empty(0, dtype=str), np.empty(0, dtype=str))
        else:
            nodes = nest().NodeCollection(list(range(1, net.n_nodes + 1)))
            models, kinds = (np.atleast_1d(np.array(node_status(nodes, key))) for key in ("model", "element_type"))
            net._nodes = (models, kinds)
    return net._nodes


def first_nodes(net: Network) -> dict[str, int]:
    """Each node model of the network and the index (id - 1) of its first node, in id order:
    kept with the network, as a store's pause asks for it each time."""
    if net._firsts is None:
        names, first = np.unique(node_models(net), return_index=True)
        net._firsts = {str(names[k]): int(first[k]) for k in np.argsort(first)}
    return net._firsts


def probe_node_models(net: Network, models: np.ndarray | None = None) -> None:
    """Find, per node model, which status keys NEST accepts back (setting a node's own current
    value separates settable keys from read-only ones such as ``t_spike`` or ``vp``)."""
    n = nest()
    models = node_models(net) if models is None else models
    ids = np.arange(1, len(models) + 1)
    mine = local_ids(ids)  # under MPI a node can be set only on its own rank
    if len(mine) != len(ids):
        models, ids = models[mine - 1], mine
    names, first = np.unique(models, return_index=True)
    for model, index in zip(names, first):
        if str(model) not in net.settable_nodes:
            net.settable_nodes[str(model)] = _probe_node(n.NodeCollection([int(ids[index])]))


def settle_probes(net: Network) -> None:
    """Under MPI: every rank learns what the others probed (a model whose nodes or connections
    all live elsewhere was probed there), so that all ranks store and report the same keys."""
    r = ranks()
    if r.size == 1:
        return
    for found in r.allgather((net.settable_nodes, net.settable_synapses)):
        for mine, theirs in zip((net.settable_nodes, net.settable_synapses), found):
            for model, keys in theirs.items():
                mine.setdefault(model, keys)


def _probe_node(one: Any) -> tuple[list[str], list[str]]:

    status = node_status(one)
    if "compartments" in status:
        return [], ["compartments"]  # refused when storing: its tree is not in the status
    current = {k: _as_nest_takes(v[0]) if isinstance(v[0], np.ndarray) else v[0] for k, v in status.items() if k not in _NEVER_STORED}

    def accepted(keys: Iterable[str]) -> bool:
        try:
            set_node_status(one, [{k: current[k] for k in keys}])
            return True
        except Exception:  # noqa: BLE001 - NEST raises its own types (and TypeError) for a value it refuses
            return False

    def come_back(keys: list[str], new: Iterable[str]) -> bool:
        """Accepted, and the ``new`` ones read back as they were set. NEST reads and sets a
        few keys in different units (eprop_iaf's f_target: set x, read x / 1000): those are
        not stored (and :func:`_put_back` mends the probed node)."""
        if not accepted(keys):
            return False
        return all(_same(_one(node_status(one, k)), current[k]) for k in new)

    ok = [key for key in current if come_back([key], [key])]
    failed = [key for key in current if key not in ok]
    # Some keys are accepted only together with others: a spike_generator's flags with its
    # spike_times, a step_current_generator's amplitude_times with its amplitude_values (each
    # refused alone) and its allow_offgrid_times with both. Restore sets every key of a node in
    # one call, so a key accepted with the settable ones, alone or paired with another refused
    # key, counts as settable too; searched until nothing more joins, so that what is stored
    # does not depend on the probed node's state (times set or still empty).
    joined = True
    while joined and failed:
        joined = False
        for group in itertools.chain(((key,) for key in failed), itertools.combinations(failed, 2)):
            if come_back([*ok, *group], group):
                ok.extend(group)
                failed = [key for key in failed if key not in group]
                joined = True
                break
    _put_back(one, current)
    # refused only because the node is already connected or the clock has run: a restore sets
    # them (where it still can) before either happens
    for key in (_RECORDER_SET_BEFORE_CONNECTING if current.get("element_type") == "recorder" else set()) | FIXED_AT_FIRST_SIMULATE:
        if key in failed:
            ok.append(key)
            failed.remove(key)
    return sorted(ok), sorted(failed)


# -- rebuilding from a snapshot ----------------------------------------------------------------
def _put_back(one: Any, before: dict[str, Any]) -> None:
    """The probed node's values as they were: a refused set may have applied some keys before
    failing, and a key NEST reads in other units than it sets comes back scaled (set x·x/read)."""

    after = {k: v[0] for k, v in node_status(one).items()}
    for key, value in before.items():
        if key in after and not _same(after[key], value):
            for attempt in (value, value * value / after[key] if isinstance(value, float) and isinstance(after[key], float) and after[key] else None):
                if attempt is None:
                    continue
                try:
                    set_node_status(one, [{key: attempt}])
                except Exception:  # noqa: BLE001 - NEST raises its own types (and TypeError) for a value it refuses
                    continue
                if _same(_one(node_status(one, key)), value):
                    break


def _one(value: Any) -> Any:
    """A one-node read: NEST gives a bare value or a 1-tuple."""
    return value[0] if isinstance(value, tuple) and len(value) == 1 else value


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return bool(np.array_equal(np.asarray(a), np.asarray(b), equal_nan=np.asarray(a).dtype.kind == "f"))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - values of any type: comparing arrays raises
        return False


def check_restorable(snap: Snapshot, *, fits: bool = True) -> None:
    """Check the snapshot against this NEST before the kernel is touched: every model known
    (built in, or made by the snapshot's own CopyModel calls), every key one the model has,
    every kernel setting one einet restores, node ids in model calls in range, and (``fits``)
    that the network fits in memory.

    A recorder's keys that exist only with the recording backend it was stored with (an
    ``ascii`` recorder's ``file_extension``, ``precision``, …) are not refused: a restore
    records to memory and keeps them for the record only."""
    check_limits(snap)
    if fits:
        short = shortfall(snap.n_nodes, sum(len(t) for t in snap.synapses), ranks=ranks().size, extra_bytes=restore_extra_bytes(snap))
        if short:
            raise SnapshotError(f"the snapshot's network does not fit: {short}")
    if clock_slices(snap) > MAX_CLOCK_SLICES:
        raise SnapshotError(f"reaching the stored time {snap.t_stored_ms:g} ms in steps of {clock_delays(snap)['min_delay']:g} ms would take NEST minutes")
    n = nest()
    node_models, synapse_models = builtin_models()
    base = _builtin_bases(snap.model_calls)
    for key in snap.kernel:
        if key not in SHAPING_KERNEL_KEYS:
            raise SnapshotError(f"kernel setting {key!r} is not one einet restores")
    defaults: dict[str, dict[str, Any]] = {}

    def defaults_of(model: str) -> dict[str, Any]:
        b = base.get(model, model)
        if b not in defaults:
            defaults[b] = n.GetDefaults(b)
        return defaults[b]

    n_nodes = snap.n_nodes
    for call in snap.model_calls:
        if base.get(call["model"], call["model"]) in synapse_models:
            for key, ids in _node_collection_params(call["params"], defaults_of(call["model"])).items():
                if not all(isinstance(i, int) and 1 <= i <= n_nodes for i in ids):
                    raise SnapshotError(f"{call['op']} of {call['model']}: {key} names nodes the snapshot does not have")
    for run in snap.nodes:
        b = base.get(run.model, run.model)
        if b not in node_models:
            raise SnapshotError(f"node model {run.model!r} is not a node model of this NEST")
        known = set(defaults_of(run.model)) | _NODE_ONLY_KEYS.get(b, frozenset())
        if _is_recorder(defaults_of(run.model)) and "record_to" in run.keys() and any(v != MEMORY for v in run.distinct("record_to")):
            continue  # its keys beyond those are its backend's: kept, not applied
        unknown = set(run.keys()) - known
        if unknown:
            raise SnapshotError(f"{run.model} has no parameter {sorted(unknown)[0]!r}")
    for t in snap.synapses:
        b = base.get(t.model, t.model)
        if b not in synapse_models:
            raise SnapshotError(f"synapse model {t.model!r} is not a synapse model of this NEST")
        if b in UNSUPPORTED_SYNAPSES:
            raise SnapshotError(f"{UNSUPPORTED_SYNAPSES[b]} ({t.model}) cannot be restored")
        unknown = set(t.columns) | set(t.uniform)
        unknown -= set(defaults_of(t.model)) | {"receptor_type"}
        if unknown:
            raise SnapshotError(f"{t.model} has no connection property {sorted(unknown)[0]!r}")


def _builtin_bases(calls: Iterable[dict[str, Any]]) -> dict[str, str]:
    """The built-in model each model made by ``CopyModel`` derives from (refused, as
    :class:`SnapshotError`, when that is not a model of this NEST or a model is redefined)."""
    node_models, synapse_models = builtin_models()
    base: dict[str, str] = {}
    for call in calls:
        if call["op"] == "CopyModel":
            b = base.get(call["base"], call["base"])
            if b not in node_models and b not in synapse_models:
                raise SnapshotError(f"CopyModel base {call['base']!r} is not a model of this NEST")
            if call["model"] in node_models or call["model"] in synapse_models or call["model"] in base:
                raise SnapshotError(f"CopyModel would redefine model {call['model']!r}")
            base[call["model"]] = b
        elif base.get(call["model"], call["model"]) not in node_models | synapse_models:
            raise SnapshotError(f"SetDefaults names unknown model {call['model']!r}")
    return base


def _is_recorder(status: Mapping[str, Any]) -> bool:
    # correlation detectors are recorders without a recording backend
    return status.get("element_type") == "recorder" and "record_to" in status


def _as_nest_takes(value: Any) -> Any:
    """A numeric vector as NEST takes it back: it reports an empty one as a float array, which
    it refuses for an integer vector (a spike_generator's spike_multiplicities), and refuses an
    empty list for one too; an empty integer array it takes for any numeric vector."""
    if isinstance(value, (np.ndarray, list, tuple)) and len(value) == 0:
        return np.empty(0, dtype=np.int64)
    return value


def _node_collection_params(params: Mapping[str, Any], like: Mapping[str, Any]) -> dict[str, list[Any]]:
    """The parameters that are NodeCollections in ``like`` (a status or a model's defaults),
    as the id lists a snapshot holds them as (e.g. a synapse model's ``weight_recorder``)."""
    n = nest()
    return {k: list(v) for k, v in params.items() if isinstance(like.get(k), n.NodeCollection) and isinstance(v, (list, tuple))}


def _with_node_collections(params: dict[str, Any], like: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with id lists turned back into the NodeCollections NEST takes for them (the
    keys that are NodeCollections in ``like``, a fresh node's status or a model's defaults)."""
    n = nest()
    return {**params, **{k: n.NodeCollection(ids) for k, ids in _node_collection_params(params, like).items()}}


def _node_values(params: dict[str, Any], like: Mapping[str, Any]) -> dict[str, Any]:
    """A stored node's values as NEST takes them: NodeCollections, and empty numeric vectors
    (numeric where ``like``, a fresh node's status, holds an array) as empty integer arrays."""
    params = _with_node_collections(params, like)
    return {k: _as_nest_takes(v) if isinstance(like.get(k), np.ndarray) else v for k, v in params.items()}


def rebuild(snap: Snapshot, *, threads: int, seed: int, config: NetworkConfig, defer_kplus: bool = False) -> Network:
    """Rebuild a stored network in a fresh kernel: same node ids, parameters and state, same
    connections, einet's recorder added; the model's recorders record to memory. Call
    :func:`check_restorable` first. ``defer_kplus``: the STDP traces the hidden-state accessor
    sets after its connects wait for a hidden write to supersede them
    (:func:`einet.accel.state.flush_connected_kplus` writes the rest)."""
    n = nest()
    forget_connected_kplus()  # a new kernel: what an earlier rebuild left to check is gone
    with nest_output_to():
        n.ResetKernel()
        apply_owned(threads, seed)
        kernel: dict[str, Any] = {k: snap.kernel[k] for k in ("tics_per_ms", "resolution") if k in snap.kernel}
        if "tics_per_ms" in kernel:
            kernel["tics_per_ms"] = int(round(kernel["tics_per_ms"]))  # noqa: RUF046 - NEST reports a float, takes an integer (round() of a NumPy float is a NumPy float)
        kernel |= {k: snap.kernel[k] for k in snap.kernel_set if k not in kernel}
        if kernel:
            n.SetKernelStatus(kernel)
        advance_clock(snap)
        # Synapse models' calls come after the nodes: they may name nodes (a weight_recorder),
        # and no node depends on them. Each kind keeps its own order.
        base = _builtin_bases(snap.model_calls)
        synapse_models = builtin_models()[1]
        first: list[dict[str, Any]] = []
        later: list[dict[str, Any]] = []
        for call in snap.model_calls:
            (later if base.get(call["model"], call["model"]) in synapse_models else first).append(call)
        _replay(first)
        layers = []
        created = []
        if int(n.network_size) != 0:
            raise SnapshotError(f"the kernel holds {int(n.network_size)} nodes before the snapshot's first")
        # NEST's Create walks every node that exists already (it resizes per-node tables), so
        # a Create per run costs time quadratic in the runs: consecutive runs of one model
        # are made by one Create, and cut into runs after
        for block in _create_blocks(snap.nodes):
            run = block[0]
            if run.spatial is not None and run.positions is not None:
                nodes = n.Create(run.model, positions=_positions(run.spatial, run.positions))
                layers.append(nodes)
                created.append(nodes)
            elif len(block) == 1:
                created.append(n.Create(run.model, run.count))
            else:
                nodes = n.Create(run.model, sum(r.count for r in block))
                created += [nodes[r.first_id - run.first_id : r.last_id - run.first_id + 1] for r in block]
        if int(n.network_size) != snap.n_nodes:  # ids follow from the counts: runs cover 1 … n in order
            raise SnapshotError(f"the snapshot's {snap.n_nodes} nodes came out as {int(n.network_size)}")
        # values once every node exists: a weight_recorder's senders may come after it
        fresh: dict[str, dict[str, Any]] = {}
        for run, nodes in zip(snap.nodes, created):
            if run.model not in fresh:
                fresh[run.model] = _fresh_status(nodes)
            like = fresh[run.model]
            # NEST refuses these once it has simulated (the clock a restore advances); and a
            # run's shared number that a node has as created needs no setting: per node, a
            # dict of every key cost a restore most of its node time
            fixed = {*(FIXED_AT_FIRST_SIMULATE if snap.t_stored_ms > 0 else ()), *_as_created(run.uniform, like)}
            if run.columns or run.ragged or run.varying:
                params = run.node_params(fixed)
            else:
                shared = {k: v for k, v in run.uniform.items() if k not in fixed}
                params = [shared] if shared else []
            if _is_recorder(like):
                set_node_status(nodes, [{"record_to": MEMORY}])
                params = [{k: v for k, v in p.items() if k in like and k != "record_to"} for p in params]
            # converting every node's dict would cost a large restore noticeably: only runs
            # holding such keys
            if any(isinstance(like.get(k), (np.ndarray, n.NodeCollection)) for k in run.keys()):
                params = [_node_values(p, like) for p in params]
            if params:
                set_node_status(nodes, params)
        _replay(later)
        for t in snap.synapses:
            _connect(t, base.get(t.model, t.model), snap.t_stored_ms, defer_kplus=defer_kplus)
        populations = tuple(population(name, ids, snap.run_of(int(ids[0])).model) for name, ids in snap.groups.items())
        net = Network(config, populations, None, [dict(c) for c in snap.model_calls], {k: snap.kernel[k] for k in snap.kernel_set}, layers, _nodes=_stored_node_table(snap))
        _add_recorder(net)
        probe_node_models(net)
    return net


def _stored_node_table(snap: Snapshot) -> tuple[np.ndarray, np.ndarray]:
    """Every node's model and element type as :func:`node_models` reads them, from the
    snapshot's runs: asking NEST makes each node's whole status, for every node."""
    n = nest()
    models = np.array([run.model for run in snap.nodes])
    counts = np.fromiter((run.count for run in snap.nodes), dtype=np.int64, count=len(snap.nodes))
    kind = {model: str(n.GetDefaults(model, "element_type")) for model in dict.fromkeys(models.tolist())}
    return np.repeat(models, counts), np.repeat(np.array([kind[m] for m in models.tolist()]), counts)


def _create_blocks(runs: Iterable[Any]) -> list[list[Any]]:
    """Node runs in the groups one ``Create`` makes: consecutive runs of one model, a spatial
    run (made with its positions) alone."""
    blocks: list[list[Any]] = []
    for run in runs:
        spatial = run.spatial is not None and run.positions is not None
        if blocks and not spatial and blocks[-1][0].model == run.model and not (blocks[-1][0].spatial is not None and blocks[-1][0].positions is not None):
            blocks[-1].append(run)
        else:
            blocks.append([run])
    return blocks


def base_models(snap: Snapshot) -> dict[str, str]:
    """Each model made by the snapshot's CopyModel calls → the NEST model it copies."""
    return _builtin_bases(snap.model_calls)


def _as_created(uniform: dict[str, Any], fresh: dict[str, Any]) -> list[str]:
    """The keys of a run's shared values that are plain numbers its nodes have as created.
    Setting such a value changes nothing: where another key moves what NEST keeps relative to
    it (E_L under V_m, V_th, V_reset), NEST keeps the absolute values of the keys not set."""
    plain = (bool, int, float)
    return [k for k, v in uniform.items() if isinstance(v, plain) and type(fresh.get(k)) is type(v) and fresh[k] == v]


def _fresh_status(nodes: Any) -> dict[str, Any]:
    """The status of a run's first node as created (a recorder's with the memory backend, so
    that its keys are the ones a restore applies): what kind of node, which keys, which of
    them NodeCollections."""

    first = nodes[0]
    status = {k: v[0] for k, v in node_status(first).items()}
    if _is_recorder(status) and status.get("record_to") != MEMORY:
        set_node_status(first, [{"record_to": MEMORY}])
        status = {k: v[0] for k, v in node_status(first).items()}
    return status


def _replay(calls: Iterable[dict[str, Any]]) -> None:
    """The model's CopyModel and SetDefaults calls, node ids back as NodeCollections."""
    n = nest()
    for call in calls:
        like = n.GetDefaults(call["base"] if call["op"] == "CopyModel" else call["model"])
        params = _with_node_collections(dict(call["params"]), like)
        if "record_to" in params:  # a recorder model's backend: kept in the file, memory here
            params["record_to"] = MEMORY
        if call["op"] == "CopyModel":
            n.CopyModel(call["base"], call["model"], params)
        else:
            n.SetDefaults(call["model"], params)


_CONNECT_BLOCK = 1 << 23
"""Rows per array ``Connect``: NEST converts what it is given (copies beside the network), and
each call also costs time that grows with the connections already made (README, "Networks that
fill a node"), so large blocks."""


def _connect(t: SynapseTable, base: str, t_stored_ms: float, *, defer_kplus: bool = False) -> None:
    """One table's connections, in its row order, a block at a time (a table read from a file
    is held deflated: only a block is inflated beside the network). Values shared by every
    connection become the model's defaults for the call (array Connect takes no scalar weight
    or delay, and each extra array slows it); the defaults are put back afterwards.
    Presynaptic traces are set so that NEST's decay from the new connections' t_lastspike = 0
    gives the stored ones.

    Where the hidden-state accessor is built and every row is between two neurons, it
    connects the rows (each through NEST's own ``connect``) and
    sets an STDP model's Kplus after, instead of NEST's array Connect, whose threads each walk
    every row and which takes a per-connection value through a dictionary per connection."""
    n = nest()
    defaults = n.GetDefaults(t.model)
    traced = [key for key in traces_of(base) if key in t.columns or key in t.uniform]

    def traces(block: SynapseTable) -> dict[str, np.ndarray]:
        def tau(key: str) -> Any:
            return block.columns[key] if key in block.columns else float(block.uniform.get(key, defaults.get(key, math.inf)))

        return for_new_connections({key: block.column(key) for key in traced}, tau, t_stored_ms, base)

    accessor = _accessor_for(t)
    kplus_after = accessor is not None and hidden_base(base) in STDP_BASES and "Kplus" in traced
    # shared values that are traces vary per connection once referred to t_lastspike = 0
    shared = {k: v for k, v in t.uniform.items() if k != "receptor_type" and k not in traced}
    filled = {"receptor_type": float(t.uniform["receptor_type"])} if "receptor_type" in t.uniform else {}
    before = {k: v for k, v in defaults.items() if k in shared}
    try:
        n.SetDefaults(t.model, shared)
    except Exception:  # noqa: BLE001 - a property that is per connection only: pass it as an array instead
        before = {}
        filled |= {k: float(v) for k, v in shared.items()}
    kplus = np.empty(len(t) if kplus_after and not defer_kplus else 0)
    # Kplus alone, deferred: a hidden write mostly supersedes it, made again if needed
    deferred_only = kplus_after and defer_kplus and traced == ["Kplus"]
    done = 0
    try:
        for block in t.blocks(BLOCK_ROWS if accessor is not None else _CONNECT_BLOCK, [k for k in t.columns if not (deferred_only and k in traced)]):
            per_row = {k: v for k, v in block.columns.items() if k not in traced} | {k: np.full(len(block), v) for k, v in filled.items()}
            spec: dict[str, Any] = {"synapse_model": t.model, **per_row, **(traces(block) if traced and not deferred_only else {})}
            if kplus_after:
                value = spec.pop("Kplus", None)
                if not defer_kplus:
                    kplus[done : done + len(block)] = value
            if accessor is not None and set(spec) <= {"synapse_model", "weight", "delay"}:
                try:
                    accessor.connect(t.model, np.asarray(block.source), np.asarray(block.target), spec.get("weight"), spec.get("delay"))
                except AccelUnavailable as exc:  # NEST's own refusal, from inside its connect
                    raise RuntimeError(one_line(exc)) from None
            else:
                # blocks in order make the same connections in the same order as one call
                n.Connect(np.asarray(block.source, dtype=np.int64), np.asarray(block.target, dtype=np.int64), "one_to_one", spec)
            done += len(block)
    finally:
        if before:
            n.SetDefaults(t.model, before)
    if kplus_after and defer_kplus:
        write_connected_kplus(t.model, t.source, t.target, lambda: traces(t)["Kplus"], defer=True)
    elif kplus_after:
        write_connected_kplus(t.model, t.source, t.target, kplus)


def _accessor_for(t: SynapseTable) -> StateLibrary | None:
    """The hidden-state accessor, if it can make and set the table's connections: built
    already, one process (it sees local connections only), every row between two neurons
    (NEST keeps connections of a device apart)."""
    if ranks().size > 1 or not len(t):
        return None
    try:
        lib = state_library(build_it=False)
        # every id within the table's ranges of ids a neuron: no row needs looking at (a
        # packed column knows its range)
        ids = np.unique(np.concatenate([np.arange(int(lo), int(hi) + 1, dtype=np.int32) for lo, hi in (extremes(t.source), extremes(t.target))]))
        if lib.between_neurons(ids, ids):
            return lib
        # row by row, a block at a time: a table read from a file is held deflated
        return lib if all(lib.between_neurons(block_of(t.source, lo, lo + BLOCK_ROWS), block_of(t.target, lo, lo + BLOCK_ROWS)) for lo in range(0, len(t), BLOCK_ROWS)) else None
    except AccelUnavailable:
        return None


def _positions(spatial: dict[str, Any], positions: np.ndarray) -> Any:
    n = nest()
    if spatial["kind"] == "grid":
        return n.spatial.grid(list(spatial["shape"]), center=list(spatial["center"]), extent=list(spatial["extent"]), edge_wrap=bool(spatial["edge_wrap"]))
    return n.spatial.free(positions.tolist(), extent=list(spatial["extent"]), edge_wrap=bool(spatial["edge_wrap"]))


# -- while running ---------------------------------------------------------------------------
def drain_rates(meter: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (senders, times, rates) einet's multimeter sampled since the last drain; empties it."""
    if meter is None:
        return np.empty(0, np.int64), np.empty(0), np.empty(0)

    events = node_status(meter)["events"][0]
    set_node_status(meter, [{"n_events": 0}])
    return np.asarray(events["senders"], dtype=np.int64), np.asarray(events["times"], dtype=np.float64), np.asarray(events.get("rate", ()), dtype=np.float64)


def drain_spikes(recorder: Any) -> tuple[np.ndarray, np.ndarray]:
    """The (senders, times) recorded since the last drain; empties the recorder.

    Called once per run step, so it goes through the kernel API directly: PyNEST's
    ``recorder.n_events = 0`` first reads the node's whole status, events included, which
    made each step read its spikes twice.
    """
    events = node_status(recorder)["events"][0]
    set_node_status(recorder, [{"n_events": 0}])
    return np.asarray(events["senders"], dtype=np.int64), np.asarray(events["times"], dtype=np.float64)


def weight_samples(net: Network) -> dict[str, np.ndarray]:
    """Weights of a sample of connections per synapse model: from ~49 evenly spaced nodes onto
    every third recorded neuron (the example's ``e_neurons[::41]``), ~4000 per model at most."""
    n = nest()
    if net.n_nodes < 1:
        return {}
    stride = max(1, math.ceil(net.n_nodes / _WEIGHT_SAMPLE_SOURCES))
    sources = n.NodeCollection(list(range(1, net.n_nodes + 1, stride)))
    targets = n.NodeCollection(net.recorded[::_WEIGHT_SAMPLE_TARGET_STRIDE].tolist())
    with nest_output_to():
        conns = n.GetConnections(source=sources, target=targets)
        if len(conns) == 0:
            return {}
        out: dict[str, list[tuple[int, int, float, float]]] = {}
        for status in connection_status(connection_handles(conns)):
            if "weight" in status:
                out.setdefault(str(status["synapse_model"]), []).append((status["source"], status["target"], status.get("delay", 0.0), status["weight"]))
    samples = {}
    for model, rows in out.items():
        # in the order of (source, target, delay), not NEST's: a filtered GetConnections joins
        # its threads' connections in the order the threads finish, and the sample and its mean
        # must be the same for the same network; the weight orders connections that share all
        # three
        w = np.asarray(sorted(rows), dtype=float)[:, 3]
        if len(w) > WEIGHT_SAMPLE:
            w = w[np.linspace(0, len(w) - 1, WEIGHT_SAMPLE).astype(int)]
        samples[model] = w
    return samples

"""The balanced E-I network inside the NEST kernel: build it, rebuild it from a snapshot,
and read its state back out. All NEST calls of the model live here."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .config import NetworkConfig
from .kernel import nest, nest_output_to, nest_version
from .snapshot import Snapshot, SynapseTable

# Status reads cost ~3.5 µs per synapse whatever is asked and block size barely changes
# speed, so memory sets it: ~16k connections per block keeps the transient dicts near 15 MB.
_BLOCK_SYNAPSES = 1 << 14
_WEIGHT_SAMPLE_SOURCES = 49  # the example samples e_neurons[::41] of 2000: 49 sources
# ...onto every 3rd neuron: ~4k synapses at any scale, read in ~20 ms. The example's full
# 12k cost ~5% of a 1 s run at scale 1, for a histogram that looks the same in a terminal.
_WEIGHT_SAMPLE_TARGET_STRIDE = 3


@dataclass(frozen=True)
class Network:
    """Handles to the nodes of a built network (valid until the next kernel reset)."""

    config: NetworkConfig
    exc: Any
    inh: Any
    noise: Any
    recorder: Any

    @property
    def neurons(self) -> Any:
        return self.exc + self.inh


def setup_kernel(config: NetworkConfig, *, threads: int, seed: int, delays: dict[str, float] | None = None) -> None:
    """Reset the kernel, set threads (must come first after a reset), resolution and seed,
    and define the two synapse models. ``delays`` sets a model's default delay."""
    n = nest()
    with nest_output_to():
        n.ResetKernel()
        n.local_num_threads = threads
        n.resolution = config.resolution_ms
        n.rng_seed = seed
        n.CopyModel("stdp_synapse_hom", "e_syn", {"Wmax": config.wmax_mv, **_delay(delays, "e_syn")})
        n.CopyModel("static_synapse", "i_syn", _delay(delays, "i_syn"))


def _delay(delays: dict[str, float] | None, model: str) -> dict[str, float]:
    return {"delay": delays[model]} if delays and model in delays else {}


def build_fresh(config: NetworkConfig) -> Network:
    """Create and wire the network as NEST's example does (random V_m, fixed in-degrees)."""
    n = nest()
    setup_kernel(config, threads=config.threads, seed=config.seed)
    with nest_output_to():
        vm = n.random.normal(config.vm_mean_mv, config.vm_std_mv)
        exc = n.Create(config.neuron_model, n=config.n_exc, params={"V_m": vm})
        inh = n.Create(config.neuron_model, n=config.n_inh, params={"V_m": vm})
        neurons = exc + inh
        n.Connect(exc, neurons, {"rule": "fixed_indegree", "indegree": config.indegree_e}, {"synapse_model": "e_syn", "weight": config.je_mv})
        n.Connect(inh, neurons, {"rule": "fixed_indegree", "indegree": config.indegree_i}, {"synapse_model": "i_syn", "weight": config.ji_mv})
        return _add_devices(config, exc, inh)


def build_from_snapshot(snap: Snapshot, *, threads: int, seed: int) -> Network:
    """Rebuild a stored network in a fresh kernel: stored V_m, stored connections, new devices."""
    config = snap.config
    tables = {"e_syn": snap.e_syn, "i_syn": snap.i_syn}
    # A delay shared by all connections of a model becomes the model default: lossless, and
    # Connect then needs no delay array (each extra array costs Connect ~10% more time).
    uniform = {m: float(t.delay[0]) for m, t in tables.items() if len(t) and (t.delay == t.delay[0]).all()}
    setup_kernel(config, threads=threads, seed=seed, delays=uniform)
    n = nest()
    with nest_output_to():
        exc = n.Create(config.neuron_model, n=config.n_exc, params={"V_m": snap.vm_exc})
        inh = n.Create(config.neuron_model, n=config.n_inh, params={"V_m": snap.vm_inh})
        for model, table in tables.items():
            if not len(table):
                continue
            spec: dict[str, Any] = {"synapse_model": model, "weight": table.weight}
            if model not in uniform:
                spec["delay"] = table.delay
            if table.kplus is not None:
                spec["Kplus"] = table.kplus
            n.Connect(table.source, table.target, "one_to_one", spec)
        return _add_devices(config, exc, inh)


def _add_devices(config: NetworkConfig, exc: Any, inh: Any) -> Network:
    n = nest()
    noise = n.Create("poisson_generator", params={"rate": config.poisson_rate_hz})
    recorder = n.Create("spike_recorder")
    n.Connect(noise, exc + inh, "all_to_all", {"weight": config.je_mv})
    n.Connect(exc, recorder)
    return Network(config=config, exc=exc, inh=inh, noise=noise, recorder=recorder)


def capture(net: Network, *, seed: int, progress: Callable[[float], None] | None = None) -> Snapshot:
    """Read V_m and every connection's source, target, weight, delay (and Kplus) into a Snapshot.

    Connections are read in blocks of presynaptic neurons into preallocated arrays, so memory
    stays flat: PyNEST's own ``get(..., output="pandas")`` reads every status twice and
    holds all of them as Python objects at once.
    """
    n = nest()
    config = net.config
    with nest_output_to():
        vm_exc = np.asarray(net.exc.get("V_m"), dtype=float).reshape(-1)
        vm_inh = np.asarray(net.inh.get("V_m"), dtype=float).reshape(-1)
        counts = {m: int(n.GetDefaults(m, "num_connections")) for m in ("e_syn", "i_syn")}
        total = max(1, sum(counts.values()))
        done = 0

        def on_block(k: int) -> None:
            nonlocal done
            done += k
            if progress is not None:
                progress(done / total)

        e_syn = _read_synapses(net.exc, "e_syn", counts["e_syn"], True, on_block)
        i_syn = _read_synapses(net.inh, "i_syn", counts["i_syn"], False, on_block)
        t_stored = float(n.biological_time)
        n_vp = int(n.total_num_virtual_procs)
    return Snapshot(
        config=config,
        t_stored_ms=t_stored,
        seed=seed,
        n_vp=n_vp,
        vm_exc=vm_exc,
        vm_inh=vm_inh,
        e_syn=e_syn,
        i_syn=i_syn,
        nest_version=nest_version(),
    )


def _connection_status(conns: Any) -> list[dict[str, Any]]:
    # SynapseCollection.get() post-processes the kernel's list of status dicts in Python
    # (a list comprehension plus a restructure per key); the raw list is all we need.
    try:
        from nest import nestkernel_api

        return list(nestkernel_api.llapi_get_connection_status(conns._datum))
    except (ImportError, AttributeError):  # pragma: no cover - other PyNEST versions
        status = conns.get()
        keys = list(status)
        return [dict(zip(keys, row)) for row in zip(*status.values())]


def drain_spikes(recorder: Any) -> tuple[np.ndarray, np.ndarray]:
    """The (senders, times) recorded since the last drain; empties the recorder.

    Called once per run step, so it goes through the kernel API directly: PyNEST's
    ``recorder.n_events = 0`` first reads the node's whole status, events included, which
    made each step read its spikes twice (~1.5 ms a step at scale 1, 1.5 % of a run).
    """
    try:
        from nest import nestkernel_api

        events = nestkernel_api.llapi_get_nc_status(recorder._datum)["events"][0]
        nestkernel_api.llapi_set_nc_status(recorder._datum, [{"n_events": 0}])
    except (ImportError, AttributeError):  # pragma: no cover - other PyNEST versions
        events = recorder.get("events")
        recorder.n_events = 0
    return np.asarray(events["senders"], dtype=np.int64), np.asarray(events["times"], dtype=np.float64)


def _read_synapses(sources: Any, model: str, count: int, with_kplus: bool, on_block: Callable[[int], None]) -> SynapseTable:
    n = nest()
    keys = ("source", "target", "weight", "delay") + (("Kplus",) if with_kplus else ())
    getter = operator.itemgetter(*keys)
    out = np.empty((count, len(keys)), dtype=np.float64)
    row = np.dtype((np.float64, len(keys)))
    # Out-degree of a source is about n_neurons * indegree / n_sources; choose the number
    # of sources per block so a block holds about _BLOCK_SYNAPSES connections.
    mean_out = max(1.0, count / max(1, len(sources)))
    per_block = max(1, int(_BLOCK_SYNAPSES / mean_out))
    filled = 0
    for start in range(0, len(sources), per_block):
        conns = n.GetConnections(source=sources[start : min(start + per_block, len(sources))], synapse_model=model)
        status = _connection_status(conns)
        k = len(status)
        if filled + k > count:
            raise RuntimeError(f"{model}: more connections than NEST reported ({count})")
        if k:
            out[filled : filled + k] = np.fromiter(map(getter, status), dtype=row, count=k)
        filled += k
        on_block(k)
    if filled != count:
        raise RuntimeError(f"{model}: read {filled} connections, NEST reported {count}")
    cols = out.T
    return SynapseTable(
        source=cols[0].astype(np.int64),
        target=cols[1].astype(np.int64),
        weight=np.ascontiguousarray(cols[2]),
        delay=np.ascontiguousarray(cols[3]),
        kplus=np.ascontiguousarray(cols[4]) if with_kplus else None,
    )


def weight_sample(net: Network) -> np.ndarray:
    """e_syn weights from 49 evenly spaced E sources (the example's ``e_neurons[::41]``) onto
    every third neuron: about 4000 weights whatever the scale."""
    n = nest()
    stride = max(1, math.ceil(len(net.exc) / _WEIGHT_SAMPLE_SOURCES))
    with nest_output_to():
        conns = n.GetConnections(source=net.exc[::stride], target=net.neurons[::_WEIGHT_SAMPLE_TARGET_STRIDE], synapse_model="e_syn")
        if len(conns) == 0:
            return np.empty(0)
        return np.fromiter((s["weight"] for s in _connection_status(conns)), dtype=float)

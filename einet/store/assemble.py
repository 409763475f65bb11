"""A store's plan taken at a step boundary, and the Snapshot made from it and the read
connections (traces referred to the stored time, receptors as Connect takes them).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..clock import schedule_from
from ..kernel import nest, nest_output_to, nest_version
from ..network import Network, node_kinds, node_models, probe_node_models
from ..ownership import plain
from ..snapshot.model import ID_DTYPE, NodeRun, Snapshot, SynapseTable
from ..traces import LAST_SPIKE_CLOCKED, family, lost_after, refer_to_stored_time, traces_of
from .checks import not_stored_of, refuse_unsupported
from .connections import Columns, base_of, connection_plans, set_keys, synapse_table
from .hidden import attach_stdp, split_stdp
from .nodes import json_checked, node_runs
from .plan import CapturePlan, ModelPlan

_KERNEL_ALWAYS = ("resolution", "tics_per_ms", "min_delay", "max_delay", "rng_type")


def plan_capture(net: Network, *, seed: int, read_nodes: bool = True) -> CapturePlan:
    """Kernel settings, connection counts and keys and (unless ``read_nodes`` is false) node
    state. Its cost does not grow with the connections (node models are read once per
    network), so a background store, which leaves node state to its forked process, pauses the
    simulation for little more than the fork."""
    with nest_output_to():
        per_node = node_models(net)
        probe_node_models(net, per_node)
        refuse_unsupported(net)
        runs, last_spike = node_runs(net, per_node) if read_nodes else (None, None)
        models = connection_plans(net)
        set_keys(net, models)
    plan = kernel_plan(net, seed, per_node, models, runs)
    plan.last_spike = last_spike
    return plan


def kernel_plan(net: Network, seed: int, per_node: np.ndarray, models: list[ModelPlan], runs: list[NodeRun] | None) -> CapturePlan:
    """The plan around node state and connection handles already taken: kernel settings."""
    n = nest()
    with nest_output_to():
        status = n.GetKernelStatus()
        kernel = {k: plain(status[k]) for k in (*_KERNEL_ALWAYS, *net.kernel_set) if k in status}
        # model-wide time constants, read here: a forked reader must not ask NEST more than it needs
        trace_taus = {}
        for m in models:
            if taus := set(traces_of(base_of(net, m.model)).values()):
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
        base = base_of(net, m.model)
        if family(base) in LAST_SPIKE_CLOCKED:
            notes.append(f"{m.model} connections: state that evolves from each connection's last spike restarts as if that spike was at t = 0 (NEST's t_lastspike cannot be set)")
        limit = lost_after(base, trace_taus.get(m.model, {}))
        if limit is not None and t_stored > limit:
            notes.append(f"{m.model} connections: presynaptic traces, stored at {t_stored:g} ms, beyond the {limit:g} ms a restore can carry them (they restart from zero)")
    return notes


def finish(plan: CapturePlan, buffers: list[Columns]) -> Snapshot:
    """The Snapshot from a plan and its filled connection arrays, which it takes (``buffers``
    is emptied model by model), reading node state first if the plan has none."""
    if plan.runs is None:
        with nest_output_to():
            plan.runs, plan.last_spike = node_runs(plan.net, plan.node_models)
    tables: list[SynapseTable] = []
    for m in plan.models:
        cols, hidden = table_columns(plan, m, dict(zip(m.keys, buffers.pop(0))))  # taken: each model's arrays go as its table is made
        if len(cols["source"]):
            tables.append(synapse_table(m.model, cols))
            attach_stdp(plan, m.model, hidden)
    return snapshot_of(plan, tables)


def table_columns(plan: CapturePlan, m: ModelPlan, cols: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None]:
    """A model's read connection columns as its table stores them (in place where it can):
    traces at the stored time, einet's own connections left out, receptors as Connect takes
    them; and its rows of the hidden section (None without). Row by row, so each MPI rank
    makes its own rows."""
    net = plan.net
    # einet's own recorder and multimeter are not part of the network
    einets = (cols["target"] == net.recorder_id) | (cols["source"] == net.last_id if net.meter is not None else False)
    keep = ~einets if einets.any() else None
    del einets
    hidden = split_stdp(plan, m.model, keep)
    _refer_traces(plan, m, cols)
    if keep is not None:
        cols = {key: col[keep] for key, col in cols.items()}
    _receptor_types(plan, cols)
    # a recorder sending data-logging requests (multimeter, voltmeter): NEST reports its
    # logger index on the target as the receptor; it was connected, and is restored, with 0
    if len(plan.loggers):
        cols["receptor"][np.isin(cols["source"], plan.loggers)] = 0
    for key in ("source", "target"):
        cols[key] = cols[key].astype(ID_DTYPE, copy=False)
    return cols, hidden


def snapshot_of(plan: CapturePlan, tables: list[SynapseTable]) -> Snapshot:
    """The Snapshot of a plan whose node state is read, with its synapse tables."""
    assert plan.runs is not None
    net = plan.net
    runs = [schedule_from(run, plan.t_stored_ms, float(plan.kernel["resolution"])) for run in plan.runs]
    return Snapshot(
        nodes=tuple(runs),
        synapses=tuple(tables),
        groups={p.name: p.ids.astype(ID_DTYPE) for p in net.populations},
        kernel=plan.kernel,
        kernel_set=tuple(net.kernel_set),
        model_calls=tuple(json_checked(c, f"{c['op']} of {c['model']}") for c in net.model_calls),
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
        hidden=plan.hidden,
    )


RECEPTOR_PORT_OFFSET = {"ht_neuron": 1, "iaf_cond_alpha_mc": 1, "pp_cond_exp_mc_urbanczik": 1}
"""Node models whose connections report their receptor as ``receptor_type - 1`` (NEST 3.10,
measured by connecting each receptor type; every other model reports the type it was given)."""


def _receptor_types(plan: CapturePlan, cols: dict[str, np.ndarray]) -> None:
    """Each connection's receptor as the ``receptor_type`` a Connect takes (in place)."""
    offsets = _receptor_offsets(plan)
    if offsets is None or not len(cols["target"]):
        return
    cols["receptor"] += offsets[np.clip(cols["target"], 1, len(offsets)) - 1]


def _receptor_offsets(plan: CapturePlan) -> np.ndarray | None:
    """Per node (by id - 1): what its connections' reported receptor lacks; None if nothing
    (the models that need it are rare: decided per node, not per connection)."""
    models = np.unique(plan.node_models)
    shift = {str(m): RECEPTOR_PORT_OFFSET.get(base_of(plan.net, str(m)), 0) for m in models}
    if not any(shift.values()):
        return None
    return np.array([shift[str(m)] for m in plan.node_models], dtype=np.float64)


def _refer_traces(plan: CapturePlan, m: ModelPlan, cols: dict[str, np.ndarray]) -> None:
    """Replace a plastic model's traces by their values at the stored time (in place), a block
    of connections at a time (the temporaries stay small, and are made once)."""
    base = base_of(plan.net, m.model)
    n = len(cols["source"])
    if not traces_of(base) or not n or plan.last_spike is None:
        return
    taus = plan.trace_taus.get(m.model, {})
    keys = [key for key in traces_of(base) if key in cols]
    last, scratch = np.empty(min(n, _TRACE_BLOCK)), np.empty(min(n, _TRACE_BLOCK))
    for lo in range(0, n, _TRACE_BLOCK):
        block = slice(lo, lo + _TRACE_BLOCK)

        def tau(key: str, block: slice = block) -> Any:
            return cols[key][block] if key in cols else taus[key]

        rows = last[: min(n - lo, _TRACE_BLOCK)]
        np.take(plan.last_spike, cols["source"][block], mode="clip", out=rows)  # ids beyond: clipped
        refer_to_stored_time({key: cols[key][block] for key in keys}, tau, rows, plan.t_stored_ms, base, scratch)


_TRACE_BLOCK = 1 << 20

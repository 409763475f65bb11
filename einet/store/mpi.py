"""Storing under MPI: every rank reads its own nodes and connections in its own process (no
fork under MPI) and rank 0 builds the one Snapshot.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..kernel import nest_output_to
from ..network import Network, node_models, probe_node_models, settle_probes
from ..ranks import ranks
from ..snapshot.hidden import LAST_SPIKE_BASES, STDP_ROW, hidden_base
from ..snapshot.model import FLOAT_DTYPE, INT_DTYPE, CannotStoreError, Snapshot
from .assemble import kernel_plan, snapshot_of, table_columns
from .bulk import read_local
from .checks import refuse_unsupported
from .connections import base_of, connection_plans, set_keys, synapse_table
from .hidden import attach_stdp, take_hidden
from .nodes import last_spikes, node_run_of, run_status, runs_to_read
from .plan import Progress


# -- from several MPI ranks ------------------------------------------------------------------
def capture_ranks(net: Network, seed: int, progress: Progress | None) -> Snapshot | None:
    """Every rank reads its own nodes and connections (in its own process: no fork under MPI),
    rank 0 gathers the parts and builds the one Snapshot; the other ranks return None.

    Node state comes to rank 0 as values. Each rank makes its own rows of every table (traces
    at the stored time, einet's connections left out), which come to rank 0 a column at a
    time in rank order (the order a restore recreates them in, whatever its ranks and threads):
    rank 0 holds the tables once, as they are stored, beside its own share of the network."""
    r = ranks()
    with r.together(), nest_output_to():
        per_node = node_models(net)
        probe_node_models(net, per_node)
        refuse_unsupported(net)
        models = connection_plans(net)
    settle_probes(net)
    with r.together():
        set_keys(net, models)
        plan = kernel_plan(net, seed, per_node, models, None)
    with r.or_abort():  # its collectives agree on a failure to read; anything else ends the job
        take_hidden(plan)
    with r.together():
        with nest_output_to():
            to_read = runs_to_read(net, per_node)
            node_parts = [_local_part(run_status(nodes, keys)) for _, _, nodes, keys, _ in to_read]
        buffers = read_local(plan, 1, progress)
    parts = r.gather(node_parts)
    with r.together():
        if parts is not None:
            merged_status = [(lo, hi, _merge_status([p[k] for p in parts], hi - lo)) for k, (lo, hi, _, _, _) in enumerate(to_read)]
            plan.runs = [node_run_of(lo + 1, hi - lo, str(per_node[lo]), keys, status, layer) for (lo, hi, status), (_, _, _, keys, layer) in zip(merged_status, to_read)]
            plan.last_spike = last_spikes(net.recorder_id, merged_status)
        del parts
    # every rank refers its own connections' traces, whose sources may live on any rank
    plan.last_spike = r.share(plan.last_spike)
    with r.together():
        local, rows = {}, {}
        for m in plan.models:
            local[m.model], rows[m.model] = table_columns(plan, m, dict(zip(m.keys, buffers.pop(0))))
        layout = _table_layout(r.allgather({model: [(key, col.dtype.str) for key, col in cols.items()] for model, cols in local.items()}))
    taking = r.share(plan.hidden is not None)  # rank 0 holds the section
    wholes = []
    with r.or_abort():  # collectives with work between them: a rank failing there ends the job
        for model, keys in layout.items():
            mine = local.pop(model, None)
            has_rows = mine is not None and len(mine["source"]) > 0
            whole = _gather_table(mine if mine is not None else {key: np.empty(0, dtype=dtype) for key, dtype in keys})  # takes mine's columns
            hidden = _gather_stdp_rows(rows.pop(model, None), have=has_rows) if taking and hidden_base(base_of(net, model)) in LAST_SPIKE_BASES else None
            if whole is not None and len(whole["source"]):
                wholes.append((model, whole, hidden))
    snap: Snapshot | None = None
    with r.together():
        if r.is_root:
            tables = []
            for model, whole, hidden in wholes:
                tables.append(synapse_table(model, whole))  # each takes its columns
                attach_stdp(plan, model, hidden)
            snap = snapshot_of(plan, tables)
    return snap


def _gather_stdp_rows(rows: dict[str, np.ndarray] | None, *, have: bool) -> dict[str, np.ndarray] | None:
    """One model's rows of the hidden section (:func:`einet.store.hidden.split_stdp`) over the
    ranks, in rank order as its table's, on rank 0; None there if a rank that has connections
    of the model could not read them (and on the other ranks)."""
    r = ranks()
    if rows is None and not have:
        rows = {"runs": np.zeros(1, INT_DTYPE), **{key: np.empty(0, FLOAT_DTYPE) for key in STDP_ROW}}
    if any(r.allgather(rows is None)):
        return None
    assert rows is not None
    lengths, *values = r.gather_arrays(np.diff(rows["runs"]), *(rows[key] for key in STDP_ROW))
    if not r.is_root:
        return None
    return {"runs": np.concatenate([[0], np.cumsum(lengths)]).astype(INT_DTYPE), **dict(zip(STDP_ROW, values))}


def _table_layout(per_rank: list[dict[str, list[tuple[str, str]]]]) -> dict[str, list[tuple[str, str]]]:
    """Every synapse model any rank has connections of (in the order the ranks name them) and
    its columns; ranks that read a model's columns differently cannot make one table."""
    layout: dict[str, list[tuple[str, str]]] = {}
    for tables in per_rank:
        for model, keys in tables.items():
            if layout.setdefault(model, keys) != keys:
                raise CannotStoreError(f"the MPI ranks read {model}'s connections with different columns ({layout[model]} and {keys})")
    return layout


def _gather_table(cols: dict[str, np.ndarray]) -> dict[str, np.ndarray] | None:
    """One model's columns over the ranks, in rank order, on rank 0 (None elsewhere); each
    rank's column is let go as it is sent. A column holding one value on every rank travels
    as that value: one element, which synapse_table keeps as the model's value (as it would
    the whole column)."""
    r = ranks()
    states = r.allgather({key: _one_value(col) for key, col in cols.items() if key not in ("source", "target")})
    whole: dict[str, np.ndarray] = {}
    for key in list(cols):
        col = cols.pop(key)
        filled = [s[key] for s in states if key in s and s[key] != ("empty",)]
        if filled and all(f[0] == "one" and f[1] == filled[0][1] for f in filled):
            whole[key] = np.full(1, filled[0][1], dtype=col.dtype)
        else:
            whole[key] = r.gather_arrays(col)[0]
    return whole if r.is_root else None


def _one_value(col: np.ndarray) -> tuple[Any, ...]:
    """("empty",), ("one", the value) where every element equals the first (as synapse_table
    compares them), or ("mixed",)."""
    if not len(col):
        return ("empty",)
    return ("one", col[0].item()) if (col == col[0]).all() else ("mixed",)


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

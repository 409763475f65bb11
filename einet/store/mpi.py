"""Storing under MPI: every rank reads its own nodes and connections in its own process (no
fork under MPI) and rank 0 builds the one Snapshot.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..kernel import nest_output_to
from ..network import Network, node_models, probe_node_models, settle_probes
from ..ranks import ranks
from ..snapshot.model import CannotStoreError, Snapshot
from .assemble import finish, kernel_plan
from .bulk import read_local
from .checks import refuse_unsupported
from .connections import connection_plans, set_keys
from .nodes import last_spikes, node_run_of, run_status, runs_to_read
from .plan import ModelPlan, Progress


# -- from several MPI ranks ------------------------------------------------------------------
def capture_ranks(net: Network, seed: int, progress: Progress | None) -> Snapshot | None:
    """Every rank reads its own nodes and connections (in its own process: no fork under MPI),
    rank 0 gathers the parts and builds the one Snapshot; the other ranks return None.

    Node state comes to rank 0 as values, connections as arrays per synapse model in rank
    order (the order a restore recreates them in, whatever its ranks and threads)."""
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
        with nest_output_to():
            to_read = runs_to_read(net, per_node)
            node_parts = [_local_part(run_status(nodes, keys)) for _, _, nodes, keys, _ in to_read]
        buffers = read_local(plan, 1, progress)
    parts = r.gather((node_parts, [(m.model, m.keys, b) for m, b in zip(plan.models, buffers)]))
    del buffers
    snap: Snapshot | None = None
    with r.together():
        if parts is not None:
            merged_status = [(lo, hi, _merge_status([p[0][k] for p in parts], hi - lo)) for k, (lo, hi, _, _, _) in enumerate(to_read)]
            plan.runs = [node_run_of(lo + 1, hi - lo, str(per_node[lo]), keys, status, layer) for (lo, hi, status), (_, _, _, keys, layer) in zip(merged_status, to_read)]
            plan.last_spike = last_spikes(net.recorder_id, merged_status)
            merged: dict[str, tuple[list[str], list[list[np.ndarray]]]] = {}
            for _, tables in parts:
                for model, keys, columns in tables:
                    merged.setdefault(model, (keys, []))[1].append(columns)
            del parts
            plan.models = [ModelPlan(model, sum(len(c[0]) for c in per_rank), keys) for model, (keys, per_rank) in merged.items()]
            snap = finish(plan, [[np.concatenate(key_parts) for key_parts in zip(*per_rank)] for _, per_rank in merged.values()])
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

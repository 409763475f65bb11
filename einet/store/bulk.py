"""Reading connections with the C++ accelerator (:mod:`einet.accel`), checked against NEST,
or else through PyNEST (:func:`read_local` chooses).

Every read is checked against NEST's own count of the model's connections; the first read
of each synapse model in a process is also checked, on a sample of rows, against PyNEST's
status of the same connections. Any mismatch or failure turns the accelerator off for the
process (one log line) and the store reads through PyNEST instead.
"""

from __future__ import annotations

import math

import numpy as np

from ..accel import AccelUnavailable, connection_library, disable
from ..accel.library import Runs
from ..kernel import nest
from ..nest_api import connection_handles, connection_status
from .connections import Columns, allocate, read_connections
from .plan import CapturePlan, ModelPlan, Progress, ReadCounter
from .workers import read_in_workers

_SAMPLE_ROWS = 6
_checked: set[str] = set()
"""Synapse models whose reads were checked against PyNEST in this process."""


def read_local(plan: CapturePlan, workers: int, progress: Progress | None = None, *, idle: bool = False) -> list[Columns]:
    """This process's connections as the plan asks: by the accelerator, else through PyNEST by
    ``workers`` forked readers (see :func:`einet.store.workers.read_in_workers` for ``idle``)
    or this process."""
    bulk = read_bulk(plan, progress)
    if bulk is not None:
        return bulk
    for m in plan.models:  # NEST's status lacks them (the hidden section is then not stored)
        m.run_keys = []
    plan.stdp_runs.clear()
    return read_in_workers(plan, workers, progress, idle=idle) if workers > 1 else read_connections(plan, progress)


def read_bulk(plan: CapturePlan, progress: Progress | None = None) -> list[Columns] | None:
    """Every local connection's keys, an array per model and key as
    :func:`einet.store.connections.allocate` makes them; None when the accelerator cannot be
    had or failed a check (then read through PyNEST)."""
    library = connection_library()
    if library is None:
        return None
    report = ReadCounter(plan.n_connections, progress)
    runs: dict[str, Runs] = {}  # the plan's only once every read passed its checks: a fallback reads in another order
    try:
        buffers = allocate(plan)
        for m, buffer in zip(plan.models, buffers):
            per_thread = library.count(m.model)
            if int(per_thread.sum()) != m.count:
                raise AccelUnavailable(f"{m.model}: it found {int(per_thread.sum())} connections where NEST counts {m.count}")
            got = library.read(m.model, m.keys, per_thread, buffer, report, run_keys=m.run_keys)
            if got.runs is not None:
                runs[m.model] = got.runs
            if m.model not in _checked:
                check_sample(m, buffer)
                _checked.add(m.model)
        plan.stdp_runs.update(runs)
        return buffers
    except AccelUnavailable as exc:
        disable(str(exc))
        return None


def check_sample(m: ModelPlan, columns: Columns) -> None:
    """Raise unless each sampled row is the status PyNEST gives of a connection between the
    same nodes (several connections may join them). One fetch for the whole sample: each
    fetch scans the model's whole table."""
    count = len(columns[0])
    if count == 0:
        return
    n = nest()
    keys = m.keys
    cols = dict(zip(keys, columns))
    sample = np.unique(np.linspace(0, count - 1, _SAMPLE_ROWS).astype(int))
    rows = [tuple(float(cols[key][i]) for key in keys) for i in sample]
    ids = [sorted({int(i) for i in cols[key][sample]}) for key in ("source", "target")]
    fetched = connection_handles(n.GetConnections(source=n.NodeCollection(ids[0]), target=n.NodeCollection(ids[1]), synapse_model=m.model))
    candidates = [tuple(float(status[k]) for k in keys) for status in connection_status(fetched)]
    for row in rows:
        if not any(all(_same(a, b) for a, b in zip(found, row)) for found in candidates):
            source, target = int(row[keys.index("source")]), int(row[keys.index("target")])
            raise AccelUnavailable(f"{m.model}: its row for connection {source} → {target} differs from PyNEST's status")


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))

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
from ..kernel import nest
from ..nest_api import connection_handles, connection_status
from .connections import allocate, read_connections
from .plan import CapturePlan, ModelPlan, Progress
from .workers import read_in_workers

_SAMPLE_ROWS = 6
_checked: set[str] = set()
"""Synapse models whose reads were checked against PyNEST in this process."""


def read_local(plan: CapturePlan, workers: int, progress: Progress | None = None, *, idle: bool = False) -> list[np.ndarray]:
    """This process's connections as the plan asks: by the accelerator, else through PyNEST by
    ``workers`` forked readers (see :func:`einet.store.workers.read_in_workers` for ``idle``)
    or this process."""
    bulk = read_bulk(plan, progress)
    if bulk is not None:
        return bulk
    return read_in_workers(plan, workers, progress, idle=idle) if workers > 1 else read_connections(plan, progress)


def read_bulk(plan: CapturePlan, progress: Progress | None = None) -> list[np.ndarray] | None:
    """Every local connection's keys, one (connections × keys) array per model as
    :func:`einet.store.connections.allocate` makes them; None when the accelerator cannot be
    had or failed a check (then read through PyNEST)."""
    library = connection_library()
    if library is None:
        return None
    total = max(1, plan.n_connections)
    done = 0

    def report(k: int) -> None:
        nonlocal done
        done += k
        if progress is not None:
            progress(min(1.0, done / total))

    try:
        buffers = allocate(plan)
        for m, buffer in zip(plan.models, buffers):
            per_thread = library.count(m.model)
            if int(per_thread.sum()) != m.count:
                raise AccelUnavailable(f"{m.model}: it found {int(per_thread.sum())} connections where NEST counts {m.count}")
            library.read(m.model, m.keys, per_thread, buffer, report)
            if m.model not in _checked:
                check_sample(m, buffer)
                _checked.add(m.model)
        return buffers
    except AccelUnavailable as exc:
        disable(str(exc))
        return None


def check_sample(m: ModelPlan, rows: np.ndarray) -> None:
    """Raise unless each sampled row is the status PyNEST gives of a connection between the
    same nodes (several connections may join them). One fetch for the whole sample: each
    fetch scans the model's whole table."""
    if len(rows) == 0:
        return
    n = nest()
    source, target = m.keys.index("source"), m.keys.index("target")
    sample = rows[np.unique(np.linspace(0, len(rows) - 1, _SAMPLE_ROWS).astype(int))]
    ids = [sorted({int(i) for i in sample[:, k]}) for k in (source, target)]
    fetched = connection_handles(n.GetConnections(source=n.NodeCollection(ids[0]), target=n.NodeCollection(ids[1]), synapse_model=m.model))
    candidates = [tuple(float(status[k]) for k in m.keys) for status in connection_status(fetched)]
    for row in sample:
        if not any(all(_same(a, float(b)) for a, b in zip(found, row)) for found in candidates):
            raise AccelUnavailable(f"{m.model}: its row for connection {int(row[source])} → {int(row[target])} differs from PyNEST's status")


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))

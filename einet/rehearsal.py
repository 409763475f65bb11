"""A restore tried first in a fresh process, so that a snapshot NEST refuses only while
building (a negative capacitance, a receptor the target lacks, a connection into a generator)
is refused before the running network is reset.

The rehearsal is a new Python process with its own NEST kernel (NEST's OpenMP threads rule
out a fork of this one). It restores the snapshot under a memory limit and a deadline and
reports one line. Every node, model call, kernel setting, device and protocol change is tried;
a connection table longer than :data:`SAMPLE_ROWS` is tried on a sample holding every pair of
source and target node runs and every column's extremes, since NEST judges a connection by its
own values and its ends' models. Only a session that has a network to lose rehearses, once per
file, thread count and set of changes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .clock import clock_slices
from .limits import restore_extra_bytes
from .memory import available_bytes, network_bytes
from .protocol import Change
from .snapshot import Snapshot, SnapshotError, write_snapshot
from .snapshot.model import SynapseTable
from .snapshot.packed import BLOCK_ROWS

SAMPLE_ROWS = 100_000
"""Connection tables up to this long are rehearsed whole."""


BASE_DEADLINE_S = 60.0
BASE_MEMORY_BYTES = 1 << 30
"""What the rehearsal's Python and NEST take before the network (the limit is on data)."""


def rehearsal_key(snap: Snapshot, threads: int, changes: tuple[Change, ...]) -> tuple[Any, ...] | None:
    """What makes two rehearsals the same (None for a snapshot not read from a file)."""
    if not snap.source_path:
        return None
    try:
        st = os.stat(snap.source_path)
    except OSError:
        return None
    return (snap.source_path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, threads, tuple(str(c) for c in changes))


def rehearse(snap: Snapshot, *, seed: int, threads: int, changes: tuple[Change, ...] = ()) -> None:
    """Restore ``snap`` in a fresh process; raise :class:`SnapshotError` with NEST's one-line
    reason if that fails, runs out of its memory or time, or the process dies."""
    sample = sampled(snap)
    nodes, connections = sample.n_nodes, sum(len(t) for t in sample.synapses)
    limit = min(available_bytes(), BASE_MEMORY_BYTES + 3 * (network_bytes(nodes, connections) + restore_extra_bytes(sample)))
    deadline = BASE_DEADLINE_S + 5e-5 * nodes + 2e-5 * connections + 2e-6 * clock_slices(snap)
    with tempfile.TemporaryDirectory(prefix="einet-rehearsal-") as folder:
        path, answer = Path(folder) / "sample.h5", Path(folder) / "answer.json"
        write_snapshot(sample, path)
        job = {"path": str(path), "answer": str(answer), "seed": seed, "threads": threads, "changes": [c.to_dict() for c in changes], "limit": limit}
        try:
            done = subprocess.run(
                [sys.executable, "-m", "einet.rehearsal_child", json.dumps(job)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=deadline,
                start_new_session=True,  # Ctrl-C is the caller's; it ends the rehearsal by exiting
                env=_without_mpi(os.environ),
            )
        except subprocess.TimeoutExpired:
            raise SnapshotError(f"restoring the snapshot did not finish within {deadline:.0f} s when rehearsed in a separate process") from None
        try:
            reply = json.loads(answer.read_text())
        except (OSError, ValueError):
            reply = None
    if isinstance(reply, dict) and reply.get("ok") is True:
        return
    if isinstance(reply, dict) and isinstance(reply.get("error"), str):
        raise SnapshotError(reply["error"])
    how = f"was killed by signal {-done.returncode}" if done.returncode < 0 else f"exited with code {done.returncode}"
    raise SnapshotError(f"NEST {how} while rehearsing the restore (limit {limit / 1e9:.1f} GB of memory)")


_MPI_ENV = ("OMPI_", "PMIX_", "PMI_", "OPAL_", "HYDRA_", "I_MPI_", "MPI_LOCALRANKID", "MPI_LOCALNRANKS")


def _without_mpi(env: Mapping[str, str]) -> dict[str, str]:
    """The environment without an MPI job's variables: a rehearsal started by an MPI rank is a
    process of its own (one kernel, no ranks), where those would make NEST join the job."""
    return {k: v for k, v in env.items() if not k.startswith(_MPI_ENV)}


def refused_by_nest(exc: BaseException) -> SnapshotError:
    """NEST's exception while building a stored network, as the snapshot's refusal."""
    from .text import one_line

    return SnapshotError(f"NEST refuses the snapshot's network: {one_line(exc)}")


def sampled(snap: Snapshot) -> Snapshot:
    """``snap`` with each connection table longer than :data:`SAMPLE_ROWS` cut to the rows
    that show NEST everything it judges: one per pair of source and target node runs, and
    the first and last rows and those holding each column's smallest and largest value."""
    if all(len(t) <= SAMPLE_ROWS for t in snap.synapses):
        return snap
    firsts = np.array([r.first_id for r in snap.nodes], dtype=np.int64)
    tables = []
    for t in snap.synapses:
        if len(t) <= SAMPLE_ROWS:
            tables.append(t)
            continue
        # a block at a time (a table read from a file is held deflated): each block's rows
        # of a pair of runs seen first, and its extremes; the table's are among them
        rows = [np.array([0, len(t) - 1])]
        for lo in range(0, len(t), BLOCK_ROWS):
            block = t.rows(lo, lo + BLOCK_ROWS)
            runs = np.searchsorted(firsts, block.source, "right") * len(firsts) + np.searchsorted(firsts, block.target, "right")
            rows.append(lo + np.unique(runs, return_index=True)[1])
            for column in (block.source, block.target, *block.columns.values()):
                if column.dtype.kind in "iuf":
                    rows.append(lo + np.array([np.argmin(column), np.argmax(column)]))
        keep = np.unique(np.concatenate(rows))
        tables.append(SynapseTable(t.model, t.source[keep], t.target[keep], {k: v[keep] for k, v in t.columns.items()}, dict(t.uniform)))
    # the hidden section belongs to the whole network: rehearsed with the whole tables only
    return dataclasses.replace(snap, synapses=tuple(tables), hidden=None)

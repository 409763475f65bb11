"""A snapshot as pandas DataFrames, for analysis (pandas is imported only here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .model import NodeRun, Snapshot


def to_pandas(snap: Snapshot) -> dict[str, Any]:
    """DataFrames: one per population (``nodes/NAME``: every stored key, indexed by node
    id), one per node model run (``runs/K``), one per synapse model (``synapses/MODEL``)."""
    import pandas as pd

    out: dict[str, Any] = {"n_vp": snap.n_vp}
    for k, run in enumerate(snap.nodes):
        out[f"runs/{k}"] = _run_frame(run, pd)
    for name, ids in snap.groups.items():
        frames = [_run_frame(run, pd).loc[ids[at]] for run, at in snap.runs_holding(ids)]
        out[f"nodes/{name}"] = pd.concat(frames) if frames else pd.DataFrame()
    for table in snap.synapses:
        out[f"synapses/{table.model}"] = pd.DataFrame(table.all_columns())
    return out


def _run_frame(run: NodeRun, pd: Any) -> Any:
    index = pd.RangeIndex(run.first_id, run.last_id + 1, name="node_id")
    data: dict[str, Any] = {"model": [run.model] * run.count}
    for key in run.keys():
        values = run.values_of(key)
        data[key] = list(values) if not isinstance(values, np.ndarray) else values
    if run.positions is not None:
        for d in range(run.positions.shape[1]):
            data["xyz"[d]] = run.positions[:, d]
    return pd.DataFrame(data, index=index)


def load_frames(path: str | Path) -> dict[str, Any]:
    """Open a snapshot as pandas DataFrames: one per population, node run and synapse model."""
    from .reader import open_snapshot

    return to_pandas(open_snapshot(path))

"""Reading node state: per run of one model, only the keys NEST lets a restore set back
(probed per model, see :func:`einet.network.probe_node_models`).
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import numpy as np

from ..kernel import nest
from ..nest_api import node_status
from ..network import Network
from ..ownership import plain
from ..snapshot.model import BOOL_DTYPE, FLOAT_DTYPE, INT_DTYPE, CannotStoreError, NodeRun

NODE_METADATA = {
    "archiver_length",
    "element_type",
    "global_id",
    "local",
    "model",
    "model_id",
    "node_uses_wfr",
    "thread",
    "thread_local_id",
    "vp",
    "recordables",
    "has_connections",
    "n_synapses",
    "events",
    "n_events",
    "synaptic_elements_param",
    "time_in_steps",
}


# -- nodes -----------------------------------------------------------------------------------
def node_runs(net: Network, models: np.ndarray) -> tuple[list[NodeRun], np.ndarray]:
    """Every run's stored state, and every node's last spike time (see :func:`last_spikes`)."""
    runs, statuses = [], []
    for lo, hi, nodes, keys, layer in runs_to_read(net, models):
        status = run_status(nodes, keys)
        runs.append(node_run_of(lo + 1, hi - lo, str(models[lo]), keys, status, layer))
        statuses.append((lo, hi, status))
    return runs, last_spikes(net.recorder_id, statuses)


def last_spikes(size: int, statuses: list[tuple[int, int, dict[str, Any]]]) -> np.ndarray:
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


def runs_to_read(net: Network, models: np.ndarray) -> list[tuple[int, int, Any, list[str], Any]]:
    """(first index, end index, nodes, keys, layer) of every run of one model (and layer)."""
    n = nest()
    size = net.n_nodes
    cuts: set[int] = {int(c) for c in np.flatnonzero(models[1:] != models[:-1]) + 1}
    layers = {}
    for layer in net.layers:
        ids = layer.tolist()
        first, last = int(min(ids)), int(max(ids))
        layers[first] = layer
        cuts |= {first - 1, last}
    bounds = sorted({0, size, *(int(c) for c in cuts if 0 < c < size)})
    return [(lo, hi, n.NodeCollection(list(range(lo + 1, hi + 1))), net.settable_nodes[str(models[lo])][0], layers.get(lo + 1)) for lo, hi in itertools.pairwise(bounds)]


def run_status(nodes: Any, keys: list[str]) -> dict[str, Any]:
    """Each key's values over the run, plus ``local`` (under MPI other ranks' nodes read None)."""

    wanted = [*keys, "local", "t_spike"]  # t_spike: not stored, but where traces last jumped
    if "n_events" in node_status(nodes[0]):
        wanted.remove("t_spike")
        # a recorder: its whole status would include every recorded event
        return {key: node_status(nodes, key) for key in wanted}
    # one read of every key (a read per key costs a whole status per node each time); under
    # MPI a run held wholly by other ranks reads only their nodes' metadata
    everything = node_status(nodes)
    missing = (None,) * len(nodes)
    return {key: everything.get(key, missing) for key in wanted if key != "t_spike" or key in everything}


def node_run_of(first_id: int, count: int, model: str, keys: list[str], status: dict[str, Any], layer: Any) -> NodeRun:
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
        elif _all_equal(values):  # most often a model's empty dict (synaptic_elements): checked once
            uniform[key] = json_checked(first, f"{model} {key}")
        else:
            as_json = [json_checked(v, f"{model} {key}") for v in values]
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


def _all_equal(values: Any) -> bool:
    """Whether every value is of the first's type and equal to it (False where equality is not a
    plain bool, as of arrays)."""
    first = values[0]
    kind = type(first)
    try:
        return all(type(v) is kind and bool(v == first) for v in values)
    except (TypeError, ValueError):
        return False


def _numeric_sequence(value: Any) -> bool:
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "iuf"
    return isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)


def json_checked(value: Any, what: str) -> Any:
    value = plain(value)
    try:
        json.dumps(value, allow_nan=True)
    except (TypeError, ValueError):
        raise CannotStoreError(f"{what} holds a value a snapshot cannot store (e.g. a random Parameter)") from None
    return value

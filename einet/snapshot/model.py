"""The snapshot as data: what a stored network state holds, independent of any file format.

A :class:`Snapshot` is the state of any PyNEST network: kernel settings, the model calls that
made custom models, every node in id order as runs of one model (settable parameters and
state, positions), every connection of every synapse model with its settable properties, the
populations einet shows, and what could not be stored. It travels as a JSON *manifest* plus
named numpy arrays (:meth:`Snapshot.to_parts`), which is both what the HDF5 file holds and what
the isolated reader sends back. Nothing here imports NEST or h5py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..config import NetworkConfig

FORMAT = "einet-snapshot"
FORMAT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
"""Version 3 added the protocol still to come and presynaptic traces referred to the stored time."""
SUFFIX = ".h5"

ID_DTYPE = np.dtype("<i4")
FLOAT_DTYPE = np.dtype("<f8")
INT_DTYPE = np.dtype("<i8")
BOOL_DTYPE = np.dtype("|u1")
ARRAY_DTYPES = {d.str: d for d in (ID_DTYPE, FLOAT_DTYPE, INT_DTYPE, BOOL_DTYPE)}

STORED = [
    "every node in id order, as runs of one model: every parameter and state variable NEST lets you set",
    "positions of spatially structured populations",
    "every connection of every synapse model (devices' too): source, target, receptor and every settable property (weight, delay, traces, …)",
    "models made with CopyModel/SetDefaults, kernel settings that shape the network (resolution, delays, …)",
    "time stored (a restored network goes on from it: devices act at the same times as in the continued run), seed, threads (n_vp), NEST and einet versions, the model and its parameters (for the record)",
    "the protocol's changes still to come (a restored run makes them at the same times)",
]
GENERAL_NOT_STORED = [
    "spikes in transit (emitted but not yet delivered), and devices' currents and rates sent in the last delay before the store",
    "random number generator state (the seed is stored; the stream restarts)",
    "state NEST does not expose (refractory countdowns, synaptic input buffers, STDP's postsynaptic spike history, connections' last-spike times)",
    "events recorded by the model's own recorders (they belong to runs, not to the network state)",
]


class SnapshotError(Exception):
    """The file is not a valid, intact einet snapshot, or the state cannot be stored (one line)."""


class SnapshotExistsError(SnapshotError):
    """Storing would overwrite an existing snapshot and overwriting was not asked for."""


class CannotStoreError(SnapshotError):
    """The network holds what einet cannot store faithfully, or could not restore (one line):
    a store refuses it before it writes anything."""


@dataclass(frozen=True)
class NodeRun:
    """Consecutive nodes ``first_id … first_id + count - 1`` of one NEST model."""

    first_id: int
    count: int
    model: str
    uniform: dict[str, Any] = field(default_factory=dict)
    """Values shared by every node of the run (JSON values)."""
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    """Per-node numbers, one entry per node."""
    ragged: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    """Per-node arrays (e.g. spike_times) as (values, offsets of length count + 1)."""
    varying: dict[str, list[Any]] = field(default_factory=dict)
    """Per-node values of other kinds (strings, lists of names), one JSON value per node."""
    spatial: dict[str, Any] | None = None
    """Layer metadata (kind, extent, center, edge_wrap, shape) when the nodes have positions."""
    positions: np.ndarray | None = None

    @property
    def last_id(self) -> int:
        return self.first_id + self.count - 1

    def node_params(self) -> list[dict[str, Any]]:
        """One complete parameter dict per node, for setting them in one call each."""
        out = []
        for i in range(self.count):
            d = dict(self.uniform)
            for key, col in self.columns.items():
                d[key] = bool(col[i]) if col.dtype == BOOL_DTYPE else col[i].item()
            for key, (values, offsets) in self.ragged.items():
                d[key] = values[offsets[i] : offsets[i + 1]].tolist()
            for key, vals in self.varying.items():
                d[key] = vals[i]
            out.append(d)
        return out

    def values_of(self, key: str) -> np.ndarray | list[Any]:
        """Every node's value of ``key`` (numbers as an array)."""
        if key in self.columns:
            return self.columns[key]
        if key in self.uniform:
            v = self.uniform[key]
            return np.full(self.count, v, dtype=float) if isinstance(v, (int, float)) and not isinstance(v, bool) else [v] * self.count
        if key in self.varying:
            return self.varying[key]
        if key in self.ragged:
            values, offsets = self.ragged[key]
            return [values[offsets[i] : offsets[i + 1]] for i in range(self.count)]
        raise KeyError(key)

    def keys(self) -> list[str]:
        return sorted({*self.uniform, *self.columns, *self.ragged, *self.varying})

    def distinct(self, key: str) -> list[Any]:
        """The values of ``key`` among the run's nodes, each once, in the order they first
        come: a value the nodes share is not repeated for each of them (a run may declare
        millions of nodes in a few bytes of manifest)."""
        if key in self.uniform:
            return [self.uniform[key]]
        seen: dict[str, Any] = {}
        for value in self.values_of(key):
            value = value.tolist() if isinstance(value, (np.ndarray, np.generic)) else value
            seen.setdefault(json.dumps(value, sort_keys=True), value)
        return list(seen.values())

    def first_value(self, key: str) -> Any:
        """The first node's value of ``key`` (a shared value without repeating it)."""
        return self.uniform[key] if key in self.uniform else self.values_of(key)[0]


@dataclass(frozen=True)
class SynapseTable:
    """All connections of one synapse model, one entry per connection."""

    model: str
    source: np.ndarray
    target: np.ndarray
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    """Per-connection values (weight, delay, Kplus, receptor_type, …)."""
    uniform: dict[str, Any] = field(default_factory=dict)
    """Values shared by every connection of the model."""

    def __len__(self) -> int:
        return len(self.source)

    def column(self, key: str) -> np.ndarray:
        """Every connection's ``key`` as an array, whether stored per connection or shared."""
        if key in self.columns:
            return self.columns[key]
        if key in self.uniform:
            return np.full(len(self), self.uniform[key], dtype=float)
        raise KeyError(key)

    @property
    def weight(self) -> np.ndarray:
        return self.column("weight")

    @property
    def delay(self) -> np.ndarray:
        return self.column("delay")

    def all_columns(self) -> dict[str, np.ndarray]:
        """source, target and every property as full-length arrays (for tables and tests)."""
        out: dict[str, np.ndarray] = {"source": self.source, "target": self.target}
        for key in sorted({*self.columns, *self.uniform}):
            out[key] = self.column(key)
        return out


@dataclass(frozen=True)
class Snapshot:
    """A stored network state and where it came from."""

    nodes: tuple[NodeRun, ...]
    synapses: tuple[SynapseTable, ...]
    groups: dict[str, np.ndarray]
    """Population name → node ids (what einet records and shows)."""
    kernel: dict[str, Any]
    """Kernel settings that shape the network (resolution, tics_per_ms, …)."""
    kernel_set: tuple[str, ...]
    """Which of them the model set explicitly (restore sets these, plus resolution and tics)."""
    model_calls: tuple[dict[str, Any], ...]
    model: str
    scale: float
    params: dict[str, Any]
    t_stored_ms: float
    seed: int
    n_vp: int
    t_sim_ms: float = 1000.0
    """The run length of the session that stored it (a restore's default)."""
    not_stored: tuple[str, ...] = tuple(GENERAL_NOT_STORED)
    protocol: tuple[dict[str, Any], ...] = ()
    """Changes still to come when it was stored (``{"t_ms", "target", "key", "value"}``)."""
    nest_version: str = ""
    einet_version: str = __version__
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    format_version: int = FORMAT_VERSION
    source_path: str = field(default="", compare=False)
    """The file this snapshot was read from ('' if it was captured in memory)."""

    # -- files -------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path, *, timeout_s: float | None = None) -> Snapshot:
        """Read and fully validate a snapshot file (format v2 or v1) in an isolated child
        process; raise :class:`SnapshotError` with one line if anything is off. ``timeout_s``
        defaults to 10 s plus 1 s per 20 MB of file and 1 s per MiB of manifest."""
        from .reader import open_snapshot

        return open_snapshot(path, timeout_s=timeout_s)

    @staticmethod
    def inspect(path: str | Path) -> SnapshotInfo:
        """Metadata, counts, weight statistics and an integrity verdict; never raises for content."""
        from .reader import inspect_snapshot

        return inspect_snapshot(path)

    def write(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Validate, then write atomically (never replaces an existing file unless ``overwrite``)."""
        from . import write_snapshot

        return write_snapshot(self, path, overwrite=overwrite)

    def validate(self) -> None:
        """The checks a reader applies, on this in-memory snapshot."""
        from .validate import check_values, expected_arrays

        expected_arrays(self.to_parts()[0])
        check_values(self)

    # -- derived -----------------------------------------------------------------------
    @property
    def config(self) -> NetworkConfig:
        """The model, scale and parameters the network was built with, at the stored seed/threads."""
        return NetworkConfig(model=self.model, scale=self.scale, params=dict(self.params), seed=self.seed, threads=self.n_vp, t_sim_ms=self.t_sim_ms)

    @property
    def n_nodes(self) -> int:
        return sum(r.count for r in self.nodes)

    @property
    def resolution_ms(self) -> float:
        return float(self.kernel.get("resolution", 0.1))

    def group_sizes(self) -> dict[str, int]:
        return {name: int(len(ids)) for name, ids in self.groups.items()}

    def synapse_counts(self) -> dict[str, int]:
        return {t.model: len(t) for t in self.synapses}

    def model_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for run in self.nodes:
            out[run.model] = out.get(run.model, 0) + run.count
        return out

    def synapse(self, model: str) -> SynapseTable:
        for t in self.synapses:
            if t.model == model:
                return t
        raise KeyError(model)

    @cached_property
    def _first_ids(self) -> np.ndarray:
        return np.fromiter((run.first_id for run in self.nodes), dtype=np.int64, count=len(self.nodes))

    def run_of(self, node_id: int) -> NodeRun:
        """The node run holding ``node_id`` (a binary search: runs are in id order)."""
        k = int(np.searchsorted(self._first_ids, node_id, side="right")) - 1
        if k >= 0 and node_id <= self.nodes[k].last_id:
            return self.nodes[k]
        raise KeyError(node_id)

    def runs_holding(self, ids: np.ndarray) -> list[tuple[NodeRun, np.ndarray]]:
        """The node runs holding ``ids`` (in 1 … n), each with the positions in ``ids`` of its
        nodes: one sort of the ids, whatever the number of runs (a network may have a run per
        node)."""
        ids = np.asarray(ids, dtype=np.int64)
        which = np.searchsorted(self._first_ids, ids, side="right") - 1
        order = np.argsort(which, kind="stable")
        sorted_runs = which[order]
        starts = np.flatnonzero(np.r_[True, sorted_runs[1:] != sorted_runs[:-1]]) if len(ids) else np.empty(0, np.int64)
        ends = np.r_[starts[1:], len(ids)]
        return [(self.nodes[int(sorted_runs[a])], order[a:b]) for a, b in zip(starts, ends)]

    def node_values(self, key: str, ids: np.ndarray) -> np.ndarray:
        """``key`` of the given nodes (numbers), e.g. ``V_m`` of a population."""
        ids = np.asarray(ids, dtype=np.int64)
        out = np.empty(len(ids), dtype=float)
        for run, at in self.runs_holding(ids):
            out[at] = np.asarray(run.values_of(key), dtype=float)[ids[at] - run.first_id]
        return out

    # -- the manifest + arrays form (file and wire) ------------------------------------
    def header(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "einet_version": self.einet_version,
            "nest_version": self.nest_version,
            "t_stored_ms": float(self.t_stored_ms),
            "seed": int(self.seed),
            "n_vp": int(self.n_vp),
            "created": self.created,
        }

    def to_parts(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The manifest (JSON) and the named arrays it describes."""
        arrays: dict[str, np.ndarray] = {}
        nodes = []
        for k, run in enumerate(self.nodes):
            entry: dict[str, Any] = {"first_id": run.first_id, "count": run.count, "model": run.model, "uniform": run.uniform, "columns": {}, "ragged": {}, "varying": run.varying, "spatial": run.spatial}
            for key, col in run.columns.items():
                arrays[f"nodes/{k}/{key}"] = col
                entry["columns"][key] = col.dtype.str
            for key, (values, offsets) in run.ragged.items():
                arrays[f"nodes/{k}/ragged/{key}/values"] = values
                arrays[f"nodes/{k}/ragged/{key}/offsets"] = offsets
                entry["ragged"][key] = [values.dtype.str, int(len(values))]
            if run.positions is not None:
                arrays[f"nodes/{k}/positions"] = run.positions
            nodes.append(entry)
        synapses = []
        for k, table in enumerate(self.synapses):
            arrays[f"synapses/{k}/source"] = table.source
            arrays[f"synapses/{k}/target"] = table.target
            for key, col in table.columns.items():
                arrays[f"synapses/{k}/{key}"] = col
            synapses.append({"model": table.model, "count": len(table), "uniform": table.uniform, "columns": {key: col.dtype.str for key, col in table.columns.items()}})
        groups = []
        for k, (name, ids) in enumerate(self.groups.items()):
            arrays[f"groups/{k}"] = ids
            groups.append({"name": name, "count": int(len(ids))})
        manifest = {
            "header": self.header(),
            "model": {"ref": self.model, "scale": self.scale, "params": self.params, "t_sim_ms": self.t_sim_ms},
            "kernel": {"values": self.kernel, "set": list(self.kernel_set)},
            "model_calls": list(self.model_calls),
            "nodes": nodes,
            "synapses": synapses,
            "groups": groups,
            "stored": STORED,
            "not_stored": list(self.not_stored),
            "protocol": [dict(c) for c in self.protocol],
        }
        return manifest, arrays

    @classmethod
    def from_parts(cls, manifest: dict[str, Any], arrays: dict[str, np.ndarray], source_path: str = "") -> Snapshot:
        """Inverse of :meth:`to_parts` (the manifest must have been validated)."""
        h = manifest["header"]
        nodes = []
        for k, e in enumerate(manifest["nodes"]):
            spatial = e.get("spatial")
            # a network may have a run per node: nothing is made for what a run does not have
            nodes.append(
                NodeRun(
                    first_id=int(e["first_id"]),
                    count=int(e["count"]),
                    model=str(e["model"]),
                    uniform=dict(e["uniform"]),
                    columns={key: arrays[f"nodes/{k}/{key}"] for key in e["columns"]} if e["columns"] else {},
                    ragged={key: (arrays[f"nodes/{k}/ragged/{key}/values"], arrays[f"nodes/{k}/ragged/{key}/offsets"]) for key in e["ragged"]} if e["ragged"] else {},
                    varying={key: list(v) for key, v in e["varying"].items()} if e["varying"] else {},
                    spatial=dict(spatial) if spatial else None,
                    positions=arrays.get(f"nodes/{k}/positions") if spatial else None,
                )
            )
        synapses = tuple(
            SynapseTable(
                model=str(e["model"]),
                source=arrays[f"synapses/{k}/source"],
                target=arrays[f"synapses/{k}/target"],
                columns={key: arrays[f"synapses/{k}/{key}"] for key in e["columns"]},
                uniform=dict(e["uniform"]),
            )
            for k, e in enumerate(manifest["synapses"])
        )
        groups = {str(e["name"]): arrays[f"groups/{k}"] for k, e in enumerate(manifest["groups"])}
        model = manifest["model"]
        return cls(
            nodes=tuple(nodes),
            synapses=synapses,
            groups=groups,
            kernel=dict(manifest["kernel"]["values"]),
            kernel_set=tuple(manifest["kernel"]["set"]),
            model_calls=tuple(manifest["model_calls"]),
            model=str(model["ref"]),
            scale=float(model["scale"]),
            params=dict(model["params"]),
            t_stored_ms=float(h["t_stored_ms"]),
            seed=int(h["seed"]),
            n_vp=int(h["n_vp"]),
            t_sim_ms=float(model["t_sim_ms"]),
            not_stored=tuple(manifest["not_stored"]),
            protocol=tuple(dict(c) for c in manifest.get("protocol", ())),  # none before version 3
            nest_version=str(h["nest_version"]),
            einet_version=str(h["einet_version"]),
            created=str(h["created"]),
            format_version=int(manifest.get("read_from_version", h["format_version"])),
            source_path=source_path,
        )

    # -- analysis ----------------------------------------------------------------------
    def to_pandas(self) -> dict[str, Any]:
        """DataFrames: one per population (``nodes/NAME``: every stored key, indexed by node
        id), one per node model run (``runs/K``), one per synapse model (``synapses/MODEL``)."""
        import pandas as pd

        out: dict[str, Any] = {"n_vp": self.n_vp}
        for k, run in enumerate(self.nodes):
            out[f"runs/{k}"] = _run_frame(run, pd)
        for name, ids in self.groups.items():
            frames = [_run_frame(run, pd).loc[ids[at]] for run, at in self.runs_holding(ids)]
            out[f"nodes/{name}"] = pd.concat(frames) if frames else pd.DataFrame()
        for table in self.synapses:
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


@dataclass(frozen=True)
class SnapshotInfo:
    """What ``einet inspect`` reports about a snapshot file."""

    path: Path
    file_bytes: int
    valid: bool
    problem: str
    format_version: int | None = None
    t_stored_ms: float | None = None
    seed: int | None = None
    n_vp: int | None = None
    nest_version: str = ""
    einet_version: str = ""
    created: str = ""
    model: str = ""
    scale: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    groups: dict[str, int] = field(default_factory=dict)
    node_models: dict[str, int] = field(default_factory=dict)
    synapses: dict[str, int] = field(default_factory=dict)
    custom_models: list[dict[str, Any]] = field(default_factory=list)
    weight_stats: dict[str, dict[str, float]] = field(default_factory=dict)
    not_stored: list[str] = field(default_factory=list)
    stored_keys: dict[str, dict[str, dict[str, list[str]]]] = field(default_factory=dict)
    """What is stored, per model: ``{"nodes"|"synapses": {model: {"shared": keys, "per node"|
    "per connection": keys}}}`` (shared: one value for the whole run or table)."""
    recorders: list[dict[str, Any]] = field(default_factory=list)
    """The model's recorders per node run: model, first_id, count, record_to and label as
    stored (a restore records to memory whatever the backend was)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "format": FORMAT,
            "format_version": self.format_version,
            "file_bytes": self.file_bytes,
            "valid": self.valid,
            "problem": self.problem,
            "neurons": self.groups or None,
            "synapses": self.synapses or None,
            "node_models": self.node_models,
            "custom_models": self.custom_models,
            "model": self.model or None,
            "scale": self.scale,
            "params": self.params,
            "t_stored_ms": self.t_stored_ms,
            "seed": self.seed,
            "n_vp": self.n_vp,
            "nest_version": self.nest_version,
            "einet_version": self.einet_version,
            "created": self.created,
            "weight_stats": self.weight_stats,
            "stored_keys": self.stored_keys,
            "recorders": self.recorders,
            "stored": STORED,
            "not_stored": self.not_stored,
        }

    @classmethod
    def of(cls, snap: Snapshot, path: Path, file_bytes: int) -> SnapshotInfo:
        stats = {}
        for t in snap.synapses:
            if len(t) and ("weight" in t.columns or "weight" in t.uniform):
                w = t.weight
                stats[t.model] = {"mean": float(w.mean()), "std": float(w.std()), "min": float(w.min()), "max": float(w.max())}
        return cls(
            path=path,
            file_bytes=file_bytes,
            valid=True,
            problem="",
            format_version=snap.format_version,
            t_stored_ms=snap.t_stored_ms,
            seed=snap.seed,
            n_vp=snap.n_vp,
            nest_version=snap.nest_version,
            einet_version=snap.einet_version,
            created=snap.created,
            model=snap.model,
            scale=snap.scale,
            params=dict(snap.params),
            groups=snap.group_sizes(),
            node_models=snap.model_counts(),
            synapses=snap.synapse_counts(),
            custom_models=[dict(c) for c in snap.model_calls],
            weight_stats=stats,
            not_stored=list(snap.not_stored),
            stored_keys=_stored_keys(snap),
            recorders=[_recorder_entry(run) for run in snap.nodes if "record_to" in run.keys()],
        )


def _recorder_entry(run: NodeRun) -> dict[str, Any]:
    """A recorder run's stored backend and label: one value when every node has the same."""

    def stored(key: str) -> Any:
        if key not in run.keys():
            return None
        values = run.distinct(key)
        return values[0] if len(values) == 1 else list(run.values_of(key))

    return {"model": run.model, "first_id": run.first_id, "count": run.count, "record_to": stored("record_to"), "label": stored("label")}


def _stored_keys(snap: Snapshot) -> dict[str, dict[str, dict[str, list[str]]]]:
    """Per node and synapse model, the keys stored once for all (in some run or table of the
    model) and those stored per node or connection (in any of them)."""
    nodes: dict[str, dict[str, set[str]]] = {}
    for run in snap.nodes:
        entry = nodes.setdefault(run.model, {"shared": set(), "per node": set()})
        entry["shared"] |= set(run.uniform)
        entry["per node"] |= {*run.columns, *run.ragged, *run.varying}
    synapses: dict[str, dict[str, set[str]]] = {t.model: {"shared": set(t.uniform), "per connection": set(t.columns)} for t in snap.synapses}
    return {
        "nodes": {m: {k: sorted(v - (e["per node"] if k == "shared" else set())) for k, v in e.items()} for m, e in nodes.items()},
        "synapses": {m: {k: sorted(v) for k, v in e.items()} for m, e in synapses.items()},
    }

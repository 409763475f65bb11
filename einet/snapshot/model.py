"""The snapshot as data: what a stored network state holds, independent of any file format.

A :class:`Snapshot` is the state of any PyNEST network: kernel settings, the model calls that
made custom models, every node in id order as runs of one model (settable parameters and
state, positions), every connection of every synapse model with its settable properties, the
populations einet shows, and what could not be stored. It travels as a JSON *manifest* plus
named numpy arrays (:mod:`.manifest`), which is both what the HDF5 file holds and what the
isolated reader sends back. Reading and writing files are module functions of
:mod:`einet.snapshot`, never methods here. Nothing here imports NEST or h5py.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import __version__
from ..config import NetworkConfig
from .packed import PackedColumn, block_of

if TYPE_CHECKING:
    from .hidden import HiddenSection

FORMAT = "einet-snapshot"
FORMAT_VERSION = 4
READABLE_VERSIONS = (1, 2, 3, 4)
"""Version 3 added the protocol still to come and presynaptic traces referred to the stored time;
version 4 the hidden section (:mod:`.hidden`)."""
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

    def node_params(self, leave_out: Collection[str] = ()) -> list[dict[str, Any]]:
        """One complete parameter dict per node (but the keys in ``leave_out``), for setting
        them in one call each."""
        uniform = {k: v for k, v in self.uniform.items() if k not in leave_out}
        # whole columns as Python values at once: per element, .item() cost a large restore seconds
        columns = [(k, (col.astype(bool) if col.dtype == BOOL_DTYPE else col).tolist()) for k, col in self.columns.items() if k not in leave_out]
        ragged = [(k, values, offsets) for k, (values, offsets) in self.ragged.items() if k not in leave_out]
        varying = [(k, vals) for k, vals in self.varying.items() if k not in leave_out]
        out = []
        for i in range(self.count):
            d = dict(uniform)
            for key, values_of in columns:
                d[key] = values_of[i]
            for key, values, offsets in ragged:
                d[key] = values[offsets[i] : offsets[i + 1]].tolist()
            for key, vals in varying:
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


Column = np.ndarray | PackedColumn
"""A connection column: an array, or its deflated chunks."""


@dataclass(frozen=True)
class SynapseTable:
    """All connections of one synapse model, one entry per connection."""

    model: str
    source: Column
    target: Column
    columns: Mapping[str, Column] = field(default_factory=dict)
    """Per-connection values (weight, delay, Kplus, receptor_type, …)."""
    uniform: dict[str, Any] = field(default_factory=dict)
    """Values shared by every connection of the model.

    A table read from a file holds its large columns as their deflated chunks
    (:class:`~.packed.PackedColumn`): ``np.asarray`` inflates one whole, :meth:`rows` a block."""

    def __len__(self) -> int:
        return len(self.source)

    def column(self, key: str) -> np.ndarray:
        """Every connection's ``key`` as an array, whether stored per connection or shared."""
        if key in self.columns:
            return np.asarray(self.columns[key])
        if key in self.uniform:
            return np.full(len(self), self.uniform[key], dtype=float)
        raise KeyError(key)

    def rows(self, lo: int, hi: int, keys: Collection[str] | None = None) -> SynapseTable:
        """Rows ``lo`` to ``hi - 1`` as a table of arrays (a packed column inflates only those),
        with the columns ``keys`` only if given."""
        return SynapseTable(self.model, block_of(self.source, lo, hi), block_of(self.target, lo, hi), {k: block_of(v, lo, hi) for k, v in self.columns.items() if keys is None or k in keys}, self.uniform)

    def blocks(self, rows: int, keys: Collection[str] | None = None) -> Iterator[SynapseTable]:
        """The table as :meth:`rows` of ``rows`` rows each, in order."""
        for lo in range(0, len(self), rows):
            yield self.rows(lo, lo + rows, keys)

    @property
    def weight(self) -> np.ndarray:
        return self.column("weight")

    @property
    def delay(self) -> np.ndarray:
        return self.column("delay")

    def all_columns(self) -> dict[str, np.ndarray]:
        """source, target and every property as full-length arrays (for tables and tests)."""
        out: dict[str, np.ndarray] = {"source": np.asarray(self.source), "target": np.asarray(self.target)}
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
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="microseconds"))
    format_version: int = FORMAT_VERSION
    hidden: HiddenSection | None = field(default=None, compare=False)
    """The state NEST does not expose (format 4; None: not stored, see :mod:`.hidden`)."""
    source_path: str = field(default="", compare=False)
    """The file this snapshot was read from ('' if it was captured in memory)."""

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
        return {name: len(ids) for name, ids in self.groups.items()}

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

    # -- the header (file attributes and manifest) ---------------------------------------
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

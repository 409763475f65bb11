"""The hidden section of a snapshot (format version 4): the state NEST keeps but does not let
PyNEST set, as einet's accessor (``einet/accel/state.cpp``) reads it — node records with their
input buffers, STDP connections' exact Kplus and t_lastspike, the random generators, the
Poisson generators' distributions and the spikes in transit (``docs/hidden-state.md``).

Pure data and checks (no NEST): the manifest's ``hidden`` object is checked before any array is
read (:func:`hidden_arrays`) and the arrays against it and the network after
(:func:`check_hidden`). Whatever reaches the C++ writer has passed both: ids in range, offsets
inside the records, every record's header consistent with its length, no NaN.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from .model import FLOAT_DTYPE, ID_DTYPE, INT_DTYPE, STORED, SnapshotError

HIDDEN_VERSION = 3
BYTE_DTYPE = np.dtype("|u1")

MODEL_OF_KIND = {
    1: "iaf_psc_alpha",
    2: "iaf_psc_exp",
    3: "iaf_psc_delta",
    4: "parrot_neuron",
    5: "iaf_cond_exp",
    6: "iaf_cond_alpha",
    7: "aeif_cond_exp",
    8: "aeif_cond_alpha",
    9: "hh_psc_alpha",
    10: "izhikevich",
    11: "aeif_psc_alpha",
    12: "aeif_psc_exp",
    13: "iaf_cond_beta",
    14: "hh_cond_exp_traub",
    15: "iaf_psc_exp_multisynapse",
    16: "iaf_psc_alpha_multisynapse",
}
"""The node models with an accessor, by the kind code that opens each record."""
KIND_OF_MODEL = {m: k for k, m in MODEL_OF_KIND.items()}
SHAPE_OF_KIND = {1: (7, 3), 2: (6, 4), 3: (4, 2), 4: (1, 1), 5: (6, 3), 6: (8, 3), 7: (7, 3), 8: (9, 3), 9: (11, 3), 10: (4, 2), 11: (9, 3), 12: (7, 3), 13: (8, 3), 14: (9, 3)}
"""Per kind: its core values (the model's doubles and its refractory counter) and input channels."""
PER_RECEPTOR_OF_KIND = {15: 1, 16: 2}
"""Kinds whose shape follows the node's receptor ports (multisynapse models): their core values
per port (after ``I_const``; then ``V_m`` and the counter) and one input channel a port, then
currents."""
MAX_RECEPTORS = 1 << 12
GSL_KINDS = frozenset({5, 6, 7, 8, 9, 11, 12, 13, 14})
"""The kinds of GSL models: their core values end with the adaptive integration step, the input
current of the coming step and the refractory counter."""
HEADER, N_ARCHIVING = 5, 8
STDP_BASES = ("stdp_synapse", "stdp_synapse_hom", "stdp_pl_synapse_hom", "stdp_nn_pre_centered_synapse", "vogels_sprekeler_synapse")
"""Synapse models whose hidden state is Kplus and t_lastspike."""
LAST_SPIKE_BASES = (*STDP_BASES, "stdp_nn_symm_synapse", "stdp_nn_restr_synapse", "tsodyks2_synapse", "tsodyks_synapse", "tsodyks_synapse_hom")
"""Synapse models whose hidden connection state the accessor reads: the STDP ones', and the
last spike alone of the nearest-neighbour STDP models without a presynaptic trace and of the
Tsodyks models (their u, x and y are in the status)."""


def hidden_base(base: str) -> str:
    """The model whose accessor covers a built-in synapse model: an ``_hpc`` variant is the same
    connection type with a target index (NEST's HPC benchmark's); ``_lbl`` variants are other
    types, not covered."""
    return base.removesuffix("_hpc")


STDP_ROW = ("kplus", "t_lastspike")
"""Per connection of a model of :data:`LAST_SPIKE_BASES`, in the order of its synapse table's
rows: the exact Kplus (the table's is referred to the stored time; 0 for a model without
one) and t_lastspike (NaN: a connection to or from a device, which NEST keeps elsewhere and
einet does not read). Stored as runs of rows with the
same values (a source's connections share them: ~100 rows a run), ``stdp/K/runs`` saying
where each run starts."""
RNG_TYPES = ("mt19937_64", "mt19937")
TRANSIT = ("source", "lag", "count")
"""Spikes in transit, each an emission: the neuron that sent it, its lag in the communication
interval and its multiplicity; by virtual process (the source's ``node_id % n_vp``), each
one's in the order NEST made them (its spike register's, the order it delivers them in)."""
MAX_MULTIPLICITY = 1 << 16
MAX_RNG_TEXT = 1 << 16

META_KEYS = {
    "version",
    "nest_version",
    "nest_binary",
    "t_ms",
    "ranks",
    "threads",
    "step_in_interval",
    "buffer_slots",
    "rng_type",
    "compressed_spikes",
    "node_models",
    "n_records",
    "stdp",
    "rng_bytes",
    "devices_bytes",
    "transit",
    "uncovered",
}

HIDDEN_STORED = "the hidden state of {models}: synaptic currents, refractory counters, input buffers, STDP history and last-spike times, random generators, spikes in transit — a restore on the same NEST with the same virtual processes is the continued run"
HIDDEN_NOT_STORED = "the hidden state of {models} (einet has no accessor for them): synaptic currents, refractory countdowns, input buffers, connections' last-spike times"


@dataclass(frozen=True)
class HiddenSection:
    """A snapshot's hidden section: the manifest's ``hidden`` object and its arrays, named as in
    the file below ``/hidden/`` (``nodes/id``, ``stdp/0/kplus``, ``rng/text``, …)."""

    meta: dict[str, Any]
    arrays: dict[str, np.ndarray]

    @property
    def complete(self) -> bool:
        """Whether every node and synapse model of the network has its hidden state here."""
        return not self.meta["uncovered"]

    def text(self, name: str) -> str:
        return self.arrays[f"{name}/text"].tobytes().decode("ascii")


EARLIER_HIDDEN = "the hidden state of the stored network: its section has layout {version}, an earlier einet's, which this one does not read (restored as without it)"


def earlier_hidden(manifest: Any) -> bool:
    """Whether a manifest's hidden section has a layout of an earlier einet; if so it is taken
    out of the manifest (its datasets are then left unread) and a not-stored line says so: the
    rest of the snapshot restores as one without the section."""
    hidden = manifest.get("hidden") if isinstance(manifest, dict) else None
    version = hidden.get("version") if isinstance(hidden, dict) else None
    if type(version) is not int or not 1 <= version < HIDDEN_VERSION or not isinstance(manifest.get("not_stored"), list):
        return False
    manifest["hidden"] = None
    manifest["not_stored"] = [*manifest["not_stored"], EARLIER_HIDDEN.format(version=version)]
    if isinstance(manifest.get("stored"), list):  # its line says the restore would continue the run
        manifest["stored"] = [line for line in manifest["stored"] if not (isinstance(line, str) and line.startswith(HIDDEN_STORED.split("{")[0]))]
    return True


def stored_lines(section: HiddenSection | None) -> list[str]:
    """What a snapshot holds (the manifest's ``stored``): the hidden section's line with it."""
    if section is None:
        return list(STORED)
    models = [*section.meta["node_models"], *(e["model"] for e in section.meta["stdp"])]
    return [*STORED, HIDDEN_STORED.format(models=", ".join(models) or "no model")]


def _require(ok: bool | np.bool_, message: str) -> None:
    if not ok:
        raise SnapshotError(f"hidden section: {message}")


def _whole(value: Any, what: str, lo: int, hi: int) -> int:
    _require(type(value) is int and lo <= value <= hi, f"{what} must be a whole number in [{lo}, {hi}]")
    return int(value)


def _model_name(value: Any, what: str) -> str:
    _require(isinstance(value, str) and 0 < len(value) <= 200 and value.isprintable(), f"{what} must be a model name")
    return str(value)


def hidden_arrays(meta: Any, *, t_stored_ms: float, n_vp: int, n_nodes: int, tables: dict[str, int]) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
    """Check the manifest's ``hidden`` object (``tables``: synapse model → connections stored)
    and return the arrays it declares below ``hidden/``, with dtype and shape."""
    _require(isinstance(meta, dict) and set(meta) == META_KEYS, f"its keys differ from the format's: {', '.join(sorted(set(meta) ^ META_KEYS))[:80] if isinstance(meta, dict) else 'not a mapping'}")
    _require(meta["version"] == HIDDEN_VERSION and type(meta["version"]) is int, f"version {meta['version']!r} is not supported (this einet reads {HIDDEN_VERSION})")
    _require(isinstance(meta["nest_version"], str) and len(meta["nest_version"]) <= 200 and meta["nest_version"].isprintable(), "nest_version must be printable text")
    _require(isinstance(meta["nest_binary"], str) and re.fullmatch(r"[0-9a-f]{64}", meta["nest_binary"]) is not None, "nest_binary must be a SHA-256 in hex")
    t = meta["t_ms"]
    _require(isinstance(t, float) and math.isfinite(t) and abs(t - t_stored_ms) <= 1e-9, f"t_ms must be the stored time {t_stored_ms:g} ms")
    _require(_whole(meta["ranks"], "ranks", 1, n_vp) * _whole(meta["threads"], "threads", 1, n_vp) == n_vp, f"ranks × threads must be the stored n_vp {n_vp}")
    _whole(meta["step_in_interval"], "step_in_interval", 0, 1 << 31)
    slots = _whole(meta["buffer_slots"], "buffer_slots", 1, 1 << 24)
    _require(meta["rng_type"] in RNG_TYPES, f"rng_type must be one of {', '.join(RNG_TYPES)}")
    _require(isinstance(meta["compressed_spikes"], bool), "compressed_spikes must be true or false")
    models = meta["node_models"]
    _require(isinstance(models, dict) and all(m in KIND_OF_MODEL for m in models), f"node_models must name models among {', '.join(KIND_OF_MODEL)}")
    n = sum(_whole(c, f"node_models {m}", 1, n_nodes) for m, c in models.items())
    _require(n <= n_nodes, f"{n} node records for {n_nodes} nodes")
    records = _whole(meta["n_records"], "n_records", 0, 1 << 40)
    _require(records >= n * (HEADER + 1 + N_ARCHIVING + slots), "n_records is too small for its node records")
    out: dict[str, tuple[np.dtype, tuple[int, ...]]] = {"nodes/id": (ID_DTYPE, (n,)), "nodes/offsets": (INT_DTYPE, (n + 1,)), "nodes/records": (FLOAT_DTYPE, (records,))}
    _require(isinstance(meta["stdp"], list), "stdp must be a list")
    seen: set[str] = set()
    for k, e in enumerate(meta["stdp"]):
        _require(isinstance(e, dict) and set(e) == {"model", "count", "runs"}, f"stdp entry {k} must have model, count and runs")
        model = _model_name(e["model"], f"stdp entry {k} model")
        _require(model in tables and model not in seen, f"stdp entry {k}: {model} is not one of the snapshot's synapse tables (or is repeated)")
        seen.add(model)
        # a row per row of the model's synapse table, in its order
        count = _whole(e["count"], f"stdp entry {k} count", tables[model], tables[model])
        runs = _whole(e["runs"], f"stdp entry {k} runs", min(count, 1), count)
        out[f"stdp/{k}/runs"] = (INT_DTYPE, (runs + 1,))
        out |= {f"stdp/{k}/{key}": (FLOAT_DTYPE, (runs,)) for key in STDP_ROW}
    out["rng/text"] = (BYTE_DTYPE, (_whole(meta["rng_bytes"], "rng_bytes", 1, (2 * n_vp + 1) * MAX_RNG_TEXT),))
    out["rng/offsets"] = (INT_DTYPE, (2 * n_vp + 2,))
    out["devices/text"] = (BYTE_DTYPE, (_whole(meta["devices_bytes"], "devices_bytes", 0, 1 << 32),))
    transit = _whole(meta["transit"], "transit", 0, 1 << 40)
    out |= {f"transit/{key}": (ID_DTYPE, (transit,)) for key in TRANSIT}
    _require(isinstance(meta["uncovered"], list), "uncovered must be a list of models")
    for k, name in enumerate(meta["uncovered"]):
        _model_name(name, f"uncovered {k}")
    return out


def _in(values: np.ndarray, lo: int, hi: int, what: str) -> None:
    if len(values):
        _require(int(values.min()) >= lo and int(values.max()) <= hi, f"{what} outside {lo}..{hi}")


def check_hidden(section: HiddenSection, n_nodes: int) -> None:
    """The arrays against the manifest's ``hidden`` object and the network (after reading)."""
    meta, a = section.meta, section.arrays
    n_vp, slots = int(meta["ranks"]) * int(meta["threads"]), int(meta["buffer_slots"])
    ids, offsets, records = a["nodes/id"], a["nodes/offsets"], a["nodes/records"]
    _in(ids, 1, n_nodes, "node ids")
    _require(bool((np.diff(ids) > 0).all()), "node ids must be ascending")
    _require(offsets[0] == 0 and offsets[-1] == len(records) and bool((np.diff(offsets) >= HEADER + 1 + N_ARCHIVING).all()), "node offsets are inconsistent")
    _require(not np.isnan(records).any(), "node records hold NaN")
    starts = offsets[:-1]
    head = np.stack([records[starts + j] for j in range(HEADER)]) if len(ids) else np.zeros((HEADER, 0))
    kind, n_core, n_slots, n_channels, n_history = head
    _require(bool(np.isin(kind, list(MODEL_OF_KIND)).all()), "a node record is of an unknown kind")
    kinds = kind.astype(np.int64)
    core_of = np.zeros(max(MODEL_OF_KIND) + 1)
    channels_of = np.zeros(max(MODEL_OF_KIND) + 1)
    for k, (core, channels) in SHAPE_OF_KIND.items():
        core_of[k], channels_of[k] = core, channels
    # a multisynapse model's shape: its receptor ports (channels − 1), I_const, V_m and the counter
    ports = np.clip(n_channels - 1, 0, MAX_RECEPTORS)
    per_port = np.zeros(max(MODEL_OF_KIND) + 1)
    for k, per in PER_RECEPTOR_OF_KIND.items():
        core_of[k], channels_of[k], per_port[k] = 3, 1, per
    core_of, channels_of = core_of[kinds] + per_port[kinds] * ports, channels_of[kinds] + (per_port[kinds] > 0) * ports
    _require(bool((n_core == core_of).all() and (n_channels == channels_of).all() and (n_channels <= MAX_RECEPTORS + 1).all()), "a node record's header does not fit its kind")
    _require(bool((n_slots == slots).all()), f"a node record's input buffers are not the {slots} slots of buffer_slots")
    _require(bool((n_history >= 0).all() and (n_history == np.floor(n_history)).all() and (n_history <= 1 << 30).all()), "a node record's history length is not a count")
    _require(bool((np.diff(offsets) == HEADER + n_core + N_ARCHIVING + n_slots * n_channels + 4 * n_history).all()), "a node record's length does not fit its header")
    _require(bool((records[starts + HEADER + n_core.astype(np.int64) - 1] >= 0).all()) if len(ids) else True, "a refractory counter is negative")
    # a GSL model integrates each step from its stored step size: one that does not advance
    # would never end the step
    gsl = np.isin(kinds, list(GSL_KINDS))
    steps = records[starts[gsl] + HEADER + n_core[gsl].astype(np.int64) - 3]
    _require(bool((np.isfinite(steps) & (steps > 0)).all()), "a GSL integration step is not a positive number")
    counted = {MODEL_OF_KIND[int(k)]: int(c) for k, c in zip(*np.unique(kinds, return_counts=True))}
    _require(counted == meta["node_models"], "node_models does not count the node records")
    for k, e in enumerate(meta["stdp"]):
        runs = a[f"stdp/{k}/runs"]
        _require(runs[0] == 0 and runs[-1] == e["count"] and bool((np.diff(runs) > 0).all()), f"stdp entry {k}: its runs are inconsistent")
        _require(bool(np.isfinite(a[f"stdp/{k}/kplus"]).all() and not np.isinf(a[f"stdp/{k}/t_lastspike"]).any()), f"stdp entry {k} holds values that are not finite")
    rng_offsets, text = a["rng/offsets"], a["rng/text"]
    _require(rng_offsets[0] == 0 and rng_offsets[-1] == len(text) and bool((np.diff(rng_offsets) > 0).all()), "rng offsets are inconsistent")
    for lo, hi in itertools.pairwise(rng_offsets):
        engine = text[lo:hi].tobytes()
        _require(hi - lo <= MAX_RNG_TEXT and re.fullmatch(rb"(mt19937_64|mt19937)( [0-9]+)+", engine) is not None and engine.split(b" ", 1)[0].decode() == meta["rng_type"], "a random generator's state is damaged")
    devices = a["devices/text"].tobytes()
    _require(re.fullmatch(rb"([0-9]+ [0-9]+ [0-9eE+\-. ]+\n)*", devices) is not None, "the devices' state is damaged")
    for line in devices.splitlines():
        node, vp = (int(x) for x in line.split(b" ", 2)[:2])
        _require(1 <= node <= n_nodes and vp < n_vp, "the devices' state names a node or virtual process the network lacks")
    t = {key: a[f"transit/{key}"] for key in TRANSIT}
    _in(t["source"], 1, n_nodes, "spikes in transit: senders")
    _in(t["lag"], 0, slots - 1, "spikes in transit: lags")
    _in(t["count"], 1, MAX_MULTIPLICITY, "spikes in transit: multiplicities")
    spike = t["source"].astype(np.int64) * slots + t["lag"]
    _require(len(np.unique(spike)) == len(spike), "a spike in transit is there twice (a neuron and lag)")
    _require(bool((np.diff(t["source"].astype(np.int64) % n_vp) >= 0).all()), "spikes in transit must come by virtual process")

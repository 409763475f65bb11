"""Format v1 (einet 0.1: the reference network only), read and converted to a v2 Snapshot.

A v1 file holds the reference network's configuration, V_m of its E and I neurons and its
``e_syn``/``i_syn`` connections; the Poisson drive was implied by the configuration. The
conversion spells all of that out as v2 data (node runs, model calls, the drive as a node with
its connections), so one generic restore serves both versions. The v1 checks are kept: in-degrees
and weight ranges follow from the stored configuration.
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..config import DEFAULT_MODEL
from .h5 import HEADER_TYPES as HEADER_TYPES_V2
from .h5 import check_stored, check_structure, read_attr, read_dataset
from .model import FLOAT_DTYPE, ID_DTYPE, NodeRun, Snapshot, SnapshotError, SynapseTable
from .validate import check_affordable, check_values, require

HEADER_TYPES_V1: dict[str, type] = {**HEADER_TYPES_V2, "config": str, "stored": str, "not_stored": str}
_FIELDS = {"e_syn": ("source", "target", "weight", "delay", "Kplus"), "i_syn": ("source", "target", "weight", "delay")}
_STATIC_DELAY_MS = 1.0  # static_synapse's default delay: the v1 drive was connected with it


@dataclass(frozen=True)
class ConfigV1:
    """The reference network's configuration as v1 files store it."""

    scale: float = 1.0
    n_inh_base: int = 500
    e_to_i_ratio: int = 4
    je_mv: float = 1.0
    g: float = -4.0
    wmax_factor: float = 2.0
    indegree_e: int = 200
    indegree_i: int = 50
    poisson_rate_hz: float = 800.0
    vm_mean_mv: float = -65.0
    vm_std_mv: float = 5.0
    neuron_model: str = "iaf_psc_delta"
    resolution_ms: float = 0.1
    threads: int = 2
    seed: int = 12345
    t_sim_ms: float = 1000.0

    @classmethod
    def from_json(cls, text: str) -> ConfigV1:
        try:
            data = json.loads(text)
        except ValueError:
            raise SnapshotError("invalid network configuration: not JSON") from None
        require(isinstance(data, dict), "invalid network configuration: not a mapping")
        known = {f.name: f for f in fields(cls)}
        unknown = set(data) - set(known)
        require(not unknown, f"invalid network configuration: unknown keys {', '.join(sorted(unknown))[:80]}")
        typed: dict[str, Any] = {}
        for key, value in data.items():
            want = type(getattr(cls(), key))
            if want is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            require(type(value) is want, f"invalid network configuration: {key} must be {want.__name__}")
            if want is float:
                require(math.isfinite(value), f"invalid network configuration: {key} is not finite")
            typed[key] = value
        c = cls(**typed)
        require(c.scale > 0 and 0 < c.n_inh <= 5_000_000 and c.e_to_i_ratio >= 0, "invalid network configuration: population sizes")
        require(c.indegree_e >= 0 and c.indegree_i >= 0, "invalid network configuration: in-degrees must be >= 0")
        require(c.poisson_rate_hz >= 0 and c.vm_std_mv >= 0 and c.wmax_factor > 0 and c.je_mv > 0, "invalid network configuration: rates, JE and Wmax")
        require(c.resolution_ms >= 1e-6, "invalid network configuration: resolution must be positive")
        require(c.neuron_model.isidentifier(), "invalid network configuration: neuron_model is not a model name")
        return c

    @property
    def n_inh(self) -> int:
        return int(round(self.n_inh_base * self.scale))  # noqa: RUF046 - round() of a NumPy float is a NumPy float

    @property
    def n_exc(self) -> int:
        return self.e_to_i_ratio * self.n_inh

    @property
    def n_neurons(self) -> int:
        return self.n_exc + self.n_inh

    def params(self) -> dict[str, Any]:
        """The reference model's parameters (what ``einet.models.brunel_stdp`` takes)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("scale", "threads", "seed", "t_sim_ms")}


def load_v1(h5: h5py.File, path: Path) -> Snapshot:
    raw = {name: read_attr(h5, name, kind) for name, kind in HEADER_TYPES_V1.items()}
    extra = sorted(set(h5.attrs) - set(HEADER_TYPES_V1) - {"header_crc32"})
    require(not extra, f"unexpected attributes {', '.join(extra[:3])}")
    stored_crc = h5.attrs.get("header_crc32")
    text = json.dumps({k: raw[k] for k in HEADER_TYPES_V1}, sort_keys=True).encode()
    require(stored_crc is not None and np.asarray(stored_crc).shape == () and zlib.crc32(text) == int(stored_crc), "header attributes fail their checksum")
    c = ConfigV1.from_json(raw["config"])
    require(math.isfinite(raw["t_stored_ms"]) and raw["t_stored_ms"] >= 0, "t_stored_ms must be a finite time >= 0")
    require(1 <= raw["n_vp"] <= 4096, f"n_vp {raw['n_vp']} out of range")
    require(1 <= raw["seed"] <= 2**31 - 1, f"seed {raw['seed']} is outside NEST's range 1..{2**31 - 1}")
    n_e_syn, n_i_syn = c.n_neurons * c.indegree_e, c.n_neurons * c.indegree_i
    spec: dict[str, tuple[np.dtype, tuple[int, ...]]] = {
        "neurons/E/V_m": (FLOAT_DTYPE, (c.n_exc,)),
        "neurons/I/V_m": (FLOAT_DTYPE, (c.n_inh,)),
        **{f"synapses/e_syn/{n}": (ID_DTYPE if n in ("source", "target") else FLOAT_DTYPE, (n_e_syn,)) for n in _FIELDS["e_syn"]},
        **{f"synapses/i_syn/{n}": (ID_DTYPE if n in ("source", "target") else FLOAT_DTYPE, (n_i_syn,)) for n in _FIELDS["i_syn"]},
    }
    check_structure(h5, set(spec))
    check_affordable(spec)
    check_stored(h5, spec)
    a = {name: read_dataset(h5, name, dt, shape) for name, (dt, shape) in spec.items()}
    _check_v1_values(c, a)
    snap = _convert(c, a, raw, path)
    check_values(snap)
    return snap


def _check_v1_values(c: ConfigV1, a: dict[str, np.ndarray]) -> None:
    for name in ("E", "I"):
        require(bool(np.isfinite(a[f"neurons/{name}/V_m"]).all()), f"V_m of {name} neurons has NaN or infinite values")
    for model, src_range, indegree, (lo, hi) in (
        ("e_syn", (1, c.n_exc), c.indegree_e, (0.0, c.wmax_factor * c.je_mv)),
        ("i_syn", (c.n_exc + 1, c.n_neurons), c.indegree_i, (-np.inf, np.inf)),
    ):
        src, tgt = a[f"synapses/{model}/source"], a[f"synapses/{model}/target"]
        for ids, bounds, what in ((src, src_range, "source"), (tgt, (1, c.n_neurons), "target")):
            if len(ids):
                require(bounds[0] <= int(ids.min()) and int(ids.max()) <= bounds[1], f"{model} {what} ids {int(ids.min())}..{int(ids.max())} outside {bounds[0]}..{bounds[1]}")
        indegrees = np.bincount(tgt, minlength=c.n_neurons + 1)[1:]
        require(bool((indegrees == indegree).all()), f"{model}: every neuron must have in-degree {indegree} (configuration), found {int(indegrees.min())}..{int(indegrees.max())}")
        for n in _FIELDS[model][2:]:
            require(bool(np.isfinite(a[f"synapses/{model}/{n}"]).all()), f"{model} {n} has NaN or infinite values")
        w = a[f"synapses/{model}/weight"]
        if len(w):
            require(lo <= w.min() and w.max() <= hi, f"{model} weights outside [{lo:g}, {hi:g}] mV")
            require(a[f"synapses/{model}/delay"].min() >= c.resolution_ms - 1e-12, f"{model} delays below the resolution {c.resolution_ms} ms")
    k = a["synapses/e_syn/Kplus"]
    require(not len(k) or k.min() >= 0, "e_syn Kplus is negative")


def _convert(c: ConfigV1, a: dict[str, np.ndarray], raw: dict[str, Any], path: Path) -> Snapshot:
    n = c.n_neurons
    neurons = np.arange(1, n + 1, dtype=np.int32)
    tables = []
    for model in ("e_syn", "i_syn"):
        cols = {name: a[f"synapses/{model}/{name}"] for name in _FIELDS[model][2:]}
        tables.append(SynapseTable(model, a[f"synapses/{model}/source"], a[f"synapses/{model}/target"], columns={k: v for k, v in cols.items()}))
    # the drive: one poisson_generator (id n + 1) onto every neuron, as einet 0.1 built it
    tables.append(SynapseTable("static_synapse", np.full(n, n + 1, dtype=np.int32), neurons, uniform={"weight": c.je_mv, "delay": _STATIC_DELAY_MS}))
    return Snapshot(
        nodes=(
            NodeRun(1, c.n_exc, c.neuron_model, columns={"V_m": a["neurons/E/V_m"]}),
            NodeRun(c.n_exc + 1, c.n_inh, c.neuron_model, columns={"V_m": a["neurons/I/V_m"]}),
            NodeRun(n + 1, 1, "poisson_generator", uniform={"rate": c.poisson_rate_hz}),
        ),
        synapses=tuple(tables),
        groups={"E": neurons[: c.n_exc], "I": neurons[c.n_exc :]},
        kernel={"resolution": c.resolution_ms},
        kernel_set=("resolution",),
        model_calls=(
            {"op": "CopyModel", "model": "e_syn", "base": "stdp_synapse_hom", "params": {"Wmax": c.wmax_factor * c.je_mv}},
            {"op": "CopyModel", "model": "i_syn", "base": "static_synapse", "params": {}},
        ),
        model=DEFAULT_MODEL,
        scale=c.scale,
        params=c.params(),
        t_stored_ms=raw["t_stored_ms"],
        seed=raw["seed"],
        n_vp=raw["n_vp"],
        t_sim_ms=c.t_sim_ms,
        not_stored=tuple(json.loads(raw["not_stored"])) if _is_text_list(raw["not_stored"]) else (),
        nest_version=raw["nest_version"],
        einet_version=raw["einet_version"],
        created=raw["created"],
        format_version=1,
        source_path=str(path),
    )


def _is_text_list(text: str) -> bool:
    try:
        value = json.loads(text)
    except ValueError:
        return False
    return isinstance(value, list) and all(isinstance(v, str) for v in value)

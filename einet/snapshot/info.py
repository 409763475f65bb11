"""What ``einet inspect`` reports about a snapshot file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .hidden import stored_lines
from .model import FORMAT, STORED, NodeRun, Snapshot


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
    hidden: dict[str, Any] | None = None
    """The hidden section's description (its manifest object; None: none stored)."""
    stored: list[str] = field(default_factory=lambda: list(STORED))

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
            "stored": self.stored,
            "not_stored": self.not_stored,
            "hidden": self.hidden,
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
            stored_keys=stored_keys_of(snap),
            recorders=[recorder_of(run) for run in snap.nodes if "record_to" in run.keys()],
            hidden=dict(snap.hidden.meta) if snap.hidden is not None else None,
            stored=stored_lines(snap.hidden),
        )


def recorder_of(run: NodeRun) -> dict[str, Any]:
    """A recorder run's stored backend and label: one value when every node has the same."""

    def stored(key: str) -> Any:
        if key not in run.keys():
            return None
        values = run.distinct(key)
        return values[0] if len(values) == 1 else list(run.values_of(key))

    return {"model": run.model, "first_id": run.first_id, "count": run.count, "record_to": stored("record_to"), "label": stored("label")}


def stored_keys_of(snap: Snapshot) -> dict[str, dict[str, dict[str, list[str]]]]:
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

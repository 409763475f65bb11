"""A snapshot as a JSON manifest plus named numpy arrays: what the HDF5 file holds and what
the isolated reader sends back (:mod:`einet.wire`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .hidden import HiddenSection, stored_lines
from .model import Column, NodeRun, Snapshot, SynapseTable


def to_parts(snap: Snapshot) -> tuple[dict[str, Any], dict[str, Column]]:
    """The manifest (JSON) and the named arrays it describes (a packed column as it is)."""
    arrays: dict[str, Column] = {}
    nodes = []
    for k, run in enumerate(snap.nodes):
        entry: dict[str, Any] = {"first_id": run.first_id, "count": run.count, "model": run.model, "uniform": run.uniform, "columns": {}, "ragged": {}, "varying": run.varying, "spatial": run.spatial}
        for key, col in run.columns.items():
            arrays[f"nodes/{k}/{key}"] = col
            entry["columns"][key] = col.dtype.str
        for key, (values, offsets) in run.ragged.items():
            arrays[f"nodes/{k}/ragged/{key}/values"] = values
            arrays[f"nodes/{k}/ragged/{key}/offsets"] = offsets
            entry["ragged"][key] = [values.dtype.str, len(values)]
        if run.positions is not None:
            arrays[f"nodes/{k}/positions"] = run.positions
        nodes.append(entry)
    synapses = []
    for k, table in enumerate(snap.synapses):
        arrays[f"synapses/{k}/source"] = table.source
        arrays[f"synapses/{k}/target"] = table.target
        for key, column in table.columns.items():
            arrays[f"synapses/{k}/{key}"] = column
        synapses.append({"model": table.model, "count": len(table), "uniform": table.uniform, "columns": {key: column.dtype.str for key, column in table.columns.items()}})
    groups = []
    for k, (name, ids) in enumerate(snap.groups.items()):
        arrays[f"groups/{k}"] = ids
        groups.append({"name": name, "count": len(ids)})
    manifest = {
        "header": snap.header(),
        "model": {"ref": snap.model, "scale": snap.scale, "params": snap.params, "t_sim_ms": snap.t_sim_ms},
        "kernel": {"values": snap.kernel, "set": list(snap.kernel_set)},
        "model_calls": list(snap.model_calls),
        "nodes": nodes,
        "synapses": synapses,
        "groups": groups,
        "stored": stored_lines(snap.hidden),
        "not_stored": list(snap.not_stored),
        "protocol": [dict(c) for c in snap.protocol],
        "hidden": snap.hidden.meta if snap.hidden is not None else None,
    }
    if snap.hidden is not None:
        arrays |= {f"hidden/{name}": values for name, values in snap.hidden.arrays.items()}
    return manifest, arrays


def from_parts(manifest: dict[str, Any], arrays: Mapping[str, Any], source_path: str = "") -> Snapshot:
    """Inverse of :func:`to_parts` (the manifest must have been validated; ``arrays`` are
    numpy arrays, and connection columns may be packed)."""
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
    return Snapshot(
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
        hidden=HiddenSection(dict(hidden), {name[len("hidden/") :]: values for name, values in arrays.items() if name.startswith("hidden/")}) if (hidden := manifest.get("hidden")) else None,  # none before version 4
        source_path=source_path,
    )

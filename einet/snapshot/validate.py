"""Validation of a snapshot: its manifest before any data is read, its values after.

Both are pure functions of the data (no NEST, no h5py): the reader runs them on every file
before the kernel is touched, and the writer on every captured state before a file is
published, so einet never writes what it would refuse to read.
"""

from __future__ import annotations

import json
import math
import os
import re
from typing import Any

import numpy as np

from ..protocol import MAX_TIME_MS
from .hidden import check_hidden, hidden_arrays
from .manifest import to_parts
from .model import ARRAY_DTYPES, BOOL_DTYPE, FLOAT_DTYPE, FORMAT, ID_DTYPE, INT_DTYPE, READABLE_VERSIONS, Snapshot, SnapshotError

MAX_NODES = 200_000_000
MAX_NAME = 200
MAX_THREADS = 4096
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,99}$")


_NODE_RUN_FIELDS = {"first_id", "count", "model", "uniform", "columns", "ragged", "varying", "spatial"}


def require(ok: bool | np.bool_, message: str) -> None:
    if not ok:
        raise SnapshotError(message)


def _name(value: Any, what: str) -> str:
    require(isinstance(value, str) and 0 < len(value) <= MAX_NAME and value.isprintable(), f"{what} must be a printable name of at most {MAX_NAME} characters")
    return value


def _key(value: Any, what: str) -> str:
    require(isinstance(value, str) and bool(_KEY.match(value)), f"{what}: {str(value)[:40]!r} is not a parameter name")
    return value


def _dict(value: Any, what: str) -> dict[str, Any]:
    require(isinstance(value, dict), f"{what} must be a mapping")
    return value


def _list(value: Any, what: str) -> list[Any]:
    require(isinstance(value, list), f"{what} must be a list")
    return value


def _int(value: Any, what: str, lo: int, hi: int) -> int:
    require(isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi, f"{what} must be a whole number in [{lo}, {hi}]")
    return value


def _no_nan(value: Any, what: str) -> None:
    """JSON values may hold inf (NEST uses it, e.g. a device's stop) but never NaN."""
    if isinstance(value, float):
        require(not math.isnan(value), f"{what} is NaN")
    elif isinstance(value, list):
        for v in value:
            _no_nan(v, what)
    elif isinstance(value, dict):
        for v in value.values():
            _no_nan(v, what)


def check_header(h: Any) -> dict[str, Any]:
    h = _dict(h, "header")
    require(h.get("format") == FORMAT, "not an einet snapshot (no 'format' attribute)")
    version = h.get("format_version")
    require(version in READABLE_VERSIONS[1:], f"snapshot format_version {version} is not supported (this einet reads {', '.join(map(str, READABLE_VERSIONS))})")
    for key in ("einet_version", "nest_version", "created"):
        require(isinstance(h.get(key), str) and len(h[key]) < 200, f"attribute {key!r} has the wrong type")
    t = h.get("t_stored_ms")
    require(isinstance(t, float) and math.isfinite(t) and 0 <= t <= MAX_TIME_MS, f"t_stored_ms must be a time in [0, {MAX_TIME_MS:g}] ms")
    _int(h.get("seed"), "seed", 1, 2**31 - 1)
    _int(h.get("n_vp"), "n_vp", 1, MAX_THREADS)
    return h


def expected_arrays(manifest: dict[str, Any]) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
    """Check the manifest's structure and return every array it declares, with dtype and shape.

    Runs before any array is read: a hostile manifest cannot make the reader allocate more
    than it declares, and the declared total is checked against memory by the caller.
    """
    m = _dict(manifest, "manifest")
    version = check_header(m.get("header"))["format_version"]
    want_keys = {"header", "model", "kernel", "model_calls", "nodes", "synapses", "groups", "stored", "not_stored", *(("protocol",) if version >= 3 else ()), *(("hidden",) if version >= 4 else ())}
    require(set(m) == want_keys, f"manifest keys differ from the format's: {', '.join(sorted(set(m) ^ want_keys))[:80]}")
    for k, change in enumerate(_list(m.get("protocol", []), "protocol")):
        check_change(change, f"protocol change {k}")
    model = _dict(m["model"], "model")
    require(set(model) == {"ref", "scale", "params", "t_sim_ms"}, "model record must have ref, scale, params and t_sim_ms")
    t_sim = model["t_sim_ms"]
    require(isinstance(t_sim, (int, float)) and not isinstance(t_sim, bool) and math.isfinite(t_sim) and 0 < t_sim <= MAX_TIME_MS, f"t_sim_ms must be a positive time up to {MAX_TIME_MS:g} ms")
    require(isinstance(model["ref"], str) and 0 < len(model["ref"]) <= 4096 and model["ref"].isprintable(), "model reference must be printable text")
    require(isinstance(model["scale"], (int, float)) and not isinstance(model["scale"], bool) and math.isfinite(model["scale"]) and model["scale"] > 0, "scale must be positive")
    for key, v in _dict(model["params"], "model parameters").items():
        require(isinstance(key, str) and key.isidentifier(), "model parameter names must be identifiers")
        _no_nan(v, f"model parameter {key}")
        require(not isinstance(v, float) or math.isfinite(v), f"model parameter {key} is not finite")
    kernel = _dict(m["kernel"], "kernel")
    require(set(kernel) == {"values", "set"}, "kernel record must have values and set")
    values = _dict(kernel["values"], "kernel values")
    res = values.get("resolution")
    require(isinstance(res, float) and math.isfinite(res) and 1e-6 <= res <= 1000, "kernel resolution must be a time step in ms")
    for key, v in values.items():
        _key(key, "kernel setting")
        _no_nan(v, f"kernel {key}")
    for key in _list(kernel["set"], "kernel settings"):
        require(key in values, f"kernel setting {key!r} has no value")
    for call in _list(m["model_calls"], "model calls"):
        call = _dict(call, "model call")
        require(call.get("op") in ("CopyModel", "SetDefaults"), "model calls are CopyModel or SetDefaults")
        _name(call.get("model"), "model call's model")
        if call["op"] == "CopyModel":
            _name(call.get("base"), "CopyModel base")
        require(set(call) == ({"op", "model", "base", "params"} if call["op"] == "CopyModel" else {"op", "model", "params"}), "a model call has the wrong fields")
        for key, v in _dict(call["params"], "model call parameters").items():
            _key(key, "model default")
            _no_nan(v, f"default {key}")
    for text in (*_list(m["stored"], "stored"), *_list(m["not_stored"], "not_stored")):
        require(isinstance(text, str), "stored/not_stored must be lists of text")

    arrays: dict[str, tuple[np.dtype, tuple[int, ...]]] = {}
    next_id = 1
    # a network may have a run per node: names and keys seen once are not checked again, and
    # messages are made only for a refusal
    models_seen: set[str] = set()
    keys_seen: set[str] = set()
    for k, e in enumerate(_list(m["nodes"], "nodes")):
        e = _dict(e, "node run")
        require(e.keys() == _NODE_RUN_FIELDS, f"node run {k} has the wrong fields")
        if e["first_id"] != next_id:
            require(False, f"node run {k} starts at id {e['first_id']}, expected {next_id} (runs must cover ids 1..n in order)")
        count = e["count"]
        if not (type(count) is int and 1 <= count <= MAX_NODES):
            _int(count, f"node run {k} count", 1, MAX_NODES)
        next_id += count
        require(next_id - 1 <= MAX_NODES, f"more than {MAX_NODES} nodes")
        if e["model"] not in models_seen:
            models_seen.add(_name(e["model"], f"node run {k} model"))
        uniform = e["uniform"] if type(e["uniform"]) is dict else _dict(e["uniform"], f"node run {k} uniform")
        for key, v in uniform.items():
            if key not in keys_seen:
                keys_seen.add(_key(key, f"node run {k}"))
            if not ((type(v) is float and v == v) or type(v) in (int, str, bool) or v is None):
                _no_nan(v, f"node run {k} {key}")
        for key, dt in (e["columns"] if type(e["columns"]) is dict else _dict(e["columns"], f"node run {k} columns")).items():
            if key not in keys_seen:
                keys_seen.add(_key(key, f"node run {k}"))
            require(dt in (FLOAT_DTYPE.str, INT_DTYPE.str, BOOL_DTYPE.str), f"node run {k} {key} has dtype {dt}")
            arrays[f"nodes/{k}/{key}"] = (ARRAY_DTYPES[dt], (count,))
        for key, spec in (e["ragged"] if type(e["ragged"]) is dict else _dict(e["ragged"], f"node run {k} ragged")).items():
            if key not in keys_seen:
                keys_seen.add(_key(key, f"node run {k}"))
            require(isinstance(spec, list) and len(spec) == 2 and spec[0] in (FLOAT_DTYPE.str, INT_DTYPE.str), f"node run {k} {key} has a bad ragged spec")
            total = _int(spec[1], f"node run {k} {key} length", 0, 2**40)
            arrays[f"nodes/{k}/ragged/{key}/values"] = (ARRAY_DTYPES[spec[0]], (total,))
            arrays[f"nodes/{k}/ragged/{key}/offsets"] = (INT_DTYPE, (count + 1,))
        for key, vals in (e["varying"] if type(e["varying"]) is dict else _dict(e["varying"], f"node run {k} varying")).items():
            if key not in keys_seen:
                keys_seen.add(_key(key, f"node run {k}"))
            require(isinstance(vals, list) and len(vals) == count, f"node run {k} {key} needs one value per node")
            _no_nan(vals, f"node run {k} {key}")
        if e["columns"] or e["ragged"] or e["varying"]:
            kinds = [set(e["uniform"]), set(e["columns"]), set(e["ragged"]), set(e["varying"])]
            dup = {key for i, a in enumerate(kinds) for b in kinds[i + 1 :] for key in a & b}
            require(not dup, f"node run {k} stores {sorted(dup)[:1]} twice")
            require(not ({"positions", "ragged"} & set(e["columns"])), f"node run {k}: a column may not be named positions or ragged")
        if e["spatial"] is not None:
            sp = _dict(e["spatial"], f"node run {k} spatial")
            require(sp.get("kind") in ("free", "grid"), f"node run {k}: spatial kind must be free or grid")
            dims = _int(sp.get("dims"), f"node run {k} dimensions", 2, 3)
            for key in ("extent", "center"):
                v = sp.get(key)
                require(isinstance(v, list) and len(v) == dims and all(isinstance(x, (int, float)) and math.isfinite(x) for x in v), f"node run {k}: spatial {key} must be {dims} finite numbers")
            require(isinstance(sp.get("edge_wrap"), bool), f"node run {k}: edge_wrap must be true or false")
            if sp["kind"] == "grid":
                shape = sp.get("shape")
                require(isinstance(shape, list) and len(shape) == dims and all(isinstance(x, int) and x > 0 for x in shape) and int(np.prod(shape)) == count, f"node run {k}: grid shape must multiply to its {count} nodes")
            arrays[f"nodes/{k}/positions"] = (FLOAT_DTYPE, (count, dims))
    n_nodes = next_id - 1
    require(n_nodes >= 1, "the snapshot holds no nodes")
    for k, e in enumerate(_list(m["synapses"], "synapses")):
        e = _dict(e, "synapse table")
        require(set(e) == {"model", "count", "uniform", "columns"}, f"synapse table {k} has the wrong fields")
        _name(e["model"], f"synapse table {k} model")
        count = _int(e["count"], f"synapse table {k} count", 1, 2**40)
        arrays[f"synapses/{k}/source"] = (ID_DTYPE, (count,))
        arrays[f"synapses/{k}/target"] = (ID_DTYPE, (count,))
        for key, v in _dict(e["uniform"], f"synapse table {k} uniform").items():
            _key(key, f"synapse table {k}")
            require(isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v), f"synapse table {k} {key} must be a number")
        for key, dt in _dict(e["columns"], f"synapse table {k} columns").items():
            _key(key, f"synapse table {k}")
            require(key not in ("source", "target") and key not in e["uniform"], f"synapse table {k} stores {key} twice")
            require(dt in (FLOAT_DTYPE.str, INT_DTYPE.str), f"synapse table {k} {key} has dtype {dt}")
            arrays[f"synapses/{k}/{key}"] = (ARRAY_DTYPES[dt], (count,))
    models = [e["model"] for e in m["synapses"]]
    require(len(set(models)) == len(models), "a synapse model has two tables")
    names = []
    for k, e in enumerate(_list(m["groups"], "groups")):
        e = _dict(e, "group")
        require(set(e) == {"name", "count"}, f"group {k} has the wrong fields")
        names.append(_name(e["name"], f"group {k} name"))
        arrays[f"groups/{k}"] = (ID_DTYPE, (_int(e["count"], f"group {k} count", 1, n_nodes),))
    require(len(set(names)) == len(names), "two populations have the same name")
    if m.get("hidden") is not None:
        h = m["header"]
        tables = {e["model"]: e["count"] for e in m["synapses"]}
        for name, spec in hidden_arrays(m["hidden"], t_stored_ms=h["t_stored_ms"], n_vp=h["n_vp"], n_nodes=n_nodes, tables=tables).items():
            arrays[f"hidden/{name}"] = spec
    return arrays


def check_change(change: Any, what: str) -> None:
    """One protocol change still to come: ``{"t_ms", "target", "key", "value"}``."""
    from ..protocol import Change, ProtocolError

    require(isinstance(change, dict) and set(change) == {"t_ms", "target", "key", "value"}, f"{what} must have t_ms, target, key and value")
    _name(change["target"], f"{what} target")
    try:
        Change.from_dict(change)
    except ProtocolError as exc:
        raise SnapshotError(f"{what}: {exc}") from None


READ_PEAK = 2.1
"""Memory a read takes at its peak, per byte of declared data: the reader child holds the arrays
and writes them into its answer (2.0, measured with ``einet inspect`` of a 687 MiB snapshot:
1.41 GiB at the peak beyond Python's own), plus a margin; the caller maps the answer without
a copy once the child is gone."""


def declared_bytes(arrays: dict[str, tuple[np.dtype, tuple[int, ...]]]) -> int:
    return sum(int(np.prod(shape)) * dt.itemsize for dt, shape in arrays.values())


def check_affordable(arrays: dict[str, tuple[np.dtype, tuple[int, ...]]]) -> None:
    """Reading the declared data must fit, at its peak (:data:`READ_PEAK`), in half the
    machine's physical memory."""
    nbytes = declared_bytes(arrays)
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):  # pragma: no cover - non-POSIX
        return
    require(nbytes * READ_PEAK < physical // 2, f"snapshot declares {nbytes / 2**30:.1f} GiB of data: reading it would take {nbytes * READ_PEAK / 2**30:.1f} GiB, more than memory allows")


def check_values(snap: Snapshot) -> None:
    """Values against each other: ids in range, offsets consistent, numbers not NaN, delays
    at least the resolution, positions finite."""
    n = snap.n_nodes
    res = snap.resolution_ms
    for run in snap.nodes:
        for key, col in run.columns.items():
            if col.dtype == FLOAT_DTYPE:
                require(not np.isnan(col).any(), f"{run.model} {key} has NaN values")
        for key, (values, offsets) in run.ragged.items():
            require(len(offsets) == run.count + 1 and offsets[0] == 0 and offsets[-1] == len(values) and bool((np.diff(offsets) >= 0).all()), f"{run.model} {key}: offsets are inconsistent")
            if values.dtype == FLOAT_DTYPE:
                require(not np.isnan(values).any(), f"{run.model} {key} has NaN values")
        if run.positions is not None:
            require(bool(np.isfinite(run.positions).all()), f"positions of {run.model} nodes are not finite")
    for t in snap.synapses:
        for what, column in (("source", t.source), ("target", t.target)):
            ids = np.asarray(column)
            if len(ids):
                lo, hi = int(ids.min()), int(ids.max())
                require(lo >= 1 and hi <= n, f"{t.model} {what} ids {lo}..{hi} outside 1..{n}")
        for key, packed in t.columns.items():
            col = np.asarray(packed)
            if col.dtype == FLOAT_DTYPE:
                require(not np.isnan(col).any(), f"{t.model} {key} has NaN values")
                if key in ("weight", "delay"):
                    require(bool(np.isfinite(col).all()), f"{t.model} {key} has infinite values")
        for key, v in t.uniform.items():
            if key in ("weight", "delay"):
                require(math.isfinite(v), f"{t.model} {key} is not finite")
        if len(t) and ("delay" in t.columns or "delay" in t.uniform):
            require(float(np.min(t.delay)) >= res - 1e-9, f"{t.model} delays below the resolution {res} ms")
    for name, ids in snap.groups.items():
        require(len(ids) > 0 and int(ids.min()) >= 1 and int(ids.max()) <= n, f"population {name!r} has ids outside 1..{n}")
        require(bool((np.diff(ids) > 0).all()), f"population {name!r} ids must be sorted and unique")
    if snap.hidden is not None:
        check_hidden(snap.hidden, n)


def json_text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, allow_nan=True)


def validate_snapshot(snap: Snapshot) -> None:
    """The checks a reader applies, on an in-memory snapshot (raises :class:`SnapshotError`)."""
    manifest, arrays = to_parts(snap)
    for name, (dtype, shape) in expected_arrays(manifest).items():
        if name.startswith("hidden/"):  # made by einet from the accessor's arrays: as declared
            require(arrays[name].dtype == dtype and arrays[name].shape == shape, f"{name} is not the {dtype} {shape} its manifest declares")
    check_values(snap)

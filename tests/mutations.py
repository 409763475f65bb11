"""Damaged and hostile snapshot files, made from a real one (shared by tests and `make fuzz`)."""

from __future__ import annotations

import json
import pickle
import random
import shutil
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from einet.snapshot import Snapshot, SnapshotError, open_snapshot
from einet.snapshot.h5 import HEADER_TYPES, crc, header_crc, object_names
from einet.snapshot.manifest import to_parts


def same_snapshot(a: Snapshot, b: Snapshot) -> bool:
    """Equal manifests (everything but arrays, metadata included) and equal arrays."""
    ma, aa = to_parts(a)
    mb, ab = to_parts(b)
    if json.dumps(ma, sort_keys=True) != json.dumps(mb, sort_keys=True) or aa.keys() != ab.keys():
        return False
    return all(aa[k].dtype == ab[k].dtype and aa[k].shape == ab[k].shape and np.array_equal(aa[k], ab[k]) for k in aa)


def verdict(path: Path, original: Snapshot, timeout_s: float = 5.0) -> str:
    """'refused' (one-line SnapshotError), 'intact' (opened and identical); anything else raises.

    A few damaged files make libhdf5 loop forever; the reader's deadline turns those into
    refusals (a tiny file parses in milliseconds, so 5 s is generous)."""
    try:
        snap = open_snapshot(path, timeout_s=timeout_s)
    except SnapshotError as exc:
        message = str(exc)
        assert message and "\n" not in message, f"not a one-line error: {message!r}"
        if "did not finish in time" in message:
            return "refused (libhdf5 looped; killed)"
        if "crashed" in message:
            return "refused (libhdf5 crashed the reader)"
        return "refused"
    assert same_snapshot(snap, original), "a damaged file was accepted with different content"
    return "intact"


# -- byte-level damage ---------------------------------------------------------------------
def truncated(data: bytes, offset: int) -> bytes:
    return data[:offset]


def flipped(data: bytes, bits: list[int]) -> bytes:
    out = bytearray(data)
    for bit in bits:
        out[(bit // 8) % len(out)] ^= 1 << (bit % 8)
    return bytes(out)


def overwritten(data: bytes, offset: int, junk: bytes) -> bytes:
    offset %= max(1, len(data))
    return data[:offset] + junk + data[offset + len(junk) :]


def random_byte_mutation(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    kind = rng.choice(["truncate", "flip", "overwrite"])
    if kind == "truncate":
        return kind, truncated(data, rng.randrange(len(data)))
    if kind == "flip":
        return kind, flipped(data, [rng.randrange(len(data) * 8) for _ in range(rng.randint(1, 8))])
    return kind, overwritten(data, rng.randrange(len(data)), rng.randbytes(rng.randint(1, 64)))


# -- structural damage (a valid HDF5 file with the wrong content) ---------------------------
def _fix_checksums(h5: h5py.File) -> None:
    """Recompute every checksum, so only the structural or value checks can object."""

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and obj.shape is not None and not obj.is_virtual and not obj.external:
            obj.attrs["crc32"] = np.uint32(zlib.crc32(np.ascontiguousarray(obj[()]).tobytes()))

    h5.visititems(visit)
    attrs = {}
    for k in HEADER_TYPES:
        if k in h5.attrs:
            v = h5.attrs[k]
            attrs[k] = v.decode() if isinstance(v, bytes) else (v.item() if isinstance(v, np.generic) else v)
    if set(attrs) == set(HEADER_TYPES) and "manifest" in h5:
        h5.attrs["header_crc32"] = np.uint32(header_crc(attrs, crc(h5["manifest"][()]), object_names(h5)))


def _replace(h5: h5py.File, name: str, values: np.ndarray) -> None:
    del h5[name]
    h5.create_dataset(name, data=values)


def _manifest_of(h5: h5py.File) -> dict[str, Any]:
    return json.loads(h5["manifest"][()].tobytes())


def _syn(h5: h5py.File, model: str) -> str:
    """The dataset folder of a synapse model's table."""
    models = [t["model"] for t in _manifest_of(h5)["synapses"]]
    return f"synapses/{models.index(model)}"


def _set(name: str, fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[h5py.File], None]:
    def tamper(h5: h5py.File) -> None:
        path = name.replace("E_SYN", _syn(h5, "e_syn"))
        _replace(h5, path, fn(h5[path][()]))

    return tamper


def _manifest(fn: Callable[[dict[str, Any], h5py.File], None]) -> Callable[[h5py.File], None]:
    def tamper(h5: h5py.File) -> None:
        m = _manifest_of(h5)
        fn(m, h5)
        _replace(h5, "manifest", np.frombuffer(json.dumps(m).encode(), dtype=np.uint8))

    return tamper


def _e_syn(m: dict[str, Any]) -> dict[str, Any]:
    return next(t for t in m["synapses"] if t["model"] == "e_syn")


def _poke(name: str, index: int, value: float) -> Callable[[h5py.File], None]:
    def fn(a: np.ndarray) -> np.ndarray:
        a = a.copy()
        a[index] = value
        return a

    return _set(name, fn)


def _transit(h5: h5py.File, source: list[int], lag: list[int], count: list[int]) -> None:
    """The hidden section's spikes in transit replaced by these (declared in the manifest)."""
    _manifest(lambda m, _: m["hidden"].__setitem__("transit", len(source)))(h5)
    for key, values in (("source", source), ("lag", lag), ("count", count)):
        _replace(h5, f"hidden/transit/{key}", np.array(values, dtype="<i4"))


def _external(h5: h5py.File) -> None:
    """The weights' bytes moved to another file (e.g. /dev/zero): never followed."""
    path = _syn(h5, "e_syn") + "/weight"
    n = h5[path].shape[0]
    del h5[path]
    h5.create_dataset(path, shape=(n,), dtype="<f8", external=[("/dev/zero", 0, n * 8)])


def _virtual(h5: h5py.File) -> None:
    path = _syn(h5, "e_syn") + "/weight"
    n = h5[path].shape[0]
    h5.create_dataset("scratch", data=h5[path][()])
    del h5[path]
    layout = h5py.VirtualLayout(shape=(n,), dtype="<f8")
    layout[:] = h5py.VirtualSource(h5["scratch"])
    h5.create_virtual_dataset(path, layout)
    del h5["scratch"]


STRUCTURAL: dict[str, Callable[[h5py.File], None]] = {
    "not an einet file": lambda h5: h5.attrs.__setitem__("format", "other"),
    "future format version": lambda h5: h5.attrs.__setitem__("format_version", 5),
    "missing dataset": lambda h5: h5.__delitem__(_syn(h5, "e_syn") + "/Kplus"),
    "missing manifest": lambda h5: h5.__delitem__("manifest"),
    "extra dataset": lambda h5: h5.create_dataset(_syn(h5, "e_syn") + "/evil", data=np.zeros(3)),
    "extra attribute": lambda h5: h5.attrs.__setitem__("evil", "x"),
    "wrong dtype": _set("E_SYN/weight", lambda a: a.astype(np.float32)),
    "wrong shape": _set("E_SYN/target", lambda a: a[:-1]),
    "id out of range": _poke("E_SYN/target", 0, 10**6),
    "NaN V_m": _set("nodes/0/V_m", lambda a: np.where(np.arange(len(a)) == 0, np.nan, a)),
    "NaN weight": _poke("E_SYN/weight", 0, np.nan),
    "infinite weight": _poke("E_SYN/weight", 0, np.inf),
    "NaN Kplus": _poke("E_SYN/Kplus", 0, np.nan),
    "external storage": _external,
    "virtual dataset": _virtual,
    "manifest not JSON": lambda h5: _replace(h5, "manifest", np.frombuffer(b"{not json", dtype=np.uint8)),
    "manifest extra key": _manifest(lambda m, h5: m.__setitem__("evil", 1)),
    "manifest disagrees with attributes": _manifest(lambda m, h5: m["header"].__setitem__("seed", 7)),
    "node runs not contiguous": _manifest(lambda m, h5: m["nodes"][1].__setitem__("first_id", m["nodes"][1]["first_id"] + 1)),
    "count does not match the data": _manifest(lambda m, h5: _e_syn(m).__setitem__("count", _e_syn(m)["count"] - 1)),
    "sizes beyond memory": _manifest(lambda m, h5: _e_syn(m).__setitem__("count", 10**12)),
    "NaN delay": _manifest(lambda m, h5: _e_syn(m)["uniform"].__setitem__("delay", float("nan"))),
    "delay below resolution": _manifest(lambda m, h5: _e_syn(m)["uniform"].__setitem__("delay", 0.001)),
    "bad parameter name": _manifest(lambda m, h5: m["nodes"][0]["uniform"].__setitem__("a b", 1.0)),
    "seed outside NEST's range": lambda h5: (h5.attrs.__setitem__("seed", 0), _manifest(lambda m, _: m["header"].__setitem__("seed", 0))(h5)),
    "population ids out of range": _set("groups/0", lambda a: a + 10**6),
    "two tables for one model": _manifest(lambda m, h5: m["synapses"].__setitem__(1, dict(m["synapses"][1], model=m["synapses"][0]["model"]))),
    # the hidden section (format 4): whatever reaches the C++ writer must have passed these
    "hidden: a NaN in a node record": _poke("hidden/nodes/records", 8, np.nan),
    "hidden: records of the wrong dtype": _set("hidden/nodes/records", lambda a: a.astype(np.float32)),
    "hidden: records shorter than declared": _set("hidden/nodes/records", lambda a: a[:-1]),
    "hidden: offsets past the records": _set("hidden/nodes/offsets", lambda a: a * 2),
    "hidden: a record of an unknown kind": _poke("hidden/nodes/records", 0, 99.0),
    "hidden: a record longer than its header says": _poke("hidden/nodes/records", 4, 1e6),
    "hidden: a node id out of range": _poke("hidden/nodes/id", 0, 10**6),
    "hidden: node ids not ascending": _set("hidden/nodes/id", lambda a: a[::-1].copy()),
    "hidden: an infinite t_lastspike": _poke("hidden/stdp/0/t_lastspike", 0, np.inf),
    "hidden: a NaN Kplus": _poke("hidden/stdp/0/kplus", 0, np.nan),
    "hidden: STDP runs that do not cover the table": _set("hidden/stdp/0/runs", lambda a: a - 1),
    "hidden: a damaged random generator": _poke("hidden/rng/text", 20, ord("x")),
    "hidden: rng offsets out of order": _set("hidden/rng/offsets", lambda a: a[::-1].copy()),
    "hidden: its own version from the future": _manifest(lambda m, h5: m["hidden"].__setitem__("version", m["hidden"]["version"] + 1)),
    "hidden: more ranks than virtual processes": _manifest(lambda m, h5: m["hidden"].__setitem__("ranks", 2)),
    "hidden: spikes in transit not by virtual process": lambda h5: _transit(h5, [3, 4], [0, 0], [1, 1]),  # 2 virtual processes
    "hidden: a spike in transit twice": lambda h5: _transit(h5, [3, 3], [2, 2], [1, 1]),
    "hidden: a spike in transit of multiplicity 0": lambda h5: _transit(h5, [3, 7], [2, 0], [1, 0]),
    "hidden: a spike in transit from no node": lambda h5: _transit(h5, [3, 10**6], [2, 0], [1, 1]),
    "hidden: a NEST binary that is no hash": _manifest(lambda m, h5: m["hidden"].__setitem__("nest_binary", "../../etc/passwd")),
    "hidden: another time than the stored one": _manifest(lambda m, h5: m["hidden"].__setitem__("t_ms", m["hidden"]["t_ms"] + 1.0)),
    "hidden: more threads than virtual processes": _manifest(lambda m, h5: m["hidden"].__setitem__("threads", 64)),
    "hidden: more STDP rows than connections": _manifest(lambda m, h5: m["hidden"]["stdp"][0].__setitem__("count", 10**9)),
    "hidden: fewer STDP rows than connections": _manifest(lambda m, h5: m["hidden"]["stdp"][0].__setitem__("count", m["hidden"]["stdp"][0]["count"] - 1)),
    "hidden: a node model without an accessor": _manifest(lambda m, h5: m["hidden"]["node_models"].__setitem__("mat2_psc_exp", 1)),
    "hidden: an extra key": _manifest(lambda m, h5: m["hidden"].__setitem__("evil", 1)),
    "hidden: in a format 3 file": lambda h5: (h5.attrs.__setitem__("format_version", 3), _manifest(lambda m, _: m["header"].__setitem__("format_version", 3))(h5)),
}
"""Damage einet must refuse when opening the file (checksums made consistent again)."""


def _run_of(m: dict, model: str) -> dict:  # type: ignore[type-arg]
    return next(run for run in m["nodes"] if run["model"] == model)


def _into_generator(h5: h5py.File) -> None:
    m = _manifest_of(h5)
    _poke("E_SYN/target", _e_syn(m)["count"] // 2, _run_of(m, "poisson_generator")["first_id"])(h5)  # a middle row


RESTORE_REFUSED: dict[str, Callable[[h5py.File], None]] = {
    "unknown node model": _manifest(lambda m, h5: m["nodes"][0].__setitem__("model", "no_such_neuron")),
    "device as a neuron model": _manifest(lambda m, h5: m["nodes"][0].__setitem__("model", "spike_recorder")),
    "unknown parameter": _manifest(lambda m, h5: m["nodes"][0]["uniform"].__setitem__("evil", 1.0)),
    "unknown synapse property": _manifest(lambda m, h5: _e_syn(m)["uniform"].__setitem__("evil", 1.0)),
    "CopyModel of an unknown base": _manifest(lambda m, h5: m["model_calls"][0].__setitem__("base", "no_such_synapse")),
    "kernel setting einet does not restore": _manifest(lambda m, h5: (m["kernel"]["values"].__setitem__("local_num_threads", 1000), m["kernel"]["set"].append("local_num_threads"))),
    # values that pass the format's checks and make NEST hang, abort or fail after the reset
    "spike buffer growth that aborts NEST": _manifest(lambda m, h5: (m["kernel"]["values"].__setitem__("spike_buffer_grow_extra", 1e300), m["kernel"]["set"].append("spike_buffer_grow_extra"))),
    "tics_per_ms beyond NEST's integers": _manifest(lambda m, h5: m["kernel"]["values"].__setitem__("tics_per_ms", 1e19)),
    "a resolution of a nanosecond": _manifest(lambda m, h5: m["kernel"]["values"].__setitem__("resolution", 1e-6)),
    "a max_delay of 30 years": _manifest(lambda m, h5: (m["kernel"]["values"].__setitem__("max_delay", 1e12), m["kernel"]["set"].append("max_delay"))),
    "a Poisson rate NEST loops on": _manifest(lambda m, h5: _run_of(m, "poisson_generator")["uniform"].__setitem__("rate", 1e23)),
    # values NEST itself refuses only while building: found by the rehearsal (einet.rehearsal)
    "a negative capacitance": _manifest(lambda m, h5: _run_of(m, "iaf_psc_delta")["uniform"].__setitem__("C_m", -250.0)),
    "a receptor the target lacks": _manifest(lambda m, h5: _e_syn(m)["uniform"].__setitem__("receptor_type", 10**9)),
    "a connection into a generator": _into_generator,
    # what would make NEST reach outside the process, or loop, given as model defaults or later
    "a stimulation device reading from MPI": _manifest(lambda m, h5: _run_of(m, "poisson_generator")["uniform"].__setitem__("stimulus_source", "mpi")),
    "a default Poisson rate NEST loops on": _manifest(lambda m, h5: m["model_calls"].append({"op": "SetDefaults", "model": "poisson_generator", "params": {"rate": 1e23}})),
    "a stored change to record to files": _manifest(lambda m, h5: m["protocol"].append({"t_ms": 150.0, "target": "E", "key": "record_to", "value": "ascii"})),
}
"""Files that open (consistent data) but describe something this NEST cannot build: refused
by ``Session.restore`` before the kernel is touched."""

UNCHECKED = {"header attribute changed": lambda h5: h5.attrs.__setitem__("seed", 1 + int(h5.attrs["seed"])), "data changed": _poke("E_SYN/weight", 0, 1.5)}
"""Changes only the checksums can see (checksums left as they were)."""


def write_structural(original: Path, target: Path, tamper: Callable[[h5py.File], None], fix: bool = True) -> None:
    shutil.copyfile(original, target)
    with h5py.File(target, "r+") as h5:
        tamper(h5)
        if fix:
            _fix_checksums(h5)


def write_pickle(path: Path, marker: Path) -> None:
    """A pickle that would create ``marker`` if anything ever unpickled it."""

    class Evil:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (open, (str(marker), "w"))

    path.write_bytes(pickle.dumps(Evil()))


def readers_of(path: Path) -> list[int]:
    """Processes whose command line names ``path`` (the CLI and its forked reader)."""
    out = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if str(path).encode() in (proc / "cmdline").read_bytes():
                    out.append(int(proc.name))
            except OSError:
                pass
    return out

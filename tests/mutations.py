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

from einet.snapshot import Snapshot, SnapshotError, _header_crc, _HEADER_TYPES


def same_snapshot(a: Snapshot, b: Snapshot) -> bool:
    if (a.config, a.t_stored_ms, a.seed, a.n_vp, a.nest_version, a.created) != (b.config, b.t_stored_ms, b.seed, b.n_vp, b.nest_version, b.created):
        return False
    arrays = [(a.vm_exc, b.vm_exc), (a.vm_inh, b.vm_inh)]
    for m in ("e_syn", "i_syn"):
        ca, cb = getattr(a, m).columns(), getattr(b, m).columns()
        if ca.keys() != cb.keys():
            return False
        arrays += [(ca[k], cb[k]) for k in ca]
    return all(x.shape == y.shape and np.array_equal(x, y) for x, y in arrays)


def verdict(path: Path, original: Snapshot, timeout_s: float = 5.0) -> str:
    """'refused' (one-line SnapshotError), 'intact' (opened and identical); anything else raises.

    A few damaged files make libhdf5 loop forever; the reader's deadline turns those into
    refusals (a tiny file parses in milliseconds, so 5 s is generous)."""
    try:
        snap = Snapshot.open(path, timeout_s=timeout_s)
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
        if isinstance(obj, h5py.Dataset) and obj.shape is not None:
            obj.attrs["crc32"] = np.uint32(zlib.crc32(np.ascontiguousarray(obj[()]).tobytes()))

    h5.visititems(visit)
    attrs = {}
    for k in _HEADER_TYPES:
        if k in h5.attrs:
            v = h5.attrs[k]
            attrs[k] = v.decode() if isinstance(v, bytes) else (v.item() if isinstance(v, np.generic) else v)
    if set(attrs) == set(_HEADER_TYPES):
        h5.attrs["header_crc32"] = np.uint32(_header_crc(attrs))


def _replace(h5: h5py.File, name: str, values: np.ndarray) -> None:
    del h5[name]
    h5.create_dataset(name, data=values)


def _set(name: str, fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[h5py.File], None]:
    return lambda h5: _replace(h5, name, fn(h5[name][()]))


def _config(**changes: Any) -> Callable[[h5py.File], None]:
    def tamper(h5: h5py.File) -> None:
        cfg = json.loads(h5.attrs["config"])
        cfg.update(changes)
        h5.attrs["config"] = json.dumps(cfg)

    return tamper


def _poke(name: str, index: int, value: float) -> Callable[[h5py.File], None]:
    def fn(a: np.ndarray) -> np.ndarray:
        a = a.copy()
        a[index] = value
        return a

    return _set(name, fn)


STRUCTURAL: dict[str, Callable[[h5py.File], None]] = {
    "future format_version": lambda h5: h5.attrs.__setitem__("format_version", 2),
    "no format attribute": lambda h5: h5.attrs.__delitem__("format"),
    "missing dataset": lambda h5: h5.__delitem__("synapses/e_syn/Kplus"),
    "missing group": lambda h5: h5.__delitem__("neurons/I"),
    "extra dataset": lambda h5: h5.create_dataset("synapses/e_syn/evil", data=np.zeros(3)),
    "extra group": lambda h5: h5.create_group("code"),
    "extra attribute": lambda h5: h5.attrs.__setitem__("__reduce__", "os.system"),
    "wrong dtype": _set("synapses/e_syn/weight", lambda a: a.astype(np.float32)),
    "ids as floats": _set("synapses/i_syn/source", lambda a: a.astype(np.float64)),
    "wrong shape": _set("synapses/e_syn/target", lambda a: a[:-1]),
    "2-d array": _set("neurons/E/V_m", lambda a: a.reshape(1, -1)),
    "lengths differ": _set("synapses/i_syn/delay", lambda a: np.append(a, 1.0)),
    "id out of range": _poke("synapses/e_syn/target", 0, 10**6),
    "negative id": _poke("synapses/i_syn/target", 3, -1),
    "e_syn source is inhibitory": _set("synapses/e_syn/source", lambda a: np.full_like(a, a.max() + 1)),
    "i_syn source is excitatory": _poke("synapses/i_syn/source", 0, 1),
    "in-degree broken": _set("synapses/e_syn/target", lambda a: np.concatenate([np.ones(10, a.dtype), a[10:]])),
    "NaN V_m": _poke("neurons/I/V_m", 0, np.nan),
    "infinite weight": _poke("synapses/i_syn/weight", 0, np.inf),
    "NaN delay": _poke("synapses/e_syn/delay", 0, np.nan),
    "infinite Kplus": _poke("synapses/e_syn/Kplus", 0, np.inf),
    "negative Kplus": _poke("synapses/e_syn/Kplus", 0, -1.0),
    "e_syn weight above Wmax": _poke("synapses/e_syn/weight", 0, 2.5),
    "e_syn weight negative": _poke("synapses/e_syn/weight", 0, -0.1),
    "delay below resolution": _poke("synapses/i_syn/delay", 0, 0.01),
    "count does not match config": _config(indegree_e=199),
    "unknown config key": _config(evil="__import__('os')"),
    "config of wrong type": _config(scale="1"),
    "sizes beyond memory": _config(scale=5000.0),
    "negative t_stored": lambda h5: h5.attrs.__setitem__("t_stored_ms", -1.0),
}
UNCHECKED = {"header attribute changed": lambda h5: h5.attrs.__setitem__("seed", 1 + int(h5.attrs["seed"])), "data changed": _poke("synapses/e_syn/weight", 0, 1.5)}
"""Damage made without fixing checksums: only the checksums can catch these."""


def write_structural(original: Path, target: Path, tamper: Callable[[h5py.File], None], fix: bool = True) -> None:
    shutil.copyfile(original, target)
    with h5py.File(target, "r+") as h5:
        tamper(h5)
        if fix:
            _fix_checksums(h5)


def write_pickle(target: Path, marker: Path) -> None:
    class Evil:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (open, (str(marker), "w"))

    target.write_bytes(pickle.dumps(Evil()))

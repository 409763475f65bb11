"""Snapshot format v1: one self-describing, checksummed HDF5 file per stored network state.

Layout (see ``docs/snapshot-format.md``)::

    /                       attrs: format, format_version, einet_version, nest_version,
                                   t_stored_ms, seed, n_vp, created, config (JSON),
                                   stored (JSON list), not_stored (JSON list)
    /neurons/E/V_m          float64[n_exc]
    /neurons/I/V_m          float64[n_inh]
    /synapses/e_syn/{source,target}  int32[n_e_syn]
    /synapses/e_syn/{weight,delay,Kplus}  float64[n_e_syn]
    /synapses/i_syn/{source,target}  int32[n_i_syn]
    /synapses/i_syn/{weight,delay}   float64[n_i_syn]

Every dataset carries a ``crc32`` attribute of its little-endian bytes. Reading validates the
whole file (structure, dtypes, sizes against the stored configuration *before* reading data,
checksums, value ranges) and raises :class:`SnapshotError` with one line of explanation.
Nothing here imports NEST, and nothing is ever unpickled.
"""

from __future__ import annotations

import contextlib
import glob
import json
import mmap
import os
import select
import signal
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from . import __version__
from .config import ConfigError, NetworkConfig
from .wire import Message, WireError, buffer_reader, decode, encode_parts

FORMAT = "einet-snapshot"
FORMAT_VERSION = 1
SUFFIX = ".h5"

STORED = [
    "V_m of every E and I neuron",
    "source, target, weight, delay of every e_syn and i_syn connection",
    "Kplus (STDP presynaptic trace) of every e_syn connection",
    "time stored, seed, threads (n_vp), NEST and einet versions, network configuration",
]
NOT_STORED = [
    "spikes in transit (emitted but not yet delivered)",
    "refractory state and other neuron state besides V_m",
    "STDP postsynaptic trace and last spike times (t_spike, post_trace)",
    "random number generator state (the seed is stored; the stream restarts)",
    "simulated time: a restored network starts again at t = 0 ms",
    "spike recordings (they belong to runs, not to the network state)",
]

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_ID = np.dtype("<i4")
_FLOAT = np.dtype("<f8")
_POPULATIONS = ("E", "I")
_SYNAPSE_FIELDS: dict[str, tuple[str, ...]] = {
    "e_syn": ("source", "target", "weight", "delay", "Kplus"),
    "i_syn": ("source", "target", "weight", "delay"),
}
_CHUNK = 1 << 17


class SnapshotError(Exception):
    """The file is not a valid, intact einet snapshot (the message is one line)."""


class SnapshotExistsError(SnapshotError):
    """Storing would overwrite an existing snapshot and overwriting was not asked for."""


@dataclass(frozen=True)
class SynapseTable:
    """All connections of one synapse model, one entry per connection."""

    source: np.ndarray
    target: np.ndarray
    weight: np.ndarray
    delay: np.ndarray
    kplus: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.source)

    def columns(self) -> dict[str, np.ndarray]:
        cols = {"source": self.source, "target": self.target, "weight": self.weight, "delay": self.delay}
        if self.kplus is not None:
            cols["Kplus"] = self.kplus
        return cols


@dataclass(frozen=True)
class Snapshot:
    """A stored network state: membrane potentials and connections, plus where they came from."""

    config: NetworkConfig
    t_stored_ms: float
    seed: int
    n_vp: int
    vm_exc: np.ndarray
    vm_inh: np.ndarray
    e_syn: SynapseTable
    i_syn: SynapseTable
    nest_version: str = ""
    einet_version: str = __version__
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    source_path: str = field(default="", compare=False)
    """The file this snapshot was read from ('' if it was captured in memory)."""

    # -- writing ---------------------------------------------------------------------------
    def write(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write atomically: a hidden temporary file in the same folder, then a rename.

        Without ``overwrite`` an existing file is never replaced, even by a concurrent writer
        (the final step is ``link``, which fails if the name exists). On any failure the
        temporary file is removed and an earlier file of that name is untouched.
        """
        path = Path(path)
        folder = path.parent if str(path.parent) else Path(".")
        if not overwrite and path.exists():
            raise SnapshotExistsError(f"{path} exists (pass overwrite to replace it)")
        _remove_stale_partials(folder, path.name)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=folder)
        tmp = Path(tmp_name)
        try:
            # Build the file image in memory and write it with plain os.write: when libhdf5
            # itself hits a full disk it fails inside a destructor and crashes the process.
            image = self.to_bytes()
            with os.fdopen(fd, "wb") as fh:
                fh.write(image)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o644)
            if overwrite:
                os.replace(tmp, path)
            else:
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    raise SnapshotExistsError(f"{path} exists (another store won the race)") from None
                tmp.unlink()
            _fsync_dir(folder)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        return path

    def to_bytes(self) -> bytes:
        """The snapshot as the bytes of an HDF5 file (what :meth:`write` puts on disk)."""
        with h5py.File(f"einet-{id(self)}-{time.monotonic_ns()}.h5", "w", driver="core", backing_store=False) as h5:
            self._write_h5(h5)
            h5.flush()
            return bytes(h5.id.get_file_image())

    def _write_h5(self, h5: h5py.File) -> None:
        attrs = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "einet_version": self.einet_version,
            "nest_version": self.nest_version,
            "t_stored_ms": float(self.t_stored_ms),
            "seed": int(self.seed),
            "n_vp": int(self.n_vp),
            "created": self.created,
            "config": self.config.to_json(),
            "stored": json.dumps(STORED),
            "not_stored": json.dumps(NOT_STORED),
        }
        h5.attrs.update(attrs)
        h5.attrs["header_crc32"] = np.uint32(_header_crc(attrs))
        _write_dataset(h5, "neurons/E/V_m", self.vm_exc, _FLOAT, "mV")
        _write_dataset(h5, "neurons/I/V_m", self.vm_inh, _FLOAT, "mV")
        for model, table in (("e_syn", self.e_syn), ("i_syn", self.i_syn)):
            for name, values in table.columns().items():
                if name in ("source", "target"):
                    _write_dataset(h5, f"synapses/{model}/{name}", values, _ID, "node id")
                else:
                    unit = "ms" if name == "delay" else ("mV" if name == "weight" else "")
                    _write_dataset(h5, f"synapses/{model}/{name}", values, _FLOAT, unit)

    # -- reading ---------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path, *, timeout_s: float | None = None) -> Snapshot:
        """Read and fully validate a snapshot; raise :class:`SnapshotError` if anything is off.

        The HDF5 library parses the file in a forked child process: a damaged file can make
        it loop forever or crash, and neither may take the caller (a dashboard, an engine
        holding a kernel) down with it. ``timeout_s`` defaults to 10 s plus 1 s per 20 MB (parsing takes ~0.1 s per 5 MB).
        """
        msg = _isolated(Path(path), timeout_s)
        if msg.kind != "snapshot":
            raise SnapshotError(str(msg.get("message")))
        return cls._from_message(msg, Path(path))

    @classmethod
    def _from_message(cls, msg: Message, path: Path) -> Snapshot:
        a = msg.arrays
        return cls(
            config=NetworkConfig.from_dict(msg["config"]),
            t_stored_ms=float(msg["t_stored_ms"]),
            seed=int(msg["seed"]),
            n_vp=int(msg["n_vp"]),
            vm_exc=a["neurons/E/V_m"],
            vm_inh=a["neurons/I/V_m"],
            e_syn=SynapseTable(*(a[f"synapses/e_syn/{n}"] for n in _SYNAPSE_FIELDS["e_syn"])),
            i_syn=SynapseTable(*(a[f"synapses/i_syn/{n}"] for n in _SYNAPSE_FIELDS["i_syn"])),
            nest_version=str(msg["nest_version"]),
            einet_version=str(msg["einet_version"]),
            created=str(msg["created"]),
            source_path=str(path),
        )

    def validate(self) -> None:
        """Check values against the configuration (ids, counts, in-degrees, ranges, finiteness)."""
        c = self.config
        for name, vm in (("E", self.vm_exc), ("I", self.vm_inh)):
            _require(np.isfinite(vm).all(), f"V_m of {name} neurons has NaN or infinite values")
        exc_ids = (1, c.n_exc)
        inh_ids = (c.n_exc + 1, c.n_neurons)
        for model, table, src_range, indegree, wrange in (
            ("e_syn", self.e_syn, exc_ids, c.indegree_e, (0.0, c.wmax_mv)),
            ("i_syn", self.i_syn, inh_ids, c.indegree_i, (-np.inf, np.inf)),
        ):
            _require_ids(table.source, src_range, f"{model} source")
            _require_ids(table.target, (1, c.n_neurons), f"{model} target")
            indegrees = np.bincount(table.target, minlength=c.n_neurons + 1)[1:]
            _require(
                bool((indegrees == indegree).all()),
                f"{model}: every neuron must have in-degree {indegree} (configuration), found "
                f"{int(indegrees.min())}..{int(indegrees.max())}",
            )
            for name, values in table.columns().items():
                if name not in ("source", "target"):
                    _require(np.isfinite(values).all(), f"{model} {name} has NaN or infinite values")
            lo, hi = wrange
            if len(table):
                _require(
                    lo <= table.weight.min() and table.weight.max() <= hi,
                    f"{model} weights outside [{lo:g}, {hi:g}] mV",
                )
                _require(
                    table.delay.min() >= c.resolution_ms - 1e-12,
                    f"{model} delays below the resolution {c.resolution_ms} ms",
                )
            if table.kplus is not None and len(table):
                _require(table.kplus.min() >= 0, f"{model} Kplus is negative")

    @staticmethod
    def inspect(path: str | Path) -> SnapshotInfo:
        """Metadata, counts, weight statistics and an integrity verdict; never raises for content."""
        path = Path(path)
        size = path.stat().st_size if path.exists() else 0
        try:
            msg = _isolated(path, None)
        except SnapshotError as exc:
            return SnapshotInfo(path=path, file_bytes=size, valid=False, problem=str(exc))
        header = dict(msg.get("header") or msg.fields)
        info = {k: header[k] for k in ("t_stored_ms", "seed", "n_vp", "nest_version", "einet_version", "created") if k in header}
        if "config" in header:
            info["config"] = NetworkConfig.from_dict(header["config"])
        if msg.kind != "snapshot":
            return SnapshotInfo(path=path, file_bytes=size, valid=False, problem=str(msg.get("message")), **info)
        w = msg.arrays["synapses/e_syn/weight"]
        stats = {"mean": float(w.mean()), "std": float(w.std()), "min": float(w.min()), "max": float(w.max())} if len(w) else {}
        return SnapshotInfo(path=path, file_bytes=size, valid=True, problem="", e_weight_stats=stats, **info)

    def to_pandas(self) -> dict[str, Any]:
        """The snapshot as DataFrames, keyed like NEST's example: e_nrns, i_nrns, e_syns, i_syns."""
        import pandas as pd

        c = self.config
        return {
            "n_vp": self.n_vp,
            "e_nrns": pd.DataFrame({"V_m": self.vm_exc}, index=pd.RangeIndex(1, c.n_exc + 1, name="node_id")),
            "i_nrns": pd.DataFrame(
                {"V_m": self.vm_inh}, index=pd.RangeIndex(c.n_exc + 1, c.n_neurons + 1, name="node_id")
            ),
            "e_syns": pd.DataFrame(self.e_syn.columns()),
            "i_syns": pd.DataFrame(self.i_syn.columns()),
        }


@dataclass(frozen=True)
class SnapshotInfo:
    """What ``einet inspect`` reports about a snapshot file."""

    path: Path
    file_bytes: int
    valid: bool
    problem: str
    config: NetworkConfig | None = None
    t_stored_ms: float | None = None
    seed: int | None = None
    n_vp: int | None = None
    nest_version: str = ""
    einet_version: str = ""
    created: str = ""
    e_weight_stats: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        c = self.config
        return {
            "path": str(self.path),
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "file_bytes": self.file_bytes,
            "valid": self.valid,
            "problem": self.problem,
            "neurons": {"E": c.n_exc, "I": c.n_inh} if c else None,
            "synapses": {"e_syn": c.n_e_syn, "i_syn": c.n_i_syn} if c else None,
            "t_stored_ms": self.t_stored_ms,
            "seed": self.seed,
            "n_vp": self.n_vp,
            "nest_version": self.nest_version,
            "einet_version": self.einet_version,
            "created": self.created,
            "config": c.to_dict() if c else None,
            "e_syn_weight": self.e_weight_stats,
            "stored": STORED,
            "not_stored": NOT_STORED,
        }


def load_frames(path: str | Path) -> dict[str, Any]:
    """Open a snapshot as pandas DataFrames, like the ``network`` dict of NEST's example."""
    return Snapshot.open(path).to_pandas()


# -- helpers -------------------------------------------------------------------------------
def _crc(values: np.ndarray) -> int:
    return zlib.crc32(memoryview(np.ascontiguousarray(values)).cast("B"))


def _write_dataset(h5: h5py.File, name: str, values: np.ndarray, dtype: np.dtype, unit: str) -> None:
    values = np.ascontiguousarray(values, dtype=dtype)
    options: dict[str, Any] = {}
    if len(values) > 1024:
        # Byte-shuffle + fast gzip: ids in source order, repeated delays and per-source Kplus
        # shrink many times; STDP weights by ~20%. Level 1 keeps store and restore quick.
        options = {"compression": "gzip", "compression_opts": 1, "shuffle": True, "chunks": (min(len(values), _CHUNK),)}
    ds = h5.create_dataset(name, data=values, **options)
    ds.attrs["crc32"] = np.uint32(_crc(values))
    if unit:
        ds.attrs["unit"] = unit


def _remove_stale_partials(folder: Path, name: str, max_age_s: float = 3600.0) -> None:
    """Remove temporary files of writers killed long ago (a live writer's file is fresh)."""
    now = time.time()
    for stale in folder.glob(f".{glob.escape(name)}.*.partial"):
        with contextlib.suppress(OSError):
            if now - stale.stat().st_mtime > max_age_s:
                stale.unlink()


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _require(ok: bool | np.bool_, message: str) -> None:
    if not ok:
        raise SnapshotError(message)


def _require_ids(ids: np.ndarray, bounds: tuple[int, int], what: str) -> None:
    if len(ids):
        lo, hi = int(ids.min()), int(ids.max())
        _require(bounds[0] <= lo and hi <= bounds[1], f"{what} ids {lo}..{hi} outside {bounds[0]}..{bounds[1]}")


def _sniff(path: Path) -> None:
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
    except FileNotFoundError:
        raise SnapshotError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise SnapshotError(f"{path} is a directory, not a snapshot") from None
    except OSError as exc:
        raise SnapshotError(f"{path}: {exc.strerror}") from None
    if not head:
        raise SnapshotError(f"{path} is empty")
    if head[:1] == b"\x80":
        raise SnapshotError(f"{path} is a pickle file; einet never unpickles (only HDF5 snapshots)")
    if head != _HDF5_MAGIC:
        raise SnapshotError(f"{path} is not an HDF5 snapshot")


@contextlib.contextmanager
def _open_h5(path: str | Path):  # type: ignore[no-untyped-def]
    path = Path(path)
    _sniff(path)
    try:
        h5 = h5py.File(path, "r")
    except Exception:
        raise SnapshotError(f"{path} is not a readable HDF5 file (truncated or damaged)") from None
    try:
        yield h5
    except SnapshotError:
        raise
    except Exception as exc:  # h5py raises many kinds for damaged files
        raise SnapshotError(f"{path} is damaged: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}") from None
    finally:
        with contextlib.suppress(Exception):
            h5.close()


def _attr(h5: h5py.File, name: str, kind: type) -> Any:
    if name not in h5.attrs:
        raise SnapshotError(f"missing attribute {name!r}")
    value = h5.attrs[name]
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if kind is int and isinstance(value, np.integer):
        value = int(value)
    if kind is float and isinstance(value, (np.floating, np.integer)):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise SnapshotError(f"attribute {name!r} has the wrong type")
    return value


_HEADER_TYPES: dict[str, type] = {
    "format": str,
    "format_version": int,
    "einet_version": str,
    "nest_version": str,
    "t_stored_ms": float,
    "seed": int,
    "n_vp": int,
    "created": str,
    "config": str,
    "stored": str,
    "not_stored": str,
}


def _header_crc(attrs: dict[str, Any]) -> int:
    return zlib.crc32(json.dumps({k: attrs[k] for k in _HEADER_TYPES}, sort_keys=True).encode())


def _read_header(h5: h5py.File) -> dict[str, Any]:
    if h5.attrs.get("format") not in (FORMAT, FORMAT.encode()):
        raise SnapshotError("not an einet snapshot (no 'format' attribute)")
    version = _attr(h5, "format_version", int)
    if version != FORMAT_VERSION:
        raise SnapshotError(f"snapshot format_version {version} is not supported (this einet reads {FORMAT_VERSION})")
    extra = sorted(set(h5.attrs) - set(_HEADER_TYPES) - {"header_crc32"})
    _require(not extra, f"unexpected attributes {', '.join(extra[:3])}")
    raw = {name: _attr(h5, name, kind) for name, kind in _HEADER_TYPES.items()}
    crc = h5.attrs.get("header_crc32")
    _require(crc is not None and np.asarray(crc).shape == () and _header_crc(raw) == int(crc), "header attributes fail their checksum")
    try:
        config = NetworkConfig.from_dict(json.loads(raw["config"]))
    except (ConfigError, ValueError, TypeError) as exc:
        raise SnapshotError(f"invalid network configuration: {exc}") from None
    t_stored = raw["t_stored_ms"]
    _require(np.isfinite(t_stored) and t_stored >= 0, "t_stored_ms must be a finite time >= 0")
    _require(1 <= raw["n_vp"] <= 4096, f"n_vp {raw['n_vp']} out of range")
    return {k: raw[k] for k in ("t_stored_ms", "seed", "n_vp", "nest_version", "einet_version", "created")} | {"config": config}


def _load_here(path: Path) -> Message:
    """Parse and validate in this process; the result as a message (runs in the child)."""
    header: dict[str, Any] = {}
    try:
        with _open_h5(path) as h5:
            header = _read_header(h5)
            config = header["config"]
            _check_structure(h5)
            expected = {
                "neurons/E/V_m": config.n_exc,
                "neurons/I/V_m": config.n_inh,
                **{f"synapses/e_syn/{n}": config.n_e_syn for n in _SYNAPSE_FIELDS["e_syn"]},
                **{f"synapses/i_syn/{n}": config.n_i_syn for n in _SYNAPSE_FIELDS["i_syn"]},
            }
            _check_affordable(sum(n * 8 for n in expected.values()))
            data = {name: _read_dataset(h5, name, n) for name, n in expected.items()}
        fields = {**header, "config": config.to_dict()}
        snap = Snapshot._from_message(Message("snapshot", fields, data), path)
        snap.validate()
        return Message("snapshot", fields, data)
    except SnapshotError as exc:
        partial = {**header, "config": header["config"].to_dict()} if "config" in header else header
        return Message("refused", {"message": str(exc), "header": partial})


def _isolated(path: Path, timeout_s: float | None) -> Message:
    """Run :func:`_load_here` in a forked child and return its message.

    libhdf5 never parses the file in the caller's process: a child that loops is killed at
    the deadline and one that crashes is reported, both as :class:`SnapshotError`. The child
    writes its answer into an in-memory file (no pipe round trips for tens of MB).
    """
    _sniff(path)
    if not hasattr(os, "fork") or not hasattr(os, "memfd_create"):  # pragma: no cover - non-Linux
        return _load_here(path)
    size = path.stat().st_size
    deadline = time.monotonic() + (timeout_s if timeout_s is not None else 10.0 + size / 20e6)
    answer = os.memfd_create("einet-snapshot-reader")
    done_r, done_w = os.pipe()  # closes when the child exits: the parent waits on it
    try:
        pid = os.fork()
        if pid == 0:  # child: parse, answer, leave without running any of the parent's cleanup
            code = 1
            try:
                os.close(done_r)
                with os.fdopen(answer, "wb", closefd=False) as out:
                    for part in encode_parts(_load_here(path)):
                        out.write(part)
                code = 0
            finally:
                os._exit(code)
        os.close(done_w)
        done_w = -1
        try:
            ready, _, _ = select.select([done_r], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                os.kill(pid, signal.SIGKILL)
                raise SnapshotError(f"{path}: reading did not finish in time (a damaged file can make the HDF5 library loop)")
        finally:
            _, status = os.waitpid(pid, 0)
        if status != 0:
            raise SnapshotError(f"{path}: the HDF5 library crashed reading this file (it is damaged)")
        length = os.fstat(answer).st_size
        if length == 0:
            raise SnapshotError(f"{path}: the reader gave no answer")
        # the arrays are views of the mapped answer: no copy of tens of MB
        mapped = mmap.mmap(answer, length, mmap.MAP_SHARED, mmap.PROT_READ)
        try:
            return decode(buffer_reader(memoryview(mapped)))
        except WireError as exc:
            raise SnapshotError(f"{path}: bad answer from the reader: {exc}") from None
    finally:
        for fd in (answer, done_r, done_w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)


def _check_structure(h5: h5py.File) -> None:
    want_groups = {"neurons", "synapses", *(f"neurons/{p}" for p in _POPULATIONS), *(f"synapses/{m}" for m in _SYNAPSE_FIELDS)}
    want_sets = {f"neurons/{p}/V_m" for p in _POPULATIONS} | {
        f"synapses/{m}/{n}" for m, names in _SYNAPSE_FIELDS.items() for n in names
    }
    found_groups: set[str] = set()
    found_sets: set[str] = set()

    def visit(name: str, obj: Any) -> None:
        (found_sets if isinstance(obj, h5py.Dataset) else found_groups).add(name)

    h5.visititems(visit)
    missing = sorted((want_groups - found_groups) | (want_sets - found_sets))
    extra = sorted((found_groups - want_groups) | (found_sets - want_sets))
    _require(not missing, f"missing {', '.join(missing[:3])}")
    _require(not extra, f"unexpected {', '.join(extra[:3])}")


def _check_affordable(nbytes: int) -> None:
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):  # pragma: no cover - non-POSIX
        return
    _require(nbytes < physical // 2, f"snapshot declares {nbytes / 2**30:.1f} GiB of data, more than memory allows")


def _read_dataset(h5: h5py.File, name: str, length: int) -> np.ndarray:
    ds = h5[name]
    want = _ID if name.endswith(("source", "target")) else _FLOAT
    _require(ds.dtype == want, f"{name} has dtype {ds.dtype}, expected {want}")
    _require(ds.shape == (length,), f"{name} has shape {ds.shape}, expected ({length},)")
    crc = ds.attrs.get("crc32")
    _require(crc is not None and np.asarray(crc).shape == (), f"{name} has no checksum")
    # deflate cannot shrink data more than ~1032:1, so a dataset whose bytes on disk are far
    # fewer than its declared size is hollow: refuse it before allocating memory for it
    nbytes = length * want.itemsize
    _require(nbytes <= 1 << 20 or ds.id.get_storage_size() * 1100 >= nbytes, f"{name} declares {nbytes} bytes but the file holds far fewer")
    values = np.empty(length, dtype=want)
    if length:
        ds.read_direct(values)
    _require(_crc(values) == int(crc), f"{name} fails its checksum (the file is corrupted)")
    return values if want == _FLOAT else values.astype(np.int64)


class SnapshotNameError(ValueError):
    """A typed snapshot name is not a plain file name inside the snapshot folder."""


def snapshot_path_in(folder: str | Path, name: str) -> Path:
    """Resolve a user-typed snapshot name inside ``folder``; ``.h5`` is added if missing.

    Refuses anything that could land outside the folder or be mistaken for something else:
    path separators, ``..``, hidden names (temporary files start with a dot), control
    characters, over-long names.
    """
    name = name.strip()
    if not name:
        raise SnapshotNameError("the name is empty")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise SnapshotNameError("the name contains control characters")
    if "/" in name or "\\" in name or name.startswith(".") or os.path.isabs(name):
        raise SnapshotNameError("give a plain name, not a path (snapshots stay in the snapshot folder)")
    if not name.endswith(SUFFIX):
        name += SUFFIX
    if len(name.encode()) > 255:
        raise SnapshotNameError("the name is too long")
    folder = Path(folder)
    path = folder / name
    if path.resolve().parent != folder.resolve():
        raise SnapshotNameError("the name leaves the snapshot folder")
    return path


def list_snapshots(folder: str | Path) -> list[Path]:
    """Snapshot files in ``folder``, newest first (hidden temporary files are never listed)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    files = [p for p in folder.glob(f"*{SUFFIX}") if p.is_file() and not p.name.startswith(".")]
    return sorted(files, key=lambda p: p.stat().st_mtime, reverse=True)

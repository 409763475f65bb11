"""The hidden-state accessor (``state.cpp``): what NEST keeps but PyNEST can neither read nor
set, taken into numpy arrays and written back, so that a restored network continues bit for
bit (docs/hidden-state.md).

Loaded like the connection reader (:mod:`.library`): built per NEST binary and source into a
library of its own (``einet-state.so``), and only for the very ``nestkernel_api.so`` it was
built for. A kernel whose models have no accessor is read as far as it can be: :class:`Hidden`
says which nodes it holds.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..kernel import nest, nest_output_to
from ..ranks import local_ids, ranks
from ..snapshot.hidden import MODEL_OF_KIND, TRANSIT  # the kind codes that open each record and the spikes in transit's arrays: the file format's
from ..snapshot.model import Column
from ..snapshot.packed import BLOCK_ROWS, block_of
from .build import STATE_LIBRARY, STATE_SOURCE, AccelUnavailable, Nest, build, library_path, load
from .library import installed

_ERR = 1024
_L = ctypes.c_long
_P = ctypes.c_void_p
_C = ctypes.c_char_p
_S = ctypes.c_size_t
_RNG_TEXT = 1 << 16
_ORDER_DIFFERS = -2

RANK_SYNCED, VP_SYNCED, VP_SPECIFIC = 0, 1, 2


@dataclass
class Stdp:
    """Kplus and t_lastspike of the local connections of one STDP synapse model: per row, or
    with ``runs`` per run of rows (rows ``runs[r]`` to ``runs[r + 1] - 1`` share ``kplus[r]``
    and ``t_lastspike[r]``: a snapshot's section as stored, without 16 bytes a row expanded).
    A row is written unless its values are NaN or ``covered`` (a flag per node id) does not
    flag its source. ``source`` and ``target`` may be a snapshot table's packed columns: the
    writers take them a block at a time."""

    source: Column
    target: Column
    kplus: np.ndarray
    t_lastspike: np.ndarray
    runs: np.ndarray | None = None
    covered: np.ndarray | None = None
    here: np.ndarray | None = None
    """Under MPI, a flag per node id: a neuron of this process (a row is written by the
    process of its target). None: every row is this process's."""
    _written: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    def written(self) -> np.ndarray:
        """Whether each row is written (by this process); found once (a restore asks three
        times, and a packed table's sources are inflated to know)."""
        if self._written is None:
            self._written = self._find_written()
        return self._written

    def _find_written(self) -> np.ndarray:
        out = np.empty(len(self.source), dtype=bool)
        for lo in range(0, len(out), BLOCK_ROWS):
            b = self.block(lo, lo + BLOCK_ROWS)
            ok = ~(np.isnan(b.kplus) | np.isnan(b.t_lastspike))
            if b.runs is not None:
                ok = np.repeat(ok, np.diff(b.runs))
            ok &= b._covered(np.asarray(b.source))
            out[lo : lo + len(ok)] = ok if b.here is None else ok & _flagged(b.here, np.asarray(b.target))
        return out

    def block(self, lo: int, hi: int) -> Stdp:
        """Rows ``lo`` to ``hi - 1`` (arrays), their values by run if they are."""
        hi = max(lo, min(hi, len(self.source)))
        source, target = block_of(self.source, lo, hi), block_of(self.target, lo, hi)
        if self.runs is None:
            return Stdp(source, target, self.kplus[lo:hi], self.t_lastspike[lo:hi], None, self.covered, self.here)
        first = int(np.searchsorted(self.runs, lo, side="right")) - 1
        end = int(np.searchsorted(self.runs, hi, side="left"))
        runs = np.clip(self.runs[first : end + 1] - lo, 0, hi - lo)
        return Stdp(source, target, self.kplus[first:end], self.t_lastspike[first:end], runs, self.covered, self.here)

    def rows(self, at: np.ndarray) -> Stdp:
        """The rows ``at``, a value per row (NaN where not written)."""
        v = at if self.runs is None else np.searchsorted(self.runs, at, side="right") - 1
        kplus, t_lastspike = self.kplus[v].astype(np.float64), self.t_lastspike[v].astype(np.float64)
        source = np.asarray(self.source[at])  # a packed column: its chunks inflated once
        off = ~self._covered(source)
        kplus[off] = t_lastspike[off] = np.nan
        return Stdp(source, np.asarray(self.target[at]), kplus, t_lastspike)

    def _covered(self, ids: np.ndarray) -> np.ndarray:
        return np.ones(len(ids), dtype=bool) if self.covered is None else _flagged(self.covered, ids)


def _flagged(flags: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Whether ``flags`` (one per node id) flags each of ``ids`` (ids outside it: no)."""
    inside = (ids >= 0) & (ids < len(flags))
    return inside & flags[np.where(inside, ids, 0)]


@dataclass
class Hidden:
    """The hidden state of one process's part of the kernel at one time.

    ``nodes`` are the node ids with a record, ``offsets`` where each record starts in
    ``records`` (one more than nodes); a record is ``kind, n_core, n_slots, n_channels,
    n_history``, then the model's state, the archiving state, the input buffers (slot 0 the next
    step) and the STDP spike history (see state.cpp)."""

    t_ms: float
    threads: int
    nodes: np.ndarray
    offsets: np.ndarray
    records: np.ndarray
    stdp: dict[str, Stdp] = field(default_factory=dict)
    rngs: list[str] = field(default_factory=list)
    """rank-synced, then vp-synced per virtual process of ``vps``, then vp-specific per one."""
    devices: str = ""
    """Each virtual process's poisson_generator's distribution state: ``node vp text`` lines."""
    transit: dict[str, np.ndarray] = field(default_factory=dict)
    """Spikes in transit, as emissions (their remote targets not given them yet): ``source``,
    ``lag`` and ``count`` (the spike's multiplicity)."""
    vps: list[int] = field(default_factory=list)
    """The virtual processes ``rngs`` holds generators of: this process's threads' when read."""

    def record(self, node_id: int) -> np.ndarray:
        k = int(np.searchsorted(self.nodes, node_id))
        if k == len(self.nodes) or self.nodes[k] != node_id:
            raise KeyError(node_id)
        return self.records[self.offsets[k] : self.offsets[k + 1]]


class StateLibrary:
    """The loaded accessor."""

    def __init__(self, path: Path, nest_: Nest) -> None:
        lib = load(path, nest_, "hidden-state accessor", "einet_state_built_for")
        for name, args in {
            "einet_state_node_sizes": [_P, _L, _P, _P, _S],
            "einet_state_node_read": [_P, _L, _P, _P, _P, _S],
            "einet_state_node_write": [_P, _L, _P, _P, _P, _S],
            "einet_state_stdp_count": [_C, _P, _S],
            "einet_state_stdp_read": [_C, _P, _P, _P, _P, _L, _P, _S],
            "einet_state_stdp_write": [_C, *_ROWS, _P, _S],
            "einet_state_stdp_write_ordered": [_C, *_ROWS, _P, _L, _L, _P, _S],
            "einet_state_stdp_sample": [_C, _P, _P, _P, _P, _L, _P, _S],
            "einet_state_connect": [_C, _P, _P, _P, _P, _L, _P, _S],
            "einet_state_between_neurons": [_P, _P, _L, _P, _S],
            "einet_state_rng_read": [_L, _L, _P, _S, _P, _S],
            "einet_state_rng_write": [_L, _L, _C, _P, _S],
            "einet_state_transit_count": [_P, _S],
            "einet_state_devices_read": [_P, _S, _P, _S],
            "einet_state_devices_write": [_C, _P, _S],
            "einet_state_transit_read": [_P, _P, _P, _L, _P, _S],
            "einet_state_transit_write": [_P, _P, _P, _L, _P, _S],
            "einet_state_transit_gather": [_P, _S],
            "einet_state_thread_vp": [_L, _P, _S],
        }.items():
            fn = getattr(lib, name)
            fn.restype = _L
            fn.argtypes = args
        self._lib = lib
        self.path = path

    def _call(self, what: str, name: str, *args: object) -> int:
        err = ctypes.create_string_buffer(_ERR)
        result = int(getattr(self._lib, name)(*args, err, _ERR))
        if result < 0:
            raise AccelUnavailable(f"{what}: {err.value.decode(errors='replace')}")
        return result

    # -- nodes

    def read_nodes(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(node ids with a record, offsets, records) for the local nodes among ``ids``."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        sizes = np.zeros(len(ids), dtype=np.int64)
        self._call("sizing node records", "einet_state_node_sizes", ids.ctypes.data, len(ids), sizes.ctypes.data)
        held = sizes > 0
        ids, sizes = np.ascontiguousarray(ids[held]), sizes[held]
        offsets = np.zeros(len(ids) + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        records = np.empty(int(offsets[-1]), dtype=np.float64)
        self._call("reading node records", "einet_state_node_read", ids.ctypes.data, len(ids), offsets.ctypes.data, records.ctypes.data)
        return ids, offsets, records

    def write_nodes(self, ids: np.ndarray, offsets: np.ndarray, records: np.ndarray) -> int:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        offsets = np.ascontiguousarray(offsets, dtype=np.int64)
        records = np.ascontiguousarray(records, dtype=np.float64)
        return self._call("writing node records", "einet_state_node_write", ids.ctypes.data, len(ids), offsets.ctypes.data, records.ctypes.data)

    # -- STDP connections

    def stdp_count(self, model: str) -> int:
        return self._call(model, "einet_state_stdp_count", model.encode())

    def read_stdp(self, model: str) -> Stdp:
        n = self.stdp_count(model)
        s = Stdp(np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.float64), np.empty(n, np.float64))
        self._call(model, "einet_state_stdp_read", model.encode(), s.source.ctypes.data, s.target.ctypes.data, s.kplus.ctypes.data, s.t_lastspike.ctypes.data, n)
        return s

    def write_stdp(self, model: str, s: Stdp) -> int:
        """Set every local connection's Kplus and t_lastspike from the row of the same source
        and target (repeated pairs in order): each connection must find a row, each row to and
        from neurons one; a row marked NaN is matched but not written."""
        keep, args = _rows_args(s)
        written = self._call(model, "einet_state_stdp_write", model.encode(), *args)
        del keep  # the arrays the call read
        return written

    def write_stdp_ordered(self, model: str, s: Stdp) -> bool:
        """Set them row by row in the order einet's restore connected the rows (before NEST's
        next Prepare sorts the connections; rows to or from a device are skipped, a row marked
        NaN is not written), a block of rows at a time: whether the connections were in that
        order (if not, nothing is known to be written right)."""
        with nest_output_to():
            cursors = np.zeros(int(nest().local_num_threads), dtype=np.int64)
        n = len(s.source)
        for lo in range(0, max(n, 1), BLOCK_ROWS):  # one call without rows: no connection may be there
            keep, args = _rows_args(s.block(lo, lo + BLOCK_ROWS))
            err = ctypes.create_string_buffer(_ERR)
            result = int(self._lib.einet_state_stdp_write_ordered(model.encode(), *args, cursors.ctypes.data, len(cursors), int(lo + BLOCK_ROWS >= n), err, _ERR))
            del keep  # the arrays the call read
            if result == _ORDER_DIFFERS:
                return False
            if result < 0:
                raise AccelUnavailable(f"{model}: {err.value.decode(errors='replace')}")
        return True

    def between_neurons(self, source: np.ndarray, target: np.ndarray) -> bool:
        """Whether every row is between two neurons of this process (what :meth:`connect` and
        the STDP writers take)."""
        a = [np.ascontiguousarray(x, dtype=np.int32) for x in (source, target)]
        return bool(self._call("rows", "einet_state_between_neurons", *(x.ctypes.data for x in a), len(a[0])))

    def connect(self, model: str, source: np.ndarray, target: np.ndarray, weight: np.ndarray | None, delay: np.ndarray | None) -> None:
        """Connect the rows in their order, each connection through NEST's own ``connect``,
        from a thread per NEST thread (NaN, or no array: the model's default); every row
        between two neurons of this process (else nothing is connected)."""
        a = [np.ascontiguousarray(x, dtype=np.int32) for x in (source, target)]
        values = [None if x is None else np.ascontiguousarray(x, dtype=np.float64) for x in (weight, delay)]
        if len({len(x) for x in a} | {len(v) for v in values if v is not None}) != 1:
            raise ValueError("rows of different lengths")
        pointers = [None if v is None else v.ctypes.data for v in values]
        self._call(model, "einet_state_connect", model.encode(), *(x.ctypes.data for x in a), *pointers, len(a[0]))

    def stdp_sample_found(self, model: str, s: Stdp) -> int:
        """How many of the rows ``s`` (a sample) a connection of the model has, values bit for bit."""
        a = _row_arrays(s)
        return self._call(model, "einet_state_stdp_sample", model.encode(), *(x.ctypes.data for x in a), len(a[0]))

    # -- random generators

    def read_rng(self, which: int, tid: int = 0) -> str:
        out = ctypes.create_string_buffer(_RNG_TEXT)
        n = self._call("reading a random generator", "einet_state_rng_read", which, tid, out, _RNG_TEXT)
        if n >= _RNG_TEXT:
            raise AccelUnavailable("a random generator's state is longer than expected")
        return out.value.decode()

    def write_rng(self, which: int, tid: int, text: str) -> None:
        self._call("writing a random generator", "einet_state_rng_write", which, tid, text.encode())

    # -- devices

    def read_devices(self) -> str:
        cap = 1 << 16
        while True:
            out = ctypes.create_string_buffer(cap)
            n = self._call("reading devices' state", "einet_state_devices_read", out, cap)
            if n < cap:
                return out.value.decode()
            cap = n + 1

    def write_devices(self, text: str) -> None:
        self._call("writing devices' state", "einet_state_devices_write", text.encode())

    # -- spikes in transit

    def read_transit(self) -> dict[str, np.ndarray]:
        """This process's spikes in transit, thread by thread (so by virtual process), each
        thread's in its spike register's order."""
        n = self._call("counting spikes in transit", "einet_state_transit_count")
        t = {k: np.empty(n, np.int64) for k in TRANSIT}
        self._call("reading spikes in transit", "einet_state_transit_read", *(t[k].ctypes.data for k in TRANSIT), n)
        return t

    def write_transit(self, t: dict[str, np.ndarray]) -> int:
        """Put the emissions of this process's neurons among ``t`` (every process's) into the
        spike registers; :meth:`gather_transit` must follow, in every process. Returns how
        many were this process's."""
        a = [np.ascontiguousarray(t[k], dtype=np.int64) for k in TRANSIT]
        return self._call("writing spikes in transit", "einet_state_transit_write", *(x.ctypes.data for x in a), len(a[0]))

    def gather_transit(self) -> bool:
        """At the end of a communication interval, gather the registers into the receive
        buffers as NEST did (an MPI collective: every process calls it); whether it did."""
        return bool(self._call("gathering spikes in transit", "einet_state_transit_gather"))

    def thread_vps(self, threads: int) -> list[int]:
        """The virtual process of each of this process's ``threads`` threads."""
        return [self._call("a thread's virtual process", "einet_state_thread_vp", t) for t in range(threads)]


_ROWS = [_P, _P, _P, _P, _P, _L, _P, _L, _L]
"""A writer's rows (state.cpp, ``OrderedRows``): source, target (int32), Kplus, t_lastspike,
runs (or NULL) and their count, covered (or NULL) and its length, the number of rows."""


def _row_arrays(s: Stdp) -> list[np.ndarray]:
    """Source and target (int32), Kplus and t_lastspike (float64), as the accessor reads them
    (packed columns inflated whole)."""
    return [np.ascontiguousarray(x, dtype=np.int32) for x in (s.source, s.target)] + [np.ascontiguousarray(x, dtype=np.float64) for x in (s.kplus, s.t_lastspike)]


def _rows_args(s: Stdp) -> tuple[list[np.ndarray], list[object]]:
    """The arrays a writer reads (kept alive by the caller) and its arguments for ``s``."""
    n = len(s.source)
    a = _row_arrays(s)
    runs = None if s.runs is None else np.ascontiguousarray(s.runs, dtype=np.int64)
    covered = None if s.covered is None else np.ascontiguousarray(s.covered, dtype=bool).view(np.uint8)
    values = n if runs is None else len(runs) - 1
    if len(a[1]) != n or len(a[2]) != values or len(a[3]) != values:
        raise ValueError("rows of different lengths")
    keep = [*a, *(x for x in (runs, covered) if x is not None)]
    args: list[object] = [*(x.ctypes.data for x in a), None if runs is None else runs.ctypes.data, values, None if covered is None else covered.ctypes.data, 0 if covered is None else len(covered), n]
    return keep, args


class _NotBuilt(AccelUnavailable):
    """Not built yet (``build_it=False``): a later call may build it."""


_loaded: StateLibrary | None = None
_refused: str | None = None
_lock = threading.Lock()


def state_library(*, build_it: bool = True) -> StateLibrary:
    """The accessor for the NEST in this process, built if need be (raises
    :class:`AccelUnavailable` saying why it cannot be had, or when ``EINET_ACCEL=0``).
    ``build_it=False``: refused unless it is built already (for a caller that can do without
    it and must not wait for a compiler)."""
    global _loaded, _refused
    if os.environ.get("EINET_ACCEL", "1") == "0":
        raise AccelUnavailable("EINET_ACCEL=0 turns the accelerators off")
    with _lock:
        if _loaded is None:
            if _refused is not None:  # a failed build is not tried again at every store
                raise AccelUnavailable(_refused)
            try:
                found = installed()
                if not build_it and not library_path(found, STATE_SOURCE, STATE_LIBRARY).is_file():
                    raise _NotBuilt("the hidden-state accessor is not built")
                _loaded = StateLibrary(build(found, STATE_SOURCE, STATE_LIBRARY), found)
            except _NotBuilt:
                raise
            except AccelUnavailable as exc:
                _refused = str(exc)
                raise
        return _loaded


def _stdp_models(lib: StateLibrary) -> list[str]:
    """The synapse models (built-in or copies) whose local connections are of the STDP family
    the accessor knows, and that have some."""
    found = []
    for model in nest().synapse_models:
        try:
            if lib.stdp_count(model) > 0:
                found.append(model)
        except AccelUnavailable:
            continue
    return found


_checked: set[str] = set()
"""Node and synapse models whose records were checked against NEST's status in this process."""

_V_M_AT = {1: 5, 2: 4, 3: 1, 15: -2, 16: -2}
"""Per kind, where the membrane potential (relative to E_L) is among the record's core values
(negative: from their end, the counter last; the multisynapse models' shape follows their
receptors)."""
_STATUS_AT: dict[int, dict[str, int]] = {
    5: {"V_m": 0, "g_ex": 1, "g_in": 2},
    6: {"V_m": 0, "dg_ex": 1, "g_ex": 2, "dg_in": 3, "g_in": 4},
    7: {"V_m": 0, "g_ex": 1, "g_in": 2, "w": 3},
    8: {"V_m": 0, "dg_ex": 1, "g_ex": 2, "dg_in": 3, "g_in": 4, "w": 5},
    9: {"V_m": 0, "Act_m": 1, "Inact_h": 2, "Act_n": 3},
    10: {"V_m": 0, "U_m": 1},
    11: {"V_m": 0, "dI_syn_ex": 1, "I_syn_ex": 2, "dI_syn_in": 3, "I_syn_in": 4, "w": 5},
    12: {"V_m": 0, "I_syn_ex": 1, "I_syn_in": 2, "w": 3},
    13: {"V_m": 0, "dg_ex": 1, "g_ex": 2, "dg_in": 3, "g_in": 4},
    14: {"V_m": 0, "Act_m": 1, "Inact_h": 2, "Act_n": 3},
}
"""Per kind of the GSL models (and izhikevich), the status keys NEST reports as they are in the
state, and where each is among the record's core values (the state vector comes first)."""


def check_against_status(hidden: Hidden) -> None:
    """The first record of each model read in this process agrees with NEST's own status of the
    same node or connection (membrane potential, a GSL model's conductances, adaptation or gating
    variables, last spike time, Kplus): a layout the accessor misreads fails here, before
    anything is stored (raises :class:`AccelUnavailable`)."""
    n = nest()
    kinds = hidden.records[hidden.offsets[:-1]].astype(int) if len(hidden.nodes) else np.empty(0, int)
    for kind in np.unique(kinds):
        model = MODEL_OF_KIND[int(kind)]
        if model in _checked:
            continue
        node = int(hidden.nodes[int(np.argmax(kinds == kind))])
        record = hidden.record(node)
        n_core = int(record[1])
        keys = _STATUS_AT.get(int(kind), {})
        with nest_output_to():
            status = n.NodeCollection([node]).get(["t_spike", "V_m", "E_L"] if kind in _V_M_AT else ["t_spike", *keys])
        last_spike = record[5 + n_core + 3]
        v_m_at = _V_M_AT.get(int(kind), 0) % n_core
        off_relative = kind in _V_M_AT and record[5 + v_m_at] + float(status["E_L"]) != float(status["V_m"])
        off_as_is = any(record[5 + at] != float(status[key]) for key, at in keys.items())
        if last_spike != float(status["t_spike"]) or off_relative or off_as_is:
            raise AccelUnavailable(f"{model}: the hidden-state accessor disagrees with NEST's status of node {node}")
        _checked.add(model)
    for model, s in hidden.stdp.items():
        _check_kplus(model, s)


def _check_kplus(model: str, s: Stdp) -> None:
    """The first row of ``s`` that holds a value agrees with NEST's own Kplus of a connection
    of its source and target (once per model and process; NEST sorts its connections here).
    A model without Kplus (Tsodyks') has nothing NEST reports to check the row against: the
    connection reader's own check of its row against NEST's status covers its layout."""
    written = s.written()
    if model in _checked or not written.any():
        return
    row, n = s.rows(np.array([int(np.argmax(written))])), nest()
    with nest_output_to():
        if "Kplus" not in n.GetDefaults(model):
            return
        conns = n.GetConnections(n.NodeCollection([int(row.source[0])]), n.NodeCollection([int(row.target[0])]), synapse_model=model)
        kplus = conns.get("Kplus")
    if float(row.kplus[0]) not in np.atleast_1d(np.asarray(kplus, dtype=float)):
        raise AccelUnavailable(f"{model}: the hidden-state accessor disagrees with NEST's Kplus of {row.source[0]} -> {row.target[0]}")
    _checked.add(model)


_kplus_unchecked: dict[str, Stdp] = {}
"""Per model, the first row whose Kplus :func:`write_connected_kplus` set, until checked."""
_kplus_deferred: dict[str, list[tuple[Column, Column, np.ndarray | Callable[[], np.ndarray]]]] = {}
"""Per model, the rows whose Kplus :func:`write_connected_kplus` was asked to defer."""


def write_connected_kplus(model: str, source: Column, target: Column, kplus: np.ndarray | Callable[[], np.ndarray], *, defer: bool = False) -> None:
    """Set Kplus of a model's connections that a connect of these rows (every one between two
    neurons) has just made, row by row in connect order, before NEST sorts them;
    t_lastspike stays a new connection's 0. NEST's own Connect takes such a value through a
    dictionary per connection, which costs as much as making the connection. Raises
    :class:`AccelUnavailable` if the accessor is not built or the connections are not those
    rows in that order and cannot be matched by source and target either (some may then be
    written: the caller must rebuild). Check the value
    against NEST's once the kernel may sort its connections: :func:`check_connected_kplus`.

    ``defer``: only noted, for :func:`write_hidden` to supersede (it writes the exact Kplus
    and t_lastspike of a hidden section's STDP rows) and :func:`flush_connected_kplus` to
    write what it did not; ``kplus`` may then be a function that makes the values."""
    if defer:
        _kplus_deferred.setdefault(model, []).append((source, target, kplus))
        return
    if callable(kplus):
        kplus = kplus()
    lib = state_library(build_it=False)
    rows = Stdp(source, target, kplus, np.zeros(len(kplus)))  # (zeros: pages only where read)
    if not lib.write_stdp_ordered(model, rows):
        lib.write_stdp(model, rows)
    if len(kplus) and model not in _checked:
        _kplus_unchecked[model] = Stdp(source[:1], target[:1], kplus[:1], np.zeros(1))


def flush_connected_kplus() -> None:
    """Write the Kplus deferred by :func:`write_connected_kplus` that no hidden write set."""
    while _kplus_deferred:
        model, tables = _kplus_deferred.popitem()
        for rows in tables:
            write_connected_kplus(model, *rows)


def check_connected_kplus() -> None:
    """The Kplus :func:`write_connected_kplus` set agrees with NEST's own (first use of each
    model in a process; raises :class:`AccelUnavailable`). A model whose Kplus was written
    since (a hidden section) was checked there."""
    while _kplus_unchecked:
        model, s = _kplus_unchecked.popitem()
        _check_kplus(model, s)


def turn_off(reason: str) -> None:
    """Do without the accessor for the rest of this process (it disagreed with NEST)."""
    global _loaded, _refused
    with _lock:
        _loaded, _refused = None, reason
    forget_connected_kplus()


def forget_connected_kplus() -> None:
    """Drop what :func:`check_connected_kplus` would check and :func:`flush_connected_kplus`
    would write (the kernel was rebuilt without it)."""
    _kplus_unchecked.clear()
    _kplus_deferred.clear()


def read_hidden(*, stdp: bool = True) -> Hidden:
    """This process's hidden state now (between Simulate calls), checked against NEST's status
    on first use of each model. Without ``stdp`` the STDP connections are not read (a store
    takes their t_lastspike with the rest of each connection, in the connection reader)."""
    lib = state_library()
    hidden = read_hidden_of(lib, kernel_now(), {m: lib.read_stdp(m) for m in _stdp_models(lib)} if stdp else {})
    check_against_status(hidden)
    return hidden


@dataclass(frozen=True)
class KernelNow:
    """What PyNEST tells of the kernel for a hidden-state read: asked before a background
    store forks, whose child must not call into the kernel through PyNEST."""

    threads: int
    network_size: int
    t_ms: float


def kernel_now() -> KernelNow:
    n = nest()
    with nest_output_to():
        return KernelNow(int(n.local_num_threads), int(n.GetKernelStatus("network_size")), float(n.biological_time))


def read_hidden_of(lib: StateLibrary, now: KernelNow, stdp: dict[str, Stdp] | None = None) -> Hidden:
    """The hidden state of the kernel as ``now`` describes it, read by the accessor alone (no
    PyNEST call, no check): what a forked store child may do."""
    ids, offsets, records = lib.read_nodes(np.arange(1, now.network_size + 1, dtype=np.int64))
    return Hidden(now.t_ms, now.threads, ids, offsets, records, stdp or {}, _read_rngs(lib, now.threads), lib.read_devices(), lib.read_transit(), lib.thread_vps(now.threads))


def check_nodes(ids: np.ndarray) -> None:
    """:func:`check_against_status` for the records of ``ids`` alone (say, one node of each
    model not yet checked in this process), so that a background store's child may read the
    rest unchecked."""
    lib = state_library()
    nodes, offsets, records = lib.read_nodes(ids)
    check_against_status(Hidden(0.0, 0, nodes, offsets, records))


def unchecked(models: set[str]) -> set[str]:
    """Those of ``models`` not yet checked against NEST's status in this process."""
    return models - _checked


def _read_rngs(lib: StateLibrary, threads: int) -> list[str]:
    rngs = [lib.read_rng(RANK_SYNCED)]
    rngs += [lib.read_rng(VP_SYNCED, t) for t in range(threads)]
    rngs += [lib.read_rng(VP_SPECIFIC, t) for t in range(threads)]
    return rngs


_verified: set[str] = set()
"""Node kinds and STDP models whose write was read back whole in this process."""
_SAMPLE_NODES, _SAMPLE_ROWS = 32, 8


def write_hidden(hidden: Hidden) -> None:
    """Write a snapshot's ``hidden`` (every virtual process's: ``hidden.vps`` all of them) into
    this kernel: one rebuilt from the snapshot at the same time, with as many virtual processes,
    in any layout of MPI processes and threads (``hidden.rngs`` empty: the generators are left
    as they are). Under MPI every process calls it and writes its own part; a failure in one
    fails it in all (:meth:`einet.ranks.Ranks.together`) before any collective step.

    The STDP rows come first, in the order the restore connected them (``hidden.stdp``: the
    snapshot's rows with their stored Kplus and t_lastspike; NaN t_lastspike: a connection to
    or from a device, not read), before NEST sorts the connections; should the connections
    not be in that order, they are matched by source and target instead. Then the kernel
    makes its connection infrastructure (a Prepare/Cleanup pair: sorted connections and the
    target tables the spikes in transit are sent through again) and the rest is written.
    It is read back and must be what was written: whole the first time a node model or STDP
    model is written in this process, else a sample of node records and STDP rows (and the
    generators, devices and spikes in transit whole). STDP rows written in connect order were
    each matched to their connection's source and target as they were written: of those a
    sample is read back, and one compared with NEST's own Kplus."""
    r = ranks()
    n = nest()
    in_order = True
    with r.together():
        lib = state_library()
        with nest_output_to():
            t_ms = float(n.biological_time)
            threads = int(n.local_num_threads)
        if abs(t_ms - hidden.t_ms) > 1e-9 or threads * r.size != len(hidden.vps):
            raise AccelUnavailable(f"hidden state of {hidden.t_ms} ms of {len(hidden.vps)} virtual processes does not fit a kernel at {t_ms} ms with {threads * r.size}")
        mine = _this_process(hidden, lib, threads)
        for model, st in mine.stdp.items():
            _kplus_unchecked.pop(model, None)  # checked below, with the values written now
            deferred = _kplus_deferred.pop(model, [])  # the section's exact values instead
            if deferred and not st.written().all():
                # rows the section does not hold (NaN: not read when stored) keep the connect's
                for rows in deferred:
                    write_connected_kplus(model, *rows)
                _kplus_unchecked.pop(model, None)
            if not lib.write_stdp_ordered(model, st):
                lib.write_stdp(model, st)
                in_order = False
    with nest_output_to():
        n.Prepare()
        n.Cleanup()
    with r.together():
        lib.write_nodes(mine.nodes, mine.offsets, mine.records)
        if mine.rngs:  # none: the generators keep the new seed's streams
            lib.write_rng(RANK_SYNCED, 0, mine.rngs[0])
            for t in range(threads):
                lib.write_rng(VP_SYNCED, t, mine.rngs[1 + t])
                lib.write_rng(VP_SPECIFIC, t, mine.rngs[1 + threads + t])
        lib.write_devices(hidden.devices)  # each process takes its virtual processes' lines
        lib.write_transit(hidden.transit)  # each process its neurons' spikes
    lib.gather_transit()
    with r.together():
        written = _models_of(mine)
        if written <= _verified:
            _verify_sample(lib, mine)
            return
        whole_stdp = bool(mine.stdp) and not in_order
        _verify(mine, read_hidden(stdp=whole_stdp), stdp=whole_stdp)
        if not whole_stdp:
            _verify_stdp_sample(lib, mine)
            for model, st in mine.stdp.items():
                _check_kplus(model, st)
        _verified.update(written)


def _this_process(hidden: Hidden, lib: StateLibrary, threads: int) -> Hidden:
    """What of a snapshot's ``hidden`` this process holds: its nodes' records, its threads'
    generators (in thread order, as :func:`read_hidden` reads them), its virtual processes'
    device lines, its neurons' spikes in transit, and its rows of the STDP connections
    (those to its neurons). In one process, all of it."""
    vps = lib.thread_vps(threads)
    at = {vp: k for k, vp in enumerate(hidden.vps)}
    k = len(hidden.vps)
    rngs = [hidden.rngs[0], *(hidden.rngs[1 + at[v]] for v in vps), *(hidden.rngs[1 + k + at[v]] for v in vps)] if hidden.rngs else []
    if ranks().size == 1:
        return Hidden(hidden.t_ms, threads, hidden.nodes, hidden.offsets, hidden.records, hidden.stdp, rngs, hidden.devices, hidden.transit, vps)
    nodes, offsets, records = _records_of(hidden, np.isin(hidden.nodes, local_ids(hidden.nodes)))
    own = set(vps)
    lines = [line for line in hidden.devices.splitlines(keepends=True) if int(line.split(" ", 2)[1]) in own]
    t = hidden.transit
    transit = {key: t[key][np.isin(t["source"], local_ids(np.unique(t["source"])))] for key in TRANSIT}
    size = max([int(hidden.nodes.max(initial=0)), *(int(max(st.source.max(initial=0), st.target.max(initial=0))) for st in hidden.stdp.values())]) + 1
    here = np.zeros(size, dtype=bool)
    here[local_ids(np.arange(1, size, dtype=np.int64))] = True
    stdp = {model: Stdp(st.source, st.target, st.kplus, st.t_lastspike, st.runs, st.covered, here) for model, st in hidden.stdp.items()}
    return Hidden(hidden.t_ms, threads, nodes, offsets, records, stdp, rngs, "".join(lines), transit, vps)


def _records_of(hidden: Hidden, keep: np.ndarray, order: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The node ids, offsets and records of the nodes ``keep`` flags, in ``order`` (positions
    among the kept; default: as they are)."""
    lengths = np.diff(hidden.offsets)
    kept = np.flatnonzero(keep)
    if order is not None:
        kept = kept[order]
    offsets = np.zeros(len(kept) + 1, dtype=np.int64)
    np.cumsum(lengths[kept], out=offsets[1:])
    # each kept record's values, from where it starts in ``records``
    at = np.repeat(hidden.offsets[kept] - offsets[:-1], lengths[kept]) + np.arange(int(offsets[-1]), dtype=np.int64)
    return hidden.nodes[kept], offsets, hidden.records[at]


def merge_hidden(parts: list[Hidden]) -> Hidden:
    """Every MPI process's :func:`read_hidden` (each its own nodes, threads and neurons' spikes;
    in rank order) as one: node records by node id, generators, device lines and spikes in
    transit by virtual process (each one's spikes in its register's order, which is the order
    NEST delivers them in)."""
    first = parts[0]
    if any(p.rngs[0] != first.rngs[0] or abs(p.t_ms - first.t_ms) > 1e-9 or p.threads != first.threads for p in parts):
        raise AccelUnavailable("the MPI processes' kernels differ (time, threads or the rank-synced generator)")
    glued = Hidden(first.t_ms, first.threads, np.concatenate([p.nodes for p in parts]), np.concatenate([[0], np.cumsum(np.concatenate([np.diff(p.offsets) for p in parts]))]).astype(np.int64), np.concatenate([p.records for p in parts]))
    nodes, offsets, records = _records_of(glued, np.ones(len(glued.nodes), dtype=bool), np.argsort(glued.nodes, kind="stable"))
    vps = [vp for p in parts for vp in p.vps]
    by_vp = sorted(range(len(vps)), key=vps.__getitem__)
    synced = [s for p in parts for s in p.rngs[1 : 1 + p.threads]]
    specific = [s for p in parts for s in p.rngs[1 + p.threads :]]
    rngs = [first.rngs[0], *(synced[k] for k in by_vp), *(specific[k] for k in by_vp)]
    lines = sorted((line for p in parts for line in p.devices.splitlines(keepends=True)), key=lambda line: int(line.split(" ", 2)[1]))
    t = {key: np.concatenate([p.transit[key] for p in parts]) for key in TRANSIT}
    spikes_by_vp = np.argsort(t["source"] % len(vps), kind="stable")  # a neuron's virtual process: NEST's node_id % n_vp
    return Hidden(first.t_ms, first.threads, nodes, offsets, records, {}, rngs, "".join(lines), {key: t[key][spikes_by_vp] for key in TRANSIT}, sorted(vps))


def _models_of(hidden: Hidden) -> set[str]:
    kinds = np.unique(hidden.records[hidden.offsets[:-1]].astype(int)) if len(hidden.nodes) else np.empty(0, int)
    return {MODEL_OF_KIND[int(k)] for k in kinds} | {f"{m} connections" for m in hidden.stdp}


def _neuron_rows(s: Stdp, sources: np.ndarray | None = None) -> Stdp:
    """The rows written (not those marked NaN: to or from a device, or from a source without a
    record); with ``sources``, the rows from those."""
    keep = s.written() if sources is None else np.isin(s.source, sources)
    return s if keep.all() and s.runs is None and s.covered is None else s.rows(np.flatnonzero(keep))


def _same_rows(a: Stdp, b: Stdp) -> bool:
    """The same connections with the same values, in any order (each column compared sorted:
    the pairing itself is the accessor's, matched by source and target)."""

    def pairs(s: Stdp) -> np.ndarray:
        return s.source.astype(np.int64) << 32 | s.target.astype(np.int64)

    return all(np.array_equal(np.sort(x), np.sort(y)) for x, y in ((pairs(a), pairs(b)), (a.kplus, b.kplus), (a.t_lastspike, b.t_lastspike)))


def _verify(wanted: Hidden, found: Hidden, *, stdp: bool) -> None:
    """What was written reads back the same (the round trip through the rebuilt kernel); the
    STDP rows too if ``stdp``."""
    problems = []
    if not (np.array_equal(wanted.nodes, found.nodes) and np.array_equal(wanted.offsets, found.offsets) and wanted.records.tobytes() == found.records.tobytes()):
        problems.append("node records")
    # the rows written, against the connections from sources with a record (the others keep
    # what the rebuild gave them)
    if stdp and (set(wanted.stdp) != set(found.stdp) or not all(_same_rows(_neuron_rows(s), _neuron_rows(found.stdp[m], _covered_ids(s, wanted))) for m, s in wanted.stdp.items())):
        problems.append("STDP connections")
    _verify_small(wanted, found.rngs, found.devices, found.transit, problems)


def _covered_ids(s: Stdp, wanted: Hidden) -> np.ndarray:
    """The sources whose rows were written: those with a record in the section."""
    return np.flatnonzero(s.covered) if s.covered is not None else wanted.nodes


def _verify_small(wanted: Hidden, rngs: list[str], devices: str, transit: dict[str, np.ndarray], problems: list[str]) -> None:
    if wanted.rngs and wanted.rngs != rngs:
        problems.append("random generators")
    if wanted.devices != devices:
        problems.append("devices")
    if any(not np.array_equal(wanted.transit[k], transit[k]) for k in TRANSIT):
        problems.append("spikes in transit")
    if problems:
        raise AccelUnavailable(f"the hidden state did not read back as written: {', '.join(problems)}")


def _verify_sample(lib: StateLibrary, wanted: Hidden) -> None:
    """A sample of what was written reads back the same: node records and STDP rows (a
    connection of the same source and target with the same Kplus and t_lastspike); the
    generators, devices and spikes in transit whole (they are small)."""
    problems = []
    if len(wanted.nodes):
        at = np.unique(np.linspace(0, len(wanted.nodes) - 1, _SAMPLE_NODES).astype(np.int64))
        ids, offsets, records = lib.read_nodes(wanted.nodes[at])
        stored = np.concatenate([wanted.records[wanted.offsets[k] : wanted.offsets[k + 1]] for k in at])
        if not (np.array_equal(ids, wanted.nodes[at]) and np.array_equal(np.diff(offsets), wanted.offsets[at + 1] - wanted.offsets[at]) and records.tobytes() == stored.tobytes()):
            problems.append("node records")
    if not _stdp_sample_found(lib, wanted):
        problems.append("STDP connections")
    _verify_small(wanted, _read_rngs(lib, wanted.threads) if wanted.rngs else [], lib.read_devices(), lib.read_transit(), problems)


def _stdp_sample_found(lib: StateLibrary, wanted: Hidden) -> bool:
    """Each of a sample of the STDP rows written is a connection of the same source and target
    with the same Kplus and t_lastspike."""
    for model, s in wanted.stdp.items():
        written = s.written()
        count = int(np.count_nonzero(written))
        at = _nth_true(written, np.unique(np.linspace(0, count - 1, _SAMPLE_ROWS).astype(np.int64)) if count else np.empty(0, np.int64))
        if lib.stdp_sample_found(model, s.rows(at)) != len(at):
            return False
    return True


def _nth_true(mask: np.ndarray, ranks: np.ndarray, block: int = 1 << 20) -> np.ndarray:
    """The positions of the ``ranks``-th (ascending) true values of ``mask``, found a block at
    a time: the positions of all of them would take 8 bytes a row."""
    out, seen, r = [], 0, 0
    for lo in range(0, len(mask), block):
        idx = np.flatnonzero(mask[lo : lo + block])
        while r < len(ranks) and ranks[r] < seen + len(idx):
            out.append(lo + int(idx[ranks[r] - seen]))
            r += 1
        seen += len(idx)
    return np.array(out, dtype=np.int64)


def _verify_stdp_sample(lib: StateLibrary, wanted: Hidden) -> None:
    if not _stdp_sample_found(lib, wanted):
        raise AccelUnavailable("the hidden state did not read back as written: STDP connections")

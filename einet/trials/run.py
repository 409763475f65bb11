"""One trial, in a worker process: restore the snapshot, make the condition's changes, run,
summarise. What it returns depends only on its inputs (snapshot, changes, seed, threads, run
length), not on the worker or on the trials it ran before: the same inputs give the same
digest wherever they run.

A worker keeps one :class:`~einet.session.Session` (one NEST kernel, imported once) and one
parsed snapshot for all its trials; each trial resets the kernel and restores into it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..analysis import isi_cv
from ..protocol import Change
from ..runs import RunResult
from ..text import one_line

if TYPE_CHECKING:
    from ..session import Session
    from ..snapshot import Snapshot
    from .plan import TrialSet

FANO_BIN_MS = 10.0
"""Bins of the population spike counts whose Fano factor is reported (the PSTH's bins)."""


@dataclass(frozen=True)
class TrialSpec:
    """Everything a trial needs, as plain data (it travels to a worker process or a cluster)."""

    set_id: str
    index: int
    condition: int
    condition_name: str
    seed: int
    threads: int
    t_ms: float
    changes: tuple[dict[str, Any], ...]
    snapshot: str
    """The snapshot's path (read there when the worker holds that very file)."""
    sha256: str
    """The snapshot's SHA-256: a file or shipped copy with another is refused."""
    dask: bool = False
    """Runs as a Dask task: it stops at its next step once the task is cancelled (a running
    task cannot be killed from outside)."""


@dataclass(frozen=True)
class TrialOutcome:
    """A trial's figures (``row``), its run (``result``, None when it failed) and, for a trial
    that failed, its one line (``error``)."""

    spec: TrialSpec
    row: dict[str, Any]
    result: RunResult | None = None
    error: str = ""
    worker: str = field(default="")

    @property
    def ok(self) -> bool:
        return not self.error


def trial_specs(plan: TrialSet, set_id: str, snapshot: Path, sha256: str, *, threads: int, t_ms: float, dask: bool = False) -> list[TrialSpec]:
    """The specs of every trial of ``plan`` from ``snapshot`` (with its SHA-256), as plain data
    for the workers."""
    names = [c.name for c in plan.conditions]
    path = str(Path(snapshot).resolve())
    return [TrialSpec(set_id, t.index, t.condition, names[t.condition], t.seed, threads, t_ms, tuple(ch.to_dict() for ch in plan.conditions[t.condition].changes), path, sha256, dask) for t in plan.trials]


def failed_outcome(spec: TrialSpec, error: str) -> TrialOutcome:
    """The outcome of a trial that failed outside its own code (its worker died, say)."""
    row = _base_row(spec) | {"error": error}
    return TrialOutcome(spec, row, None, error, "")


def for_history(result: RunResult, spec: TrialSpec, snapshot: Path | str) -> RunResult:
    """A trial's run as the run history records it: labelled ``trials SET #K seed S
    CONDITION``, restored from ``snapshot`` as the user named it (not a worker's copy)."""
    labelled = dataclasses.replace(result, label=f"trials {spec.set_id} #{spec.index + 1} seed {spec.seed} {spec.condition_name}"[:200])
    return dataclasses.replace(labelled, origin=dataclasses.replace(labelled.origin, snapshot=str(snapshot)))


class ShippedSnapshotError(RuntimeError):
    """The snapshot a worker has or was sent is not the one of the set."""


_session: Session | None = None
_snapshot: tuple[str, Snapshot] | None = None  # (SHA-256, parsed): one per worker


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def holds_snapshot(path: str, sha256: str) -> bool:
    """Whether this worker reads the file with ``sha256`` at ``path`` (then it need not be
    shipped to it)."""
    from ..history import file_sha256

    return file_sha256(Path(path)) == sha256


def warm_up(path: str = "", sha256: str = "") -> bool:
    """Ahead of this worker's first trial, so that all workers do it at once rather than
    each at its first trial: import NEST and, when this worker holds the snapshot with
    ``sha256`` at ``path``, parse it. Returns whether it holds it (a Dask worker is asked this
    before the set: the snapshot need then not be shipped to it)."""
    from ..kernel import nest

    nest()  # PyNEST, imported once per worker
    if not path or not holds_snapshot(path, sha256):
        return False
    _parsed(path, sha256)
    return True


def snapshot_file(path: str, sha256: str, payload: bytes | None) -> str:
    """Where this worker reads the snapshot: ``path`` when it holds the file with ``sha256``,
    else the shipped ``payload`` (its SHA-256 checked on arrival) in a file of its own."""
    from ..history import file_sha256

    if payload is None:
        have = file_sha256(Path(path))
        if have != sha256:
            why = "cannot be read" if not have else "holds another file (SHA-256 differs)"
            raise ShippedSnapshotError(f"the snapshot {path} {why} on worker {socket.gethostname()}: use a shared file system or let einet ship it (--ship)")
        return path
    if hashlib.sha256(payload).hexdigest() != sha256:
        raise ShippedSnapshotError(f"the snapshot shipped to worker {socket.gethostname()} arrived damaged (SHA-256 differs)")
    target = Path(tempfile.gettempdir()) / f"einet-trials-{sha256[:32]}.h5"
    if file_sha256(target) != sha256:
        fd, part = tempfile.mkstemp(dir=target.parent, prefix=".einet-trials-", suffix=".part")
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.replace(part, target)  # whole or absent: another worker on this node may read it
    return str(target)


def _parsed(path: str, sha256: str) -> Snapshot:
    global _snapshot
    from ..snapshot import open_snapshot

    if _snapshot is None or _snapshot[0] != sha256:
        _snapshot = None  # one snapshot at a time in memory
        _snapshot = (sha256, open_snapshot(path))
    return _snapshot[1]


def _worker_session() -> Session:
    global _session
    from ..session import Session

    if _session is None:
        _session = Session(keep_results=False)
    return _session


def check_changes(path: str, sha256: str, conditions: tuple[tuple[dict[str, Any], ...], ...], payload: bytes | None = None) -> dict[str, Any]:
    """Check every condition's changes against the snapshot before any trial runs (raises
    :class:`~einet.protocol.ProtocolError` for a target, key or value the network refuses, or
    :class:`~einet.snapshot.SnapshotError`); returns this worker's name (``worker``) and the
    snapshot's run length (``t_sim_ms``). It also shows that the worker has einet and NEST."""
    from ..schedule import check_against_snapshot

    snap = _parsed(snapshot_file(path, sha256, payload), sha256)
    for changes in conditions:
        check_against_snapshot([Change.from_dict(c) for c in changes], snap)
    return {"worker": _worker_name(), "t_sim_ms": snap.t_sim_ms}


def run_trial(spec: TrialSpec, payload: bytes | None = None) -> TrialOutcome:
    """Run one trial in this process's kernel. A failure is returned as the outcome's one-line
    ``error``, never raised: one trial's failure is not the set's."""
    t0 = time.perf_counter()
    try:
        snap = _parsed(snapshot_file(spec.snapshot, spec.sha256, payload), spec.sha256)
        session = _worker_session()
        if session.built:
            session.reset()  # nothing here to lose: no rehearsal in another process first
        session.config = session.config.replace(t_sim_ms=spec.t_ms)
        session.restore(snap, seed=spec.seed, threads=spec.threads, changes=tuple(Change.from_dict(c) for c in spec.changes))
        from ..network import weight_samples

        before = weight_samples(session.network) if session.network is not None else {}
        with _stop_watch(spec.dask) as cancel:
            result = session.run(spec.t_ms, label=f"trial {spec.index + 1}", cancel=cancel)
        if result.cancelled:
            raise TrialStopped("the set was stopped")
    except Exception as exc:  # noqa: BLE001 - the trial fails, the set goes on
        row = _base_row(spec) | {"wall_s": round(time.perf_counter() - t0, 3), "error": f"{type(exc).__name__}: {one_line(exc)}"}
        return TrialOutcome(spec, row, None, row["error"], _worker_name())
    row = _base_row(spec) | figures(result, before) | {"wall_s": round(time.perf_counter() - t0, 3), "error": ""}
    return TrialOutcome(spec, row, result, "", _worker_name())


class TrialStopped(RuntimeError):
    """The set was stopped (Ctrl-C) while this trial ran."""


STOP_POLL_S = 0.2
"""How often a trial on a Dask worker looks whether its task was cancelled."""


@contextlib.contextmanager
def _stop_watch(dask: bool) -> Iterator[threading.Event | None]:
    """On a Dask worker: a :class:`threading.Event` set once this task is cancelled (the set
    stopped by Ctrl-C, or its client gone), which Dask cannot do to a running task itself;
    a thread looks at the worker's own state of the task. Elsewhere None."""
    if not dask:
        yield None
        return
    from distributed import get_worker
    from distributed.worker import thread_state

    worker, key = get_worker(), getattr(thread_state, "key", None)
    cancel = threading.Event()
    done = threading.Event()

    def watch() -> None:
        while not done.wait(STOP_POLL_S):
            task = worker.state.tasks.get(key) if key is not None else None
            if task is None or task.state in ("cancelled", "released", "forgotten"):
                cancel.set()
                return

    thread = threading.Thread(target=watch, name="einet-trial-stop", daemon=True)
    thread.start()
    try:
        yield cancel
    finally:
        done.set()
        thread.join(STOP_POLL_S * 2)


def _base_row(spec: TrialSpec) -> dict[str, Any]:
    return {"set": spec.set_id, "trial": spec.index + 1, "condition": spec.condition_name, "condition_index": spec.condition, "seed": spec.seed, "threads": spec.threads}


def figures(result: RunResult, weights_before: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """A run's figures: per population its rate (Hz per neuron), mean CV of inter-spike
    intervals and Fano factor of its spike counts in :data:`FANO_BIN_MS` bins (1 for
    independent Poisson firing, more when it fires in bursts); per synapse model the mean of its
    weight sample at the end and its change over the run; spikes, digest, times."""
    row: dict[str, Any] = {"t_start_ms": result.t_start_ms, "t_stop_ms": result.t_stop_ms, "spikes": result.n_spikes, "digest": result.digest}
    rates = result.group_rates_hz()
    group = result.spike_group if result.spike_group is not None else np.full(result.n_spikes, -1)
    edges = np.arange(result.t_start_ms, result.t_stop_ms + 1e-9, FANO_BIN_MS)
    for k, g in enumerate(result.groups):
        mine = group == k
        row[f"rate_hz.{g.name}"] = rates[g.name]
        row[f"cv.{g.name}"] = isi_cv(result.senders[mine], result.times[mine])
        row[f"fano.{g.name}"] = fano_factor(result.times[mine], edges)
    for model, w in result.weights.items():
        end = float(np.mean(w)) if len(w) else float("nan")
        start = weights_before.get(model)
        row[f"weight.{model}"] = end
        row[f"dweight.{model}"] = end - float(np.mean(start)) if start is not None and len(start) == len(w) and len(w) else float("nan")
    return row


def fano_factor(times: np.ndarray, edges: np.ndarray) -> float:
    """Variance over mean of the spike counts in the bins ``edges`` make (NaN without two
    bins or without spikes)."""
    if len(edges) < 3:
        return float("nan")
    counts, _ = np.histogram(times, bins=edges)
    mean = float(np.mean(counts))
    return float(np.var(counts, ddof=1)) / mean if mean > 0 else float("nan")

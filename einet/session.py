"""A simulation session: owns the NEST kernel and records every run it makes."""

from __future__ import annotations

import bisect
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal, Protocol, overload

import numpy as np

from . import analysis
from .accel.build import AccelUnavailable
from .accel.state import check_connected_kplus, flush_connected_kplus, turn_off
from .clock import step_on_grid
from .config import NetworkConfig, check_threads
from .kernel import nest, nest_output_to, set_log_path
from .models import model_protocol
from .network import Network, build_model, check_restorable, checked_model, drain_rates, drain_spikes, rebuild, recorders_writing_files, settle_probes, weight_samples
from .protocol import Change, ProtocolError, ordered
from .ranks import ranks
from .rehearsal import refused_by_nest, rehearsal_key, rehearse
from .runs import Group, Origin, RunResult, StepUpdate
from .snapshot import Snapshot, SnapshotError, open_snapshot, write_snapshot
from .snapshot.files import check_store_target
from .store import StoreHandle, capture, check_storable, check_written, default_workers, not_stored_of, probe_synapse_models, store_in_background
from .store.hidden import HiddenWriteFailed, write_back
from .text import one_line

log = logging.getLogger("einet")

StepCallback = Callable[[StepUpdate], None]


class SessionLike(Protocol):
    """What the CLI's commands and the demo need of a session: this process's :class:`~einet.session.Session`, or
    one an MPI job serves (:class:`~einet.engine.remote.RemoteSession`)."""

    config: NetworkConfig

    def build(self, config: NetworkConfig | None = None) -> None: ...

    def check_storable(self) -> None: ...

    def run(self, t_ms: float | None = None, *, label: str | None = None, step_ms: float | None = None, on_step: Callable[[StepUpdate], None] | None = None) -> RunResult: ...

    def store(self, path: str | Path, *, overwrite: bool = False, progress: Callable[[float], None] | None = None) -> object: ...

    def restore(self, source: str | Path | Snapshot, *, seed: int | None = None, threads: int | None = None, changes: tuple[Change, ...] = ()) -> object: ...


class SessionError(RuntimeError):
    """An action that does not apply in the session's current state."""


class RunLengthError(SessionError, ValueError):
    """A run length that is not a whole number of resolution steps of at least one."""


class Session:
    """Build, run, store, reset and restore a network in this process's NEST kernel.

    The network is the configuration's model (default: the reference network); a restored
    one is whatever the snapshot holds, rebuilt without running any model code.

    There is one NEST kernel per process, so use one Session per process. Every call into
    NEST sends NEST's own output to ``log_path`` (default: discarded), never to the terminal.

    Only a model the user names is ever imported: ``build()`` builds the configuration given
    here or to the last ``build(config)``, also after a restore. A snapshot's model reference
    is a record of where it came from (``config.model`` while its network runs), never code
    to import.
    """

    def __init__(self, config: NetworkConfig | None = None, *, log_path: str | Path | None = None, keep_results: bool = True) -> None:
        self.config = config or NetworkConfig()
        """The running network's configuration (a restored one's comes from its snapshot)."""
        self._own_config = self.config  # what build() builds: never a snapshot's
        self.results: list[RunResult] = []
        """This session's runs, in order (the run history file is :mod:`einet.history`)."""
        self.keep_results = keep_results  # a long-lived engine hands results over instead
        self.n_runs = 0
        self.network: Network | None = None
        self.seed = self.config.seed
        self.threads = self.config.threads
        self.snapshot_path: str = ""
        self.snapshot_t_ms = 0.0
        self.bit_comparable = True
        self.exact = False
        """Whether the network is the continued run of the snapshot it was restored from, bit
        for bit: its hidden state written back whole (docs/hidden-state.md)."""
        self.hidden_note = ""
        """Why the last restore was not exact, in one line ('' if it was, or nothing was restored)."""
        self._next_origin: Origin | None = None
        self._made: list[dict[str, object]] = []
        self._background: StoreHandle | None = None
        self._rehearsed: set[tuple[object, ...]] = set()
        set_log_path(log_path)

    # -- state -----------------------------------------------------------------------------
    @property
    def built(self) -> bool:
        return self.network is not None

    @property
    def time_ms(self) -> float:
        """Biological time of the kernel (0 when empty)."""
        if self.network is None:
            return 0.0
        return round(float(nest().biological_time), 6)

    @property
    def groups(self) -> tuple[Group, ...]:
        """The recorded populations (empty when no network is built)."""
        if self.network is None:
            return ()
        return tuple(Group(p.name, p.size, p.raster_ids.copy() if p.sends == "spikes" else p.ids[:0].copy(), p.sends) for p in self.network.populations)

    @property
    def protocol(self) -> tuple[Change, ...]:
        """The protocol's changes still to come, by time."""
        return tuple(self.network.protocol) if self.network is not None else ()

    def not_stored(self) -> list[str]:
        """What a snapshot of this network would not hold (computed from the network)."""
        return not_stored_of(self.network) if self.network is not None else []

    def _require_network(self) -> Network:
        if self.network is None:
            raise SessionError("no network: build or restore one first")
        return self.network

    # -- verbs -----------------------------------------------------------------------------
    def build(self, config: NetworkConfig | None = None) -> None:
        """Reset the kernel and build ``config``'s model (seed and threads from it); without
        ``config``, the session's own configuration: the one given to the constructor or to the
        last ``build(config)``, never a restored snapshot's (whose model reference names a
        file or module the user did not choose to run)."""
        config = config or self._own_config
        with ranks().together():
            check_threads(config.threads)
            build = checked_model(config)  # a refusal leaves the kernel and this session as they were
            planned = [Change.from_dict(c) for c in (*config.protocol, *model_protocol(build, config.scale, config.params, config.model))]
        self.config = self._own_config = config
        self.network = None
        with ranks().together():
            net = build_model(config, build)
            probe_synapse_models(net)
        settle_probes(net)
        self._start_protocol(net, planned, check=planned)
        self.network = net
        self.seed, self.threads = self.config.seed, self.config.threads
        self.snapshot_path, self.snapshot_t_ms, self.bit_comparable = "", 0.0, True
        self.exact, self.hidden_note = False, ""
        self._next_origin = Origin("fresh")

    def _start_protocol(self, net: Network, changes: list[Change], *, check: list[Change]) -> None:
        """Schedule ``changes`` on a new network (``check``: the ones not yet checked against
        it) and make those due at once."""
        from .schedule import check_against_network

        with ranks().together():
            check_against_network(check, net)
        net.protocol = ordered(changes)
        self._made = []
        self._make_due(net, float(nest().biological_time))

    def _make_due(self, net: Network, now_ms: float) -> None:
        from .schedule import apply

        res = float(nest().resolution)
        while net.protocol and net.protocol[0].t_ms <= now_ms + res / 2:
            change = net.protocol.pop(0)
            apply(net, change)
            self._made.append({**change.to_dict(), "made_at_ms": now_ms})

    def _psth_row(self, k: int, group: Group, times: np.ndarray, sampled: list[tuple[np.ndarray, ...]], t_start: float, t_end: float) -> np.ndarray:
        """Population ``k``'s PSTH row: its spikes binned, or for a rate population the mean of
        the rates einet's multimeter sampled."""
        if group.sends != "rate" or not sampled or self.network is None:
            return analysis.psth(times, t_start, t_end, group.size)[1]
        senders, at, rates = (np.concatenate(parts) for parts in zip(*sampled))
        mine = self.network.group_of(senders) == k
        return analysis.rate_trace(at[mine], rates[mine], t_start, t_end)[1]

    def check_storable(self) -> None:
        """Refuse now, with :class:`~einet.snapshot.CannotStoreError`, a network that a store
        would refuse for what it is made of (structural plasticity, gap junctions and other
        unsupported synapse models, compartmental models, nodes added after einet's recorder):
        cheap, so that it can come right after a build, before hours of simulation."""
        net = self._require_network()
        with ranks().together():
            check_storable(net)

    def reset(self) -> None:
        """Reset the NEST kernel to a clean slate (the run history is kept)."""
        with nest_output_to():
            nest().ResetKernel()
        self.network = None
        self._next_origin = None

    @overload
    def store(self, path: str | Path, *, overwrite: bool = ..., progress: Callable[[float], None] | None = ..., workers: int | None = ..., background: Literal[False] = ...) -> Snapshot | None: ...

    @overload
    def store(self, path: str | Path, *, overwrite: bool = ..., progress: Callable[[float], None] | None = ..., workers: int | None = ..., background: Literal[True]) -> StoreHandle: ...

    def store(self, path: str | Path, *, overwrite: bool = False, progress: Callable[[float], None] | None = None, workers: int | None = None, background: bool = False) -> Snapshot | StoreHandle | None:
        """Store every node's settable state and every connection to an HDF5 snapshot.

        Connections are read by ``workers`` forked processes (default: the configuration's
        ``store_workers``, 0 meaning every usable core; 1 reads in this process). With
        ``background`` the state is taken now (a short pause that does not grow with the
        connections: settings, counts and a fork) and a forked process reads, writes and
        publishes the file while this one goes on: the returned
        :class:`~einet.store.StoreHandle` has ``done``, ``progress`` and ``wait()``. What
        cannot be stored faithfully, or what this NEST could not restore, is refused with
        :class:`~einet.snapshot.CannotStoreError` before anything is written (see
        :meth:`check_storable` to know before simulating); an existing file is never replaced
        unless ``overwrite``.

        Under MPI every rank reads its own share in its own process (no forked readers, no
        background store) and rank 0 writes the one file; ranks other than 0 return None.
        """
        net = self._require_network()
        requested = workers if workers is not None else self.config.store_workers
        r = ranks()
        if r.size > 1:
            if background:
                raise SessionError("a background store forks, which MPI ranks must not: store in the foreground")
            with r.together():
                if r.is_root:
                    check_store_target(path, overwrite)  # before every rank reads its share
            snap = capture(net, seed=self.seed, progress=progress)
            with r.together():
                if snap is not None:
                    check_written(snap)
                    write_snapshot(snap, path, overwrite=overwrite)
            return snap
        if background:
            if self.store_in_flight is not None:
                raise SessionError(f"a store of {self.store_in_flight.path.name} is in progress ({100 * self.store_in_flight.progress:.0f}%): wait for it first")
            # at idle priority: the simulation keeps its cores, the readers take what it leaves
            # and every core once it stops
            self._background = store_in_background(net, path, seed=self.seed, overwrite=overwrite, workers=default_workers(requested))
            return self._background
        snap = capture(net, seed=self.seed, progress=progress, workers=default_workers(requested))
        check_written(snap)
        write_snapshot(snap, path, overwrite=overwrite)
        return snap

    @property
    def store_in_flight(self) -> StoreHandle | None:
        """The background store still running, if any."""
        if self._background is not None and self._background.done:
            return None
        return self._background

    def restore(self, source: str | Path | Snapshot, *, seed: int | None = None, threads: int | None = None, changes: tuple[Change, ...] = ()) -> Snapshot:
        """Validate a snapshot fully, then reset the kernel and rebuild the stored network.

        The restored network goes on from the stored time, with the stored protocol's changes
        still to come plus ``changes`` (one at or before the stored time is made at once: a
        branch from the snapshot). A snapshot that fails validation, or a change it has no
        target or key for, raises (:class:`~einet.snapshot.SnapshotError`,
        :class:`~einet.protocol.ProtocolError`) and the running kernel is left exactly as it
        was. ``seed`` and ``threads`` default to the snapshot's; runs with another thread count
        are flagged as not bit-comparable.
        """
        from .schedule import check_against_snapshot
        from .snapshot import load  # noqa: F401 - h5py imported here once: the forked reader need not import it each time

        r = ranks()
        with r.together():  # under MPI every rank reads and checks; all go on, or none
            snap = source if isinstance(source, Snapshot) else open_snapshot(source)
            seed = snap.seed if seed is None else seed
            # the stored number of virtual processes, spread over the ranks where it divides
            threads = max(1, snap.n_vp // r.size) if threads is None else threads
            # the network is the snapshot's; the run length stays the session's choice
            config = snap.config.replace(seed=seed, threads=threads, t_sim_ms=self.config.t_sim_ms)
            check_threads(threads)
            check_restorable(snap)  # before the kernel is touched
            try:  # a stored change is the file's: refused as the snapshot's fault
                stored = [Change.from_dict(c) for c in snap.protocol]
                check_against_snapshot(stored, snap)
            except ProtocolError as exc:
                raise SnapshotError(f"its stored protocol: {exc}") from None
            check_against_snapshot(changes, snap)
            pending = stored + list(changes)
            if self.network is not None and r.is_root:
                self._rehearse(snap, seed=seed, threads=threads, changes=changes)
        self.network = None
        try:
            net, exact, note, asked = self._rebuild_all(snap, threads=threads, seed=seed, config=config)
        except AccelUnavailable as exc:
            # the accessor disagreed with NEST (checked on first use): without it, for good
            turn_off(f"the hidden-state accessor is turned off: {one_line(exc)}")
            log.warning("hidden-state accessor turned off for this process: %s", one_line(exc))
            net, exact, note, asked = self._rebuild_all(snap, threads=threads, seed=seed, config=config)
        if note:
            # another seed or other threads make another run: no surprise, no warning
            (log.info if asked else log.warning)(note)
        self._start_protocol(net, pending, check=list(changes))
        self.network = net
        self.config, self.seed, self.threads = config, seed, threads
        self.snapshot_path = snap.source_path
        self.snapshot_t_ms = snap.t_stored_ms
        self.bit_comparable = threads * r.size == snap.n_vp
        self.exact, self.hidden_note = exact and not changes, note if snap.hidden is not None else "the snapshot holds no hidden state"
        self._next_origin = Origin("restored", self.snapshot_path or "(in memory)", snap.t_stored_ms)
        return snap

    def _rebuild_all(self, snap: Snapshot, *, threads: int, seed: int, config: NetworkConfig) -> tuple[Network, bool, str, bool]:
        """Rebuild, write the hidden section back, check what the accessor wrote: (the network,
        whether it is the continued one, a note, whether the note follows from what was asked)."""
        # a hidden section's STDP rows set Kplus exactly: written after the connects too, it
        # was written twice (1.6 s each at scale 40)
        net = self._rebuild(snap, threads=threads, seed=seed, config=config, defer_kplus=snap.hidden is not None)
        exact, note, asked = False, "", False
        if snap.hidden is not None:
            # last, once the network is rebuilt and checked: a write that fails part way is
            # undone by rebuilding without it (the restore is then today's, and says why)
            try:
                exact, note, asked = write_back(snap, seed=seed)
            except HiddenWriteFailed as exc:
                note = str(exc)
                net = self._rebuild(snap, threads=threads, seed=seed, config=config)
        flush_connected_kplus()
        check_connected_kplus()
        with ranks().together():
            # after the hidden write: its Prepare made the connection tables the probe's fetch
            # would otherwise make
            probe_synapse_models(net)
        settle_probes(net)
        return net, exact, note, asked

    def _rebuild(self, snap: Snapshot, *, threads: int, seed: int, config: NetworkConfig, defer_kplus: bool = False) -> Network:
        with ranks().together():
            try:
                net = rebuild(snap, threads=threads, seed=seed, config=config, defer_kplus=defer_kplus)
            except (SnapshotError, AccelUnavailable):
                raise
            except Exception as exc:  # NEST's own refusal of a value: the file's fault
                raise refused_by_nest(exc) from exc
        return net

    def _rehearse(self, snap: Snapshot, *, seed: int, threads: int, changes: tuple[Change, ...]) -> None:
        # a network to lose: NEST must have built this one once elsewhere (see einet.rehearsal)
        key = rehearsal_key(snap, threads, changes)
        if key is None or key not in self._rehearsed:
            rehearse(snap, seed=seed, threads=threads, changes=changes)
            if key is not None:
                self._rehearsed.add(key)

    def run(
        self,
        t_ms: float | None = None,
        *,
        label: str | None = None,
        step_ms: float | None = None,
        step_wall_s: float | None = None,
        on_step: StepCallback | None = None,
        cancel: threading.Event | None = None,
        marks: Sequence[float] = (),
    ) -> RunResult:
        """Simulate for ``t_ms`` (default: the configuration's) from the current time.

        The run proceeds in steps of about ``step_ms``, each ending on the kernel's
        communication grid (:func:`einet.clock.step_on_grid`: the spikes then do not depend on
        the steps); with ``step_wall_s`` the step length adapts so that one step takes about
        that much wall time. After each step ``on_step`` gets
        only the new spikes, and ``cancel`` is checked; a cancelled run ends early and is
        marked so. A run right after another one continues it. A step also ends at each of
        ``marks`` (biological times, ascending), as at a protocol change: where
        :class:`~einet.checkpoints.Checkpointer` takes a checkpoint.
        """
        net = self._require_network()
        n = nest()
        duration = float(self.config.t_sim_ms if t_ms is None else t_ms)
        res = float(n.resolution)
        if not np.isfinite(duration) or duration < res:
            raise RunLengthError(f"run length must be at least the resolution ({res} ms), not {duration:g} ms")
        origin = self._next_origin or Origin("continued")
        t_start = self.time_ms
        t_stop = round(t_start + round(duration / res) * res, 6)
        if step_wall_s and not step_ms:
            # First step ~20-30 ms of wall time at any size (NEST's cost per simulated ms grows
            # with the network): a fixed 100 ms first step would take seconds at large scales.
            step = float(np.clip(10.0 * 2500 / max(1, net.n_nodes), res, 10.0))
        else:
            step = float(step_ms) if step_ms else (100.0 if (on_step or cancel) else duration)
        if net.file_recorders is None:
            net.file_recorders = tuple(recorders_writing_files(net))
        files = net.file_recorders if not n.overwrite_files else ()
        n_recorded = net.n_recorded
        chunks_s: list[np.ndarray] = []
        chunks_t: list[np.ndarray] = []
        total = 0
        cancelled = False
        wall0 = time.perf_counter()
        with nest_output_to():
            drain_spikes(net.recorder)  # a run that failed mid-step may have left spikes behind
            drain_rates(net.meter)
        sampled: list[tuple[np.ndarray, ...]] = []
        r = ranks()
        min_delay = float(n.min_delay)
        t = t_start
        while t < t_stop - res / 2:
            # one call with recorders writing files (NEST refuses their files at the next)
            this = t_stop - t if files else step_on_grid(t, step, t_stop, res, min_delay)
            if net.protocol and net.protocol[0].t_ms < t + this - res / 2:
                # a step ends where the next change is due (at a step of the resolution)
                this = max(res, math.ceil((net.protocol[0].t_ms - t) / res - 1e-9) * res)
            k = bisect.bisect_right(marks, t + res / 2)  # a long run has many marks: no scan per step
            if k < len(marks) and marks[k] < t + this - res / 2:
                this = max(res, math.ceil((marks[k] - t) / res - 1e-9) * res)
            tic = time.perf_counter()
            with nest_output_to():
                try:
                    n.Simulate(this)
                except Exception as exc:
                    if files and type(exc).__name__ == "IOError":
                        raise SessionError(
                            f"NEST's recorders writing files ({', '.join(files)}) open them at each Simulate call and refuse a file that exists; "
                            "a run is one call, but a continued run, a protocol change or a checkpoint is another: record to memory, or set the kernel's "
                            "overwrite_files (each call then starts their files anew)"
                        ) from None
                    raise
                senders, times = drain_spikes(net.recorder)
                rates = drain_rates(net.meter)
            took = time.perf_counter() - tic
            senders, times = r.gather_arrays(senders, times)  # every rank records its own neurons
            if net.meter is not None:
                sampled.append(r.gather_arrays(*rates))
            t = round(t_start + round((t - t_start + this) / res) * res, 6)  # as time_ms reports it
            self._make_due(net, t)
            chunks_s.append(senders)
            chunks_t.append(times)
            total += len(senders)
            if on_step is not None:
                rate = analysis.population_rate(len(senders), n_recorded, this)
                on_step(StepUpdate(t, t_start, t_stop, senders, times, total, rate, net.group_of(senders)))
            if step_wall_s and took > 0:
                # Fast towards the wall-time target from the small first step, damped so one
                # noisy step does not make the next one overshoot.
                step = float(np.clip(step * np.clip(step_wall_s / took, 0.25, 4.0) ** 0.7, res, 1000.0))
            # rank 0's step length and cancel count (the others measured their own wall time)
            step, stop = r.share((step, cancel is not None and cancel.is_set()))
            if stop and t < t_stop - res / 2:
                cancelled = True
                break
        senders = np.concatenate(chunks_s) if chunks_s else np.empty(0, np.int64)
        times = np.concatenate(chunks_t) if chunks_t else np.empty(0, np.float64)
        t_end = t if cancelled else t_stop
        groups = self.groups
        spike_group = net.group_of(senders)
        psth_t, _ = analysis.psth(times[:0], t_start, t_end, 1)
        psth_hz = np.vstack([self._psth_row(k, g, times[spike_group == k], sampled, t_start, t_end) for k, g in enumerate(groups)]) if groups else np.empty((0, len(psth_t)))
        result = RunResult(
            label=label or f"run {self.n_runs + 1}",
            seed=self.seed,
            threads=self.threads,
            origin=origin,
            t_start_ms=t_start,
            t_stop_ms=t_end,
            senders=senders,
            times=times,
            n_recorded=n_recorded,
            rate_hz=analysis.population_rate(len(senders), n_recorded, t_end - t_start),
            psth_t_ms=psth_t,
            psth_hz=psth_hz,
            weights=weight_samples(net) if r.is_root else {},  # under MPI: onto rank 0's neurons
            digest=analysis.spike_digest(senders, times, res),
            cancelled=cancelled,
            bit_comparable=self.bit_comparable,
            exact=self.exact,
            wall_s=time.perf_counter() - wall0,
            ranks=r.size,
            groups=groups,
            spike_group=spike_group,
            model=self.config.model,
            changes=tuple(self._made),
        )
        self._made = []
        self.n_runs += 1
        if self.keep_results:
            self.results.append(result)
        self._next_origin = Origin("continued")
        return result

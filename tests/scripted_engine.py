"""A scripted engine for dashboard tests: the events and replies of einet's engine, without NEST.

It serves the commands the dashboard sends (the typed methods of :class:`einet.engine.Engine`)
and emits the same events, in the order the real engine sends them (``state`` before a
command's reply, ``network`` after a build, restore or reset, ``frame`` per step, ``progress``
and ``stored`` from a background store). Every message goes through the engine's wire format
on its way (encoded and decoded), so the dashboard reads the same types a socket would give it.
``tests/test_tui.py::test_the_scripted_engine_speaks_as_the_real_one`` holds it to the real
engine's events.

What it does not simulate, it derives: the network (populations, synapse models with weights,
what a snapshot does not hold) comes from a real snapshot (``template``); a run's spikes are
Poisson trains drawn from a seed made of the kernel's history (build or restored state, seed,
the runs since), so the same snapshot and seed give the same spikes, and anything else other
spikes, as with NEST; nothing that differs between sessions (a file's bytes, the order of its
connections) goes into them, so pictures of the dashboard are the same on every run. Restores read the file with einet's own reader (a damaged file is refused
with its one line), and stores write a real snapshot (the template at the stored time, seed
and threads) from a thread, as the engine's forked writer would.

Runs go step by step (``step_ms`` of biological time, ``step_wall_s`` of wall time each: 0
finishes a run at once); pause, resume, cancel, store and ping are served between two steps.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import itertools
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np

from einet import analysis
from einet.config import NetworkConfig
from einet.engine import EngineDied, EngineError, Message
from einet.engine.child import WEIGHTS_EVERY_S
from einet.engine.protocol import EngineState, groups_fields, result_message, weights_fields
from einet.runs import RASTER_NEURONS, Group, Origin, RunResult
from einet.snapshot import Snapshot, open_snapshot, write_snapshot
from einet.text import one_line
from einet.wire import decode, encode

EventCallback = Callable[[Message], None]

RATES_HZ = {"E": 38.0, "I": 40.0}
"""Mean rates of the populations (other names: the first's), about the small network's."""

BURST_PERIOD_MS = 45.0

RESOLUTION_MS = 0.1


def over_the_wire(msg: Message) -> Message:
    """``msg`` as the other end of the engine's socket receives it."""
    buf = io.BytesIO(encode(msg))
    return decode(buf.read)


class ScriptedEngine:
    """Drop-in for :class:`einet.engine.Engine` as the dashboard uses it (``EinetApp(engine=…)``)."""

    def __init__(self, template: Path, *, step_ms: float = 50.0, step_wall_s: float = 0.0, free_cores: int = 1, on_event: EventCallback | None = None) -> None:
        self.template = template
        self.network: Snapshot = open_snapshot(template)
        self.step_ms = step_ms
        self.step_wall_s = step_wall_s
        self.free_cores = free_cores
        """What a background store's reply says of the cores NEST leaves free (0: it reads at idle priority)."""
        self.on_event = on_event
        self.ranks = 1
        self.pid: int | None = None
        self.proc = None
        self.nest_version = "scripted"
        self.asked: list[tuple[str, dict[str, Any]]] = []
        """Every command asked of it with its arguments, in order (pause, resume… included)."""
        self.store_gate = threading.Event()
        """Cleared, background stores wait for it before they publish (set: they do not wait)."""
        self.store_gate.set()
        self._ids = itertools.count(1)
        self._lock = threading.RLock()  # one idle command at a time, as the engine serves them
        self._steps: queue.Queue[tuple[str, dict[str, Any], Future[Message]]] = queue.Queue()
        self._dead: str | None = "not started"
        self._starts = 0
        self._reset_kernel()
        self._running = False
        self._store_thread: threading.Thread | None = None
        self._abandon = threading.Event()
        self._stored: dict[str, str] = {}  # file → the state stored there (for restores of it)

    # -- the kernel it pretends to hold ----------------------------------------------------
    def _reset_kernel(self) -> None:
        self.state = EngineState.EMPTY
        self.t_ms = 0.0
        self.seed = 0
        self.threads = 0
        self.snapshot = ""
        self.snapshot_t_ms = 0.0
        self.config: NetworkConfig | None = None
        self.built = False
        self.lineage = ""
        self.runs_here = 0  # runs since the last build or restore
        self.origin = Origin("fresh")

    @property
    def groups(self) -> tuple[Group, ...]:
        if not self.built:
            return ()
        return tuple(Group(name, len(ids), np.asarray(ids[:RASTER_NEURONS])) for name, ids in self.network.groups.items())

    def _weight_models(self) -> list[str]:
        counts = {t.model: len(t) for t in self.network.synapses if "weight" in t.columns or "weight" in t.uniform}
        return sorted(counts, key=lambda m: -counts[m]) if self.built else []

    def _weights(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        out = {}
        for model in self._weight_models():
            w = np.sort(self.network.synapse(model).weight)  # a snapshot's connection order is not defined
            out[model] = w[np.sort(rng.choice(len(w), size=min(len(w), 400), replace=False))]
        return out

    # -- events --------------------------------------------------------------------------
    def _emit(self, kind: str, fields: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> None:
        msg = over_the_wire(Message(kind, fields, arrays or {}))
        if self.on_event is not None:
            self.on_event(msg)

    def _send_state(self) -> None:
        config = self.config.to_dict() if self.config is not None else {}
        self._emit(
            "state",
            {
                "state": self.state.value,
                "t_ms": self.t_ms,
                "seed": self.seed,
                "threads": self.threads,
                "config": config,
                "snapshot": self.snapshot,
                "snapshot_t_ms": self.snapshot_t_ms,
                "bit_comparable": True,
                "n_nodes": self.network.n_nodes if self.built else 0,
                "protocol": [],
            },
        )

    def _send_network(self) -> None:
        groups, arrays = groups_fields(self.groups)
        not_stored = list(self.network.not_stored) if self.built else []
        self._emit("network", {"groups": groups, "weight_models": self._weight_models(), "not_stored": not_stored, "model": self.network.model if self.built else ""}, arrays)

    def _ack(self, op: str, **fields: Any) -> Message:
        return over_the_wire(Message("ack", {"id": next(self._ids), "op": op, **fields}))

    # -- life cycle ----------------------------------------------------------------------
    def start(self, timeout_s: float = 120.0) -> Message:
        self.close()
        with self._lock:
            self._starts += 1
            self._steps = queue.Queue()
            self._dead = None
            self._reset_kernel()
            ready = over_the_wire(Message("ready", {"pid": 0, "nest_version": self.nest_version, "log": "(scripted)", "ranks": 1, "pids": [], "hosts": []}))
            self._send_state()
        return ready

    @property
    def alive(self) -> bool:
        return self._dead is None

    @property
    def ops(self) -> list[str]:
        """The commands asked of it, in order."""
        return [op for op, _ in self.asked]

    @property
    def starts(self) -> int:
        """How many engines were started (the dashboard starts a fresh one when one dies)."""
        return self._starts

    def close(self, timeout_s: float = 5.0, *, abandon_store: bool = False) -> None:
        """As the engine's shutdown: a run ends, a background store is waited for or abandoned."""
        if self._dead is not None:
            return
        if abandon_store:
            self._abandon.set()
        self._dead = "engine stopped"
        self._steps.put(("shutdown", {}, Future()))
        store = self._store_thread
        if store is not None:
            store.join(timeout_s)

    def kill(self, reason: str = "engine stopped") -> None:
        """End at once; another reason than the default is reported as a ``died`` event."""
        if self._dead is not None:
            return
        self._dead = reason
        self._abandon.set()
        self._steps.put(("died", {}, Future()))
        if reason != "engine stopped":
            self._emit("died", {"reason": reason})

    # -- commands ------------------------------------------------------------------------
    def call(self, op: str, timeout_s: float | None = None, **args: Any) -> Message:
        self.asked.append((op, args))
        if self._dead is not None:
            raise EngineDied(f"engine is not running ({self._dead})", op)
        if self._running and op in ("pause", "resume", "cancel", "store", "ping"):
            fut: Future[Message] = Future()
            self._steps.put((op, args, fut))
            return fut.result(timeout_s)
        if op in ("pause", "resume", "cancel"):
            raise EngineError(f"nothing to {op}: no run is in progress", op, "ValueError")
        if self._running:
            raise EngineError(f"busy: cannot {op} while a run is in progress", op, "Busy")
        with self._lock:
            return self._idle(op, args)

    def _idle(self, op: str, args: dict[str, Any]) -> Message:
        try:
            reply = getattr(self, f"_op_{op}")(**args)
        except (EngineError, EngineDied):
            raise
        except Exception as exc:  # as the engine: every failure is one line, the engine goes on
            self.state = EngineState.BUILT if self.built else EngineState.EMPTY
            self._send_state()
            raise EngineError(one_line(exc), op, type(exc).__name__) from None
        if self._dead is None:
            self._send_state()  # before the reply, as the engine sends it
        return reply if reply.kind == "ack" else self._ack(op)

    def build(self, config: NetworkConfig, timeout_s: float | None = None) -> Message:
        return self.call("build", timeout_s, config=config.to_dict())

    def run(self, t_ms: float, label: str | None = None, *, continued: bool = False, timeout_s: float | None = None) -> Message:
        return self.call("continue" if continued else "run", timeout_s, t_ms=t_ms, label=label)

    def store(self, path: str | Path, *, overwrite: bool = False, background: bool = False, timeout_s: float | None = None) -> Message:
        return self.call("store", timeout_s, path=str(path), overwrite=overwrite, background=background)

    def restore(self, path: str | Path, *, seed: int | None = None, threads: int | None = None, changes: tuple[Any, ...] = (), timeout_s: float | None = None) -> Message:
        return self.call("restore", timeout_s, path=str(path), seed=seed, threads=threads)

    def reset(self, timeout_s: float | None = None) -> Message:
        return self.call("reset", timeout_s)

    def ping(self, timeout_s: float | None = None) -> Message:
        return self.call("ping", timeout_s)

    def pause(self, timeout_s: float | None = None) -> Message:
        return self.call("pause", timeout_s)

    def resume(self, timeout_s: float | None = None) -> Message:
        return self.call("resume", timeout_s)

    def cancel(self, timeout_s: float | None = None) -> Message:
        return self.call("cancel", timeout_s)

    # -- between runs --------------------------------------------------------------------
    def _op_ping(self) -> Message:
        return self._ack("ping", t=time.time())

    def _op_build(self, config: dict[str, Any]) -> Message:
        cfg = NetworkConfig.from_dict(config)
        self.state = EngineState.BUILDING
        self._send_state()
        self._reset_kernel()
        self.config, self.seed, self.threads, self.built = cfg, cfg.seed, cfg.threads, True
        self.lineage = f"build {cfg.model} {cfg.scale} {sorted(cfg.params.items())} {cfg.seed} {cfg.threads}"
        self._send_network()
        self.state = EngineState.BUILT
        return self._ack("build", groups=[{"name": g.name, "size": g.size} for g in self.groups])

    def _op_reset(self) -> Message:
        self._reset_kernel()
        self._send_network()
        return self._ack("reset")

    def _op_restore(self, path: str, seed: int | None = None, threads: int | None = None) -> Message:
        snap = open_snapshot(path)  # validated before the kernel is touched, as the engine does
        self.state = EngineState.RESTORING
        self._send_state()
        self._reset_kernel()
        self.seed, self.threads, self.built = seed or snap.seed, threads or snap.n_vp, True
        self.t_ms = self.snapshot_t_ms = snap.t_stored_ms
        self.snapshot, self.origin = str(path), Origin("restored", str(path), snap.t_stored_ms)
        self.config = NetworkConfig(model=snap.model, scale=snap.scale, params=dict(snap.params), seed=self.seed, threads=self.threads, t_sim_ms=snap.t_sim_ms)
        # what the file holds: the state this engine stored there, or (another file) what it says it is
        held = self._stored.get(str(Path(path).resolve())) or f"{snap.model} {snap.scale} {sorted(snap.params.items())} {snap.t_stored_ms} {snap.seed} {snap.n_vp}"
        self.lineage = f"restored {held} {self.seed} {self.threads}"
        self._send_network()
        self.state = EngineState.BUILT
        return self._ack("restore", path=str(path), t_stored_ms=snap.t_stored_ms, seed=self.seed, threads=self.threads, not_stored=list(self.network.not_stored), exact=False, hidden_note="the snapshot holds no hidden state")

    def _op_store(self, path: str, overwrite: bool = False, background: bool = False) -> Message:
        if not self.built:
            raise ValueError("no network: build or restore one first")
        if Path(path).exists() and not overwrite:
            raise ValueError(f"{path} exists (pass overwrite to replace it)")
        snap = dataclasses.replace(self.network, t_stored_ms=self.t_ms, seed=self.seed, n_vp=self.threads, source_path="", hidden=None)
        self._stored[str(Path(path).resolve())] = f"{self.lineage} at {self.t_ms}"
        if not background:
            write_snapshot(snap, path, overwrite=overwrite)
            return self._ack("store", path=path, t_stored_ms=self.t_ms, bytes=Path(path).stat().st_size)
        self._abandon.clear()
        self._store_thread = threading.Thread(target=self._write_in_background, args=(snap, Path(path), overwrite), name="scripted-store", daemon=True)
        self._store_thread.start()
        return self._ack("store", path=path, background=True, t_stored_ms=self.t_ms, pause_s=0.001, free_cores=self.free_cores)

    def _write_in_background(self, snap: Snapshot, path: Path, overwrite: bool) -> None:
        tic = time.monotonic()
        self._emit("progress", {"op": "store", "fraction": 0.0, "path": str(path)})
        while not self.store_gate.wait(0.05) and not self._abandon.is_set():
            pass  # held by the test (or abandoned meanwhile)
        if self._abandon.is_set():
            return  # abandoned, or lost with the engine: nothing is published
        try:
            write_snapshot(snap, path, overwrite=overwrite)
        except Exception as exc:
            self._emit("store_failed", {"path": str(path), "message": f"store of {path.name} failed: {one_line(exc)}"})
            return
        seconds = time.monotonic() - tic
        self._emit("stored", {"path": str(path), "bytes": path.stat().st_size, "t_stored_ms": snap.t_stored_ms, "seconds": seconds, "pause_s": 0.001, "capture_s": seconds / 2, "write_s": seconds / 2})

    # -- runs ----------------------------------------------------------------------------
    def _op_continue(self, t_ms: float, label: str | None = None) -> Message:
        if not self.built or self.t_ms == 0.0:
            raise ValueError("nothing to continue: run the network first")
        return self._op_run(t_ms, label)

    def _op_run(self, t_ms: float, label: str | None = None) -> Message:
        if not self.built:
            raise ValueError("no network: build or restore one first")
        if t_ms < RESOLUTION_MS:
            raise ValueError(f"run length must be at least the resolution ({RESOLUTION_MS} ms), not {t_ms:g} ms")
        label = label or f"run {self.runs_here + 1}"
        t_start, t_stop = self.t_ms, round(self.t_ms + t_ms, 6)
        key = hashlib.sha256(f"{self.lineage} | run {t_start}-{t_stop}".encode()).digest()
        run_seed = int.from_bytes(key[:8], "little")
        rng = np.random.default_rng(run_seed)
        phase = rng.uniform(0.0, BURST_PERIOD_MS)
        weights = self._weights(rng)
        groups = self.groups
        n_recorded = sum(g.size for g in groups)
        steps = self._steps  # this engine's: a fresh one (start) gets its own
        self.state = EngineState.RUNNING
        self._running = True
        self._send_state()
        t, cancelled, total = t_start, False, 0
        chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        weights_sent = time.monotonic()
        try:
            while t < t_stop - RESOLUTION_MS / 2:
                t_next = round(min(t + self.step_ms, t_stop), 6)
                # drawn step by step: a long run that is cancelled early costs only its steps
                chunk = self._spikes(np.random.default_rng([run_seed, len(chunks)]), t, t_next, phase)
                chunks.append(chunk)
                total += len(chunk[0])
                rate = analysis.population_rate(len(chunk[0]), n_recorded, t_next - t)
                fields = {"label": label, "t_ms": t_next, "t_start_ms": t_start, "t_stop_ms": t_stop, "progress": (t_next - t_start) / (t_stop - t_start), "n_spikes_total": total, "rate_hz": rate}
                now = time.monotonic()
                sample = {}
                if now - weights_sent > WEIGHTS_EVERY_S:  # as often as the engine samples them
                    weights_sent, sample = now, weights
                weight_models, weight_arrays = weights_fields(sample)
                self._emit("frame", {**fields, "weight_models": weight_models}, {"senders": chunk[0], "times": chunk[1], "groups": chunk[2], **weight_arrays})
                t = self.t_ms = t_next
                if self._between_steps(steps, wait_s=self.step_wall_s):
                    cancelled = t < t_stop - RESOLUTION_MS / 2
                    break
        finally:
            self._running = False
            self.state = EngineState.BUILT
            while not steps.empty():  # asked as the run ended: served as the idle engine would
                op, args, fut = steps.get_nowait()
                if op in ("store", "ping"):
                    try:
                        fut.set_result(self._idle(op, args))
                    except Exception as exc:
                        fut.set_exception(exc)
                else:
                    fut.set_exception(EngineError(f"nothing to {op}: no run is in progress", op, "ValueError"))
        if self._dead is not None and self._dead != "engine stopped":
            raise EngineDied(self._dead, "run")
        senders, times, spike_group = (np.concatenate([c[k] for c in chunks]) for k in range(3))
        self.runs_here += 1
        self.lineage = key.hex()
        psth_t, _ = analysis.psth(times[:0], t_start, t, 1)
        psth_hz = np.vstack([analysis.psth(times[spike_group == k], t_start, t, g.size)[1] for k, g in enumerate(groups)])
        result = RunResult(
            label=label,
            seed=self.seed,
            threads=self.threads,
            origin=self.origin,
            t_start_ms=t_start,
            t_stop_ms=t,
            senders=senders,
            times=times,
            n_recorded=n_recorded,
            rate_hz=analysis.population_rate(len(senders), n_recorded, t - t_start),
            psth_t_ms=psth_t,
            psth_hz=psth_hz,
            weights=weights,
            digest=analysis.spike_digest(senders, times, RESOLUTION_MS),
            groups=groups,
            spike_group=spike_group,
            model=self.config.model if self.config is not None else "",
            cancelled=cancelled,
        )
        self.origin = Origin("continued")
        return over_the_wire(result_message("ack", {"op": "run", "id": next(self._ids)}, result))

    def _spikes(self, rng: np.random.Generator, t_start: float, t_stop: float, phase: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Poisson spikes of every population on the resolution's grid, by time, in bursts of
        the common rhythm a balanced network shows (so raster and PSTH look like one)."""
        senders, times, group = [], [], []
        names = list(RATES_HZ)
        for k, (name, ids) in enumerate(self.network.groups.items()):
            rate = RATES_HZ.get(name, RATES_HZ[names[0]])
            n = rng.poisson(rate * len(ids) * (t_stop - t_start) / 1000.0)
            t = rng.uniform(t_start, t_stop, 8 * n)
            t = t[rng.uniform(0.0, 1.0, len(t)) < np.exp(3.0 * (np.cos(2 * np.pi * (t - phase) / BURST_PERIOD_MS) - 1.0))][:n]
            t = np.minimum(np.round(t / RESOLUTION_MS) * RESOLUTION_MS, t_stop - RESOLUTION_MS)
            senders.append(rng.choice(np.asarray(ids), size=len(t)))
            times.append(t)
            group.append(np.full(len(t), k, dtype=np.int64))
        s, t, g = np.concatenate(senders).astype(np.int64), np.concatenate(times), np.concatenate(group)
        order = np.lexsort((s, t))
        return s[order], t[order], g[order]

    def _between_steps(self, steps: queue.Queue[tuple[str, dict[str, Any], Future[Message]]], wait_s: float) -> bool:
        """Serve what came meanwhile; True when the run must end (cancelled, engine gone)."""
        paused = False
        deadline = time.monotonic() + wait_s
        while True:
            timeout = None if paused else max(0.0, deadline - time.monotonic())
            try:
                op, args, fut = steps.get(timeout=timeout) if timeout is None or timeout > 0 else steps.get_nowait()
            except queue.Empty:
                return False
            if op in ("shutdown", "died"):
                return True
            if op == "ping":
                fut.set_result(self._ack(op, t=time.time()))
            elif op == "store":
                try:
                    fut.set_result(self._op_store(**args))
                except Exception as exc:
                    fut.set_exception(EngineError(one_line(exc), op, type(exc).__name__))
            elif op == "pause":
                paused = True
                self.state = EngineState.PAUSED
                fut.set_result(self._ack(op))
                self._send_state()
            elif op == "resume":
                self.state = EngineState.RUNNING
                fut.set_result(self._ack(op))
                self._send_state()
                return False
            elif op == "cancel":
                self.state = EngineState.RUNNING
                fut.set_result(self._ack(op))
                return True

"""The engine's server: hosts a :class:`~einet.session.Session` and serves the protocol's
commands (:data:`COMMANDS`); :mod:`.startup` starts the process and connects it.

Under MPI rank 0 serves the parent and hands every command to the other ranks, which run it
too (NEST's calls are collective); between simulation steps rank 0 shares what the others must
do (store, cancel) and then "go on". Only rank 0 sends events.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..text import one_line
from .protocol import Channel, EngineState, Message, groups_fields, result_message, weights_fields

HEARTBEAT_S = 1.0
STORE_POLL_S = 0.2
STORE_PROGRESS_S = 0.25
STEP_WALL_S = 0.1
WEIGHTS_EVERY_S = 5.0
_MAX_LOG_BYTES = 16384


def _release_heap() -> None:
    """Give the transient memory of a store (many small status dicts) back to the OS.

    glibc keeps freed small blocks in a fragmented heap, so a long-lived engine's RSS would
    creep up over hundreds of stores without this (`make soak` shows it).
    """
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def weighted_models() -> list[str]:
    """Synapse models in use that have a weight, most connections first (the weights panel
    shows the first and cycles through the rest)."""
    from ..kernel import nest

    n = nest()
    counts = {}
    for model in n.synapse_models:
        k = int(n.GetDefaults(model, "num_connections"))
        if k and "weight" in n.GetDefaults(model):
            counts[str(model)] = k
    return sorted(counts, key=lambda m: -counts[m])


class Shutdown(Exception):
    pass


@dataclass(frozen=True)
class Command:
    """When the engine serves a command: between runs (``op_NAME``), between two steps of a
    run (``step_NAME``), and whether the other MPI ranks take part in it during a run."""

    idle: bool = True
    running: bool = False
    every_rank_while_running: bool = False
    state_after_reply: bool = False
    """During a run, the engine's state follows the reply (the dashboard shows it at once)."""


COMMANDS: dict[str, Command] = {
    "ping": Command(running=True),
    "shutdown": Command(running=True, every_rank_while_running=True),
    "build": Command(),
    "check_storable": Command(),
    "reset": Command(),
    # during a run: taken at the step boundary, written in the background
    "store": Command(running=True, every_rank_while_running=True),
    "restore": Command(),
    "run": Command(),
    "continue": Command(),
    "pause": Command(idle=False, running=True, state_after_reply=True),
    "resume": Command(idle=False, running=True, state_after_reply=True),
    "cancel": Command(idle=False, running=True, every_rank_while_running=True),
}
"""Every command the engine serves; the one place that says which may come when."""


class SilentChannel:
    """The channel of ranks other than 0: rank 0 alone talks to the parent."""

    def send(self, msg: Message) -> None:
        pass


class Lifeline(Channel):
    """Rank 0's channel under MPI: losing the parent ends the whole job at once, since the other
    ranks may be waiting in a collective that rank 0 would never reach."""

    def __init__(self, sock: socket.socket, ranks: Any) -> None:
        super().__init__(sock)
        self._ranks = ranks

    def send(self, msg: Message) -> None:
        try:
            super().send(msg)
        except OSError:
            self._ranks.abort()
            raise

    def recv(self) -> Message:
        try:
            return super().recv()
        except OSError:  # ProtocolError included
            self._ranks.abort()
            raise


class EngineServer:
    def __init__(self, chan: Channel | SilentChannel, log_path: str) -> None:
        from ..ranks import ranks
        from ..session import Session

        self.session = Session(log_path=log_path, keep_results=False)  # first: NEST's banner goes to the log
        self.ranks = ranks()
        self.chan = chan
        self.log_path = log_path
        self.state = EngineState.EMPTY
        self.cancel = threading.Event()
        self.shutdown_requested = False
        self._paused = False  # between two steps of a run
        self._log_offset = os.path.getsize(log_path) if os.path.exists(log_path) else 0
        self._last_weights = 0.0
        self._protocol_left = 0
        self._run_label = ""
        self._current_id: Any = None
        self._store: Any = None  # the background store in flight (einet.store.StoreHandle)
        self._store_reported = 0.0

    # -- plumbing ------------------------------------------------------------------------
    def send(self, kind: str, **fields: Any) -> None:
        self.chan.send(Message(kind, fields))

    def send_state(self) -> None:
        s = self.session
        self._protocol_left = len(s.protocol)
        self.send(
            "state",
            state=self.state.value,
            t_ms=s.time_ms,
            seed=s.seed,
            threads=s.threads,
            config=s.config.to_dict(),
            snapshot=s.snapshot_path,
            snapshot_t_ms=s.snapshot_t_ms,
            bit_comparable=s.bit_comparable,
            n_nodes=s.network.n_nodes if s.network is not None else 0,
            protocol=[c.to_dict() for c in s.protocol],
        )

    def send_network(self) -> None:
        """What the dashboard needs to show this network: populations, weighted synapse models."""
        s = self.session
        groups, arrays = groups_fields(s.groups)
        weighted = weighted_models() if s.network is not None else []
        self.chan.send(Message("network", {"groups": groups, "weight_models": weighted, "not_stored": s.not_stored(), "model": s.config.model if s.network is not None else ""}, arrays))

    def forward_log(self) -> None:
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(self._log_offset)
                data = fh.read()
        except OSError:
            return
        self._log_offset += len(data)
        if data:
            text = data[-_MAX_LOG_BYTES:].decode("utf-8", "replace")
            self.send("log", lines=[line for line in text.splitlines() if line.strip()])

    def _readable(self, timeout: float) -> bool:
        assert isinstance(self.chan, Channel)
        r, _, _ = select.select([self.chan.sock], [], [], timeout)
        return bool(r)

    def _recv(self) -> Message:
        """The parent's next message (rank 0)."""
        assert isinstance(self.chan, Channel)
        return self.chan.recv()

    # -- main loop -----------------------------------------------------------------------
    def serve(self) -> None:
        from ..kernel import nest_version

        here = (os.getpid(), socket.gethostname())
        everyone = self.ranks.allgather(here)
        if not self.ranks.is_root:
            return self.follow()
        self.send("ready", pid=os.getpid(), nest_version=nest_version(), log=self.log_path, ranks=self.ranks.size, pids=[p for p, _ in everyone], hosts=[h for _, h in everyone])
        self.send_state()
        while not self.shutdown_requested:
            if not self._readable(STORE_POLL_S if self.session.store_in_flight else HEARTBEAT_S):
                self.watch_store()
                self.send("heartbeat", t=time.time())
                continue
            msg = self._recv()
            self.ranks.share(msg.fields if msg.kind == "command" else None)
            self.handle(msg)
            self.watch_store()

    def follow(self) -> None:
        """Ranks other than 0: run every command rank 0 hands over, until shutdown."""
        while not self.shutdown_requested:
            fields = self.ranks.share()
            if fields is not None:
                self.handle(Message("command", fields))

    # -- background stores ---------------------------------------------------------------
    def watch_store(self) -> None:
        """Report a background store's progress, and its end as ``stored`` or ``store_failed``."""
        h = self._store
        if h is None:
            return
        if not h.done:
            now = time.monotonic()
            if now - self._store_reported > STORE_PROGRESS_S:
                self._store_reported = now
                self.send("progress", op="store", fraction=h.progress, path=str(h.path))
            return
        self._store = None
        _release_heap()
        if h.ok:
            self.send("stored", path=str(h.path), bytes=h.bytes, t_stored_ms=h.t_stored_ms, seconds=h.seconds, **h.phases)
            print(f"einet: stored {h.path} in the background: " + ", ".join(f"{k[:-2]} {v:.3f} s" for k, v in h.phases.items()), file=sys.stderr)
        else:
            self.send("store_failed", path=str(h.path), message=f"store of {h.path.name} failed: {h.problem}")

    def handle(self, msg: Message) -> None:
        if msg.kind != "command":
            return
        op, cid, args = msg.get("op"), msg.get("id"), dict(msg.get("args") or {})
        command = COMMANDS.get(str(op))
        self._current_id = cid
        try:
            with self.ranks.together():  # a failure on any rank is the command's failure
                if command is None:
                    raise ValueError(f"unknown command {op!r}")
                if not command.idle:
                    raise ValueError(f"nothing to {op}: no run is in progress")
                result = getattr(self, f"op_{op}")(**args)
            reply = result if isinstance(result, Message) else Message("ack", {"id": cid, "op": op, **(result or {})})
        except Shutdown:
            self.shutdown_requested = True
            reply = Message("ack", {"id": cid, "op": op})
        except Exception as exc:  # noqa: BLE001 - every failure becomes an event; the engine stays usable
            self.state = EngineState.BUILT if self.session.built else EngineState.EMPTY
            reply = Message("error", {"id": cid, "op": op, "message": one_line(exc), "error": type(exc).__name__})
        self.forward_log()
        if not self.shutdown_requested:
            self.send_state()  # before the reply: whoever waits on the reply sees the new state
        self.chan.send(reply)

    # -- commands ------------------------------------------------------------------------
    def op_ping(self) -> dict[str, Any]:
        return {"t": time.time()}

    def op_shutdown(self, abandon_store: bool = False) -> None:
        """Stop serving; a background store is waited for (or, when asked, abandoned: its
        temporary file is removed and nothing is published)."""
        h = self._store
        if h is not None:
            if abandon_store:
                h.abandon()
            while not h.done:
                self.watch_store()
                time.sleep(STORE_POLL_S)
            self.watch_store()
        raise Shutdown

    def op_build(self, config: dict[str, Any] | None = None) -> dict[str, Any]:
        from ..config import NetworkConfig

        cfg = NetworkConfig.from_dict(config or {})
        self.state = EngineState.BUILDING
        self.send_state()
        try:
            self.session.build(cfg)
        finally:
            self.send_network()
        self.state = EngineState.BUILT
        return {"groups": [{"name": g.name, "size": g.size} for g in self.session.groups]}

    def op_check_storable(self) -> None:
        self.session.check_storable()

    def op_reset(self) -> None:
        self.session.reset()
        self.state = EngineState.EMPTY
        self.send_network()

    def op_store(self, path: str, overwrite: bool = False, background: bool = False) -> dict[str, Any]:
        if background and self.ranks.size > 1:
            return self._store_now(path, overwrite)
        if background:
            # the kernel's part now, between two steps; the rest in a forked process
            handle = self.session.store(path, overwrite=overwrite, background=True)
            self._store = handle
            self._store_reported = 0.0
            return {"path": str(path), "background": True, "t_stored_ms": handle.t_stored_ms, "pause_s": handle.pause_s, "free_cores": handle.free_cores}
        self.state = EngineState.STORING
        self.send_state()
        try:
            with self._beating():
                snap = self.session.store(path, overwrite=overwrite, progress=self._store_progress(path))
        finally:
            self.state = EngineState.BUILT if self.session.built else EngineState.EMPTY
            _release_heap()
        if snap is None:  # a rank other than 0: rank 0 wrote the file
            return {}
        return {"path": str(path), "t_stored_ms": snap.t_stored_ms, "bytes": Path(path).stat().st_size}

    def _store_now(self, path: str, overwrite: bool) -> dict[str, Any]:
        """A store asked for in the background under MPI: MPI ranks must not fork, so it is
        taken now, every rank reading its share, and reported like a background store."""
        tic = time.perf_counter()
        with self._beating():
            snap = self.session.store(path, overwrite=overwrite, progress=self._store_progress(path))
        seconds = time.perf_counter() - tic
        t_stored = snap.t_stored_ms if snap is not None else self.session.time_ms
        size = Path(path).stat().st_size if self.ranks.is_root else 0
        self.send("stored", path=path, bytes=size, t_stored_ms=t_stored, seconds=seconds, pause_s=seconds, capture_s=seconds, write_s=0.0, background=False)
        return {"path": path, "background": False, "t_stored_ms": t_stored, "pause_s": seconds, "bytes": size}

    def _store_progress(self, path: str) -> Any:
        last = [0.0]

        def progress(fraction: float) -> None:
            now = time.monotonic()
            if now - last[0] > 0.2:
                last[0] = now
                self.send("progress", op="store", fraction=fraction, path=path)

        return progress

    @contextlib.contextmanager
    def _beating(self) -> Any:
        """Heartbeats from a thread while rank 0 gathers and writes a store from every rank
        (no progress to report then, and the parent must not take the silence for a hang)."""
        if self.ranks.size == 1 or not self.ranks.is_root:
            yield
            return
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(HEARTBEAT_S):
                with contextlib.suppress(OSError):
                    self.send("heartbeat", t=time.time())

        beater = threading.Thread(target=beat, name="einet-heartbeat", daemon=True)
        beater.start()
        try:
            yield
        finally:
            stop.set()
            beater.join()

    def op_restore(self, path: str, seed: int | None = None, threads: int | None = None, changes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        from ..protocol import Change
        from ..snapshot import open_snapshot

        extra = tuple(Change.from_dict(c) for c in changes or ())

        with self.ranks.together():
            snap = open_snapshot(path)  # validate fully (on every rank) before the kernel is touched
        self.state = EngineState.RESTORING
        self.send_state()
        try:
            self.session.restore(snap, seed=seed, threads=threads, changes=extra)
        finally:
            self.state = EngineState.BUILT if self.session.built else EngineState.EMPTY
            self.send_network()
        return {"path": str(path), "t_stored_ms": snap.t_stored_ms, "seed": self.session.seed, "threads": self.session.threads, "not_stored": self.session.not_stored(), "exact": self.session.exact, "hidden_note": self.session.hidden_note}

    def op_run(self, t_ms: float | None = None, label: str | None = None) -> Message:
        self.cancel.clear()
        self.state = EngineState.RUNNING
        self._run_label = label or f"run {self.session.n_runs + 1}"
        self._last_weights = time.monotonic()
        self.send_state()
        try:
            result = self.session.run(t_ms, label=self._run_label, step_wall_s=STEP_WALL_S, on_step=self._on_step, cancel=self.cancel)
        finally:
            self.state = EngineState.BUILT if self.session.built else EngineState.EMPTY
        return result_message("ack", {"op": "run", "id": self._current_id}, result)

    def op_continue(self, t_ms: float | None = None, label: str | None = None) -> Message:
        """Run again from where the last run stopped (refused before any run)."""
        from ..session import SessionError

        if self.session.network is None or self.session.time_ms == 0.0:
            raise SessionError("nothing to continue: run the network first")
        return self.op_run(t_ms, label or f"run {self.session.n_runs + 1} (continued)")

    # -- while running -------------------------------------------------------------------
    def _on_step(self, update: Any) -> None:
        if not self.ranks.is_root:
            return self._follow_step()
        self.watch_store()
        from ..network import weight_samples

        arrays = {"senders": update.senders, "times": update.times}
        if update.groups is not None:
            arrays["groups"] = update.groups
        weight_models: list[str] = []
        now = time.monotonic()
        if now - self._last_weights > WEIGHTS_EVERY_S and self.session.network is not None:
            self._last_weights = now
            weight_models, weight_arrays = weights_fields(weight_samples(self.session.network))
            arrays |= weight_arrays
        self.chan.send(
            Message(
                "frame",
                {
                    "label": self._run_label,
                    "t_ms": update.t_ms,
                    "t_start_ms": update.t_start_ms,
                    "t_stop_ms": update.t_stop_ms,
                    "progress": update.progress,
                    "n_spikes_total": update.n_spikes_total,
                    "rate_hz": update.rate_hz,
                    "weight_models": weight_models,
                },
                arrays,
            )
        )
        if len(self.session.protocol) != self._protocol_left:
            self.send_state()  # a change was made: the dashboard shows the next one
        self._poll_during_run()
        self.ranks.share(None)  # the other ranks go on

    def _follow_step(self) -> None:
        """Ranks other than 0, between two steps: do what rank 0 shares until it says go on."""
        while (fields := self.ranks.share()) is not None:
            with contextlib.suppress(Exception):  # rank 0 reports a failure
                getattr(self, f"step_{fields.get('op')}")(**dict(fields.get("args") or {}))

    def _poll_during_run(self) -> None:
        """Serve the commands :data:`COMMANDS` allows between two steps; refuse the others."""
        self._paused = False
        while True:
            if not self._readable(HEARTBEAT_S if self._paused else 0.0):
                if self._paused:
                    self.send("heartbeat", t=time.time())
                    continue
                return
            msg = self._recv()
            op, cid, args = msg.get("op"), msg.get("id"), dict(msg.get("args") or {})
            command = COMMANDS.get(str(op))
            if command is None or not command.running:
                self.send("error", id=cid, op=op, message=f"busy: cannot {op} while a run is in progress", error="Busy")
                continue
            if command.every_rank_while_running:
                self.ranks.share(msg.fields)
            try:
                fields, go_on = getattr(self, f"step_{op}")(**args)
            except Exception as exc:  # noqa: BLE001 - every failure becomes one line
                self.send("error", id=cid, op=op, message=one_line(exc), error=type(exc).__name__)
                continue
            self.send("ack", id=cid, op=op, **fields)
            if command.state_after_reply:
                self.send_state()
            if go_on:
                return

    # Between two steps: each returns the reply's fields and whether the run goes on now.
    def step_ping(self) -> tuple[dict[str, Any], bool]:
        return {"t": time.time()}, False

    def step_pause(self) -> tuple[dict[str, Any], bool]:
        self._paused = True
        self.state = EngineState.PAUSED
        return {}, False

    def step_resume(self) -> tuple[dict[str, Any], bool]:
        self.state = EngineState.RUNNING
        return {}, True

    def step_cancel(self) -> tuple[dict[str, Any], bool]:
        self.cancel.set()
        self.state = EngineState.RUNNING
        return {}, True

    def step_shutdown(self, abandon_store: bool = False) -> tuple[dict[str, Any], bool]:
        self.shutdown_requested = True
        return self.step_cancel()

    def step_store(self, path: str, overwrite: bool = False, background: bool = True) -> tuple[dict[str, Any], bool]:
        return self.op_store(str(path), bool(overwrite), background=True), False

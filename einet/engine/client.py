"""The parent side of the engine: start the NEST process, send commands, receive events.

Importing this module never imports NEST. Typical use::

    with Engine() as engine:
        engine.call("build", config=NetworkConfig(scale=0.2).to_dict())
        ack = engine.call("run", t_ms=1000)        # frames arrive as events meanwhile
        result = result_from_message(ack)
"""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..children import holding_a_network
from .errors import EngineDied, EngineError
from .protocol import Channel, Message, ProtocolError

if TYPE_CHECKING:
    from ..config import NetworkConfig
    from ..protocol import Change
    from .launch import MpiLaunch

EventCallback = Callable[[Message], None]


def default_log_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "einet" / "logs"


KEEP_LOGS = 20


def prune_logs(folder: Path, keep: int = KEEP_LOGS) -> None:
    """Keep the newest ``keep`` engine logs (one is written per engine start)."""
    logs = sorted(folder.glob("engine-*.log"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in logs[keep:]:
        with contextlib.suppress(OSError):
            old.unlink()


class Engine:
    """A NEST engine in a child process.

    Events (frames, state, log, heartbeat, died) go to ``on_event`` from a reader thread, or,
    without a callback, into :attr:`events`. Acks and errors resolve the futures returned by
    :meth:`request`. If the child exits, or sends nothing for ``hang_timeout_s`` (it sends a
    heartbeat every second when idle and a frame every ~75 ms when running), every pending
    request fails with :class:`EngineDied` and a ``died`` event is emitted; call :meth:`start`
    again for a fresh engine.
    """

    def __init__(self, *, log_dir: str | Path | None = None, on_event: EventCallback | None = None, hang_timeout_s: float = 60.0, mpi: MpiLaunch | None = None) -> None:
        self.mpi = mpi
        self.ranks = 1
        self.rank_pids: list[int] = []
        self.log_dir = Path(log_dir) if log_dir else default_log_dir()
        self.on_event = on_event
        self.hang_timeout_s = hang_timeout_s
        self.events: queue.Queue[Message] = queue.Queue()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None
        self.nest_version = ""
        self._chan: Channel | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, Future[Message]] = {}
        self._lock = threading.Lock()
        self._last_seen = time.monotonic()
        self._dead: str | None = "not started"
        self._ready: Future[Message] | None = None
        self._generation = 0
        self._closing = False

    # -- life cycle ----------------------------------------------------------------------
    def start(self, timeout_s: float = 120.0) -> Message:
        """Start a fresh engine process (stopping any previous one); return its ``ready`` event.

        With ``mpi`` the engine is an MPI job: rank 0 connects back to a Unix socket in a
        private folder (MPI ranks inherit no descriptors), and a job whose NEST turns out to
        have no MPI is stopped with :class:`~einet.engine.launch.LaunchError`."""
        self.close()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        prune_logs(self.log_dir)
        self.log_path = self.log_dir / f"engine-{os.getpid()}-{int(time.time() * 1000)}.log"
        parent_sock = self._launch_mpi(timeout_s) if self.mpi is not None else self._launch_local()
        self._generation += 1
        self._chan = Channel(parent_sock)
        self._dead = None
        self._closing = False
        self._last_seen = time.monotonic()
        self._ready = Future()
        gen = self._generation
        threading.Thread(target=self._reader, args=(gen,), name="einet-engine-reader", daemon=True).start()
        threading.Thread(target=self._watchdog, args=(gen,), name="einet-engine-watchdog", daemon=True).start()
        try:
            ready = self._ready.result(timeout_s)
        except Exception as exc:  # noqa: BLE001 - whatever kept the engine from starting ends it
            self.kill()
            raise EngineDied(f"engine did not start: {exc}") from None
        self.nest_version = str(ready.get("nest_version", ""))
        self.ranks = int(ready.get("ranks", 1))
        self.rank_pids = [int(p) for p in ready.get("pids", [])] if socket.gethostname() in ready.get("hosts", []) else []
        if self.mpi is not None and self.ranks != self.mpi.ranks:
            from .launch import SETUP_HINT, LaunchError, mpi_python

            self.kill()
            raise LaunchError(f"the NEST of {mpi_python()} has no MPI (each of the {self.mpi.ranks} processes ran alone): {SETUP_HINT}")
        return ready

    def _launch_local(self) -> socket.socket:
        assert self.log_path is not None
        parent_sock, child_sock = socket.socketpair()
        env = holding_a_network({**os.environ, "PYTHONUNBUFFERED": "1"})
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "einet.engine.startup", "--fd", str(child_sock.fileno()), "--log", str(self.log_path)],
                pass_fds=[child_sock.fileno()],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
                start_new_session=True,  # Ctrl+C in the terminal is the dashboard's, not NEST's
            )
        child_sock.close()
        return parent_sock

    def _launch_mpi(self, timeout_s: float) -> socket.socket:
        assert self.mpi is not None and self.log_path is not None
        from .launch import mpi_failure

        folder = tempfile.mkdtemp(prefix="einet-")  # mode 0700: only this user can connect
        path = os.path.join(folder, "engine.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(path)
            listener.listen(1)
            listener.settimeout(0.2)
            command = self.mpi.command(["--connect", path, "--log", str(self.log_path)])
            with open(self.log_path, "ab") as log:
                log.write(("einet: " + shlex.join(command) + "\n").encode())
                log.flush()
                self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=self.mpi.env(), start_new_session=True)
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    conn, _ = listener.accept()
                    return conn
                except TimeoutError:
                    pass
                code = self.proc.poll()
                if code is not None:
                    why = mpi_failure(self.log_path)
                    raise EngineDied(f"the MPI job ended before its rank 0 connected (code {code}){': ' + why if why else ''}; log: {self.log_path}")
                if time.monotonic() > deadline:
                    self.kill()
                    raise EngineDied(f"the MPI job's rank 0 did not connect within {timeout_s:g} s; log: {self.log_path}")
        finally:
            listener.close()
            shutil.rmtree(folder, ignore_errors=True)

    @property
    def alive(self) -> bool:
        return self._dead is None and self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def close(self, timeout_s: float = 5.0, *, abandon_store: bool = False) -> None:
        """Ask the engine to shut down; kill it if it does not within ``timeout_s``. A
        background store in flight is waited for (give a ``timeout_s`` that allows it), or
        dropped with ``abandon_store``."""
        if self.proc is None:
            return
        self._closing = True
        deadline = time.monotonic() + timeout_s  # one deadline for asking and for waiting
        if self.alive:
            with contextlib.suppress(Exception):
                self.request("shutdown", abandon_store=abandon_store).result(timeout_s)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(max(0.0, deadline - time.monotonic()))
        self.kill()

    def kill(self, reason: str = "engine stopped") -> None:
        """End the engine (every rank) at once. Another ``reason`` than the default is reported
        as the engine's death (a ``died`` event), before the process goes."""
        # what belongs to this engine now: once it is marked dead a fresh one may start at once
        proc, chan, rank_pids = self.proc, self._chan, list(self.rank_pids)
        if reason != "engine stopped":
            self._mark_dead(reason)
        if proc is not None and proc.poll() is None:
            if self.mpi is not None:
                proc.terminate()  # mpirun passes SIGTERM on to every rank, then exits
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(5)
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        for pid in rank_pids:
            _kill_rank(pid)  # a rank the launcher left behind (none seen with Open MPI)
        if self.proc is proc:
            self._mark_dead("engine stopped")
        if chan is not None:
            chan.close()
            if self._chan is chan:
                self._chan = None

    def __enter__(self) -> Engine:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests ------------------------------------------------------------------------
    def request(self, op: str, **args: Any) -> Future[Message]:
        """Send a command; the future resolves to its ack or fails with :class:`EngineError`."""
        fut: Future[Message] = Future()
        with self._lock:
            if self._dead is not None or self._chan is None:
                fut.set_exception(EngineDied(f"engine is not running ({self._dead})", op))
                return fut
            cid = next(self._ids)
            self._pending[cid] = fut
            chan = self._chan
        try:
            chan.send(Message("command", {"id": cid, "op": op, "args": args}))
        except OSError as exc:
            self._mark_dead(f"cannot reach engine: {exc}")
        return fut

    def call(self, op: str, timeout_s: float | None = None, **args: Any) -> Message:
        """Send a command and wait for its ack; raise :class:`EngineError` on failure."""
        return self.request(op, **args).result(timeout_s)

    # -- the commands, typed (the engine serves each of einet.engine.child.COMMANDS) ------
    def build(self, config: NetworkConfig, timeout_s: float | None = None) -> Message:
        """Reset the kernel and build ``config``'s network; the ack names its populations."""
        return self.call("build", timeout_s, config=config.to_dict())

    def run(self, t_ms: float, label: str | None = None, *, continued: bool = False, timeout_s: float | None = None) -> Message:
        """Simulate ``t_ms`` (``continued``: refused before any run); the ack holds the result
        (:func:`~einet.engine.protocol.result_from_message`)."""
        return self.call("continue" if continued else "run", timeout_s, t_ms=t_ms, label=label)

    def store(self, path: str | Path, *, overwrite: bool = False, background: bool = False, timeout_s: float | None = None) -> Message:
        """Store to ``path``; ``background``: the state is taken at the next step boundary and
        written by a forked process (``stored`` or ``store_failed`` follows)."""
        return self.call("store", timeout_s, path=str(path), overwrite=overwrite, background=background)

    def restore(self, path: str | Path, *, seed: int | None = None, threads: int | None = None, changes: tuple[Change, ...] = (), timeout_s: float | None = None) -> Message:
        """Restore ``path`` (seed and threads default to the snapshot's), with protocol changes."""
        return self.call("restore", timeout_s, path=str(path), seed=seed, threads=threads, changes=[c.to_dict() for c in changes])

    def reset(self, timeout_s: float | None = None) -> Message:
        return self.call("reset", timeout_s)

    def check_storable(self, timeout_s: float | None = None) -> Message:
        return self.call("check_storable", timeout_s)

    def ping(self, timeout_s: float | None = None) -> Message:
        return self.call("ping", timeout_s)

    def pause(self, timeout_s: float | None = None) -> Message:
        return self.call("pause", timeout_s)

    def resume(self, timeout_s: float | None = None) -> Message:
        return self.call("resume", timeout_s)

    def cancel(self, timeout_s: float | None = None) -> Message:
        return self.call("cancel", timeout_s)

    # -- threads -------------------------------------------------------------------------
    def _emit(self, msg: Message) -> None:
        if self.on_event is not None:
            self.on_event(msg)
        else:
            self.events.put(msg)

    def _reader(self, gen: int) -> None:
        chan = self._chan
        assert chan is not None
        while True:
            try:
                msg = chan.recv()
            except (ProtocolError, OSError, ValueError):
                break
            if gen != self._generation:
                return
            self._last_seen = time.monotonic()
            if msg.kind == "ready" and self._ready is not None and not self._ready.done():
                self._ready.set_result(msg)
            if msg.kind in ("ack", "error") and msg.get("id") is not None:
                with self._lock:
                    fut = self._pending.pop(int(msg["id"]), None)
                if fut is not None and not fut.done():
                    if msg.kind == "ack":
                        fut.set_result(msg)
                    else:
                        fut.set_exception(EngineError(str(msg.get("message")), str(msg.get("op", "")), str(msg.get("error", ""))))
                continue
            self._emit(msg)
        if gen == self._generation:
            code = self.proc.poll() if self.proc else None
            if code is None and self.proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    code = self.proc.wait(1.0)
            self._mark_dead(self._exit_reason(code) if code is not None else "engine connection lost")

    def _watchdog(self, gen: int) -> None:
        while gen == self._generation and self._dead is None:
            time.sleep(0.25)
            if self.proc is not None and self.proc.poll() is not None:
                self._mark_dead(self._exit_reason(self.proc.returncode))
            elif time.monotonic() - self._last_seen > self.hang_timeout_s:
                if self.proc is not None:
                    self.proc.kill()
                self._mark_dead(f"engine hung (no sign of life for {self.hang_timeout_s:g} s); stopped it")

    def _exit_reason(self, code: int) -> str:
        if self.mpi is None:
            return f"engine process exited (code {code})"
        from .launch import mpi_failure

        why = mpi_failure(self.log_path)
        return f"the engine's MPI job ended (code {code}){': ' + why if why else ''}; every rank stopped; log: {self.log_path}"

    def _mark_dead(self, reason: str) -> None:
        with self._lock:
            if self._dead is not None:
                return
            self._dead = reason
            pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(EngineDied(reason))
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(EngineDied(reason))
        if not self._closing and reason != "engine stopped":
            self._emit(Message("died", {"reason": reason}))


def _kill_rank(pid: int) -> None:
    """SIGKILL a rank of our MPI job if it still runs (its command line says it is einet's
    engine: a pid reused by another process is left alone)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            if b"einet.engine.startup" not in fh.read():
                return
        os.kill(pid, signal.SIGKILL)
    except (OSError, ProcessLookupError):
        pass

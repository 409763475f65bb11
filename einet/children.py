"""The processes einet starts, and how they end.

Ctrl-C ends a command within :data:`STOP_GRACE_S` even while NEST is stuck inside one call:
NEST does not return to Python inside a call (a step of a network that spikes at 1e12 Hz takes
hours), so Python never sees the interrupt. The command therefore runs in a forked child
(forked before NEST is imported) while this process only waits: on Ctrl-C it gives the child
the grace time to stop by itself, then ends it and says so in one line. Everything a command
publishes is complete or absent at any kill (stores and the history are atomic).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import NoReturn

STOP_GRACE_S = 1.5
"""How long a run may take to stop by itself after Ctrl-C (escape or q in the dashboard)
before its process is ended: under 2 s in all."""

_SI_KERNEL = 0x80  # si_code of a signal the terminal sent (Ctrl-C) rather than kill()
_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


HEAP_HUGE_PAGES = "glibc.malloc.hugetlb=1"


def holding_a_network(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` for a process einet starts to hold a NEST network (the dashboard's engine, an
    MPI job's ranks): glibc's malloc asks for transparent huge pages on its main heap, unless
    the user's own ``GLIBC_TUNABLES`` say how. A background store forks that process, and fork
    copies an entry per page of memory: a 2 MiB page needs one where 4 KiB pages need 512.
    glibc reads the setting when a process starts, so it is set for processes einet starts
    (README, "Node scale", for one's own)."""
    tunables = env.get("GLIBC_TUNABLES", "")
    if "glibc.malloc.hugetlb" in tunables:
        return dict(env)
    return {**env, "GLIBC_TUNABLES": ":".join(t for t in (tunables, HEAP_HUGE_PAGES) if t)}


def die_with_parent() -> None:
    """End this (child) process when its parent ends, even by SIGKILL: a reader, store worker
    or rehearsal never outlives whoever asked for it (PR_SET_PDEATHSIG)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)
    if os.getppid() == 1:  # the parent died before the line above took effect
        os._exit(1)


def exit_now(code: int) -> NoReturn:
    """End this process as ``sys.exit(code)`` would, without Python freeing every object one by
    one first: after NEST that teardown takes longer than a small command's work. Threads are
    waited for, the exit handlers run (NEST's own shutdown is one) and the standard streams
    are flushed, as at a normal exit. For processes einet runs from start to end (a command's
    child, a rehearsal), never inside a caller's process."""
    import atexit

    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def fork_child(body: Callable[[], None], *, on_error: Callable[[BaseException], None] | None = None, ignore_interrupt: bool = False) -> int:
    """Fork and return the child's pid. The child dies with this process, runs ``body`` and
    leaves with ``os._exit`` (0, or 1 after ``on_error(exc)``): it never returns into the
    caller's code, so no cleanup of the parent's objects runs twice. ``ignore_interrupt``
    leaves Ctrl-C to the parent."""
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        die_with_parent()
        if ignore_interrupt:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        body()
        code = 0
    except BaseException as exc:  # noqa: BLE001 - the child must reach os._exit whatever happens
        if on_error is not None:
            with contextlib.suppress(Exception):
                on_error(exc)
    finally:
        os._exit(code)


def run_stoppable(command: Callable[[], int]) -> int:
    """``command()``'s exit code, run in a child that Ctrl-C (or SIGTERM, SIGHUP) ends within
    :data:`STOP_GRACE_S` (exit 128 + the signal's number when it had to be killed). Call it
    before NEST is imported, and exit with the code: this process ignores those signals after."""
    if not hasattr(os, "fork") or not hasattr(signal, "sigtimedwait"):  # pragma: no cover - non-Linux
        return command()
    waited = {*_FORWARDED, signal.SIGCHLD}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, waited)  # before the fork: no signal is lost
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    pid = os.fork()
    if pid == 0:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
        die_with_parent()  # a SIGKILL of the command (a job's time limit) ends its NEST too
        exit_now(command())
    try:
        return _wait(pid)
    finally:
        for sig in _FORWARDED:  # the caller exits with the code: a late Ctrl-C changes nothing
            signal.signal(sig, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _wait(pid: int) -> int:
    waited = [*_FORWARDED, signal.SIGCHLD]
    deadline: float | None = None
    first: int = signal.SIGINT
    info: signal.struct_siginfo | None
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return _exit_code(status)
        if deadline is None:
            info = signal.sigwaitinfo(waited)
        else:
            info = signal.sigtimedwait(waited, max(0.0, deadline - time.monotonic()))
            if info is None:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                if sys.stderr.isatty():  # the child's progress bar hid the cursor
                    sys.stderr.write("\r\x1b[2K\x1b[?25h")
                print(f"einet: interrupted: NEST did not stop within {STOP_GRACE_S:g} s (stuck inside one call), so its process was ended", file=sys.stderr)
                return 128 + first
        if info.si_signo == signal.SIGCHLD:
            continue
        if info.si_signo != signal.SIGINT or info.si_code != _SI_KERNEL:
            os.kill(pid, info.si_signo)  # the terminal's Ctrl-C reached the child already
        if deadline is None:
            deadline, first = time.monotonic() + STOP_GRACE_S, info.si_signo


def _exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code

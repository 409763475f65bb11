"""The entry points: ``main(argv)`` and the ``einet`` console script."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from .commands import COMMANDS
from .exits import EXIT_OK, exit_of
from .parser import build_parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    with _log_to_stderr():
        return _main(argv)


def _main(argv: list[str]) -> int:
    try:
        if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
            argv = ["tui", *argv]  # `einet --scale 0.2` is the dashboard with flags
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except BrokenPipeError:
        # the reader went away (`einet inspect x.h5 | head -1`): nothing left to say
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        print("einet: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - a tool users trust must not spray tracebacks
        code, line = exit_of(exc)
        print(f"einet: {line}", file=sys.stderr)
        return code


@contextlib.contextmanager
def _log_to_stderr() -> Iterator[None]:
    """einet's log lines (e.g. why the accelerator is not used) as ``einet: …`` on stderr while
    a command runs; after it, the logger is as it was (``main`` called from Python, e.g. a
    test, leaves no handler behind to hide einet's records from the caller's own logging)."""
    log = logging.getLogger("einet")
    if log.handlers:
        yield
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("einet: %(message)s"))
    log.addHandler(handler)
    propagate, log.propagate = log.propagate, False
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.propagate = propagate


def entry() -> int:
    """The ``einet`` command. A command that runs NEST in this process runs in a child that
    Ctrl-C ends within two seconds even while NEST is stuck inside one call
    (:func:`einet.children.run_stoppable`); the dashboard's engine is a process of its own."""
    from ..children import run_stoppable

    if sys.argv[1:2] and sys.argv[1] in NEST_HERE:
        return run_stoppable(_entry)
    return _entry()


NEST_HERE = ("run", "restore", "resume", "demo")


def _entry() -> int:
    """:func:`main`, without "Exception ignored" tracebacks from Ctrl-C.

    Python cannot raise a KeyboardInterrupt that arrives while a garbage-collection callback
    runs (as many do when a store's objects are freed): it prints a traceback and goes on. Such
    an interrupt is noted instead, and the command ends as interrupted (exit 130) once done —
    whatever it published is complete. After the work, the exit itself ignores Ctrl-C."""
    import signal

    swallowed: list[bool] = []
    default = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if unraisable.exc_type is KeyboardInterrupt:
            swallowed.append(True)
        else:
            default(unraisable)

    sys.unraisablehook = hook
    try:
        code = main()
        if swallowed and code == EXIT_OK:
            print("einet: interrupted", file=sys.stderr)
            code = 130
    except KeyboardInterrupt:  # one landing after main() handled its own, or in its handlers
        code = 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    if code == 130:
        _exit_within(_EXIT_GRACE_S, code)
    return code


_EXIT_GRACE_S = 1.0
"""How long an interrupted command's interpreter may take to exit before it is ended."""


def _exit_within(seconds: float, code: int) -> None:
    """End the process with ``code`` if the interpreter's own exit has not done so within
    ``seconds``. An interrupted trial set killed its worker processes under a
    ProcessPoolExecutor, whose manager thread the interpreter joins at exit and which can
    wait there for ever (CPython issue 83386; seen once in a few dozen Ctrl-C tests): the
    output is written by then, and Ctrl-C must end the command."""
    import threading

    def end() -> None:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)

    timer = threading.Timer(seconds, end)
    timer.daemon = True
    timer.start()

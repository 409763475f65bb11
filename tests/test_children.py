"""The processes einet starts: a forked child never outlives its parent and never returns into
the parent's code; the same helper serves the snapshot reader and the store's workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from einet.children import fork_child

from .conftest import ROOT, wait_for


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return True
    return state in ("Z", "X")  # ended, not yet reaped by whoever adopted it


PARENT = textwrap.dedent(
    """
    import sys, time
    from einet.children import fork_child
    pid = fork_child(lambda: time.sleep(600))
    print(pid, flush=True)
    time.sleep(600)
    """
)


def test_a_forked_child_dies_with_its_parent_even_by_sigkill() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert not _gone(child)
    parent.send_signal(signal.SIGKILL)
    parent.wait(10)
    wait_for(lambda: _gone(child), 10.0, "the child to end with its parent")


STOPPABLE = textwrap.dedent(
    """
    import os, sys, time
    from einet.children import run_stoppable
    def command():
        print(os.getpid(), flush=True)
        time.sleep(600)
        return 0
    sys.exit(run_stoppable(command))
    """
)


def test_a_cli_commands_child_dies_with_the_cli_even_by_sigkill() -> None:
    """A job's time limit SIGKILLs ``einet run``: the child that runs NEST must not go on."""
    parent = subprocess.Popen([sys.executable, "-c", STOPPABLE], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert child != parent.pid and not _gone(child)
    parent.send_signal(signal.SIGKILL)
    parent.wait(10)
    wait_for(lambda: _gone(child), 10.0, "the command's child to end with the CLI")


def test_a_forked_child_leaves_with_its_code_and_never_returns_into_the_caller(tmp_path: Path) -> None:
    marker = tmp_path / "returned"
    heard = tmp_path / "error"

    def fails() -> None:
        raise ValueError("bad input")

    for body, want in ((lambda: None, 0), (fails, 1)):
        pid = fork_child(body, on_error=lambda exc: heard.write_text(str(exc)))
        if pid == 0:  # pragma: no cover - only a child that returned would get here
            marker.touch()
            os._exit(3)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == want
    assert heard.read_text() == "bad input" and not marker.exists()

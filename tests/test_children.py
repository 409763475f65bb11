"""The processes einet starts: a forked child never outlives its parent and never returns into
the parent's code; the same helper serves the snapshot reader and the store's workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from einet.children import fork_child, holding_a_network

from .conftest import ROOT, einet_cli, wait_for


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


def test_a_commands_child_leaves_without_teardown_yet_with_every_file_written_and_handler_run(tmp_path: Path) -> None:
    """``exit_now`` ends the command's child: its output, NEST's recorder files and the exit
    handlers (the model's, NEST's own shutdown that closes those files) are all there."""
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    model = tmp_path / "recording.py"
    model.write_text(
        textwrap.dedent(f"""
        import atexit
        import sys
        from pathlib import Path

        sys.path.insert(0, {str(ROOT / "tests" / "models")!r})
        from recorders import build as build_recorders


        def build(nest, scale=1.0):
            atexit.register(Path({str(tmp_path / "handler-ran")!r}).touch)
            return build_recorders(nest, scale=scale, folder={str(recordings)!r})
        """)
    )
    p = einet_cli("run", "--model", str(model), "--t", "100", "--threads", "1", "--json", "--no-history")
    assert p.returncode == 0, p.stderr
    result = json.loads(p.stdout)  # the whole of it
    assert (tmp_path / "handler-ran").exists()
    (spikes,) = recordings.glob("spikes-*.dat")
    (voltages,) = recordings.glob("voltages-*.dat")
    rows = [line for line in spikes.read_text().splitlines() if line[:1].isdigit()]
    assert len(rows) == result["spikes"] > 0, "every spike written"
    samples = [line for line in voltages.read_text().splitlines() if line[:1].isdigit()]
    assert len(samples) == 3 * 99 and samples[-1].split()[1] == "99.00000", "every sample written"


def test_a_process_holding_a_network_gets_huge_pages_unless_the_user_said_otherwise() -> None:
    assert holding_a_network({"A": "1"}) == {"A": "1", "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}
    assert holding_a_network({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"})["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"
    assert holding_a_network({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}) == {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}

"""The einet command: runs each in a fresh process (the console entry, as users start it);
refusals that come before NEST is involved through ``einet.cli.main`` in this process."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from einet.cli import main
from einet.snapshot import FORMAT_VERSION

from .conftest import ROOT, einet_cli, one_line_error, wait_for


@pytest.fixture(scope="module")
def cli_snapshot(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("cli") / "s.h5"
    p = einet_cli("run", "--scale", "0.1", "--t", "200", "--seed", "5", "--store", str(path), "--json")
    assert p.returncode == 0, p.stderr
    return path, json.loads(p.stdout)


def test_run_json_has_the_documented_fields(cli_snapshot: tuple[Path, dict]) -> None:
    path, doc = cli_snapshot
    for key in ("spikes", "rate_hz", "digest", "seed", "threads", "t_start_ms", "t_stop_ms", "stored"):
        assert key in doc
    assert doc["seed"] == 5 and doc["t_stop_ms"] == 200.0 and doc["spikes"] > 0
    assert doc["stored"] == str(path) and path.is_file()


def test_same_seed_identical_in_separate_processes_other_seed_differs(cli_snapshot: tuple[Path, dict]) -> None:
    path, _ = cli_snapshot
    runs = [einet_cli("restore", str(path), "--json", *extra) for extra in ((), (), ("--seed", "6"))]
    assert all(p.returncode == 0 for p in runs), [p.stderr for p in runs]
    docs = [json.loads(p.stdout) for p in runs]
    assert docs[0]["digest"] == docs[1]["digest"]
    assert docs[2]["digest"] != docs[0]["digest"]
    assert docs[0]["seed"] == 5 and docs[0]["t_start_ms"] == 200.0 and docs[0]["origin"] == "restored", "on the stored clock"
    assert docs[0]["t_stop_ms"] == 400.0, "the snapshot's run length by default"
    p = einet_cli("restore", str(path), "--json", "--t", "50")
    assert p.returncode == 0, p.stderr
    short = json.loads(p.stdout)  # the NEST banner or INFO lines on stdout would break this
    assert short["t_stop_ms"] == 250.0 and short["spikes"] < docs[0]["spikes"]
    assert "NEST" not in p.stderr + "".join(d.stderr for d in runs), "nor do they go to stderr"


def test_inspect_json(cli_snapshot: tuple[Path, dict], capsys: pytest.CaptureFixture[str]) -> None:
    """(In this process: the console entry's JSON runs are the restores above.)"""
    path, _ = cli_snapshot
    assert main(["inspect", str(path), "--json"]) == 0
    out, err = capsys.readouterr()
    assert err == "", err
    doc = json.loads(out)
    assert doc["format"] == "einet-snapshot" and doc["format_version"] == FORMAT_VERSION and doc["valid"] is True
    assert doc["neurons"] == {"E": 200, "I": 50}
    assert doc["synapses"] == {"e_syn": 50000, "i_syn": 12500, "static_synapse": 250}, "the drive's connections too"
    assert doc["node_models"] == {"iaf_psc_delta": 250, "poisson_generator": 1}
    assert [c["model"] for c in doc["custom_models"]] == ["e_syn", "i_syn"]
    assert doc["model"] == "einet.models.brunel_stdp" and doc["scale"] == 0.1
    assert doc["t_stored_ms"] == 200.0 and doc["seed"] == 5 and doc["n_vp"] == 2
    assert doc["nest_version"].startswith("3.10")
    assert 0.5 < doc["weight_stats"]["e_syn"]["mean"] < 1.5
    keys = doc["stored_keys"]
    assert keys["synapses"]["e_syn"]["per connection"] == ["Kplus", "weight"] and keys["synapses"]["e_syn"]["shared"] == ["delay"]
    assert "V_m" in keys["nodes"]["iaf_psc_delta"]["per node"] and "C_m" in keys["nodes"]["iaf_psc_delta"]["shared"]
    assert "rate" in keys["nodes"]["poisson_generator"]["shared"]
    # the hidden section holds the rest: spikes in transit, last spikes, random generators
    assert not any("transit" in s or "t_spike" in s for s in doc["not_stored"]), doc["not_stored"]
    assert doc["hidden"]["uncovered"] == [] and [(e["model"], e["count"]) for e in doc["hidden"]["stdp"]] == [("e_syn", 50000)]


def test_demo_five_runs(tmp_path: Path) -> None:
    p = einet_cli("demo", "--scale", "0.1", "--t", "200", "--json")
    assert p.returncode == 0, p.stderr
    runs = json.loads(p.stdout)["runs"]
    assert [r["label"] for r in runs] == ["initial", "continued", "restored", "restored, same seed", "restored, other seed"]
    assert runs[2]["exact"] is True and runs[2]["digest"] == runs[1]["digest"] and runs[2]["identical_to"] == "continued", "an exact restore is the continued run"
    assert runs[3]["identical_to"] == "continued" and runs[3]["digest"] == runs[2]["digest"]
    assert runs[4]["identical_to"] is None and runs[4]["digest"] != runs[2]["digest"]
    assert runs[1]["t_start_ms"] == 200.0 and runs[2]["t_start_ms"] == 200.0, "a restored run goes on from the stored time"


def test_demo_draws_plots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """(In this process: the demo through the console entry is test_demo_five_runs.)"""
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--scale", "0.05", "--t", "100"]) == 0
    out, _ = capsys.readouterr()
    assert "identical to" in out and "e_syn weights" in out and "E: rate per neuron [Hz]" in out and "t [ms]" in out


@pytest.mark.parametrize(
    "args, code, words",
    [
        (("run", "--scale", "-1"), 2, "einet: usage: scale"),
        (("run", "--scale", "nan"), 2, "einet: usage: scale"),
        (("run", "--seed", "0"), 2, "einet: usage: seed"),
        (("run", "--t", "inf"), 2, "finite"),
        (("run", "--set", "je_mvv=2"), 2, "takes no parameter 'je_mvv'"),
        (("run", "--model", "no/such/model.py"), 2, "does not exist"),
        (("run", "--frobnicate"), 2, "einet: usage: unrecognized arguments: --frobnicate"),
        (("restore", "nowhere.h5"), 1, "einet: error: nowhere.h5: no such file"),
        (("inspect", "nowhere.h5"), 1, "einet: error: nowhere.h5: no such file"),
        (("run", "--mpirun", "srun"), 2, "--mpirun needs --ranks"),
        (("run", "--ranks", "0"), 2, "--ranks must be 1"),
        (("run", "--ranks", "2", "--mpirun", "no-such-launcher"), 2, "no-such-launcher not found"),
    ],
)
def test_bad_input_one_line_and_exit_code(args: tuple[str, ...], code: int, words: str, before_nest: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(list(args)) == code
    one_line_error(capsys, words)


@pytest.mark.parametrize(
    "args, code, words",
    [
        (("run", "--scale", "-1"), 2, "einet: usage: scale"),  # run and restore run in a stoppable child
        (("restore", "nowhere.h5"), 1, "einet: error: nowhere.h5: no such file"),
        (("run", "--scale", "0.05", "--t", "0.01"), 2, "einet: usage: run length must be at least the resolution"),  # after the build
    ],
)
def test_bad_input_through_the_console_entry(args: tuple[str, ...], code: int, words: str, tmp_path: Path) -> None:
    p = einet_cli(*args, cwd=tmp_path)
    assert p.returncode == code and p.stdout == "", (p.returncode, p.stdout, p.stderr)
    assert len(p.stderr.splitlines()) == 1 and p.stderr.startswith(words), p.stderr


def test_pickle_is_refused_without_running_it(tmp_path: Path, before_nest: None, capsys: pytest.CaptureFixture[str]) -> None:
    """(The exit code through the console entry: test_hostile.py's test_cli_exit_code_3_and_one_line.)"""
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (open, (str(marker), "w"))

    bad = tmp_path / "evil.pkl"
    bad.write_bytes(pickle.dumps(Evil()))
    for cmd in ("restore", "inspect"):
        assert main([cmd, str(bad)]) == 3, cmd
        out, err = capsys.readouterr()  # inspect shows the file as INVALID on stdout too
        assert len(err.splitlines()) == 1 and err.startswith("einet: invalid snapshot: ") and "is a pickle file" in err, err
        assert "Traceback" not in out + err
    assert not marker.exists()


def test_existing_store_target_is_refused_before_simulating(tmp_path: Path, before_nest: None, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("precious")
    for cmd in (("run", "--scale", "0.05"), ("demo", "--scale", "0.05")):
        assert main([*cmd, "--t", "50", "--store", str(target)]) == 2, cmd
        one_line_error(capsys, f"einet: usage: {target} exists: choose another name or pass --overwrite")
    assert target.read_text() == "precious"


def test_ranks_without_an_mpi_nest_says_how_to_get_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, before_nest: None, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("EINET_MPI_PREFIX", str(tmp_path / "none"))
    monkeypatch.setenv("EINET_NEST_MPI_PYTHON", "")
    assert main(["run", "--ranks", "2"]) == 2
    one_line_error(capsys, "make setup-mpi")


def _stuck_run_on_a_terminal(tmp_path: Path) -> tuple[int, int]:
    """``einet run`` of a model that stays inside one NEST call, on a pty; returns once it is
    there (the model marks the moment just before): (pid, pty descriptor)."""
    import pty
    import select

    marker = tmp_path / "in-nest"
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child execs at once
        os.chdir(ROOT)
        os.execv(str(Path(sys.executable).parent / "einet"), ["einet", "run", "--model", "tests/models/stuck.py", "--set", f"marker={marker}", "--no-history"])
    seen = bytearray()

    def in_nest() -> bool:
        if select.select([fd], [], [], 0.05)[0]:  # what it prints is read: a full terminal would stop it
            seen.extend(os.read(fd, 4096))
        return marker.exists()

    wait_for(in_nest, 120, lambda: f"the run to be inside NEST; it printed {bytes(seen)!r}", interval=0)
    return pid, fd


def _ended(pid: int, fd: int, timeout: float) -> tuple[int, str, float]:
    """Wait for the command to end: its exit code, what it printed, and how long it took."""
    import select

    start, out, status = time.monotonic(), b"", 0

    def ended() -> bool:
        nonlocal out, status
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return True
        if select.select([fd], [], [], 0.1)[0]:
            with contextlib.suppress(OSError):
                out += os.read(fd, 4096)
        return False

    wait_for(ended, timeout, lambda: f"the command to end; it printed {out!r}", interval=0)
    took = time.monotonic() - start
    with contextlib.suppress(OSError):
        while select.select([fd], [], [], 0.2)[0]:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            out += chunk
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace"), took


@pytest.mark.serial
@pytest.mark.parametrize("how", ["terminal", "kill"])
def test_ctrl_c_ends_a_cli_run_while_nest_is_stuck_inside_one_call(how: str, tmp_path: Path) -> None:
    import signal

    from einet.children import STOP_GRACE_S

    pid, fd = _stuck_run_on_a_terminal(tmp_path)
    if how == "terminal":
        os.write(fd, b"\x03")  # the terminal sends SIGINT to the whole foreground group
    else:
        os.kill(pid, signal.SIGINT)  # only the command's own process: it passes it on
    code, out, took = _ended(pid, fd, timeout=STOP_GRACE_S + 10)
    assert code == 130, out
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out)  # the progress bar's colours and cursor
    lines = [line for line in plain.replace("\r", "\n").splitlines() if line.startswith("einet:")]
    assert lines == [f"einet: interrupted: NEST did not stop within {STOP_GRACE_S:g} s (stuck inside one call), so its process was ended"], out
    assert "Traceback" not in out and out.rstrip().endswith("ended"), out
    assert took < STOP_GRACE_S + 3
    left = subprocess.run(["pgrep", "-f", "tests/models/stuck.py"], capture_output=True, text=True).stdout.split()
    assert left == [], "no process of the run is left"


STUCK_AT_EXIT = """
import sys, threading
from einet.cli.main import _exit_within
threading.Thread(target=threading.Event().wait).start()  # a thread the interpreter joins at exit, for ever
print("output written", flush=True)
_exit_within(0.5, 130)
sys.exit(130)
"""


def test_an_interrupted_command_ends_though_a_thread_would_hold_its_exit() -> None:
    """An interrupted trial set's ProcessPoolExecutor can hold the interpreter's exit for ever
    (CPython issue 83386): the command still ends, with its exit code, its output written."""
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-c", STUCK_AT_EXIT], capture_output=True, text=True, timeout=30)
    assert done.returncode == 130 and done.stdout == "output written\n" and time.monotonic() - t0 < 10, (done.returncode, done.stdout, done.stderr)

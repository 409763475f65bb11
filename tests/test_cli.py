"""The einet command, each call in a fresh process."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import pickle
import re
from pathlib import Path

import pytest

from .conftest import ROOT, einet_cli


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
    short = json.loads(einet_cli("restore", str(path), "--json", "--t", "50").stdout)
    assert short["t_stop_ms"] == 250.0 and short["spikes"] < docs[0]["spikes"]


def test_inspect_json(cli_snapshot: tuple[Path, dict]) -> None:
    path, _ = cli_snapshot
    p = einet_cli("inspect", str(path), "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["format"] == "einet-snapshot" and doc["format_version"] == 3 and doc["valid"] is True
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
    assert any("transit" in s for s in doc["not_stored"]) and any(s.startswith("iaf_psc_delta: post_trace, t_spike") for s in doc["not_stored"])


def test_demo_five_runs(tmp_path: Path) -> None:
    p = einet_cli("demo", "--scale", "0.1", "--t", "200", "--json")
    assert p.returncode == 0, p.stderr
    runs = json.loads(p.stdout)["runs"]
    assert [r["label"] for r in runs] == ["initial", "continued", "restored", "restored, same seed", "restored, other seed"]
    assert runs[3]["identical_to"] == "restored" and runs[3]["digest"] == runs[2]["digest"]
    assert runs[4]["identical_to"] is None and runs[4]["digest"] != runs[2]["digest"]
    assert runs[1]["t_start_ms"] == 200.0 and runs[2]["t_start_ms"] == 200.0, "a restored run goes on from the stored time"


def test_demo_draws_plots() -> None:
    p = einet_cli("demo", "--scale", "0.05", "--t", "100")
    assert p.returncode == 0, p.stderr
    assert "identical to" in p.stdout and "e_syn weights" in p.stdout and "E: rate per neuron [Hz]" in p.stdout and "t [ms]" in p.stdout


@pytest.mark.parametrize(
    "args, code, words",
    [
        (("run", "--scale", "-1"), 2, "scale"),
        (("run", "--scale", "nan"), 2, "scale"),
        (("run", "--seed", "0"), 2, "seed"),
        (("run", "--scale", "0.05", "--t", "0.01"), 2, "resolution"),
        (("run", "--t", "inf"), 2, "finite"),
        (("run", "--set", "je_mvv=2"), 2, "takes no parameter 'je_mvv'"),
        (("run", "--model", "no/such/model.py"), 2, "does not exist"),
        (("run", "--frobnicate"), 2, "unrecognized"),
        (("restore", "nowhere.h5"), 1, "no such file"),
        (("inspect", "nowhere.h5"), 1, "no such file"),
        (("run", "--mpirun", "srun"), 2, "--mpirun needs --ranks"),
        (("run", "--ranks", "0"), 2, "--ranks must be 1"),
        (("run", "--ranks", "2", "--mpirun", "no-such-launcher"), 2, "no-such-launcher not found"),
    ],
)
def test_bad_input_one_line_and_exit_code(args: tuple[str, ...], code: int, words: str) -> None:
    p = einet_cli(*args)
    assert p.returncode == code
    assert len(p.stderr.strip().splitlines()) == 1 and words in p.stderr
    assert "Traceback" not in p.stderr


def test_pickle_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (open, (str(marker), "w"))

    bad = tmp_path / "evil.pkl"
    bad.write_bytes(pickle.dumps(Evil()))
    for cmd in ("restore", "inspect"):
        p = einet_cli(cmd, str(bad))
        assert p.returncode == 3 and "pickle" in p.stderr and "Traceback" not in p.stderr
    assert not marker.exists()


def test_nothing_but_json_on_stdout(cli_snapshot: tuple[Path, dict]) -> None:
    path, _ = cli_snapshot
    p = einet_cli("restore", str(path), "--json", "--t", "50")
    json.loads(p.stdout)  # the NEST banner or INFO lines would break this
    assert "NEST" not in p.stderr


def test_existing_store_target_is_refused_before_simulating(tmp_path: Path) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("precious")
    for cmd in (("run", "--scale", "0.05"), ("demo", "--scale", "0.05")):
        p = einet_cli(*cmd, "--t", "50", "--store", str(target))
        assert p.returncode == 2 and "exists" in p.stderr and "--overwrite" in p.stderr
    assert target.read_text() == "precious"


def test_ranks_without_an_mpi_nest_says_how_to_get_one(tmp_path: Path) -> None:
    p = subprocess.run(
        [sys.executable, "-m", "einet.cli", "run", "--ranks", "2"],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "EINET_MPI_PREFIX": str(tmp_path / "none"), "EINET_NEST_MPI_PYTHON": ""},
    )
    assert p.returncode == 2 and "make setup-mpi" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr


def _stuck_run_on_a_terminal(tmp_path: Path) -> tuple[int, int]:
    """``einet run`` of a model that stays inside one NEST call, on a pty; returns once it is
    there (the model marks the moment just before): (pid, pty descriptor)."""
    import pty
    import select
    import time

    marker = tmp_path / "in-nest"
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child execs at once
        os.chdir(ROOT)
        os.execv(str(Path(sys.executable).parent / "einet"), ["einet", "run", "--model", "tests/models/stuck.py", "--set", f"marker={marker}", "--no-history"])
    seen, deadline = b"", time.monotonic() + 120
    while not marker.exists():
        assert time.monotonic() < deadline, seen
        if select.select([fd], [], [], 0.05)[0]:
            seen += os.read(fd, 4096)
    return pid, fd


def _ended(pid: int, fd: int, timeout: float) -> tuple[int, str, float]:
    """Wait for the command to end: its exit code, what it printed, and how long it took."""
    import select
    import time

    start, out = time.monotonic(), b""
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        assert time.monotonic() - start < timeout, f"still running after {timeout} s: {out!r}"
        if select.select([fd], [], [], 0.1)[0]:
            with contextlib.suppress(OSError):
                out += os.read(fd, 4096)
    took = time.monotonic() - start
    with contextlib.suppress(OSError):
        while select.select([fd], [], [], 0.2)[0]:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            out += chunk
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace"), took


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

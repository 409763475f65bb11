"""The engine: NEST in a child process, driven through the protocol."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from einet import Session
from einet.engine import Engine, EngineDied, EngineError, Message, result_from_message
from einet.snapshot import open_snapshot

from .conftest import SMALL, children_of, stopped, wait_for


class Recorder:
    def __init__(self) -> None:
        self.events: list[Message] = []
        self.lock = threading.Lock()

    def __call__(self, msg: Message) -> None:
        with self.lock:
            self.events.append(msg)

    def of(self, kind: str) -> list[Message]:
        with self.lock:
            return [m for m in self.events if m.kind == kind]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[tuple[Engine, Recorder]]:
    rec = Recorder()
    eng = Engine(log_dir=tmp_path / "logs", on_event=rec, hang_timeout_s=30)
    eng.start()
    yield eng, rec
    eng.close()
    assert eng.proc is not None and eng.proc.poll() is not None, "no stray engine process"


def test_frames_add_up_to_the_run_and_match_the_library(engine: tuple[Engine, Recorder], stored: Path) -> None:
    eng, rec = engine
    eng.call("restore", path=str(stored))
    result = result_from_message(eng.call("run", t_ms=400.0))
    frames = rec.of("frame")
    assert len(frames) >= 2
    assert sum(len(f.arrays["senders"]) for f in frames) == result.n_spikes == frames[-1]["n_spikes_total"]
    assert frames[-1]["t_ms"] == pytest.approx(600.0) and frames[-1]["progress"] == pytest.approx(1.0), "from the stored 200 ms on"
    # the same run, done in this process with the library, in one piece
    local = Session(SMALL)
    local.restore(stored)
    assert local.run(400.0).digest == result.digest


def test_pause_and_cancel_take_effect_within_one_step(engine: tuple[Engine, Recorder]) -> None:
    eng, rec = engine
    eng.call("build", config=SMALL.to_dict())
    running = eng.request("run", t_ms=100_000.0)
    wait_for(lambda: len(rec.of("frame")) >= 3, 60, "three frames of the run")
    n0 = len(rec.of("frame"))
    eng.call("pause", timeout_s=5)
    n1 = len(rec.of("frame"))
    # the engine reads commands after every step: only a frame already on its way and the
    # step under way can come before the acknowledgement
    assert n1 <= n0 + 2
    # not a synchronisation: "no step while paused" needs a stretch of time to look at (five
    # times the steps' pace); the ping after it brings in every frame sent before its answer
    time.sleep(0.5)
    eng.call("ping", timeout_s=5)
    assert len(rec.of("frame")) == n1, "no steps while paused"
    assert rec.of("state")[-1]["state"] == "paused"
    eng.call("resume")
    wait_for(lambda: len(rec.of("frame")) >= n1 + 2, 30, "two frames after the resume")
    n2 = len(rec.of("frame"))
    eng.call("cancel", timeout_s=5)
    n3 = len(rec.of("frame"))
    assert n3 <= n2 + 2
    result = result_from_message(running.result(10))
    frames = rec.of("frame")
    assert len(frames) == n3, "no step after the cancel was acknowledged"
    assert result.cancelled and result.t_stop_ms == frames[-1]["t_ms"] < 100_000.0
    assert result.n_spikes == sum(len(f.arrays["senders"]) for f in frames)


def test_errors_come_back_as_one_line_and_the_engine_lives_on(engine: tuple[Engine, Recorder], tmp_path: Path) -> None:
    eng, _ = engine
    with pytest.raises(EngineError, match="no such file"):
        eng.call("restore", path=str(tmp_path / "missing.h5"))
    with pytest.raises(EngineError, match="no network"):
        eng.call("run", t_ms=10.0)
    with pytest.raises(EngineError, match="scale"):
        eng.call("build", config={"scale": -1.0})
    with pytest.raises(EngineError, match="unknown command"):
        eng.call("fly")
    with pytest.raises(EngineError, match="nothing to continue"):
        eng.call("continue", t_ms=10.0)
    eng.call("build", config=SMALL.to_dict())
    first = result_from_message(eng.call("run", t_ms=50.0))
    then = result_from_message(eng.call("continue", t_ms=50.0))
    assert then.origin.kind == "continued" and then.t_start_ms == first.t_stop_ms == 50.0
    assert eng.alive


def test_busy_engine_refuses_other_commands(engine: tuple[Engine, Recorder], tmp_path: Path) -> None:
    eng, rec = engine
    eng.call("build", config=SMALL.to_dict())
    running = eng.request("run", t_ms=100_000.0)
    wait_for(lambda: rec.of("frame"), 30, "the run's first frame")
    with pytest.raises(EngineError, match="busy"):
        eng.call("build", config=SMALL.to_dict(), timeout_s=5)
    eng.call("cancel")
    result = result_from_message(running.result(10))
    assert result.cancelled and result.t_stop_ms < 100_000.0, "the run went on, not the build"


def test_killed_engine_is_detected_and_a_fresh_one_works(tmp_path: Path) -> None:
    rec = Recorder()
    eng = Engine(log_dir=tmp_path, on_event=rec)
    eng.start()
    eng.call("build", config=SMALL.to_dict())
    running = eng.request("run", t_ms=100_000.0)
    wait_for(lambda: rec.of("frame"), 30, "the run's first frame")
    assert eng.pid is not None
    os.kill(eng.pid, signal.SIGKILL)
    with pytest.raises(EngineDied):
        running.result(10)
    wait_for(lambda: rec.of("died"), 5, "the 'died' event")
    assert "exited" in rec.of("died")[0]["reason"]
    with pytest.raises(EngineDied):
        eng.call("ping", timeout_s=5)
    eng.start()
    eng.call("build", config=SMALL.to_dict())
    assert result_from_message(eng.call("run", t_ms=50.0)).t_stop_ms == 50.0
    eng.close()


def test_a_hung_engine_is_declared_dead(tmp_path: Path) -> None:
    rec = Recorder()
    eng = Engine(log_dir=tmp_path, on_event=rec)
    eng.start()
    # short only once it is up: the watch covers the start too, whose NEST import on a busy
    # machine took longer than 1.5 s (the engine was declared hung before it was ready)
    eng.hang_timeout_s = 1.5
    assert eng.pid is not None
    os.kill(eng.pid, signal.SIGSTOP)  # alive but silent
    with pytest.raises(EngineDied, match="hung"):
        eng.call("ping", timeout_s=10)
    assert eng.proc is not None and eng.proc.wait(5) == -signal.SIGKILL, "the client killed it"
    eng.close()


def test_nest_output_never_reaches_the_parent(capfd: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EINET_NEST_VERBOSE", "1")  # banner and INFO messages on
    monkeypatch.delenv("PYNEST_QUIET", raising=False)
    with Engine(log_dir=tmp_path) as eng:
        eng.call("build", config=SMALL.to_dict())
        eng.call("run", t_ms=50.0)
        log = eng.log_path
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    text = log.read_text() if log is not None else ""
    assert "N E S T" in text and "Simulat" in text, "NEST's banner and messages went to the log instead"


def test_store_and_restore_through_the_engine(engine: tuple[Engine, Recorder], tmp_path: Path) -> None:
    eng, rec = engine
    eng.call("build", config=SMALL.to_dict())
    eng.call("run", t_ms=100.0)
    path = tmp_path / "e.h5"
    ack = eng.call("store", path=str(path))
    assert ack["t_stored_ms"] == 100.0 and path.stat().st_size == ack["bytes"]
    with pytest.raises(EngineError, match="exists"):
        eng.call("store", path=str(path))
    digests = []
    for _ in range(2):
        eng.call("restore", path=str(path))
        digests.append(result_from_message(eng.call("run", t_ms=100.0)).digest)
    assert digests[0] == digests[1]
    state = rec.of("state")[-1]
    assert state["snapshot"] == str(path) and state["snapshot_t_ms"] == 100.0 and state["t_ms"] == 200.0, "on the stored clock"


def test_background_store_during_a_run(engine: tuple[Engine, Recorder], tmp_path: Path) -> None:
    """A store asked for mid-run is taken between two steps and written by a forked process
    while the run goes on; a second store meanwhile is refused with a message (the first
    store's process is held stopped while the second is asked for: it cannot have ended)."""
    eng, rec = engine
    eng.call("build", config=SMALL.to_dict())
    running = eng.request("run", t_ms=2000.0)
    wait_for(lambda: rec.of("frame"), 30, "the run's first frame")
    assert eng.pid is not None and children_of(eng.pid) == set()
    # the engine's heap asks for huge pages: forking it for the store copies fewer page entries
    environ = Path(f"/proc/{eng.pid}/environ").read_bytes().split(b"\0")
    assert any(e.startswith(b"GLIBC_TUNABLES=") and b"glibc.malloc.hugetlb=1" in e for e in environ)
    path = tmp_path / "bg.h5"
    ack = eng.call("store", path=str(path), background=True, timeout_s=30)
    assert ack["background"] and 0.0 < ack["t_stored_ms"] < 2000.0 and ack["pause_s"] < 5.0
    frames_at_ack = len(rec.of("frame"))
    forked = children_of(eng.pid)
    assert len(forked) == 1, f"one store process, not {forked}"
    with stopped(forked.pop(), "the first store's process"), pytest.raises(EngineError, match=r"a store of bg\.h5 is in progress"):
        eng.call("store", path=str(tmp_path / "other.h5"), background=True, timeout_s=30)
    assert not (tmp_path / "other.h5").exists()
    result = result_from_message(running.result(120))
    assert not result.cancelled and result.t_stop_ms == 2000.0
    assert len(rec.of("frame")) > frames_at_ack, "frames kept coming after the store began"
    wait_for(lambda: rec.of("stored") or rec.of("store_failed"), 60, "the background store's end")
    done = rec.of("stored")
    assert done and done[0]["path"] == str(path) and done[0]["bytes"] == path.stat().st_size, rec.of("store_failed")
    snap = open_snapshot(path)
    assert snap.t_stored_ms == ack["t_stored_ms"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".h5") == ["bg.h5"], "the refused store left nothing"


def test_engine_logs_are_pruned(tmp_path: Path) -> None:
    from einet.engine.client import KEEP_LOGS

    for i in range(KEEP_LOGS + 5):
        old = tmp_path / f"engine-1-{i}.log"
        old.write_text("x")
        os.utime(old, (1000 + i, 1000 + i))
    with Engine(log_dir=tmp_path) as eng:
        assert eng.log_path is not None and eng.log_path.exists()
    logs = sorted(p.name for p in tmp_path.glob("engine-*.log"))
    assert len(logs) == KEEP_LOGS + 1 and "engine-1-0.log" not in logs and "engine-1-24.log" in logs


def test_the_state_tells_the_changes_still_to_come_as_they_are_made(engine: tuple[Engine, Recorder], tmp_path: Path) -> None:
    """The dashboard's status line shows the protocol's next change: the engine says which are
    left when a run makes one, not only when the run ends."""
    eng, rec = engine
    protocol = [{"t_ms": 50.0, "target": "E", "key": "I_e", "value": 1.0}, {"t_ms": 150.0, "target": "E", "key": "I_e", "value": 0.0}]
    eng.call("build", config=SMALL.replace(protocol=tuple(protocol)).to_dict())
    assert [c["t_ms"] for c in rec.of("state")[-1]["protocol"]] == [50.0, 150.0]
    result = result_from_message(eng.call("run", t_ms=200.0))
    assert [c["made_at_ms"] for c in result.changes] == [50.0, 150.0]
    during = [[c["t_ms"] for c in e["protocol"]] for e in rec.of("state") if e["state"] == "running"]
    assert [150.0] in during and during[-1] == [], during

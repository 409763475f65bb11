"""Stores that use every core and leave the simulation running (forked readers, real NEST).

The forked readers read through PyNEST: the tests of them turn the accelerator off
(``pynest_reads``); background stores use it as users get it."""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from einet import NetworkConfig, Session, SnapshotError
from einet.snapshot import open_snapshot
from einet.store import capture

from .conftest import ROOT, assert_same_state, children_of, stopped, wait_for

NET = NetworkConfig(scale=0.3, t_sim_ms=100.0)


@pytest.fixture
def pynest_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Connections read through PyNEST (by forked readers when asked), not the accelerator."""
    monkeypatch.setenv("EINET_ACCEL", "0")


@pytest.fixture
def session() -> Session:
    """A fresh network per test: there is one NEST kernel per process."""
    s = Session(NET)
    s.build()
    s.run()
    return s


def _children() -> set[int]:
    """Live (or zombie) child processes of this process but multiprocessing's resource
    tracker (a test of trials in this process may have started it; it lives as long as we do)."""
    return {pid for pid in children_of(os.getpid()) if b"resource_tracker" not in _cmdline(pid)}


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _on_first_new_child(act: Callable[[int], None], stop: threading.Event, errors: list[BaseException]) -> threading.Thread:
    """A thread that waits (30 s at most) for this process's first new child and does
    ``act(pid)`` to it at once; a failure lands in ``errors`` (a thread cannot fail the test)."""
    before = _children()

    def watch() -> None:
        try:
            new = wait_for(lambda: (_children() - before) or stop.is_set(), 30, "a forked reader", interval=0.001)
            if isinstance(new, set):
                act(min(new))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=watch)
    thread.start()
    return thread


def test_parallel_and_serial_captures_are_equal(session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    serial = capture(session.network, seed=session.seed, workers=1)  # by the accelerator where it is built
    monkeypatch.setenv("EINET_ACCEL", "0")
    assert_same_state(serial, capture(session.network, seed=session.seed, workers=1))
    for workers in (2, 3):
        assert_same_state(serial, capture(session.network, seed=session.seed, workers=workers))
    assert _children() == set(), "no worker left behind"


def test_blocks_cover_every_node_once_and_end_small(session: Session) -> None:
    """Readers take blocks in order: every node id in exactly one block, and the last blocks a
    half and quarters of the others, so readers finish close together."""
    from einet.store import plan_capture

    blocks = plan_capture(session.network, seed=session.seed, read_nodes=False).blocks()
    assert blocks[0][0] == 1 and blocks[-1][1] == session.network.recorder_id + 1
    assert all(a[1] == b[0] for a, b in itertools.pairwise(blocks))
    sizes = [hi - lo for lo, hi in blocks]
    full = sizes[0]
    assert len(blocks) >= 16 and min(sizes) > 0
    assert sizes[-6:-4] == [full // 2, full - full // 2] and all(k <= -(-full // 4) for k in sizes[-4:])


@pytest.mark.parametrize("threads", [1, 3])
def test_forked_readers_use_nests_thread_count(threads: int, pynest_reads: None) -> None:
    """A forked reader's OpenMP team must have NEST's threads, not the runtime's default (the
    cores): one too many would index a thread NEST does not have, one too few miss its
    connections."""
    s = Session(NetworkConfig(scale=0.1, threads=threads, t_sim_ms=50.0))
    s.build()
    s.run()
    serial = capture(s.network, seed=s.seed, workers=1)
    assert sum(len(t.source) for t in serial.synapses) > 0
    assert_same_state(serial, capture(s.network, seed=s.seed, workers=2))
    assert _children() == set()


def test_a_silent_worker_fails_the_store_after_the_stall_time(session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pynest_reads: None) -> None:
    """A reader that stops reporting (here: stopped by SIGSTOP) is taken to hang."""
    from einet.store import workers

    monkeypatch.setattr(workers, "STALL_S", 2.0)
    target = tmp_path / "keep.h5"
    target.write_bytes(b"old content")
    stop, halted, errors = threading.Event(), [], []

    def halt(pid: int) -> None:
        os.kill(pid, signal.SIGSTOP)
        halted.append(pid)

    watcher = _on_first_new_child(halt, stop, errors)
    t0 = time.monotonic()
    try:
        with pytest.raises(SnapshotError, match=r"reported nothing for 2 s"):
            session.store(target, overwrite=True, workers=2)
    finally:
        stop.set()
        watcher.join(30)
    assert errors == [] and halted and time.monotonic() - t0 < 60
    assert target.read_bytes() == b"old content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.h5"]
    assert _children() == set(), "the stopped worker was killed and reaped"


def test_devices_model_parallel_equals_serial(pynest_reads: None) -> None:
    s = Session(NetworkConfig(model=str(ROOT / "tests" / "models" / "devices.py"), t_sim_ms=50.0))
    s.build()
    s.run()
    assert_same_state(capture(s.network, seed=s.seed, workers=1), capture(s.network, seed=s.seed, workers=2))


def test_background_snapshot_equals_foreground_at_the_same_time(session: Session, tmp_path: Path) -> None:
    fg, bg = tmp_path / "fg.h5", tmp_path / "bg.h5"
    session.store(fg, workers=1)
    handle = session.store(bg, background=True)
    t_stored = handle.t_stored_ms
    moved_on = session.run(50.0)  # the simulation goes on while the forked process writes
    assert moved_on.t_start_ms == t_stored
    handle.wait(120)
    assert handle.ok and handle.bytes == bg.stat().st_size
    a, b = open_snapshot(fg), open_snapshot(bg)
    assert a.t_stored_ms == b.t_stored_ms == t_stored
    assert_same_state(a, b)
    assert _children() == set()


@pytest.mark.parametrize("how", ["built", "restored"])
def test_a_background_stores_pause_probes_no_synapse_model(how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Which connection keys NEST takes back is probed once the network is built or restored,
    not in a background store's pause, which holds the simulation up."""
    import einet.store.connections as connections

    s = Session(NetworkConfig(model=str(ROOT / "tests" / "models" / "devices.py"), t_sim_ms=50.0))
    s.build()
    s.run()
    if how == "restored":
        s.store(tmp_path / "a.h5")
        s = Session()
        s.restore(tmp_path / "a.h5")
    assert s.network is not None
    in_use = set(connections.connection_counts())
    assert in_use == {"static_synapse", "stdp_synapse"} and set(s.network.settable_synapses) == in_use
    assert all("weight" in s.network.settable_synapses[m][0] for m in in_use)

    def no_probe(*args: object) -> None:
        raise AssertionError("a synapse model was probed in the pause")

    monkeypatch.setattr(connections, "_probe_synapse", no_probe)
    handle = s.store(tmp_path / "bg.h5", background=True)
    s.run(20.0)
    assert handle.wait(120) == tmp_path / "bg.h5" and handle.ok
    assert {t.model for t in open_snapshot(tmp_path / "bg.h5").synapses} == in_use


def test_a_second_background_store_is_refused_while_one_runs(session: Session, tmp_path: Path) -> None:
    from einet.session import SessionError

    first = session.store(tmp_path / "one.h5", background=True)
    with stopped(first._child.pid, "the first store's process"):  # it cannot end meanwhile
        assert not first.done
        with pytest.raises(SessionError, match=r"a store of one\.h5 is in progress"):
            session.store(tmp_path / "two.h5", background=True)
    assert first.wait(120) == tmp_path / "one.h5" and first.ok
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.h5"], "the refused store left nothing"
    assert open_snapshot(tmp_path / "one.h5").t_stored_ms == first.t_stored_ms
    again = session.store(tmp_path / "two.h5", background=True)  # once the first is done
    assert again.wait(120) == tmp_path / "two.h5" and again.ok


def test_a_killed_worker_fails_the_store_cleanly(session: Session, tmp_path: Path, pynest_reads: None) -> None:
    target = tmp_path / "keep.h5"
    target.write_bytes(b"old content")
    stop, killed, errors = threading.Event(), [], []

    def kill(pid: int) -> None:
        # at once: wherever the reader is in its work, the store fails the same way, and it is
        # dead before it could have finished
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    watcher = _on_first_new_child(kill, stop, errors)
    try:
        with pytest.raises(SnapshotError, match="killed by signal 9") as err:
            session.store(target, overwrite=True, workers=2)
    finally:
        stop.set()
        watcher.join(10)
    assert errors == [] and killed and "\n" not in str(err.value)
    assert target.read_bytes() == b"old content", "the old file is intact"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.h5"], "no temporary file left"
    assert _children() == set(), "no worker, running or zombie, is left"


def test_a_killed_background_store_leaves_the_old_file(session: Session, tmp_path: Path) -> None:
    target = tmp_path / "keep.h5"
    target.write_bytes(b"old content")
    handle = session.store(target, overwrite=True, background=True, workers=1)
    os.kill(handle._child.pid, signal.SIGKILL)
    with pytest.raises(SnapshotError, match="killed by signal 9"):
        handle.wait(60)
    assert target.read_bytes() == b"old content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.h5"]
    assert _children() == set()


def test_an_abandoned_background_store_publishes_nothing(session: Session, tmp_path: Path) -> None:
    handle = session.store(tmp_path / "never.h5", background=True, workers=1)
    handle.abandon()
    assert handle.done and not handle.ok
    assert list(tmp_path.iterdir()) == [] and _children() == set()


@pytest.mark.parametrize("model", ["spatial_copy.py", "devices.py"])
def test_background_store_of_spatial_and_device_networks(model: str, tmp_path: Path) -> None:
    """Node state (positions, devices' settings) is read by the forked process: same file."""
    s = Session(NetworkConfig(model=str(ROOT / "tests" / "models" / model), t_sim_ms=50.0))
    s.build()
    s.run()
    s.store(tmp_path / "fg.h5", workers=1)
    s.store(tmp_path / "bg.h5", background=True).wait(120)
    assert_same_state(open_snapshot(tmp_path / "fg.h5"), open_snapshot(tmp_path / "bg.h5"))

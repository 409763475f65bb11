"""Periodic checkpoints and resume (einet.checkpoints, ``run --checkpoint-every``, ``einet resume``),
with the real NEST: checkpoints leave the spikes as they were, a due checkpoint waits for the
one still being written, old ones rotate only once a newer one is whole, and a run killed
with SIGKILL mid-way is resumed to its planned end with the rest of its protocol, ending as
the run never killed ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from einet import Session, open_snapshot
from einet.accel import AccelUnavailable
from einet.accel.state import state_library
from einet.checkpoints import PLAN_NAME, Checkpointer, CheckpointPlan, check_folder, checkpoint_name, list_checkpoints, time_of, unfinished
from einet.cli import main

from .conftest import SMALL, assert_same_state, children_of, one_line_error, process_state, wait_for

EVERY_MS, RUN_MS = 100.0, 500.0


def test_checkpoints_leave_the_spikes_wait_for_one_being_written_and_rotate(tmp_path: Path) -> None:
    session = Session(SMALL)
    session.build()
    plain = session.run(RUN_MS, step_ms=100.0)

    session.build()  # the same network again: same seed, a fresh kernel
    folder = tmp_path / "ck"
    lines: list[str] = []
    held: dict[str, int] = {}

    def log(line: str) -> None:
        lines.append(line)
        if "pid" in held and not held.get("released"):  # the run waits for it now: let it go
            os.kill(held["pid"], signal.SIGCONT)
            held["released"] = 1

    checkpoints = Checkpointer(session, folder, CheckpointPlan(0.0, RUN_MS, EVERY_MS, keep=2), log=log, background=True)
    before = children_of(os.getpid())

    def on_step(update: object) -> None:
        # deterministic: the first store is held (SIGSTOP) until the next checkpoint falls due
        # and the run waits for it; every later one is waited for here, so none is in flight
        # when the next is due
        handle = session.store_in_flight
        if handle is None:
            return
        if not held:
            (held["pid"],) = children_of(os.getpid()) - before
            os.kill(held["pid"], signal.SIGSTOP)
            wait_for(lambda: process_state(held["pid"]) in ("T", "t"), 10, "the store process to stop")
        elif held.get("released"):
            handle.wait(60)

    result = checkpoints.run(RUN_MS, label="checkpointed", step_ms=100.0, on_step=on_step)

    assert result.digest == plain.digest and result.n_spikes == plain.n_spikes > 0, "a background store does not perturb the simulation"
    marks = [EVERY_MS * k for k in range(1, int(RUN_MS / EVERY_MS))]
    assert lines == [f"checkpoint at {2 * EVERY_MS:g} ms waits for {checkpoint_name(EVERY_MS)} to be written"] and checkpoints.waited_s > 0
    assert [time_of(p) for p in checkpoints.written] == marks and checkpoints.skipped_ms == [] and checkpoints.failed == [] and checkpoints.abandoned is None
    assert checkpoints.summary()["waited_s"] == round(checkpoints.waited_s, 3)
    kept = list_checkpoints(folder)
    assert [time_of(p) for p in kept] == marks[::-1][:2], "the newest two are kept"
    for path in kept:
        snap = open_snapshot(path)
        assert snap.t_stored_ms == time_of(path)
    plan = CheckpointPlan.read(folder)
    assert plan.finished and plan.t_stop_ms == RUN_MS


def test_where_nest_takes_every_core_each_checkpoint_is_stored_in_the_foreground(tmp_path: Path) -> None:
    session = Session(SMALL.replace(threads=2))
    session.build()
    plain = session.run(RUN_MS, step_ms=100.0)

    session.build()
    lines: list[str] = []
    in_flight: list[object] = []
    checkpoints = Checkpointer(session, tmp_path / "ck", CheckpointPlan(0.0, RUN_MS, EVERY_MS, keep=3), log=lines.append)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("einet.checkpoints.usable_cores", lambda: 2)  # as on a 2-core node
        result = checkpoints.run(RUN_MS, label="checkpointed", step_ms=100.0, on_step=lambda u: in_flight.append(session.store_in_flight))

    assert result.digest == plain.digest and result.n_spikes == plain.n_spikes > 0
    assert lines == ["checkpoints are stored in the foreground: NEST's 2 threads take every core"] and in_flight == [None] * len(in_flight) != []
    marks = [EVERY_MS * k for k in range(1, int(RUN_MS / EVERY_MS))]
    assert [time_of(p) for p in checkpoints.written] == marks and checkpoints.abandoned is None and checkpoints.failed == []
    assert [time_of(p) for p in list_checkpoints(tmp_path / "ck")] == marks[::-1][:3] and checkpoints.waited_s > 0
    assert open_snapshot(checkpoints.written[-1]).t_stored_ms == marks[-1]


def _einet(*args: str, cwd: Path) -> subprocess.Popen[str]:
    """The einet command in a session of its own, so that SIGKILL to its group ends it all at
    once (the command's process, NEST's and the store's) as a crash or a batch system would."""
    return subprocess.Popen([sys.executable, "-m", "einet.cli", *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})


def test_a_run_killed_mid_way_resumes_from_its_newest_whole_checkpoint_to_its_end(tmp_path: Path) -> None:
    """...and ends in the state the run never killed ends in, bit for bit (the checkpoint's
    hidden state written back: the resumed run is the continued one)."""
    t_end, change_ms = 3000.0, 2500.0
    folder = tmp_path / "final.checkpoints"  # the default beside --store final.h5
    args = ("run", "--scale", "0.1", "--threads", "1", "--t", f"{t_end:g}", "--checkpoint-every", "200", "--at", f"{change_ms:g}:poisson_generator.rate=1000")
    run = _einet(*args, "--store", "final.h5", "--json", cwd=tmp_path)
    try:
        wait_for(lambda: children_of(run.pid), 60, "the command's NEST process")
        (nest_pid,) = children_of(run.pid)
        # the first checkpoint's store has forked: NEST is held there, so the run is surely
        # mid-way when the checkpoint is whole and everything is killed
        wait_for(lambda: unfinished(folder) and children_of(nest_pid), 120, "the first checkpoint's store process")
        os.kill(nest_pid, signal.SIGSTOP)
        wait_for(lambda: list_checkpoints(folder), 120, "the first checkpoint to be published")
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.communicate(timeout=30)
    assert run.returncode == -signal.SIGKILL
    assert not (tmp_path / "final.h5").exists()
    plan = json.loads((folder / PLAN_NAME).read_text())
    assert plan["finished"] is False and plan["t_stop_ms"] == t_end and plan["every_ms"] == 200.0
    newest = list_checkpoints(folder)[0]
    t_newest = time_of(newest)
    assert t_newest is not None and t_newest % 200.0 == 0 and t_newest < t_end

    # a torn later checkpoint and a store's leftover temporary file are skipped, one line each
    torn = folder / checkpoint_name(t_newest + 100.0)
    torn.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    (folder / f".{checkpoint_name(t_newest + 200.0)}.x1y2.partial").write_bytes(b"\0" * 100)

    resume = _einet("resume", str(folder), "--store", "final.h5", "--json", cwd=tmp_path)
    out, err = resume.communicate(timeout=300)
    assert resume.returncode == 0, err
    skips = [line for line in err.splitlines() if line.startswith("einet: skipping")]
    assert f"einet: skipping .{checkpoint_name(t_newest + 200.0)}.x1y2.partial: a checkpoint whose store did not finish" in skips, err
    assert [line for line in skips if line.startswith(f"einet: skipping {torn.name}: ")] and len(skips) == 2 + sum(".partial: a checkpoint whose store did not finish" in line for line in skips[1:]), err
    doc = json.loads(out)
    assert doc["resumed"] is True and doc["origin"] == "restored" and doc["snapshot"] == str(newest)
    assert doc["t_start_ms"] == t_newest and doc["t_stop_ms"] == t_end, "from the newest whole checkpoint, on the stored clock, to the planned end"
    assert [(c["made_at_ms"], c["target"], c["key"], c["value"]) for c in doc["changes"]] == [(change_ms, "poisson_generator", "rate", 1000)], "the rest of the protocol"
    assert doc["threads"] == 1 and doc["seed"] == 12345 and doc["spikes"] > 0
    assert doc["stored"] == "final.h5" and open_snapshot(tmp_path / "final.h5").t_stored_ms == t_end
    assert CheckpointPlan.read(folder).finished
    if not _accessor_here():
        assert doc["exact"] is False
        pytest.skip("no hidden-state accessor here: a resumed run goes on as any restore's, not bit for bit")
    assert doc["exact"] is True, "the checkpoint's hidden state written back"
    whole = _einet(*args, "--store", "whole.h5", cwd=tmp_path)
    out, err = whole.communicate(timeout=300)
    assert whole.returncode == 0, err
    resumed, never_killed = open_snapshot(tmp_path / "final.h5"), open_snapshot(tmp_path / "whole.h5")
    assert_same_state(resumed, never_killed)
    assert resumed.hidden is not None and never_killed.hidden is not None and resumed.hidden.meta == never_killed.hidden.meta
    assert set(resumed.hidden.arrays) == set(never_killed.hidden.arrays)
    for name, values in never_killed.hidden.arrays.items():  # generators, spikes in transit, STDP's last spikes, ...
        np.testing.assert_array_equal(resumed.hidden.arrays[name], values, err_msg=name)

    again = _einet("resume", str(folder), cwd=tmp_path)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0 and err == "" and out.startswith("nothing to resume: the run in") and f"planned end ({t_end:g} ms)" in out, (out, err)


def _accessor_here() -> bool:
    try:
        state_library()
    except AccelUnavailable:
        return False
    return True


@pytest.fixture
def plan_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "ck"
    folder.mkdir()
    CheckpointPlan(0.0, 1000.0, 100.0).write(folder)
    return folder


def test_resume_refuses_what_is_no_checkpoint_with_one_line(tmp_path: Path, plan_folder: Path, before_nest: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["resume", str(tmp_path / "nowhere")]) == 2
    one_line_error(capsys, f"einet: usage: {tmp_path / 'nowhere'}: no such checkpoint folder or file")
    (tmp_path / "empty").mkdir()
    assert main(["resume", str(tmp_path / "empty")]) == 2
    one_line_error(capsys, "is not a checkpoint folder (no checkpoints.json")
    assert main(["resume", str(plan_folder)]) == 2
    one_line_error(capsys, "holds no checkpoint yet (the run stopped before its first, due at 100 ms): run it again")
    (tmp_path / "x.h5").write_bytes(b"\x89HDF\r\n\x1a\n")
    assert main(["resume", str(tmp_path / "x.h5")]) == 2
    one_line_error(capsys, "x.h5 is not a checkpoint (named ckpt-<ms>ms.h5")


def test_resume_refuses_a_damaged_plan_or_checkpoint_with_exit_3(plan_folder: Path, before_nest: None, capsys: pytest.CaptureFixture[str]) -> None:
    damaged = plan_folder / checkpoint_name(100.0)
    damaged.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    assert main(["resume", str(plan_folder)]) == 3
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert out == "" and len(lines) == 2 and lines[0].startswith(f"einet: skipping {damaged.name}: "), err
    assert lines[1] == f"einet: invalid snapshot: {plan_folder}: none of its 1 checkpoints is whole"
    assert main(["resume", str(damaged)]) == 3
    one_line_error(capsys, "einet: invalid snapshot: ")
    for text in ("{", json.dumps({"format": "einet-checkpoints", "version": 1, "t_start_ms": 0.0, "t_stop_ms": -1.0, "every_ms": 100.0, "keep": 3, "label": "x", "finished": False}), "[]"):
        (plan_folder / PLAN_NAME).write_text(text)
        assert main(["resume", str(plan_folder)]) == 3
        one_line_error(capsys, "einet: invalid snapshot: ")


@pytest.mark.parametrize(
    "args, words",
    [
        (("run", "--checkpoint-every", "0"), "--checkpoint-every must be a positive time in ms, not 0"),
        (("run", "--checkpoint-every", "nan"), "--checkpoint-every must be a positive time"),
        (("run", "--checkpoint-every", "100", "--keep", "0"), "--keep must be 1 to 10000, not 0"),
        (("run", "--keep", "2"), "--keep and --checkpoint-dir go with --checkpoint-every MS"),
        (("run", "--checkpoint-every", "100", "--ranks", "2"), "not with --ranks"),
        (("run", "--checkpoint-every", "100", "--checkpoint-dir", "no/such/ck"), "cannot make checkpoint folder no/such/ck: folder no/such does not exist"),
    ],
)
def test_run_refuses_bad_checkpoint_flags_before_building(args: tuple[str, ...], words: str, before_nest: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(list(args)) == 2
    one_line_error(capsys, words)


def test_a_new_run_never_mixes_its_checkpoints_with_another_runs(plan_folder: Path, before_nest: None, capsys: pytest.CaptureFixture[str]) -> None:
    check_folder(plan_folder)  # a plan alone (a run stopped before its first checkpoint) gives way
    (plan_folder / checkpoint_name(100.0)).write_bytes(b"")
    assert main(["run", "--checkpoint-every", "100", "--checkpoint-dir", str(plan_folder)]) == 2
    one_line_error(capsys, f"{plan_folder} holds the checkpoints of another run: resume it (einet resume {plan_folder}), remove it, or choose --checkpoint-dir")


def test_a_named_checkpoint_with_newer_ones_beside_it_is_refused(plan_folder: Path, before_nest: None, capsys: pytest.CaptureFixture[str]) -> None:
    for t in (100.0, 200.0):
        (plan_folder / checkpoint_name(t)).write_bytes(b"")
    assert main(["resume", str(plan_folder / checkpoint_name(100.0))]) == 2
    one_line_error(capsys, f"holds checkpoints newer than {checkpoint_name(100.0)} ({checkpoint_name(200.0)})")


def test_names_sort_as_times_and_marks_stay_on_the_clocks_multiples() -> None:
    times = [0.1, 99.9, 100.0, 12000.0, 1e12]
    names = [checkpoint_name(t) for t in times]
    assert sorted(names) == names and [time_of(n) for n in names] == times
    assert time_of("ckpt-12ms.h5") is None and time_of(".ckpt-0000000000100.000ms.h5.ab.partial") is None
    plan = CheckpointPlan(250.0, 1000.0, 200.0)
    assert list(plan.marks(250.0, 1000.0)) == [400.0, 600.0, 800.0], "a resumed run keeps the original run's times"
    assert list(plan.marks(400.0, 1000.0)) == [600.0, 800.0] and list(plan.marks(0.0, 800.0)) == [200.0, 400.0, 600.0] and list(plan.marks(0.0, 801.0)) == [200.0, 400.0, 600.0, 800.0]
    long = CheckpointPlan(0.0, 1e12, 0.1).marks(0.0, 1e12)
    assert len(long) == 10**13 - 1 and long[-1] == 1e12 - 0.1 and long[5] == 0.6, "made as read, never held"


async def test_the_dashboard_checkpoints_each_run_into_a_folder_of_its_own(tmp_path: Path) -> None:
    import time

    from einet.tui.app import EinetApp
    from einet.tui.checkpoints import RunCheckpoints

    checkpoints = RunCheckpoints(tmp_path / "ck", 200.0, keep=2)
    app = EinetApp(SMALL.replace(t_sim_ms=1000.0, threads=1), snapshot_dir=tmp_path / "snaps", log_dir=tmp_path / "logs", marker="dot", history=tmp_path / "history.sqlite", checkpoints=checkpoints)

    async def until(predicate: Callable[[], object], what: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            await pilot.pause(0.05)

    async with app.run_test(size=(120, 40)) as pilot:
        await until(lambda: app.engine_status.state == "built", "the network")
        await pilot.press("space")
        await until(lambda: len(app.ledger.runs) == 1, "the run")
        folder = checkpoints.folder
        assert folder is not None and folder.parent == tmp_path / "ck"
        await until(lambda: not app.store_busy and list_checkpoints(folder), "the first checkpoint, written after the run at the latest")
        plan = CheckpointPlan.read(folder)
        assert plan.finished and (plan.t_start_ms, plan.t_stop_ms, plan.every_ms, plan.keep) == (0.0, 1000.0, 200.0, 2)
        kept = list_checkpoints(folder)
        assert 1 <= len(kept) <= 2
        for path in kept:
            t = time_of(path)
            # the engine's steps follow wall time: on a loaded machine the first boundary after
            # a checkpoint fell due may be the run's end
            assert t is not None and t <= open_snapshot(path).t_stored_ms <= 1000.0, "taken at the first step boundary after it fell due"
        log = "".join(line.text for line in app.query_one("#log").lines).replace(" ", "")  # lines wrap
        assert f"checkpointsevery200msinto{folder}".replace(" ", "") in log, log[-400:]
        await pilot.press("q")

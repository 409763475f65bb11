"""The dashboard driven by keys.

Most tests drive it with a scripted engine (``tests/scripted_engine.py``: the engine's events
and replies, no NEST), which makes what they check — keys, dialogs, layout, the run table,
notifications, the history — quick and exact. A few run end to end on the real engine (and
so the real NEST) at small scale: the main flow (build, run, store, reset, restore, seed
reruns, whose digests NEST makes identical or not), which also holds the scripted engine's
events and replies to the real one's, and a run stuck inside one NEST call.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.text import Text
from textual.message import Message
from textual.message_pump import MessagePump
from textual.notifications import Notify
from textual.pilot import Pilot
from textual.widgets import Input, Static

from einet.config import NetworkConfig
from einet.demo import DEMO_STEPS
from einet.engine import Message as WireMessage
from einet.engine.protocol import EngineState
from einet.history import History
from einet.runs import Origin, RunResult
from einet.snapshot import open_snapshot, write_snapshot
from einet.trials import compare, summarise
from einet.tui.app import EinetApp
from einet.tui.main_screen import MainScreen
from einet.tui.messages import OpProgress, StateChanged, TourCaption, TourEnded
from einet.tui.screens import CompareScreen, ConfirmScreen, HelpScreen, RestoreScreen, SeedScreen, StoreScreen
from einet.tui.tour import Tour
from einet.tui.trials import TrialsDialog, TrialsScreen
from einet.tui.trials_book import TrialsBook
from einet.tui.widgets import RasterPlot, StatusLine, run_color

from .conftest import ROOT, wait_for
from .scripted_engine import ScriptedEngine
from .test_ledger import result

CONFIG = NetworkConfig(scale=0.1, t_sim_ms=200.0)


async def until(pilot: Pilot, predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the dashboard")
        await pilot.pause(0.05)


async def holds(pilot: Pilot, predicate: Callable[[], bool], seconds: float) -> None:
    """``predicate`` stays true for ``seconds``: a window to watch for what must not happen
    (time going on while paused), not a wait for something to be done."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert predicate(), "changed within the window"
        await pilot.pause(0.05)
    assert predicate()


async def handled(pump: MessagePump, timeout: float = 10.0) -> None:
    """Returns once ``pump`` has handled every message posted to it (and run every callback
    queued on it) before the call: it handles them in order, and this one comes last."""
    done = asyncio.Event()
    pump.call_later(done.set)
    await asyncio.wait_for(done.wait(), timeout)


def picker_ready(app: EinetApp, files: int) -> bool:
    """The restore picker is up with ``files`` files, each checked, their rows laid out (a
    table lays out its rows once it has a size, which may come after the checks)."""
    screen = app.screen
    return isinstance(screen, RestoreScreen) and len(screen.paths) == screen.checked == screen.query_one("DataTable").row_count == files


class Seen:
    """Every message the app handled (``run_test``'s message hook). A notification stays here
    after its toast has expired: a slow machine cannot make a test miss or miscount one."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    def __call__(self, message: Message) -> None:
        self.messages.append(message)

    def notes(self) -> list[str]:
        return [m.notification.message for m in self.messages if isinstance(m, Notify)]

    def titles(self) -> list[str]:
        return [m.notification.title for m in self.messages if isinstance(m, Notify)]


def make(tmp_path: Path, config: NetworkConfig = CONFIG, engine: ScriptedEngine | None = None) -> EinetApp:
    """The dashboard on ``engine`` (without one: the real engine, NEST in a child process)."""
    return EinetApp(config, snapshot_dir=tmp_path / "snaps", log_dir=tmp_path / "logs", marker="dot", history=tmp_path / "history.sqlite", engine=engine)


@pytest.fixture
def scripted(stored: Path) -> Callable[..., ScriptedEngine]:
    """Scripted engines on the small network (``stored`` is the snapshot it shows and stores)."""
    return lambda **kwargs: ScriptedEngine(stored, **kwargs)


class Shapes:
    """What an engine says, reduced to its form: per event kind and per command's reply, the
    names of its fields and arrays (the numbered ``weights/K``, ``raster/K`` as one)."""

    def __init__(self) -> None:
        self.events: dict[str, set[str]] = {}
        self.replies: dict[str, set[str]] = {}
        self.lock = threading.Lock()

    @staticmethod
    def form(msg: WireMessage) -> set[str]:
        return set(msg.fields) | {"array " + name.split("/")[0] for name in msg.arrays}

    def event(self, msg: WireMessage) -> None:
        if msg.kind != "heartbeat":  # the idle real engine's, every second
            with self.lock:
                self.events.setdefault(msg.kind, set()).update(self.form(msg))

    def tap(self, engine: Any) -> None:
        """Record ``engine``'s events (before the dashboard gets them) and its replies."""
        forward, call = engine.on_event, engine.call

        def on_event(msg: WireMessage) -> None:
            self.event(msg)
            forward(msg)

        def recorded_call(op: str, timeout_s: float | None = None, **args: Any) -> WireMessage:
            reply = call(op, timeout_s, **args)
            with self.lock:
                self.replies.setdefault(op, set()).update(self.form(reply))
            return reply

        engine.on_event, engine.call = on_event, recorded_call


async def test_run_store_reset_restore_and_seed_reruns(tmp_path: Path, scripted: Callable[..., ScriptedEngine]) -> None:
    """End to end on the real engine; then the scripted engine says everything the real one
    said here in the same form (so the tests driven by it see what the dashboard will see)."""
    app = make(tmp_path)
    real = Shapes()
    real.tap(app.engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.engine_status.state == "built")
        assert app.check_action("continue_run", ()) is None, "nothing to continue yet: greyed out"
        await pilot.press("space")
        await until(pilot, lambda: len(app.ledger.runs) == 1)
        assert app.ledger.runs[0].origin.kind == "fresh" and app.ledger.runs[0].n_spikes > 0
        assert app.ledger.unstored
        await pilot.press("c")
        await until(pilot, lambda: len(app.ledger.runs) == 2)
        assert app.ledger.runs[1].origin.kind == "continued" and app.ledger.runs[1].t_start_ms == 200.0

        # r with an unstored run asks first; n keeps the kernel
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen), timeout=5)
        await handled(app)  # the answer was acted on (the dialog's callback is queued on the app)
        assert not [w for w in app.workers if w.group == "cmd"], "n started no reset"
        assert app.engine_status.state == "built" and app.engine_status.t_ms == 400.0, "n kept the kernel"

        # s: store under the proposed name
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, StoreScreen))
        await pilot.press("enter")
        await until(pilot, lambda: not app.ledger.unstored and not app.store_busy)
        stored = Path(app.current_snapshot)
        assert stored.parent == tmp_path / "snaps" and open_snapshot(stored).t_stored_ms == 400.0

        # r: reset without asking now; the kernel is empty and run keys grey out
        await pilot.press("r")
        await until(pilot, lambda: app.engine_status.state == "empty")
        assert app.check_action("run_pause", ()) is None and app.check_action("store", ()) is None

        # l: the picker lists the snapshot with its metadata; Enter restores
        await pilot.press("l")
        await until(pilot, lambda: picker_ready(app, 1))
        screen = app.screen
        assert str(screen.query_one("DataTable").get_cell(str(stored), "integrity")) == "ok"
        assert str(screen.query_one("DataTable").get_cell(str(stored), "network")) == "200+50"
        await pilot.press("enter")
        await until(pilot, lambda: app.engine_status.state == "built" and app.engine_status.snapshot == str(stored))
        await pilot.press("space")
        await until(pilot, lambda: len(app.ledger.runs) == 3)

        # n: bad seed input is refused in the dialog
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, SeedScreen))
        seed_input = app.screen.query_one("Input")
        for bad in ("-5", "0", "2147483648"):  # einet's seeds are 1 … 2**31 - 1, as NEST's
            seed_input.value = bad
            app.screen.query_one("#problem").update("")
            await pilot.press("enter")
            await until(pilot, lambda: "2147483647" in str(app.screen.query_one("#problem").render()))
            assert isinstance(app.screen, SeedScreen) and len(app.ledger.runs) == 3, bad
        seed_input.value = str(CONFIG.seed)
        await pilot.press("enter")
        await until(pilot, lambda: len(app.ledger.runs) == 4)
        assert app.ledger.identical()[3] == 2, "same snapshot + same seed is marked identical to run 3"

        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, SeedScreen))
        app.screen.query_one("Input").value = "4242"
        await pilot.press("enter")
        await until(pilot, lambda: len(app.ledger.runs) == 5)
        assert app.ledger.identical()[4] is None and app.ledger.runs[4].seed == 4242
        table = app.query_one("#history")
        assert table.row_count == 5 and str(table.get_cell("r3", "same as")) == "run 3" and str(table.get_cell("r4", "same as")) == ""

        # v: the compare view, then back; ?: help with the stored/not-stored table
        await pilot.press("v")
        await until(pilot, lambda: isinstance(app.screen, CompareScreen))
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, CompareScreen))
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        assert "spikes in transit" in app.screen.text and "iaf_psc_delta: post_trace, t_spike" in app.screen.text, "the not-stored list of this network"
        await pilot.press("escape")
        await pilot.press("q")
    assert app.engine.proc is not None and app.engine.proc.poll() is not None, "quitting stops the engine"  # type: ignore[attr-defined]

    fake = Shapes()
    engine = scripted()
    engine.on_event = fake.event
    fake.tap(engine)
    engine.start()
    engine.build(CONFIG)
    engine.run(200.0, "run 1")
    engine.run(200.0, "run 2", continued=True)
    engine.store(tmp_path / "scripted.h5", background=True)
    wait_for(lambda: "stored" in fake.events, 30, "the scripted store's end")
    engine.reset()
    engine.restore(tmp_path / "scripted.h5", seed=4242)
    engine.run(200.0)
    engine.close()
    assert set(real.replies) == {"build", "run", "continue", "store", "reset", "restore"}
    assert fake.replies == real.replies
    # a short background store may end before the engine reports its progress
    assert {"state", "network", "frame", "stored"} <= fake.events.keys() & real.events.keys() and fake.events.keys() - real.events.keys() <= {"progress"}
    for kind in fake.events.keys() & real.events.keys():
        assert fake.events[kind] == real.events[kind], kind


async def test_pause_resume_cancel_and_store_names(tmp_path: Path, scripted: Callable[..., ScriptedEngine]) -> None:
    engine = scripted(step_ms=50.0, step_wall_s=0.2)  # live, but not flooding the dashboard with frames
    app = make(tmp_path, CONFIG.replace(t_sim_ms=60_000.0), engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.engine_status.state == "built")
        assert app.main.has_class("narrow") and app.main.has_class("short")
        await pilot.press("space")
        await until(pilot, lambda: app.engine_status.state == "running" and app.live.view().t_ms > 0)
        await pilot.press("space")
        await until(pilot, lambda: app.engine_status.state == "paused", timeout=5)
        t = app.live.view().t_ms
        await holds(pilot, lambda: app.live.view().t_ms == t, 0.4)
        await pilot.press("space")
        await until(pilot, lambda: app.engine_status.state == "running" and app.live.view().t_ms > t, timeout=5)
        await pilot.press("escape")
        await until(pilot, lambda: len(app.ledger.runs) == 1, timeout=10)
        assert app.ledger.runs[0].cancelled and t < app.ledger.runs[0].t_stop_ms < 60_000.0
        assert engine.ops == ["build", "run", "pause", "resume", "cancel"], "space, space, escape: each once"

        # names that would leave the folder are refused; an existing name is never overwritten
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, StoreScreen))
        name = app.screen.query_one("Input")
        for bad in ("../escape", "/tmp/abs", ".hidden", "a\x07b"):
            name.value = bad
            await pilot.press("enter")
            await handled(app.screen)
            assert isinstance(app.screen, StoreScreen) and str(app.screen.query_one("#problem").render()), bad
        (tmp_path / "snaps").mkdir(exist_ok=True)
        (tmp_path / "snaps" / "taken.h5").write_bytes(b"keep me")
        name.value = "taken"
        await pilot.press("enter")
        await handled(app.screen)
        assert isinstance(app.screen, StoreScreen) and "exists" in str(app.screen.query_one("#problem").render())
        name.value = "fine"
        await pilot.press("enter")
        await until(pilot, lambda: (tmp_path / "snaps" / "fine.h5").exists() and not app.ledger.unstored)
        assert (tmp_path / "snaps" / "taken.h5").read_bytes() == b"keep me"
        # the refused names wrote nothing: not beside the folder ("../escape"), not in it
        assert not (tmp_path / "escape.h5").exists() and not (tmp_path / "escape").exists()
        assert sorted(p.name for p in (tmp_path / "snaps").iterdir()) == ["fine.h5", "taken.h5"]
        await pilot.press("q")


async def test_demo_tour_plays_five_runs(tmp_path: Path, scripted: Callable[..., ScriptedEngine]) -> None:
    """(The demo's runs on the real NEST, their digests identical or not: test_cli.py's test_demo_five_runs.)"""
    engine = scripted()
    app = make(tmp_path, engine=engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.engine_status.state == "built")
        await pilot.press("d")
        await until(pilot, lambda: not app.touring and "demo complete" in app.main.caption_text, timeout=120)
        assert [r.label for r in app.ledger.runs] == ["initial", "continued", "restored", "restored, same seed", "restored, other seed"]
        assert app.ledger.identical() == [None, None, None, 2, None]
        assert len(list((tmp_path / "snaps").glob("demo-*.h5"))) == 1
        assert engine.ops == ["build", "build", "run", "store", "run", "restore", "run", "restore", "run", "restore", "run"], "boot's build, then the five steps"
        # v: restored runs against the continued run, next to the spread across seeds
        await pilot.press("v")
        await until(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.query_one("#cmp-table").row_count == 5)  # laid out at its size
        table = app.screen.query_one("#cmp-table")
        rows = [shown_row(table, f"r{i}") for i in range(5)]
        assert rows[1]["verdict"] == "reference" and rows[0]["verdict"] == ""
        rate = [float(r["rate Hz"]) for r in rows]
        for r, restored in zip(rows[2:], rate[2:]):
            assert r["Δ rate (σ)"].startswith(f"{restored - rate[1]:+.2f}"[:4]) and r["verdict"] == "needs 3 seeds"
        assert app.ledger.same_as[3] == "run 3" and rows[3]["Δ rate (σ)"] == rows[2]["Δ rate (σ)"], "identical runs, identical numbers"
        await pilot.press("escape")
        await pilot.press("q")


async def test_engine_errors_are_notifications_and_the_app_keeps_working(tmp_path: Path, scripted: Callable[..., ScriptedEngine]) -> None:
    """(The client seeing a real engine killed: test_engine.py's test_killed_engine_is_detected_and_a_fresh_one_works.)"""
    engine = scripted()
    app = make(tmp_path, engine=engine)
    snaps = tmp_path / "snaps"
    snaps.mkdir()
    (snaps / "broken.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"garbage" * 10)
    seen = Seen()
    async with app.run_test(size=(120, 40), message_hook=seen) as pilot:
        await until(pilot, lambda: app.engine_status.state == "built")
        await pilot.press("l")
        await until(pilot, lambda: picker_ready(app, 1))
        assert "INVALID" in str(app.screen.query_one("DataTable").get_cell(str(snaps / "broken.h5"), "integrity"))
        await pilot.press("enter")
        await until(pilot, lambda: any("damaged" in n or "not a readable" in n for n in seen.notes()))
        assert app.engine_status.state == "built", "a failed restore leaves the kernel as it was"
        await pilot.press("space")
        await until(pilot, lambda: len(app.ledger.runs) == 1)

        # the engine dies (as the client reports a killed one): the app says so and starts a fresh one
        engine.kill(f"engine process exited (code {-signal.SIGKILL})")
        await until(pilot, lambda: any("exited" in n for n in seen.notes()))
        await until(pilot, lambda: app.engine_status.state == "empty" and engine.starts == 2)
        assert app.ledger.runs[0].n_spikes > 0 and app.check_action("run_pause", ()) is None, "the run is still listed; nothing to run in an empty kernel"
        await pilot.press("b")
        await until(pilot, lambda: app.engine_status.state == "built")
        assert engine.ops[-1] == "build"
        await pilot.press("q")


async def test_restore_flag_opens_a_snapshot_at_start(tmp_path: Path, stored: Path, scripted: Callable[..., ScriptedEngine]) -> None:
    engine = scripted()
    app = EinetApp(CONFIG, snapshot_dir=tmp_path / "snaps", restore=stored, log_dir=tmp_path / "logs", history=tmp_path / "history.sqlite", engine=engine)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.engine_status.state == "built" and app.current_snapshot == str(stored))
        assert app.engine_status.snapshot == str(stored) and app.engine_status.t_ms == 200.0 and [g.name for g in app.groups] == ["E", "I"]
        assert app.check_action("rerun_seed", ()) is True, "the restored file is the current snapshot"
        await pilot.press("space")
        await until(pilot, lambda: len(app.ledger.runs) == 1)
        assert app.ledger.runs[0].origin.kind == "restored"
        assert engine.asked[0] == ("restore", {"path": str(stored), "seed": None, "threads": None}), "restored, never built first"
        await pilot.press("q")


async def test_store_during_a_run_does_not_stop_it(tmp_path: Path, scripted: Callable[..., ScriptedEngine]) -> None:
    """s while running: the state is taken at a step boundary, the file is written while the
    run goes on; the file holds the state at the time the store was asked for. Only when
    NEST's threads leave no core free (the second store) does the log say the store waits for
    the run. (The engine's forked store during a real run: test_engine.py's
    test_background_store_during_a_run.)"""
    engine = scripted(step_ms=50.0, step_wall_s=0.2)  # live, but not flooding the dashboard with frames
    app = make(tmp_path, CONFIG.replace(t_sim_ms=600_000.0), engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.engine_status.state == "built")
        await pilot.press("space")
        await until(pilot, lambda: app.engine_status.state == "running" and app.live.view().t_ms > 100)
        taken = []
        for name, free_cores in (("mid-run", 1), ("mid-run-2", 0)):
            engine.free_cores = free_cores
            engine.store_gate.clear()  # the file is published when the test says
            assert app.check_action("store", ()) is True, "s applies while running"
            await pilot.press("s")
            await until(pilot, lambda: isinstance(app.screen, StoreScreen))
            app.screen.query_one("Input").value = name
            await pilot.press("enter")
            path = tmp_path / "snaps" / f"{name}.h5"
            await until(pilot, lambda path=path: app.current_snapshot == str(path), timeout=30)  # the state is taken
            assert app.store_busy == path.name and app.check_action("store", ()) is None, "one store at a time"
            replied_at = app.live.view().t_ms
            await until(pilot, lambda t=replied_at: app.live.view().t_ms > t + 50, timeout=30)
            assert app.engine_status.state == "running" and not path.exists(), "the store did not stop the run"
            engine.store_gate.set()
            await until(pilot, lambda path=path: not app.store_busy and path.exists(), timeout=30)
            assert app.engine_status.state == "running", "published while the run goes on"
            taken.append(open_snapshot(path).t_stored_ms)
            assert 0.0 < taken[-1] <= replied_at, "taken during the run, when asked"
            log = "".join(line.text.strip() for line in app.query_one("#log").lines).replace(" ", "")  # lines wrap
            assert f"{name}.h5in" in log and "inthebackground" in log, log[-300:]
            assert log.count("readsatidlepriority") == (1 - free_cores), "told why a store waits for the run only when it does"
        await pilot.press("escape")
        await until(pilot, lambda: len(app.ledger.runs) == 1, timeout=30)
        assert taken[0] < taken[1] < app.ledger.runs[0].t_stop_ms
        assert [args["path"] for op, args in engine.asked if op == "store"] == [str(tmp_path / "snaps" / "mid-run.h5"), str(tmp_path / "snaps" / "mid-run-2.h5")]
        assert all(args["background"] for op, args in engine.asked if op == "store")
        assert not list((tmp_path / "snaps").glob(".*.partial"))
        await pilot.press("q")


async def test_a_workers_unexpected_exception_reaches_the_user(tmp_path: Path, scripted: Callable[..., ScriptedEngine]) -> None:
    app = make(tmp_path, engine=scripted())
    seen = Seen()
    async with app.run_test(size=(120, 40), message_hook=seen) as pilot:
        await until(pilot, lambda: app.engine_status.state == "built")

        def broken() -> None:
            raise ZeroDivisionError("division by zero in a worker")

        app.run_worker(broken, thread=True, group="cmd", exit_on_error=False)
        await until(pilot, lambda: "ZeroDivisionError: division by zero in a worker" in seen.notes(), timeout=10)
        assert app.is_running, "the dashboard carries on"
        await pilot.press("q")


async def test_names_from_files_are_shown_as_text_never_as_markup(tmp_path: Path, stored: Path, scripted: Callable[..., ScriptedEngine]) -> None:
    folder = tmp_path / "[b]snaps["  # a folder name that is Rich markup, and broken markup
    folder.mkdir()
    named = folder / "run[bold red].h5"
    named.write_bytes(stored.read_bytes())
    (folder / "bad[red].h5").write_bytes(b"\x1b[31mnot a snapshot")
    app = EinetApp(CONFIG, snapshot_dir=folder, restore=named, log_dir=tmp_path / "logs", marker="dot", history=tmp_path / "history.sqlite", engine=scripted())
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.engine_status.state == "built" and app.current_snapshot == str(named))
        status = str(app.query_one("#status").render())
        assert "run[bold red].h5" in status, status
        await pilot.press("l")
        await until(pilot, lambda: picker_ready(app, 2))
        table = app.screen.query_one("DataTable")
        assert "checking…" not in str(table.get_row_at(0)) + str(table.get_row_at(1))
        # what the user sees: a str cell would be rendered as markup, a Text cell is shown as it is
        row_cells = [c for i in range(table.row_count) for c in table.get_row_at(i)]
        assert all(isinstance(c, Text) for c in row_cells)
        cells = [c.plain for c in row_cells]
        assert "run[bold red].h5" in cells and "bad[red].h5" in cells
        assert any(c.startswith("INVALID") for c in cells)
        await pilot.press("escape")
        await pilot.press("q")


async def history_written(pilot: Pilot, app: EinetApp) -> None:
    """Everything asked of the history so far is done, and what it answered is handled."""
    written = app.history_io.written()
    await until(pilot, written.done, timeout=30)
    await handled(app)


def shown_row(table, key: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """A table row as the user sees it: shown column → cell text."""
    return {str(c.label): str(table.get_cell(key, c.key)) for c in table.columns.values()}


async def test_history_survives_a_restart_and_names_identical_runs_of_earlier_sessions(tmp_path: Path, scripted: Callable[..., ScriptedEngine]) -> None:
    db = tmp_path / "history.sqlite"
    first = EinetApp(CONFIG, snapshot_dir=tmp_path / "snaps", log_dir=tmp_path / "logs", history=db, engine=scripted())
    async with first.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: first.engine_status.state == "built")
        await pilot.press("space")
        await until(pilot, lambda: len(first.ledger.runs) == 1 and first.ledger.history_ids[0] is not None)
        # at 80 columns: one status line, and the row keeps seed, spikes, rate and a digest prefix
        status = first.query_one("#status")
        assert status.size.height == 1 and len(str(status.render())) <= status.size.width
        row = shown_row(first.query_one("#history"), "r0")
        run = first.ledger.runs[0]
        assert row["seed"] == str(run.seed) and row["spikes"] == str(run.n_spikes) and row["rate Hz"] == f"{run.rate_hz:.1f}"
        assert run.digest.startswith(row["digest"]) and len(row["digest"]) >= 7
        await pilot.press("q")

    again = EinetApp(CONFIG, snapshot_dir=tmp_path / "snaps", log_dir=tmp_path / "logs", history=db, engine=scripted())
    async with again.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: again.engine_status.state == "built" and len(again.ledger.earlier) == 1)
        table = again.query_one("#history")
        h = again.ledger.earlier[0]
        old = shown_row(table, f"h{h.id}")
        assert old["#"] == f"h{h.id}" and old["digest"] == run.short_digest and old["seed"] == str(run.seed)
        assert table.get_cell(f"h{h.id}", "digest").style == "dim", "earlier sessions' runs are marked"
        await pilot.press("space")
        await until(pilot, lambda: len(again.ledger.runs) == 1 and again.ledger.same_as[0] == f"h{h.id}")
        assert again.ledger.runs[0].digest == run.digest, "same build, same seed: identical across sessions"
        assert shown_row(table, "r0")["same as"] == f"h{h.id}"
        await pilot.press("q")


async def test_a_damaged_history_gives_one_warning_and_the_dashboard_runs(tmp_path: Path, scripted: Callable[..., ScriptedEngine]) -> None:
    db = tmp_path / "history.sqlite"
    junk = os.urandom(4096)
    db.write_bytes(junk)
    app = EinetApp(CONFIG, snapshot_dir=tmp_path / "snaps", log_dir=tmp_path / "logs", history=db, engine=scripted())
    seen = Seen()
    async with app.run_test(size=(80, 24), message_hook=seen) as pilot:
        await until(pilot, lambda: app.engine_status.state == "built" and any("run history off" in n for n in seen.notes()))
        await pilot.press("space")
        await until(pilot, lambda: len(app.ledger.runs) == 1)
        await history_written(pilot, app)
        warnings = [n for n in seen.notes() if "history" in n]
        assert len(warnings) == 1 and "\n" not in warnings[0], warnings
        assert app.ledger.history_ids == [None] and app.ledger.same_as == [""]
        await pilot.press("q")
    assert db.read_bytes() == junk, "a damaged history is left as it was"


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
async def test_notifications_never_cover_the_run_table(tmp_path: Path, scripted: Callable[..., ScriptedEngine], size: tuple[int, int]) -> None:
    """A toast sits over the raster's top right, below the status line, never over the run
    table where a seed rerun's digest appears: a store's, then a restore's listing much state
    not restored (the real terminal showed three stacked down over the table). The newest
    replaces the last."""
    missing = [f"model_{i}: key_a, key_b, key_c (NEST keeps them inside)" for i in range(9)]
    app = make(tmp_path, engine=scripted())
    async with app.run_test(size=size, notifications=True) as pilot:
        await until(pilot, lambda: app.engine_status.state == "built")
        app.notify("stored snap.h5 (0.5 MB, t = 100 ms; simulation paused 110 ms)", title="store")
        app._restored(tmp_path / "snap.h5", WireMessage("ok", {"t_stored_ms": 100.0, "seed": 777, "threads": 2, "not_stored": missing}))
        await until(pilot, lambda: [("restored snap.h5" in str(t.render())) for t in app.query("Toast")] == [True])
        await pilot.pause()
        table = app.query_one("#history").region
        toast = app.query_one("Toast").region
        assert toast.height > 0 and not toast.overlaps(table) and toast.y >= 1, (toast, table)
        text = str(app.query_one("Toast").render())
        assert "model_2" in text and "model_3" not in text and "6 more" in text and "? lists all" in text, text
        await pilot.press("q")


async def test_a_restore_says_whether_it_is_the_continued_run(tmp_path: Path, scripted: Callable[..., ScriptedEngine]) -> None:
    """An exact restore (the hidden state written back whole) says so in its toast and log,
    and its runs say so in the run table; any other says why not in the log."""
    app = make(tmp_path, engine=scripted())
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await until(pilot, lambda: app.engine_status.state == "built")
        app._restored(tmp_path / "snap.h5", WireMessage("ok", {"t_stored_ms": 100.0, "seed": 7, "threads": 2, "not_stored": [], "exact": True, "hidden_note": ""}))
        await until(pilot, lambda: any("restored snap.h5" in str(t.render()) for t in app.query("Toast")))
        text = str(app.query_one("Toast").render())
        assert "exact: the continued run" in text and "nothing left out" in text, text
        app._restored(
            tmp_path / "snap.h5", WireMessage("ok", {"t_stored_ms": 100.0, "seed": 8, "threads": 1, "not_stored": ["x: y (z)"], "exact": False, "hidden_note": "hidden state not restored: other virtual processes (1, stored with 2)"})
        )
        await until(pilot, lambda: any("not restored: x" in str(t.render()) for t in app.query("Toast")))
        logged = [str(line) for line in app.query_one("#log").lines]
        assert any("exact: a run from here is the run the stored one would have continued" in line for line in logged), logged
        assert any("hidden state not restored: other virtual processes (1, stored with 2)" in line for line in logged), logged
        assert "exact" not in str(app.query_one("Toast").render())
        await pilot.press("q")
    restored = replace(result("d1", origin="restored"), origin=Origin("restored", "/snaps/at100.h5", 100.0))
    assert MainScreen._run_row(0, replace(restored, exact=True), "").cells[3] == "restored ← at100, exact"
    assert MainScreen._run_row(0, restored, "").cells[3] == "restored ← at100"


async def test_escape_and_q_end_a_run_stuck_inside_nest(tmp_path: Path) -> None:
    """Cancel is honoured between steps; NEST stuck inside one call (parrots repeating a 1e12 Hz
    Poisson input to einet's recorder) gets the engine ended within the grace time, one line says why, a fresh
    engine starts and the dashboard goes on; q then ends at once."""
    from einet.children import STOP_GRACE_S

    app = make(tmp_path, NetworkConfig(model=str(ROOT / "tests" / "models" / "stuck.py"), threads=1))
    async with app.run_test(size=(120, 40)) as pilot:  # tall enough to show the log
        await until(pilot, lambda: app.engine_status.state == "built")
        first = app.engine.pid
        await pilot.press("space")
        await until(pilot, lambda: app.engine_status.state == "running")
        pressed = time.monotonic()
        await pilot.press("escape")
        await until(pilot, lambda: app.engine.pid != first and app.engine_status.state in ("empty", "built"), timeout=STOP_GRACE_S + 30)
        assert time.monotonic() - pressed < STOP_GRACE_S + 10
        log = "".join(line.text for line in app.query_one("#log").lines)
        assert "stuck inside one call" in log, log[-300:]
        await until(pilot, lambda: app.engine_status.state == "empty")
        await pilot.press("b")
        await until(pilot, lambda: app.engine_status.state == "built")
        await pilot.press("space")
        await until(pilot, lambda: app.engine_status.state == "running")
        stuck = app.engine.proc
        pressed = time.monotonic()
        await pilot.press("q")
    assert time.monotonic() - pressed < STOP_GRACE_S + 3, "q ends a stuck engine too"
    assert stuck is not None and stuck.poll() is not None


HOSTILE = "\x1b]0;pwned\x07\x1b[2J\x1b]52;c;aGVsbG8=\x07"
"""Set the terminal's title, clear the screen, write the clipboard (OSC 52)."""


async def test_escape_sequences_in_file_and_dataset_names_never_reach_the_terminal(tmp_path: Path, stored: Path, scripted: Callable[..., ScriptedEngine]) -> None:
    import numpy as np

    from einet.history import History

    from .mutations import write_structural
    from .test_history import synthetic

    folder = tmp_path / "snaps"
    folder.mkdir()
    named = folder / f"run{HOSTILE}.h5"
    named.write_bytes(stored.read_bytes())
    extra = folder / "extra.h5"  # the checksums made right again: refused for the dataset's name alone
    write_structural(stored, extra, lambda h5: h5.create_dataset(f"evil{HOSTILE}", data=np.zeros(3)))
    db = tmp_path / "history.sqlite"
    with History.open(db) as history:
        assert history.record(synthetic(1, label=f"label{HOSTILE}")) == 1
    app = EinetApp(CONFIG, snapshot_dir=folder, restore=named, log_dir=tmp_path / "logs", marker="dot", history=db, engine=scripted())
    seen = Seen()
    async with app.run_test(size=(200, 50), message_hook=seen) as pilot:
        await until(pilot, lambda: app.engine_status.state == "built" and app.current_snapshot == str(named) and len(app.ledger.earlier) == 1)
        await handled(app)
        shown = [app.export_screenshot(), str(app.query_one("#status").render()), *(line.text for line in app.query_one("#log").lines), *seen.notes(), *seen.titles()]
        table = app.query_one("#history")
        shown.append(str(table.get_cell("h1", "run")))
        assert str(table.get_cell("h1", "run")).startswith("label\\x1b]0;pwned\\x07"), "shown, made visible"
        await pilot.press("l")
        await until(pilot, lambda: picker_ready(app, 2))
        picker = app.screen.query_one("DataTable")
        assert str(picker.get_cell(str(named), "file")) == "run\\x1b]0;pwned\\x07\\x1b[2J\\x1b]52;c;aGVsbG8=\\x07.h5"
        refusal = str(picker.get_cell(str(extra), "integrity"))
        assert refusal.startswith("INVALID: unexpected evil\\x1b]0;pwned\\x07"), refusal
        screen = app.export_screenshot()
        assert "run\\x1b]0;pwned" in screen and "evil\\x1b]0;pwned" in screen, "what the terminal draws"
        shown += [screen, *(str(c) for i in range(picker.row_count) for c in picker.get_row_at(i))]
        for text in shown:
            assert "\x1b" not in text and "\x07" not in text, repr(text[:200])
        await pilot.press("escape")
        await pilot.press("q")


async def test_a_history_holding_a_looping_trigger_gives_one_warning_and_quits(tmp_path: Path, scripted: Callable[..., ScriptedEngine]) -> None:
    from .test_history import HOSTILE_SQL, hostile_history

    db = tmp_path / "history.sqlite"
    before = hostile_history(db, HOSTILE_SQL["an insert trigger that loops"])
    app = EinetApp(CONFIG, snapshot_dir=tmp_path / "snaps", log_dir=tmp_path / "logs", history=db, engine=scripted())
    seen = Seen()
    async with app.run_test(size=(80, 24), message_hook=seen) as pilot:
        await until(pilot, lambda: app.engine_status.state == "built" and any("holds SQL einet did not write" in n for n in seen.notes()))
        await pilot.press("space")
        await until(pilot, lambda: len(app.ledger.runs) == 1)
        await history_written(pilot, app)
        assert len([n for n in seen.notes() if "history" in n]) == 1 and app.ledger.history_ids == [None] and app.ledger.earlier == []
        await pilot.press("q")
    assert not app.is_running and db.read_bytes() == before


async def test_b_after_a_restore_builds_the_dashboards_model_never_the_snapshots(tmp_path: Path, stored: Path, scripted: Callable[..., ScriptedEngine]) -> None:
    """What the dashboard asks the engine to build (that a build imports only the model it is
    given: test_hostile.py's test_only_a_model_the_user_names_is_ever_imported)."""
    import dataclasses

    from .test_hostile import model_that_marks

    model, marker = model_that_marks(tmp_path)
    hostile = write_snapshot(dataclasses.replace(open_snapshot(stored), model=str(model)), tmp_path / "hostile.h5")
    engine = scripted()
    app = EinetApp(CONFIG, snapshot_dir=tmp_path / "snaps", restore=hostile, log_dir=tmp_path / "logs", history=tmp_path / "history.sqlite", engine=engine)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.engine_status.state == "built" and app.engine_status.snapshot == str(hostile))
        await pilot.press("b")
        await until(pilot, lambda: app.engine_status.state == "built" and app.engine_status.snapshot == "")
        assert [args for op, args in engine.asked if op == "build"] == [{"config": CONFIG.to_dict()}], "the dashboard's own network"
        await pilot.press("space")
        await until(pilot, lambda: len(app.ledger.runs) == 1)
        assert app.ledger.runs[0].origin.kind == "fresh" and app.ledger.runs[0].model == CONFIG.model
        await pilot.press("q")
    assert not marker.exists(), "the snapshot's model was imported"


class FakeEngineSteps:
    """The demo's engine steps without an engine: ``store`` returns once the state is 'taken',
    the file comes later (when the test says so)."""

    def __init__(self) -> None:
        self.store_asked = threading.Event()
        self.path = Path()
        self.busy = False
        self.done: list[str] = []

    def build(self) -> bool:
        self.done.append("build")
        return True

    def store(self, path: Path) -> bool:
        self.done.append("store")
        self.path = path
        self.busy = True
        self.store_asked.set()
        return True

    def restore(self, path: Path, seed: int) -> bool:
        self.done.append("restore")
        return True

    def run(self, label: str) -> RunResult:
        self.done.append(label)
        return result(label)


def tour_in_a_thread(tmp_path: Path) -> tuple[Tour, FakeEngineSteps, list[Message], threading.Thread]:
    steps, posted = FakeEngineSteps(), []
    tour = Tour(steps, lambda: steps.busy, posted.append)
    tour.start()
    thread = threading.Thread(target=tour.play, args=(tmp_path, 1), daemon=True)
    thread.start()
    assert steps.store_asked.wait(10), "the tour reached its store"
    return tour, steps, posted, thread


def test_the_tour_restores_only_once_its_store_has_ended(tmp_path: Path) -> None:
    tour, steps, posted, thread = tour_in_a_thread(tmp_path)
    thread.join(0.2)  # a window to see it wait
    assert thread.is_alive() and "restore" not in steps.done
    steps.path.touch()  # the background store published the file
    steps.busy = False
    tour.store_ended()
    thread.join(10)
    assert not thread.is_alive()
    assert steps.done == ["build", "initial", "store", "continued", "restore", "restored", "restore", "restored, same seed", "restore", "restored, other seed"]
    assert [m.complete for m in posted if isinstance(m, TourEnded)] == [True]
    assert len([m for m in posted if isinstance(m, TourCaption)]) == len(DEMO_STEPS)


def test_escape_ends_a_tour_waiting_for_its_store(tmp_path: Path) -> None:
    tour, steps, posted, thread = tour_in_a_thread(tmp_path)
    tour.stop()
    thread.join(10)
    assert not thread.is_alive() and "restore" not in steps.done
    assert [m.complete for m in posted if isinstance(m, TourEnded)] == [False]


def test_a_backlog_of_progress_collapses_into_the_newest() -> None:
    assert OpProgress("store", 0.2).can_replace(OpProgress("store", 0.4))
    assert not OpProgress("store", 0.2).can_replace(OpProgress("restore", 0.4)), "another operation's progress is its own"


async def test_the_finished_runs_plots_stay_when_its_last_frame_or_state_comes_late(tmp_path: Path, scripted: Callable[..., ScriptedEngine]) -> None:
    """A run's result comes on a worker thread, its frames and the engine's "built" on the
    event thread: either can come after the result. The raster then kept the result's colour
    and data, not a redraw of the live run in the next run's colour."""
    app = make(tmp_path, engine=scripted())
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.engine_status.state == "built")
        await pilot.press("space")
        await until(pilot, lambda: len(app.ledger.runs) == 1 and app.engine_status.state == "built")
        await handled(app)
        raster = app.main.query_one("#raster", RasterPlot)
        shown = raster.data
        assert shown is not None and shown.color == run_color(0) and shown.label == app.ledger.runs[0].label
        last = app.ledger.runs[0]
        fields = {"label": last.label, "t_start_ms": last.t_start_ms, "t_stop_ms": last.t_stop_ms, "t_ms": last.t_stop_ms, "n_spikes_total": last.n_spikes}
        app.live.add_frame(fields, np.array([1]), np.array([last.t_stop_ms]), None, None)
        app.post_message(StateChanged(replace(app.engine_status, state=EngineState.RUNNING)))
        await handled(app)
        app.main._tick()
        assert raster.data is shown, "the live run was drawn over its result"
        assert app.live.view().n_spikes == last.n_spikes, "the late frame was dropped"
        # the next run draws live again, in its own colour
        app.live.reset("next", last.t_stop_ms, last.t_stop_ms + 100)
        app.main._tick()
        assert raster.data is not shown and raster.data is not None and raster.data.color == run_color(1)


# -- trials from the dashboard's snapshot (t) -------------------------------------------------
async def fill_trials_dialog(pilot: Pilot, app: EinetApp, **fields: str) -> TrialsDialog:
    """Open the trials dialog (t) and type ``fields`` (seeds, vary, at, t, workers) into it."""
    await pilot.press("t")
    await until(pilot, lambda: isinstance(app.screen, TrialsDialog))
    dialog = app.screen
    assert isinstance(dialog, TrialsDialog)
    for name, value in fields.items():
        dialog.query_one(f"#{name}", Input).value = value
    return dialog


async def test_trials_from_the_restored_snapshot_run_beside_the_engine(tmp_path: Path, stored: Path, scripted: Callable[..., ScriptedEngine]) -> None:
    """End to end: real trials (NEST in one worker process, never in the dashboard's) from the
    snapshot the dashboard restored; the view fills in, the engine stays usable, every trial is
    in the history with its set, and the compare view is given the seed reruns."""
    engine = scripted()
    db = tmp_path / "history.sqlite"
    app = EinetApp(CONFIG, snapshot_dir=tmp_path / "snaps", restore=stored, log_dir=tmp_path / "logs", marker="dot", history=db, engine=engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.engine_status.state == "built" and app.current_snapshot == str(stored))
        # long enough trials that the set still runs when t is pressed after the engine's run
        await fill_trials_dialog(pilot, app, seeds="2", t="1500", workers="1")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, TrialsScreen))
        set_id = app.trials_running
        assert set_id and app.trial_sets[set_id].total == 2
        # the engine is not the trials': a run goes on while they start
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is app.main)
        await pilot.press("space")
        await until(pilot, lambda: len(app.ledger.runs) == 1)
        assert app.trials_running == set_id
        await pilot.press("t")  # a set running: t shows it
        await until(pilot, lambda: isinstance(app.screen, TrialsScreen))
        await until(pilot, lambda: not app.trials_running, timeout=90)
        book = app.trial_sets[set_id]
        assert book.state == "done" and len(book.rows) == 2 and not book.failed, book
        assert sorted(r["seed"] for r in book.rows) == [1, 2] and all(r["t_start_ms"] == 200.0 and r["t_stop_ms"] == 1700.0 for r in book.rows)
        assert book.figures[:2] == ("rate_hz.E", "rate_hz.I") and book.where == "1 local worker process"
        # the view: the E rate (the raster's population) per condition, from the library's statistics
        screen = app.screen
        assert isinstance(screen, TrialsScreen)
        await handled(screen)
        assert screen.figure == "rate_hz.E"
        rates = [float(r["rate_hz.E"]) for r in book.rows]
        row = shown_row(screen.query_one("#trials-table"), "c0")
        assert row["n"] == "2" and row["mean"] == f"{sum(rates) / 2:.3g}" and row["Δ baseline"] == "baseline"
        assert "2 seed reruns" in str(screen.query_one("#trials-verdict", StatusLine).parts[0].text)
        # the seed reruns reach the compare view; no trial is a run of this session's table
        assert [(r.snapshot, r.seed, r.length_ms) for r in sorted(book.reruns, key=lambda r: r.seed)] == [(str(stored), 1, 1500.0), (str(stored), 2, 1500.0)]
        assert len(app.ledger.runs) == 1
        await pilot.press("escape")
        await pilot.press("v")
        await until(pilot, lambda: isinstance(app.screen, CompareScreen))
        assert isinstance(app.screen, CompareScreen) and len(app.screen.reruns) == 2
        await pilot.press("escape")
        await history_written(pilot, app)  # the trials are recorded (in order, on its thread)
        await pilot.press("q")
    with History.open(db) as history:
        recorded = history.runs()
    trials = [r for r in recorded if r.trial_set]
    assert sorted(r.digest for r in trials) == sorted(r["digest"] for r in book.rows)
    assert all(r.trial_set == set_id and r.snapshot == str(stored) and r.origin == "restored" for r in trials)
    assert [r.trial_set for r in recorded if r.label.startswith("run")] == [""], "the dashboard's own run is in no set"


async def test_trials_need_a_snapshot_and_bad_fields_are_one_line(tmp_path: Path, stored: Path, scripted: Callable[..., ScriptedEngine]) -> None:
    seen = Seen()
    app = make(tmp_path, engine=scripted())
    async with app.run_test(size=(80, 24), message_hook=seen) as pilot:
        await until(pilot, lambda: app.engine_status.state == "built")
        await pilot.press("t")  # a fresh build: no snapshot to branch from
        await until(pilot, lambda: any("trials need a snapshot" in n for n in seen.notes()))
        assert app.screen is app.main and not app.trial_sets
        app.current_snapshot = str(stored)
        # the library's own parsers judge the fields; each refusal is one line, no set starts
        for fields, words in (
            ({"seeds": "0"}, "--seeds N takes 1 to"),
            ({"vary": "noise.rate"}, "--vary takes TARGET.KEY=V1,V2"),
            ({"at": "E.I_e=1"}, "--at takes"),
            ({"at": "'0:E.I_e=1"}, "changes: No closing quotation"),
            ({"t": "-5"}, "run length must be a positive number"),
            ({"workers": "two"}, "workers must be a whole number"),
        ):
            dialog = await fill_trials_dialog(pilot, app, **fields)
            await pilot.press("enter")
            problem = dialog.query_one("#problem", Static)
            await until(pilot, lambda problem=problem: str(problem.render()) != "")
            text = str(problem.render())
            assert words in text and "\n" not in text and "Traceback" not in text, text
            assert isinstance(app.screen, TrialsDialog) and not app.trial_sets
            await pilot.press("escape")
            await until(pilot, lambda: app.screen is app.main)
        await pilot.press("q")


def trials_book(rates: dict[int, list[float]], state: str = "running", total: int = 6) -> TrialsBook:
    """A set of two conditions as the trials' thread would post it, its rows made by hand."""
    rows = []
    for condition, values in rates.items():
        for seed, rate in enumerate(values, 1):
            rows.append({"trial": len(rows) + 1, "condition": ["baseline", "E.I_e=2000"][condition], "condition_index": condition, "seed": seed, "rate_hz.E": rate, "cv.E": 0.5, "spikes": int(rate * 10), "error": ""})
    rows.append({"trial": len(rows) + 1, "condition": "baseline", "condition_index": 0, "seed": 9, "error": "ProtocolError: no such thing"})
    return TrialsBook("set-1", "/x/warm.h5", ("baseline", "E.I_e=2000"), total, ("rate_hz.E", "cv.E", "weight.none"), 50.0, "2 local worker processes", state, rows=tuple(rows))  # type: ignore[arg-type]


async def test_the_trials_view_shows_the_librarys_statistics_at_80x24_and_stops(tmp_path: Path) -> None:
    """The view given sets made by hand: per condition the summary and the difference to the
    baseline as einet.trials.stats has them, a page per figure, a failed trial counted, and s
    stopping a running set."""
    from textual.app import App

    stops: list[bool] = []
    baseline, driven = [10.0, 12.0, 11.0], [30.0, 33.0, 31.5]
    book = trials_book({0: baseline[:2]})

    class Host(App[None]):
        CSS_PATH = str(ROOT / "tui" / "einet.tcss")

        def on_mount(self) -> None:
            self.push_screen(TrialsScreen(book, "dot", lambda: stops.append(True), "rate_hz.E"))

    app = Host()
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, TrialsScreen) and app.screen.query_one("#trials-table").row_count >= 1)
        screen = app.screen
        assert isinstance(screen, TrialsScreen)
        # a set part way: the baseline's two trials, the other condition none yet
        table = screen.query_one("#trials-table")
        assert shown_row(table, "c0")["n"] == "2"
        status = str(screen.query_one("#trials-status", StatusLine).parts[0].text)
        assert "3 of 6 trials" in status and "1 failed" in status and "running" in status
        await pilot.press("s")
        assert stops == [True], "s asks the app to stop the set"
        # the set as it ended: both conditions, the figures of einet.trials.stats
        screen.show(trials_book({0: baseline, 1: driven}, "done", total=7))
        await handled(screen)
        assert screen.check_action("stop", ()) is None, "a finished set cannot be stopped"
        summary, versus = summarise(driven), compare(driven, baseline)
        row = shown_row(table, "c1")
        assert (row["n"], row["mean"], row["sd"]) == ("3", f"{summary.mean:.3g}", f"{summary.sd:.3g}")
        assert row["Δ baseline"] == f"{versus.difference:.3g}" and row["verdict"] == "differs" == versus.verdict
        verdict = str(screen.query_one("#trials-verdict", StatusLine).parts[0].text)
        assert verdict.startswith("rate_hz.E against the baseline: 2 differs (Δ +20.5")
        # j pages to the next figure the trials have (weight.none has no value in any row: no page)
        assert screen.book.pages == ("rate_hz.E", "cv.E", "spikes")
        await pilot.press("j")
        await handled(screen)
        assert screen.figure == "cv.E" and shown_row(table, "c1")["verdict"] == "no difference detected"
        await pilot.press("j")
        await handled(screen)
        assert screen.figure == "spikes" and screen.check_action("page", (1,)) is None
        # everything is in 80 columns: the table kept its key columns
        assert {"condition", "n", "mean", "verdict"} <= {str(c.label) for c in table.columns.values()}
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, TrialsScreen))

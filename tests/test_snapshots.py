"""What the dashboard looks like, as SVG snapshots (pytest-textual-snapshot) at 80x24 and
120x40: the first screen, after a run, after build → run → store → restore → seed rerun, the
help, the restore picker and the compare view.

A scripted engine (``tests/scripted_engine.py``) plays the small network: the engine's events
and replies without NEST, its spikes drawn from fixed seeds, its snapshots written from one
the real NEST stored (``stored``), so every machine draws the same pictures. (The dashboard
on the real engine: ``test_tui.py`` and, in a real terminal, ``test_pty.py``.) What changes
from run to run — temporary paths, timings in the log, toasts — is kept out: the snapshot
folder is relative, the log is cleared before the picture. Update the pictures after a deliberate change with ``pytest tests/test_snapshots.py
--snapshot-update`` and look at them (``--snapshot-report`` writes an HTML diff on failure).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from textual.message_pump import MessagePump
from textual.pilot import Pilot
from textual.widgets import RichLog

from einet.config import NetworkConfig
from einet.tui.app import EinetApp
from einet.tui.screens import CompareScreen, HelpScreen

from .scripted_engine import ScriptedEngine

CONFIG = NetworkConfig(scale=0.1, t_sim_ms=100.0)
SIZES = {"80x24": (80, 24), "120x40": (120, 40)}


async def until(pilot: Pilot, predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """conftest's ``wait_for`` for the dashboard, whose loop must go on meanwhile: poll
    ``predicate`` while the app runs; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await pilot.pause(0.05)


async def handled(pump: MessagePump, timeout: float = 30.0) -> None:
    """``pump`` (the app, a screen) has handled every message posted to it before this call:
    the callback posted after them runs after them."""
    done = asyncio.Event()
    assert pump.call_later(done.set), "the app no longer takes messages"
    await asyncio.wait_for(done.wait(), timeout)


async def quiet(pilot: Pilot, timeout: float = 60.0) -> None:
    """Everything under way has landed: every worker (the engine's commands) finished, every
    event the engine sent handed to the app (a ping's answer comes after them), every job of
    the history thread done, and every message these posted handled."""
    app = app_of(pilot)
    await asyncio.wait_for(app.workers.wait_for_complete(), timeout)
    await asyncio.wait_for(asyncio.to_thread(app.engine.ping, timeout), timeout)
    await handled(app)
    await asyncio.wait_for(asyncio.wrap_future(app.history_io.written()), timeout)  # one thread, in order
    await handled(app)
    assert all(w.is_finished for w in app.workers), "nothing started meanwhile"


def app_of(pilot: Pilot) -> EinetApp:
    app = pilot.app
    assert isinstance(app, EinetApp)
    return app


async def built(pilot: Pilot) -> None:
    app = app_of(pilot)
    await until(pilot, lambda: app.engine_status.state == "built" and bool(app.groups), "the network built")


async def run(pilot: Pilot, n: int) -> None:
    app = app_of(pilot)
    await pilot.press("space")
    await until(pilot, lambda: len(app.ledger.runs) == n and app.engine_status.state == "built", f"run {n} to end")


async def store(pilot: Pilot, name: str) -> None:
    app = app_of(pilot)
    await pilot.press("s")
    await until(pilot, lambda: app.screen is not app.screen_stack[0] and bool(app.screen.query("Input")), "the store dialog")
    app.screen.query_one("Input").value = name  # type: ignore[attr-defined]
    await pilot.press("enter")
    await until(pilot, lambda: not app.store_busy and (Path("snaps") / f"{name}.h5").exists(), f"{name}.h5 stored")


async def picker(pilot: Pilot) -> None:
    app = app_of(pilot)
    await pilot.press("l")
    await until(pilot, lambda: getattr(app.screen, "paths", None) is not None and app.screen.checked == len(app.screen.paths) > 0, "the picker's files checked")  # type: ignore[attr-defined]


async def full_sequence(pilot: Pilot, *, continued: bool = False) -> None:
    """build → run → store (→ continue) → restore → run → seed rerun."""
    app = app_of(pilot)
    await built(pilot)
    await run(pilot, 1)
    await store(pilot, "snap")
    if continued:
        await pilot.press("c")
        await until(pilot, lambda: len(app.ledger.runs) == 2 and app.engine_status.state == "built", "the continued run to end")
    n = len(app.ledger.runs)
    await picker(pilot)
    await pilot.press("enter")
    await until(pilot, lambda: app.engine_status.state == "built" and app.engine_status.snapshot.endswith("snap.h5"), "snap.h5 restored")
    await run(pilot, n + 1)
    await pilot.press("n")
    await until(pilot, lambda: app.screen is not app.screen_stack[0] and bool(app.screen.query("Input")), "the seed dialog")
    app.screen.query_one("Input").value = "777"  # type: ignore[attr-defined]
    await pilot.press("enter")
    await until(pilot, lambda: len(app.ledger.runs) == n + 2 and app.engine_status.state == "built", "the seed rerun to end")


async def settle(pilot: Pilot) -> None:
    """Nothing that differs between runs: once everything under way has landed, no toasts and
    an empty log (the plots are drawn when a run's result arrives)."""
    app = app_of(pilot)
    await quiet(pilot)
    app.clear_notifications()
    log = app.query_one("#log", RichLog)
    log.clear()
    await handled(app)  # the toast rack is told to let its toasts go by a message
    await until(pilot, lambda: not app.screen.query("Toast") and not log.lines, "no toast and an empty log")


async def first_screen(pilot: Pilot) -> None:
    await built(pilot)
    await settle(pilot)


async def after_run(pilot: Pilot) -> None:
    await built(pilot)
    await run(pilot, 1)
    await settle(pilot)


async def after_restore(pilot: Pilot) -> None:
    await full_sequence(pilot)
    await settle(pilot)


async def help_screen(pilot: Pilot) -> None:
    await built(pilot)
    await settle(pilot)
    await pilot.press("question_mark")
    app = app_of(pilot)
    await until(pilot, lambda: isinstance(app.screen, HelpScreen) and any(w.is_mounted for w in app.screen.query("Static")), "the help")
    await handled(app.screen)


async def restore_picker(pilot: Pilot) -> None:
    await built(pilot)
    await run(pilot, 1)
    await store(pilot, "snap")
    await settle(pilot)
    await picker(pilot)
    await quiet(pilot)
    await handled(app_of(pilot).screen)


async def compare_view(pilot: Pilot) -> None:
    await full_sequence(pilot, continued=True)
    await settle(pilot)
    await pilot.press("v")
    app = app_of(pilot)
    await until(pilot, lambda: isinstance(app.screen, CompareScreen) and bool(app.screen.query(".cmp-raster")) and all(w.is_mounted for w in app.screen.query(".cmp-raster")), "the compare view's rasters")
    await handled(app.screen)


VIEWS: dict[str, Callable[[Pilot], Awaitable[None]]] = {
    "first-screen": first_screen,
    "after-run": after_run,
    "after-restore": after_restore,
    "help": help_screen,
    "picker": restore_picker,
    "compare": compare_view,
}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("view", VIEWS)
def test_dashboard_looks_right(view: str, size: str, snap_compare, tmp_path: Path, stored: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EINET_HISTORY", str(tmp_path / "history.sqlite"))
    app = EinetApp(CONFIG, snapshot_dir=Path("snaps"), log_dir=tmp_path / "logs", marker="dot", engine=ScriptedEngine(stored))
    assert snap_compare(app, terminal_size=SIZES[size], run_before=VIEWS[view])

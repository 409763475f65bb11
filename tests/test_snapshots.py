"""What the dashboard looks like, as SVG snapshots (pytest-textual-snapshot) at 80x24 and
120x40: the first screen, after a run, after build → run → store → restore → seed rerun, the
help, the restore picker and the compare view.

The real engine runs the small network (same NEST, seed and threads: the same spikes and
digests on every machine). What changes from run to run — temporary paths, pids, timings in
the log, toasts — is kept out: the snapshot folder is relative, the log is cleared before the
picture. Update the pictures after a deliberate change with ``pytest tests/test_snapshots.py
--snapshot-update`` and look at them (``--snapshot-report`` writes an HTML diff on failure).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import RichLog

from einet.config import NetworkConfig
from tui.app import EinetApp

CONFIG = NetworkConfig(scale=0.1, t_sim_ms=100.0)
SIZES = {"80x24": (80, 24), "120x40": (120, 40)}


async def until(pilot: Pilot, predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the dashboard")
        await pilot.pause(0.05)


def app_of(pilot: Pilot) -> EinetApp:
    app = pilot.app
    assert isinstance(app, EinetApp)
    return app


async def built(pilot: Pilot) -> None:
    app = app_of(pilot)
    await until(pilot, lambda: app.engine_status.state == "built" and bool(app.groups))


async def run(pilot: Pilot, n: int) -> None:
    app = app_of(pilot)
    await pilot.press("space")
    await until(pilot, lambda: len(app.ledger.runs) == n and app.engine_status.state == "built")


async def store(pilot: Pilot, name: str) -> None:
    app = app_of(pilot)
    await pilot.press("s")
    await until(pilot, lambda: app.screen.query("Input").first() is not None and app.screen is not app.screen_stack[0])
    app.screen.query_one("Input").value = name  # type: ignore[attr-defined]
    await pilot.press("enter")
    await until(pilot, lambda: not app.store_busy and (Path("snaps") / f"{name}.h5").exists())


async def picker(pilot: Pilot) -> None:
    app = app_of(pilot)
    await pilot.press("l")
    await until(pilot, lambda: getattr(app.screen, "paths", None) is not None and app.screen.checked == len(app.screen.paths) > 0)  # type: ignore[attr-defined]


async def full_sequence(pilot: Pilot, *, continued: bool = False) -> None:
    """build → run → store (→ continue) → restore → run → seed rerun."""
    app = app_of(pilot)
    await built(pilot)
    await run(pilot, 1)
    await store(pilot, "snap")
    if continued:
        await pilot.press("c")
        await until(pilot, lambda: len(app.ledger.runs) == 2 and app.engine_status.state == "built")
    n = len(app.ledger.runs)
    await picker(pilot)
    await pilot.press("enter")
    await until(pilot, lambda: app.engine_status.state == "built" and app.engine_status.snapshot.endswith("snap.h5"))
    await run(pilot, n + 1)
    await pilot.press("n")
    await until(pilot, lambda: app.screen is not app.screen_stack[0])
    app.screen.query_one("Input").value = "777"  # type: ignore[attr-defined]
    await pilot.press("enter")
    await until(pilot, lambda: len(app.ledger.runs) == n + 2 and app.engine_status.state == "built")


async def settle(pilot: Pilot) -> None:
    """Nothing that differs between runs: no toasts, an empty log, plots drawn."""
    app = app_of(pilot)
    await pilot.pause(0.3)
    app.clear_notifications()
    app.query_one("#log", RichLog).clear()
    await pilot.pause(0.2)


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
    await pilot.pause(0.3)


async def restore_picker(pilot: Pilot) -> None:
    await built(pilot)
    await run(pilot, 1)
    await store(pilot, "snap")
    await settle(pilot)
    await picker(pilot)
    await pilot.pause(0.2)


async def compare_view(pilot: Pilot) -> None:
    await full_sequence(pilot, continued=True)
    await settle(pilot)
    await pilot.press("v")
    await pilot.pause(0.5)


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
def test_dashboard_looks_right(view: str, size: str, snap_compare, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EINET_HISTORY", str(tmp_path / "history.sqlite"))
    app = EinetApp(CONFIG, snapshot_dir=Path("snaps"), log_dir=tmp_path / "logs", marker="dot")
    assert snap_compare(app, terminal_size=SIZES[size], run_before=VIEWS[view])

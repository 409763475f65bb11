"""Dashboard responsiveness while NEST simulates, and its CPU use while idle.

    python benchmarks/tui_latency.py SCALE FOLDER   ->  one JSON line

Drives the real app (headless, 120x40) with the real engine: starts a long run, then presses
`?` (help opens) and `escape` (help closes) repeatedly, timing each press until the screen has
changed. Then cancels the run and measures this process's CPU time over 5 idle seconds.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

from textual import events

from einet.config import NetworkConfig
from einet.tui.app import EinetApp
from einet.tui.screens import HelpScreen

PRESSES = 40


async def measure(scale: float, folder: Path) -> dict[str, float]:
    app = EinetApp(NetworkConfig(scale=scale, t_sim_ms=600_000.0), snapshot_dir=folder / "snaps", log_dir=folder / "logs")
    latencies: list[float] = []

    async def until(pred, timeout: float = 120.0) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > deadline:
                raise TimeoutError("dashboard did not react")
            await asyncio.sleep(0.001)

    async with app.run_test(size=(120, 40)) as pilot:
        await until(lambda: app.engine_status.state == "built")
        await pilot.press("space")
        await until(lambda: app.engine_status.state == "running" and app.live.view().n_spikes > 0)
        await asyncio.sleep(1.0)
        for _ in range(PRESSES // 2):
            for key, char, pred in (("question_mark", "?", lambda: isinstance(app.screen, HelpScreen)), ("escape", None, lambda: not isinstance(app.screen, HelpScreen))):
                # post the key as the terminal driver does (Pilot.press also waits for the
                # whole process to go idle, which never happens while frames stream in)
                t0 = time.perf_counter()
                app.post_message(events.Key(key, char))
                await until(pred)
                await until(lambda: not app.screen._dirty_widgets)  # and drawn
                latencies.append(1000 * (time.perf_counter() - t0))
                await asyncio.sleep(0.05)
        assert app.engine_status.state == "running", "the run went on during the presses"
        await pilot.press("escape")
        await until(lambda: app.engine_status.state == "built" and len(app.ledger.runs) == 1)
        await asyncio.sleep(1.0)
        c0, w0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(5.0)
        idle = 100 * (time.process_time() - c0) / (time.perf_counter() - w0)
        await pilot.press("q")
    latencies.sort()
    return {
        "presses": len(latencies),
        "p50_ms": statistics.median(latencies),
        "p95_ms": latencies[int(0.95 * (len(latencies) - 1))],
        "max_ms": latencies[-1],
        "idle_cpu_pct": idle,
    }


if __name__ == "__main__":
    scale, folder = float(sys.argv[1]), Path(sys.argv[2])
    folder.mkdir(parents=True, exist_ok=True)
    print(json.dumps({"scale": scale, **asyncio.run(measure(scale, folder))}))

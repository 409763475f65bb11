"""Regenerate docs/screenshot.svg: the dashboard at 100x30 after the example's five runs (`make screenshot`)."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

from einet.config import NetworkConfig
from einet.tui.app import EinetApp

OUT = Path(__file__).resolve().parent / "screenshot.svg"


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["EINET_HISTORY"] = str(Path(tmp) / "history.sqlite")  # no earlier runs
        os.chdir(tmp)  # relative names on screen
        app = EinetApp(NetworkConfig(scale=0.4), snapshot_dir=Path("snapshots"), log_dir=Path(tmp) / "logs")
        async with app.run_test(size=(100, 30)) as pilot:
            deadline = time.monotonic() + 300
            while app.engine_status.state != "built":
                if time.monotonic() > deadline:
                    raise SystemExit("the engine did not build the network in time")
                await asyncio.sleep(0.05)
            await pilot.press("d")
            await asyncio.sleep(0.5)
            while app.touring:
                if time.monotonic() > deadline:
                    raise SystemExit("the demo did not finish in time")
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)
            app.clear_notifications()
            await asyncio.sleep(0.3)
            app.save_screenshot(str(OUT))
            await pilot.press("q")
    print(f"wrote {OUT}", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())

"""Regenerate docs/screenshot.svg: the dashboard after the example's five runs (`make screenshot`)."""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from einet.config import NetworkConfig
from tui.app import EinetApp

OUT = Path(__file__).resolve().parent / "screenshot.svg"


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        app = EinetApp(NetworkConfig(scale=0.4), snapshot_dir=Path(tmp) / "snapshots", log_dir=Path(tmp) / "logs")
        async with app.run_test(size=(130, 42)) as pilot:
            deadline = time.monotonic() + 300
            while app.es.state != "built":
                await asyncio.sleep(0.05)
            await pilot.press("d")
            await asyncio.sleep(0.5)
            while app.touring and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)
            app.save_screenshot(str(OUT))
            await pilot.press("q")
    print(f"wrote {OUT}", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())

"""The dashboard in a real terminal: tmux runs ``einet`` on a pty, keys are typed, the screen
is read back. After build → run → store → restore → run → seed rerun, at 120x40 and after a
resize to 80x24, the status is one line and every row of the run table shows its seed,
spikes, rate and a digest prefix — the values ``einet history --json`` recorded."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

# serial: a real terminal read against deadlines, run alone after the parallel tests
pytestmark = [pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (make test installs it when run as root)"), pytest.mark.serial]

BIN = Path(sys.executable).parent / "einet"


class Tmux:
    def __init__(self, tmp: Path, width: int, height: int, command: str) -> None:
        self.name = f"einet-{uuid.uuid4().hex[:8]}"
        self.env = {**os.environ, "TMUX": ""}
        self._tmux("new-session", "-d", "-s", self.name, "-x", str(width), "-y", str(height), command)
        self._tmux("set-option", "-t", self.name, "window-size", "manual")

    def _tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", *args], check=True, capture_output=True, text=True, env=self.env, timeout=10).stdout

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", self.name, *keys)

    def type(self, literal: str) -> None:
        self._tmux("send-keys", "-t", self.name, "-l", literal)

    def screen(self) -> list[str]:
        return self._tmux("capture-pane", "-p", "-t", self.name).splitlines()

    def resize(self, width: int, height: int) -> None:
        self._tmux("resize-window", "-t", self.name, "-x", str(width), "-y", str(height))

    def wait(self, predicate: Callable[[list[str]], bool], what: str, timeout: float = 60.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            lines = self.screen()
            if predicate(lines):
                return lines
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; screen:\n" + "\n".join(lines))
            time.sleep(0.1)

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True, env=self.env, timeout=10)


def text(lines: list[str]) -> str:
    return "\n".join(lines)


def has_row(lines: list[str], number: int) -> bool:
    return any(re.match(rf"^ ?{number} ", line) for line in lines)


def table_rows(lines: list[str]) -> list[dict[str, str]]:
    """The run table as the user reads it: cells cut at the header's column starts."""
    header_at = next((i for i, line in enumerate(lines) if line.lstrip().startswith("#") and "seed" in line), None)
    if header_at is None:
        return []
    header = lines[header_at]
    names = [m.group(0).strip() for m in re.finditer(r"\S+(?: \S+)*", header)]
    starts = [m.start() for m in re.finditer(r"\S+(?: \S+)*", header)]
    rows = []
    for line in lines[header_at + 1 :]:
        if not re.match(r"^ ?(\d+|h\d+) ", line):
            break
        cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], len(line)])]
        rows.append(dict(zip(names, cells)))
    return rows


def check(lines: list[str], recorded: list[dict]) -> None:  # type: ignore[type-arg]
    status = lines[0]
    assert status.lstrip().startswith("built") and "seed 777" in status, status
    assert "│" not in lines[1], f"the status line wrapped: {lines[1]!r}"
    rows = table_rows(lines)
    assert len(rows) == len(recorded) == 3, text(lines)
    for row, run in zip(rows, recorded):
        assert row.get("seed") == str(run["seed"]) and row.get("spikes") == str(run["spikes"]), (row, text(lines))
        assert row["rate Hz"] == f"{run['rate_hz']:.1f}", row
        assert len(row["digest"]) >= 7 and run["digest"].startswith(row["digest"]), row


def test_the_dashboard_over_a_real_terminal(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite"
    command = f"cd {tmp_path} && EINET_HISTORY={db} {BIN} --scale 0.1 --t 100 --snapshot-dir snaps --marker dot --no-mouse; sleep 30"
    tmux = Tmux(tmp_path, 120, 40, command)
    try:
        tmux.wait(lambda s: s[0].lstrip().startswith("built") and "space" in text(s), "the built network")
        tmux.keys("Space")
        tmux.wait(lambda s: has_row(s, 1), "run 1")
        tmux.keys("s")
        tmux.wait(lambda s: "Store a snapshot" in text(s), "the store dialog")
        tmux.keys("C-u")
        tmux.wait(lambda s: "the name is empty" in text(s), "the cleared name")
        tmux.type("snap")
        tmux.wait(lambda s: "▊snap" in text(s).replace(" ", ""), "the typed name")
        tmux.keys("Enter")
        tmux.wait(lambda s: "snapshot snap.h5" in s[0] and "storing" not in s[0], "the store")
        tmux.keys("l")
        tmux.wait(lambda s: "integrity" in text(s) and re.search(r"snap\.h5 .* ok", text(s)) is not None, "the picker")
        tmux.keys("Enter")
        tmux.wait(lambda s: "(restored at" in s[0], "the restore")
        tmux.keys("Space")
        tmux.wait(lambda s: has_row(s, 2), "run 2")
        tmux.keys("n")
        tmux.wait(lambda s: "with seed" in text(s), "the seed dialog")
        tmux.keys("C-u")
        tmux.wait(lambda s: "▊12345" not in text(s).replace(" ", ""), "the cleared seed")
        tmux.type("777")
        tmux.wait(lambda s: "▊777" in text(s).replace(" ", ""), "the typed seed")
        tmux.keys("Enter")
        # the restore's toast may still be up: it never covers the run table
        wide = tmux.wait(lambda s: has_row(s, 3) and s[0].lstrip().startswith("built"), "the seed rerun", timeout=90)

        history = subprocess.run([str(BIN), "history", "--json", "--history", str(db)], capture_output=True, text=True, timeout=60, check=True)
        recorded = json.loads(history.stdout)["runs"]
        assert [r["seed"] for r in recorded] == [12345, 12345, 777]
        check(wide, recorded)

        tmux.resize(80, 24)
        narrow = tmux.wait(lambda s: len(s) == 24 and len(s[0]) <= 80 and len(table_rows(s)) == 3, "the re-layout at 80x24")
        time.sleep(0.5)  # any late redraw would show up as a leftover
        narrow = tmux.screen()
        check(narrow, recorded)
        assert all(len(line) <= 80 for line in narrow)
        tmux.keys("q")
        tmux.wait(lambda s: "built" not in s[0], "the dashboard to quit", timeout=20)
    finally:
        tmux.close()

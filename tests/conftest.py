"""Shared fixtures. Every test uses the real NEST (in this process or in the engine)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from einet import NetworkConfig, Session

SMALL = NetworkConfig(scale=0.1, t_sim_ms=200.0)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def small() -> NetworkConfig:
    return SMALL


@pytest.fixture(scope="session")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A snapshot of the small network after one run (shared, read-only)."""
    path = tmp_path_factory.mktemp("stored") / "small.h5"
    session = Session(SMALL)
    session.build()
    session.run()
    session.store(path)
    return path


def einet_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the installed CLI in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "einet.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


def sorted_table(cols: dict[str, np.ndarray]) -> np.ndarray:
    """Connection columns as rows sorted by everything (connection order is not defined)."""
    rows = np.column_stack([np.asarray(v, dtype=float) for v in cols.values()])
    return rows[np.lexsort(rows.T[::-1])]

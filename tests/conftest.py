"""Shared fixtures. Every test uses the real NEST (in this process or in the engine)."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from einet import NetworkConfig, Session, Snapshot

if os.environ.get("PYTEST_XDIST_WORKER"):
    # tests run side by side, each NEST with its threads: more threads than cores, so a thread
    # at one of NEST's OpenMP barriers must give its core away rather than spin on it (set
    # before NEST loads, here and in every process the tests start)
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")

SMALL = NetworkConfig(scale=0.1, t_sim_ms=200.0)
ROOT = Path(__file__).resolve().parents[1]


def _dashboard_of_this_checkout() -> None:
    """The dashboard installs as ``einet.tui`` from ``tui/`` (setuptools' package-dir), so an
    editable install maps it to the checkout it was made from: tests run from another
    checkout sharing that venv (a git worktree, with this checkout first on PYTHONPATH) would
    test that checkout's dashboard. In this process, ``einet.tui`` is this checkout's ``tui/``."""
    here = ROOT / "tui"
    found = importlib.util.find_spec("einet.tui")
    if found is not None and found.origin is not None and Path(found.origin).resolve().parent == here.resolve():
        return
    spec = importlib.util.spec_from_file_location("einet.tui", here / "__init__.py", submodule_search_locations=[str(here)])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["einet.tui"] = module
    spec.loader.exec_module(module)
    import einet

    einet.tui = module  # type: ignore[attr-defined]  # as the import system binds a subpackage


_dashboard_of_this_checkout()


@pytest.fixture(scope="session", autouse=True)
def history_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """EINET_HISTORY for the whole session: the runs tests make (in this process and in the
    CLIs and dashboards they start) are recorded here, never in the repository's snapshots/."""
    path = tmp_path_factory.mktemp("history") / "einet-history.sqlite"
    before = os.environ.get("EINET_HISTORY")
    os.environ["EINET_HISTORY"] = str(path)
    yield path
    if before is None:
        os.environ.pop("EINET_HISTORY", None)
    else:
        os.environ["EINET_HISTORY"] = before


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


def wait_for(predicate: Callable[[], object], timeout: float, what: str | Callable[[], str], interval: float = 0.01) -> object:
    """Poll ``predicate()`` every ``interval`` s until it holds and return its value; when
    ``timeout`` s pass first, fail the test with an AssertionError naming ``what`` (a text, or
    a function that tells what was seen so far). Never waits for ever, never passes on a deadline."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what() if callable(what) else what}")
        time.sleep(interval)
    return value


def children_of(pid: int) -> set[int]:
    """The live (or zombie) child processes of process ``pid``."""
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):  # a thread that ended meanwhile
            out |= {int(x) for x in (task / "children").read_text().split()}
    return out


def process_state(pid: int) -> str:
    """The one-letter state of process ``pid`` (R, S, D, T stopped, Z zombie...), "" when gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return ""
    return stat[stat.rindex(")") + 2]  # the name in parentheses may hold spaces


@contextlib.contextmanager
def stopped(pid: int, what: str = "the process") -> Iterator[None]:
    """Hold process ``pid`` with SIGSTOP (it is seen stopped before the body runs) and let it
    go on with SIGCONT after: what it does cannot happen meanwhile. A process that has already
    ended fails the test: the moment to stop it has passed."""

    def is_stopped() -> bool:
        state = process_state(pid)
        assert state not in ("", "Z", "X"), f"{what} (pid {pid}) had already ended"
        return state in ("T", "t")

    os.kill(pid, signal.SIGSTOP)
    try:
        wait_for(is_stopped, 10, f"{what} (pid {pid}) to stop")
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


@pytest.fixture
def before_nest(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """For commands run in this process (``einet.cli.main``) that must be refused before NEST
    is involved: a tripwire where a network would be built or restored in NEST, or an engine
    started (a refusal that came too late would build, or with --t inf run for ever, in the
    tests' own process: it fails instead, as exit 1), and an empty current folder."""
    from einet import session
    from einet.engine import remote

    def too_late(*args: object, **kwargs: object) -> None:
        raise AssertionError("NEST was reached: the refusal came too late")

    monkeypatch.setattr(session, "build_model", too_late)
    monkeypatch.setattr(session.Session, "restore", too_late)
    monkeypatch.setattr(remote, "RemoteSession", too_late)
    monkeypatch.chdir(tmp_path)


def one_line_error(capsys: pytest.CaptureFixture[str], words: str) -> str:
    """What a command run by ``einet.cli.main`` printed: nothing on stdout, one ``einet:``
    line holding ``words`` (and no traceback) on stderr, which is returned."""
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1 and err.startswith("einet: ") and words in err and "Traceback" not in err, (out, err)
    return err


TRACE_KEYS = ("Kplus", "Kplus_triplet")


def sorted_table(cols: dict[str, np.ndarray]) -> np.ndarray:
    """Connection columns as rows sorted by everything (connection order is not defined)."""
    rows = np.column_stack([np.asarray(v, dtype=float) for v in cols.values()])
    return rows[np.lexsort(rows.T[::-1])]


def assert_same_connections(x: Any, y: Any) -> None:
    """Two synapse tables hold the same connections (in any order), every value exactly equal
    but the presynaptic traces: those are stored at the stored time and restored as that value
    times exp(t / tau) (see einet.traces), so a round trip is exact only to rounding."""
    cx, cy = x.all_columns(), y.all_columns()
    assert list(cx) == list(cy), x.model
    exact = [k for k in cx if k not in TRACE_KEYS]
    traces = [k for k in cx if k in TRACE_KEYS]
    xs, ys = sorted_table({k: cx[k] for k in (*exact, *traces)}), sorted_table({k: cy[k] for k in (*exact, *traces)})
    np.testing.assert_array_equal(xs[:, : len(exact)], ys[:, : len(exact)], err_msg=f"{x.model} rows", strict=True)
    np.testing.assert_allclose(xs[:, len(exact) :], ys[:, len(exact) :], rtol=1e-13, atol=0, err_msg=f"{x.model} traces")


def assert_same_state(a: Snapshot, b: Snapshot) -> None:
    """Two snapshots hold the same network state: every node value, connection (in any
    order), population, model call and kernel setting exactly equal."""
    assert a.kernel == b.kernel and a.kernel_set == b.kernel_set and list(a.model_calls) == list(b.model_calls)
    assert len(a.nodes) == len(b.nodes)
    for x, y in zip(a.nodes, b.nodes):
        assert (x.first_id, x.count, x.model, x.spatial) == (y.first_id, y.count, y.model, y.spatial)
        assert x.uniform == y.uniform and x.varying == y.varying, x.model
        assert set(x.columns) == set(y.columns) and set(x.ragged) == set(y.ragged), x.model
        for key in x.columns:
            np.testing.assert_array_equal(x.columns[key], y.columns[key], err_msg=f"{x.model} {key}")
        for key in x.ragged:
            for u, v in zip(x.ragged[key], y.ragged[key]):
                np.testing.assert_array_equal(u, v, err_msg=f"{x.model} {key}")
        if x.positions is not None or y.positions is not None:
            np.testing.assert_array_equal(x.positions, y.positions)
    assert [t.model for t in a.synapses] == [t.model for t in b.synapses]
    for x, y in zip(a.synapses, b.synapses):
        assert set(x.columns) == set(y.columns), x.model
        assert {k: v for k, v in x.uniform.items() if k not in TRACE_KEYS} == {k: v for k, v in y.uniform.items() if k not in TRACE_KEYS}, x.model
        assert_same_connections(x, y)
    assert list(a.groups) == list(b.groups)
    for name in a.groups:
        np.testing.assert_array_equal(a.groups[name], b.groups[name])

"""The C++ accelerator reads what PyNEST reads (every synapse model: see test_every_model),
typed and by dictionary, at any thread count, with devices and disconnected connections;
when its guard or a check fails, stores read through PyNEST and say so once."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from einet import NetworkConfig, Session, accel
from einet.accel import build, library
from einet.accel.state import state_library
from einet.kernel import nest
from einet.store import bulk as bulk_module
from einet.store import capture, plan_capture, read_connections
from einet.store.bulk import read_bulk
from einet.store.connections import column_dtype

from .conftest import ROOT, assert_same_state


def rows_sorted(columns: list[np.ndarray]) -> np.ndarray:
    """A model's connections as sorted rows (float64: node ids are exact)."""
    a = np.column_stack([c.astype(np.float64) for c in columns])
    return a[np.lexsort(a.T[::-1])] if len(a) else a


def assert_bulk_equals_pynest(session: Session) -> list[str]:
    """The accelerator's arrays equal PyNEST's, row for row once sorted; returns the models."""
    plan = plan_capture(session.network, seed=session.seed, read_nodes=False)
    fast = read_bulk(plan)
    assert fast is not None, f"the accelerator is not in use: {accel.why_not()}"
    slow = read_connections(plan)
    for m, a, b in zip(plan.models, fast, slow):
        assert [c.shape for c in a] == [c.shape for c in b] == [(m.count,)] * len(m.keys), m.model
        assert [c.dtype for c in a] == [c.dtype for c in b], m.model
        np.testing.assert_array_equal(rows_sorted(a), rows_sorted(b), err_msg=m.model)
    return [m.model for m in plan.models]


@pytest.fixture(autouse=True)
def fresh_library() -> Iterator[None]:
    """Each test decides for itself whether the accelerator loads (and its first-read checks).
    The hidden-state accessor is loaded first, for the real NEST: a test that breaks the
    connection reader's build (another NEST, no compiler) must not have it built or refused
    for the rest of the process."""
    state_library()
    library.reset()
    bulk_module._checked.clear()
    yield
    library.reset()
    bulk_module._checked.clear()


@pytest.mark.parametrize("threads", [1, 3])
def test_devices_multisynapse_and_stdp_parameters_equal_pynest(threads: int) -> None:
    """Connections from generators and a multimeter, to a recorder (einet's), receptor ports,
    STDP with per-connection tau_plus and delays: equal at 1 and 3 NEST threads."""
    s = Session(NetworkConfig(model=str(ROOT / "tests" / "models" / "devices.py"), threads=threads, t_sim_ms=60.0))
    s.build()
    s.run()
    assert {"static_synapse", "stdp_synapse"} <= set(assert_bulk_equals_pynest(s))


def test_short_term_plastic_connections_are_read_typed_and_equal_pynest() -> None:
    """tsodyks2_synapse (per-connection U, tau_rec, tau_fac, u and x) read straight from its
    connector, as PyNEST reads it, on both threads."""
    s = Session(NetworkConfig(model=str(ROOT / "tests" / "models" / "adaptive.py"), threads=2, t_sim_ms=60.0))
    s.build()
    s.run()
    assert "tsodyks2_synapse" in assert_bulk_equals_pynest(s)
    lib = accel.connection_library()
    assert lib is not None
    (m,) = [m for m in plan_capture(s.network, seed=s.seed, read_nodes=False).models if m.model == "tsodyks2_synapse"]
    got = lib.read(m.model, m.keys, lib.count(m.model), [np.empty(m.count, column_dtype(key)) for key in m.keys], run_keys=["t_lastspike"])
    assert got.typed_threads == 2 and got.runs is not None and np.isfinite(got.runs.values["t_lastspike"]).all()


def test_typed_and_dictionary_reads_are_equal_and_typed_is_used_where_known() -> None:
    s = Session(NetworkConfig(scale=0.2, threads=2, t_sim_ms=60.0))
    s.build()
    s.run()
    lib = accel.connection_library()
    assert lib is not None, accel.why_not()
    plan = plan_capture(s.network, seed=s.seed, read_nodes=False)
    assert {"e_syn", "i_syn"} <= {m.model for m in plan.models}
    for m in plan.models:
        per_thread = lib.count(m.model)
        assert int(per_thread.sum()) == m.count and len(per_thread) == 2
        typed = [np.empty(m.count, column_dtype(key)) for key in m.keys]
        by_dict = [np.empty(m.count, column_dtype(key)) for key in m.keys]
        reported: list[int] = []
        got = lib.read(m.model, m.keys, per_thread, typed, reported.append)
        # e_syn (a copy of stdp_synapse_hom) and i_syn (of static_synapse) join neurons: typed on
        # both threads; static_synapse only joins devices, which are read by dictionary
        assert got.typed_threads == (2 if m.model in ("e_syn", "i_syn") else 0), m.model
        assert got.runs is None
        assert lib.read(m.model, m.keys, per_thread, by_dict, typed=False).typed_threads == 0
        for a, b in zip(typed, by_dict):
            np.testing.assert_array_equal(a, b)
        assert sum(reported) == m.count
    assert_bulk_equals_pynest(s)


@pytest.mark.parametrize("threads", [1, 2])
def test_stdp_state_read_by_run_is_each_connections_own(threads: int) -> None:
    """Kplus and t_lastspike read per run of rows, as the hidden section stores them: expanded,
    each row's values are those the accessor reads of the same connection; runs join rows
    across NEST's threads, and a dictionary read has no t_lastspike (NEST's status lacks it)."""
    s = Session(NetworkConfig(scale=0.2, threads=threads, t_sim_ms=60.0))
    s.build()
    s.run()
    lib = accel.connection_library()
    assert lib is not None, accel.why_not()
    (m,) = [m for m in plan_capture(s.network, seed=s.seed, read_nodes=False).models if m.model == "e_syn"]
    per_thread = lib.count(m.model)
    cols = [np.empty(m.count, column_dtype(key)) for key in m.keys]
    runs = lib.read(m.model, m.keys, per_thread, cols, run_keys=["Kplus", "t_lastspike"]).runs
    assert runs is not None and runs.start[0] == 0 and runs.start[-1] == m.count and (np.diff(runs.start) > 0).all()
    assert 100 < len(runs.start) - 1 < m.count // 10, "a source's connections share their values"
    kplus, tlast = (np.repeat(runs.values[k], np.diff(runs.start)) for k in ("Kplus", "t_lastspike"))
    row = dict(zip(m.keys, cols))
    np.testing.assert_array_equal(kplus, row["Kplus"])
    assert (tlast > 0).any()
    own = state_library().read_stdp(m.model)
    assert _same_multiset((row["source"], row["target"], kplus, tlast), (own.source, own.target, own.kplus, own.t_lastspike))
    joined = runs.values["t_lastspike"].view(np.int64), runs.values["Kplus"].view(np.int64)
    assert ((joined[0][1:] != joined[0][:-1]) | (joined[1][1:] != joined[1][:-1])).all(), "neighbouring runs differ"
    by_dict = lib.read(m.model, m.keys, per_thread, cols, typed=False, run_keys=["Kplus", "t_lastspike"]).runs
    assert by_dict is not None and np.isnan(by_dict.values["t_lastspike"]).all()
    np.testing.assert_array_equal(np.repeat(by_dict.values["Kplus"], np.diff(by_dict.start)), kplus)


def _same_multiset(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]) -> bool:
    def rows(cols: tuple[np.ndarray, ...]) -> np.ndarray:
        return np.sort(np.rec.fromarrays([np.asarray(c, dtype=np.float64) for c in cols]))

    return bool(np.array_equal(rows(a), rows(b)))


def test_runs_of_the_rows_kept_join_what_the_dropped_rows_parted() -> None:
    runs = library.Runs.of(np.array([0, 2, 3, 5]), 6, {"x": np.array([1.0, 2.0, 1.0, 1.0])})
    assert runs.start.tolist() == [0, 2, 3, 6] and runs.values["x"].tolist() == [1.0, 2.0, 1.0], "equal neighbours are one run"
    kept = runs.of_rows(np.array([True, True, False, True, False, True]))
    assert kept.start.tolist() == [0, 4] and kept.values["x"].tolist() == [1.0]
    nan = library.Runs.of(np.array([0, 1, 2, 3]), 4, {"x": np.array([np.nan, np.nan, -0.0, 0.0])})
    assert nan.start.tolist() == [0, 2, 3, 4], "NaN equals NaN; -0.0 is not 0.0 (bit for bit)"
    assert library.Runs.of(np.empty(0, np.int64), 0, {"x": np.empty(0)}).start.tolist() == [0]


def test_connections_removed_or_made_since_the_last_run_are_read_as_pynest_reads_them() -> None:
    s = Session(NetworkConfig(scale=0.1, threads=2, t_sim_ms=30.0))
    s.build()
    s.run()
    n = nest()
    gone = n.GetConnections(source=n.NodeCollection([3, 4]), synapse_model="e_syn")
    assert len(gone) > 0
    n.Disconnect(gone)
    n.Connect(n.NodeCollection([5]), n.NodeCollection([6, 7]), syn_spec={"synapse_model": "e_syn", "weight": 0.25})
    lib = accel.connection_library()
    assert lib is not None and not lib.tables_are_current(), "NEST rebuilds its tables at the next fetch or run"
    assert_bulk_equals_pynest(s)  # the store's plan has them rebuilt: both reads see the change
    assert lib.tables_are_current()


def test_a_library_built_for_another_nest_is_refused_and_stores_read_through_pynest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The guard: a cached library whose build names another nestkernel_api.so does not load."""
    real = library.installed()
    other = build.Nest(real.folder, real.version, "0" * 64)  # what another NEST binary would hash to
    shutil.copy(build.build(real), tmp_path / "stale.so")
    monkeypatch.setattr(library, "nest_of", lambda folder: other)
    monkeypatch.setattr(library, "build", lambda nest_: tmp_path / "stale.so")
    monkeypatch.setattr(library, "library_path", lambda nest_: tmp_path / "stale.so")
    s = Session(NetworkConfig(scale=0.05, t_sim_ms=30.0))
    with caplog.at_level(logging.WARNING, logger="einet"):
        s.build()  # its synapse probe loads a cached library: this one is refused there
        s.run()
        got = capture(s.network, seed=s.seed)
        again = capture(s.network, seed=s.seed)
    said = [r.getMessage() for r in caplog.records if r.name == "einet"]
    assert len(said) == 1 and "built for another NEST" in said[0] and "PyNEST" in said[0], said
    assert accel.why_not() is not None
    monkeypatch.setenv("EINET_ACCEL", "0")
    assert_same_state(got, capture(s.network, seed=s.seed))
    assert_same_state(got, again)


@pytest.mark.parametrize("fault", ["value", "count"])
def test_a_read_that_disagrees_with_nest_falls_back_to_pynest(fault: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The checks on a read: a sampled row PyNEST does not confirm, or a count unlike NEST's."""
    s = Session(NetworkConfig(scale=0.05, t_sim_ms=30.0))
    s.build()
    s.run()
    lib = accel.connection_library()
    assert lib is not None, accel.why_not()
    clean = capture(s.network, seed=s.seed)
    assert clean.hidden is not None, "a clean read takes the STDP rows"
    bulk_module._checked.clear()  # each model's first read in the process is checked again
    real_read, real_count = lib.read, lib.count

    def corrupt_read(model: str, keys: list[str], per_thread: np.ndarray, columns: list[np.ndarray], *args: object, **kwargs: object) -> library.Read:
        got = real_read(model, keys, per_thread, columns, *args, **kwargs)  # type: ignore[arg-type]
        if model != "e_syn":  # read first: its STDP rows are taken before another read fails
            columns[keys.index("weight")][0] += 1.0  # the first row is always sampled
        return got

    if fault == "value":
        monkeypatch.setattr(lib, "read", corrupt_read)
    else:
        monkeypatch.setattr(lib, "count", lambda model: real_count(model) + np.eye(1, len(real_count(model)), dtype=np.int64)[0])
    with caplog.at_level(logging.WARNING, logger="einet"):
        got = capture(s.network, seed=s.seed)
    said = [r.getMessage() for r in caplog.records if r.name == "einet"]
    assert len(said) == 1 and ("differs from PyNEST" if fault == "value" else "where NEST counts") in said[0], said
    assert got.hidden is None, "read again through PyNEST (in another order): the STDP rows the failed read took are not the tables'"
    assert accel.connection_library() is None, "off for the rest of the process"
    monkeypatch.setenv("EINET_ACCEL", "0")
    assert_same_state(got, capture(s.network, seed=s.seed))


def test_missing_build_tools_are_one_line_and_leave_stores_working(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("EINET_CACHE", str(tmp_path))  # nothing cached: it must build
    monkeypatch.setenv("CXX", "no-such-compiler")
    monkeypatch.setenv("PATH", str(tmp_path))  # and no compiler on the PATH
    s = Session(NetworkConfig(scale=0.05, t_sim_ms=30.0))
    with caplog.at_level(logging.WARNING, logger="einet"):
        s.build()  # tries no compiler: the first store does
        assert accel.why_not() is None
        s.run()
        got = capture(s.network, seed=s.seed)
    said = [r.getMessage() for r in caplog.records if r.name == "einet"]
    assert said == ["connections are read through PyNEST: no C++ compiler found (install g++)"]
    assert sum(len(t.source) for t in got.synapses) > 0


def test_the_same_nest_in_another_folder_never_loads_the_first_folders_kernel(tmp_path: Path) -> None:
    """Two environments (two checkouts' venvs) with the same NEST wheel share one cache: each
    gets its own library, since a library finds nestkernel_api.so by its run path and one built
    for the other folder would load a second NEST kernel into the process (a crash at exit)."""
    real = library.installed()
    build.build(real)  # the first environment's library is cached
    site = tmp_path / "site"
    shutil.copytree(real.folder, site / "nest", symlinks=True)
    (site / "nest_simulator.libs").symlink_to(real.folder.parent / "nest_simulator.libs")
    child = f"""
import nest, pathlib
assert pathlib.Path(nest.__file__).parent == pathlib.Path({str(site / "nest")!r}), nest.__file__
from einet import NetworkConfig, Session, accel
s = Session(NetworkConfig(scale=0.05, t_sim_ms=30.0))
s.build(); s.run(); s.store({str(tmp_path / "s.h5")!r})
kernels = {{line.split()[-1] for line in open('/proc/self/maps') if line.rstrip().endswith('nestkernel_api.so')}}
print(sorted(kernels)); print(accel.why_not())
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), "CXX": "no-such-compiler", "PATH": str(tmp_path), "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    kernels, why_not = done.stdout.strip().splitlines()[-2:]
    assert kernels == repr([str(site / "nest" / "nestkernel_api.so")])
    assert why_not == "no C++ compiler found (install g++)"  # it tried to build its own, not to reuse the other's

"""einet on networks other than its reference one: user models written in plain PyNEST
(tests/models/), stored, restored and stored again, run in separate processes, and refused
when they hold what a snapshot cannot."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from einet import CannotStoreError, NetworkConfig, Session, Snapshot, SnapshotError
from einet.snapshot import open_snapshot
from einet.store import capture

from .conftest import TRACE_KEYS, assert_same_connections, einet_cli

MODELS = Path(__file__).resolve().parent / "models"
REFERENCE = "einet.models.brunel_stdp"

# name: (model, scale); every one of them spikes within a run
NETWORKS = {
    "reference": (REFERENCE, 0.05),
    "adaptive": (str(MODELS / "adaptive.py"), 1.0),
    "devices": (str(MODELS / "devices.py"), 1.0),
    "spatial_copy": (str(MODELS / "spatial_copy.py"), 1.0),
    "example_style": (str(MODELS / "example_style.py"), 1.0),
    "rate": (str(MODELS / "rate.py"), 1.0),
}
T_RUN_MS = 150.0


# -- the one comparison ------------------------------------------------------------------------
def _equal_values(a: Any, b: Any) -> bool:
    """Exact equality of JSON-like values: same types (an int is not a float), NaN equals NaN;
    lists, tuples and arrays compare element by element."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal_values(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple, np.ndarray)) and isinstance(b, (list, tuple, np.ndarray)):
        return len(a) == len(b) and all(_equal_values(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b):
        return True
    return type(a) is type(b) and a == b


def _assert_array(a: np.ndarray, b: np.ndarray, what: str) -> None:
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype, f"{what}: dtype {a.dtype} != {b.dtype}"
    assert a.shape == b.shape, f"{what}: shape {a.shape} != {b.shape}"
    np.testing.assert_array_equal(a, b, err_msg=what, strict=True)


def assert_same_contents(first: Snapshot, again: Snapshot) -> None:
    """Every stored array and value of ``again`` equals ``first`` exactly (synapse rows are
    compared sorted: connection order is not defined)."""
    assert [(r.model, r.first_id, r.count) for r in again.nodes] == [(r.model, r.first_id, r.count) for r in first.nodes]
    for r1, r2 in zip(first.nodes, again.nodes):
        where = f"node run {r1.model}@{r1.first_id}"
        assert _equal_values(r2.uniform, r1.uniform), f"{where}: uniform {r2.uniform} != {r1.uniform}"
        assert sorted(r2.columns) == sorted(r1.columns), f"{where}: columns"
        for key in r1.columns:
            _assert_array(r2.columns[key], r1.columns[key], f"{where} {key}")
        assert sorted(r2.ragged) == sorted(r1.ragged), f"{where}: ragged"
        for key, (values, offsets) in r1.ragged.items():
            _assert_array(r2.ragged[key][0], values, f"{where} {key} values")
            _assert_array(r2.ragged[key][1], offsets, f"{where} {key} offsets")
        assert _equal_values(r2.varying, r1.varying), f"{where}: varying"
        assert _equal_values(r2.spatial, r1.spatial), f"{where}: spatial {r2.spatial} != {r1.spatial}"
        assert (r1.positions is None) == (r2.positions is None), f"{where}: positions"
        if r1.positions is not None:
            _assert_array(r2.positions, r1.positions, f"{where} positions")
    assert [t.model for t in again.synapses] == [t.model for t in first.synapses]
    for t1, t2 in zip(first.synapses, again.synapses):
        assert len(t2) == len(t1), f"{t1.model}: {len(t2)} connections, not {len(t1)}"
        assert _equal_values({k: v for k, v in t2.uniform.items() if k not in TRACE_KEYS}, {k: v for k, v in t1.uniform.items() if k not in TRACE_KEYS}), f"{t1.model}: uniform {t2.uniform} != {t1.uniform}"
        assert sorted(t2.columns) == sorted(t1.columns), f"{t1.model}: columns"
        for key in t1.columns:
            assert t2.columns[key].dtype == t1.columns[key].dtype, f"{t1.model} {key}: dtype"
        assert (t2.source.dtype, t2.target.dtype) == (t1.source.dtype, t1.target.dtype), f"{t1.model}: id dtypes"
        assert_same_connections(t2, t1)
    assert list(again.groups) == list(first.groups)
    for name, ids in first.groups.items():
        _assert_array(again.groups[name], ids, f"group {name}")
    assert _equal_values(list(again.model_calls), list(first.model_calls))
    assert _equal_values(again.kernel, first.kernel), f"kernel {again.kernel} != {first.kernel}"
    assert again.kernel_set == first.kernel_set
    assert (again.seed, again.n_vp, again.model, again.scale, again.params) == (first.seed, first.n_vp, first.model, first.scale, first.params)


# -- what each model must have put into its snapshot (so the round trip is not vacuous) --------
def _varies(values: np.ndarray) -> bool:
    return len(np.unique(values)) > 1


def _check_reference(snap: Snapshot) -> None:
    assert snap.group_sizes() == {"E": 100, "I": 25}
    assert _varies(snap.synapse("e_syn").weight)  # STDP moved the weights
    assert snap.synapse_counts()["e_syn"] == 125 * 200


def _check_adaptive(snap: Snapshot) -> None:
    assert snap.group_sizes() == {"E": 160, "I": 40}
    (neurons,) = [r for r in snap.nodes if r.model == "aeif_cond_alpha"]
    assert {"V_m", "w", "a", "b"} <= set(neurons.columns)  # a, b differ between E and I
    stp = snap.synapse("tsodyks2_synapse")
    for key in ("U", "tau_rec", "tau_fac", "weight", "u", "x"):
        assert key in stp.columns and _varies(stp.columns[key]), key
    assert ((stp.columns["U"] >= 0.2) & (stp.columns["U"] <= 0.6)).all()
    e_ids = snap.groups["E"]
    assert np.isin(stp.source, e_ids).all() and np.isin(stp.target, e_ids).all()


def _check_devices(snap: Snapshot) -> None:
    assert snap.group_sizes() == {"parrot_neuron": 10, "iaf_psc_exp_multisynapse": 60, "iaf_psc_alpha": 60}
    assert snap.model_counts() == {"spike_generator": 1, "parrot_neuron": 10, "iaf_psc_exp_multisynapse": 60, "iaf_psc_alpha": 60, "dc_generator": 1, "poisson_generator": 1, "multimeter": 1}
    (sg,) = [r for r in snap.nodes if r.model == "spike_generator"]
    assert sg.uniform["spike_times"] == [2.0, 5.5, 10.0, 20.0, 33.3, 50.0, 75.2, 120.0]
    (multi,) = [r for r in snap.nodes if r.model == "iaf_psc_exp_multisynapse"]
    assert multi.uniform["tau_syn"] == [2.0, 8.0]
    (mm,) = [r for r in snap.nodes if r.model == "multimeter"]
    assert mm.uniform["record_from"] == ["V_m"] and mm.uniform["interval"] == 1.0
    (dc,) = [r for r in snap.nodes if r.model == "dc_generator"]
    assert (dc.uniform["amplitude"], dc.uniform["start"], dc.uniform["stop"]) == (120.0, 20.0, 150.0)
    static = snap.synapse("static_synapse")
    receptors = static.column("receptor_type")
    onto_multi = np.isin(static.target, snap.groups["iaf_psc_exp_multisynapse"])
    assert set(np.unique(receptors[onto_multi])) == {1.0, 2.0}
    assert set(np.unique(receptors[~onto_multi])) == {0.0}  # the multimeter's too: it was connected with 0
    stdp = snap.synapse("stdp_synapse")
    for key, lo, hi in (("tau_plus", 10.0, 30.0), ("delay", 0.5, 3.0)):
        col = stdp.columns[key]
        assert _varies(col) and col.min() >= lo and col.max() <= hi, key
    assert _varies(stdp.weight)


def _check_spatial_copy(snap: Snapshot) -> None:
    free, grid = snap.nodes[0], snap.nodes[1]
    assert (free.model, free.count, free.spatial["kind"]) == ("my_neuron", 120, "free")
    assert (grid.model, grid.count, grid.spatial["kind"], grid.spatial["shape"]) == ("my_neuron", 64, "grid", [8, 8])
    assert free.positions.shape == (120, 2) and ((free.positions >= 0) & (free.positions <= 1)).all()
    assert grid.positions.shape == (64, 2) and len(np.unique(grid.positions, axis=0)) == 64
    calls = {(c["op"], c["model"]) for c in snap.model_calls}
    assert calls == {("CopyModel", "my_neuron"), ("CopyModel", "local_syn"), ("SetDefaults", "local_syn")}
    local = snap.synapse("local_syn")
    assert _varies(local.weight) and local.uniform["delay"] == 1.5
    # distance-dependent: the connected pairs of the free layer are closer than random pairs
    free_pairs = np.isin(local.source, snap.groups["free"]) & np.isin(local.target, snap.groups["free"])
    pos = free.positions
    d = np.linalg.norm(pos[local.source[free_pairs] - free.first_id] - pos[local.target[free_pairs] - free.first_id], axis=1)
    all_d = np.linalg.norm(pos[:, None, :] - pos[None, :, :], axis=2)
    assert d.mean() < 0.8 * all_d.mean()


def _check_example_style(snap: Snapshot) -> None:
    assert snap.group_sizes() == {"E": 200, "I": 50}
    assert snap.model_counts()["spike_recorder"] == 1  # the script's own recorder is part of the network
    assert {c["model"] for c in snap.model_calls} == {"iaf_psc_delta", "excitatory", "inhibitory"}


def _check_rate(snap: Snapshot) -> None:
    """Rate connections (instantaneous, through waveform relaxation, and delayed) are stored;
    einet's multimeter of the rate neurons is not part of the network."""
    assert snap.synapse_counts() == {"rate_connection_instantaneous": 20, "rate_connection_delayed": 50}
    assert "multimeter" not in snap.model_counts() and snap.kernel["use_wfr"] is True
    assert np.unique(snap.node_values("rate", snap.groups["rates"])).size == 10, "each rate neuron's own rate"


CHECKS = {
    "reference": _check_reference,
    "adaptive": _check_adaptive,
    "devices": _check_devices,
    "spatial_copy": _check_spatial_copy,
    "example_style": _check_example_style,
    "rate": _check_rate,
}


# -- store → restore → store again ------------------------------------------------------------
@pytest.fixture(scope="module")
def stored_network(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, Snapshot]:
    """Each network built, run and stored once (shared by the tests below)."""
    name = request.param
    model, scale = NETWORKS[name]
    session = Session(NetworkConfig(model=model, scale=scale, threads=2, seed=12345, t_sim_ms=T_RUN_MS))
    session.build()
    result = session.run()
    assert result.n_spikes > 0, f"{name} did not spike"
    path = tmp_path_factory.mktemp(name) / f"{name}.h5"
    snap = session.store(path)
    assert path.is_file()
    assert snap.t_stored_ms == T_RUN_MS and snap.seed == 12345 and snap.n_vp == 2
    return name, path, snap


@pytest.mark.parametrize("stored_network", list(NETWORKS), indirect=True)
def test_store_restore_store_gives_equal_contents(stored_network: tuple[str, Path, Snapshot]) -> None:
    name, path, snap = stored_network
    CHECKS[name](snap)
    assert_same_contents(snap, open_snapshot(path))  # the file holds what was captured
    session = Session(NetworkConfig(t_sim_ms=100.0))
    session.restore(path)
    assert_same_contents(snap, capture(session.network, seed=session.seed))
    assert session.run(100.0).n_spikes > 0


@pytest.mark.parametrize("stored_network", ["spatial_copy"], indirect=True)
def test_comparison_sees_a_single_changed_value(stored_network: tuple[str, Path, Snapshot]) -> None:
    """The helper above is what the round trip rests on: it must notice any one difference."""
    _, _, snap = stored_network
    assert_same_contents(snap, dataclasses.replace(snap))

    def changed_array(a: np.ndarray, at: int = -1) -> np.ndarray:
        b = a.copy()
        b.flat[at] = np.nextafter(b.flat[at], np.inf) if b.dtype.kind == "f" else b.flat[at] + 1
        return b

    free, grid = snap.nodes[0], snap.nodes[1]
    local = snap.synapse("local_syn")
    i = snap.synapses.index(local)
    variants = {
        "V_m of one node": (dataclasses.replace(free, columns={**free.columns, "V_m": changed_array(free.columns["V_m"])}), 0),
        "one position": (dataclasses.replace(grid, positions=changed_array(grid.positions, 5)), 1),
        "a uniform value": (dataclasses.replace(free, uniform={**free.uniform, "tau_m": free.uniform["tau_m"] + 1e-9}), 0),
        "an int that became a float": (dataclasses.replace(grid, spatial={**grid.spatial, "dims": 2.0}), 1),
    }
    for what, (run, k) in variants.items():
        nodes = tuple(run if j == k else r for j, r in enumerate(snap.nodes))
        with pytest.raises(AssertionError):
            assert_same_contents(snap, dataclasses.replace(snap, nodes=nodes))
            pytest.fail(f"{what} went unnoticed")
    tables = {
        "one weight": dataclasses.replace(local, columns={**local.columns, "weight": changed_array(local.columns["weight"], 0)}),
        "one target": dataclasses.replace(local, target=changed_array(local.target, 3)),
        "a shared delay": dataclasses.replace(local, uniform={**local.uniform, "delay": 1.6}),
    }
    for what, table in tables.items():
        synapses = tuple(table if j == i else t for j, t in enumerate(snap.synapses))
        with pytest.raises(AssertionError):
            assert_same_contents(snap, dataclasses.replace(snap, synapses=synapses))
            pytest.fail(f"{what} went unnoticed")
    calls = [dict(c) for c in snap.model_calls]
    calls[0] = {**calls[0], "params": {**calls[0]["params"], "tau_m": 15.5}}
    others = {
        "a CopyModel parameter": dataclasses.replace(snap, model_calls=tuple(calls)),
        "a kernel value": dataclasses.replace(snap, kernel={**snap.kernel, "max_delay": 2.0}),
        "a group": dataclasses.replace(snap, groups={**snap.groups, "grid": snap.groups["grid"][:-1]}),
    }
    for what, other in others.items():
        with pytest.raises(AssertionError):
            assert_same_contents(snap, other)
            pytest.fail(f"{what} went unnoticed")


# example_style is the reference's kind of network again: its round trip above is enough
@pytest.mark.parametrize("stored_network", ["reference", "adaptive", "devices", "spatial_copy"], indirect=True)
def test_same_seed_same_spikes_in_separate_processes(stored_network: tuple[str, Path, Snapshot]) -> None:
    _name, path, _ = stored_network
    here = Session(NetworkConfig(t_sim_ms=100.0))
    here.restore(path)
    capture(here.network, seed=here.seed)  # reading the state out must not change it
    in_process = here.run(100.0)
    docs = [_cli_restore(path, *extra) for extra in ((), (), ("--seed", "987654321"))]
    assert docs[0]["spikes"] > 0 and (docs[0]["seed"], docs[0]["threads"]) == (12345, 2)
    assert docs[0]["digest"] == docs[1]["digest"] == in_process.digest
    assert docs[0]["spikes"] == in_process.n_spikes
    assert docs[2]["seed"] == 987654321 and docs[2]["digest"] != docs[0]["digest"]


_RESTORE_SNIPPET = """
import json, sys
from einet import NetworkConfig, Session
session = Session(NetworkConfig(t_sim_ms=float(sys.argv[2])))
session.restore(sys.argv[1], seed=int(sys.argv[3]) if len(sys.argv) > 3 else None)
r = session.run()
print(json.dumps({"digest": r.digest, "spikes": r.n_spikes, "seed": r.seed, "threads": r.threads}))
"""


def _cli_restore(path: Path, *extra: str) -> dict[str, Any]:
    """``einet restore PATH --t 100 --json`` in a fresh process; if the CLI is broken (it is
    being reworked), the same through Session in a fresh interpreter."""
    p = einet_cli("restore", str(path), "--t", "100", "--json", *extra)
    if p.returncode == 0:
        try:
            doc = json.loads(p.stdout)
        except json.JSONDecodeError:
            doc = {}
        if {"digest", "spikes", "seed", "threads"} <= set(doc):
            return doc
    args = [str(path), "100", *extra[1:]]
    q = subprocess.run([sys.executable, "-c", _RESTORE_SNIPPET, *args], capture_output=True, text=True, timeout=120)
    assert q.returncode == 0, f"CLI: {p.stderr.strip()}; Session: {q.stderr.strip()}"
    return json.loads(q.stdout)


# -- a script in NEST's example style: einet's threads and seed win, its prints stay quiet --------
_EXAMPLE_SNIPPET = """
import json, sys
from einet import NetworkConfig, Session
session = Session(NetworkConfig(model=sys.argv[1], threads=1, seed=4242, t_sim_ms=100.0))
session.build()
from einet.kernel import nest
n = nest()
kernel = {"threads": n.local_num_threads, "n_vp": n.total_num_virtual_procs, "seed": n.rng_seed}
result = session.run()
snap = session.store(sys.argv[2])
print(json.dumps({"kernel": kernel, "notes": session.network.notes, "spikes": result.n_spikes, "snap": [snap.seed, snap.n_vp, snap.kernel["resolution"]]}))
"""


def test_example_style_script_gets_einets_threads_and_seed_and_stays_quiet(tmp_path: Path) -> None:
    path = tmp_path / "example.h5"
    # as from a shell: einet sets PYNEST_QUIET in this process, and children would inherit it
    env = {k: v for k, v in os.environ.items() if k != "PYNEST_QUIET"}
    p = subprocess.run([sys.executable, "-c", _EXAMPLE_SNIPPET, str(MODELS / "example_style.py"), str(path)], capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) == 1, f"something else reached stdout: {p.stdout[:300]!r}"  # no banner, no prints
    doc = json.loads(lines[0])
    assert doc["kernel"] == {"threads": 1, "n_vp": 1, "seed": 4242}
    assert doc["snap"] == [4242, 1, 0.1]
    assert doc["spikes"] > 0
    assert any("local_num_threads = 4; einet keeps 1" in note for note in doc["notes"])
    assert any("rng_seed = 999; einet keeps 4242" in note for note in doc["notes"])
    for printed in ("building...", "connecting network", "N E S T"):
        assert printed not in p.stdout and printed not in p.stderr
    assert "einet: the model set rng_seed = 999; einet keeps 4242" in p.stderr  # einet says so, on stderr
    assert open_snapshot(path).seed == 4242


# -- refusals ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("structural_plasticity", "structural plasticity is enabled"),
        ("gap_junctions", "gap junctions (gap_junction) cannot be stored"),
    ],
)
def test_unstorable_network_is_refused_and_nothing_is_written(tmp_path: Path, function: str, message: str) -> None:
    session = Session(NetworkConfig(model=f"{MODELS / 'refused.py'}:{function}", threads=1, t_sim_ms=50.0))
    session.build()
    with pytest.raises(CannotStoreError, match=re.escape(message)):
        session.check_storable()  # known from what the network is made of, before it runs
    assert session.run().n_spikes > 0
    existing = tmp_path / "existing.h5"
    existing.write_bytes(b"an existing file einet must leave alone")
    before = existing.stat()
    for overwrite in (True, False):
        with pytest.raises(SnapshotError) as refused:
            session.store(existing, overwrite=overwrite)
        text = str(refused.value)
        assert message in text and "\n" not in text.strip()
        assert type(refused.value) is CannotStoreError  # refused for what it holds, not because the file exists
    with pytest.raises(SnapshotError, match=r"cannot be stored|structural plasticity"):
        session.store(tmp_path / "new.h5")
    assert existing.read_bytes() == b"an existing file einet must leave alone"
    assert (existing.stat().st_mtime_ns, existing.stat().st_ino) == (before.st_mtime_ns, before.st_ino)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing.h5"]  # no new or temporary file


def test_rate_populations_are_recorded_as_rates(tmp_path: Path) -> None:
    """A rate model sends no spikes: einet records its ``rate`` with a multimeter of its own,
    one PSTH row per population (the mean rate), and restores its rate connections."""
    session = Session(NetworkConfig(model=str(MODELS / "rate.py"), threads=1))
    session.build()
    result = session.run(100.0)
    assert [g.sends for g in result.groups] == ["rate", "rate", "spikes"]
    rates = result.group_rates_hz()
    assert 0.3 < rates["rates"] < 2.0 and 0.1 < rates["slow"] < 2.0, rates  # mu 1.0 / 0.5 with coupling
    assert rates["spiking"] > 5.0 and result.n_recorded == 10 and set(result.senders) <= set(range(16, 26))
    assert result.psth_hz.shape == (3, 10) and (result.psth_hz[0] != 0).all()
    session.store(tmp_path / "r.h5")
    session.restore(tmp_path / "r.h5")
    again = session.run(50.0)
    assert again.t_start_ms == 100.0 and (again.psth_hz[:2] != 0).all()

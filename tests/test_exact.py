"""Exact continuation (issue 25): with the hidden state NEST does not expose written back, a
restored network is the continued one, spike for spike and weight for weight."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from einet import NetworkConfig, Session
from einet.accel import AccelUnavailable
from einet.accel import state as state_module
from einet.accel.library import installed
from einet.accel.state import Hidden, StateLibrary, Stdp, read_hidden, state_library
from einet.kernel import nest, nest_output_to
from einet.snapshot import open_snapshot
from einet.snapshot.packed import PackedColumn

HERE = Path(__file__).resolve()


WEIGHT_SCALE = {
    "iaf_psc_alpha": 1.0,
    "iaf_psc_exp": 1.6,
    "iaf_psc_delta": 0.02,
    "iaf_cond_exp": 0.15,
    "iaf_cond_alpha": 0.06,
    "aeif_cond_exp": 0.5,
    "aeif_cond_alpha": 0.2,
    "hh_psc_alpha": 4.0,
    "izhikevich": 0.05,
    "aeif_psc_alpha": 12.0,
    "aeif_psc_exp": 24.0,
    "iaf_cond_beta": 0.06,
    "hh_cond_exp_traub": 0.005,
    "iaf_psc_exp_multisynapse": 1.6,
    "iaf_psc_alpha_multisynapse": 0.7,
}
"""Weights in each model's units (pA; mV for iaf_psc_delta; nS for the conductance models) that
keep the network firing steadily (tens of spikes/s to under two hundred)."""
GSL_MODELS = ["iaf_cond_exp", "iaf_cond_alpha", "aeif_cond_exp", "aeif_cond_alpha", "hh_psc_alpha", "aeif_psc_alpha", "aeif_psc_exp", "iaf_cond_beta", "hh_cond_exp_traub"]
"""Models NEST integrates with GSL's adaptive stepper: their step size carries over too."""


def alpha_network(
    nest: Any,
    scale: float = 1.0,
    model: str = "iaf_psc_alpha",
    rate: float = 9000.0,
    compressed: bool = True,
    noise_weight: float = 25.0,
    currents: bool = False,
    short_term: bool = False,
    stdp: str = "stdp_synapse",
    spike_train: bool = False,
) -> dict[str, Any]:
    """A small Brunel-style network of ``model``: Poisson drive, recurrent static and STDP
    synapses (multapses allowed), two delays (min_delay 1 ms: 50 ms runs end on whole
    communication intervals). For ``parrot_neuron``: 160 parrots repeating Poisson trains onto
    40 ``iaf_psc_alpha`` through STDP, which inhibit each other. With ``currents``: a
    ``dc_generator`` and a ``step_current_generator`` whose currents change before, at and
    after a store at 50 ms, onto some of the neurons. With ``short_term``: E → I through
    ``tsodyks2_synapse`` and I → E + I through ``tsodyks_synapse`` (short-term plasticity,
    whose last spike NEST keeps hidden), per-connection U. ``stdp``: the STDP model E → E
    copies (``stdp_pl_synapse_hom``: NEST's HPC benchmark's, its parameters there). With
    ``spike_train``: a ``spike_generator`` onto some neurons, its spikes just before, at and
    just after a store at 50 ms (one with a weight of its own), and later."""
    n_e, n_i = int(160 * scale), int(40 * scale)
    if not compressed:
        nest.use_compressed_spikes = False
    e_weight: dict[str, Any] = {"weight": nest.random.uniform(10.0 * WEIGHT_SCALE.get(model, 1.0), 30.0 * WEIGHT_SCALE.get(model, 1.0))}
    if stdp.startswith("stdp_pl_synapse_hom"):
        nest.CopyModel(stdp, "e_stdp", {"alpha": 0.0513, "lambda": 0.1, "mu": 0.4, "tau_plus": 15.0})
    elif stdp == "vogels_sprekeler_synapse":
        nest.CopyModel(stdp, "e_stdp", {"Wmax": 60.0 * WEIGHT_SCALE.get(model, 1.0), "tau": 20.0, "eta": 0.01})
    elif stdp == "tsodyks_synapse_hom":  # its weight is the model's
        nest.CopyModel(stdp, "e_stdp", {"weight": 60.0 * WEIGHT_SCALE.get(model, 1.0), "U": 0.4, "tau_rec": 200.0, "tau_fac": 50.0, "tau_psc": 2.0})
        e_weight = {}
    else:
        nest.CopyModel(stdp, "e_stdp", {"Wmax": 60.0 * WEIGHT_SCALE.get(model, 1.0), "tau_plus": 20.0})
    noise = nest.Create("poisson_generator", params={"rate": rate})
    if model == "parrot_neuron":
        e = nest.Create("parrot_neuron", n_e)
        i = nest.Create("iaf_psc_alpha", n_i, params={"V_m": nest.random.uniform(-70.0, -55.0)})
        nest.Connect(nest.Create("poisson_generator", params={"rate": 30.0}), e)
        nest.Connect(noise, i, syn_spec={"weight": 20.0, "delay": 1.0})
        nest.Connect(e, i, {"rule": "fixed_indegree", "indegree": 40}, {"synapse_model": "e_stdp", "weight": nest.random.uniform(10.0, 30.0), "delay": 1.5})
        nest.Connect(i, i, {"rule": "fixed_indegree", "indegree": 4}, {"weight": -80.0, "delay": 1.0})
        return {"E": e, "I": i}
    w = WEIGHT_SCALE[model]
    # a multisynapse model: noise, excitation and inhibition onto receptor ports of their own
    ports = model.endswith("_multisynapse")
    neuron = {"V_m": nest.random.uniform(-70.0, -55.0)} | ({"tau_syn": [2.0, 5.0, 1.0]} if ports else {})

    def port(k: int) -> dict[str, int]:
        return {"receptor_type": k} if ports else {}

    e = nest.Create(model, n_e, params=neuron)
    i = nest.Create(model, n_i, params=neuron)
    nest.Connect(noise, e + i, syn_spec={"weight": noise_weight * w, "delay": 1.0, **port(1)})
    nest.Connect(e, e, {"rule": "fixed_indegree", "indegree": 16}, {"synapse_model": "e_stdp", **e_weight, "delay": 1.5, **port(2)})
    if short_term:
        nest.Connect(e, i, {"rule": "fixed_indegree", "indegree": 16}, {"synapse_model": "tsodyks2_synapse", "weight": 60.0 * w, "delay": 2.0, "U": nest.random.uniform(0.2, 0.6), "tau_rec": 200.0, "tau_fac": 50.0})
        nest.Connect(i, e + i, {"rule": "fixed_indegree", "indegree": 4}, {"synapse_model": "tsodyks_synapse", "weight": -250.0 * w, "delay": 1.0, "U": nest.random.uniform(0.2, 0.6), "tau_psc": 2.0, "tau_rec": 300.0, "tau_fac": 20.0})
    else:
        nest.Connect(e, i, {"rule": "fixed_indegree", "indegree": 16}, {"weight": 20.0 * w, "delay": 2.0, **port(2)})
        nest.Connect(i, e + i, {"rule": "fixed_indegree", "indegree": 4}, {"weight": -80.0 * w, "delay": 1.0, **port(3)})
    if spike_train:
        train = nest.Create("spike_generator", params={"spike_times": [20.0, 49.8, 49.9, 50.0, 50.1, 50.2, 51.0, 63.3, 80.0], "spike_weights": [1.0, 1.0, 2.0, 1.0, 1.0, 3.0, 1.0, 1.0, 1.0]})
        nest.Connect(train, e[:100] + i[:20], syn_spec={"weight": 60.0 * w, "delay": 1.0})
    if currents:
        dc = nest.Create("dc_generator", params={"amplitude": 150.0 * w, "start": 30.0, "stop": 75.0})
        steps = nest.Create("step_current_generator", params={"amplitude_times": [10.0, 45.5, 50.0, 51.2, 80.0], "amplitude_values": [100.0 * w, -60.0 * w, 220.0 * w, 40.0 * w, 0.0]})
        nest.Connect(dc, e[:60], syn_spec={"delay": 1.5})
        nest.Connect(steps, e[40:120] + i[:20], syn_spec={"delay": 2.0})
    return {"E": e, "I": i}


def stdp_weights() -> np.ndarray:
    """Every STDP connection's (source, target, weight), sorted (a model whose weight is the
    model's, tsodyks_synapse_hom: its resources x instead)."""
    with nest_output_to():
        conns = nest().GetConnections(synapse_model="e_stdp")
        value = "x" if "x" in nest().GetDefaults("e_stdp") else "weight"
        got = conns.get(["source", "target", value])
    rows = np.column_stack([np.asarray(got["source"], float), np.asarray(got["target"], float), np.asarray(got[value], float)])
    return rows[np.lexsort(rows.T[::-1])]


def continued_and_restored(tmp_path: Path, threads: int, model: str = "iaf_psc_alpha", hidden: bool = True, t_ms: float = 50.0, **params: Any) -> tuple[Any, Any, np.ndarray, np.ndarray, Hidden]:
    """Build, run ``t_ms``, store (the hidden state read too, for the assertions); continue 50 ms
    (A). Restore the file (its hidden section written back, or without it), run 50 ms (B)."""
    s = Session(NetworkConfig(model=f"{HERE}:alpha_network", params={"model": model, **params}, threads=threads, seed=4321, t_sim_ms=50.0, store_workers=1))
    s.build()
    first = s.run(t_ms)
    assert len(first.senders) > 100, "the network is too quiet to test anything"
    state = read_hidden()
    s.store(tmp_path / "at50.h5")
    assert read_hidden().records.tobytes() == state.records.tobytes(), "storing changed the hidden state"
    a = s.run(50.0)
    weights_a = stdp_weights()
    if hidden:
        s.restore(tmp_path / "at50.h5")
        assert s.exact and s.hidden_note == "", s.hidden_note
    else:
        s.restore(dataclasses.replace(open_snapshot(tmp_path / "at50.h5"), hidden=None))
        assert not s.exact
    b = s.run(50.0)
    assert b.exact == hidden
    return a, b, weights_a, stdp_weights(), state


def plain_continued_digest(threads: int) -> str:
    """The digest of the plain alpha network's 50 ms after its first 50 (no currents, no
    trains): the control that shows what an option changes after a store."""
    plain = Session(NetworkConfig(model=f"{HERE}:alpha_network", threads=threads, seed=4321, t_sim_ms=50.0))
    plain.build()
    plain.run(50.0)
    return plain.run(50.0).digest


def first_divergence(a: Any, b: Any) -> float | None:
    """The first time at which the two runs' spikes differ (None: they do not)."""
    ta = sorted(zip(np.round(a.times, 4), a.senders))
    tb = sorted(zip(np.round(b.times, 4), b.senders))
    for x, y in zip(ta, tb):
        if x != y:
            return float(min(x[0], y[0]))
    return None if len(ta) == len(tb) else float(ta[len(tb)][0] if len(ta) > len(tb) else tb[len(ta)][0])


@pytest.fixture(scope="module", autouse=True)
def accessor() -> None:
    try:
        state_library()
    except AccelUnavailable as exc:
        pytest.skip(f"the hidden-state accessor cannot be built here: {exc}")


@pytest.mark.parametrize("model", ["iaf_psc_alpha", "iaf_psc_exp", "iaf_psc_delta", "parrot_neuron", "izhikevich", *GSL_MODELS, "iaf_psc_exp_multisynapse", "iaf_psc_alpha_multisynapse"])
@pytest.mark.parametrize("threads", [1, 2])
def test_restored_run_is_the_continued_run(tmp_path: Path, threads: int, model: str) -> None:
    """Same spikes (digest) and same STDP weights after 50 ms, spikes in transit included."""
    a, b, wa, wb, state = continued_and_restored(tmp_path, threads, model)
    assert 10.0 <= a.rate_hz <= 250.0, f"{a.rate_hz:.1f} spikes/s: the network is silent or saturated, not what the test is made for"
    assert state.stdp["e_stdp"].source.size > 0 and state.nodes.size == 200
    assert state.transit["source"].size > 0, "no spikes in transit at the store: the test would not test them"
    assert first_divergence(a, b) is None, f"first divergence at {first_divergence(a, b)} ms"
    assert a.digest == b.digest
    np.testing.assert_array_equal(wa, wb)


@pytest.mark.parametrize("threads", [1, 2])
def test_two_runs_inside_one_interval_continue_exactly(tmp_path: Path, threads: int) -> None:
    """Stored after two Simulate calls inside one communication interval (50.3 ms, then 0.3):
    each thread's spike register holds two passes over its neurons, which a restore puts back
    in their order."""
    s = Session(NetworkConfig(model=f"{HERE}:alpha_network", threads=threads, seed=4321, t_sim_ms=50.0, store_workers=1))
    s.build()
    s.run(50.3)
    s.run(0.3)
    state = read_hidden()
    source = state.transit["source"]
    assert any((np.diff(source[source % threads == vp]) < 0).any() for vp in range(threads)), "no second pass in a register: the test would not test it"
    s.store(tmp_path / "twice.h5")
    a = s.run(50.0)
    s.restore(tmp_path / "twice.h5")
    assert s.exact, s.hidden_note
    b = s.run(50.0)
    assert first_divergence(a, b) is None, f"first divergence at {first_divergence(a, b)} ms"
    assert a.digest == b.digest


@pytest.mark.parametrize("threads", [1, 2])
def test_current_generators_continue_exactly(tmp_path: Path, threads: int) -> None:
    """A dc_generator and a step_current_generator (their output a function of their
    parameters and the time; what they sent before the store waits in the neurons' current
    buffers) continue exactly, the store between two steps of the schedule."""
    a, b, wa, wb, _ = continued_and_restored(tmp_path, threads, currents=True)
    assert first_divergence(a, b) is None, f"first divergence at {first_divergence(a, b)} ms"
    assert a.digest == b.digest
    np.testing.assert_array_equal(wa, wb)
    # the currents change what happens after the store (else the test would test nothing)
    assert plain_continued_digest(threads) != a.digest


@pytest.mark.parametrize(("threads", "stdp"), [(1, "stdp_pl_synapse_hom"), (2, "stdp_pl_synapse_hom"), (2, "stdp_pl_synapse_hom_hpc")])
def test_the_hpc_benchmarks_power_law_stdp_continues_exactly(tmp_path: Path, threads: int, stdp: str) -> None:
    """stdp_pl_synapse_hom (and its _hpc variant, NEST's HPC benchmark's) keeps Kplus and
    t_lastspike as stdp_synapse does: same spikes and weights."""
    a, b, wa, wb, state = continued_and_restored(tmp_path, threads, stdp=stdp)
    assert 10.0 <= a.rate_hz <= 250.0, f"{a.rate_hz:.1f} spikes/s"
    assert state.stdp["e_stdp"].source.size > 0 and (state.stdp["e_stdp"].t_lastspike > 0).any()
    assert open_snapshot(tmp_path / "at50.h5").hidden.meta["uncovered"] == []  # type: ignore[union-attr]
    assert a.digest == b.digest
    np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(wa, stdp_weights_at_build(threads, stdp)), "the weights moved: else the test tests no plasticity"


def stdp_weights_at_build(threads: int, stdp: str) -> np.ndarray:
    s = Session(NetworkConfig(model=f"{HERE}:alpha_network", params={"stdp": stdp}, threads=threads, seed=4321))
    s.build()
    return stdp_weights()


@pytest.mark.parametrize("stdp", ["stdp_nn_pre_centered_synapse", "stdp_nn_symm_synapse", "stdp_nn_restr_synapse", "vogels_sprekeler_synapse", "tsodyks_synapse_hom"])
def test_other_plastic_models_continue_exactly(tmp_path: Path, stdp: str) -> None:
    """The other models whose connections' last spike (and Kplus) the accessor reads, E → E."""
    a, b, wa, wb, state = continued_and_restored(tmp_path, 2, stdp=stdp)
    assert 10.0 <= a.rate_hz <= 250.0, f"{a.rate_hz:.1f} spikes/s"
    assert (state.stdp["e_stdp"].t_lastspike > 0).any()
    assert open_snapshot(tmp_path / "at50.h5").hidden.meta["uncovered"] == []  # type: ignore[union-attr]
    assert a.digest == b.digest
    np.testing.assert_array_equal(wa, wb)


@pytest.mark.parametrize("threads", [1, 2])
def test_short_term_plastic_connections_continue_exactly(tmp_path: Path, threads: int) -> None:
    """tsodyks2_synapse and tsodyks_synapse keep each connection's last spike hidden (its u, x
    and y decay from it at the next spike): written back, the restored run is the continued
    one; with their last spikes at 0 (as a new connection has them) it departs."""
    a, b, wa, wb, _ = continued_and_restored(tmp_path, threads, short_term=True)
    assert 10.0 <= a.rate_hz <= 250.0, f"{a.rate_hz:.1f} spikes/s"
    snap = open_snapshot(tmp_path / "at50.h5")
    assert snap.hidden is not None and snap.hidden.meta["uncovered"] == []
    entries = {e["model"]: k for k, e in enumerate(snap.hidden.meta["stdp"])}
    assert {"tsodyks2_synapse", "tsodyks_synapse"} <= set(entries)
    for model in ("tsodyks2_synapse", "tsodyks_synapse"):
        k = entries[model]
        assert (snap.hidden.arrays[f"stdp/{k}/t_lastspike"] > 0).any() and (snap.hidden.arrays[f"stdp/{k}/kplus"] == 0).all(), model
    assert not any(line.startswith("tsodyks") for line in snap.not_stored), snap.not_stored
    assert first_divergence(a, b) is None, f"first divergence at {first_divergence(a, b)} ms"
    assert a.digest == b.digest
    np.testing.assert_array_equal(wa, wb)
    # their last spikes at 0, as a new connection has them, the rest of the section written
    arrays = dict(snap.hidden.arrays)
    for k in entries.values():
        if snap.hidden.meta["stdp"][k]["model"].startswith("tsodyks"):
            arrays[f"stdp/{k}/t_lastspike"] = np.zeros_like(arrays[f"stdp/{k}/t_lastspike"])
    control = Session(NetworkConfig(t_sim_ms=50.0))
    control.restore(dataclasses.replace(snap, hidden=dataclasses.replace(snap.hidden, arrays=arrays)))
    assert control.run(50.0).digest != a.digest, "their last spikes matter (else the test would test nothing)"


@pytest.mark.parametrize("threads", [1, 2])
def test_spike_trains_continue_exactly(tmp_path: Path, threads: int) -> None:
    """A spike_generator sends the spikes after the store and no earlier one again: it keeps
    nothing a run depends on (covered), so with one the restore is still exact."""
    a, b, wa, wb, _ = continued_and_restored(tmp_path, threads, spike_train=True)
    assert open_snapshot(tmp_path / "at50.h5").hidden.meta["uncovered"] == []  # type: ignore[union-attr]
    assert first_divergence(a, b) is None, f"first divergence at {first_divergence(a, b)} ms"
    assert a.digest == b.digest
    np.testing.assert_array_equal(wa, wb)
    assert plain_continued_digest(threads) != a.digest, "the train changes what happens after the store"


@pytest.mark.parametrize("t_ms", [50.0, 50.5])
def test_uncompressed_spikes_continue_exactly(tmp_path: Path, t_ms: float) -> None:
    """With use_compressed_spikes off, spikes in transit name each thread's connection."""
    a, b, wa, wb, state = continued_and_restored(tmp_path, 2, t_ms=t_ms, compressed=False)
    assert state.transit["source"].size > 0
    assert a.digest == b.digest
    np.testing.assert_array_equal(wa, wb)


RESTORE_ELSEWHERE = """
import json, sys
from einet import Session
s = Session()
s.restore(sys.argv[1])
r = s.run(50.0)
print(json.dumps({"digest": r.digest, "exact": r.exact, "note": s.hidden_note}))
"""


def restored_elsewhere(path: Path) -> dict[str, Any]:
    """The snapshot file restored by a fresh process, run 50 ms: nothing but the file carries
    the state over."""
    done = subprocess.run([sys.executable, "-c", RESTORE_ELSEWHERE, str(path)], capture_output=True, text=True, timeout=300, cwd=HERE.parents[1], env={**os.environ, "PYTHONPATH": str(HERE.parents[1])})
    assert done.returncode == 0, done.stderr[-2000:]
    return {**json.loads(done.stdout.splitlines()[-1]), "stderr": done.stderr}


def stored_and_continued(path: Path, threads: int) -> Any:
    s = Session(NetworkConfig(model=f"{HERE}:alpha_network", threads=threads, seed=4321, t_sim_ms=50.0, store_workers=1))
    s.build()
    s.run(50.0)
    s.store(path)
    return s.run(50.0)


@pytest.mark.parametrize("threads", [1, 2])
def test_the_file_restored_in_another_process_is_the_continued_run(tmp_path: Path, threads: int) -> None:
    """Session.store, continue (A); a fresh process restores the file and runs (B): A == B."""
    a = stored_and_continued(tmp_path / "at50.h5", threads)
    b = restored_elsewhere(tmp_path / "at50.h5")
    assert b["exact"] is True and b["note"] == ""
    assert b["digest"] == a.digest


@pytest.mark.parametrize("threads", [1, 2])
def test_a_background_stores_child_reads_the_hidden_state_and_it_continues_exactly(tmp_path: Path, threads: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pause of a background store reads no node record but the first of each model not
    yet checked in this process; its forked child reads the rest. The section is the one a
    store in this process takes at the same instant, and its file restores to the continued
    run."""
    s = Session(NetworkConfig(model=f"{HERE}:alpha_network", threads=threads, seed=4321, t_sim_ms=50.0, store_workers=1))
    s.build()
    s.run(50.0)
    monkeypatch.setattr(state_module, "_checked", set())
    read_here: list[int] = []
    real_read = StateLibrary.read_nodes

    def counted(self: StateLibrary, ids: np.ndarray) -> Any:
        read_here.append(len(ids))  # in this process only: the child's reads are its own
        return real_read(self, ids)

    monkeypatch.setattr(StateLibrary, "read_nodes", counted)
    handle = s.store(tmp_path / "bg.h5", background=True)
    in_pause = list(read_here)
    monkeypatch.setattr(StateLibrary, "read_nodes", real_read)
    s.store(tmp_path / "fg.h5")  # the same instant: the simulation has not moved on
    a = s.run(50.0)
    handle.wait(120)
    assert len(in_pause) == 1 and 1 <= in_pause[0] <= 2, f"the pause read node records {in_pause} (one per model at most)"
    fg, bg = open_snapshot(tmp_path / "fg.h5").hidden, open_snapshot(tmp_path / "bg.h5").hidden
    assert fg is not None and bg is not None
    assert bg.meta == fg.meta and len(bg.arrays["nodes/id"]) == 200
    assert bg.arrays.keys() == fg.arrays.keys()
    for key in fg.arrays:
        np.testing.assert_array_equal(bg.arrays[key], fg.arrays[key], err_msg=key)
    s.restore(tmp_path / "bg.h5")
    assert s.exact and s.hidden_note == "", s.hidden_note
    b = s.run(50.0)
    assert b.digest == a.digest and b.exact


def test_the_cli_store_and_restore_continue_exactly(tmp_path: Path) -> None:
    """``einet run --store`` and ``einet restore`` (fresh processes): the restored run is the
    continued run, and its JSON and its printed summary say so."""
    from .conftest import einet_cli

    common = ("--model", f"{HERE}:alpha_network", "--threads", "2", "--seed", "4321", "--t", "50", "--json")
    done = einet_cli("run", *common, "--store", str(tmp_path / "cli.h5"))
    assert done.returncode == 0, done.stderr[-2000:]
    s = Session(NetworkConfig(model=f"{HERE}:alpha_network", threads=2, seed=4321, t_sim_ms=50.0, store_workers=1))
    s.build()
    s.run(50.0)
    a = s.run(50.0)
    done = einet_cli("restore", str(tmp_path / "cli.h5"), "--t", "50", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    b = json.loads(done.stdout)
    assert b["exact"] is True and b["digest"] == a.digest
    assert "hidden state" not in done.stderr
    done = einet_cli("restore", str(tmp_path / "cli.h5"), "--t", "50")
    assert done.returncode == 0 and "exact: the continued run of the snapshot's, bit for bit" in done.stdout, done.stdout + done.stderr[-2000:]


def test_another_nest_binary_turns_the_hidden_section_off(tmp_path: Path) -> None:
    """A file whose recorded NEST binary is another (its hash edited, checksums made right
    again): restored as without the section, with a one-line note, not exact."""
    import h5py

    from .mutations import _fix_checksums, _manifest

    a = stored_and_continued(tmp_path / "at50.h5", 1)
    other = tmp_path / "other.h5"
    shutil.copyfile(tmp_path / "at50.h5", other)
    with h5py.File(other, "r+") as h5:
        _manifest(lambda m, _: m["hidden"].__setitem__("nest_binary", "0" * 64))(h5)
        _fix_checksums(h5)
    b = restored_elsewhere(other)
    assert b["exact"] is False
    assert b["note"].startswith("hidden state not restored: NEST binary differs") and "\n" not in b["note"]
    assert "hidden state not restored: NEST binary differs" in b["stderr"]  # logged (the CLI prefixes "einet: ")
    assert b["digest"] != a.digest  # today's restore: it departs at once (the control below)


@pytest.mark.parametrize("threads", [1, 2])
def test_stdp_rows_are_written_in_connect_order_and_later_writes_check_a_sample(tmp_path: Path, threads: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The section's STDP rows are the synapse table's (t_lastspike read with each connection):
    a restore writes them in the order it connected them, matching no pairs; the first write
    in the process reads the node records back whole (the STDP rows, each matched to its
    connection as it was written, in a sample), a later one a sample of both."""
    a = stored_and_continued(tmp_path / "at50.h5", threads)
    snap = open_snapshot(tmp_path / "at50.h5")
    assert snap.hidden is not None
    (table,) = [t for t in snap.synapses if t.model == "e_stdp"]
    (entry,) = snap.hidden.meta["stdp"]
    assert entry["model"] == "e_stdp" and entry["count"] == len(table) and 0 < entry["runs"] < len(table)
    assert np.isfinite(snap.hidden.arrays["stdp/0/t_lastspike"]).all() and (snap.hidden.arrays["stdp/0/t_lastspike"] > 0).any()
    lib = state_library()
    monkeypatch.setattr(lib, "write_stdp", lambda *_: pytest.fail("matched by pairs: the connections were not in the stored order"))
    given: list[Stdp] = []
    monkeypatch.setattr(lib, "write_stdp_ordered", lambda model, rows, _f=lib.write_stdp_ordered: (given.append(rows), _f(model, rows))[1])
    monkeypatch.setattr(state_module, "_verified", set())
    whole, sampled = [], []
    monkeypatch.setattr(state_module, "_verify", lambda *x, _f=state_module._verify, **k: (whole.append(k["stdp"]), _f(*x, **k))[1])
    monkeypatch.setattr(state_module, "_verify_sample", lambda *x, _f=state_module._verify_sample: (sampled.append(1), _f(*x))[1])
    s = Session()
    s.restore(tmp_path / "at50.h5")
    s2 = Session()
    s2.restore(tmp_path / "at50.h5")
    assert (whole, len(sampled)) == ([False], 1)
    assert s2.exact and s2.run(50.0).digest == a.digest
    # the rows as stored, values by run: no copy of the table's columns, nothing expanded
    assert len(given) == 2 and all(g.runs is not None and len(g.kplus) == entry["runs"] and g.source.dtype == np.int32 for g in given)


@pytest.mark.parametrize("threads", [1, 2])
def test_a_restore_a_few_rows_at_a_time_is_the_continued_run(tmp_path: Path, threads: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A table read from a file stays deflated: the restore inflates a block of rows at a time
    to connect them and to write the section's STDP rows, each block's rows going on from
    where the last block's connections ended on each thread. In blocks of 997 rows it is the
    continued run, matched in connect order."""
    import einet.network as network_module
    import einet.snapshot.packed as packed_module

    a = stored_and_continued(tmp_path / "at50.h5", threads)
    snap = open_snapshot(tmp_path / "at50.h5")
    (table,) = [t for t in snap.synapses if t.model == "e_stdp"]
    assert isinstance(table.source, PackedColumn) and isinstance(table.columns["weight"], PackedColumn)
    assert len(table) > 2 * 997 and table.source.packed_bytes < table.source.nbytes
    # the reader found each column's range: a restore asks for the ids' range without a pass
    assert table.source.extremes == (np.asarray(table.source).min(), np.asarray(table.source).max())
    for module in (network_module, state_module, packed_module):
        monkeypatch.setattr(module, "BLOCK_ROWS", 997)
    lib = state_library()
    monkeypatch.setattr(lib, "write_stdp", lambda *_: pytest.fail("matched by pairs: a block did not go on where the last one ended"))
    connects: list[int] = []
    real_connect = StateLibrary.connect
    monkeypatch.setattr(StateLibrary, "connect", lambda self, model, source, *rest: (connects.append(len(source)) if model == "e_stdp" else None, real_connect(self, model, source, *rest))[1])
    s = Session()
    s.restore(tmp_path / "at50.h5")
    assert connects == [997, 997, len(table) - 2 * 997]
    assert s.exact and s.hidden_note == ""
    assert s.run(50.0).digest == a.digest


def test_stdp_rows_by_run_cut_into_blocks_are_the_rows_by_run() -> None:
    """A block of rows whose values are by run takes the runs it overlaps, cut to it."""
    rows = Stdp(np.arange(1, 11, dtype=np.int32), np.arange(11, 21, dtype=np.int32), np.array([1.0, 2.0, 3.0]), np.array([10.0, 20.0, 30.0]), runs=np.array([0, 4, 5, 10]))
    expanded = rows.rows(np.arange(10))
    for lo, hi in [(0, 10), (0, 4), (3, 8), (4, 5), (5, 10), (9, 10), (2, 3), (10, 10)]:
        b = rows.block(lo, hi)
        assert b.runs is not None and b.runs[0] == 0 and b.runs[-1] == hi - lo and len(b.kplus) == len(b.runs) - 1
        assert np.array_equal(b.rows(np.arange(hi - lo)).kplus, expanded.kplus[lo:hi]) and np.array_equal(b.source, rows.source[lo:hi])
    assert np.array_equal(rows.written(), np.ones(10, dtype=bool))


def test_stdp_rows_by_run_read_as_their_expansion() -> None:
    """A section's rows keep their values by run (as stored): which rows are written, and their
    values, are those of the expanded rows; a source without a node record is not written."""
    source = np.array([1, 1, 2, 5, 3, 9], dtype=np.int32)
    covered = np.zeros(6, dtype=bool)
    covered[[1, 2, 3]] = True  # 5: no record; 9: beyond every record
    s = Stdp(source, source + 10, np.array([1.0, np.nan, 3.0]), np.array([10.0, 20.0, 30.0]), runs=np.array([0, 2, 3, 6]), covered=covered)
    assert s.written().tolist() == [True, True, False, False, True, False]
    rows = s.rows(np.arange(6))
    np.testing.assert_array_equal(rows.kplus, [1.0, 1.0, np.nan, np.nan, 3.0, np.nan])
    np.testing.assert_array_equal(rows.t_lastspike, [10.0, 10.0, 20.0, np.nan, 30.0, np.nan])
    assert rows.runs is None and rows.covered is None and rows.target.tolist() == [11, 11, 12, 15, 13, 19]


def test_stdp_rows_out_of_connect_order_are_matched_by_pairs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Should the connections not be in the stored rows' order (here: the ordered writer
    says so), the rows are matched by source and target, and the run is still the continued one."""
    a = stored_and_continued(tmp_path / "at50.h5", 2)
    lib = state_library()
    monkeypatch.setattr(lib, "write_stdp_ordered", lambda *_: False)
    s = Session()
    s.restore(tmp_path / "at50.h5")
    assert s.exact and s.run(50.0).digest == a.digest


def test_the_sampled_read_back_catches_a_wrong_stdp_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A later write's sampled check still reads STDP values back: a writer that sets other
    values than stored is caught, and the restore is rebuilt without the section."""
    stored_and_continued(tmp_path / "at50.h5", 1)
    lib = state_library()
    real = lib.write_stdp_ordered
    monkeypatch.setattr(lib, "write_stdp_ordered", lambda model, s: real(model, dataclasses.replace(s, t_lastspike=s.t_lastspike + 0.1)))
    monkeypatch.setattr(state_module, "_verified", {"iaf_psc_alpha", "e_stdp connections"})
    s = Session()
    s.restore(tmp_path / "at50.h5")
    assert not s.exact and s.hidden_note == "hidden state not restored: the hidden state did not read back as written: STDP connections"


def test_another_seed_restores_all_but_the_generators(tmp_path: Path) -> None:
    """``--seed N`` asks for another stream: the rest of the hidden state is still written."""
    stored_and_continued(tmp_path / "at50.h5", 1)
    s = Session()
    s.restore(tmp_path / "at50.h5", seed=99)
    assert not s.exact and "random generators" in s.hidden_note
    assert not s.run(10.0).exact


def test_without_the_accessor_the_restore_is_todays_with_a_note(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stored_and_continued(tmp_path / "at50.h5", 1)
    monkeypatch.setenv("EINET_ACCEL", "0")
    s = Session()
    s.restore(tmp_path / "at50.h5")
    assert not s.exact and s.hidden_note.startswith("hidden state not restored: the accessor is not available")


def test_a_hidden_write_that_fails_part_way_is_undone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that fails once begun (node records written, then a refusal) leaves no mixed
    network: it is rebuilt without the section, as today's restore, with the note."""
    from einet.store import hidden as store_hidden

    stored_and_continued(tmp_path / "at50.h5", 1)
    s = Session()
    s.restore(dataclasses.replace(open_snapshot(tmp_path / "at50.h5"), hidden=None))
    todays = s.run(20.0).digest

    def fails(hidden: Hidden, **_: Any) -> None:
        state_library().write_nodes(hidden.nodes, hidden.offsets, hidden.records)
        raise AccelUnavailable("connection 1 -> 2 has no stored state")

    monkeypatch.setattr(store_hidden, "write_hidden", fails)
    s.restore(tmp_path / "at50.h5")
    assert not s.exact and s.hidden_note == "hidden state not restored: connection 1 -> 2 has no stored state"
    assert s.run(20.0).digest == todays


def test_a_store_without_the_accessor_names_what_it_lacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """EINET_ACCEL=0: no hidden section (today's snapshot), the general lines in not_stored."""
    from einet.snapshot import GENERAL_NOT_STORED, inspect_snapshot

    monkeypatch.setenv("EINET_ACCEL", "0")
    s = Session(NetworkConfig(model=f"{HERE}:alpha_network", threads=1, seed=4321, t_sim_ms=10.0, store_workers=1))
    s.build()
    s.run(10.0)
    snap = s.store(tmp_path / "plain.h5")
    assert snap is not None and snap.hidden is None
    info = inspect_snapshot(tmp_path / "plain.h5").to_dict()
    assert info["hidden"] is None and set(GENERAL_NOT_STORED) <= set(info["not_stored"])


def test_a_model_without_an_accessor_is_named_and_the_rest_is_stored(tmp_path: Path) -> None:
    """mat2_psc_exp has no accessor: the section holds the rest, not_stored names it, and a
    restore writes what there is but is not exact."""
    from einet.snapshot import inspect_snapshot

    s = Session(NetworkConfig(model=f"{HERE}:mixed_network", threads=1, seed=4321, t_sim_ms=20.0, store_workers=1))
    s.build()
    s.run(20.0)
    snap = s.store(tmp_path / "mixed.h5")
    assert snap is not None and snap.hidden is not None
    assert snap.hidden.meta["uncovered"] == ["mat2_psc_exp"]
    info = inspect_snapshot(tmp_path / "mixed.h5").to_dict()
    assert any(line.startswith("the hidden state of mat2_psc_exp") for line in info["not_stored"])
    assert info["hidden"]["uncovered"] == ["mat2_psc_exp"]
    s.restore(tmp_path / "mixed.h5")
    assert not s.exact and "mat2_psc_exp" in s.hidden_note


@pytest.mark.parametrize("model", GSL_MODELS)
def test_a_covered_gsl_model_is_stored_and_not_named(tmp_path: Path, model: str) -> None:
    """A GSL model with an accessor: its records are in the section (the state vector as NEST's
    status has it, then a positive integration step), and neither the section nor `einet
    inspect`'s not_stored names it."""
    from einet.snapshot import inspect_snapshot

    s = Session(NetworkConfig(model=f"{HERE}:alpha_network", params={"model": model}, threads=1, seed=4321, t_sim_ms=20.0, store_workers=1))
    s.build()
    s.run(20.0)
    snap = s.store(tmp_path / "gsl.h5")
    assert snap is not None and snap.hidden is not None
    assert snap.hidden.meta["uncovered"] == [] and snap.hidden.meta["node_models"] == {model: 200}
    info = inspect_snapshot(tmp_path / "gsl.h5").to_dict()
    assert not any(model in line for line in info["not_stored"]), info["not_stored"]
    hidden = read_hidden()
    n_core = int(hidden.records[1])
    steps = np.array([hidden.record(int(k))[5 + n_core - 3] for k in hidden.nodes])
    assert (steps > 0).all() and np.isfinite(steps).all()


def gsl_network(nest: Any, scale: float = 1.0, model: str = "iaf_cond_exp") -> dict[str, Any]:
    """The alpha network of a GSL model, half its excitatory neurons driven by a direct current
    as well (so that the input current read at the end of one step for the next, I_stim_, and
    the current buffer carry something)."""
    pops = alpha_network(nest, scale, model)
    nest.Connect(nest.Create("dc_generator", params={"amplitude": 150.0}), pops["E"][: len(pops["E"]) // 2])
    return pops


@pytest.mark.parametrize("model", GSL_MODELS)
def test_a_gsl_models_state_is_the_continued_state(tmp_path: Path, model: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """1 ms after the restore every node record is the continued run's, byte for byte (the
    spikes alone may not show a missing part: these neurons forget a step's last bits within
    tens of ms). The controls: the same restore with the adaptive integration steps reset to
    the resolution (as a new node has them), or the next step's input current zeroed, is not."""
    s = Session(NetworkConfig(model=f"{HERE}:gsl_network", params={"model": model}, threads=1, seed=4321, t_sim_ms=50.0, store_workers=1))
    s.build()
    s.run(50.0)
    stored = read_hidden()
    n_core = int(stored.records[1])
    starts = stored.offsets[:-1] + 5
    assert (stored.records[starts + n_core - 3] < 0.1).any(), "no step below the resolution: resetting it would change nothing"
    assert (stored.records[starts + n_core - 2] != 0.0).any(), "no input current to carry over"
    s.store(tmp_path / "at50.h5")
    s.run(1.0)
    continued = read_hidden().records

    def restored(at: int | None = None, value: float = 0.0) -> np.ndarray:
        lib = state_library()
        real = lib.write_nodes
        if at is not None:

            def changed(ids: np.ndarray, offsets: np.ndarray, records: np.ndarray) -> int:
                records = records.copy()
                records[offsets[:-1] + 5 + at] = value
                return real(ids, offsets, records)

            monkeypatch.setattr(lib, "write_nodes", changed)
            monkeypatch.setattr(state_module, "_verify", lambda *_: None)
            monkeypatch.setattr(state_module, "_verify_sample", lambda *_: None)
        s.restore(tmp_path / "at50.h5")
        s.run(1.0)
        monkeypatch.undo()
        return read_hidden().records

    assert restored().tobytes() == continued.tobytes()
    assert restored(n_core - 3, 0.1).tobytes() != continued.tobytes()
    assert restored(n_core - 2, 0.0).tobytes() != continued.tobytes()


def test_a_gsl_integration_step_that_does_not_advance_is_refused(tmp_path: Path) -> None:
    """A stored integration step of 0 would have NEST loop in the step for good: the file's
    check refuses it before the writer sees it, and the writer refuses it too."""
    import h5py

    from einet.snapshot import SnapshotError

    from .mutations import _fix_checksums

    s = Session(NetworkConfig(model=f"{HERE}:alpha_network", params={"model": "iaf_cond_exp"}, threads=1, seed=4321, t_sim_ms=10.0, store_workers=1))
    s.build()
    s.run(10.0)
    s.store(tmp_path / "gsl.h5")
    hidden = read_hidden()
    n_core = int(hidden.records[1])
    bad = tmp_path / "bad.h5"
    shutil.copyfile(tmp_path / "gsl.h5", bad)
    with h5py.File(bad, "r+") as h5:
        records = h5["hidden/nodes/records"][...]
        records[5 + n_core - 3] = 0.0
        h5["hidden/nodes/records"][...] = records
        _fix_checksums(h5)
    with pytest.raises(SnapshotError, match="integration step"):
        open_snapshot(bad)
    records = hidden.records.copy()
    records[5 + n_core - 3] = 0.0
    with pytest.raises(AccelUnavailable, match="integration step is not a positive number"):
        state_library().write_nodes(hidden.nodes, hidden.offsets, records)


def mixed_network(nest: Any, scale: float = 1.0) -> dict[str, Any]:
    """The alpha network beside a few mat2_psc_exp (a model without an accessor)."""
    pops = alpha_network(nest, scale)
    c = nest.Create("mat2_psc_exp", 10)
    nest.Connect(pops["E"], c, {"rule": "fixed_indegree", "indegree": 10}, {"weight": 2.0, "delay": 1.0})
    return {**pops, "C": c}


def test_a_poisson_generator_with_a_large_mean_continues_exactly(tmp_path: Path) -> None:
    """At 12 or more spikes per step libstdc++'s Poisson draw caches a normal deviate in the
    generator (its own state, beside the random generator's): carried over too."""
    a, b, wa, wb, state = continued_and_restored(tmp_path, 1, rate=150000.0, noise_weight=1.5)
    assert "poisson" not in state.devices and state.devices.count("\n") == 1
    assert first_divergence(a, b) is None, f"first divergence at {first_divergence(a, b)} ms"
    np.testing.assert_array_equal(wa, wb)


def test_without_the_hidden_state_the_restored_run_departs_at_once(tmp_path: Path) -> None:
    """The control: today's restore (no hidden state) differs from the first steps on."""
    a, b, *_ = continued_and_restored(tmp_path, 1, hidden=False)
    assert a.digest != b.digest
    assert first_divergence(a, b) is not None and first_divergence(a, b) < 51.0


@pytest.mark.parametrize("threads", [1, 2])
def test_a_store_inside_a_communication_interval_continues_exactly(tmp_path: Path, threads: int) -> None:
    """Stored 0.5 ms into an interval (min_delay 1 ms): the spikes emitted since its beginning
    wait in NEST's spike registers, and are carried over too."""
    a, b, wa, wb, state = continued_and_restored(tmp_path, threads, t_ms=50.5)
    assert state.transit["source"].size > 0
    assert first_divergence(a, b) is None, f"first divergence at {first_divergence(a, b)} ms"
    assert a.digest == b.digest
    np.testing.assert_array_equal(wa, wb)


def test_the_accessor_loads_only_for_the_nest_it_was_built_for() -> None:
    """Another nestkernel_api.so (here: its hash changed) turns the accessor off."""
    lib = state_library()
    other = dataclasses.replace(installed(), digest="0" * 64)
    with pytest.raises(AccelUnavailable, match="built for another NEST"):
        StateLibrary(lib.path, other)


def test_einet_accel_0_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EINET_ACCEL", "0")
    with pytest.raises(AccelUnavailable, match="EINET_ACCEL=0"):
        state_library()


def test_a_misread_layout_is_caught_by_the_status_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first read of each model is compared with NEST's status: a record read at the wrong
    place fails the check."""
    s = Session(NetworkConfig(model=f"{HERE}:alpha_network", threads=1, t_sim_ms=10.0))
    s.build()
    s.run(10.0)
    monkeypatch.setattr(state_module, "_checked", set())
    monkeypatch.setitem(state_module._V_M_AT, 1, 4)  # I_in where V_m is
    with pytest.raises(AccelUnavailable, match="disagrees with NEST's status"):
        read_hidden()


def test_a_misread_gsl_layout_is_caught_by_the_status_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """A GSL model's state vector is checked against NEST's status key by key (here: w read
    where g_ex is)."""
    s = Session(NetworkConfig(model=f"{HERE}:alpha_network", params={"model": "aeif_cond_exp"}, threads=1, t_sim_ms=10.0))
    s.build()
    s.run(10.0)
    monkeypatch.setattr(state_module, "_checked", set())
    read_hidden()  # the right layout passes
    monkeypatch.setattr(state_module, "_checked", set())
    monkeypatch.setitem(state_module._STATUS_AT, 7, {**state_module._STATUS_AT[7], "w": 1})
    with pytest.raises(AccelUnavailable, match="disagrees with NEST's status"):
        read_hidden()


DEVICE_STDP = """
def build(nest, scale=1.0):
    n = nest.Create("iaf_psc_alpha", 20, params={"I_e": 400.0})
    nest.CopyModel("stdp_synapse", "from_devices")
    nest.CopyModel("stdp_synapse", "from_injectors")
    dilutor = nest.Create("spike_dilutor", params={"p_copy": 0.5})  # a device (no proxies; one thread only)
    nest.Connect(nest.Create("poisson_generator", params={"rate": 800.0}), dilutor)
    nest.Connect(dilutor, n, syn_spec={"synapse_model": "from_devices", "weight": 50.0})
    nest.Connect(n, n, {"rule": "fixed_indegree", "indegree": 4}, {"synapse_model": "from_devices", "weight": 5.0})
    injector = nest.Create("spike_train_injector", params={"spike_times": [1.0, 3.0, 7.0, 12.0, 40.0]})
    nest.Connect(injector, n, syn_spec={"synapse_model": "from_injectors", "weight": 50.0})
"""


def stdp_rows(model: str) -> np.ndarray:
    """Every connection of the model as (source, target, Kplus's bits), sorted."""
    with nest_output_to():
        got = nest().GetConnections(synapse_model=model).get(["source", "target", "Kplus"])
    rows = np.column_stack([np.asarray(got["source"]), np.asarray(got["target"]), np.asarray(got["Kplus"], dtype=np.float64).view(np.int64)])
    return rows[np.lexsort(rows.T[::-1])]


@pytest.mark.parametrize("threads", [2, 1], ids=["section written", "section not written (other threads)"])
def test_with_a_hidden_section_the_traces_set_after_the_connect_wait_for_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, threads: int) -> None:
    """The Kplus the accessor sets after its connects is deferred while a hidden section may
    set it exactly: written once, by the section (the continued run, bit for bit), or after
    it where the section is not written (as a restore without the accessor writes it)."""
    monkeypatch.setattr(state_module, "_loaded", None)  # loaded afresh: an earlier test may have turned it off
    monkeypatch.setattr(state_module, "_refused", None)
    c = Session(NetworkConfig(scale=0.1, threads=2, t_sim_ms=100.0))
    c.build()
    c.run(100.0)
    snap = c.store(tmp_path / "a.h5")
    assert snap is not None and snap.hidden is not None
    continued = c.run(50.0)
    written: list[str] = []
    real = state_module.StateLibrary.write_stdp_ordered
    monkeypatch.setattr(state_module.StateLibrary, "write_stdp_ordered", lambda self, model, rows: (written.append(model), real(self, model, rows))[1])
    s = Session(NetworkConfig(t_sim_ms=100.0))
    s.restore(tmp_path / "a.h5", threads=threads)
    assert written == ["e_syn"], "one write of the traces: the section's, or the deferred one"
    assert s.exact == (threads == 2) and state_module._kplus_deferred == {}
    by_accessor = stdp_rows("e_syn")
    a = s.run(50.0)
    assert a.n_spikes > 0
    if threads == 2:
        assert a.digest == continued.digest, "the section's exact traces: the continued run"
        return
    with monkeypatch.context() as m:
        m.setenv("EINET_ACCEL", "0")
        s.restore(tmp_path / "a.h5", threads=threads)
        assert np.array_equal(stdp_rows("e_syn"), by_accessor)
        assert s.run(50.0).digest == a.digest


@pytest.mark.parametrize("t_ms", [0.0, 100.0], ids=["stored at 0 ms", "stored at 100 ms"])
@pytest.mark.parametrize("network", ["reference", "devices"])
def test_a_restore_by_the_accessor_makes_the_network_nests_connect_makes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, network: str, t_ms: float) -> None:
    """Without a hidden section, a restore whose tables the accessor connects (every row
    between neurons: a spike_train_injector is one; its threads connect at once once the
    clock has moved, else one) and whose STDP Kplus it sets makes the network NEST's array
    Connect makes: the same Kplus bit for bit, the same spikes after. A table with a device's
    rows goes through NEST's Connect."""
    import einet.network as network_module

    if network == "reference":
        config, models, by_it = NetworkConfig(scale=0.1, threads=2, t_sim_ms=100.0), ["e_syn"], ["e_syn", "i_syn"]
        # in blocks: each goes on where the last one's connections ended
        monkeypatch.setattr(network_module, "BLOCK_ROWS", 997)
        monkeypatch.setattr(state_module, "BLOCK_ROWS", 997)
    else:
        (tmp_path / "dev.py").write_text(DEVICE_STDP)
        config, models, by_it = NetworkConfig(model=str(tmp_path / "dev.py"), threads=1, t_sim_ms=100.0), ["from_devices", "from_injectors"], ["from_injectors"]
    s = Session(config)
    s.build()
    if t_ms:
        s.run(t_ms)
    with monkeypatch.context() as m:
        m.setenv("EINET_ACCEL", "0")  # no hidden section: what a restore gives is its own
        snap = s.store(tmp_path / "a.h5")
    assert snap is not None and snap.hidden is None
    connected: list[str] = []
    kplus_set: list[str] = []
    real_connect, real_kplus = StateLibrary.connect, network_module.write_connected_kplus
    monkeypatch.setattr(StateLibrary, "connect", lambda self, model, *a: (connected.append(model), real_connect(self, model, *a))[1])
    monkeypatch.setattr(network_module, "write_connected_kplus", lambda model, *a, **kw: (kplus_set.append(model), real_kplus(model, *a, **kw))[1])
    s.restore(tmp_path / "a.h5")
    by_accessor = [stdp_rows(m) for m in models]
    a = s.run(50.0)
    assert list(dict.fromkeys(connected)) == by_it and kplus_set == [m for m in by_it if m in models]
    assert len(connected) > len(by_it) if network == "reference" else len(connected) == len(by_it)
    through_it = len(connected)
    if t_ms:
        assert all((rows[:, 2] != np.float64(0.0).view(np.int64)).any() for rows in by_accessor), "some traces are not zero"
    with monkeypatch.context() as m:
        m.setenv("EINET_ACCEL", "0")
        s.restore(tmp_path / "a.h5")
        for model, rows in zip(models, by_accessor):
            assert np.array_equal(stdp_rows(model), rows), model
        b = s.run(50.0)
    assert len(connected) == through_it  # nothing more through the accessor
    assert a.n_spikes > 0 and a.digest == b.digest


def test_an_accessor_disagreeing_with_nests_kplus_is_turned_off_and_the_restore_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Kplus set by the accessor is compared with NEST's own on first use: a writer that sets
    other values is caught, the accessor turned off for the process, and the network rebuilt
    through NEST's Connect alone."""
    s = Session(NetworkConfig(scale=0.1, threads=2, t_sim_ms=100.0))
    s.build()
    s.run()
    with monkeypatch.context() as m:
        m.setenv("EINET_ACCEL", "0")
        s.store(tmp_path / "a.h5")
        s.restore(tmp_path / "a.h5")
        wanted = stdp_rows("e_syn")
    lib = state_library()
    real = lib.write_stdp_ordered
    monkeypatch.setattr(lib, "write_stdp_ordered", lambda model, rows: real(model, dataclasses.replace(rows, kplus=rows.kplus + 1.0)))
    monkeypatch.setattr(state_module, "_checked", set())
    monkeypatch.setattr(state_module, "_loaded", lib)  # put back after the test: turned off below
    monkeypatch.setattr(state_module, "_refused", None)
    s.restore(tmp_path / "a.h5")
    assert np.array_equal(stdp_rows("e_syn"), wanted)
    assert "hidden-state accessor turned off for this process: e_syn: the hidden-state accessor disagrees with NEST's Kplus" in caplog.text
    with pytest.raises(AccelUnavailable, match="turned off"):
        state_library()


def test_the_accessors_connect_refuses_as_nest_does_and_rows_of_devices_before_any(monkeypatch: pytest.MonkeyPatch) -> None:
    """NEST's own refusal from inside the accessor's connect is its error; a row from or to a
    device (which ``between_neurons`` tells beforehand) is refused before anything is
    connected."""
    n = nest()
    with nest_output_to():
        n.ResetKernel()
        neurons = n.Create("iaf_psc_alpha", 3)
        generator = n.Create("poisson_generator")
    lib = state_library()
    one = np.ones(1)
    with pytest.raises(AccelUnavailable, match="not supported by the neuron model"):
        lib.connect("clopath_synapse", np.array([1]), np.array([2]), one, one)
    with pytest.raises(AccelUnavailable, match=r"row 1 \(4 -> 2\) is not between two neurons"):
        lib.connect("static_synapse", np.array([1, int(generator.global_id)]), np.array([2, 2]), np.ones(2), np.ones(2))
    assert int(n.num_connections) == 0
    assert not lib.between_neurons(np.array([1, int(generator.global_id)]), np.array([2, 2]))
    assert not lib.between_neurons(np.array([1]), np.array([99]))
    assert lib.between_neurons(np.array([1, 3]), np.array([2, 2]))
    lib.connect("static_synapse", np.array([1, 3]), np.array([2, 2]), np.array([2.0, 3.0]), np.array([1.0, 1.5]))
    with nest_output_to():
        got = n.GetConnections(target=neurons[1:2]).get(["source", "weight", "delay"])
    assert sorted(zip(got["source"], got["weight"], got["delay"])) == [(1, 2.0, 1.0), (3, 3.0, 1.5)]
    # no array: the model's default, as NaN is (a table's shared value is the model's default
    # for its connect)
    with nest_output_to():
        n.SetDefaults("static_synapse", {"weight": 4.0, "delay": 2.0})
    lib.connect("static_synapse", np.array([1]), np.array([3]), None, np.array([np.nan]))
    lib.connect("static_synapse", np.array([2]), np.array([3]), np.array([5.0]), None)
    with nest_output_to():
        got = n.GetConnections(target=neurons[2:3]).get(["source", "weight", "delay"])
    assert sorted(zip(got["source"], got["weight"], got["delay"])) == [(1, 4.0, 2.0), (2, 5.0, 2.0)]


def test_an_accessor_not_built_yet_is_not_built_by_a_restore_and_not_given_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``state_library(build_it=False)`` (a restore's connects) never waits for a compiler: not
    built, it is refused, and a later caller that may build it still can."""
    monkeypatch.setattr(state_module, "_loaded", None)
    monkeypatch.setattr(state_module, "_refused", None)
    monkeypatch.setattr(state_module, "library_path", lambda *_: tmp_path / "not-built.so")
    monkeypatch.setattr(state_module, "build", lambda *_: pytest.fail("built"))
    with pytest.raises(AccelUnavailable, match="not built"):
        state_library(build_it=False)
    assert state_module._refused is None

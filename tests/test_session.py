"""Store, reset, restore and rerun with the real NEST, in this process."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from einet import NetworkConfig, Session, SnapshotError
from einet.analysis import spike_digest
from einet.session import SessionError
from einet.snapshot import inspect_snapshot, open_snapshot
from einet.store import capture

from .conftest import ROOT, SMALL, assert_same_state

N_EXC, N_INH = 200, 50  # the reference network at scale 0.1


def test_fresh_network_is_active_and_matches_its_config() -> None:
    s = Session(SMALL)
    s.build()
    r = s.run()
    assert r.origin.kind == "fresh" and (r.t_start_ms, r.t_stop_ms) == (0.0, 200.0)
    assert r.n_spikes > 100, "a small network must still be active"
    assert set(np.unique(r.senders)) <= set(range(1, N_EXC + N_INH + 1)), "only neurons are recorded"
    assert [(g.name, g.size) for g in r.groups] == [("E", N_EXC), ("I", N_INH)]
    assert r.rate_hz == pytest.approx(r.n_spikes / (N_EXC + N_INH) / 0.2)
    assert list(r.group_rates_hz()) == ["E", "I"] and min(r.group_rates_hz().values()) > 1.0
    assert r.digest == spike_digest(r.senders, r.times)  # the two-key sort gives the same digest
    shuffled = np.random.default_rng(0).permutation(len(r.times))
    assert spike_digest(r.senders[shuffled], r.times[shuffled], 0.1) == r.digest
    assert 1000 < len(r.weights["e_syn"]) <= 4000 and (r.weights["i_syn"] == -4.0).all()
    assert r.psth_hz.shape == (2, 20) and r.psth_hz[0].mean() == pytest.approx(r.group_rates_hz()["E"], rel=1e-9)


def test_restore_gives_back_exactly_what_was_stored(tmp_path: Path) -> None:
    s = Session(SMALL)
    s.build()
    s.run()
    path = tmp_path / "a.h5"
    stored = s.store(path)
    s.run(100.0)  # move on, so restoring has something to undo
    s.restore(path)
    assert s.time_ms == stored.t_stored_ms == 200.0, "the restored network goes on from the stored time"
    again = capture(s.network, seed=s.seed)
    assert_same_state(stored, again)
    # E and I potentials separately (the example stores all 2500 in both)
    vm_e = stored.node_values("V_m", stored.groups["E"])
    vm_i = stored.node_values("V_m", stored.groups["I"])
    assert len(vm_e) == N_EXC and len(vm_i) == N_INH and not np.array_equal(vm_i, vm_e[:N_INH])
    # Kplus was really carried over (it differs from the model default of 0 or 1)
    assert np.unique(again.synapse("e_syn").columns["Kplus"]).size > 10


def test_same_seed_identical_other_seed_differs(stored: Path) -> None:
    s = Session(SMALL)
    digests = {}
    for name, seed in (("a", None), ("b", None), ("c", 987654321)):
        s.restore(stored, seed=seed)
        digests[name] = s.run().digest
    assert digests["a"] == digests["b"]
    assert digests["c"] != digests["a"]
    assert [r.origin.kind for r in s.results] == ["restored"] * 3


def test_the_same_network_gives_the_same_weight_sample_however_nest_orders_it(stored: Path) -> None:
    """NEST's filtered GetConnections gives its threads' connections in the order the threads
    finish (it differs between restores of one file): the weight sample (and the mean a
    verdict compares) is the same array each time."""
    s = Session(SMALL)
    samples = []
    for _ in range(6):
        s.restore(stored)
        samples.append(s.run().weights)
    assert samples[0] and all(len(w) > 100 for w in samples[0].values())
    for other in samples[1:]:
        assert other.keys() == samples[0].keys()
        for model, w in samples[0].items():
            assert np.array_equal(other[model], w), model


def test_connecting_in_blocks_makes_the_same_network_as_one_call(stored: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A restore connects each table in blocks (bounded memory beside NEST): same spikes."""
    import einet.network

    s = Session(SMALL)
    s.restore(stored)
    whole = s.run(100.0)
    assert max(len(t) for t in open_snapshot(stored).synapses) > 3 * 997
    monkeypatch.setattr(einet.network, "_CONNECT_BLOCK", 997)
    s.restore(stored)
    assert s.run(100.0).digest == whole.digest and whole.n_spikes > 0


def test_step_length_does_not_change_the_spikes(stored: Path) -> None:
    s = Session(SMALL)
    s.restore(stored)
    whole = s.run(200.0)
    s.restore(stored)
    updates = []
    stepped = s.run(200.0, step_ms=7.3, on_step=updates.append)
    assert stepped.digest == whole.digest
    assert sum(len(u.senders) for u in updates) == stepped.n_spikes
    assert updates[-1].t_ms == pytest.approx(400.0)


def test_continuation_starts_where_the_last_run_stopped() -> None:
    s = Session(SMALL)
    s.build()
    first = s.run(100.0)
    second = s.run(100.0)
    assert second.origin.kind == "continued" and second.t_start_ms == first.t_stop_ms == 100.0
    assert second.times.min() > 100.0


def test_cancel_stops_between_steps() -> None:
    s = Session(SMALL)
    s.build()
    cancel = threading.Event()

    def on_step(u) -> None:  # type: ignore[no-untyped-def]
        if u.t_ms >= 50.0:
            cancel.set()

    r = s.run(1000.0, step_ms=25.0, on_step=on_step, cancel=cancel)
    assert r.cancelled and r.t_stop_ms == 50.0
    assert (r.times <= 50.0).all()


def test_other_thread_count_is_flagged_not_bit_comparable(stored: Path) -> None:
    s = Session(SMALL)
    s.restore(stored, threads=1)
    r = s.run(50.0)
    assert s.threads == 1 and not r.bit_comparable


def test_failed_restore_leaves_the_kernel_as_it_was(tmp_path: Path) -> None:
    s = Session(SMALL)
    s.build()
    s.run(100.0)
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    with pytest.raises(SnapshotError):
        s.restore(bad)
    assert s.built and s.time_ms == 100.0
    assert s.run(50.0).origin.kind == "continued"


def test_store_never_overwrites_silently(tmp_path: Path, stored: Path) -> None:
    s = Session(SMALL)
    s.restore(stored)
    target = tmp_path / "x.h5"
    target.write_bytes(b"precious")
    with pytest.raises(SnapshotError, match="exists"):
        s.store(target)
    assert target.read_bytes() == b"precious"
    s.store(target, overwrite=True)
    assert open_snapshot(target).config == SMALL
    assert [p.name for p in tmp_path.iterdir()] == ["x.h5"], "no temporary file is left behind"


def test_actions_need_a_network() -> None:
    s = Session(SMALL)
    s.reset()
    with pytest.raises(SessionError):
        s.run(10.0)
    with pytest.raises(SessionError):
        s.store("never.h5")


def test_snapshot_frames_look_like_the_examples(stored: Path) -> None:
    from einet import load_frames

    frames = load_frames(stored)
    assert frames["nodes/E"].index[0] == 1 and len(frames["nodes/E"]) == N_EXC
    assert frames["nodes/I"].index[0] == N_EXC + 1 and len(frames["nodes/I"]) == N_INH
    assert {"V_m", "C_m", "tau_m", "t_ref"} <= set(frames["nodes/E"].columns)
    assert list(frames["synapses/e_syn"].columns) == ["source", "target", "Kplus", "delay", "weight"]
    assert len(frames["synapses/i_syn"]) == (N_EXC + N_INH) * 50 and (frames["synapses/i_syn"].weight == -4.0).all()
    assert frames["runs/1"].model.iloc[0] == "poisson_generator" and frames["runs/1"].rate.iloc[0] == 800.0


def test_version_1_files_still_restore_and_inspect() -> None:
    """A snapshot written by einet 0.1 (format v1) is converted on reading."""
    from .conftest import ROOT

    old = ROOT / "tests" / "data" / "v1-scale-0.02.h5"
    info = inspect_snapshot(old)
    assert info.valid and info.format_version == 1 and info.groups == {"E": 40, "I": 10}
    snap = open_snapshot(old)
    assert snap.synapse_counts() == {"e_syn": 50 * 200, "i_syn": 50 * 50, "static_synapse": 50}
    s = Session()
    s.restore(snap)
    again = capture(s.network, seed=s.seed)
    np.testing.assert_array_equal(again.node_values("V_m", again.groups["E"]), snap.node_values("V_m", snap.groups["E"]))
    a, b = s.run(100.0), (s.restore(snap), s.run(100.0))[1]
    assert a.digest == b.digest and a.n_spikes > 0


def test_a_stepped_run_s_spikes_do_not_depend_on_its_steps() -> None:
    """A run in steps (the dashboard's frames, sized by the wall clock) fires the spikes of one
    Simulate call: each step ends on the communication grid. NEST's parrot network is the
    witness: a Simulate call ending inside an interval changes its spikes."""
    config = NetworkConfig(model=f"{ROOT / 'tests' / 'test_exact.py'}:alpha_network", params={"model": "parrot_neuron"}, seed=4321)
    digests = set()
    for step in (None, 0.3, 7.7, 33.3):
        s = Session(config)
        s.build()
        steps: list[float] = []
        result = s.run(60.0, step_ms=step, on_step=(lambda u, ends=steps: ends.append(u.t_ms)) if step else None)
        assert all(round(t, 6).is_integer() for t in steps), f"steps of {step} ms end off the 1 ms grid: {steps}"
        assert step is None or len(steps) > 1
        digests.add(result.digest)
    assert len(digests) == 1

"""A restored run continues the stored experiment: the clock goes on from the stored time, every
device acts at the same stored-clock times as in the continued run, and for a network driven
only by deterministic devices (stored with nothing in transit) the spikes are the same."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from einet import NetworkConfig, Session
from einet.snapshot import open_snapshot
from tests.models import one_device

MODELS = Path(__file__).parent / "models"
T_STORE = 100.0


def _stdp_weights() -> np.ndarray:
    import nest

    status = nest.GetConnections(synapse_model="stdp_synapse").get(["source", "target", "weight"], output="pandas")
    return status.sort_values(["source", "target"]).weight.to_numpy()


def _continued_and_restored(config: NetworkConfig, path: Path, t_ms: float = 200.0) -> tuple:
    session = Session(config)
    session.build()
    session.run(T_STORE)
    session.store(path)
    continued = session.run(t_ms)
    continued_weights = _stdp_weights() if "stdp_synapse" in session.network.settable_synapses else None
    session.restore(path)
    restored = session.run(t_ms)
    restored_weights = _stdp_weights() if continued_weights is not None else None
    return continued, restored, continued_weights, restored_weights


@pytest.mark.parametrize("threads", [1, 2])
def test_deterministic_network_continues_exactly(tmp_path: Path, threads: int) -> None:
    config = NetworkConfig(model=str(MODELS / "clocked.py"), threads=threads, t_sim_ms=T_STORE)
    continued, restored, w_continued, w_restored = _continued_and_restored(config, tmp_path / "c.h5")
    assert restored.t_start_ms == continued.t_start_ms == T_STORE and restored.t_stop_ms == 300.0
    assert restored.origin.kind == "restored" and restored.origin.snapshot_t_ms == T_STORE
    # the step current (on at 150 ms) and the spike train after 170 ms act in both
    assert continued.n_spikes > 50 and continued.times.min() > 150.0
    assert restored.digest == continued.digest
    # STDP traces carried across: the first pairings after the restore change weights the same way
    assert w_continued is not None and w_restored is not None and np.abs(w_continued - 2.0).max() > 1.0
    np.testing.assert_allclose(w_restored, w_continued, rtol=1e-12)


def test_traces_are_stored_at_the_stored_time(tmp_path: Path) -> None:
    """Kplus in the file is the trace at t_stored (decayed from the parrots' last spike at 21 ms),
    and storing again right after a restore writes the same values."""
    session = Session(NetworkConfig(model=str(MODELS / "clocked.py"), threads=1))
    session.build()
    session.run(T_STORE)
    session.store(tmp_path / "a.h5")
    session.restore(tmp_path / "a.h5")
    session.store(tmp_path / "b.h5")
    a, b = open_snapshot(tmp_path / "a.h5"), open_snapshot(tmp_path / "b.h5")
    ka, kb = a.synapse("stdp_synapse").column("Kplus"), b.synapse("stdp_synapse").column("Kplus")
    # two spikes at 6 and 21 ms: (exp(-15/100) + 1) decayed over 79 ms with tau_plus = 100 ms
    np.testing.assert_allclose(ka, (np.exp(-15 / 100) + 1) * np.exp(-(T_STORE - 21.0) / 100), rtol=1e-12)
    np.testing.assert_allclose(kb, ka, rtol=1e-12)
    assert b.t_stored_ms == a.t_stored_ms == T_STORE


@pytest.mark.parametrize("device", sorted({**one_device.SPIKING, **one_device.CURRENT}))
def test_every_stimulation_device_acts_on_the_stored_clock(tmp_path: Path, device: str) -> None:
    config = NetworkConfig(model=str(MODELS / "one_device.py"), params={"device": device}, threads=1)
    continued, restored, _, _ = _continued_and_restored(config, tmp_path / "d.h5", t_ms=250.0)
    lo, hi = one_device.START, one_device.STOP + 2.0  # active from start to stop, plus the delay
    for run in (continued, restored):
        assert run.t_start_ms == T_STORE and run.n_spikes > 0, run.label
        assert lo <= run.times.min() and run.times.max() <= hi, (device, run.origin.kind, run.times.min(), run.times.max())
    if device in ("spike_generator", "dc_generator", "ac_generator", "step_current_generator"):
        assert restored.digest == continued.digest, device


def test_a_schedule_stored_mid_way_goes_on(tmp_path: Path) -> None:
    """The issue's case: a step current on from 50 to 250 ms, stored at 150 ms, drives the
    restored network as it drives the continued one (a device made at 150 ms would ignore the
    step at 50 ms: the snapshot holds the schedule as seen from the stored time). Only the
    current already on its way (one delay) and one step are not carried."""
    config = NetworkConfig(model=str(MODELS / "one_device.py"), params={"device": "step_current_generator"}, threads=1)
    session = Session(config)
    session.build()
    import nest

    nest.SetStatus(nest.NodeCollection([1]), {"start": 0.0, "amplitude_times": [50.0, 250.0], "amplitude_values": [1000.0, 0.0]})
    session.run(150.0)
    session.store(tmp_path / "s.h5")
    stored = open_snapshot(tmp_path / "s.h5").nodes[0]
    assert np.asarray(stored.values_of("amplitude_times")[0]).tolist() == [150.1, 250.0]
    assert np.asarray(stored.values_of("amplitude_values")[0]).tolist() == [1000.0, 0.0]
    continued = session.run(150.0)
    session.restore(tmp_path / "s.h5")
    restored = session.run(150.0)
    assert continued.n_spikes > 20 and abs(restored.n_spikes - continued.n_spikes) <= 4
    assert restored.times.max() < 252.0 and abs(restored.times.min() - continued.times.min()) < 2.0

"""Protocols: changes at chosen times, made at those times, stored with the snapshot and
continued by a restore; refused with one line when the network has no such target or key."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from einet import NetworkConfig, Session
from einet.config import ConfigError
from einet.protocol import Change, ProtocolError
from einet.snapshot import open_snapshot

from .conftest import einet_cli

MODELS = Path(__file__).parent / "models"
CLOCKED = str(MODELS / "clocked.py")


def test_at_syntax() -> None:
    assert Change.parse("300:noise.rate=900") == Change(300.0, "noise", "rate", 900)
    assert Change.parse("0:my.pop.I_e=-2.5") == Change(0.0, "my.pop", "I_e", -2.5), "the last dot splits target and key"
    assert Change.parse("12.5:rec.label=run a").value == "run a"
    for bad in ("300noise.rate=1", "300:noise=1", "x:noise.rate=1", "300:noise.rate", "-1:a.b=1", "inf:a.b=1", "5:a.1b=2", "5:a.b=\x1b[2J"):
        with pytest.raises(ProtocolError):
            Change.parse(bad)
    assert issubclass(ProtocolError, ConfigError), "a usage error (exit 2)"


def test_changes_happen_at_their_times_and_a_restore_continues_the_protocol(tmp_path: Path) -> None:
    """The dc pulse of clocked.py is raised at 120 ms and the neurons' I_e set at 210.05 ms (a
    step ends there, rounded up to the resolution); stored at 140 ms, the second change is still
    to come, and the restored run makes it at the same time: both runs equal."""
    protocol = ({"t_ms": 120.0, "target": "pulse", "key": "amplitude", "value": 900.0}, {"t_ms": 210.05, "target": "E", "key": "I_e", "value": 150.0})
    s = Session(NetworkConfig(model=CLOCKED, threads=1, protocol=protocol))
    s.build()
    first = s.run(140.0)
    assert [(c["target"], c["made_at_ms"]) for c in first.changes] == [("pulse", 120.0)]
    assert [c.t_ms for c in s.protocol] == [210.05]
    s.store(tmp_path / "p.h5")
    assert open_snapshot(tmp_path / "p.h5").protocol == ({"t_ms": 210.05, "target": "E", "key": "I_e", "value": 150.0},)
    continued = s.run(160.0)
    assert [(c["target"], c["made_at_ms"]) for c in continued.changes] == [("E", 210.1)]
    import nest

    assert nest.NodeCollection([1]).I_e == 150.0
    s.restore(tmp_path / "p.h5")
    assert [c.t_ms for c in s.protocol] == [210.05] and nest.NodeCollection([1]).I_e == 0.0
    restored = s.run(160.0)
    assert restored.changes == continued.changes and restored.digest == continued.digest
    # I_e = 150 pA drives every neuron after 210 ms: the change did happen
    assert (restored.times[restored.senders <= 20] > 211.0).sum() > 20


def test_a_change_at_or_before_now_branches_at_once(tmp_path: Path) -> None:
    s = Session(NetworkConfig(model=CLOCKED, threads=1))
    s.build()
    s.run(100.0)
    s.store(tmp_path / "b.h5")
    plain = s.run(100.0)
    s.restore(tmp_path / "b.h5", changes=(Change(0.0, "E", "I_e", 500.0),))
    import nest

    assert nest.NodeCollection([1]).I_e == 500.0, "made at the restore, before any run"
    branched = s.run(100.0)
    assert branched.changes[0]["made_at_ms"] == 100.0 and branched.n_spikes > plain.n_spikes


def test_unknown_target_key_or_bad_value_leaves_the_session_as_it_was(tmp_path: Path) -> None:
    s = Session(NetworkConfig(model=CLOCKED, threads=1))
    s.build()
    s.run(100.0)
    s.store(tmp_path / "c.h5")
    s.run(20.0)
    before = (s.time_ms, s.snapshot_path, s.network)
    for bad, message in (
        (Change(0, "nope", "rate", 1.0), "no population, device label, node model or synapse model 'nope'"),
        (Change(0, "E", "rate", 1.0), "no settable parameter 'rate'"),
        (Change(0, "E", "V_m", "high"), "takes a number, not a text"),
        (Change(0, "E", "C_m", -5.0), "NEST refuses it"),
        (Change(0, "E", "t_spike", 5.0), "no settable parameter 't_spike'"),
    ):
        with pytest.raises(ProtocolError, match=message):
            s.restore(tmp_path / "c.h5", changes=(bad,))
        assert (s.time_ms, s.snapshot_path, s.network) == before, bad
    assert s.run(10.0).origin.kind == "continued"


def test_protocol_from_toml_model_and_cli(tmp_path: Path) -> None:
    model = tmp_path / "looping.py"
    model.write_text(
        "def build(nest, scale=1.0, rate=5000.0):\n"
        "    pop = nest.Create('iaf_psc_delta', 20)\n"
        "    noise = nest.Create('poisson_generator', params={'rate': rate, 'label': 'noise'})\n"
        "    nest.Connect(noise, pop, syn_spec={'weight': 1.5})\n"
        "    return {'pop': pop}\n"
        "\n"
        "def protocol(scale=1.0, rate=5000.0):\n"
        "    # the script's loop 'for r in (0, rate): noise.rate = r; Simulate(100)' as data\n"
        "    return [{'t_ms': 100.0 * k, 'target': 'noise', 'key': 'rate', 'value': r} for k, r in enumerate([0.0, rate, 0.0])]\n"
    )
    config = tmp_path / "run.toml"
    config.write_text('t_sim_ms = 300.0\n\n[[protocol]]\nt = 250.0\ntarget = "pop"\nkey = "I_e"\nvalue = 400.0\n')
    p = einet_cli("run", "--model", str(model), "--config", str(config), "--at", "50:noise.rate=8000", "--json", "--threads", "1")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    made = [(c["made_at_ms"], c["target"], c["key"], c["value"]) for c in doc["changes"]]
    assert made == [(0.0, "noise", "rate", 0.0), (50.0, "noise", "rate", 8000), (100.0, "noise", "rate", 5000.0), (200.0, "noise", "rate", 0.0), (250.0, "pop", "I_e", 400.0)]
    bad = einet_cli("run", "--model", str(model), "--at", "50:noise.ratee=1", "--t", "10")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "ratee" in bad.stderr


def test_history_records_the_changes(tmp_path: Path) -> None:
    from einet.history import History

    history = tmp_path / "h.sqlite"
    p = einet_cli("run", "--model", CLOCKED, "--t", "150", "--at", "120:pulse.amplitude=900", "--history", str(history), "--json")
    assert p.returncode == 0, p.stderr
    with History.open(history) as h:
        (run,) = h.runs()
    assert json.loads(run.changes) == [{"t_ms": 120.0, "target": "pulse", "key": "amplitude", "value": 900, "made_at_ms": 120.0}]
    assert np.isfinite(run.t_stop_ms) and run.t_stop_ms == 150.0

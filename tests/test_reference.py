"""A few checks at the reference size (scale 1: 2000 E + 500 I, 625k synapses)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from einet import NetworkConfig, Session
from einet.snapshot import open_snapshot
from einet.store import capture

from .conftest import assert_same_state, einet_cli

pytestmark = pytest.mark.reference


@pytest.fixture(scope="module")
def reference_snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ref") / "ref.h5"
    p = einet_cli("run", "--t", "500", "--store", str(path), "--json")
    assert p.returncode == 0, p.stderr
    return path


def test_reference_restore_is_exact(reference_snapshot: Path) -> None:
    stored = open_snapshot(reference_snapshot)
    assert stored.synapse_counts() == {"e_syn": 500_000, "i_syn": 125_000, "static_synapse": 2500}
    s = Session(NetworkConfig())
    s.restore(stored)
    again = capture(s.network, seed=s.seed)
    assert_same_state(stored, again)
    # STDP has moved the weights away from JE, and the snapshot kept every one of them
    assert stored.synapse("e_syn").weight.std() > 0.01


def test_reference_same_seed_identical_across_processes(reference_snapshot: Path) -> None:
    docs = [json.loads(einet_cli("restore", str(reference_snapshot), "--t", "300", "--json", *extra).stdout) for extra in ((), (), ("--seed", "987654321"))]
    assert docs[0]["digest"] == docs[1]["digest"] and docs[0]["spikes"] > 1000
    assert docs[2]["digest"] != docs[0]["digest"]

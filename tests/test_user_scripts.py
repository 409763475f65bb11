"""Users' own scripts (issue #20): everything einet stores, it restores. Models split over
several files, NEST's own error messages, devices whose keys are settable only together, and
recorders writing to files; each with the real NEST."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from einet import NetworkConfig, Session, Snapshot

from .conftest import einet_cli
from .test_generic import assert_same_contents

MODELS = Path(__file__).resolve().parent / "models"


# -- a model split over several files ------------------------------------------------------------
def test_a_model_imports_from_its_own_folder_while_loading_and_building(tmp_path: Path) -> None:
    folder = tmp_path / "mynet"
    folder.mkdir()
    (folder / "helpers.py").write_text(textwrap.dedent("""
        def make_pop(nest, n):
            return nest.Create("iaf_psc_alpha", n, params={"I_e": 400.0})
        """))
    (folder / "wiring.py").write_text(textwrap.dedent("""
        def connect(nest, pop):
            nest.Connect(pop, pop, {"rule": "fixed_indegree", "indegree": 2}, {"weight": 5.0})
        """))
    (folder / "mynet.py").write_text(textwrap.dedent("""
        from helpers import make_pop  # at load time

        def build(nest, scale=1.0, n=12):
            import wiring  # lazily, while building

            pop = make_pop(nest, n)
            wiring.connect(nest, pop)
            return {"pop": pop}
        """))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    p = einet_cli("run", "--model", str(folder / "mynet.py"), "--t", "100", "--set", "n=9", "--json", "--no-history", cwd=elsewhere)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["population_rates_hz"]["pop"] > 0 and doc["spikes"] > 0


# -- NEST's error messages -----------------------------------------------------------------------
def test_a_multi_line_nest_error_reaches_the_user_whole_on_one_line() -> None:
    p = einet_cli("run", "--model", str(MODELS / "nest_error.py"), "--t", "10", "--no-history")
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    # NEST's first line and, on the same line, its second one: the reason
    assert "Creation of connection is not possible because: The source node does not support gap junction output" in lines[0]


# -- devices whose keys NEST accepts only together ---------------------------------------------
def test_store_restore_store_is_a_fixpoint_for_every_kind_of_generator(tmp_path: Path) -> None:
    session = Session(NetworkConfig(model=str(MODELS / "generators.py"), threads=2, t_sim_ms=150.0))
    session.build()
    assert session.run().n_spikes > 0
    session.store(tmp_path / "a.h5")
    session.restore(tmp_path / "a.h5")
    session.store(tmp_path / "b.h5")  # without running: the restored state itself
    a, b = Snapshot.open(tmp_path / "a.h5"), Snapshot.open(tmp_path / "b.h5")
    runs = {r.model: r for r in a.nodes}
    # what the first store must hold, so that the comparison is not vacuous
    for model, keys in {
        "step_current_generator": {"amplitude_times": [10.0, 60.0, 110.0], "amplitude_values": [250.0, -80.0, 150.0], "allow_offgrid_times": False},
        "step_rate_generator": {"amplitude_times": [5.0, 50.0], "amplitude_values": [10.0, 2.0], "allow_offgrid_times": True},
        "spike_generator": {"spike_times": [3.0, 7.5, 40.0, 41.0, 90.0], "spike_weights": [50.0, 60.0, 70.0, 80.0, 90.0], "allow_offgrid_times": False, "precise_times": False},
        "dc_generator": {"amplitude": 90.0, "start": 30.0, "stop": 120.0},
        "noise_generator": {"mean": 50.0, "std": 120.0, "dt": 1.0},
        "poisson_generator": {"rate": 8000.0},
        "inhomogeneous_poisson_generator": {"rate_times": [20.0, 80.0], "rate_values": [12000.0, 3000.0], "allow_offgrid_times": False},
    }.items():
        assert {key: runs[model].uniform.get(key) for key in keys} == keys, model
    assert_same_contents(a, b)

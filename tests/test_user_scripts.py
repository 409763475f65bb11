"""Users' own scripts (issue #20): everything einet stores, it restores. Models split over
several files, NEST's own error messages, devices whose keys are settable only together,
recorders writing to files, and stores refused before simulating; each with the real NEST."""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from einet import CannotStoreError, NetworkConfig, Session
from einet.cli import EXIT_CANNOT_STORE, exit_of
from einet.engine import Engine, EngineError
from einet.snapshot import open_snapshot
from einet.store import capture, check_written

from .conftest import einet_cli
from .test_generic import assert_same_contents

MODELS = Path(__file__).resolve().parent / "models"


# -- a model split over several files ------------------------------------------------------------
def test_a_model_imports_from_its_own_folder_while_loading_and_building(tmp_path: Path) -> None:
    folder = tmp_path / "mynet"
    folder.mkdir()
    (folder / "helpers.py").write_text(
        textwrap.dedent("""
        def make_pop(nest, n):
            return nest.Create("iaf_psc_alpha", n, params={"I_e": 400.0})
        """)
    )
    (folder / "wiring.py").write_text(
        textwrap.dedent("""
        def connect(nest, pop):
            nest.Connect(pop, pop, {"rule": "fixed_indegree", "indegree": 2}, {"weight": 5.0})
        """)
    )
    (folder / "mynet.py").write_text(
        textwrap.dedent("""
        from helpers import make_pop  # at load time

        def build(nest, scale=1.0, n=12):
            import wiring  # lazily, while building

            pop = make_pop(nest, n)
            wiring.connect(nest, pop)
            return {"pop": pop}
        """)
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    p = einet_cli("run", "--model", str(folder / "mynet.py"), "--t", "100", "--set", "n=9", "--json", "--no-history", cwd=elsewhere)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["population_rates_hz"]["pop"] > 0 and doc["spikes"] > 0


# -- pandas and matplotlib, which einet imports NEST without ---------------------------------
def test_a_model_gets_pandas_and_spatial_plots_from_nest_though_nest_came_without_them(tmp_path: Path) -> None:
    script = tmp_path / "frames.py"
    script.write_text(
        textwrap.dedent("""
        import sys

        def build(nest, scale=1.0):
            assert "pandas" not in sys.modules and "matplotlib" not in sys.modules, "einet imported them with NEST"
            pop = nest.Create("iaf_psc_alpha", 4, params={"I_e": 1000.0})
            nest.Connect(pop, pop, {"rule": "all_to_all"}, {"weight": 1.0})
            frame = pop.get(["I_e", "C_m"], output="pandas")
            weights = nest.GetConnections(pop, pop).get(["weight"], output="pandas")
            import pandas as pd

            assert isinstance(frame, pd.DataFrame) and frame.shape == (4, 2) and list(frame["I_e"]) == [1000.0] * 4
            assert isinstance(weights, pd.DataFrame) and len(weights) == 16

            import matplotlib

            matplotlib.use("Agg")
            layer = nest.Create("parrot_neuron", positions=nest.spatial.grid(shape=[3, 3]))
            mask = {"circular": {"radius": 0.6}}
            nest.Connect(layer, layer, {"rule": "pairwise_bernoulli", "p": 1.0, "mask": mask})
            figure = nest.PlotLayer(layer)
            nest.PlotTargets(layer[4:5], layer, mask=mask, fig=figure)  # the mask drawn with matplotlib's patches
            assert len(figure.axes[0].patches) == 3, [type(p).__name__ for p in figure.axes[0].patches]
            return {"pop": pop}
        """)
    )
    p = einet_cli("run", "--model", str(script), "--t", "20", "--json", "--no-history")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["population_rates_hz"]["pop"] > 0


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
    a, b = open_snapshot(tmp_path / "a.h5"), open_snapshot(tmp_path / "b.h5")
    runs = {r.model: r for r in a.nodes}
    generators = runs["spike_generator"]
    assert generators.count == 2
    np.testing.assert_array_equal(generators.ragged["spike_multiplicities"][0], [2, 3])  # the second's; the first has none
    np.testing.assert_array_equal(generators.ragged["spike_times"][0], [3.0, 7.5, 40.0, 41.0, 90.0, 20.0, 70.0])
    # what the first store must hold, so that the comparison is not vacuous (step schedules as
    # seen from the stored 150 ms: the steps before it collapse into the value then in force)
    for model, keys in {
        "step_current_generator": {"amplitude_times": [150.1], "amplitude_values": [150.0], "allow_offgrid_times": False},
        "step_rate_generator": {"amplitude_times": [150.1], "amplitude_values": [2.0], "allow_offgrid_times": True},
        "spike_generator": {"allow_offgrid_times": False, "precise_times": False},
        "dc_generator": {"amplitude": 90.0, "start": 30.0, "stop": 120.0},
        "noise_generator": {"mean": 50.0, "std": 120.0, "dt": 1.0},
        "poisson_generator": {"rate": 8000.0},
        "inhomogeneous_poisson_generator": {"rate_times": [150.1], "rate_values": [3000.0], "allow_offgrid_times": False},
    }.items():
        assert {key: runs[model].uniform.get(key) for key in keys} == keys, model
    assert_same_contents(a, b)


# -- the model's own recorders -------------------------------------------------------------------
def _files(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def test_recorders_writing_files_get_a_whole_run_and_a_second_call_is_one_line(tmp_path: Path) -> None:
    """NEST's ASCII backend opens its files at each Simulate and refuses one that exists: a
    run of a network whose recorders write files is one call (it was cut into steps of 100 ms,
    and failed at the second), and what would need another call says why in one line."""
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    model = ("--model", str(MODELS / "recorders.py"), "--set", f"folder={recordings}")
    p = einet_cli("run", *model, "--t", "250.3", "--json", "--no-history")  # off the communication grid: still one call
    assert p.returncode == 0, p.stderr
    spikes = sum(len([line for line in f.read_text().splitlines() if line[:1].isdigit()]) for f in recordings.glob("spikes-*.dat"))
    assert spikes == json.loads(p.stdout)["spikes"] > 0, "every spike of the whole run in the files"
    again = einet_cli("run", *model, "--t", "250", "--checkpoint-every", "100", "--checkpoint-dir", str(tmp_path / "ck"), "--no-history")
    assert again.returncode == 1
    lines = again.stderr.strip().splitlines()
    assert "Traceback" not in again.stderr and lines[-1].startswith("einet: error: NEST's recorders writing files") and "overwrite_files" in lines[-1], again.stderr


@pytest.mark.parametrize("via_defaults", [False, True], ids=["node parameters", "SetDefaults and CopyModel"])
def test_recorders_writing_files_and_a_weight_recorder_restore_recording_to_memory(tmp_path: Path, via_defaults: bool) -> None:
    work, recordings, path = tmp_path / "work", tmp_path / "recordings", tmp_path / "rec.h5"
    work.mkdir()
    recordings.mkdir()
    model = ("--model", str(MODELS / "recorders.py"), "--set", f"folder={recordings}", "--set", f"via_defaults={str(via_defaults).lower()}")
    stored = einet_cli("run", *model, "--t", "100", "--store", str(path), "--json", cwd=work)
    assert stored.returncode == 0, stored.stderr
    assert sorted(p.name.split("-")[0] for p in recordings.iterdir()) == ["spikes", "spikes", "voltages", "voltages"]  # 2 threads each
    before = _files(tmp_path)

    restored = einet_cli("restore", str(path), "--t", "100", "--json", cwd=work)
    assert restored.returncode == 0, restored.stderr
    assert json.loads(restored.stdout)["spikes"] > 0
    assert _files(tmp_path) == before, "a restore (and its run) wrote files"

    info = json.loads(einet_cli("inspect", str(path), "--json").stdout)
    recorders = {r["model"]: r for r in info["recorders"]}
    meter = "ascii_meter" if via_defaults else "multimeter"
    assert recorders["spike_recorder"]["record_to"] == "ascii" and recorders["spike_recorder"]["label"] == f"{recordings}/spikes"
    assert recorders[meter]["record_to"] == "ascii" and recorders["weight_recorder"]["record_to"] == "memory"
    assert any(line.startswith(f"{meter} node ") and "recorded to ascii" in line and "restore records to memory" in line for line in info["not_stored"])
    snap = open_snapshot(path)
    (mm,) = [r for r in snap.nodes if r.model == meter]
    assert (mm.uniform["precision"], mm.uniform["file_extension"]) == (5, "dat")  # the backend's settings, kept
    if via_defaults:
        assert {c["model"]: c["params"]["record_to"] for c in snap.model_calls if "record_to" in c["params"]} == {"spike_recorder": "ascii", "ascii_meter": "ascii"}

    # in this process, over a running network (the restore is rehearsed in another process
    # first): the weight_recorder, its filter and the synapse model watching it are back
    session = Session(NetworkConfig(scale=0.02, t_sim_ms=100.0))
    session.build()
    session.restore(path)
    session.run()
    from einet.kernel import nest

    n = nest()
    (wr,) = [r for r in snap.nodes if r.model == "weight_recorder"]
    recorder = n.NodeCollection([wr.first_id])
    assert n.GetDefaults("stdp_watched")["weight_recorder"].tolist() == [wr.first_id]
    assert recorder.senders.tolist() == snap.groups["N"][:10].tolist()
    assert recorder.record_to == "memory" and recorder.n_events > 0
    assert set(recorder.events["senders"]) <= set(snap.groups["N"][:10].tolist())
    assert {n.NodeCollection([r.first_id]).record_to for r in snap.nodes if r.model in ("spike_recorder", meter)} == {"memory"}
    assert _files(tmp_path) == before


# -- what a store refuses, it refuses before simulating -----------------------------------------
# Simulating these 100 s would take minutes (gap junctions: ~30 s per simulated second here).
@pytest.mark.parametrize(
    ("function", "extra", "words"),
    [
        ("gap_junctions", (), "gap junctions (gap_junction) cannot be stored"),
        ("structural_plasticity", ("--threads", "1"), "structural plasticity is enabled"),
    ],
)
def test_a_refused_store_is_told_before_simulating_with_its_own_exit_code(tmp_path: Path, function: str, extra: tuple[str, ...], words: str) -> None:
    model = f"{MODELS / 'refused.py'}:{function}"
    target = tmp_path / "x.h5"
    for command in (("run", "--store", str(target)), ("demo",)):
        tic = time.monotonic()
        p = einet_cli(*command, "--model", model, *extra, "--t", "100000", "--no-history", timeout=600)
        took = time.monotonic() - tic
        assert p.returncode == 4, (command, p.stderr)
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("einet: cannot store: ") and words in lines[0], p.stderr
        assert took < 60, f"{command[0]} took {took:.0f} s: it simulated before refusing"
    assert list(tmp_path.iterdir()) == []


def test_a_store_failing_after_the_run_still_reports_the_run(tmp_path: Path) -> None:
    target = tmp_path / "big.h5"

    def small_files() -> None:  # a full disk, as the snapshot is written (the run writes nothing)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (10_000, 10_000))

    p = subprocess.run(
        [sys.executable, "-m", "einet.cli", "run", "--scale", "0.05", "--t", "100", "--store", str(target), "--json", "--no-history"],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=small_files,
        env={**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert p.returncode == 1, p.stderr
    doc = json.loads(p.stdout)
    assert doc["spikes"] > 0 and doc["t_stop_ms"] == 100.0 and doc["stored"] is None
    assert doc["store_error"] == "error: [Errno 27] File too large"
    assert p.stderr.strip() == f"einet: {doc['store_error']}"
    assert list(tmp_path.iterdir()) == []


def test_an_engine_refuses_the_store_before_simulating_too(tmp_path: Path) -> None:
    """``--ranks`` drives a session in an engine: the same check, its error kind mapped to 4."""
    config = NetworkConfig(model=f"{MODELS / 'refused.py'}:gap_junctions", t_sim_ms=50.0)
    with Engine(log_dir=tmp_path / "logs") as engine:
        engine.call("build", 120, config=config.to_dict())
        with pytest.raises(EngineError) as refused:
            engine.call("check_storable", 60)
    assert refused.value.kind == "CannotStoreError" and "gap junctions (gap_junction) cannot be stored" in str(refused.value)
    assert exit_of(refused.value) == (EXIT_CANNOT_STORE, f"cannot store: {refused.value}")


def test_a_store_checks_what_it_wrote_against_this_nest_as_a_restore_would() -> None:
    session = Session(NetworkConfig(model=str(MODELS / "recorders.py"), t_sim_ms=20.0))
    session.build()
    snap = capture(session.network, seed=session.seed)
    check_written(snap)  # the backend's own keys of the ascii recorders are not refused
    neurons = snap.nodes[1]
    doctored = dataclasses.replace(snap, nodes=(snap.nodes[0], dataclasses.replace(neurons, uniform={**neurons.uniform, "no_such_key": 1.0}), *snap.nodes[2:]))
    with pytest.raises(CannotStoreError, match=r"^einet could not restore it: iaf_psc_alpha has no parameter 'no_such_key'$"):
        check_written(doctored)

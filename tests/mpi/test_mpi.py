"""The engine as an MPI job of two ranks (``make test-mpi``: needs the MPI NEST that
``make setup-mpi`` builds). Real NEST on real ranks: runs, pause/cancel, stores from two
ranks restored into 1×2 and 2×1, a killed rank, hostile snapshots."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from einet import NetworkConfig, Snapshot
from einet.engine import Engine, EngineDied, EngineError, result_from_message
from einet.engine.launch import MpiLaunch
from einet.runs import RunResult
from einet.snapshot import open_snapshot
from einet.snapshot.hidden import MODEL_OF_KIND

from ..conftest import ROOT, assert_same_state, einet_cli, wait_for
from ..mutations import RESTORE_REFUSED, STRUCTURAL, write_structural
from ..test_engine import Recorder

pytestmark = pytest.mark.mpi

SMALL = NetworkConfig(scale=0.05, threads=1, t_sim_ms=200.0)
DEVICES = NetworkConfig(model=str(ROOT / "tests" / "models" / "devices.py"), scale=1.0, threads=1, t_sim_ms=150.0)
CALL_S = 120.0


def start(tmp_path: Path, ranks: int) -> tuple[Engine, Recorder]:
    rec = Recorder()
    eng = Engine(log_dir=tmp_path / "logs", on_event=rec, hang_timeout_s=60, mpi=MpiLaunch(ranks))
    eng.start(timeout_s=CALL_S)
    assert eng.ranks == ranks and len(eng.rank_pids) == ranks
    return eng, rec


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[Engine, Recorder]]:
    eng, rec = start(tmp_path, 2)
    pids = list(eng.rank_pids)
    yield eng, rec
    alive = eng.alive
    eng.close(timeout_s=30)
    assert eng.proc is not None and eng.proc.poll() is not None
    if alive:
        assert eng.proc.returncode == 0, "the MPI job ends cleanly on shutdown"
    wait_for(lambda: not any(_running(p) for p in pids), 10, "every rank's process to end")


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def run(eng: Engine, t_ms: float) -> RunResult:
    return result_from_message(eng.call("run", CALL_S, t_ms=t_ms))


def stored_by_two_ranks(tmp_path: Path, config: NetworkConfig, t_ms: float, name: str) -> Path:
    """``config``'s network built and run ``t_ms`` by 2 ranks, then stored as ``name``."""
    return stored_and_continued(tmp_path, config, t_ms, name)[0]


def stored_and_continued(tmp_path: Path, config: NetworkConfig, t_ms: float, name: str, then_ms: float | None = None) -> tuple[Path, RunResult | None]:
    """``config``'s network built and run ``t_ms`` by 2 ranks, stored as ``name``, and (with
    ``then_ms``) run on: the file and the continued run."""
    eng, _ = start(tmp_path / "store", 2)
    path = tmp_path / name
    try:
        eng.call("build", CALL_S, config=config.to_dict())
        run(eng, t_ms)
        eng.call("store", CALL_S, path=str(path))
        return path, run(eng, then_ms) if then_ms is not None else None
    finally:
        eng.close(timeout_s=30)


def own_model(file: Path, text: str) -> NetworkConfig:
    """A network of one's own, written to ``file``: its config at one thread per rank."""
    file.write_text(text)
    return NetworkConfig(model=str(file), threads=1)


def restored_run(tmp_path: Path, path: Path, ranks: int, threads: int, t_ms: float) -> tuple[RunResult, Snapshot]:
    """Restore into ``ranks`` × ``threads``, store right away (the state as restored), run."""
    eng, _ = start(tmp_path / f"{ranks}x{threads}", ranks)
    try:
        eng.call("restore", CALL_S, path=str(path), threads=threads)
        again = tmp_path / f"again-{ranks}x{threads}.h5"
        eng.call("store", CALL_S, path=str(again))
        return run(eng, t_ms), open_snapshot(again)
    finally:
        eng.close(timeout_s=30)


def test_two_ranks_stream_frames_with_every_rank_s_spikes(two: tuple[Engine, Recorder]) -> None:
    eng, rec = two
    eng.call("build", CALL_S, config=SMALL.to_dict())
    result = run(eng, 300.0)
    frames = rec.of("frame")
    assert len(frames) >= 2 and result.ranks == 2 and result.threads == 1
    assert sum(len(f.arrays["senders"]) for f in frames) == result.n_spikes == frames[-1]["n_spikes_total"] > 0
    # NEST puts neighbouring ids on different ranks: spikes of both ranks' neurons arrive
    assert {int(s) % 2 for s in result.senders} == {0, 1}
    assert result.t_stop_ms == 300.0 and not result.cancelled


def test_pause_resume_and_cancel_reach_every_rank(two: tuple[Engine, Recorder]) -> None:
    eng, rec = two
    eng.call("build", CALL_S, config=SMALL.to_dict())
    running = eng.request("run", t_ms=1_000_000.0)
    wait_for(lambda: len(rec.of("frame")) >= 3, 60, "three frames")
    eng.call("pause", timeout_s=10)
    n1 = len(rec.of("frame"))
    time.sleep(0.5)  # not synchronisation: the stretch in which no step may be made
    eng.call("ping", timeout_s=10)  # every frame sent before the ping has been counted
    assert len(rec.of("frame")) <= n1 + 1, "no steps while paused"
    eng.call("resume", timeout_s=10)
    wait_for(lambda: len(rec.of("frame")) >= n1 + 3, 30, "three more frames after resume")
    eng.call("cancel", timeout_s=10)
    result = result_from_message(running.result(30))
    assert result.cancelled and 0 < result.t_stop_ms < 1_000_000.0
    # every rank stopped at the same step: the kernel goes on as one
    assert run(eng, 100.0).t_start_ms == result.t_stop_ms


def test_a_store_asked_for_while_running_is_taken_between_steps(two: tuple[Engine, Recorder], tmp_path: Path) -> None:
    eng, rec = two
    eng.call("build", CALL_S, config=SMALL.to_dict())
    running = eng.request("run", t_ms=2000.0)
    wait_for(lambda: len(rec.of("frame")) >= 2, 60, "two frames")
    ack = eng.call("store", CALL_S, path=str(tmp_path / "mid.h5"), background=True)
    result = result_from_message(running.result(CALL_S))
    stored = rec.of("stored")
    assert len(stored) == 1 and stored[0]["path"] == str(tmp_path / "mid.h5")
    snap = open_snapshot(tmp_path / "mid.h5")
    assert snap.t_stored_ms == ack["t_stored_ms"] and 0 < snap.t_stored_ms < result.t_stop_ms == 2000.0
    assert snap.n_vp == 2


@pytest.mark.parametrize("config", [SMALL, DEVICES], ids=["reference", "devices"])
def test_stored_from_two_ranks_restores_into_1x2_and_2x1_alike(tmp_path: Path, config: NetworkConfig) -> None:
    path = stored_by_two_ranks(tmp_path, config, config.t_sim_ms, "two.h5")
    snap = open_snapshot(path)
    assert snap.n_vp == 2 and sum(snap.synapse_counts().values()) > 0
    a, state_a = restored_run(tmp_path, path, ranks=2, threads=1, t_ms=config.t_sim_ms)
    b, state_b = restored_run(tmp_path, path, ranks=1, threads=2, t_ms=config.t_sim_ms)
    # one file from two ranks holds the whole network: restored anywhere it is the same state
    assert_same_state(snap, state_a)
    assert_same_state(snap, state_b)
    assert a.n_spikes > 0 and a.digest == b.digest, "same total virtual processes: identical spikes"
    assert a.bit_comparable and b.bit_comparable
    c, _ = restored_run(tmp_path, path, ranks=2, threads=2, t_ms=config.t_sim_ms)
    assert not c.bit_comparable  # 4 virtual processes: allowed, flagged


def test_a_killed_rank_ends_the_job_cleanly(two: tuple[Engine, Recorder]) -> None:
    eng, rec = two
    eng.call("build", CALL_S, config=SMALL.to_dict())
    running = eng.request("run", t_ms=1_000_000.0)
    wait_for(lambda: len(rec.of("frame")) >= 2, 60, "two frames")
    pids = list(eng.rank_pids)
    os.kill(pids[1], signal.SIGKILL)
    with pytest.raises(EngineDied) as died:
        running.result(60)
    assert "rank 1" in str(died.value) and "\n" not in str(died.value)
    wait_for(lambda: len(rec.of("died")) == 1, 10, "the engine's death to be reported")
    wait_for(lambda: eng.proc is not None and eng.proc.poll() is not None, 30, "the launcher to exit")
    wait_for(lambda: not any(_running(p) for p in pids), 30, "every rank's process to end")
    with pytest.raises(EngineDied):
        eng.call("ping", timeout_s=5)


def test_hostile_snapshots_are_refused_on_every_rank_and_the_kernel_goes_on(two: tuple[Engine, Recorder], tmp_path: Path) -> None:
    eng, _ = two
    eng.call("build", CALL_S, config=SMALL.to_dict())
    good = tmp_path / "good.h5"
    eng.call("store", CALL_S, path=str(good))
    first = run(eng, 100.0)
    for case, tamper in [("NaN V_m", STRUCTURAL["NaN V_m"]), *RESTORE_REFUSED.items()]:
        bad = tmp_path / f"{case}.h5"
        write_structural(good, bad, tamper)
        with pytest.raises(EngineError) as refused:
            eng.call("restore", CALL_S, path=str(bad))
        assert refused.value.kind in ("SnapshotError", "RankError") and "\n" not in str(refused.value), case
    # neither rank touched its kernel: the run continues where it was, on both ranks
    after = run(eng, 100.0)
    assert after.origin.kind == "continued" and after.t_start_ms == first.t_stop_ms == 100.0
    assert {int(s) % 2 for s in after.senders} == {0, 1}


def test_cli_runs_stores_and_restores_with_ranks(tmp_path: Path) -> None:
    path = tmp_path / "cli.h5"
    stored = einet_cli("run", "--ranks", "2", "--scale", "0.05", "--threads", "1", "--t", "200", "--store", str(path), "--json", timeout=300)
    assert stored.returncode == 0, stored.stderr
    restored = einet_cli("restore", str(path), "--ranks", "2", "--t", "200", "--json", timeout=300)
    alone = einet_cli("restore", str(path), "--threads", "2", "--t", "200", "--json", timeout=300)
    assert restored.returncode == 0 and alone.returncode == 0, restored.stderr + alone.stderr
    import json

    a, b = json.loads(restored.stdout), json.loads(alone.stdout)
    assert a["ranks"] == 2 and a["threads"] == 1 and b["ranks"] == 1 and b["threads"] == 2
    assert a["spikes"] > 0 and a["bit_comparable"] and b["bit_comparable"]
    # the plain PyPI NEST is another build than the MPI one: equal here, not promised
    bad = tmp_path / "bad.h5"
    write_structural(path, bad, STRUCTURAL["NaN V_m"])
    p = einet_cli("restore", str(bad), "--ranks", "2", timeout=300)
    assert p.returncode == 3 and len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr


def test_a_nest_without_mpi_is_told_in_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    # this venv's NEST is the PyPI wheel: under mpirun it refuses to start
    p = subprocess.run(
        [sys.executable, "-m", "einet.cli", "run", "--ranks", "2", "--scale", "0.05", "--t", "100"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "EINET_NEST_MPI_PYTHON": sys.executable},
    )
    assert p.returncode == 1 and "not compiled with MPI" in p.stderr and "make setup-mpi" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr


LONELY = """
def build(nest, scale=1.0):
    many = nest.Create("iaf_psc_alpha", 10, params={"I_e": 400.0})
    one = nest.Create("iaf_cond_exp", params={"V_m": -61.5})  # lives on one rank only
    nest.Connect(many, one, syn_spec={"weight": 2.0})
    nest.Connect(one, many, syn_spec={"synapse_model": "stdp_synapse", "weight": 3.0})
    return {"many": many, "one": one}
"""


def test_a_population_smaller_than_the_ranks_is_stored_whole(tmp_path: Path) -> None:
    path = stored_by_two_ranks(tmp_path, own_model(tmp_path / "lonely.py", LONELY), 50.0, "lonely.h5")
    snap = open_snapshot(path)
    lonely = next(r for r in snap.nodes if r.model == "iaf_cond_exp")
    assert lonely.count == 1 and "V_m" in lonely.keys() and "g_ex" in lonely.keys()
    _, again = restored_run(tmp_path, path, ranks=1, threads=2, t_ms=50.0)
    assert_same_state(snap, again)


SPLIT = """
def build(nest, scale=1.0):
    a = nest.Create("iaf_psc_alpha", 4)  # at 2 virtual processes: 2 and 4 on rank 0, 1 and 3 on rank 1
    nest.Connect(a[0], a[1], syn_spec={"weight": 1.0})  # onto rank 0
    nest.Connect(a[2], a[3], syn_spec={"weight": 1.0, "delay": 2.0})  # onto rank 0
    nest.Connect(a[1], a[2], syn_spec={"weight": 2.0})  # onto rank 1
    nest.Connect(a[3], a[0], syn_spec={"synapse_model": "stdp_synapse", "weight": 3.0})  # rank 1 only
    return {"a": a}
"""


def test_columns_one_value_per_rank_are_stored_as_columns_and_one_value_everywhere_as_a_value(tmp_path: Path) -> None:
    # each rank sends a column that holds one value as that value: rank 0's weights are all
    # 1.0 and rank 1's all 2.0, which must still make a column, in rank order
    path = stored_by_two_ranks(tmp_path, own_model(tmp_path / "split.py", SPLIT), 20.0, "split.h5")
    snap = open_snapshot(path)
    static = next(t for t in snap.synapses if t.model == "static_synapse")
    assert static.source.tolist() == [1, 3, 2] and static.target.tolist() == [2, 4, 3]
    assert static.columns["weight"].tolist() == [1.0, 1.0, 2.0] and static.columns["delay"].tolist() == [1.0, 2.0, 1.0]
    assert "receptor_type" not in static.columns and "receptor_type" not in static.uniform
    stdp = next(t for t in snap.synapses if t.model == "stdp_synapse")  # no rows on rank 0
    assert stdp.source.tolist() == [4] and stdp.target.tolist() == [1] and stdp.uniform["weight"] == 3.0 and "weight" not in stdp.columns
    _, again = restored_run(tmp_path, path, ranks=1, threads=2, t_ms=20.0)
    assert_same_state(snap, again)


ONE_RANK_STDP = """
def build(nest, scale=1.0):
    a = nest.Create("iaf_psc_alpha", 4, params={"I_e": 400.0})  # 2 and 4 on rank 0, 1 and 3 on rank 1
    nest.Connect(a[1], a[2], syn_spec={"weight": 30.0})
    nest.Connect(a[0], a[3], syn_spec={"weight": 30.0})
    nest.Connect(a[3], a[0], syn_spec={"synapse_model": "stdp_synapse", "weight": 3.0})  # onto rank 1 only
    return {"a": a}
"""


def test_stdp_rows_of_one_rank_only_go_into_the_hidden_section(tmp_path: Path) -> None:
    """Rank 0 has no row of the STDP model: the section still holds rank 1's, and a restore
    into one process is the continued run."""
    path, continued = stored_and_continued(tmp_path, own_model(tmp_path / "one_rank_stdp.py", ONE_RANK_STDP), 20.0, "one.h5", then_ms=20.0)
    assert continued is not None
    hidden = open_snapshot(path).hidden
    assert hidden is not None and [(e["model"], e["count"]) for e in hidden.meta["stdp"]] == [("stdp_synapse", 1)]
    again, _ = restored_run(tmp_path, path, ranks=1, threads=2, t_ms=20.0)
    assert continued.n_spikes > 0 and again.exact and again.digest == continued.digest


def test_a_vanished_parent_ends_every_rank(two: tuple[Engine, Recorder]) -> None:
    eng, rec = two
    eng.call("build", CALL_S, config=SMALL.to_dict())
    eng.request("run", t_ms=1_000_000.0)
    wait_for(lambda: len(rec.of("frame")) >= 2, 60, "two frames")
    eng.call("pause", timeout_s=10)  # the other ranks now wait on rank 0 between two steps
    pids = list(eng.rank_pids)
    assert eng._chan is not None
    eng._chan.close()  # the dashboard is gone without a word
    wait_for(lambda: not any(_running(p) for p in pids), 30, "every rank's process to end")
    wait_for(lambda: eng.proc is not None and eng.proc.poll() is not None, 30, "the launcher to exit")


EXACT = ROOT / "tests" / "test_exact.py"
COVERED = list(MODEL_OF_KIND.values())
"""Every node model with an accessor (tests/test_exact.py restores each in one process)."""
CASES = [
    [(model, {"model": model}, 50.0) for model in COVERED if model != "parrot_neuron"] + [("inside an interval", {}, 50.5)],  # 50.5: spikes wait in the spike registers
    [("parrot_neuron", {"model": "parrot_neuron"}, 50.0)],
    [("short-term plasticity", {"short_term": True}, 50.0)],
    [("spike and current generators", {"spike_train": True, "currents": True}, 50.0)],
    [("uncompressed spikes", {"compressed": False}, 50.0)],
]
"""Networks an engine may build one after another. NEST 3.10 under 2 MPI ranks carries
something of a network over a ResetKernel into the next, if that is another network (plain
PyNEST under mpirun too): after a tsodyks_synapse network, or one with use_compressed_spikes
off, the next crashes in its first Simulate (EventDeliveryManager::deliver_events); after the
parrot network, the izhikevich network fires other spikes than in a fresh process. The same
network again is unaffected."""
LAYOUTS = [(2, 1), (1, 2)]


@pytest.mark.parametrize("cases", CASES, ids=["models", "parrots", "short-term", "generators", "uncompressed"])
def test_a_restore_is_the_continued_run_in_every_layout_of_the_same_virtual_processes(tmp_path: Path, cases: list[tuple[str, dict[str, Any], float]]) -> None:
    """Each network stored from 2 ranks × 1 thread and from 1 × 2, each file restored into both
    layouts: the four restored runs are the continued run, bit for bit."""
    continued: dict[tuple[str, int], str] = {}
    for ranks, threads in LAYOUTS:
        eng, _ = start(tmp_path / f"store-{ranks}x{threads}", ranks)
        try:
            for name, params, t_ms in cases:
                config = NetworkConfig(model=f"{EXACT}:alpha_network", params=params, threads=threads, seed=4321, t_sim_ms=50.0)
                eng.call("build", CALL_S, config=config.to_dict())
                assert run(eng, t_ms).n_spikes > 100, name
                path = tmp_path / f"{name}-{ranks}x{threads}.h5"
                eng.call("store", CALL_S, path=str(path))
                hidden = open_snapshot(path).hidden
                assert hidden is not None and hidden.complete and (hidden.meta["ranks"], hidden.meta["threads"]) == (ranks, threads), name
                assert hidden.meta["transit"] > 0, f"{name}: no spikes in transit at the store: the test would not test them"
                continued[(name, ranks)] = run(eng, 50.0).digest
        finally:
            eng.close(timeout_s=30)
    for name, _, _ in cases:
        assert continued[(name, 2)] == continued[(name, 1)], f"{name}: NEST itself runs another network in the other layout"
    for ranks, threads in LAYOUTS:
        eng, _ = start(tmp_path / f"restore-{ranks}x{threads}", ranks)
        try:
            for name, _, _ in cases:
                for stored in (2, 1):
                    path = tmp_path / f"{name}-{stored}x{3 - stored}.h5"
                    reply = eng.call("restore", CALL_S, path=str(path), threads=threads)
                    assert reply["exact"] and reply["hidden_note"] == "", f"{name} stored by {stored} ranks, restored into {ranks}: {reply['hidden_note']}"
                    again = run(eng, 50.0)
                    assert again.exact and again.digest == continued[(name, stored)], f"{name} stored by {stored} ranks, restored into {ranks} × {threads}"
        finally:
            eng.close(timeout_s=30)


def test_four_virtual_processes_restore_exactly_in_each_of_their_layouts(tmp_path: Path) -> None:
    """Stored from 2 ranks × 2 threads (spikes in transit inside an interval), restored into
    1 × 4, 2 × 2 and 4 × 1: each restored run is the continued run."""
    config = NetworkConfig(model=f"{EXACT}:alpha_network", threads=2, seed=4321, t_sim_ms=50.0)
    path, continued = stored_and_continued(tmp_path, config, 50.5, "four.h5", then_ms=50.0)
    assert continued is not None
    hidden = open_snapshot(path).hidden
    assert hidden is not None and (hidden.meta["ranks"], hidden.meta["threads"]) == (2, 2) and hidden.meta["transit"] > 0
    for ranks, threads in [(1, 4), (2, 2), (4, 1)]:
        eng, _ = start(tmp_path / f"{ranks}x{threads}", ranks)
        try:
            reply = eng.call("restore", CALL_S, path=str(path), threads=threads)
            assert reply["exact"], f"{ranks} × {threads}: {reply['hidden_note']}"
            again = run(eng, 50.0)
            assert again.exact and again.digest == continued.digest, f"restored into {ranks} × {threads}"
        finally:
            eng.close(timeout_s=30)

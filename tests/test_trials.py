"""einet trials: conditions × seeds from one snapshot, on local workers and a Dask LocalCluster.

The plan and the statistics are checked against small cases worked by hand; the command runs
the small reference network (scale 0.1) for 50 ms per trial with the real NEST, in worker
processes, and in a Dask LocalCluster of two process workers."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from einet.cli import main
from einet.history import History, file_sha256
from einet.protocol import Change
from einet.trials import TrialSet, compare, parse_seeds, parse_vary, plan_conditions, summarise
from einet.trials.output import RowWriter, columns, condition_table, figure_names
from einet.trials.plan import PlanError
from einet.trials.pool import missing_software
from einet.trials.run import ShippedSnapshotError, fano_factor, holds_snapshot, snapshot_file

from .conftest import children_of, einet_cli, one_line_error, process_state, wait_for

T_MS = "50"


# -- the plan ---------------------------------------------------------------------------------
def test_seeds_are_n_or_a_list() -> None:
    assert parse_seeds("3") == (1, 2, 3)
    assert parse_seeds("7, 3,11") == (7, 3, 11)
    assert parse_seeds("5,") == (5,)
    for bad, words in (("0", "N takes 1 to"), ("x", "N or a list"), ("", "N takes 1 to"), ("1,1", "twice"), ("1,2147483648", "seeds are 1 to"), (",", "no seed")):
        with pytest.raises(PlanError, match=words):
            parse_seeds(bad)


def test_conditions_cross_seeds_baseline_first() -> None:
    rate = parse_vary("noise.rate=800,900")
    assert [c.value for c in rate] == [800, 900] and all(c.t_ms == 0.0 and c.target == "noise" and c.key == "rate" for c in rate)
    # --vary twice: crossed, the first values the baseline; --at made in every condition
    at = (Change.parse("0:E.I_e=1.5"),)
    conditions = plan_conditions(at, (rate, parse_vary("E.V_th=20,21.5")))
    assert [c.name for c in conditions] == ["noise.rate=800 E.V_th=20", "noise.rate=800 E.V_th=21.5", "noise.rate=900 E.V_th=20", "noise.rate=900 E.V_th=21.5"]
    assert all(c.changes[0] == at[0] and len(c.changes) == 3 for c in conditions)
    assert conditions[3].changes[1:] == (rate[1], Change(0.0, "E", "V_th", 21.5))
    # --at alone: the baseline (no change) against the changed condition
    two = plan_conditions(at)
    assert [(c.name, c.changes) for c in two] == [("baseline", ()), ("E.I_e=1.5", at)]
    assert [(c.name, c.changes) for c in plan_conditions()] == [("baseline", ())]
    # conditions × seeds, seed by seed through every condition
    trials = TrialSet(two, (4, 9, 2)).trials
    assert [(t.index, t.condition, t.seed) for t in trials] == [(0, 0, 4), (1, 1, 4), (2, 0, 9), (3, 1, 9), (4, 0, 2), (5, 1, 2)]
    for bad in ("noise.rate", "rate=1,2", "noise.rate=1,,2", "noise.rate=1,1"):
        with pytest.raises(PlanError):
            parse_vary(bad)


# -- the statistics, against cases worked by hand ---------------------------------------------
def test_summary_is_mean_sd_and_students_interval() -> None:
    # 1..5: mean 3, sd sqrt(2.5); t(0.975, 4) = 2.776445, so 3 ± 2.776445 · sqrt(2.5 / 5)
    s = summarise([1, 2, 3, 4, 5])
    half = 2.776445 * math.sqrt(0.5)
    assert (s.n, s.mean) == (5, 3.0) and s.sd == pytest.approx(math.sqrt(2.5))
    assert (s.ci_low, s.ci_high) == (pytest.approx(3 - half, abs=1e-5), pytest.approx(3 + half, abs=1e-5))
    # NaN (a figure a trial could not have) is left out; one value has no spread; equal values an exact mean
    one = summarise([7.0, float("nan")])
    assert one.n == 1 and one.mean == 7.0 and math.isnan(one.sd) and math.isnan(one.ci_low)
    assert summarise([2.0, 2.0, 2.0]) == type(s)(3, 2.0, 0.0, 2.0, 2.0)


def test_welch_difference_interval_and_verdict() -> None:
    # 1..5 against 2..6: difference -1, each variance 2.5, standard error 1, Welch's df 8:
    # t = -1, interval -1 ± t(0.975, 8) = 2.306004, p = 0.3466
    c = compare([1, 2, 3, 4, 5], [2, 3, 4, 5, 6])
    assert c.difference == -1.0 and c.ci_low == pytest.approx(-3.306004, abs=1e-5) and c.ci_high == pytest.approx(1.306004, abs=1e-5)
    assert c.p_value == pytest.approx(0.34659, abs=1e-4) and c.verdict == "no difference detected"
    # unequal spreads: 10,11,12,13 (var 5/3) against 1,2,3,4 (var 5/3) shifted by 9: se sqrt(5/6),
    # df 6, interval 9 ± 2.446912 · 0.912871
    d = compare([10, 11, 12, 13], [1, 2, 3, 4])
    assert d.difference == 9.0 and d.ci_low == pytest.approx(9 - 2.446912 * math.sqrt(5 / 6), abs=1e-5) and d.verdict == "differs"
    # Welch, not Student: variances 100 and 0.5 over 3 and 5 trials give Welch-Satterthwaite
    # df = (100/3 + 0.1)^2 / ((100/3)^2/2 + 0.1^2/4) = 2.012 and a half-width t(0.975, 2.012) ·
    # sqrt(100/3 + 0.1) = 4.2780 · 5.7821 = 24.737 (Student's pooled test: 10.37)
    w = compare([0, 10, 20], [9, 10, 11, 10, 10])
    assert w.difference == 0.0 and w.ci_high == pytest.approx(24.737, abs=2e-3) and w.verdict == "no difference detected"
    # no spread at all: the difference is exact; fewer than two trials: no verdict
    assert compare([3, 3], [1, 1]).verdict == "differs" and compare([1, 1], [1, 1]).verdict == "no difference detected"
    assert compare([1], [1, 2, 3]).verdict == "too few trials"


def test_fano_factor_of_binned_counts() -> None:
    # counts 2, 0, 1, 1 in four bins: mean 1, sample variance 2/3
    assert fano_factor([1.0, 2.0, 21.0, 31.0], [0.0, 10.0, 20.0, 30.0, 40.0]) == pytest.approx(2 / 3)  # type: ignore[arg-type]
    assert math.isnan(fano_factor([], [0.0, 10.0, 20.0]))  # type: ignore[arg-type]


def test_rows_written_as_they_come(tmp_path: Path) -> None:
    figures = figure_names(["E"], ["syn"])
    assert figures == ("rate_hz.E", "cv.E", "fano.E", "weight.syn", "dweight.syn")
    row = {
        "set": "s",
        "trial": 1,
        "condition": "baseline",
        "condition_index": 0,
        "seed": 3,
        "threads": 1,
        "t_start_ms": 0.0,
        "t_stop_ms": 50.0,
        "spikes": 10,
        "digest": "ab",
        "rate_hz.E": 2.5,
        "cv.E": float("nan"),
        "wall_s": 0.5,
        "worker": "w",
        "error": "",
    }
    failed = {"set": "s", "trial": 2, "condition": "baseline", "condition_index": 0, "seed": 4, "threads": 1, "error": "NESTError: no"}
    for name in ("rows.csv", "rows.parquet"):
        writer = RowWriter(tmp_path / name, columns(figures))
        writer.write(row)
        if name.endswith(".csv"):  # on disk before the writer is closed: an interrupted set keeps it
            assert [r["digest"] for r in csv.DictReader((tmp_path / name).open())] == ["ab"]
        writer.write(failed)
        writer.close()
        frame = pd.read_csv(tmp_path / name) if name.endswith(".csv") else pd.read_parquet(tmp_path / name)
        assert list(frame["seed"]) == [3, 4] and frame["rate_hz.E"][0] == 2.5 and math.isnan(frame["cv.E"][0])
        assert frame["error"].fillna("").tolist() == ["", "NESTError: no"] and math.isnan(frame["spikes"][1])
    table = condition_table([row, {**row, "trial": 3, "seed": 5, "rate_hz.E": 3.5}, {**row, "trial": 4, "condition_index": 1, "rate_hz.E": 9.0}, failed], ["a", "b"], figures)
    rate = [x for x in table if x.figure == "rate_hz.E"]
    assert [(x.condition, x.summary.n, x.summary.mean) for x in rate] == [("a", 2, 3.0), ("b", 1, 9.0)]
    assert rate[0].versus is None and rate[1].versus is not None and rate[1].versus.verdict == "too few trials"


# -- workers: the snapshot by path or shipped, checked by SHA-256 --------------------------------
def test_snapshot_read_by_path_or_shipped_and_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    data = b"not really hdf5, but bytes are bytes"
    sha = hashlib.sha256(data).hexdigest()
    path = tmp_path / "a.h5"
    path.write_bytes(data)
    assert snapshot_file(str(path), sha, None) == str(path)
    shipped = Path(snapshot_file("/elsewhere/a.h5", sha, data))
    assert shipped.read_bytes() == data and shipped.parent == tmp_path / "tmp"
    with pytest.raises(ShippedSnapshotError, match="arrived damaged"):
        snapshot_file(str(path), sha, data + b"x")
    with pytest.raises(ShippedSnapshotError, match="cannot be read"):
        snapshot_file(str(tmp_path / "missing.h5"), sha, None)
    path.write_bytes(data + b"changed")
    with pytest.raises(ShippedSnapshotError, match="another file"):
        snapshot_file(str(path), sha, None)
    # what a Dask worker is asked before the set: does it hold that very file there?
    assert not holds_snapshot(str(path), sha) and not holds_snapshot(str(tmp_path / "missing.h5"), sha)
    assert holds_snapshot(str(path), hashlib.sha256(data + b"changed").hexdigest())


def test_a_worker_without_einet_or_nest_is_one_clear_line() -> None:
    line = missing_software(ModuleNotFoundError("No module named 'einet'", name="einet"))
    assert line is not None and "cannot import einet" in line and "install einet and NEST" in line and "\n" not in line
    assert "cannot import nest" in str(missing_software(ModuleNotFoundError("No module named 'nest'", name="nest")))
    assert missing_software(ModuleNotFoundError("No module named 'numpy'", name="numpy")) is None
    assert missing_software(ValueError("einet")) is None


# -- the command -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "code", "words"),
    [
        (["--seeds", "0"], 2, "--seeds N takes"),
        (["--seeds", "2", "--vary", "noise.rate"], 2, "--vary takes"),
        (["--seeds", "2", "--at", "noise.rate=1"], 2, "--at takes"),
        (["--seeds", "2", "--out", "rows.txt"], 2, ".csv or .parquet"),
        (["--seeds", "2", "--workers", "0"], 2, "--workers must be"),
        (["--seeds", "2", "--workers", "2", "--dask", "tcp://127.0.0.1:1"], 2, "--workers goes with"),
        (["--seeds", "2", "--threads", "0"], 2, "--threads must be"),
        (["--seeds", "2", "--ship"], 2, "--ship goes with --dask"),
        (["--seeds", "2", "--t", "-5"], 2, "--t must be"),
    ],
)
def test_usage_is_refused_in_one_line(capsys: pytest.CaptureFixture[str], before_nest: None, argv: list[str], code: int, words: str) -> None:
    Path("snap.h5").write_bytes(b"")
    assert main(["trials", "snap.h5", *argv]) == code
    one_line_error(capsys, words)


def test_missing_and_invalid_snapshots(capsys: pytest.CaptureFixture[str], before_nest: None) -> None:
    assert main(["trials", "nowhere.h5", "--seeds", "2"]) == 1
    one_line_error(capsys, "no such file")
    Path("bad.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    assert main(["trials", "bad.h5", "--seeds", "2"]) == 3
    one_line_error(capsys, "invalid snapshot")


def test_out_and_spikes_are_not_overwritten(capsys: pytest.CaptureFixture[str], before_nest: None, stored: Path) -> None:
    Path("rows.csv").write_text("mine\n")
    assert main(["trials", str(stored), "--seeds", "2", "--out", "rows.csv"]) == 2
    one_line_error(capsys, "rows.csv exists")
    Path("spikes").mkdir()
    (Path("spikes") / "trial-0002.parquet").write_bytes(b"mine")
    assert main(["trials", str(stored), "--seeds", "2", "--spikes", "spikes"]) == 2
    one_line_error(capsys, "trial-0002.parquet exists")
    assert Path("rows.csv").read_text() == "mine\n" and (Path("spikes") / "trial-0002.parquet").read_bytes() == b"mine"


def test_a_change_the_snapshot_has_no_target_for_is_refused_before_any_trial(stored: Path, tmp_path: Path) -> None:
    done = einet_cli("trials", str(stored), "--seeds", "2", "--vary", "nosuch.rate=1,2", "--t", T_MS, "--workers", "1", "--out", str(tmp_path / "rows.csv"), "--no-history")
    assert done.returncode == 2 and done.stdout == "", done
    assert done.stderr.splitlines()[-1].startswith("einet: usage: ") and "nosuch" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "rows.csv").exists()


def _trial_set(tmp_path: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    done = einet_cli("trials", *extra, "--json", timeout=240)
    assert done.returncode == 0, done.stderr
    return done, json.loads(done.stdout)


@pytest.fixture(scope="module")
def local_set(stored: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """2 conditions (E as stored; E driven by a current far above threshold) × 3 seeds on 2 local workers."""
    folder = tmp_path_factory.mktemp("local")
    _, doc = _trial_set(folder, str(stored), "--seeds", "3", "--vary", "E.I_e=0,2000", "--t", T_MS, "--workers", "2", "--out", str(folder / "rows.csv"), "--spikes", str(folder / "spikes"), "--history", str(folder / "h.sqlite"))
    return folder, doc


def test_local_trials_rows_statistics_spikes_and_history(local_set: tuple[Path, dict[str, Any]], stored: Path) -> None:
    folder, doc = local_set
    rows = doc["rows"]
    assert (doc["trials"], doc["finished"], doc["failed"], doc["interrupted"]) == (6, 6, 0, False)
    assert doc["where"] == "2 local worker processes" and doc["sha256"] == file_sha256(stored)
    assert [(r["seed"], r["condition"]) for r in rows] == [(s, c) for s in (1, 2, 3) for c in ("E.I_e=0", "E.I_e=2000")]
    assert all(r["error"] == "" and r["t_start_ms"] == 200.0 and r["t_stop_ms"] == 250.0 and r["threads"] == 1 for r in rows)
    # every trial its own spikes: each seed, and each condition
    assert len({r["digest"] for r in rows}) == 6
    # the rows on disk (in the order trials finished) are the document's, one per trial
    on_disk = list(csv.DictReader((folder / "rows.csv").open()))
    assert sorted((int(r["trial"]), r["digest"]) for r in on_disk) == sorted((r["trial"], r["digest"]) for r in rows)
    # each trial's spikes, as many as it counted
    for r in rows:
        spikes = pd.read_parquet(folder / "spikes" / f"trial-{r['trial']:04d}.parquet")
        assert len(spikes) == r["spikes"] and set(spikes["population"]) <= {"E", "I"}
        assert spikes["times"].between(200.0, 250.0).all()
    # the statistics are those of the rows; 2000 pA drives every E neuron far above its threshold
    # (by 2000 pA · 20 ms / 250 pF = 160 mV): the difference is beyond the seeds' spread
    stats = {(s["figure"], s["condition"]): s for s in doc["statistics"]}
    on, off = stats[("rate_hz.E", "E.I_e=0")], stats[("rate_hz.E", "E.I_e=2000")]
    rates_on = [r["rate_hz.E"] for r in rows if r["condition_index"] == 0]
    rates_off = [r["rate_hz.E"] for r in rows if r["condition_index"] == 1]
    expected = summarise(rates_on)
    assert on["n"] == 3 and on["mean"] == pytest.approx(expected.mean) and on["ci_low"] == pytest.approx(expected.ci_low) and on["vs_baseline"] is None
    assert min(rates_off) > max(rates_on)
    versus = off["vs_baseline"]
    assert versus["difference"] == pytest.approx(sum(rates_off) / 3 - sum(rates_on) / 3) and versus["ci_low"] > 0 and versus["verdict"] == "differs"
    assert versus == compare(rates_off, rates_on).to_dict()
    # every trial in the run history, with its set (a field, and in the label), from the snapshot by its SHA-256
    with History.open(folder / "h.sqlite") as history:
        recorded = history.runs()
    assert len(recorded) == 6
    assert sorted(r.digest for r in recorded) == sorted(r["digest"] for r in rows)
    assert all(doc["set"] in r.label and r.trial_set == doc["set"] and r.origin == "restored" and r.snapshot == str(stored) and r.snapshot_sha256 == doc["sha256"] for r in recorded)
    assert sorted((r.seed, r.spikes) for r in recorded) == sorted((r["seed"], r["spikes"]) for r in rows)


def test_a_trial_is_the_restore_with_its_seed_and_changes(local_set: tuple[Path, dict[str, Any]], stored: Path) -> None:
    """The same digest as restoring by hand in this process: a trial is that restore, wherever it ran."""
    from einet import Session

    _, doc = local_set
    session = Session()
    session.restore(stored, seed=2, threads=1, changes=(Change(0.0, "E", "I_e", 2000),))
    by_hand = session.run(float(T_MS))
    trial = next(r for r in doc["rows"] if r["seed"] == 2 and r["condition_index"] == 1)
    assert trial["digest"] == by_hand.digest and trial["spikes"] == by_hand.n_spikes


def test_dask_local_cluster_gives_the_same_digests(local_set: tuple[Path, dict[str, Any]], stored: Path, tmp_path: Path) -> None:
    _, local = local_set
    _, doc = _trial_set(tmp_path, str(stored), "--seeds", "3", "--vary", "E.I_e=0,2000", "--t", T_MS, "--dask", "local", "--workers", "2", "--no-history")
    assert doc["where"] == "2 Dask workers (a local Dask cluster; the snapshot read from its path)" and doc["finished"] == 6
    assert len({r["worker"] for r in doc["rows"]} - {r["worker"] for r in local["rows"]}) >= 1  # not the local workers
    assert {(r["seed"], r["condition"]): r["digest"] for r in doc["rows"]} == {(r["seed"], r["condition"]): r["digest"] for r in local["rows"]}


def test_dask_reads_the_snapshot_by_path_or_ships_it_with_the_same_digests(local_set: tuple[Path, dict[str, Any]], stored: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers that hold the same file at its path (checked there by SHA-256) read it there;
    with ship=True, or when a worker does not hold it, it is shipped. The same trials give
    the same digests either way, and as on local workers."""
    import logging

    from distributed import LocalCluster

    import einet.trials.run as trial_run
    from einet.trials.pool import DaskPool
    from einet.trials.run import TrialSpec, run_trial

    _, local = local_set
    plan = TrialSet(plan_conditions((), (parse_vary("E.I_e=0,2000"),)), (1, 2))
    sha, path = file_sha256(stored), str(stored.resolve())
    specs = [TrialSpec("s", t.index, t.condition, plan.conditions[t.condition].name, t.seed, 1, float(T_MS), tuple(c.to_dict() for c in plan.conditions[t.condition].changes), path, sha, dask=True) for t in plan.trials]
    digests = {}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, scheduler_kwargs={"dashboard": False}, silence_logs=logging.ERROR) as cluster:
        for ship in (False, True):
            with DaskPool(cluster.scheduler_address, 0, stored, ship=ship) as pool:
                assert pool.ships is ship and (pool.payload is None) is not ship
                assert pool.describe().endswith("the snapshot shipped to each)" if ship else "the snapshot read from its path)")
                outcomes = [f.result() for f in [pool.submit(run_trial, spec) for spec in specs]]
            assert all(o.ok for o in outcomes), [o.error for o in outcomes]
            digests[ship] = {(o.spec.seed, o.spec.condition_name): o.row["digest"] for o in outcomes}
        # a worker that does not hold the file (here: every one says so): shipped
        monkeypatch.setattr(trial_run, "warm_up", lambda *args: False)  # sent to the workers by value
        with DaskPool(cluster.scheduler_address, 0, stored) as pool:
            assert pool.ships and pool.payload is not None
    assert digests[False] == digests[True]
    assert digests[False] == {(r["seed"], r["condition"]): r["digest"] for r in local["rows"] if r["seed"] in (1, 2)}


def test_a_failing_trial_is_one_line_and_the_rest_go_on(stored: Path, tmp_path: Path) -> None:
    # a delay is checked against a fresh kernel's defaults, but a restored network has simulated:
    # NEST refuses the change in each trial of that condition, at the restore
    done = einet_cli("trials", str(stored), "--seeds", "2", "--at", "0:e_syn.delay=1.5", "--t", T_MS, "--workers", "1", "--out", str(tmp_path / "rows.csv"), "--no-history", timeout=240)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done
    lines = done.stdout.splitlines()
    failed = [line for line in lines if "FAILED" in line]
    assert len(failed) == 2 and all("e_syn.delay=1.5" in line and "Minimum and maximum delay" in line for line in failed)
    assert len([line for line in lines if line.startswith("trial ") and "spikes," in line]) == 2
    assert done.stderr.splitlines()[-1].startswith("einet: error: 2 of 4 trials failed")
    rows = list(csv.DictReader((tmp_path / "rows.csv").open()))
    assert sorted((r["condition"], bool(r["error"])) for r in rows) == [("baseline", False)] * 2 + [("e_syn.delay=1.5", True)] * 2


@pytest.mark.serial
def test_ctrl_c_stops_every_worker_within_two_seconds_keeping_finished_rows(stored: Path, tmp_path: Path) -> None:
    out = tmp_path / "rows.csv"
    proc = subprocess.Popen(
        [sys.executable, "-m", "einet.cli", "trials", str(stored), "--seeds", "12", "--t", "3000", "--workers", "2", "--out", str(out), "--no-history"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    try:

        def finished() -> int:
            return len(list(csv.DictReader(out.open()))) if out.exists() else 0

        wait_for(lambda: finished() >= 1, 180, "a first finished trial")
        workers = children_of(proc.pid)
        assert len(workers) >= 2
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=10)
        took = time.monotonic() - t0
        stdout, stderr = proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 130 and took < 2.0, (code, took, stderr)
    kept = list(csv.DictReader(out.open()))
    assert 1 <= len(kept) < 12 and all(r["digest"] and not r["error"] for r in kept)
    assert f"interrupted: {len(kept)} of 12 trials finished" in stderr and "Traceback" not in stderr
    assert len([line for line in stdout.splitlines() if line.startswith("trial ")]) == len(kept)
    wait_for(lambda: all(process_state(pid) in ("", "Z") for pid in workers), 2, "the workers to be gone")


def test_a_worker_process_that_dies_is_replaced_and_its_trials_run_again(stored: Path, tmp_path: Path) -> None:
    out = tmp_path / "rows.csv"
    proc = subprocess.Popen(
        [sys.executable, "-m", "einet.cli", "trials", str(stored), "--seeds", "4", "--t", "500", "--workers", "2", "--out", str(out), "--no-history", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    try:
        workers = wait_for(lambda: children_of(proc.pid) if len(children_of(proc.pid)) >= 2 else None, 60, "two worker processes")
        assert isinstance(workers, set)
        wait_for(lambda: out.exists(), 120, "the first trial to start")  # the rows file opens before the trials start
        victim = max(workers)
        os.kill(victim, signal.SIGKILL)  # as the OOM killer would, or NEST aborting
        stdout, stderr = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    doc = json.loads(stdout)
    assert (doc["finished"], doc["failed"], doc["worker_restarts"]) == (4, 0, 1) and len({r["digest"] for r in doc["rows"]}) == 4
    assert sorted(int(r["trial"]) for r in csv.DictReader(out.open())) == [1, 2, 3, 4]


@pytest.mark.serial
def test_ctrl_c_stops_the_trials_on_a_dask_cluster_of_others(stored: Path, tmp_path: Path) -> None:
    """On a cluster einet did not start, its workers are not killed: Ctrl-C cancels the set's
    tasks, and each running trial sees its task cancelled and ends at its next step."""
    import logging

    from distributed import Client, LocalCluster

    out = tmp_path / "rows.csv"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, scheduler_kwargs={"dashboard": False}, silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        proc = subprocess.Popen(
            [sys.executable, "-m", "einet.cli", "trials", str(stored), "--seeds", "8", "--t", "3000", "--dask", cluster.scheduler_address, "--out", str(out), "--no-history"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )

        def running() -> int:
            return sum(client.run(lambda dask_worker: len(dask_worker.active_threads)).values())

        try:
            wait_for(lambda: out.exists() and len(list(csv.DictReader(out.open()))) >= 1, 180, "a first finished trial")
            wait_for(lambda: running() == 2, 30, "a trial running on each worker")
            proc.send_signal(signal.SIGINT)
            wait_for(lambda: running() == 0, 2.0, "the cluster's workers to stop their trials")
            code = proc.wait(timeout=15)
            _, stderr = proc.communicate()
        finally:
            if proc.poll() is None:
                proc.kill()
        assert code == 130 and "interrupted" in stderr and "Traceback" not in stderr, stderr
        assert len(client.scheduler_info()["workers"]) == 2  # the cluster itself goes on


def test_a_dask_worker_without_einet_stops_the_set_with_one_line(stored: Path, tmp_path: Path) -> None:
    """A real Dask worker in an environment without einet: the venv's site-packages without
    its .pth files (``-S``: einet's editable install is not hooked in; ``-I``: no PYTHONPATH,
    no current folder), so Dask imports and einet does not. The set stops with one line."""
    import logging
    import sysconfig

    from distributed import Client, LocalCluster

    site = sysconfig.get_paths()["purelib"]
    start = f"import sys; sys.path.append({site!r}); from distributed.cli.dask_worker import main; sys.argv[0] = 'dask-worker'; main()"
    probe = subprocess.run(
        [sys.executable, "-I", "-S", "-c", f"import sys; sys.path.append({site!r}); import distributed\ntry:\n    import einet\nexcept ImportError:\n    print('no einet')"], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert probe.stdout.strip() == "no einet", probe.stderr
    with LocalCluster(n_workers=0, processes=True, dashboard_address=None, scheduler_kwargs={"dashboard": False}, silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        worker = subprocess.Popen([sys.executable, "-I", "-S", "-c", start, cluster.scheduler_address, "--nthreads", "1", "--no-nanny", "--no-dashboard"], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            client.wait_for_workers(1, timeout=60)
            done = einet_cli("trials", str(stored), "--seeds", "2", "--t", T_MS, "--dask", cluster.scheduler_address, "--no-history", timeout=120)
        finally:
            worker.kill()
            worker.wait(10)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and done.stdout == "", done
    assert lines[-1].startswith("einet: error: a Dask worker cannot import einet") and "install einet and NEST where the Dask workers run" in lines[-1], done.stderr
    assert "Traceback" not in done.stderr and all(line.startswith("einet: ") for line in lines), done.stderr


def test_a_local_dask_cluster_forks_its_workers_only_from_a_process_without_nest() -> None:
    """`einet trials` never imports NEST, so its LocalCluster's workers are forked from it (Dask
    and einet already imported); a process that has NEST's threads spawns them instead, as a
    forked copy of it would hang in NEST's first parallel region."""
    from einet.kernel import nest
    from einet.trials.pool import QUIET_LOCAL_CLUSTER, local_cluster_config

    nest()
    method = "distributed.worker.multiprocessing-method"
    assert local_cluster_config() == QUIET_LOCAL_CLUSTER and method not in QUIET_LOCAL_CLUSTER
    ask = f"import sys, json; from einet.trials.pool import local_cluster_config; c = local_cluster_config(); print(json.dumps([c.get({method!r}), 'nest' in sys.modules]))"
    done = subprocess.run([sys.executable, "-c", ask], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(done.stdout) == ["fork", False]

"""The compare view's numbers: ISI CV, and restored runs against the continued run and the
spread across seeds (real runs of the small network)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from einet import NetworkConfig, Session
from einet.analysis import isi_cv, mean_weight
from einet.compare import MIN_SEEDS, SeedRerun, run_stats, versus_continued
from einet.demo import run_demo

from .conftest import SMALL


def test_isi_cv_of_poisson_and_clock_trains() -> None:
    rng = np.random.default_rng(1)
    t = np.cumsum(rng.exponential(10.0, size=(50, 400)), axis=1)
    senders = np.repeat(np.arange(50), 400)
    assert abs(isi_cv(senders, t.ravel()) - 1.0) < 0.05
    clock = np.tile(np.arange(0.0, 1000.0, 10.0), 20)
    assert isi_cv(np.repeat(np.arange(20), 100), clock) == 0.0
    assert math.isnan(isi_cv(np.array([1, 2]), np.array([1.0, 2.0]))), "no neuron with 3 spikes"


def test_mean_weight_picks_the_model_asked_for() -> None:
    w = {"a": np.array([1.0, 3.0]), "b": np.array([10.0])}
    assert mean_weight(w, "b") == 10.0 and mean_weight(w) == 2.0 and math.isnan(mean_weight({}, "a"))


def test_restored_runs_against_the_continued_run(tmp_path: Path) -> None:
    runs = run_demo(Session(SMALL), tmp_path / "demo.h5")
    assert [r.origin.kind for r in runs] == ["fresh", "continued", "restored", "restored", "restored"]
    versus = versus_continued(runs, {runs[2].origin.snapshot: 1}, "e_syn")
    assert versus[0] is None and versus[1] is None, "only restored runs are compared"
    stats = [run_stats(r, "e_syn") for r in runs]
    rates = [s.rate_hz for s in stats]
    for i in (2, 3, 4):
        v = versus[i]
        assert v is not None and v.continued == 1 and v.n_seeds == 2
        assert math.isclose(v.delta.rate_hz, rates[i] - rates[1])
        assert math.isclose(v.delta.cv, stats[i].cv - stats[1].cv)
        assert v.spread is not None and math.isclose(v.spread.rate_hz, abs(rates[2] - rates[4]) / math.sqrt(2)), "one run per seed"
    assert versus[2] == versus[3], "identical runs compare identically"
    assert all(not math.isnan(s.cv) and not math.isnan(s.mean_weight) for s in stats)
    assert versus[2].within("rate_hz") is None, "two seeds are too few to judge"


def test_runs_of_another_length_or_snapshot_are_not_compared(tmp_path: Path) -> None:
    session = Session(SMALL)
    session.build()
    session.run()
    session.store(tmp_path / "a.h5")
    continued = session.run()
    session.restore(tmp_path / "a.h5")
    shorter = session.run(SMALL.t_sim_ms / 2)
    assert versus_continued([continued, shorter], {shorter.origin.snapshot: 0}) == [None, None]
    assert versus_continued([continued, shorter], {}) == [None, None]


def test_one_seed_has_no_spread(tmp_path: Path) -> None:
    session = Session(NetworkConfig(scale=0.1, t_sim_ms=100.0))
    session.build()
    session.run()
    session.store(tmp_path / "b.h5")
    continued = session.run()
    session.restore(tmp_path / "b.h5")
    restored = session.run()
    [none, v] = versus_continued([continued, restored], {restored.origin.snapshot: 0})
    assert none is None and v is not None and v.spread is None and v.n_seeds == 1 and v.within("rate_hz") is None


def test_three_seeds_give_a_verdict(tmp_path: Path) -> None:
    session = Session(NetworkConfig(scale=0.1, t_sim_ms=100.0))
    session.build()
    session.run()
    session.store(tmp_path / "c.h5")
    runs = [session.run()]
    for seed in (1, 2, 3):
        session.restore(tmp_path / "c.h5", seed=seed)
        runs.append(session.run())
    versus = versus_continued(runs, {runs[1].origin.snapshot: 0})
    v = versus[1]
    assert v is not None and v.n_seeds == 3 and v.spread is not None
    rates = [r.rate_hz for r in runs[1:]]
    assert math.isclose(v.spread.rate_hz, float(np.std(rates, ddof=1)))
    assert v.within("rate_hz") == (abs(v.delta.rate_hz) <= 2 * v.spread.rate_hz)


def test_seed_reruns_made_as_trials_count_in_the_spread(tmp_path: Path) -> None:
    """Trials without a change are seed reruns of their snapshot: with them, one restored run
    of the session reaches MIN_SEEDS and gets a verdict. Reruns of another snapshot or length
    do not count, nor one of a seed the session's runs already have."""
    session = Session(NetworkConfig(scale=0.1, t_sim_ms=100.0))
    session.build()
    session.run()
    path = tmp_path / "d.h5"
    session.store(path)
    continued = session.run()
    session.restore(path, seed=1)
    restored = session.run()
    trials = []
    for seed in (2, 3, 1):
        session.restore(path, seed=seed)
        trials.append(session.run())
    snapshot = restored.origin.snapshot
    reruns = [SeedRerun.of(t, snapshot) for t in trials]
    assert reruns[2].stats("e_syn") == run_stats(restored, "e_syn"), "a rerun's figures are the run's"
    others = [dataclasses.replace(reruns[0], snapshot="/elsewhere.h5", seed=7), dataclasses.replace(reruns[0], length_ms=50.0, seed=8)]
    [none, v] = versus_continued([continued, restored], {snapshot: 0}, "e_syn", reruns=[*reruns, *others])
    assert none is None and v is not None and v.n_seeds == MIN_SEEDS == 3
    rates = [restored.rate_hz, trials[0].rate_hz, trials[1].rate_hz]
    assert v.spread is not None and math.isclose(v.spread.rate_hz, float(np.std(rates, ddof=1)))
    assert v.within("rate_hz") == (abs(v.delta.rate_hz) <= 2 * v.spread.rate_hz) and v.within("rate_hz") is not None
    [_, alone] = versus_continued([continued, restored], {snapshot: 0}, "e_syn")
    assert alone is not None and alone.n_seeds == 1 and alone.within("rate_hz") is None, "without the trials: no verdict"

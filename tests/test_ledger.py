"""The dashboard's run ledger on its own: no NEST, no Textual, runs made up from small arrays."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np

from einet.history import HistoryRun
from einet.runs import Origin, RunResult
from einet.tui.ledger import RunLedger


def result(digest: str, t_start_ms: float = 0.0, t_stop_ms: float = 200.0, origin: str = "fresh", label: str = "") -> RunResult:
    """A run as the engine reports it, reduced to what the ledger reads."""
    return RunResult(
        label=label or digest,
        seed=1,
        threads=1,
        origin=Origin(origin),
        t_start_ms=t_start_ms,
        t_stop_ms=t_stop_ms,  # type: ignore[arg-type]
        senders=np.zeros(0, np.int64),
        times=np.zeros(0),
        n_recorded=0,
        rate_hz=0.0,
        psth_t_ms=np.zeros(0),
        psth_hz=np.zeros((0, 0)),
        weights={},
        digest=digest,
    )


def earlier_run(run_id: int, digest: str) -> HistoryRun:
    fields = {f.name: "" for f in dataclasses.fields(HistoryRun)}
    return HistoryRun(**{**fields, "id": run_id, "digest": digest, "session": "another", "snapshot_t_ms": None, "seed": 1, "threads": 1, "ranks": 1, "n_vp": 1, "t_start_ms": 0.0, "t_stop_ms": 200.0, "spikes": 0, "rate_hz": None})  # type: ignore[arg-type]


def test_identical_runs_name_the_first_with_their_spikes() -> None:
    ledger = RunLedger()
    assert [ledger.add(result(d)) for d in ("a", "b", "a", "a")] == [0, 1, 2, 3]
    assert ledger.same_as == ["", "", "run 1", "run 1"]
    assert ledger.identical() == [None, None, 0, 0]
    assert ledger.history_ids == [None] * 4 and ledger.unstored


def test_the_first_run_of_a_restored_kernel_is_labelled_so() -> None:
    ledger = RunLedger()
    assert ledger.next_label(snapshot="", t_ms=0.0) == "run 1"
    assert ledger.next_label(snapshot="s.h5", t_ms=0.0) == "run 1 (restored)"
    ledger.add(result("a"))
    assert ledger.next_label(snapshot="s.h5", t_ms=0.0) == "run 2", "the kernel has run since the restore"
    ledger.new_kernel()
    assert ledger.next_label(snapshot="s.h5", t_ms=0.0) == "run 2 (restored)"


def test_a_run_continuing_from_a_stored_end_state_is_the_snapshots_reference() -> None:
    ledger = RunLedger()
    ledger.add(result("a", 0.0, 200.0))
    assert ledger.store_taken("s.h5", 200.0) is None, "not published yet"
    assert not ledger.unstored
    assert ledger.store_published("s.h5") == 0, "the file holds run 1's end state"
    ledger.add(result("b", 200.0, 400.0, "continued"))
    assert ledger.continued_from == {"s.h5": 1}


def test_either_half_of_a_store_may_come_first() -> None:
    """Under MPI the file is published before the store's reply."""
    ledger = RunLedger()
    ledger.add(result("a", 0.0, 200.0))
    assert ledger.store_published("s.h5") is None
    assert ledger.store_taken("s.h5", 200.0) == 0


def test_a_state_taken_mid_run_or_on_a_new_kernel_is_nobodys_reference() -> None:
    ledger = RunLedger()
    ledger.add(result("a", 0.0, 200.0))
    assert ledger.store_taken("mid.h5", 150.0) is None and ledger.store_published("mid.h5") is None
    ledger.add(result("b", 150.0, 400.0, "continued"))
    assert ledger.continued_from == {}

    ledger.store_taken("end.h5", 400.0)
    ledger.new_kernel()  # a reset or a restore: what goes on next is not the stored kernel
    ledger.add(result("c", 400.0, 600.0, "continued"))
    assert ledger.continued_from == {}


def test_a_failed_store_or_a_dead_engine_notes_nothing() -> None:
    ledger = RunLedger()
    ledger.add(result("a", 0.0, 200.0))
    ledger.store_taken("lost.h5", 200.0)
    ledger.store_failed("lost.h5")
    assert ledger.store_published("lost.h5") is None

    ledger.store_taken("gone.h5", 200.0)
    ledger.engine_died()
    assert ledger.store_published("gone.h5") is None
    ledger.add(result("b", 200.0, 400.0, "continued"))
    assert ledger.continued_from == {}


def test_an_earlier_sessions_run_is_named_only_when_no_run_of_this_session_is() -> None:
    ledger = RunLedger()
    ledger.add(result("a"))
    ledger.add(result("a"))
    assert ledger.recorded(0, 7, earlier_run(3, "a")) is True
    assert ledger.recorded(1, 8, earlier_run(3, "a")) is False, "run 1 is named already"
    assert ledger.same_as == ["h3", "run 1"] and ledger.history_ids == [7, 8]
    ledger.add(result("b"))
    assert ledger.recorded(2, None, None) is False and ledger.same_as[2] == "" and ledger.history_ids[2] is None


def test_the_ledger_loads_neither_nest_nor_textual() -> None:
    code = "import sys, einet.tui.ledger; print(sorted({m.split('.')[0] for m in sys.modules} & {'nest', 'textual', 'rich'}))"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["[]"]

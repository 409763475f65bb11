"""The run history (einet/history.py and `einet history`): real runs, real SQLite files."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from einet import NetworkConfig, Session
from einet.analysis import isi_cv, mean_weight, spike_digest
from einet.cli import main
from einet.history import HISTORY_FILE, SCHEMA_VERSION, History, HistoryRun, file_sha256, history_path
from einet.runs import Origin, RunResult

from .conftest import ROOT, einet_cli, one_line_error, wait_for


def synthetic(i: int, label: str = "", origin: Origin | None = None) -> RunResult:
    """A RunResult from small numpy arrays (data for the history, not a NEST stand-in)."""
    rng = np.random.default_rng(i)
    senders = rng.integers(1, 40, 400)
    times = np.round(np.sort(rng.uniform(0.0, 100.0, 400)), 1)
    return RunResult(
        label=label or f"synthetic {i}",
        seed=i + 1,
        threads=2,
        origin=origin or Origin("fresh"),
        t_start_ms=0.0,
        t_stop_ms=100.0,
        senders=senders,
        times=times,
        n_recorded=40,
        rate_hz=100.0,
        psth_t_ms=np.zeros(1),
        psth_hz=np.zeros((1, 1)),
        weights={"e_syn": rng.uniform(0.5, 1.5, 50)},
        digest=spike_digest(senders, times),
    )


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def history_json(h: Path) -> dict:
    p = einet_cli("history", "--json", "--history", str(h), "--limit", "1000")
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_history_path_env_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("EINET_HISTORY")
    assert history_path(tmp_path) == tmp_path / HISTORY_FILE == tmp_path / "einet-history.sqlite"
    monkeypatch.setenv("EINET_HISTORY", str(tmp_path / "elsewhere.sqlite"))
    assert history_path(tmp_path) == tmp_path / "elsewhere.sqlite"


def test_record_and_read_back_real_runs(small: NetworkConfig, stored: Path, tmp_path: Path) -> None:
    session = Session(small)
    session.build()
    fresh = session.run(100.0, label="fresh")
    session.restore(stored)
    restored = session.run(100.0, label="restored")
    sha = file_sha256(stored)
    assert sha == sha256_of(stored)

    path = tmp_path / "sub" / "h.sqlite"  # the folder is created
    with History.open(path) as h:
        assert h.enabled and h.warning == "" and len(h.session) == 32
        ids = [h.record(fresh), h.record(restored, snapshot_sha256=sha)]
        assert ids == [1, 2]
        h.note_stored(1, stored, sha)
    with History.open(path) as h:  # a new session reads what the first one wrote
        runs = h.runs()
        assert [r.id for r in runs] == [1, 2] and all(r.session != h.session for r in runs)
        assert runs[0].session == runs[1].session
        a, b = runs
        assert a.digest == fresh.digest and len(a.digest) == 64 and a.short_digest == fresh.digest[:12]
        assert (a.seed, a.threads, a.ranks, a.n_vp) == (small.seed, small.threads, 1, small.threads)
        assert a.spikes == fresh.n_spikes > 0 and a.rate_hz == pytest.approx(fresh.rate_hz)
        assert (a.t_start_ms, a.t_stop_ms) == (fresh.t_start_ms, fresh.t_stop_ms) == (0.0, 100.0)
        assert a.origin == "fresh" and a.snapshot == "" and a.snapshot_sha256 == "" and a.snapshot_t_ms is None
        assert a.cv is not None and math.isfinite(a.cv) and a.cv == pytest.approx(isi_cv(fresh.senders, fresh.times))
        assert a.mean_weight is not None and math.isfinite(a.mean_weight) and a.mean_weight == pytest.approx(mean_weight(fresh.weights))
        assert a.model == "einet.models.brunel_stdp" and a.cancelled is False and a.bit_comparable is True
        assert a.stored == os.path.abspath(stored) and a.stored_sha256 == sha
        assert b.origin == "restored" and b.snapshot == os.path.abspath(stored) and b.snapshot_sha256 == sha
        assert b.snapshot_t_ms == 200.0 and b.digest == restored.digest and b.stored == ""
        assert h.first_with_digest(fresh.digest) == a
        assert h.first_with_digest(fresh.digest, before_id=1) is None
        assert h.first_with_digest("0" * 64) is None
        assert h.runs(limit=1) == [b]
        doc = a.to_dict()
        assert json.loads(json.dumps(doc)) == doc and doc["digest"] == fresh.digest and doc["id"] == 1
        assert set(doc) == {f for f in HistoryRun.__dataclass_fields__}


def test_restored_runs_with_one_seed_are_found_identical(small: NetworkConfig, stored: Path, tmp_path: Path) -> None:
    session = Session(small)
    results = []
    for _ in range(2):
        session.restore(stored)
        results.append(session.run(50.0, label="again"))
    assert results[0].digest == results[1].digest
    with History.open(tmp_path / "h.sqlite") as h:
        first, second = (h.record(r, snapshot_sha256=file_sha256(stored)) for r in results)
        assert (first, second) == (1, 2)
        assert h.first_with_digest(results[1].digest, before_id=second).id == first  # type: ignore[union-attr]


def test_file_sha256_matches_hashlib_and_follows_changes(tmp_path: Path) -> None:
    f = tmp_path / "blob"
    f.write_bytes(os.urandom(3 * (1 << 20) + 17))  # more than one block
    assert file_sha256(f) == sha256_of(f) == file_sha256(f)
    st = f.stat()
    f.write_bytes(os.urandom(st.st_size))  # same size, new content and mtime
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert file_sha256(f) == sha256_of(f)
    assert file_sha256(tmp_path / "missing") == "" and file_sha256(tmp_path) == ""
    os.mkfifo(tmp_path / "fifo")
    assert file_sha256(tmp_path / "fifo") == ""  # not opened: reading it would block


def test_cli_history_survives_restarts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    h = tmp_path / "h.sqlite"
    xs = [tmp_path / "x1.h5", tmp_path / "x2.h5"]
    docs = []
    for x in xs:
        p = einet_cli("run", "--t", "100", "--scale", "0.1", "--store", str(x), "--history", str(h), "--json")
        assert p.returncode == 0 and p.stderr == "", p.stderr
        docs.append(json.loads(p.stdout))
    monkeypatch.setenv("EINET_HISTORY", str(h))  # the default, without --history
    p = einet_cli("restore", str(xs[0]), "--json")
    assert p.returncode == 0 and p.stderr == "", p.stderr
    restored = json.loads(p.stdout)
    p = einet_cli("restore", str(xs[0]), "--t", "20", "--json", "--no-history")
    assert p.returncode == 0 and p.stderr == "", p.stderr

    doc = history_json(h)
    assert doc["history"] == str(h)
    runs = doc["runs"]
    assert [r["id"] for r in runs] == [1, 2, 3], "--no-history records nothing"
    first, second, third = runs
    assert first["digest"] == second["digest"] == docs[0]["digest"] == docs[1]["digest"]
    assert (first["identical_to"], second["identical_to"], third["identical_to"]) == (None, 1, None)
    assert first["session"] != second["session"] != third["session"]
    for run, x in zip(runs, xs):
        assert run["stored"] == os.path.abspath(x) and run["stored_sha256"] == sha256_of(x)
        assert run["origin"] == "fresh" and run["seed"] == 12345 and run["t_stop_ms"] == 100.0 and run["spikes"] == docs[0]["spikes"]
    assert sha256_of(xs[0]) != sha256_of(xs[1]), "a snapshot records its creation time"
    assert third["origin"] == "restored" and third["snapshot"] == os.path.abspath(xs[0]) and third["snapshot_sha256"] == sha256_of(xs[0])
    assert third["snapshot_t_ms"] == 100.0 and third["digest"] == restored["digest"] and third["stored"] == ""
    assert all(isinstance(r["cv"], float) and isinstance(r["mean_weight"], float) for r in runs[:2])

    p = einet_cli("history", "--history", str(h), "--limit", "2")
    assert p.returncode == 0 and p.stderr == "", p.stderr
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in p.stdout.splitlines() if line.startswith("│")]
    rows = [r for r in rows if r[0]]  # a wrapped cell continues on a line without an id
    assert [(r[0], r[-1], r[-2]) for r in rows] == [("2", "1", first["digest"][:8]), ("3", "", third["digest"][:8])]
    assert "same as" in p.stdout and "t [ms]" in p.stdout


def test_demo_records_its_five_runs(tmp_path: Path) -> None:
    h, x = tmp_path / "h.sqlite", tmp_path / "demo.h5"
    p = einet_cli("demo", "--scale", "0.05", "--t", "50", "--store", str(x), "--history", str(h), "--json")
    assert p.returncode == 0 and p.stderr == "", p.stderr
    demo = json.loads(p.stdout)["runs"]
    runs = history_json(h)["runs"]
    assert [r["label"] for r in runs] == [r["label"] for r in demo] == ["initial", "continued", "restored", "restored, same seed", "restored, other seed"]
    assert [r["digest"] for r in runs] == [r["digest"] for r in demo]
    assert [r["origin"] for r in runs] == ["fresh", "continued", "restored", "restored", "restored"]
    assert [r["identical_to"] for r in runs] == [None, None, 2, 2, None], "an exact restore is the continued run (run 2), and so is its rerun"
    assert len({r["session"] for r in runs}) == 1
    sha = sha256_of(x)
    assert runs[0]["stored"] == os.path.abspath(x) and runs[0]["stored_sha256"] == sha
    assert all(r["stored"] == "" for r in runs[1:])
    assert all(r["snapshot"] == os.path.abspath(x) and r["snapshot_sha256"] == sha and r["snapshot_t_ms"] == 50.0 for r in runs[2:])
    assert runs[4]["seed"] != runs[3]["seed"] == runs[0]["seed"]


def _damage(path: Path, kind: str) -> None:
    if kind == "random bytes":
        path.write_bytes(np.random.default_rng(1).bytes(16384))
    elif kind == "truncated":
        with History.open(path) as h:
            assert [h.record(synthetic(i)) for i in range(300)][-1] == 300
        data = path.read_bytes()
        assert len(data) > 8 * 4096 and not Path(f"{path}-wal").exists(), "the last close checkpointed"
        path.write_bytes(data[: len(data) // 2])
    elif kind == "newer schema":
        with contextlib.closing(sqlite3.connect(path)) as c:
            c.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, future TEXT)")
            c.execute("PRAGMA user_version = 99")
            c.commit()
    else:
        raise AssertionError(kind)


DAMAGES = {"random bytes": "is not a readable database (file is not a database)", "truncated": "is not a readable database (database disk image is malformed)", "newer schema": "was written by a newer einet (schema version 99"}


@pytest.mark.parametrize("kind", list(DAMAGES))
def test_damaged_history_warns_once_and_the_run_goes_on(tmp_path: Path, kind: str) -> None:
    h = tmp_path / "h.sqlite"
    _damage(h, kind)
    before = h.read_bytes()
    p = einet_cli("run", "--t", "50", "--scale", "0.05", "--history", str(h), "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["spikes"] > 0
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"einet: warning: run history off: {h} ") and DAMAGES[kind] in lines[0], p.stderr
    assert lines[0].endswith("; runs are not recorded")
    assert h.read_bytes() == before, "a damaged history is left as it was"
    for args in ((), ("--json",)):
        p = einet_cli("history", "--history", str(h), *args)
        assert p.returncode == 1 and p.stdout == ""
        assert len(p.stderr.strip().splitlines()) == 1 and p.stderr.startswith(f"einet: error: {h} {DAMAGES[kind]}"), p.stderr
        assert "Traceback" not in p.stderr and "runs are not recorded" not in p.stderr


def test_bad_files_turn_the_history_off_without_raising(tmp_path: Path) -> None:
    for kind in DAMAGES:
        path = tmp_path / kind.replace(" ", "-")
        _damage(path, kind)
        h = History.open(path)
        assert not h.enabled and h.problem.startswith(f"{path} ") and h.warning == f"run history off: {h.problem}; runs are not recorded"
        assert DAMAGES[kind] in h.warning and "\n" not in h.warning
        assert h.record(synthetic(1)) is None and h.runs() == [] and h.first_with_digest("x") is None
        h.note_stored(1, path, "")
        h.close()
    foreign = tmp_path / "foreign.sqlite"
    with contextlib.closing(sqlite3.connect(foreign)) as c:
        c.execute("CREATE TABLE notes (text TEXT)")
        c.commit()
    (tmp_path / "a-file").write_text("x")
    cases = {
        foreign: "is a database but not an einet run history (tables: notes)",
        tmp_path: "is not a regular file",
        tmp_path / "a-file" / "h.sqlite": "cannot be opened or created",
    }
    for path, words in cases.items():
        h = History.open(path)
        assert not h.enabled and words in h.warning and h.record(synthetic(2)) is None, h.warning
    empty = tmp_path / "empty.sqlite"
    empty.write_bytes(b"")  # an empty file is a new database
    with History.open(empty) as h:
        assert h.enabled and h.record(synthetic(3)) == 1 and [r.label for r in h.runs()] == ["synthetic 3"]
    with contextlib.closing(sqlite3.connect(empty)) as c:
        assert c.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,) and c.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    h, go = tmp_path / "h.sqlite", tmp_path / "go"
    n_writers, n_rows = 3, 100
    code = (
        "import sys, json\n"
        "from pathlib import Path\n"
        "from tests.conftest import wait_for\n"
        "from tests.test_history import synthetic\n"
        "from einet.history import History\n"
        "h, k, go = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])\n"
        "results = [synthetic(100 * k + i, label=f'w{k} {i}') for i in range(N_ROWS)]\n"
        "Path(f'{go}.ready{k}').touch()\n"
        "wait_for(go.exists, 60, 'the go file', interval=0.001)\n"
        "history = History.open(h, timeout_s=20)\n"  # the first writers create the tables together
        "ids = [history.record(r) for r in results]\n"
        "print(json.dumps({'session': history.session, 'ids': ids, 'warning': history.warning}))\n"
    ).replace("N_ROWS", str(n_rows))
    procs = [subprocess.Popen([sys.executable, "-c", code, str(h), str(k), str(go)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k in range(n_writers)]
    try:

        def all_ready() -> bool:
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs if p.poll() is not None]
            return all(Path(f"{go}.ready{k}").exists() for k in range(n_writers))

        wait_for(all_ready, 120, "every writer to be ready")
        go.touch()
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
    assert [p.returncode for p in procs] == [0] * n_writers, [err for _, err in outs]
    docs = [json.loads(out) for out, _ in outs]
    assert all(d["warning"] == "" and None not in d["ids"] and len(d["ids"]) == n_rows for d in docs)
    assert sorted(i for d in docs for i in d["ids"]) == list(range(1, n_writers * n_rows + 1))
    with History.open(h) as history:
        runs = history.runs()
    assert len(runs) == n_writers * n_rows
    by_session = {d["session"]: d for d in docs}
    for run in runs:
        k, i = (int(x) for x in run.label[1:].split())
        assert by_session[run.session]["ids"][i] == run.id and run.digest == synthetic(100 * k + i).digest and run.seed == 100 * k + i + 1
    with contextlib.closing(sqlite3.connect(h)) as c:
        assert c.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert c.execute("SELECT count(*) FROM runs").fetchone() == (n_writers * n_rows,)


@pytest.mark.serial
def test_a_locked_history_gives_up_in_time(tmp_path: Path) -> None:
    h = tmp_path / "h.sqlite"
    history = History.open(h, timeout_s=0.2)
    assert history.enabled and history.record(synthetic(1)) == 1
    with contextlib.closing(sqlite3.connect(h, isolation_level=None, timeout=0)) as blocker:
        blocker.execute("BEGIN EXCLUSIVE")
        start = time.monotonic()
        assert history.record(synthetic(2)) is None
        waited = time.monotonic() - start
        assert 0.15 < waited < 5.0
        assert not history.enabled and history.warning == f"run history off: {h} is locked by another process (database is locked); runs are not recorded"
        assert history.record(synthetic(3)) is None, "off for good: no second wait"
        blocker.execute("ROLLBACK")
    with History.open(h) as again:
        assert [r.label for r in again.runs()] == ["synthetic 1"]

    plain = tmp_path / "plain.sqlite"  # not in WAL mode yet: opening it needs a read, which waits
    sqlite3.connect(plain).close()
    with contextlib.closing(sqlite3.connect(plain, isolation_level=None, timeout=0)) as blocker:
        blocker.execute("CREATE TABLE IF NOT EXISTS dummy (a)")  # make it a non-empty file
        blocker.execute("DROP TABLE dummy")
        blocker.execute("BEGIN EXCLUSIVE")
        start = time.monotonic()
        locked = History.open(plain, timeout_s=0.2)
        assert time.monotonic() - start < 5.0
        assert not locked.enabled and "is locked by another process" in locked.warning
        blocker.execute("ROLLBACK")
    with History.open(plain) as h2:
        assert h2.enabled and h2.runs() == []


def test_history_cli_shows_db_strings_safely_and_says_when_empty(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from einet.cli import main

    h = tmp_path / "h.sqlite"
    p = einet_cli("history", "--history", str(h))
    assert p.returncode == 0 and p.stdout.strip() == f"no runs recorded yet in {h}" and not h.exists()
    with History.open(h) as history:
        assert history.record(synthetic(1, label="[bold red]evil\x1b[2J")) == 1
        assert history.record(synthetic(1, label="same", origin=Origin("restored", "/x/[b]s.h5", 10.0)), snapshot_sha256="ab") == 2
    p = einet_cli("history", "--history", str(h))
    assert p.returncode == 0 and p.stderr == "", p.stderr
    cells = " ".join(line.split("│")[3].strip() for line in p.stdout.splitlines() if line.startswith("│"))
    assert cells.startswith("[bold red]evil\\"), "markup shown, not applied; the escape sequence made visible"
    assert "\x1b" not in p.stdout and "[b]s.h5" in p.stdout
    assert main(["history", "--history", str(h), "--limit", "0"]) == 2  # a usage error: in this process
    one_line_error(capsys, "einet: usage: --limit must be 1 or more, not 0")
    doc = history_json(h)
    assert [(r["label"], r["identical_to"]) for r in doc["runs"]] == [("[bold red]evil\x1b[2J", None), ("same", 1)]
    assert doc["runs"][1]["snapshot"] == "/x/[b]s.h5" and doc["runs"][1]["snapshot_sha256"] == "ab"


def test_a_version_1_history_gains_the_changes_column(tmp_path: Path) -> None:
    """A history written before protocols (schema 1, no ``changes``) is upgraded in place: its
    runs stay, new runs record their changes."""
    from einet.history import _COLUMNS

    path = tmp_path / "v1.sqlite"
    with contextlib.closing(sqlite3.connect(path)) as c:
        columns = ", ".join(f"{n} {t}" for n, t in _COLUMNS if n not in ("changes", "trial_set"))
        c.execute(f"CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, {columns})")
        c.execute("CREATE INDEX runs_digest ON runs (digest, id)")
        c.execute("PRAGMA user_version = 1")
        c.commit()
    with History.open(path) as h:
        assert h.enabled and h.record(synthetic(1)) == 1, h.warning
    changed = synthetic(2)
    object.__setattr__(changed, "changes", ({"t_ms": 5.0, "target": "E", "key": "I_e", "value": 1.0, "made_at_ms": 5.0},))
    with History.open(path) as h:
        assert h.record(changed) == 2
        runs = h.runs()
    assert [r.changes for r in runs] == ["", json.dumps([dict(changed.changes[0])])]
    with contextlib.closing(sqlite3.connect(path)) as c:
        assert c.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,) == (3,)


def test_history_finds_the_dashboards_history_by_its_snapshot_dir(tmp_path: Path) -> None:
    folder = tmp_path / "snaps"
    folder.mkdir()
    with History.open(folder / HISTORY_FILE) as h:
        assert h.record(synthetic(1, label="from the dashboard")) == 1
    env = {k: v for k, v in os.environ.items() if k != "EINET_HISTORY"}
    p = subprocess.run([sys.executable, "-m", "einet.cli", "history", "--snapshot-dir", str(folder), "--json"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["history"] == str(folder / HISTORY_FILE) and [r["label"] for r in doc["runs"]] == ["from the dashboard"]


# -- round three: a history file is data, never code ------------------------------------------
_FOREVER = "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c)"
HOSTILE_SQL = {
    "an insert trigger that loops": [f"CREATE TRIGGER spin AFTER INSERT ON runs BEGIN {_FOREVER} SELECT count(*) FROM c; END"],
    "a deleting trigger": ["CREATE TRIGGER wipe AFTER INSERT ON runs BEGIN DELETE FROM runs WHERE id < new.id; END"],
    "a recursive view named runs": ["ALTER TABLE runs RENAME TO kept", f"CREATE VIEW runs AS {_FOREVER} SELECT kept.* FROM c, kept"],
    "an extra table": ["CREATE TABLE notes (text TEXT)"],
    "an extra index": ["CREATE INDEX runs_seed ON runs (seed)"],
}
"""What each file holds besides einet's own schema (and what it did to einet before)."""


def hostile_history(path: Path, sql: list[str], runs: int = 3) -> bytes:
    """An einet history of ``runs`` runs, then changed by ``sql``; its bytes (checkpointed)."""
    with History.open(path) as h:
        assert [h.record(synthetic(i)) for i in range(runs)] == list(range(1, runs + 1))
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as c:
        for statement in sql:
            c.execute(statement)
        assert c.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,), "it still says it is einet's"
    assert not Path(f"{path}-wal").exists()
    return path.read_bytes()


@pytest.mark.parametrize("kind", list(HOSTILE_SQL))
def test_a_history_holding_sql_is_left_alone(tmp_path: Path, kind: str) -> None:
    h = tmp_path / "h.sqlite"
    before = hostile_history(h, HOSTILE_SQL[kind])
    history = History.open(h)
    assert not history.enabled and "holds SQL einet did not write" in history.warning and "\n" not in history.warning, history.warning
    assert history.record(synthetic(9)) is None and history.runs() == []
    history.close()
    assert h.read_bytes() == before
    for args in (("run", "--t", "10", "--scale", "0.02", "--json"), ("history",), ("history", "--json")):
        tic = time.monotonic()
        p = einet_cli(*args, "--history", str(h), timeout=120)
        took = time.monotonic() - tic
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and "holds SQL einet did not write" in lines[0] and "Traceback" not in p.stderr, (args, p.stderr)
        if args[0] == "run":
            assert p.returncode == 0 and json.loads(p.stdout)["spikes"] >= 0 and lines[0].startswith(f"einet: warning: run history off: {h} ")
        else:
            assert p.returncode == 1 and p.stdout == "" and lines[0].startswith(f"einet: error: {h} ")
        assert took < 60, f"{args[0]} took {took:.0f} s"
        assert h.read_bytes() == before, f"{args[0]} changed the file"


def test_the_schema_check_names_what_it_found_and_keeps_einets_own(tmp_path: Path) -> None:
    h = tmp_path / "h.sqlite"
    hostile_history(h, HOSTILE_SQL["an insert trigger that loops"] + HOSTILE_SQL["a deleting trigger"] + ['CREATE VIEW "v\x1b]0;x\x07" AS SELECT 1'])
    warning = History.open(h).warning
    assert "trigger spin" in warning and "trigger wipe" in warning and "view v\\x1b]0;x\\x07" in warning and "\x1b" not in warning, warning
    h = tmp_path / "redefined.sqlite"
    hostile_history(h, ["ALTER TABLE runs RENAME TO kept", "CREATE TABLE runs (id INTEGER PRIMARY KEY, label TEXT CHECK (length(label) < 3))"])
    assert "table runs (not as einet made it)" in History.open(h).warning
    for spaced in ("einet-v2.sqlite", "einet-v1.sqlite"):
        ok = tmp_path / spaced
        with History.open(ok) as history:  # einet's own, new and reopened, is accepted
            assert history.enabled and history.record(synthetic(1)) == 1
        with History.open(ok) as history:
            assert history.enabled and [r.id for r in history.runs()] == [1]


def test_a_version_1_history_is_upgraded_and_then_accepted(tmp_path: Path) -> None:
    from einet.history import _SCHEMA_V1

    h = tmp_path / "v1.sqlite"
    with contextlib.closing(sqlite3.connect(h, isolation_level=None)) as c:
        c.execute("PRAGMA journal_mode = WAL")
        for statement in _SCHEMA_V1:
            c.execute(statement)
        c.execute("PRAGMA user_version = 1")
        c.execute(
            "INSERT INTO runs (session, recorded_at, label, origin, snapshot, snapshot_sha256, seed, threads, ranks, n_vp, t_start_ms, t_stop_ms, spikes, digest, model, cancelled, bit_comparable) VALUES ('s', '2026-01-01T00:00:00+00:00', 'old', 'fresh', '', '', 1, 2, 1, 2, 0.0, 100.0, 5, 'abc', 'm', 0, 1)"
        )
    for _ in range(2):  # upgraded, then reopened as a version 2 file
        with History.open(h) as history:
            assert history.enabled, history.warning
            assert [(r.label, r.changes) for r in history.runs()][:1] == [("old", "")]
            assert history.record(synthetic(1)) is not None
    with contextlib.closing(sqlite3.connect(h)) as c:
        assert c.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert c.execute("SELECT count(*) FROM runs").fetchone() == (3,)


def test_sql_added_while_a_history_is_open_never_runs(tmp_path: Path) -> None:
    h = tmp_path / "h.sqlite"
    history = History.open(h)
    assert history.record(synthetic(1)) == 1 and history.record(synthetic(2)) == 2
    with contextlib.closing(sqlite3.connect(h, isolation_level=None)) as c:  # another process
        c.execute(HOSTILE_SQL["a deleting trigger"][0])
    assert history.record(synthetic(3)) is None
    assert not history.enabled and "trigger wipe" in history.warning
    history.close()
    with contextlib.closing(sqlite3.connect(h)) as c:
        assert c.execute("SELECT id FROM runs ORDER BY id").fetchall() == [(1,), (2,)], "nothing was erased"


def test_the_authorizer_refuses_what_a_trigger_or_view_would_run(tmp_path: Path) -> None:
    """Past the schema check (another process adding a trigger between two statements of one
    transaction cannot, but the compiler is the last line): nothing from the file compiles."""
    from einet.history import _connect, _Deadline

    h = tmp_path / "h.sqlite"
    hostile_history(h, HOSTILE_SQL["a deleting trigger"] + ["CREATE VIEW everything AS SELECT * FROM runs"])
    with contextlib.closing(_connect(h, 1.0, _Deadline())) as c:
        assert c.execute("PRAGMA trusted_schema").fetchone() == (0,)
        with pytest.raises(sqlite3.DatabaseError, match="not authorized"):
            c.execute(
                "INSERT INTO runs (session, recorded_at, label, origin, snapshot, snapshot_sha256, seed, threads, ranks, n_vp, t_start_ms, t_stop_ms, spikes, digest, model, cancelled, bit_comparable) VALUES ('s', 't', 'x', 'fresh', '', '', 1, 2, 1, 2, 0.0, 1.0, 0, 'd', 'm', 0, 1)"
            )
        with pytest.raises(sqlite3.DatabaseError, match="prohibited"):
            c.execute("SELECT * FROM everything").fetchall()
        assert c.execute("SELECT count(*) FROM runs").fetchone() == (3,)


@pytest.mark.serial
def test_every_query_has_a_deadline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from einet import history as module

    monkeypatch.setattr(module, "QUERY_DEADLINE_S", 0.3)
    deadline = module._Deadline()
    with contextlib.closing(module._connect(tmp_path / "h.sqlite", 1.0, deadline)) as c:
        c.execute("CREATE TEMP TABLE t (x)")  # in memory: 1,000 inserts, each its own commit, took 18 s on disk
        c.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(1000)])
        deadline.start()
        tic = time.monotonic()
        with pytest.raises(sqlite3.OperationalError, match="interrupted"):
            c.execute("SELECT count(*) FROM t AS a, t AS b, t AS c").fetchone()  # 10⁹ rows
        assert time.monotonic() - tic < 5 and deadline.hit
        assert deadline.reason(sqlite3.OperationalError("interrupted")) == "did not answer within 0.3 s (left as it is)"
        deadline.stop()
        assert c.execute("SELECT 1").fetchone() == (1,), "no deadline between operations"


@pytest.mark.serial
def test_ctrl_c_ends_a_query_and_reaches_the_caller(tmp_path: Path) -> None:
    """SQLite looks at no signal and Python drops a KeyboardInterrupt raised while SQLite calls
    back: the query fails as "interrupted", and the history raises the interrupt again (the
    history stays on: Ctrl-C ends the command, not the history)."""
    code = (
        "import os, signal, sys, threading, time\n"
        "from pathlib import Path\n"
        "from einet.history import History\n"
        "h = History.open(Path(sys.argv[1]))\n"
        "h._write(lambda c: (c.execute('CREATE TEMP TABLE t (x)'), c.executemany('INSERT INTO t VALUES (?)', [(i,) for i in range(1000)])))\n"
        "threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT)).start()\n"
        "tic = time.monotonic()\n"
        "try:\n"
        "    h._read('SELECT count(*) FROM t AS a, t AS b, t AS c', ())\n"
        "    print('finished', h.warning)\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', time.monotonic() - tic, h.enabled)\n"
    )
    p = subprocess.run([sys.executable, "-c", code, str(tmp_path / "h.sqlite")], capture_output=True, text=True, timeout=120, cwd=ROOT)
    what, took, enabled = p.stdout.split()
    assert what == "interrupted" and float(took) < 4 and enabled == "True", (p.stdout, p.stderr)


def test_a_version_2_history_gains_the_set_column_and_old_rows_have_no_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A history written before sets of trials had a column (schema 2: the set only in the
    label) is upgraded in place: its runs stay, with no set; trials record theirs; ``einet
    history`` shows the set (a column, and ``trial_set`` in --json)."""
    from einet.history import _SCHEMA_V2

    h = tmp_path / "v2.sqlite"
    with contextlib.closing(sqlite3.connect(h, isolation_level=None)) as c:
        c.execute("PRAGMA journal_mode = WAL")
        for statement in _SCHEMA_V2:
            c.execute(statement)
        c.execute("PRAGMA user_version = 2")
        c.execute(
            "INSERT INTO runs (session, recorded_at, label, origin, snapshot, snapshot_sha256, seed, threads, ranks, n_vp, t_start_ms, t_stop_ms, spikes, digest, model, cancelled, bit_comparable, changes) VALUES ('s', '2026-01-01T00:00:00+00:00', 'trials 20260101-000000-abcd #1 seed 1 baseline', 'restored', '/x/warm.h5', 'ab', 1, 1, 1, 1, 0.0, 100.0, 5, 'abc', 'm', 0, 1, '')"
        )
    for _ in range(2):  # upgraded, then reopened as a version 3 file
        with History.open(h) as history:
            assert history.enabled, history.warning
            assert history.record(synthetic(1, label="trial"), trial_set="20261130-120000-beef") is not None
            assert history.record(synthetic(2, label="plain")) is not None
    with History.open(h) as history:
        runs = history.runs()
    assert [(r.label[:6], r.trial_set) for r in runs] == [("trials", ""), ("trial", "20261130-120000-beef"), ("plain", ""), ("trial", "20261130-120000-beef"), ("plain", "")]
    with contextlib.closing(sqlite3.connect(h)) as c:
        assert c.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    doc = history_json(h)
    assert [r["trial_set"] for r in doc["runs"]] == ["", "20261130-120000-beef", "", "20261130-120000-beef", ""]
    assert main(["history", "--history", str(h)]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if " id " in line)
    assert " set " in header and sum("20261130-120000-beef" in line for line in out.splitlines()) == 2, out

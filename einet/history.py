"""The run history: every run the CLI or the dashboard makes, kept in a small SQLite database.

It answers "is today's rerun identical to yesterday's?": each run's spike-train digest is kept
with its provenance (seed, threads, the snapshot it came from and that file's SHA-256). The
database lives next to the snapshots (``<snapshot dir>/einet-history.sqlite``, or
``$EINET_HISTORY``). It uses stdlib :mod:`sqlite3` in WAL mode: no server, no dependency, and
several dashboards or commands on one folder can write at once (each write is one short
``BEGIN IMMEDIATE`` transaction).

The history never stops a run: a file that is not a database, is damaged, was written by a
newer einet, cannot be created or stays locked turns it *off* (``enabled`` False) with one
line in ``warning``; nothing here raises. Only the standard library and numpy are imported.

A history file is data, never code. SQLite keeps SQL in the file (triggers run on every
insert, views replace tables), so before anything is read or written the file's schema (every
object in ``sqlite_master``: type, name, SQL) is compared with einet's own, and a file holding
anything else is left alone. Connections also refuse, at compile time, every statement a
trigger or a view would run (an authorizer: what Python 3.11 offers; SQLite's defensive mode,
no triggers and no views are set as well where ``Connection.setconfig`` exists, Python 3.12+),
trust no function in the schema (``PRAGMA trusted_schema = OFF``), and a progress handler ends
any query that outlives its deadline.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import sqlite3
import stat
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .analysis import isi_cv, mean_weight
from .runs import RunResult
from .text import one_line, visible

HISTORY_FILE = "einet-history.sqlite"
"""The history's file name in a snapshot folder."""

HISTORY_ENV = "EINET_HISTORY"
"""Environment variable naming the history file; it wins over every default."""

SCHEMA_VERSION = 3
"""``PRAGMA user_version`` of the layout below; a file with a higher one is left alone, an older
one gains the columns it lacks (version 1: ``changes`` and ``trial_set``; version 2: ``trial_set``)."""

DEFAULT_TIMEOUT_S = 3.0
"""How long a write waits for another process's write to finish before the history turns off."""

QUICK_CHECK_MAX_BYTES = 64 << 20
"""Files up to this size get ``PRAGMA quick_check`` on open (milliseconds for a history)."""

QUERY_DEADLINE_S = 5.0
"""Longest an opening, a read or a write may compute (waiting for a lock is not counted:
``timeout_s`` bounds that): a backstop, since the schema check keeps out SQL that could loop."""

_COLUMNS: tuple[tuple[str, str], ...] = (
    ("session", "TEXT NOT NULL"),
    ("recorded_at", "TEXT NOT NULL"),
    ("label", "TEXT NOT NULL"),
    ("origin", "TEXT NOT NULL"),
    ("snapshot", "TEXT NOT NULL"),
    ("snapshot_sha256", "TEXT NOT NULL"),
    ("snapshot_t_ms", "REAL"),
    ("seed", "INTEGER NOT NULL"),
    ("threads", "INTEGER NOT NULL"),
    ("ranks", "INTEGER NOT NULL"),
    ("n_vp", "INTEGER NOT NULL"),
    ("t_start_ms", "REAL NOT NULL"),
    ("t_stop_ms", "REAL NOT NULL"),
    ("spikes", "INTEGER NOT NULL"),
    ("rate_hz", "REAL"),
    ("digest", "TEXT NOT NULL"),
    ("model", "TEXT NOT NULL"),
    ("cancelled", "INTEGER NOT NULL"),
    ("bit_comparable", "INTEGER NOT NULL"),
    ("wall_s", "REAL"),
    ("cv", "REAL"),
    ("mean_weight", "REAL"),
    ("stored", "TEXT NOT NULL DEFAULT ''"),
    ("stored_sha256", "TEXT NOT NULL DEFAULT ''"),
    ("changes", "TEXT NOT NULL DEFAULT ''"),
    ("trial_set", "TEXT NOT NULL DEFAULT ''"),
)
_NAMES = tuple(name for name, _ in _COLUMNS)


def _create_statements(columns: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
    return (
        "CREATE TABLE IF NOT EXISTS runs (id INTEGER PRIMARY KEY AUTOINCREMENT, " + ", ".join(f"{n} {t}" for n, t in columns) + ")",
        "CREATE INDEX IF NOT EXISTS runs_digest ON runs (digest, id)",
    )


_SCHEMA = _create_statements(_COLUMNS)
_SCHEMA_V2 = _create_statements(tuple(c for c in _COLUMNS if c[0] != "trial_set"))
"""Version 2's layout, as a new file had it (version 3 added ``trial_set`` by ALTER TABLE)."""
_SCHEMA_V1 = _create_statements(tuple(c for c in _COLUMNS if c[0] not in ("changes", "trial_set")))
"""Version 1's layout, as einet 0.x created it (version 2 added ``changes`` by ALTER TABLE)."""
_UPGRADE_V2 = "ALTER TABLE runs ADD COLUMN changes TEXT NOT NULL DEFAULT ''"
_UPGRADE_V3 = "ALTER TABLE runs ADD COLUMN trial_set TEXT NOT NULL DEFAULT ''"
# "set" is an SQL keyword: the column is trial_set (a run's set of trials, '' for other runs)


def history_path(snapshot_dir: Path) -> Path:
    """The history file for a snapshot folder: ``$EINET_HISTORY`` if set, else
    ``snapshot_dir / HISTORY_FILE``."""
    env = os.environ.get(HISTORY_ENV, "")
    return Path(env) if env else Path(snapshot_dir) / HISTORY_FILE


@dataclass(frozen=True)
class HistoryRun:
    """One recorded run, as the history holds it."""

    id: int
    session: str
    """uuid (hex) of the History object (process or dashboard session) that recorded it."""
    recorded_at: str
    """ISO-8601 UTC, seconds."""
    label: str
    origin: str
    """fresh, continued or restored."""
    snapshot: str
    """Absolute path of the snapshot a restored run came from ('' otherwise)."""
    snapshot_sha256: str
    snapshot_t_ms: float | None
    seed: int
    threads: int
    ranks: int
    n_vp: int
    t_start_ms: float
    t_stop_ms: float
    spikes: int
    rate_hz: float | None
    digest: str
    """SHA-256 (hex) of the spike train: equal digests, identical spikes."""
    model: str
    cancelled: bool
    bit_comparable: bool
    wall_s: float | None
    cv: float | None
    """Mean coefficient of variation of inter-spike intervals (None when too few spikes)."""
    mean_weight: float | None
    """Mean of the first sampled synapse model's weights at the run's end (None if none)."""
    stored: str = ""
    """Absolute path of a snapshot stored from this run's end state ('' if none)."""
    stored_sha256: str = ""
    changes: str = ""
    """The protocol's changes made for the run, as JSON (a list; '' for none)."""
    trial_set: str = ""
    """The set of trials the run belongs to (``einet trials``, the dashboard's ``t``; '' for
    any other run, and for runs recorded before einet kept it)."""

    @property
    def short_digest(self) -> str:
        return self.digest[:12]

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-ready (NaN and infinities become None)."""
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


def _finite(value: object) -> float | None:
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _absolute(path: str | Path) -> str:
    return os.path.abspath(path) if str(path) else ""


def _reason(exc: BaseException) -> str:
    """What an sqlite or OS error means for the history file, as a phrase after its name."""
    text = one_line(exc)
    low = text.lower()
    if "locked" in low or "busy" in low:
        return f"is locked by another process ({text})"
    if "readonly" in low or "read-only" in low or isinstance(exc, PermissionError):
        return f"cannot be written ({text})"
    if "unable to open" in low or isinstance(exc, OSError):
        return f"cannot be opened or created ({text})"
    if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
        return f"is not a readable database ({text})"
    if "malformed" in low or "not a database" in low or "corrupt" in low:
        return f"is not a readable database ({text})"
    return f"cannot be used ({text})"


class _Off(Exception):
    """The history turns off for this reason (a phrase after the file's name)."""


class _Deadline:
    """The progress handler of a connection: ends the statement running past ``at``.

    It also makes Ctrl-C end a statement (SQLite looks at no signal): the KeyboardInterrupt
    comes up while SQLite calls the handler, and Python drops it there, failing the statement
    as "interrupted". Such a failure, with the deadline not reached, is noted (:meth:`failed`)
    and the interrupt raised again by :meth:`stop`."""

    def __init__(self) -> None:
        self.at = math.inf
        self.hit = False
        self.interrupted = False

    def __call__(self) -> int:
        if time.monotonic() > self.at:
            self.hit = True
            return 1
        return 0

    def failed(self, exc: BaseException) -> None:
        """Note a statement that failed: ended by Ctrl-C if not by the deadline."""
        if isinstance(exc, sqlite3.OperationalError) and str(exc) == "interrupted" and not self.hit:
            self.interrupted = True

    def start(self) -> None:
        self.at, self.hit, self.interrupted = time.monotonic() + QUERY_DEADLINE_S, False, False

    def stop(self) -> None:
        self.at = math.inf
        if self.interrupted:
            self.interrupted = False
            raise KeyboardInterrupt

    def reason(self, exc: BaseException) -> str:
        """What a failed statement means, the deadline's end included."""
        if self.hit and isinstance(exc, sqlite3.OperationalError):
            return f"did not answer within {QUERY_DEADLINE_S:g} s (left as it is)"
        return _reason(exc)


def _authorize(action: int, arg1: str | None, arg2: str | None, database: str | None, source: str | None) -> int:
    """Nothing a trigger or a view would do (``source`` names the one responsible) is allowed:
    the statement fails to compile instead of running SQL that came from the file."""
    return sqlite3.SQLITE_DENY if source is not None else sqlite3.SQLITE_OK


def _connect(path: Path, timeout_s: float, deadline: _Deadline) -> sqlite3.Connection:
    """A connection on which SQL from the file never runs (see the module's docstring)."""
    conn = sqlite3.connect(str(path), timeout=timeout_s, isolation_level=None, check_same_thread=False)
    try:
        setconfig = getattr(conn, "setconfig", None)  # Python 3.12+
        if setconfig is not None:
            for option, on in (("SQLITE_DBCONFIG_DEFENSIVE", True), ("SQLITE_DBCONFIG_ENABLE_TRIGGER", False), ("SQLITE_DBCONFIG_ENABLE_VIEW", False)):
                if hasattr(sqlite3, option):
                    setconfig(getattr(sqlite3, option), on)
        conn.execute("PRAGMA trusted_schema = OFF")
        conn.set_authorizer(_authorize)
        conn.set_progress_handler(deadline, 1000)
        conn.execute(f"PRAGMA busy_timeout = {max(0, int(timeout_s * 1000))}")
    except BaseException:
        _close_quietly(conn)
        raise
    return conn


class History:
    """The run history in one SQLite file. Create with :meth:`History.open` (never raises).

    When ``enabled`` is False every method is a no-op (``record`` returns None, ``runs`` an
    empty list) and ``warning`` says why in one line. Safe to use from several threads.
    """

    def __init__(self, path: Path, conn: sqlite3.Connection | None, warning: str = "", *, deadline: _Deadline | None = None, cookie: int = 0) -> None:
        self.path = path
        self.session = uuid.uuid4().hex
        """This object's session id, stored with every run it records."""
        self._conn = conn
        self._warning = warning
        self._lock = threading.Lock()
        self._deadline = deadline or _Deadline()
        self._cookie = cookie  # PRAGMA schema_version when the schema was last found einet's own

    @classmethod
    def open(cls, path: Path, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> History:
        """Open (creating folder, file and tables if missing) the history at ``path``.

        ``timeout_s`` is how long a write waits for another writer. Never raises: on any
        problem the returned History is disabled, with a one-line ``warning``.
        """
        path = Path(path)
        conn: sqlite3.Connection | None = None
        deadline = _Deadline()
        try:
            if path.exists() and not path.is_file():
                raise _Off("is not a regular file")
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = _connect(path, timeout_s, deadline)
            deadline.start()
            try:
                cookie = _prepare(conn, path, timeout_s)
            except sqlite3.Error as exc:
                deadline.failed(exc)
                raise
            finally:
                deadline.stop()
        except _Off as exc:
            return cls._disabled(path, conn, str(exc))
        except (sqlite3.Error, OSError, ValueError, OverflowError, TypeError) as exc:
            return cls._disabled(path, conn, deadline.reason(exc))
        except KeyboardInterrupt:
            if conn is not None:
                _close_quietly(conn)
            raise
        return cls(path, conn, deadline=deadline, cookie=cookie)

    @classmethod
    def _disabled(cls, path: Path, conn: sqlite3.Connection | None, reason: str) -> History:
        if conn is not None:
            _close_quietly(conn)
        return cls(path, None, _warning_line(path, reason))

    @property
    def enabled(self) -> bool:
        """Whether runs are recorded (False after any problem with the file)."""
        return self._conn is not None

    @property
    def warning(self) -> str:
        """Why the history is off, in one line ('' while enabled)."""
        return self._warning

    @property
    def problem(self) -> str:
        """The reason alone (``<path> is not a readable database (...)``), '' while enabled."""
        if not self._warning:
            return ""
        return self._warning.removeprefix("run history off: ").removesuffix("; runs are not recorded")

    def record(self, result: RunResult, *, snapshot_sha256: str = "", trial_set: str = "") -> int | None:
        """Record a run; returns its id, or None when the history is (or turns) off.

        For a restored run, ``snapshot_sha256`` is the SHA-256 of the file it came from (see
        :func:`file_sha256`); ``trial_set`` names the set of trials it is one of. The ISI CV and
        the mean weight are computed here.
        """
        if self._conn is None:
            return None
        try:
            row = _row(result, self.session, snapshot_sha256, trial_set)
        except Exception as exc:  # noqa: BLE001 - a malformed result must not stop the caller
            with self._lock:
                self._turn_off(f"could not record run {result.label!r} ({type(exc).__name__}: {exc})")
            return None
        sql = f"INSERT INTO runs ({', '.join(_NAMES)}) VALUES ({', '.join('?' * len(_NAMES))})"
        return self._write(lambda c: c.execute(sql, [row[n] for n in _NAMES]).lastrowid)

    def note_stored(self, run_id: int, path: Path, sha256: str) -> None:
        """Note that a snapshot of run ``run_id``'s end state was stored at ``path``."""
        if self._conn is None:
            return
        self._write(lambda c: c.execute("UPDATE runs SET stored = ?, stored_sha256 = ? WHERE id = ?", (_absolute(path), sha256, int(run_id))))

    def runs(self, limit: int | None = None) -> list[HistoryRun]:
        """The recorded runs, oldest first: all of them, or the last ``limit``."""
        rows = self._read(
            f"SELECT id, {', '.join(_NAMES)} FROM (SELECT * FROM runs ORDER BY id DESC LIMIT ?) ORDER BY id",
            (-1 if limit is None else max(0, int(limit)),),
        )
        return [] if rows is None else rows

    def first_with_digest(self, digest: str, before_id: int | None = None) -> HistoryRun | None:
        """The earliest recorded run (any session) with this digest; with ``before_id``, only
        among runs recorded before that one."""
        rows = self._read(
            f"SELECT id, {', '.join(_NAMES)} FROM runs WHERE digest = ? AND id < ? ORDER BY id LIMIT 1",
            (digest, 2**63 - 1 if before_id is None else int(before_id)),
        )
        return rows[0] if rows else None

    def close(self) -> None:
        """Close the database (the history is off afterwards, without a warning)."""
        with self._lock:
            if self._conn is not None:
                _close_quietly(self._conn)
                self._conn = None

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, change: Any) -> Any:
        """Run ``change(connection)`` in its own ``BEGIN IMMEDIATE`` transaction, on einet's
        schema only (checked again if another process changed it since)."""
        return self._transaction("BEGIN IMMEDIATE", change)

    def _read(self, sql: str, params: tuple[Any, ...]) -> list[HistoryRun] | None:
        return self._transaction("BEGIN", lambda c: [_history_run(r) for r in c.execute(sql, params).fetchall()])

    def _transaction(self, begin: str, work: Any) -> Any:
        with self._lock:
            conn = self._conn
            if conn is None:
                return None
            self._deadline.start()
            try:
                conn.execute(begin)
                try:
                    cookie = conn.execute("PRAGMA schema_version").fetchone()[0]
                    if cookie != self._cookie:
                        _check_schema(conn, conn.execute("PRAGMA user_version").fetchone()[0])
                        self._cookie = cookie
                    out = work(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        self._deadline.at = math.inf  # the rollback itself has no deadline
                        conn.execute("ROLLBACK")
                    raise
                return out
            except _Off as exc:
                self._turn_off(str(exc))
            except (sqlite3.Error, OSError) as exc:
                self._deadline.failed(exc)
                if not self._deadline.interrupted:  # Ctrl-C ends the command, not the history
                    self._turn_off(self._deadline.reason(exc))
            except (TypeError, ValueError, OverflowError) as exc:
                self._turn_off(f"holds a malformed row ({exc})")
            finally:
                self._deadline.stop()
            return None

    def _turn_off(self, reason: str) -> None:
        if self._conn is not None:
            _close_quietly(self._conn)
            self._conn = None
        self._warning = _warning_line(self.path, reason)


def _warning_line(path: Path, reason: str) -> str:
    """One line whatever the path holds: control characters (line breaks among them) as ``\\xNN``."""
    return visible(f"run history off: {path} {reason}; runs are not recorded")


def _close_quietly(conn: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.Error):
        conn.close()


def _switch_to_wal(conn: sqlite3.Connection, timeout_s: float) -> None:
    """WAL mode (kept in the file: done once). The switch needs the file to itself and SQLite
    reports "locked" at once, without its busy wait, when another process is at it too: retry
    until ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            break
        except sqlite3.OperationalError as exc:
            if not ("locked" in str(exc) or "busy" in str(exc)) or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
    if str(mode).lower() != "wal":
        raise _Off(f"cannot be switched to WAL mode (journal mode stays {mode})")


def _prepare(conn: sqlite3.Connection, path: Path, timeout_s: float) -> int:
    """Check the file (writing nothing to one that fails: its schema first, before anything
    else is read), switch it to WAL and create the tables if it is new. Returns the schema
    cookie of einet's schema; raises :class:`_Off` or an sqlite error on problems."""
    conn.execute("BEGIN")  # one read: another process may be creating the tables right now
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]  # reads the header: garbage fails here
        if version <= SCHEMA_VERSION:
            _check_schema(conn, version)
    finally:
        if conn.in_transaction:
            conn.execute("COMMIT")
    if version > SCHEMA_VERSION:
        raise _Off(f"was written by a newer einet (schema version {version}, this einet knows {SCHEMA_VERSION})")
    if version:
        _check_integrity(conn, path)
        if version < SCHEMA_VERSION:
            _upgrade(conn)
        _check_layout(conn)
    _switch_to_wal(conn, timeout_s)
    conn.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: a crash loses at most the last runs, never the file
    if version == 0:
        with _immediate(conn):
            again = conn.execute("PRAGMA user_version").fetchone()[0]  # another process may have just made it
            if again <= SCHEMA_VERSION:
                _check_schema(conn, again)
            if again == 0:
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        if again > SCHEMA_VERSION:
            raise _Off(f"was written by a newer einet (schema version {again}, this einet knows {SCHEMA_VERSION})")
        _check_layout(conn)
    conn.execute("BEGIN")
    try:  # what this process or another one just made, or upgraded, is einet's schema
        _check_schema(conn, conn.execute("PRAGMA user_version").fetchone()[0])
        return int(conn.execute("PRAGMA schema_version").fetchone()[0])
    finally:
        if conn.in_transaction:
            conn.execute("COMMIT")


def _upgrade(conn: sqlite3.Connection) -> None:
    """Version 1 → 2: the ``changes`` column; 2 → 3: ``trial_set`` (another process may be
    upgrading it right now). Old rows get '' in both: no changes recorded, no set."""
    with _immediate(conn):
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        _check_schema(conn, version)  # as it is now, in this transaction
        if version == 1:
            conn.execute(_UPGRADE_V2)
        if version in (1, 2):
            conn.execute(_UPGRADE_V3)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


@contextlib.contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """A write transaction taken at once (another process's write waits, or fails whole)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


_SQL_TOKEN = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|`[^`]*`|\[[^\]]*\]|\w+|\S")

Schema = frozenset[tuple[str, str, str, str]]


def _normal_sql(sql: str | None) -> str:
    """SQL compared token by token: spacing and the case of keywords and names do not count
    (quoted text does)."""
    return " ".join(t if t[0] in "'\"`[" else t.lower() for t in _SQL_TOKEN.findall(sql or ""))


def _schema_in(conn: sqlite3.Connection) -> Schema:
    """Every object of the database: (type, name, table, SQL normalised)."""
    rows = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
    return frozenset((str(t), str(n).lower(), str(tbl).lower(), _normal_sql(sql)) for t, n, tbl, sql in rows)


_EINET_SCHEMAS: dict[int, tuple[Schema, ...]] = {}


def _einet_schemas(version: int) -> tuple[Schema, ...]:
    """The schemas einet makes at ``version``, made in memory by the same statements (a new
    file, and those upgraded from each older version, whose table SQL ALTER TABLE rewrote)."""
    if not _EINET_SCHEMAS:

        def made(*statements: str) -> Schema:
            with contextlib.closing(sqlite3.connect(":memory:")) as mem:
                for statement in statements:
                    mem.execute(statement)
                return _schema_in(mem)

        v2 = (made(*_SCHEMA_V2), made(*_SCHEMA_V1, _UPGRADE_V2))
        v3 = (made(*_SCHEMA), made(*_SCHEMA_V2, _UPGRADE_V3), made(*_SCHEMA_V1, _UPGRADE_V2, _UPGRADE_V3))
        _EINET_SCHEMAS.update({0: (frozenset(),), 1: (made(*_SCHEMA_V1),), 2: v2, 3: v3})
    return _EINET_SCHEMAS.get(version, ())


def _check_schema(conn: sqlite3.Connection, version: int) -> None:
    """The file holds einet's schema of ``version`` and nothing else (no trigger, view, other
    table or index, no table of another definition), before anything else of it is read."""
    have = _schema_in(conn)
    wanted = _einet_schemas(version)
    if have in wanted:
        return
    if not wanted:
        raise _Off(f"was written by a newer einet (schema version {version}, this einet knows {SCHEMA_VERSION})")
    if version == 0:
        tables = sorted(name for kind, name, _, _ in have if kind == "table")
        held = f"tables: {', '.join(tables[:5])}" if tables else ", ".join(sorted(f"{kind} {name}" for kind, name, _, _ in have)[:5])
        raise _Off(f"is a database but not an einet run history ({held})")
    ours = {(kind, name) for kind, name, _, _ in wanted[0]}
    odd = sorted(f"{kind} {name}" + (" (not as einet made it)" if (kind, name) in ours else "") for kind, name, table, sql in have - set().union(*wanted))
    lacks = sorted(f"{kind} {name}" for kind, name in ours - {(kind, name) for kind, name, _, _ in have})
    what = ", ".join([*odd[:5], *(f"lacks {x}" for x in lacks[:2])])
    raise _Off(f"holds SQL einet did not write ({what}); the history is off and the file left as it is")


def _check_layout(conn: sqlite3.Connection) -> None:
    have = {r[1] for r in conn.execute("PRAGMA table_info(runs)")}
    missing = [n for n in ("id", *_NAMES) if n not in have]
    if missing:
        raise _Off(f"has an unexpected layout (table runs lacks {', '.join(missing[:5])})")


def _check_integrity(conn: sqlite3.Connection, path: Path) -> None:
    """``PRAGMA quick_check`` (a millisecond for a history of thousands of runs); a file too big
    for that must at least read its last runs."""
    try:
        size = path.stat().st_size
    except OSError:
        size = 0
    if size <= QUICK_CHECK_MAX_BYTES:
        verdict = conn.execute("PRAGMA quick_check(1)").fetchone()[0]
        if verdict != "ok":
            raise _Off(f"is not a readable database (damaged: {str(verdict).splitlines()[0][:200]})")
    else:
        conn.execute("SELECT * FROM runs ORDER BY id DESC LIMIT 1").fetchall()


def _row(result: RunResult, session: str, snapshot_sha256: str, trial_set: str = "") -> dict[str, Any]:
    origin = result.origin
    restored = origin.kind == "restored"
    snapshot = origin.snapshot if restored and origin.snapshot and origin.snapshot != "(in memory)" else ""
    return {
        "session": session,
        "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "label": str(result.label),
        "origin": str(origin.kind),
        "snapshot": _absolute(snapshot),
        "snapshot_sha256": snapshot_sha256 if restored else "",
        "snapshot_t_ms": _finite(origin.snapshot_t_ms) if restored else None,
        "seed": int(result.seed),
        "threads": int(result.threads),
        "ranks": int(result.ranks),
        "n_vp": int(result.threads) * int(result.ranks),
        "t_start_ms": float(result.t_start_ms),
        "t_stop_ms": float(result.t_stop_ms),
        "spikes": int(result.n_spikes),
        "rate_hz": _finite(result.rate_hz),
        "digest": str(result.digest),
        "model": str(result.model),
        "cancelled": int(bool(result.cancelled)),
        "bit_comparable": int(bool(result.bit_comparable)),
        "wall_s": _finite(result.wall_s),
        "cv": _finite(isi_cv(result.senders, result.times)),
        "mean_weight": _finite(mean_weight(result.weights)),
        "stored": "",
        "stored_sha256": "",
        "changes": json.dumps([dict(c) for c in result.changes], allow_nan=False) if result.changes else "",
        "trial_set": str(trial_set),
    }


_INT_FIELDS = {"id", "seed", "threads", "ranks", "n_vp", "spikes"}
_BOOL_FIELDS = {"cancelled", "bit_comparable"}
_FLOAT_FIELDS = {"t_start_ms", "t_stop_ms"}
_OPTIONAL_FLOAT_FIELDS = {"snapshot_t_ms", "rate_hz", "wall_s", "cv", "mean_weight"}


def _history_run(row: tuple[Any, ...]) -> HistoryRun:
    """A row as a HistoryRun; values of the wrong type (a file edited by hand) raise ValueError."""
    values: dict[str, Any] = {}
    for f, v in zip(fields(HistoryRun), row):
        if f.name in _INT_FIELDS:
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            if not isinstance(v, int):
                raise ValueError(f"{f.name} is {type(v).__name__}, not an integer")
        elif f.name in _BOOL_FIELDS:
            v = bool(v)
        elif f.name in _FLOAT_FIELDS:
            if not isinstance(v, (int, float)):
                raise ValueError(f"{f.name} is {type(v).__name__}, not a number")
            v = float(v)
        elif f.name in _OPTIONAL_FLOAT_FIELDS:
            v = None if v is None else _finite(v) if isinstance(v, (int, float)) else None
        else:
            v = "" if v is None else v if isinstance(v, str) else str(v)
        values[f.name] = v
    return HistoryRun(**values)


_SHA_CACHE: dict[tuple[str, int, int], str] = {}
_SHA_LOCK = threading.Lock()
_BLOCK = 1 << 20


def file_sha256(path: Path) -> str:
    """SHA-256 (hex) of a file, read in 1 MiB blocks; '' if it cannot be read or is not a
    regular file. Cached by (resolved path, size, mtime), so hashing it again is free."""
    try:
        real = Path(path).resolve()
        st = real.stat()
        if not stat.S_ISREG(st.st_mode):
            return ""
        key = (str(real), st.st_size, st.st_mtime_ns)
        with _SHA_LOCK:
            if key in _SHA_CACHE:
                return _SHA_CACHE[key]
        h = hashlib.sha256()
        with open(real, "rb") as f:
            while block := f.read(_BLOCK):
                h.update(block)
        digest = h.hexdigest()
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop
        return ""
    with _SHA_LOCK:
        _SHA_CACHE[key] = digest
    return digest

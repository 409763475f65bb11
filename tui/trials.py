"""Trials from the dashboard's snapshot (the ``t`` key): the dialog, the set's run on local
worker processes, and the view that fills in as trials finish.

The trials run in worker processes of :mod:`einet.trials.pool`, beside the engine (which stays
usable): NEST is imported there, never in this process. A thread of the app drives the pool
(:func:`run_set`), stops when its :class:`threading.Event` is set, and posts a new
:class:`~tui.trials_book.TrialsBook` for every trial that finishes.
"""

from __future__ import annotations

import concurrent.futures as cf
import math
import threading
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Input, Label, Static

from einet.compare import SeedRerun
from einet.config import ConfigError
from einet.history import file_sha256
from einet.runs import RunResult
from einet.snapshot import inspect_snapshot
from einet.text import one_line
from einet.trials.output import figure_names
from einet.trials.pool import LocalPool, PoolError, TrialRunner, missing_software, outcome_of, usable_cores
from einet.trials.run import check_changes, for_history, run_trial, trial_specs

from .fit import Column, Part
from .markup import escape, textual_escape
from .messages import TrialsProgress
from .trials_book import TrialsBook, TrialsRequest, parse_request, table_cells, verdict_line
from .widgets import ConditionsData, ConditionsPlot, FittedTable, Row, StatusLine

POLL_S = 0.2
"""How often the set's thread looks at its stop event while it waits for a worker."""


def prepare_workers() -> None:
    """Start multiprocessing's resource tracker (before a set's first workers): it is handed
    ``sys.stderr``'s descriptor, which under Textual is a capture whose ``fileno()`` is -1, and
    starting the workers would fail ("bad value(s) in fds_to_keep"). It gets the null device
    instead: what it would say must not scribble over the dashboard either. Started only when
    trials run, not with the app (a dashboard without trials leaves no extra process)."""
    import contextlib
    import os
    from multiprocessing import resource_tracker

    with open(os.devnull, "w") as null, contextlib.redirect_stderr(null):
        resource_tracker.ensure_running()


def default_workers() -> int:
    """Local trial workers: every usable core but the engine's (at least one)."""
    return max(1, usable_cores() - 1)


class TrialsDialog(ModalScreen[TrialsRequest | None]):
    """Ask for a set of trials from ``snapshot``: seeds, changes (``--at`` and ``--vary``
    syntax), run length, workers. Enter in any field starts it; a field the library refuses is
    one line under the fields."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", id="trials-cancel")]

    def __init__(self, snapshot: str, t_ms: float, workers: int | None = None) -> None:
        super().__init__()
        self.snapshot = snapshot
        self.t_ms = t_ms
        self.n_workers = workers or default_workers()

    def compose(self) -> ComposeResult:
        # one labelled field per row, run length and workers side by side: it fits at 80x24
        with Vertical(classes="dialog wide", id="trials-dialog"):
            yield Label(f"Trials from [b]{textual_escape(Path(self.snapshot).name)}[/] — Enter starts, Escape cancels")
            with Horizontal(classes="field"):
                yield Label("seeds")
                yield Input(value="5", id="seeds", placeholder="N (1…N) or a list: 3,7,11")
            with Horizontal(classes="field"):
                yield Label("vary")
                yield Input(value="", id="vary", placeholder="TARGET.KEY=V1,V2 … (a condition per value)")
            with Horizontal(classes="field"):
                yield Label("changes")
                yield Input(value="", id="at", placeholder="T:TARGET.KEY=VALUE … (in every condition)")
            with Horizontal(classes="field"):
                yield Label("t [ms]")
                yield Input(value=f"{self.t_ms:g}", id="t")
                yield Label("workers")
                yield Input(value=str(self.n_workers), id="workers")
            yield Static("", id="problem", classes="problem")

    def on_mount(self) -> None:
        self.query_one("#seeds", Input).focus()

    def request(self) -> TrialsRequest:
        """The fields as a request (raises ConfigError with one line)."""

        def value(name: str) -> str:
            return self.query_one(f"#{name}", Input).value

        return parse_request(self.snapshot, value("seeds"), value("at"), value("vary"), value("t"), value("workers"))

    @on(Input.Submitted)
    def submitted(self, event: Input.Submitted) -> None:
        try:
            request = self.request()
        except ConfigError as exc:  # PlanError and ProtocolError are ConfigErrors: the one line each gives
            self.query_one("#problem", Static).update(textual_escape(one_line(exc)))
            return
        self.dismiss(request)

    def action_cancel(self) -> None:
        self.dismiss(None)


def run_set(request: TrialsRequest, book: TrialsBook, cancel: threading.Event, post: Callable[[Message], object], log: Path | None, record: Callable[[RunResult, str, str], None]) -> TrialsBook:
    """Run a set on local worker processes (the calling thread's: they die with it), posting a
    :class:`TrialsProgress` as it starts, for every trial that finishes, and as it ends.
    Stops within :data:`POLL_S` once ``cancel`` is set, keeping the finished trials. Each trial
    with a run is handed to ``record(run, snapshot SHA-256, set id)`` for the run history.
    Returns the last book; nothing raises (a set that cannot run ends "failed" with its line)."""
    snapshot = request.snapshot
    info = inspect_snapshot(snapshot)
    if not info.valid:
        book = book.ended("failed", f"invalid snapshot {snapshot.name}: {info.problem}")
        post(TrialsProgress(book))
        return book
    sha = file_sha256(snapshot)
    conditions = request.plan.conditions
    prepare_workers()
    pool = LocalPool(request.workers, (str(snapshot.resolve()), sha), log)
    runner: TrialRunner | None = None
    try:
        check = pool.submit(check_changes, str(snapshot.resolve()), sha, tuple(tuple(ch.to_dict() for ch in c.changes) for c in conditions))
        while not check.done():  # a worker starting NEST: seconds, and the user may stop it meanwhile
            if cancel.is_set():
                raise _Stopped
            cf.wait([check], timeout=POLL_S)
        try:
            check.result()
        except ImportError as exc:
            raise PoolError(missing_software(exc) or one_line(exc)) from None
        book = TrialsBook(book.set_id, book.snapshot, book.conditions, book.total, tuple(figure_names(list(info.groups), list(info.weight_stats))), request.t_ms, pool.describe(), "running")
        post(TrialsProgress(book))
        specs = trial_specs(request.plan, book.set_id, snapshot, sha, threads=1, t_ms=request.t_ms)
        runner = TrialRunner(pool, specs, run_trial, restart=lambda: LocalPool(request.workers, (str(snapshot.resolve()), sha), log), poll_s=POLL_S, cancel=cancel)
        for spec, future in runner:
            outcome = outcome_of(future, spec)
            rerun = None
            if outcome.result is not None:
                record(for_history(outcome.result, spec, snapshot), sha, book.set_id)
                if not conditions[spec.condition].changes:  # no change: a seed rerun of the snapshot
                    rerun = SeedRerun.of(outcome.result, book.snapshot)
            book = book.with_row({**outcome.row, "worker": outcome.worker}, rerun)
            post(TrialsProgress(book))
        book = book.ended("stopped" if cancel.is_set() else "done")
    except _Stopped:
        book = book.ended("stopped")
    except Exception as exc:  # noqa: BLE001 - a change the network refuses, a worker without NEST: the set's one line
        book = book.ended("failed", one_line(exc) if isinstance(exc, (ConfigError, PoolError)) else f"{type(exc).__name__}: {one_line(exc)}")
    finally:
        used = runner.pool if runner is not None else pool
        if cancel.is_set() or book.state == "failed":
            used.stop()  # running trials are lost, finished ones kept
        else:
            used.close()
    post(TrialsProgress(book))
    return book


class _Stopped(Exception):
    """The set was stopped before its first trial."""


TRIALS_COLUMNS = (
    Column("#", 0),
    Column("condition", 1, min_width=12),
    Column("n", 0),
    Column("mean", 0),
    Column("sd", 3),
    Column("95 % interval", 2),
    Column("Δ baseline", 1),
    Column("Δ interval", 2),
    Column("verdict", 0, min_width=8),
)


class TrialsScreen(Screen[None]):
    """A set of trials as it fills in: a plot of one figure per condition (a point per trial,
    mean and 95 % interval), its per-condition table and verdict. One figure per page (j/k),
    so it reads at 80x24; ``s`` stops a running set (finished trials stay)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Back", id="trials-close"),
        Binding("j,pagedown", "page(1)", "Next figure", id="trials-next"),
        Binding("k,pageup", "page(-1)", "Previous figure", id="trials-previous"),
        Binding("s", "stop", "Stop trials", id="trials-stop"),
    ]

    def __init__(self, book: TrialsBook, marker: str, stop: Callable[[], None] | None = None, figure: str = "") -> None:
        super().__init__()
        self.book = book
        self.marker = marker
        self._stop = stop
        self.wanted = figure  # shown once the set's figures are known (and kept while paging)
        self.page = book.pages.index(figure) if figure in book.pages else 0

    def compose(self) -> ComposeResult:
        yield StatusLine(id="trials-status")
        yield ConditionsPlot(id="trials-plot")
        yield StatusLine(id="trials-verdict")
        yield FittedTable(TRIALS_COLUMNS, id="trials-table", cursor_type="none")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(ConditionsPlot).marker = self.marker
        self.show(self.book)

    @property
    def figure(self) -> str:
        pages = self.book.pages
        return pages[min(self.page, len(pages) - 1)]

    def show(self, book: TrialsBook) -> None:
        """Draw ``book`` (a newer state of the set, or the first)."""
        figure = self.wanted if self.wanted in book.pages else self.figure
        self.book = book
        self.page = book.pages.index(figure) if figure in book.pages else min(self.page, len(book.pages) - 1)
        self._draw()

    def _draw(self) -> None:
        book, figure = self.book, self.figure
        lines = book.lines(figure)
        intervals = tuple((line.summary.mean, line.summary.ci_low, line.summary.ci_high) for line in lines) or tuple((math.nan,) * 3 for _ in book.conditions)
        values = tuple(tuple(v) for v in book.values(figure))
        self.query_one(ConditionsPlot).show(ConditionsData(figure, book.conditions, values, intervals))
        self.query_one(FittedTable).set_rows([Row(cells, key=f"c{i}") for i, cells in enumerate(table_cells(book, figure))], cursor_to_end=False)
        done, failed = len(book.rows), len(book.failed)
        state = {"starting": "starting the workers…", "running": "running (s stops)", "done": "done", "stopped": "stopped (finished trials kept)", "failed": "FAILED"}[book.state]
        parts = [
            Part(escape(f"set {book.set_id}: {done} of {book.total} trials") + (f" ([red]{failed} failed[/])" if failed else "") + f" — {state}", escape(f"{done}/{book.total} trials — {state}"), 0),
            Part(escape(f"figure {self.page + 1} of {len(book.pages)}: j/k"), escape(f"{self.page + 1}/{len(book.pages)} j/k"), 1),
            Part(escape(book.where), "", 2),
        ]
        self.query_one("#trials-status", StatusLine).show(parts)
        if book.state == "failed":
            verdict = Part(f"[red]{escape(book.problem)}[/]", None, 0)
        elif failed and not lines:
            verdict = Part(f"[red]{escape(str(book.failed[0].get('error', '')))}[/]", None, 0)
        else:
            verdict = Part(escape(verdict_line(book, figure)), None, 0)
        self.query_one("#trials-verdict", StatusLine).show([verdict])
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "page":
            step = int(str(parameters[0])) if parameters else 1
            return True if 0 <= self.page + step < len(self.book.pages) else None
        if action == "stop":
            return True if self.book.running and self._stop is not None else None
        return True

    def action_page(self, step: int) -> None:
        self.page = max(0, min(len(self.book.pages) - 1, self.page + step))
        self.wanted = self.figure
        self._draw()

    def action_stop(self) -> None:
        if self._stop is not None:
            self._stop()

    def action_close(self) -> None:
        self.dismiss(None)

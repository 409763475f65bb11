"""The einet dashboard: run, store, reset, restore and rerun NEST's balanced network live.

NEST runs in the engine process (``einet.engine``); this process only draws. Engine events
arrive on the engine's reader thread: frames go into a bounded accumulator (``LiveRun``) that
a 10 Hz timer draws from, everything else is posted as a Textual message.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from concurrent.futures import ThreadPoolExecutor

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, RichLog, Static
from textual.worker import Worker, WorkerState
import numpy as np

from einet.analysis import identical_to
from einet.children import STOP_GRACE_S
from einet.config import NetworkConfig
from einet.demo import DEMO_STEPS, play_demo
from einet.engine import Engine, EngineError, Message, result_from_message
from einet.engine.launch import MpiLaunch
from einet.engine.protocol import EngineState, weights_from
from einet.history import History, HistoryRun, file_sha256, history_path
from einet.runs import Group, RunResult

from .fit import Column, Part, shorten
from .markup import escape, textual_escape, visible
from .live import PSTH_BIN_MS, WINDOW_MS, LiveRun, LiveView
from .messages import EngineDied, EngineStatus, HistoryOpened, NestLog, NetworkChanged, OpProgress, RunRecorded, StateChanged, Stored, StoreFailed, from_engine
from .screens import CompareScreen, ConfirmScreen, HelpScreen, RestoreScreen, SeedScreen, StoreScreen
from .widgets import FittedTable, PsthData, PsthPlot, RasterData, RasterPlot, Row, StatusLine, WeightsData, WeightsPlot, legend_name, run_color

# Redraw budget: plots over SSH cost bandwidth, and a plot render costs the UI thread
# 10-20 ms, during which keys wait. The raster (what moves) redraws ~7 times a second, the
# PSTH ~3 times, the weights when a new sample arrives.
FRAME_INTERVAL_S = 0.15
STORE_WAIT_S = 600.0  # quitting waits this long at most for a background store
PSTH_INTERVAL_S = 0.35
EARLIER_RUNS = 10
"""Runs of earlier sessions the table shows (``einet history`` lists them all)."""

HISTORY_COLUMNS = (
    Column("#", 0),
    Column("run", 3, min_width=10),
    Column("same as", 2),
    Column("origin", 4, min_width=12),
    Column("seed", 1),
    Column("t [ms]", 5),
    Column("spikes", 1),
    Column("rate Hz", 1),
    Column("digest", 1, min_width=7, prefix=True),
)


class EinetApp(App[int]):
    """The dashboard. ``config`` is the network built at start (unless ``restore`` is given);
    runs are recorded in the history next to the snapshots (``EINET_HISTORY`` overrides)."""

    TITLE = "einet"
    CSS_PATH = "einet.tcss"
    BINDINGS = [
        Binding("space", "run_pause", "Run/Pause", id="run-pause"),
        Binding("c", "continue_run", "Continue", id="continue"),
        Binding("b", "build", "Build", id="build"),
        Binding("s", "store", "Store", id="store"),
        Binding("r", "reset", "Reset", id="reset"),
        Binding("l", "restore", "Restore", id="restore"),
        Binding("n", "rerun_seed", "Seed rerun", id="rerun-seed"),
        Binding("v", "compare", "Compare", id="compare"),
        Binding("p", "next_population", "Population", id="next-population"),
        Binding("w", "next_weights", "Weights of", id="next-weights"),
        Binding("d", "demo", "Demo", id="demo"),
        Binding("escape", "stop", "Stop", id="stop"),
        Binding("question_mark", "help", "Help", id="help"),
        Binding("q", "quit", "Quit", id="quit"),
    ]

    def __init__(self, config: NetworkConfig | None = None, *, snapshot_dir: Path = Path("snapshots"), restore: Path | None = None, marker: str = "braille", log_dir: Path | None = None, mpi: MpiLaunch | None = None, history: Path | None = None, record: bool = True) -> None:
        super().__init__()
        self.config = config or NetworkConfig()
        self.snapshot_dir = snapshot_dir
        self.restore_at_start = restore
        self.marker = marker
        self.engine = Engine(log_dir=log_dir, on_event=self._from_engine, mpi=mpi)
        self.es = EngineStatus()
        self.live = LiveRun()
        self.runs: list[RunResult] = []
        self.unstored = False
        self.touring = False
        self._tour_stop = threading.Event()
        self._drawn_version = -1
        self._psth_drawn_at = 0.0
        self._weights_drawn: Any = None
        self._busy_op = ""
        self.caption_text = ""
        self.current_snapshot = ""
        self.groups: tuple[Group, ...] = ()
        self.group_index = 0
        self.weight_models: list[str] = []
        self.weight_index = 0
        self.not_stored: list[str] = []
        self.store_busy = ""  # name of the snapshot a background store is writing
        self.store_progress = 0.0
        # the run history: sqlite calls wait on locks, so they run in one thread of their own
        self.history_file = history or history_path(snapshot_dir)
        self.record = record
        self.history: History | None = None
        self._history_io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="einet-history")
        self.earlier: list[HistoryRun] = []
        self.earlier_same: dict[int, int] = {}  # earlier run id → id of the first run with its digest
        self.run_ids: list[int | None] = []  # history ids of this session's runs
        self.same_as: list[str] = []  # "run K" or "hID" for each of this session's runs
        self.kernel_runs: list[int] = []  # this session's runs on the kernel as it is now
        self.continued_from: dict[str, int] = {}  # snapshot → the run that continued from it
        self._stored_at: tuple[str, float, int | None] | None = None  # (path, t, run index) of the last store on this kernel
        self._store_run: dict[str, int] = {}  # snapshot being written → the run whose end state it holds
        self._published: set[str] = set()  # snapshots published before their store's reply arrived (MPI)
        self._history_ids: dict[int, int] = {}  # (history thread) run index → history id

    # -- layout --------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield StatusLine("starting the NEST engine…", id="status")
        yield Static("", id="caption")
        yield Static("", id="intro")
        with Vertical(id="main"):
            yield RasterPlot(id="raster")
            with Horizontal(id="lower"):
                yield PsthPlot(id="psth")
                yield WeightsPlot(id="weights")
        yield FittedTable(HISTORY_COLUMNS, id="history")
        yield RichLog(id="log", max_lines=500, wrap=True, markup=True)
        yield Footer()

    def on_mount(self) -> None:
        for plot in self.query("#raster, #psth, #weights"):
            plot.marker = self.marker  # type: ignore[attr-defined]
        self.set_interval(FRAME_INTERVAL_S, self._tick)
        self._adapt_layout()
        self._show_intro()
        self._show_status()
        self.log_line(f"einet dashboard; snapshots in {escape(str(self.snapshot_dir))}")
        if self.record:
            self._history_io.submit(self._open_history)
        self.boot()

    def on_resize(self) -> None:
        self._adapt_layout()

    def _adapt_layout(self) -> None:
        self.set_class(self.size.width < 110, "narrow")
        self.set_class(self.size.height < 32, "short")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A worker's unexpected exception reaches the user (``exit_on_error=False`` would
        otherwise drop it silently)."""
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            error = event.worker.error
            text = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
            self.notify(textual_escape(text), severity="error", title="unexpected error")
            self.log_line(f"[red]unexpected error in {escape(event.worker.name or 'a worker')}: {escape(text)}[/]")

    # -- engine plumbing -----------------------------------------------------------------
    def _from_engine(self, event: Message) -> None:
        """Runs on the engine's reader thread: frames into the accumulator, the rest as
        typed messages to the UI thread."""
        if event.kind == "frame":
            weights = weights_from(event.get("weight_models", []), event.arrays)
            self.live.add_frame(event.fields, event.arrays["senders"], event.arrays["times"], event.arrays.get("groups"), weights or None)
            return
        try:
            message = from_engine(event)
        except (KeyError, TypeError, ValueError) as exc:  # the reader thread must live on
            self.post_message(NestLog([f"einet: an engine event '{event.kind}' was malformed ({exc!r}); ignored"]))
            return
        if message is not None:
            self.post_message(message)

    @on(StateChanged)
    def state_changed(self, message: StateChanged) -> None:
        self.es = message.status
        self.refresh_bindings()
        self._show_intro()
        self._show_status()

    @on(NetworkChanged)
    def network_changed(self, message: NetworkChanged) -> None:
        self.groups = message.groups
        self.weight_models = message.weight_models
        self.not_stored = message.not_stored
        self.group_index = min(self.group_index, max(0, len(self.groups) - 1))
        self.weight_index = min(self.weight_index, max(0, len(self.weight_models) - 1))
        self.live.set_groups(self.groups, self.group_index)
        self._show_intro()
        self._show_status()

    @on(NestLog)
    def nest_log(self, message: NestLog) -> None:
        for line in message.lines[-50:]:
            self.log_line(f"[dim]nest[/] {escape(line)}")

    @on(OpProgress)
    def op_progress(self, message: OpProgress) -> None:
        if message.op == "store" and self.store_busy:
            self.store_progress = message.fraction
        else:
            self._busy_op = f"{message.op} {100 * message.fraction:.0f}%"
        self._show_status()

    @on(Stored)
    def stored(self, message: Stored) -> None:
        r = message.report
        self.store_busy = ""
        self.notify(f"stored {textual_escape(r.path.name)} ({r.bytes / 1e6:.1f} MB, t = {r.t_stored_ms:g} ms; simulation paused {1000 * r.pause_s:.0f} ms)", title="store")
        how = "in the background" if r.background else "by every MPI rank (ranks store in the foreground)"
        self.log_line(f"stored {escape(str(r.path))} in {r.seconds:.1f} s {how} (pause {1000 * r.pause_s:.0f} ms, reading {r.capture_s:.1f} s, writing {r.write_s:.1f} s)")
        if str(r.path) in self._store_run:
            self._history_io.submit(self._note_stored, self._store_run.pop(str(r.path)), r.path)
        else:
            self._published.add(str(r.path))  # under MPI the file is out before the reply
        self.refresh_bindings()
        self._show_status()

    @on(StoreFailed)
    def store_failed(self, message: StoreFailed) -> None:
        self.store_busy = ""
        self._store_run.pop(str(message.path), None)
        self.current_snapshot = "" if self.current_snapshot == str(message.path) else self.current_snapshot
        self.notify(textual_escape(message.text), severity="error", title="store failed")
        self.log_line(f"[red]{escape(message.text)}[/]")
        self.refresh_bindings()
        self._show_status()

    @on(EngineDied)
    def engine_died(self, message: EngineDied) -> None:
        self.es = EngineStatus(EngineState.DEAD)
        self.kernel_runs = []
        if self.store_busy:
            self.log_line(f"[red]the store of {escape(self.store_busy)} was lost with the engine[/]")
        self.store_busy = ""
        self._store_run.clear()
        self._stored_at = None
        self.notify(f"{textual_escape(message.reason)}; starting a fresh engine (empty kernel)", severity="error", title="engine")
        self.log_line(f"[red]engine: {escape(message.reason)}[/]")
        self.refresh_bindings()
        self.boot(build=False)

    @work(thread=True, exclusive=True, group="boot", exit_on_error=False)
    def boot(self, build: bool = True) -> None:
        try:
            ready = self.engine.start()
        except EngineError as exc:
            self.call_from_thread(self.notify, textual_escape(str(exc)), severity="error", title="engine")
            return
        self.call_from_thread(self.log_line, f"engine pid {ready['pid']}, NEST {ready['nest_version']}, log {escape(str(ready['log']))}")
        if not build:
            return
        if self.restore_at_start is not None:
            self._restore(self.restore_at_start)
        else:
            self._build()

    def _call(self, op: str, **args: Any) -> Message | None:
        """Send a command and wait (worker threads only); failures become notifications."""
        try:
            return self.engine.call(op, **args)
        except EngineError as exc:
            self.call_from_thread(self.notify, textual_escape(str(exc)), severity="error", title=f"{op} failed")
            self.call_from_thread(self.log_line, f"[red]{op} failed: {escape(str(exc))}[/]")
            return None

    def _new_kernel(self) -> None:
        """After a build, reset or restore: no run of this session is on the kernel any more."""
        self.kernel_runs = []
        self._stored_at = None

    def _build(self) -> bool:
        ack = self._call("build", config=self.config.to_dict())
        if ack is not None:
            self.call_from_thread(self._new_kernel)
        return ack is not None

    def _run(self, label: str | None = None, t_ms: float | None = None, op: str = "run") -> RunResult | None:
        t_ms = self.config.t_sim_ms if t_ms is None else t_ms
        restored = self.es.snapshot and not self.kernel_runs and self.es.t_ms == 0
        label = label or f"run {len(self.runs) + 1}" + (" (restored)" if restored else "")
        self.live.reset(label, self.es.t_ms, self.es.t_ms + t_ms)
        ack = self._call(op, t_ms=t_ms, label=label)
        if ack is None:
            return None
        result = result_from_message(ack)
        self.call_from_thread(self.add_result, result)
        return result

    # -- results and history ---------------------------------------------------------------
    def add_result(self, result: RunResult) -> None:
        self.runs.append(result)
        index = len(self.runs) - 1
        self.run_ids.append(None)
        if result.origin.kind == "continued" and self._stored_at is not None and self.kernel_runs and self._stored_at[2] == self.kernel_runs[-1] and result.t_start_ms == self._stored_at[1]:
            self.continued_from[self._stored_at[0]] = index
        self.kernel_runs.append(index)
        self.unstored = True
        k = self.identical()[-1]
        self.same_as.append("" if k is None else f"run {k + 1}")
        self._show_table()
        note = "" if k is None else f" — identical to run {k + 1}"
        self.log_line(f"{escape(result.label)}: {result.n_spikes} spikes, {result.rate_hz:.1f} Hz, digest {result.short_digest}{note}")
        self._history_io.submit(self._record, index, result)
        self._drawn_version = -1
        self._draw_idle()
        self._show_intro()
        self.refresh_bindings()

    def identical(self) -> list[int | None]:
        return identical_to([r.digest for r in self.runs])

    def _open_history(self) -> None:
        """(history thread) Open the history; show earlier sessions' runs."""
        history = History.open(self.history_file)
        earlier = history.runs(EARLIER_RUNS) if history.enabled else []
        same = {}
        for h in earlier:
            first = history.first_with_digest(h.digest, before_id=h.id)
            if first is not None:
                same[h.id] = first.id
        self.history = history  # read by the history thread only
        self.post_message(HistoryOpened(earlier, same, history.warning))  # never waits for the UI

    @on(HistoryOpened)
    def history_opened(self, message: HistoryOpened) -> None:
        earlier, self.earlier_same = message.earlier, message.same
        self.earlier = earlier
        warning = message.warning
        if warning:
            self.notify(textual_escape(warning), severity="warning", title="history", timeout=8)
            self.log_line(f"[yellow]{escape(warning)}[/]")
        elif earlier:
            self.log_line(f"{len(earlier)} runs of earlier sessions from {escape(str(self.history_file))} (#hN; einet history lists all)")
        self._show_table()

    def _record(self, index: int, result: RunResult) -> None:
        """(history thread) Record a run; an identical run of an earlier session is named."""
        history = self.history
        if history is None or not history.enabled:
            return
        sha = file_sha256(Path(result.origin.snapshot)) if result.origin.kind == "restored" else ""
        run_id = history.record(result, snapshot_sha256=sha)
        if run_id is not None:
            self._history_ids[index] = run_id
        first = history.first_with_digest(result.digest, before_id=run_id) if run_id is not None else None
        earlier = first if first is not None and first.session != history.session else None
        self.post_message(RunRecorded(index, run_id, earlier, history.warning))

    @on(RunRecorded)
    def run_recorded(self, message: RunRecorded) -> None:
        index, run_id, earlier, warning = message.index, message.run_id, message.earlier, message.warning
        self.run_ids[index] = run_id
        if warning and run_id is None:
            self.notify(textual_escape(warning), severity="warning", title="history", timeout=8)
            self.log_line(f"[yellow]{escape(warning)}[/]")
        if earlier is not None and not self.same_as[index]:
            self.same_as[index] = f"h{earlier.id}"
            self.log_line(f"{escape(self.runs[index].label)} is identical to h{earlier.id}, {escape(earlier.label)} of {escape(earlier.recorded_at)} (an earlier session)")
            self._show_table()

    def _note_stored(self, index: int, path: Path) -> None:
        """(history thread) The snapshot stored from the end state of this session's run
        ``index`` (recorded before: the thread runs jobs in order)."""
        run_id = self._history_ids.get(index)
        if run_id is not None and self.history is not None and self.history.enabled:
            self.history.note_stored(run_id, path, file_sha256(path))

    def _show_table(self) -> None:
        rows = [self._earlier_row(h) for h in self.earlier] + [self._run_row(i, r) for i, r in enumerate(self.runs)]
        self.query_one("#history", FittedTable).set_rows(rows)

    def _earlier_row(self, h: HistoryRun) -> Row:
        same = self.earlier_same.get(h.id)
        origin = h.origin + (f" ← {Path(h.snapshot).stem}" if h.origin == "restored" and h.snapshot else "")
        return Row((f"h{h.id}", h.label, "" if same is None else f"h{same}", origin, str(h.seed), f"{h.t_start_ms:g}-{h.t_stop_ms:g}", str(h.spikes), f"{h.rate_hz:.1f}", h.short_digest), dim=True, key=f"h{h.id}")

    def _run_row(self, i: int, r: RunResult) -> Row:
        origin: str = r.origin.kind
        if r.origin.kind == "restored":
            origin += f" ← {Path(r.origin.snapshot).stem}"
        if not r.bit_comparable:
            origin += ", other threads"
        label = r.label + (" (cancelled)" if r.cancelled else "")
        return Row((str(i + 1), label, self.same_as[i], origin, str(r.seed), f"{r.t_start_ms:g}-{r.t_stop_ms:g}", str(r.n_spikes), f"{r.rate_hz:.1f}", r.short_digest), key=f"r{i}")

    # -- drawing -------------------------------------------------------------------------
    def log_line(self, text: str) -> None:
        self.query_one("#log", RichLog).write(text)

    def _show_intro(self) -> None:
        """Until the first run, the plots' place says what this is and what to press."""
        first = not self.runs and not self.es.state.simulating and not self.touring
        self.set_class(first, "intro")
        if not first:
            return
        state = self.es.state
        if state in (EngineState.STARTING, EngineState.DEAD):
            what = "Starting the NEST engine…"
        elif state == EngineState.BUILDING:
            what = "Building the network…"
        elif state == EngineState.RESTORING:
            what = "Restoring a snapshot…"
        elif state == EngineState.EMPTY:
            what = "The kernel is empty: [b]b[/] builds the network, [b]l[/] restores a snapshot."
        else:
            sizes = " + ".join(f"{g.size} {g.name}" for g in self.groups) or "the network"
            source = f"restored from {Path(self.es.snapshot).name}" if self.es.snapshot else "built"
            what = f"{textual_escape(sizes)} neurons, {textual_escape(source)}, waiting at t = {self.es.t_ms:g} ms."
        keys = [
            ("space", f"run {self.config.t_sim_ms:g} ms (again: pause)"),
            ("s", "store a snapshot"),
            ("l", "restore a snapshot"),
            ("n", "rerun a snapshot with another seed"),
            ("d", "demo: the example's five runs"),
            ("?", "all keys, and what a snapshot holds"),
        ]
        lines = [f"[b]einet[/] — store and restore NEST simulations. {what}", ""]
        lines += [f"  [b reverse] {k:^7}[/]  {textual_escape(v)}" for k, v in keys]
        if self.earlier:
            lines += ["", "Runs of earlier sessions are listed below, dimmed (#hN). Identical spikes show in 'same as'."]
        self.query_one("#intro", Static).update("\n".join(lines))

    def _status_parts(self) -> list[Part]:
        es = self.es
        state = str(es.state) + (f" ({self._busy_op})" if self._busy_op and es.state == EngineState.STORING else "")
        t = self.live.t if es.state.simulating else es.t_ms
        parts = [Part(f"[b]{state}[/]", None, 0)]
        if es.state in (EngineState.STARTING, EngineState.DEAD):
            return parts
        if es.snapshot and es.state != EngineState.EMPTY:
            # a restored network goes on on the stored run's clock
            parts.append(Part(f"t {t:.1f} ms (restored at {es.snapshot_t_ms:g} ms)", f"t {t:.1f} ms", 0))
        else:
            parts.append(Part(f"t {t:.1f} ms", None, 0))
        if es.protocol and es.state != EngineState.EMPTY:
            more = f" (+{len(es.protocol) - 1})" if len(es.protocol) > 1 else ""
            parts.append(Part(f"next {escape(es.protocol[0])}{more}", escape(shorten(f"next {es.protocol[0]}", 24)), 2))
        if self.store_busy:
            parts.append(Part(f"[b]storing {escape(self.store_busy)} {100 * self.store_progress:.0f}%[/]", f"[b]storing {100 * self.store_progress:.0f}%[/]", 0))
        if self.unstored and es.state.idle:
            parts.append(Part("[yellow]last run not stored[/]", "[yellow]not stored[/]", 1))
        parts.append(Part(f"seed {es.seed}", None, 2))
        threads = f"{es.threads} thread{'s' if es.threads != 1 else ''}"
        ranks = self.engine.ranks
        layout, short = (f"{ranks} ranks × {threads}", f"{ranks}×{es.threads}") if ranks > 1 else (threads, f"{es.threads} thr")
        if not es.bit_comparable:
            layout, short = layout + " ≠ snapshot", short + " ≠"
        parts.append(Part(layout, short, 3))
        if self.current_snapshot:
            name = escape(Path(self.current_snapshot).name)
            parts.append(Part(f"snapshot {name}", escape(shorten(Path(self.current_snapshot).name, 18)), 4))
        if self.groups and es.state != EngineState.EMPTY:
            sizes = " + ".join(f"{g.size} {g.name}" for g in self.groups)
            total = f"{sum(g.size for g in self.groups)} neurons"
            parts.append(Part(escape(sizes) if len(sizes) <= 32 else total, total, 5))
        return parts

    def _show_status(self) -> None:
        self.query_one("#status", StatusLine).show(self._status_parts())

    def _tick(self) -> None:
        if self.es.state.simulating:
            view = self.live.view()
            if view.version != self._drawn_version:
                self._drawn_version = view.version
                self._draw_live(view)
                self._show_status()

    @property
    def group(self) -> Group | None:
        return self.groups[self.group_index] if self.groups else None

    @property
    def weight_model(self) -> str:
        return self.weight_models[self.weight_index] if self.weight_models else ""

    def _draw_live(self, view: LiveView) -> None:
        t1 = max(view.t_ms, view.t_start_ms + min(WINDOW_MS, view.t_stop_ms - view.t_start_ms))
        t0 = max(view.t_start_ms, t1 - WINDOW_MS)
        self.query_one("#raster", RasterPlot).show(RasterData(view.label, view.raster_senders, view.raster_times, t0, t1, self.group, view.n_spikes, run_color(len(self.runs))))
        now = time.monotonic()
        if now - self._psth_drawn_at >= PSTH_INTERVAL_S:
            self._psth_drawn_at = now
            curves = tuple((g.name, view.psth_t_ms, view.psth_hz[k]) for k, g in enumerate(self.groups) if k < len(view.psth_hz))
            self.query_one("#psth", PsthPlot).show(PsthData(view.label, curves, PSTH_BIN_MS))
        if view.weights is not None and view.weights is not self._weights_drawn:
            self._weights_drawn = view.weights
            self._draw_weights(("now", view.weights.get(self.weight_model, np.empty(0))))

    def _draw_weights(self, extra: tuple[str, Any] | None = None) -> None:
        model = self.weight_model
        first = max(0, len(self.runs) - 5)
        samples = [(legend_name(str(i + 1), r.label), r.weights.get(model, np.empty(0))) for i, r in enumerate(self.runs) if i >= first]
        if extra is not None:
            samples.append(extra)
        self.query_one("#weights", WeightsPlot).show(WeightsData(model, tuple(samples)))

    def _draw_idle(self) -> None:
        """After a run: the last run's raster and PSTH, the weights of recent runs."""
        if not self.runs:
            return
        last = self.runs[-1]
        self.query_one("#raster", RasterPlot).show(RasterData(last.label, last.senders, last.times, last.t_start_ms, last.t_stop_ms, self.group, last.n_spikes, run_color(len(self.runs) - 1)))
        curves = tuple((g.name, last.psth_t_ms, last.psth_hz[k]) for k, g in enumerate(last.groups) if k < len(last.psth_hz))
        self.query_one("#psth", PsthPlot).show(PsthData(last.label, curves, PSTH_BIN_MS))
        self._draw_weights()
        self._show_status()

    # -- which keys apply ----------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        state = self.es.state
        if self.screen is not self.screen_stack[0]:
            # dialogs and the compare view have their own keys; the app's stay out of the way
            return action in ("quit", "help")
        idle = state.idle and not self.touring
        built = state == EngineState.BUILT
        rules = {
            "run_pause": (built and not self.touring) or state.simulating,
            "continue_run": built and not self.touring and self.es.t_ms > 0,
            "build": idle,
            "store": (built and not self.touring or state.simulating) and not self.store_busy,
            "reset": idle,
            "restore": idle,
            "rerun_seed": idle and bool(self.current_snapshot) and not self.store_busy,
            "demo": idle,
            "compare": bool(self.runs),
            "next_population": len(self.groups) > 1,
            "next_weights": len(self.weight_models) > 1,
            "stop": self.touring or state.simulating,
        }
        if action in rules:
            return True if rules[action] else None
        return True

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for binding in self.BINDINGS:
            assert isinstance(binding, Binding)
            if self.check_action(binding.action, ()) and binding.action not in ("quit", "stop"):
                yield SystemCommand(f"{binding.description} ({binding.key})", f"einet: {binding.description.lower()}", lambda a=binding.action: self.run_action(a))

    # -- actions -------------------------------------------------------------------------
    def action_run_pause(self) -> None:
        state = self.es.state
        if state == EngineState.RUNNING:
            self._send("pause")
        elif state == EngineState.PAUSED:
            self._send("resume")
        elif state == EngineState.BUILT:
            self.run_worker(lambda: self._run(), thread=True, group="run", exit_on_error=False)

    def action_continue_run(self) -> None:
        self.run_worker(lambda: self._run(f"run {len(self.runs) + 1} (continued)", op="continue"), thread=True, group="run", exit_on_error=False)

    def _send(self, op: str) -> None:
        """Pause/resume/cancel without blocking the UI; failures are notified like any command's.

        (A done-callback on the request's future ran on the UI thread when the engine was
        already dead, where ``call_from_thread`` refuses to run and the error was lost.)
        """
        self.run_worker(lambda: self._call(op), thread=True, group="control", exit_on_error=False)

    def action_build(self) -> None:
        self.es = replace(self.es, state=EngineState.BUILDING)
        self.refresh_bindings()
        self.run_worker(lambda: self._build() and self.call_from_thread(self.log_line, "built a fresh network"), thread=True, group="cmd", exit_on_error=False)

    def action_store(self) -> None:
        def stored(path: Path | None) -> None:
            if path is not None:
                self.snapshot_dir.mkdir(parents=True, exist_ok=True)
                self.run_worker(lambda: self._store(path), thread=True, group="cmd", exit_on_error=False)

        self.push_screen(StoreScreen(self.snapshot_dir), stored)

    def _store(self, path: Path) -> bool:
        """Store in the background: the engine takes the state at its next step boundary (a
        run goes on) and a forked process writes the file; ``Stored`` reports the end."""
        self.call_from_thread(self._store_started, path.name)
        ack = self._call("store", path=str(path), background=True)
        self.call_from_thread(self._store_taken, path, ack)
        return ack is not None

    def _store_started(self, name: str) -> None:
        self.store_busy = name
        self.store_progress = 0.0
        self.refresh_bindings()
        self._show_status()

    def _store_taken(self, path: Path, ack: Message | None) -> None:
        if ack is None:
            self.store_busy = ""
        else:
            t = float(ack["t_stored_ms"])
            self.unstored = False
            self.current_snapshot = str(path)
            last = self.kernel_runs[-1] if self.kernel_runs and self.runs[self.kernel_runs[-1]].t_stop_ms == t else None
            self._stored_at = (str(path), t, last)
            if last is not None:
                if str(path) in self._published:
                    self._published.discard(str(path))
                    self._history_io.submit(self._note_stored, last, path)
                else:
                    self._store_run[str(path)] = last
            self.log_line(f"storing {escape(path.name)} (state at t = {t:g} ms taken in {1000 * float(ack['pause_s']):.0f} ms)")
            if ack.get("background") and not ack.get("free_cores", 1) and self.es.state.simulating:
                self.log_line("NEST's threads use every core: the store reads at idle priority, so mostly once the run stops")
        self.refresh_bindings()
        self._show_status()

    def action_reset(self) -> None:
        def reset() -> None:
            if self._call("reset") is not None:
                self.call_from_thread(self._new_kernel)
                self.call_from_thread(self.log_line, "kernel reset: empty")

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.run_worker(reset, thread=True, group="cmd", exit_on_error=False)

        if self.unstored and self.es.state == EngineState.BUILT:
            self.push_screen(ConfirmScreen("The last run was not stored. Reset the kernel anyway?"), confirmed)
        else:
            confirmed(True)

    def action_restore(self) -> None:
        def chosen(path: Path | None) -> None:
            if path is not None:
                self.run_worker(lambda: self._restore(path), thread=True, group="cmd", exit_on_error=False)

        self.push_screen(RestoreScreen(self.snapshot_dir), chosen)

    def _restore(self, path: Path, seed: int | None = None) -> bool:
        args: dict[str, Any] = {"path": str(path)}
        if seed is not None:
            args["seed"] = seed
        ack = self._call("restore", **args)
        if ack is not None:
            self.call_from_thread(self._restored, path, ack)
        return ack is not None

    def _restored(self, path: Path, ack: Message) -> None:
        self._new_kernel()
        self.current_snapshot = str(path)
        self.log_line(f"restored {escape(path.name)} (stored at t = {ack['t_stored_ms']:g} ms), seed {ack['seed']}, threads {ack['threads']}")
        missing = [line.split(" (")[0] for line in ack.get("not_stored", [])]
        self.notify("not restored: " + textual_escape("; ".join(missing)) + " — ? lists all", title=f"restored {visible(path.name)}", timeout=6)
        self._show_status()

    def action_rerun_seed(self) -> None:
        snapshot = self.current_snapshot

        def chosen(seed: int | None) -> None:
            if seed is not None:
                self.run_worker(lambda: self._rerun(Path(snapshot), seed), thread=True, group="run", exit_on_error=False)

        self.push_screen(SeedScreen(snapshot, self.es.seed), chosen)

    def _rerun(self, path: Path, seed: int) -> None:
        if self._restore(path, seed):
            self._run(f"restored, seed {seed}")

    def action_compare(self) -> None:
        self.push_screen(CompareScreen(self.runs, [s or "" for s in self.same_as], self.continued_from, self.marker, self.group, self.weight_model))

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.not_stored, self.es.protocol))

    def action_next_population(self) -> None:
        if self.groups:
            self.group_index = (self.group_index + 1) % len(self.groups)
            self.live.set_groups(self.groups, self.group_index)
            self.notify(f"raster shows {textual_escape(self.groups[self.group_index].name)}", timeout=2)
            self._drawn_version = -1
            self._draw_idle()

    def action_next_weights(self) -> None:
        if self.weight_models:
            self.weight_index = (self.weight_index + 1) % len(self.weight_models)
            self.notify(f"weights of {textual_escape(self.weight_model)}", timeout=2)
            self._draw_weights()

    def action_stop(self) -> None:
        self._tour_stop.set()
        if self.es.state.simulating:
            self._send("cancel")
            self.set_timer(STOP_GRACE_S, self._stop_stuck_engine)

    def _stop_stuck_engine(self) -> None:
        """A run that did not stop is stuck inside one NEST call (cancel is honoured between
        steps): end the engine; a fresh one starts and the dashboard goes on."""
        if self.es.state.simulating:
            reason = f"the run did not stop within {STOP_GRACE_S:g} s (NEST is stuck inside one call): engine stopped"
            self.run_worker(lambda: self.engine.kill(reason), thread=True, group="kill", exit_on_error=False)

    def on_key(self) -> None:
        if not self.touring:
            self.remove_class("captioned")

    def action_demo(self) -> None:
        self._tour_stop.clear()
        self.touring = True
        self.add_class("touring")
        self._show_intro()
        self.refresh_bindings()
        self.run_worker(self._tour, thread=True, group="tour", exit_on_error=False)

    def _caption(self, text: str) -> None:
        self.caption_text = text
        self.query_one("#caption", Static).update(textual_escape(text))
        self.log_line(f"[b]tour:[/b] {escape(text)}")

    def _tour(self) -> None:
        from datetime import datetime

        path = self.snapshot_dir / datetime.now().strftime("demo-%Y%m%d-%H%M%S.h5")
        self.snapshot_dir.mkdir(parents=True, exist_ok=True)
        stopped = True
        try:
            _, complete = play_demo(_TourPlayer(self), path, self.config.seed, on_step=lambda i, step: self.call_from_thread(self._caption, f"[{i + 1}/{len(DEMO_STEPS)}] {step.caption}"), stopped=self._tour_stop.is_set)
            stopped = not complete
        finally:
            self.call_from_thread(self._end_tour, stopped)

    def _end_tour(self, stopped: bool) -> None:
        self.touring = False
        self.remove_class("touring")
        self.add_class("captioned")  # the closing caption stays until the next key
        self.refresh_bindings()
        self._show_intro()
        self._caption("demo stopped" if stopped else "demo complete: runs 'restored' and 'restored, same seed' are identical; the other seed differs — press v to compare")

    async def action_quit(self) -> None:
        self._tour_stop.set()
        if self.store_busy:
            def answered(wait: bool | None) -> None:
                self.run_worker(lambda: self._close_and_exit(abandon=not wait), thread=True, group="quit", exit_on_error=False)

            self.push_screen(ConfirmScreen(f"A store of {textual_escape(self.store_busy)} is in progress. Wait for it (y), or abandon it (n: nothing is published)?"), answered)
            return
        self.engine.close(timeout_s=STOP_GRACE_S)  # a stuck engine is killed after it
        self.exit(0)

    def _close_and_exit(self, abandon: bool) -> None:
        self.call_from_thread(self.notify, "abandoning the store" if abandon else "waiting for the store to finish…", timeout=30)
        self.engine.close(timeout_s=STORE_WAIT_S, abandon_store=abandon)
        self.call_from_thread(self.exit, 0)

    def on_unmount(self) -> None:
        self.engine.close(timeout_s=3.0)
        # the history thread finishes its writes and closes the file on its own: waiting here,
        # on the UI thread, could wait on a locked database
        self._history_io.submit(self._close_history)
        self._history_io.shutdown(wait=False)

    def _close_history(self) -> None:
        if self.history is not None:
            self.history.close()


class _TourPlayer:
    """The demo's steps played through the engine (worker thread), for :func:`play_demo`."""

    def __init__(self, app: EinetApp) -> None:
        self.app = app

    def build(self) -> bool:
        return self.app._build()

    def store(self, path: Path) -> bool:
        if not self.app._store(path):
            return False
        deadline = time.monotonic() + STORE_WAIT_S
        while self.app.store_busy and not self.app._tour_stop.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)  # the restores need the file
        return path.exists()

    def restore(self, path: Path, seed: int) -> bool:
        return self.app._restore(path, seed)

    def run(self, label: str) -> RunResult | None:
        return self.app._run(label)


def make_app(config: NetworkConfig, args: argparse.Namespace, mpi: MpiLaunch | None = None) -> EinetApp:
    """The dashboard for ``config`` with the dashboard's own flags (shared by ``einet`` and the
    tests), its engine an MPI job with ``mpi``. The CLI builds ``config`` and ``mpi``: the
    dashboard never imports the CLI (no import cycle)."""
    return EinetApp(config, snapshot_dir=args.snapshot_dir, restore=args.restore, marker=args.marker, mpi=mpi, history=getattr(args, "history", None), record=not getattr(args, "no_history", False))


def run_app(config: NetworkConfig, args: argparse.Namespace, mpi: MpiLaunch | None = None) -> int:
    app = make_app(config, args, mpi)
    return app.run(mouse=not args.no_mouse) or 0

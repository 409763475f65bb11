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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message as TextualMessage
from textual.screen import Screen
from textual.widgets import DataTable, Footer, RichLog, Static
from textual.worker import Worker, WorkerState
from rich.markup import escape
from textual_plotext import PlotextPlot
import numpy as np

from einet.analysis import identical_to
from einet.config import NetworkConfig
from einet.demo import DEMO_STEPS, OTHER_SEED, DemoStep
from einet.engine import Engine, EngineError, Message, result_from_message
from einet.engine.launch import MpiLaunch
from einet.engine.protocol import groups_from, weights_from
from einet.plots import COLORS, draw_psth, draw_raster, draw_weights
from einet.runs import Group, RunResult

from .live import WINDOW_MS, LiveRun
from .screens import CompareScreen, ConfirmScreen, HelpScreen, RestoreScreen, SeedScreen, StoreScreen

IDLE = ("empty", "built")
# Redraw budget: plots over SSH cost bandwidth, and a plot render costs the UI thread
# 10-20 ms, during which keys wait. The raster (what moves) redraws ~7 times a second, the
# PSTH ~3 times, the weights when a new sample arrives.
FRAME_INTERVAL_S = 0.15
STORE_WAIT_S = 600.0  # quitting waits this long at most for a background store
PSTH_INTERVAL_S = 0.35


class EngineEvent(TextualMessage):
    """A non-frame event from the engine (state, log, progress, died)."""

    def __init__(self, event: Message) -> None:
        super().__init__()
        self.event = event


@dataclass
class EngineState:
    state: str = "starting"
    t_ms: float = 0.0
    seed: int = 0
    threads: int = 0
    n_nodes: int = 0
    snapshot: str = ""
    snapshot_t_ms: float = 0.0
    bit_comparable: bool = True


class EinetApp(App[int]):
    """The dashboard. ``config`` is the network built at start (unless ``restore`` is given)."""

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

    def __init__(self, config: NetworkConfig | None = None, *, snapshot_dir: Path = Path("snapshots"), restore: Path | None = None, marker: str = "braille", log_dir: Path | None = None, mpi: MpiLaunch | None = None) -> None:
        super().__init__()
        self.config = config or NetworkConfig()
        self.snapshot_dir = snapshot_dir
        self.restore_at_start = restore
        self.marker = marker
        self.engine = Engine(log_dir=log_dir, on_event=self._from_engine, mpi=mpi)
        self.es = EngineState()
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

    # -- layout --------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static("starting the NEST engine…", id="status")
        yield Static("", id="caption")
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield PlotextPlot(id="raster")
                yield PlotextPlot(id="psth")
            yield PlotextPlot(id="weights")
        yield DataTable(id="history", cursor_type="row", zebra_stripes=True)
        yield RichLog(id="log", max_lines=500, wrap=True, markup=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#history", DataTable)
        table.add_columns("#", "run", "same as", "origin", "seed", "t [ms]", "spikes", "rate", "digest")
        self.set_interval(FRAME_INTERVAL_S, self._tick)
        self._adapt_layout()
        self.log_line(f"einet dashboard; snapshots in {escape(str(self.snapshot_dir))}")
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
            self.notify(escape(text), severity="error", title="unexpected error")
            self.log_line(f"[red]unexpected error in {escape(event.worker.name or 'a worker')}: {escape(text)}[/]")

    # -- engine plumbing -----------------------------------------------------------------
    def _from_engine(self, event: Message) -> None:
        """Runs on the engine's reader thread."""
        if event.kind == "frame":
            weights = weights_from(event.get("weight_models", []), event.arrays)
            self.live.add_frame(event.fields, event.arrays["senders"], event.arrays["times"], event.arrays.get("groups"), weights or None)
        elif event.kind != "heartbeat":
            self.post_message(EngineEvent(event))

    @on(EngineEvent)
    def engine_event(self, message: EngineEvent) -> None:
        ev = message.event
        if ev.kind == "state":
            self.es = EngineState(ev["state"], float(ev["t_ms"]), int(ev["seed"]), int(ev["threads"]), int(ev.get("n_nodes", 0)), str(ev["snapshot"]), float(ev["snapshot_t_ms"]), bool(ev["bit_comparable"]))
            self.refresh_bindings()
            self._show_status()
        elif ev.kind == "network":
            self.groups = groups_from(ev.get("groups", []), ev.arrays)
            self.weight_models = list(ev.get("weight_models", []))
            self.not_stored = list(ev.get("not_stored", []))
            self.group_index = min(self.group_index, max(0, len(self.groups) - 1))
            self.weight_index = min(self.weight_index, max(0, len(self.weight_models) - 1))
            self.live.set_groups(self.groups, self.group_index)
            self._show_status()
        elif ev.kind == "log":
            for line in ev.get("lines", [])[-50:]:
                self.log_line(f"[dim]nest[/] {escape(line)}")
        elif ev.kind == "progress":
            if ev.get("op") == "store" and self.store_busy:
                self.store_progress = float(ev["fraction"])
            else:
                self._busy_op = f"{ev['op']} {100 * float(ev['fraction']):.0f}%"
            self._show_status()
        elif ev.kind == "stored":
            name = Path(str(ev["path"])).name
            self.store_busy = ""
            self.notify(f"stored {escape(name)} ({int(ev['bytes']) / 1e6:.1f} MB, t = {float(ev['t_stored_ms']):g} ms; simulation paused {1000 * float(ev['pause_s']):.0f} ms)", title="store")
            how = "in the background" if ev.get("background", True) else "by every MPI rank (ranks store in the foreground)"
            self.log_line(f"stored {escape(str(ev['path']))} in {float(ev['seconds']):.1f} s {how} (pause {1000 * float(ev['pause_s']):.0f} ms, reading {float(ev.get('capture_s', 0)):.1f} s, writing {float(ev.get('write_s', 0)):.1f} s)")
            self.refresh_bindings()
            self._show_status()
        elif ev.kind == "store_failed":
            self.store_busy = ""
            self.current_snapshot = "" if self.current_snapshot == str(ev["path"]) else self.current_snapshot
            self.notify(escape(str(ev["message"])), severity="error", title="store failed")
            self.log_line(f"[red]{escape(str(ev['message']))}[/]")
            self.refresh_bindings()
            self._show_status()
        elif ev.kind == "died":
            self.es = EngineState("dead")
            self.notify(f"{escape(str(ev['reason']))}; starting a fresh engine (empty kernel)", severity="error", title="engine")
            self.log_line(f"[red]engine: {escape(str(ev['reason']))}[/]")
            self.refresh_bindings()
            self.boot(build=False)

    @work(thread=True, exclusive=True, group="boot", exit_on_error=False)
    def boot(self, build: bool = True) -> None:
        try:
            ready = self.engine.start()
        except EngineError as exc:
            self.call_from_thread(self.notify, escape(str(exc)), severity="error", title="engine")
            return
        self.call_from_thread(self.log_line, f"engine pid {ready['pid']}, NEST {ready['nest_version']}, log {ready['log']}")
        if not build:
            return
        if self.restore_at_start is not None:
            self._restore(self.restore_at_start)
        else:
            self._call("build", config=self.config.to_dict())

    def _call(self, op: str, **args: Any) -> Message | None:
        """Send a command and wait (worker threads only); failures become notifications."""
        try:
            return self.engine.call(op, **args)
        except EngineError as exc:
            self.call_from_thread(self.notify, escape(str(exc)), severity="error", title=f"{op} failed")
            self.call_from_thread(self.log_line, f"[red]{op} failed: {exc}[/]")
            return None

    def _run(self, label: str | None = None, t_ms: float | None = None, op: str = "run") -> RunResult | None:
        t_ms = self.config.t_sim_ms if t_ms is None else t_ms
        label = label or f"run {len(self.runs) + 1}"
        self.live.reset(label, self.es.t_ms, self.es.t_ms + t_ms)
        ack = self._call(op, t_ms=t_ms, label=label)
        if ack is None:
            return None
        result = result_from_message(ack)
        self.call_from_thread(self.add_result, result)
        return result

    # -- results -------------------------------------------------------------------------
    def add_result(self, result: RunResult) -> None:
        self.runs.append(result)
        self.unstored = True
        same = identical_to([r.digest for r in self.runs])
        k = same[-1]
        table = self.query_one("#history", DataTable)
        origin: str = result.origin.kind
        if result.origin.kind == "restored":
            origin += f" ← {escape(Path(result.origin.snapshot).stem)}"
        if not result.bit_comparable:
            origin += ", other threads"
        table.add_row(
            str(len(self.runs)), escape(result.label) + (" (cancelled)" if result.cancelled else ""),
            "" if k is None else f"identical to run {k + 1}", origin, str(result.seed),
            f"{result.t_start_ms:g}-{result.t_stop_ms:g}", str(result.n_spikes), f"{result.rate_hz:.1f}", result.short_digest,
        )
        table.move_cursor(row=table.row_count - 1)
        note = "" if k is None else f" — identical to run {k + 1}"
        self.log_line(f"{escape(result.label)}: {result.n_spikes} spikes, {result.rate_hz:.1f} Hz, digest {result.short_digest}{note}")
        self._drawn_version = -1
        self._draw_idle()
        self.refresh_bindings()

    def identical(self) -> list[int | None]:
        return identical_to([r.digest for r in self.runs])

    # -- drawing -------------------------------------------------------------------------
    def log_line(self, text: str) -> None:
        self.query_one("#log", RichLog).write(text)

    def _show_status(self) -> None:
        es = self.es
        state = es.state + (f" ({self._busy_op})" if self._busy_op and es.state in ("storing",) else "")
        t = self.live.t if es.state in ("running", "paused") else es.t_ms
        parts = [f"[b]{state}[/]", f"t {t:.1f} ms"]
        if es.snapshot and es.state not in ("empty", "starting", "dead"):
            # a restored run restarts at 0: show where that lies on the stored run's clock
            parts[-1] += f" since restore (snapshot t {es.snapshot_t_ms:g} → {es.snapshot_t_ms + t:.1f} ms)"
        if es.state not in ("starting", "dead"):
            threads = f"{es.threads} thread{'s' if es.threads != 1 else ''}"
            layout = f"{self.engine.ranks} ranks × {threads}" if self.engine.ranks > 1 else threads
            parts += [f"seed {es.seed}", layout + ("" if es.bit_comparable else " ≠ snapshot")]
            if self.groups and es.state not in ("empty",):
                sizes = " + ".join(f"{g.size} {g.name}" for g in self.groups)
                parts.append(escape(sizes) if len(sizes) <= 32 else f"{sum(g.size for g in self.groups)} neurons in {len(self.groups)} populations")
        if self.current_snapshot:
            parts.append(f"snapshot {escape(Path(self.current_snapshot).name)}")
        if self.store_busy:
            parts.append(f"[b]storing {escape(self.store_busy)} {100 * self.store_progress:.0f}%[/]")
        if self.unstored and es.state in IDLE:
            parts.append("[yellow]last run not stored[/]")
        self.query_one("#status", Static).update("  │  ".join(parts))

    def _tick(self) -> None:
        if self.es.state in ("running", "paused"):
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

    def _raster_title(self, label: str, n_spikes: int) -> str:
        g = self.group
        what = f"first {len(g.raster_ids)} of {g.name}" if g is not None else "no population"
        return f"{label}: spikes — {what} ({n_spikes} spikes in all)"

    def _draw_live(self, view: Any) -> None:
        raster = self.query_one("#raster", PlotextPlot)
        raster.plt.clear_figure()
        t1 = max(view.t_ms, view.t_start_ms + min(WINDOW_MS, view.t_stop_ms - view.t_start_ms))
        t0 = max(view.t_start_ms, t1 - WINDOW_MS)
        ids = self.group.raster_ids if self.group is not None else np.empty(0, np.int64)
        draw_raster(raster.plt, view.raster_senders, view.raster_times, t0, t1, ids, title=self._raster_title(view.label, view.n_spikes), marker=self.marker)
        raster.plt.xlabel("time [ms]")
        raster.refresh()
        now = time.monotonic()
        if now - self._psth_drawn_at >= PSTH_INTERVAL_S:
            self._psth_drawn_at = now
            psth = self.query_one("#psth", PlotextPlot)
            psth.plt.clear_figure()
            draw_psth(psth.plt, [(g.name, view.psth_t_ms, view.psth_hz[k]) for k, g in enumerate(self.groups) if k < len(view.psth_hz)], marker=self.marker, title=f"PSTH of {view.label} (rate per neuron, 10 ms bins)")
            psth.refresh()
        if view.weights is not None and view.weights is not self._weights_drawn:
            self._weights_drawn = view.weights
            self._draw_weights(("now", view.weights.get(self.weight_model, np.empty(0))))

    def _draw_weights(self, extra: tuple[str, Any] | None = None) -> None:
        plot = self.query_one("#weights", PlotextPlot)
        plot.plt.clear_figure()
        model = self.weight_model
        samples = [(f"{i + 1}", r.weights.get(model, np.empty(0))) for i, r in enumerate(self.runs)][-5:]
        if extra is not None:
            samples.append(extra)
        draw_weights(plot.plt, samples, model=model, marker=self.marker)
        plot.refresh()

    def _draw_idle(self) -> None:
        """After a run: the last run's raster and PSTH, the PSTHs of recent runs, all weights."""
        if not self.runs:
            return
        last = self.runs[-1]
        raster = self.query_one("#raster", PlotextPlot)
        raster.plt.clear_figure()
        ids = self.group.raster_ids if self.group is not None else np.empty(0, np.int64)
        draw_raster(raster.plt, last.senders, last.times, last.t_start_ms, last.t_stop_ms, ids, title=self._raster_title(last.label, last.n_spikes), color=COLORS[(len(self.runs) - 1) % len(COLORS)], marker=self.marker)
        raster.plt.xlabel("time [ms]")
        raster.refresh()
        psth = self.query_one("#psth", PlotextPlot)
        psth.plt.clear_figure()
        draw_psth(psth.plt, [(g.name, last.psth_t_ms, last.psth_hz[k]) for k, g in enumerate(last.groups) if k < len(last.psth_hz)], marker=self.marker, title=f"PSTH of {last.label} (rate per neuron, 10 ms bins)")
        psth.refresh()
        self._draw_weights()
        self._show_status()

    # -- which keys apply ----------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        state = self.es.state
        if self.screen is not self.screen_stack[0]:
            # dialogs and the compare view have their own keys; the app's stay out of the way
            return action in ("quit", "help")
        idle = state in IDLE and not self.touring
        built = state == "built"
        rules = {
            "run_pause": (built and not self.touring) or state in ("running", "paused"),
            "continue_run": built and not self.touring and self.es.t_ms > 0,
            "build": idle,
            "store": (built and not self.touring or state in ("running", "paused")) and not self.store_busy,
            "reset": idle,
            "restore": idle,
            "rerun_seed": idle and bool(self.current_snapshot) and not self.store_busy,
            "demo": idle,
            "compare": bool(self.runs),
            "next_population": len(self.groups) > 1,
            "next_weights": len(self.weight_models) > 1,
            "stop": self.touring or state in ("running", "paused"),
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
        if state == "running":
            self._send("pause")
        elif state == "paused":
            self._send("resume")
        elif state == "built":
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
        self.es.state = "building"
        self.refresh_bindings()
        self.run_worker(lambda: self._after(self._call("build", config=self.config.to_dict()), "built a fresh network"), thread=True, group="cmd", exit_on_error=False)

    def _after(self, ack: Message | None, text: str) -> None:
        if ack is not None:
            self.call_from_thread(self.log_line, text)

    def action_store(self) -> None:
        def stored(path: Path | None) -> None:
            if path is not None:
                self.snapshot_dir.mkdir(parents=True, exist_ok=True)
                self.run_worker(lambda: self._store(path), thread=True, group="cmd", exit_on_error=False)

        self.push_screen(StoreScreen(self.snapshot_dir), stored)

    def _store(self, path: Path) -> Message | None:
        """Store in the background: the engine takes the state at its next step boundary (a
        run goes on) and a forked process writes the file; ``stored`` reports the end."""
        self.store_busy = path.name
        self.store_progress = 0.0
        ack = self._call("store", path=str(path), background=True)
        if ack is None:
            self.store_busy = ""
        else:
            self.unstored = False
            self.current_snapshot = str(path)
            self.call_from_thread(self.log_line, f"storing {escape(path.name)} (state at t = {ack['t_stored_ms']:g} ms taken in {1000 * float(ack['pause_s']):.0f} ms)")
        self.call_from_thread(self.refresh_bindings)
        self.call_from_thread(self._show_status)
        return ack

    def action_reset(self) -> None:
        def confirmed(yes: bool | None) -> None:
            if yes:
                self.run_worker(lambda: self._after(self._call("reset"), "kernel reset: empty"), thread=True, group="cmd", exit_on_error=False)

        if self.unstored and self.es.state == "built":
            self.push_screen(ConfirmScreen("The last run was not stored. Reset the kernel anyway?"), confirmed)
        else:
            confirmed(True)

    def action_restore(self) -> None:
        def chosen(path: Path | None) -> None:
            if path is not None:
                self.run_worker(lambda: self._restore(path), thread=True, group="cmd", exit_on_error=False)

        self.push_screen(RestoreScreen(self.snapshot_dir), chosen)

    def _restore(self, path: Path, seed: int | None = None) -> Message | None:
        args: dict[str, Any] = {"path": str(path)}
        if seed is not None:
            args["seed"] = seed
        ack = self._call("restore", **args)
        if ack is not None:
            self.current_snapshot = str(path)
            self.call_from_thread(self.log_line, f"restored {escape(path.name)} (stored at t = {ack['t_stored_ms']:g} ms), seed {ack['seed']}, threads {ack['threads']}")
            missing = [line.split(" (")[0] for line in ack.get("not_stored", [])]
            self.call_from_thread(self.notify, "not restored: " + escape("; ".join(missing)) + " — ? lists all", title=f"restored {escape(path.name)}", timeout=6)
        return ack

    def action_rerun_seed(self) -> None:
        snapshot = self.current_snapshot

        def chosen(seed: int | None) -> None:
            if seed is not None:
                self.run_worker(lambda: self._rerun(Path(snapshot), seed), thread=True, group="run", exit_on_error=False)

        self.push_screen(SeedScreen(snapshot, self.es.seed), chosen)

    def _rerun(self, path: Path, seed: int) -> None:
        if self._restore(path, seed) is not None:
            self._run(f"restored, seed {seed}")

    def action_compare(self) -> None:
        self.push_screen(CompareScreen(self.runs, self.identical(), self.marker, self.group, self.weight_model))

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.not_stored))

    def action_next_population(self) -> None:
        if self.groups:
            self.group_index = (self.group_index + 1) % len(self.groups)
            self.live.set_groups(self.groups, self.group_index)
            self.notify(f"raster shows {escape(self.groups[self.group_index].name)}", timeout=2)
            self._drawn_version = -1
            self._draw_idle()

    def action_next_weights(self) -> None:
        if self.weight_models:
            self.weight_index = (self.weight_index + 1) % len(self.weight_models)
            self.notify(f"weights of {escape(self.weight_model)}", timeout=2)
            self._draw_weights()

    def action_stop(self) -> None:
        self._tour_stop.set()
        if self.es.state in ("running", "paused"):
            self._send("cancel")

    def action_demo(self) -> None:
        self._tour_stop.clear()
        self.touring = True
        self.add_class("touring")
        self.refresh_bindings()
        self.run_worker(self._tour, thread=True, group="tour", exit_on_error=False)

    def _caption(self, text: str) -> None:
        self.caption_text = text
        self.query_one("#caption", Static).update(text)
        self.log_line(f"[b]tour:[/b] {text}")

    def _tour(self) -> None:
        from datetime import datetime

        path = self.snapshot_dir / datetime.now().strftime("demo-%Y%m%d-%H%M%S.h5")
        self.snapshot_dir.mkdir(parents=True, exist_ok=True)
        seed = self.config.seed
        done = 0
        try:
            for i, step in enumerate(DEMO_STEPS):
                if self._tour_stop.is_set():
                    break
                self.call_from_thread(self._caption, f"[{i + 1}/{len(DEMO_STEPS)}] {step.caption}")
                if not self._tour_step(step, path, seed):
                    break
                done += 1
        finally:
            stopped = done < len(DEMO_STEPS)
            self.touring = False
            self.call_from_thread(self._end_tour, stopped)

    def _tour_step(self, step: DemoStep, path: Path, seed: int) -> bool:
        if step.action == "build":
            ok = self._call("build", config=self.config.to_dict()) is not None
        elif step.action == "store":
            if self._store(path) is None:
                return False
            while self.store_busy and not self._tour_stop.is_set():  # the restores need the file
                time.sleep(0.05)
            return path.exists()
        elif step.action == "restore":
            ok = self._restore(path, OTHER_SEED if step.other_seed else seed) is not None
        else:
            ok = True
        if not ok or self._tour_stop.is_set():
            return False
        result = self._run(step.label)
        return result is not None and not result.cancelled

    def _end_tour(self, stopped: bool) -> None:
        self.remove_class("touring")
        self.refresh_bindings()
        self._caption("demo stopped" if stopped else "demo complete: runs 'restored' and 'restored, same seed' are identical; the other seed differs — press v to compare")

    async def action_quit(self) -> None:
        self._tour_stop.set()
        if self.store_busy:
            def answered(wait: bool | None) -> None:
                self.run_worker(lambda: self._close_and_exit(abandon=not wait), thread=True, group="quit", exit_on_error=False)

            self.push_screen(ConfirmScreen(f"A store of {escape(self.store_busy)} is in progress. Wait for it (y), or abandon it (n: nothing is published)?"), answered)
            return
        self.engine.close(timeout_s=3.0)
        self.exit(0)

    def _close_and_exit(self, abandon: bool) -> None:
        self.call_from_thread(self.notify, "abandoning the store" if abandon else "waiting for the store to finish…", timeout=30)
        self.engine.close(timeout_s=STORE_WAIT_S, abandon_store=abandon)
        self.call_from_thread(self.exit, 0)

    def on_unmount(self) -> None:
        self.engine.close(timeout_s=3.0)


def make_app(config: NetworkConfig, args: argparse.Namespace, mpi: MpiLaunch | None = None) -> EinetApp:
    """The dashboard for ``config`` with the dashboard's own flags (shared by ``einet`` and the
    tests), its engine an MPI job with ``mpi``. The CLI builds ``config`` and ``mpi``: the
    dashboard never imports the CLI (no import cycle)."""
    return EinetApp(config, snapshot_dir=args.snapshot_dir, restore=args.restore, marker=args.marker, mpi=mpi)


def run_app(config: NetworkConfig, args: argparse.Namespace, mpi: MpiLaunch | None = None) -> int:
    app = make_app(config, args, mpi)
    return app.run(mouse=not args.no_mouse) or 0

"""The dashboard's main screen: status line, caption, the plots (or the intro before the first
run), the run table and the log.

It draws what the app holds (engine status, the live run, the run ledger) and changes none of
it. Plots over SSH cost bandwidth, and a plot render holds up the UI thread while keys wait:
the raster (what moves) redraws most often, the PSTH less, the weights when a new sample
arrives.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, RichLog, Static

from einet.engine.protocol import EngineState
from einet.history import HistoryRun
from einet.runs import RunResult

from .fit import Column, Part, shorten
from .live import PSTH_BIN_MS, WINDOW_MS, LiveView
from .markup import escape, textual_escape
from .widgets import FittedTable, PsthData, PsthPlot, RasterData, RasterPlot, Row, StatusLine, WeightsData, WeightsPlot, legend_name, run_color

if TYPE_CHECKING:
    from .app import EinetApp

FRAME_INTERVAL_S = 0.15
PSTH_INTERVAL_S = 0.35

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

INTRO_KEYS = (
    ("space", "run {t_sim_ms:g} ms (again: pause)"),
    ("s", "store a snapshot"),
    ("l", "restore a snapshot"),
    ("n", "rerun a snapshot with another seed"),
    ("d", "demo: the example's five runs"),
    ("?", "all keys, and what a snapshot holds"),
)


class MainScreen(Screen[None]):
    """One layout from 80x24 up; on short terminals the log goes (see ``einet.tcss``)."""

    def __init__(self) -> None:
        super().__init__()
        self.caption_text = ""
        self._live_drawn = -1  # version of the live run last drawn
        self._psth_drawn_at = 0.0
        self._weights_drawn: Any = None

    @property
    def dashboard(self) -> EinetApp:
        return cast("EinetApp", self.app)

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
            plot.marker = self.dashboard.marker  # type: ignore[attr-defined]
        self.set_interval(FRAME_INTERVAL_S, self._tick)
        self._adapt_layout()
        self.show_intro()
        self.show_status()
        self.log_line(f"einet dashboard; snapshots in {escape(str(self.dashboard.snapshot_dir))}")

    def on_resize(self) -> None:
        self._adapt_layout()

    def on_screen_resume(self) -> None:
        self._adapt_layout()  # the terminal may have been resized under a dialog

    def _adapt_layout(self) -> None:
        size = self.app.size
        self.set_class(size.width < 110, "narrow")
        self.set_class(size.height < 32, "short")

    # -- text ----------------------------------------------------------------------------
    def log_line(self, markup: str) -> None:
        self.query_one("#log", RichLog).write(markup)

    def caption(self, text: str) -> None:
        self.caption_text = text
        self.query_one("#caption", Static).update(textual_escape(text))
        self.log_line(f"[b]tour:[/b] {escape(text)}")

    def show_intro(self) -> None:
        """Until the first run, the plots' place says what this is and what to press."""
        app = self.dashboard
        status = app.engine_status
        first = not app.ledger.runs and not status.state.simulating and not app.touring
        self.set_class(first, "intro")
        if not first:
            return
        state = status.state
        if state in (EngineState.STARTING, EngineState.DEAD):
            what = "Starting the NEST engine…"
        elif state == EngineState.BUILDING:
            what = "Building the network…"
        elif state == EngineState.RESTORING:
            what = "Restoring a snapshot…"
        elif state == EngineState.EMPTY:
            what = "The kernel is empty: [b]b[/] builds the network, [b]l[/] restores a snapshot."
        else:
            sizes = " + ".join(f"{g.size} {g.name}" for g in app.groups) or "the network"
            source = f"restored from {Path(status.snapshot).name}" if status.snapshot else "built"
            what = f"{textual_escape(sizes)} neurons, {textual_escape(source)}, waiting at t = {status.t_ms:g} ms."
        lines = [f"[b]einet[/] — store and restore NEST simulations. {what}", ""]
        lines += [f"  [b reverse] {k:^7}[/]  {textual_escape(v.format(t_sim_ms=app.config.t_sim_ms))}" for k, v in INTRO_KEYS]
        if app.ledger.earlier:
            lines += ["", "Runs of earlier sessions are listed below, dimmed (#hN). Identical spikes show in 'same as'."]
        self.query_one("#intro", Static).update("\n".join(lines))

    def _status_parts(self) -> list[Part]:
        app = self.dashboard
        status = app.engine_status
        state = str(status.state) + (f" ({app.busy_op})" if app.busy_op and status.state == EngineState.STORING else "")
        t = app.live.t if status.state.simulating else status.t_ms
        parts = [Part(f"[b]{state}[/]", None, 0)]
        if status.state in (EngineState.STARTING, EngineState.DEAD):
            return parts
        if status.snapshot and status.state != EngineState.EMPTY:
            # a restored network goes on on the stored run's clock
            parts.append(Part(f"t {t:.1f} ms (restored at {status.snapshot_t_ms:g} ms)", f"t {t:.1f} ms", 0))
        else:
            parts.append(Part(f"t {t:.1f} ms", None, 0))
        if status.protocol and status.state != EngineState.EMPTY:
            more = f" (+{len(status.protocol) - 1})" if len(status.protocol) > 1 else ""
            parts.append(Part(f"next {escape(status.protocol[0])}{more}", escape(shorten(f"next {status.protocol[0]}", 24)), 2))
        if app.store_busy:
            parts.append(Part(f"[b]storing {escape(app.store_busy)} {100 * app.store_progress:.0f}%[/]", f"[b]storing {100 * app.store_progress:.0f}%[/]", 0))
        if app.ledger.unstored and status.state.idle:
            parts.append(Part("[yellow]last run not stored[/]", "[yellow]not stored[/]", 1))
        parts.append(Part(f"seed {status.seed}", None, 2))
        threads = f"{status.threads} thread{'s' if status.threads != 1 else ''}"
        ranks = app.engine.ranks
        layout, short = (f"{ranks} ranks × {threads}", f"{ranks}×{status.threads}") if ranks > 1 else (threads, f"{status.threads} thr")
        if not status.bit_comparable:
            layout, short = layout + " ≠ snapshot", short + " ≠"
        parts.append(Part(layout, short, 3))
        if app.current_snapshot:
            name = escape(Path(app.current_snapshot).name)
            parts.append(Part(f"snapshot {name}", escape(shorten(Path(app.current_snapshot).name, 18)), 4))
        if app.groups and status.state != EngineState.EMPTY:
            sizes = " + ".join(f"{g.size} {g.name}" for g in app.groups)
            total = f"{sum(g.size for g in app.groups)} neurons"
            parts.append(Part(escape(sizes) if len(sizes) <= 32 else total, total, 5))
        return parts

    def show_status(self) -> None:
        self.query_one("#status", StatusLine).show(self._status_parts())

    # -- the run table -------------------------------------------------------------------
    def show_table(self) -> None:
        ledger = self.dashboard.ledger
        rows = [self._earlier_row(h, ledger.earlier_same.get(h.id)) for h in ledger.earlier]
        rows += [self._run_row(i, r, ledger.same_as[i]) for i, r in enumerate(ledger.runs)]
        self.query_one("#history", FittedTable).set_rows(rows)

    @staticmethod
    def _earlier_row(h: HistoryRun, same: int | None) -> Row:
        origin = h.origin + (f" ← {Path(h.snapshot).stem}" if h.origin == "restored" and h.snapshot else "")
        return Row((f"h{h.id}", h.label, "" if same is None else f"h{same}", origin, str(h.seed), f"{h.t_start_ms:g}-{h.t_stop_ms:g}", str(h.spikes), f"{h.rate_hz:.1f}", h.short_digest), dim=True, key=f"h{h.id}")

    @staticmethod
    def _run_row(i: int, r: RunResult, same_as: str) -> Row:
        origin: str = r.origin.kind
        if r.origin.kind == "restored":
            origin += f" ← {Path(r.origin.snapshot).stem}"
        if r.exact:  # the hidden state written back: this is the continued run
            origin += ", exact"
        if not r.bit_comparable:
            origin += ", other threads"
        label = r.label + (" (cancelled)" if r.cancelled else "")
        return Row((str(i + 1), label, same_as, origin, str(r.seed), f"{r.t_start_ms:g}-{r.t_stop_ms:g}", str(r.n_spikes), f"{r.rate_hz:.1f}", r.short_digest), key=f"r{i}")

    # -- plots ---------------------------------------------------------------------------
    def redraw_live(self) -> None:
        """The next frame redraws the live run even if no new frame came (another population)."""
        self._live_drawn = -1

    def _tick(self) -> None:
        app = self.dashboard
        if app.engine_status.state.simulating:
            view = app.live.view()
            if view.version != self._live_drawn and not view.finished:
                self._live_drawn = view.version
                self._draw_live(view)
                self.show_status()

    def _draw_live(self, view: LiveView) -> None:
        app = self.dashboard
        t1 = max(view.t_ms, view.t_start_ms + min(WINDOW_MS, view.t_stop_ms - view.t_start_ms))
        t0 = max(view.t_start_ms, t1 - WINDOW_MS)
        self.query_one("#raster", RasterPlot).show(RasterData(view.label, view.raster_senders, view.raster_times, t0, t1, app.group, view.n_spikes, run_color(len(app.ledger.runs))))
        now = time.monotonic()
        if now - self._psth_drawn_at >= PSTH_INTERVAL_S:
            self._psth_drawn_at = now
            curves = tuple((g.name, view.psth_t_ms, view.psth_hz[k]) for k, g in enumerate(app.groups) if k < len(view.psth_hz))
            self.query_one("#psth", PsthPlot).show(PsthData(view.label, curves, PSTH_BIN_MS))
        if view.weights is not None and view.weights is not self._weights_drawn:
            self._weights_drawn = view.weights
            self.draw_weights(("now", view.weights.get(app.weight_model, np.empty(0))))

    def draw_weights(self, extra: tuple[str, Any] | None = None) -> None:
        app = self.dashboard
        model = app.weight_model
        runs = app.ledger.runs
        first = max(0, len(runs) - 5)
        samples = [(legend_name(str(i + 1), r.label), r.weights.get(model, np.empty(0))) for i, r in enumerate(runs) if i >= first]
        if extra is not None:
            samples.append(extra)
        self.query_one("#weights", WeightsPlot).show(WeightsData(model, tuple(samples)))

    def draw_idle(self) -> None:
        """After a run: the last run's raster and PSTH, the weights of recent runs."""
        app = self.dashboard
        runs = app.ledger.runs
        if not runs:
            return
        last = runs[-1]
        self.query_one("#raster", RasterPlot).show(RasterData(last.label, last.senders, last.times, last.t_start_ms, last.t_stop_ms, app.group, last.n_spikes, run_color(len(runs) - 1)))
        curves = tuple((g.name, last.psth_t_ms, last.psth_hz[k]) for k, g in enumerate(last.groups) if k < len(last.psth_hz))
        self.query_one("#psth", PsthPlot).show(PsthData(last.label, curves, PSTH_BIN_MS))
        self.draw_weights()
        self.show_status()

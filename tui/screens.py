"""Dialogs and full-screen views of the dashboard."""

from __future__ import annotations


import itertools
from datetime import datetime
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.validation import Function, Integer
from rich.markdown import Markdown as RichMarkdown
from rich.markup import escape
from textual.widgets import Button, DataTable, Footer, Input, Label, Static
from textual_plotext import PlotextPlot
import numpy as np

from einet.plots import COLORS, draw_raster, draw_weights
from einet.runs import Group, RunResult
from einet.snapshot import GENERAL_NOT_STORED, STORED, Snapshot, SnapshotInfo, SnapshotNameError, list_snapshots, snapshot_path_in


def default_snapshot_name() -> str:
    return datetime.now().strftime("snapshot-%Y%m%d-%H%M%S.h5")


class ConfirmScreen(ModalScreen[bool]):
    """Yes/no question; y/Enter confirms, n/Escape cancels."""

    BINDINGS = [Binding("y", "answer(True)", "Yes", id="confirm-yes"), Binding("n,escape", "answer(False)", "No", id="confirm-no")]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question)
            with Horizontal(classes="buttons"):
                yield Button("Yes (y)", id="yes", variant="warning")
                yield Button("No (n)", id="no", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class StoreScreen(ModalScreen[Path | None]):
    """Ask for a snapshot name inside the snapshot folder; never overwrites an existing file."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="store-cancel")]

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"Store a snapshot in [b]{escape(str(self.folder))}[/] — Enter stores, Escape cancels")
            yield Input(value=default_snapshot_name(), id="name", validators=[Function(self._valid, "invalid name")], validate_on=["changed", "submitted"])
            yield Static("", id="problem", classes="problem")

    def _check(self, name: str) -> tuple[Path | None, str]:
        try:
            path = snapshot_path_in(self.folder, name)
        except SnapshotNameError as exc:
            return None, str(exc)
        if path.exists():
            return None, f"{path.name} exists: choose another name (snapshots are never overwritten)"
        return path, ""

    def _valid(self, name: str) -> bool:
        return self._check(name)[0] is not None

    @on(Input.Changed)
    def changed(self, event: Input.Changed) -> None:
        self.query_one("#problem", Static).update(escape(self._check(event.value)[1]))

    @on(Input.Submitted)
    def submitted(self, event: Input.Submitted) -> None:
        path, problem = self._check(event.value)
        if path is None:
            self.query_one("#problem", Static).update(escape(problem))
            return
        self.dismiss(path)

    def action_cancel(self) -> None:
        self.dismiss(None)


class SeedScreen(ModalScreen[int | None]):
    """Ask for a seed (integer in NEST's range)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="seed-cancel")]

    def __init__(self, snapshot: str, current: int) -> None:
        super().__init__()
        self.snapshot = snapshot
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"Rerun [b]{escape(Path(self.snapshot).name)}[/] with seed (Enter runs, Escape cancels):")
            yield Input(value=str(self.current), id="seed", type="integer", validators=[Integer(minimum=0, maximum=2**32 - 2, failure_description="a whole number from 0 to 4294967294")])
            yield Static("", id="problem", classes="problem")

    @on(Input.Changed)
    def changed(self, event: Input.Changed) -> None:
        result = event.validation_result
        self.query_one("#problem", Static).update("" if result is None or result.is_valid else "; ".join(result.failure_descriptions))

    @on(Input.Submitted)
    def submitted(self, event: Input.Submitted) -> None:
        if event.validation_result is not None and not event.validation_result.is_valid:
            self.query_one("#problem", Static).update("seed must be " + "; ".join(event.validation_result.failure_descriptions))
            return
        try:
            self.dismiss(int(event.value))
        except ValueError:
            self.query_one("#problem", Static).update("seed must be a whole number")

    def action_cancel(self) -> None:
        self.dismiss(None)


class RestoreScreen(ModalScreen[Path | None]):
    """Pick a snapshot from the folder; metadata and integrity are read in a worker."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="restore-cancel")]

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder
        self.paths: list[Path] = []

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Label(f"Snapshots in [b]{escape(str(self.folder))}[/] — Enter restores, Escape cancels")
            yield DataTable(id="snapshots", cursor_type="row")
            yield Static("", id="problem", classes="problem")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for col in ("file", "stored at", "network", "seed", "threads", "size", "integrity"):
            table.add_column(col, key=col)
        self.paths = list_snapshots(self.folder)
        for p in self.paths:
            table.add_row(escape(p.name), "…", "…", "…", "…", f"{p.stat().st_size / 1e6:.1f} MB", "checking…", key=str(p))
        if not self.paths:
            self.query_one("#problem", Static).update("no snapshots here yet: store one with s")
        table.focus()
        self.inspect_all()

    @work(thread=True, exclusive=True, group="inspect")
    def inspect_all(self) -> None:
        for p in self.paths:
            info = Snapshot.inspect(p)
            self.app.call_from_thread(self._fill, info)

    def _fill(self, info: SnapshotInfo) -> None:
        table = self.query_one(DataTable)
        key = str(info.path)
        values = {
            "stored at": f"t={info.t_stored_ms:g} ms" if info.t_stored_ms is not None else "?",
            "network": "+".join(str(v) for v in info.groups.values()) if info.valid else "?",
            "seed": str(info.seed) if info.seed is not None else "?",
            "threads": str(info.n_vp) if info.n_vp is not None else "?",
            "integrity": "ok" if info.valid else escape(f"INVALID: {info.problem}"[:60]),
        }
        for col, value in values.items():
            table.update_cell(key, col, value)

    @on(DataTable.RowSelected)
    def selected(self, event: DataTable.RowSelected) -> None:
        self.dismiss(Path(str(event.row_key.value)))

    def action_cancel(self) -> None:
        self.dismiss(None)


HELP = """
# einet — keys

| key | does |
|---|---|
| `space` | run one run length / pause / resume |
| `c` | continue for another run length |
| `b` | build a fresh network (random V_m) |
| `s` | store a snapshot (name editable; never overwrites) |
| `r` | reset the kernel (asks if the last run was not stored) |
| `l` | restore a snapshot from the folder |
| `n` | rerun the current snapshot with a chosen seed |
| `v` | compare view: rasters and weights of up to five runs |
| `p` | next population (raster) |
| `w` | next synapse model (weight histogram) |
| `d` | demo tour: the example's five runs (Escape stops) |
| `?` | this help |
| `q` | quit |

Every key is also in the command palette (`ctrl+p`).

## What a snapshot stores, and what it does not

{table}

So a restored run is *not* a continuation: it starts at t = 0 from the stored state; with
the same seed and thread count it is reproducible bit for bit.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close", id="help-close")]

    def __init__(self, not_stored: list[str] | None = None) -> None:
        super().__init__()
        rows = [f"| {a} | {b} |" for a, b in itertools.zip_longest(STORED, not_stored or GENERAL_NOT_STORED, fillvalue="")]
        self.text = HELP.format(table="\n".join(["| stored | not stored |", "|---|---|", *rows]))

    def compose(self) -> ComposeResult:
        # one Static with Rich's Markdown: Textual's Markdown widget makes a widget per table
        # cell, and tearing those down made closing this screen take ~250 ms
        with VerticalScroll(classes="dialog wide tall"):
            yield Static(RichMarkdown(self.text))

    def action_close(self) -> None:
        self.dismiss(None)


class CompareScreen(Screen[None]):
    """The example's figure in the terminal: rasters of up to five runs, weights, table."""

    BINDINGS = [Binding("escape,v,q", "close", "Back", id="compare-close")]

    def __init__(self, runs: list[RunResult], identical: list[int | None], marker: str, group: Group | None = None, weight_model: str = "") -> None:
        super().__init__()
        self.group = group
        self.weight_model = weight_model
        self.runs = runs[-5:]
        offset = len(runs) - len(self.runs)
        self.identical = identical[offset:]
        self.first = offset
        self.marker = marker

    def compose(self) -> ComposeResult:
        with Horizontal():
            with Vertical(id="compare-rasters"):
                for i in range(len(self.runs)):
                    yield PlotextPlot(id=f"cmp-raster-{i}", classes="cmp-raster")
            with Vertical(id="compare-side"):
                yield PlotextPlot(id="cmp-weights")
                yield DataTable(id="cmp-table", cursor_type="none")
        yield Footer()

    def on_mount(self) -> None:
        for i, r in enumerate(self.runs):
            plot = self.query_one(f"#cmp-raster-{i}", PlotextPlot)
            plot.plt.clear_figure()
            ids = self.group.raster_ids if self.group is not None else np.empty(0, np.int64)
            name = self.group.name if self.group is not None else ""
            draw_raster(plot.plt, r.senders, r.times, r.t_start_ms, r.t_stop_ms, ids, title=f"{self.first + i + 1}: {r.label} {r.short_digest} ({name})", color=COLORS[i % len(COLORS)], marker=self.marker)
            plot.refresh()
        w = self.query_one("#cmp-weights", PlotextPlot)
        w.plt.clear_figure()
        draw_weights(w.plt, [(f"{self.first + i + 1}", r.weights.get(self.weight_model, np.empty(0))) for i, r in enumerate(self.runs)], model=self.weight_model, marker=self.marker)
        w.refresh()
        table = self.query_one("#cmp-table", DataTable)
        table.add_columns("#", "run", "same as", "spikes", "digest")
        for i, (r, k) in enumerate(zip(self.runs, self.identical)):
            table.add_row(str(self.first + i + 1), escape(r.label), "" if k is None else f"run {k + 1}", str(r.n_spikes), r.short_digest)
        if not self.runs:
            self.notify("no runs yet", severity="warning")

    def action_close(self) -> None:
        self.dismiss(None)


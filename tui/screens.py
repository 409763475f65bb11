"""Dialogs and full-screen views of the dashboard."""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import ClassVar

import numpy as np
from rich.markdown import Markdown as RichMarkdown
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.validation import Function, Integer
from textual.widgets import Button, DataTable, Footer, Input, Label, Static

from einet.compare import MIN_SEEDS, SeedRerun, Versus, run_stats, versus_continued
from einet.config import SEED_MAX
from einet.runs import Group, RunResult
from einet.snapshot import GENERAL_NOT_STORED, STORED, SnapshotInfo, SnapshotNameError, inspect_snapshot, list_snapshots, snapshot_path_in
from einet.text import visible

from .fit import Column, Part
from .markup import escape, textual_escape
from .widgets import FittedTable, RasterData, RasterPlot, Row, StatusLine, WeightsData, WeightsPlot, legend_name, run_color


def default_snapshot_name() -> str:
    return datetime.now().strftime("snapshot-%Y%m%d-%H%M%S.h5")


class ConfirmScreen(ModalScreen[bool]):
    """Yes/no question; y/Enter confirms, n/Escape cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("y", "answer(True)", "Yes", id="confirm-yes"), Binding("n,escape", "answer(False)", "No", id="confirm-no")]

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

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", id="store-cancel")]

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"Store a snapshot in [b]{textual_escape(str(self.folder))}[/] — Enter stores, Escape cancels")
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
        self.query_one("#problem", Static).update(textual_escape(self._check(event.value)[1]))

    @on(Input.Submitted)
    def submitted(self, event: Input.Submitted) -> None:
        path, problem = self._check(event.value)
        if path is None:
            self.query_one("#problem", Static).update(textual_escape(problem))
            return
        self.dismiss(path)

    def action_cancel(self) -> None:
        self.dismiss(None)


class SeedScreen(ModalScreen[int | None]):
    """Ask for a seed (integer in NEST's range)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", id="seed-cancel")]

    def __init__(self, snapshot: str, current: int) -> None:
        super().__init__()
        self.snapshot = snapshot
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"Rerun [b]{textual_escape(Path(self.snapshot).name)}[/] with seed (Enter runs, Escape cancels):")
            yield Input(value=str(self.current), id="seed", type="integer", validators=[Integer(minimum=1, maximum=SEED_MAX, failure_description=f"a whole number from 1 to {SEED_MAX}")])
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


PICKER_COLUMNS = (
    Column("file", 0, min_width=16),
    Column("stored at", 3),
    Column("network", 2),
    Column("seed", 2),
    Column("n_vp", 4),
    Column("size", 5),
    Column("integrity", 1, min_width=9),
)


class RestoreScreen(ModalScreen[Path | None]):
    """Pick a snapshot from the folder; metadata and integrity are read in a worker."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", id="restore-cancel")]

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder
        self.paths: list[Path] = []
        self.checked = 0

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Label(f"Snapshots in [b]{textual_escape(str(self.folder))}[/] — Enter restores, Escape cancels")
            yield FittedTable(PICKER_COLUMNS, id="snapshots")
            yield Static("", id="problem", classes="problem")

    def on_mount(self) -> None:
        table = self.query_one(FittedTable)
        self.paths = list_snapshots(self.folder)
        table.set_rows([Row((p.name, "…", "…", "…", "…", f"{p.stat().st_size / 1e6:.1f} MB", "checking…"), key=str(p)) for p in self.paths], cursor_to_end=False)
        if not self.paths:
            self.query_one("#problem", Static).update("no snapshots here yet: store one with s")
        table.focus()
        self.inspect_all()

    @work(thread=True, exclusive=True, group="inspect")
    def inspect_all(self) -> None:
        batch: list[SnapshotInfo] = []
        shown_at = time.monotonic()
        for i, p in enumerate(self.paths):
            batch.append(inspect_snapshot(p))
            # a table re-layout per batch, not per file: hundreds of snapshots stay quick
            if i == len(self.paths) - 1 or time.monotonic() - shown_at > 0.2:
                self.app.call_from_thread(self._fill, batch)
                batch, shown_at = [], time.monotonic()

    def _fill(self, infos: list[SnapshotInfo]) -> None:
        self.query_one(FittedTable).update_rows({str(info.path): self._cells(info) for info in infos})
        self.checked += len(infos)

    @staticmethod
    def _cells(info: SnapshotInfo) -> tuple[str, ...]:
        p = info.path
        return (
            p.name,
            f"t={info.t_stored_ms:g} ms" if info.t_stored_ms is not None else "?",
            "+".join(str(v) for v in info.groups.values()) if info.valid else "?",
            str(info.seed) if info.seed is not None else "?",
            str(info.n_vp) if info.n_vp is not None else "?",
            f"{info.file_bytes / 1e6:.1f} MB",
            "ok" if info.valid else f"INVALID: {info.problem}",
        )

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
| `v` | compare view: every run's raster (paged: `j`/`k`), weights, and numbers |
| `t` | trials from the current snapshot: seeds, changes, workers; a view fills in as they finish (`s` stops) |
| `p` | next population (raster) |
| `w` | next synapse model (weight histogram) |
| `d` | demo tour: the example's five runs (Escape stops) |
| `?` | this help |
| `q` | quit |

Every key is also in the command palette (`ctrl+p`); keys that do not apply now are greyed out.

## The run table and the history

Runs are recorded in `einet-history.sqlite` beside the snapshots (`einet history` lists them).
Runs of earlier sessions are shown dimmed, numbered `h<id>`; *same as* names the first run
(of this session, or `h<id>` of an earlier one) with identical spikes. On a narrow terminal
the least important columns go first; the digest is shown as a prefix.

## The compare view

For each run: rate, mean CV of inter-spike intervals, mean weight. For a restored run, *Δ* is
its difference to the run that continued from the same snapshot, and *σ* the spread (standard
deviation) across the runs restored from it with different seeds (`n` reruns with a seed).
*within 2σ* means the restore changed nothing the network's own noise would not; it is judged
from 3 seeds on.
Seed reruns run as trials (`t` with no change) count in σ too.

## Trials (`t`)

From the snapshot last stored or restored: conditions (`vary`: `TARGET.KEY=V1,V2`, one
condition per value; `changes`: `T:TARGET.KEY=VALUE`, made in every condition; the syntax of
`einet trials --vary/--at`) × seeds, each trial restored, changed and run in a worker process
beside the engine, which stays usable. The view shows one figure per page (`j`/`k`): a point
per trial, each condition's mean (x) and 95 % interval (bar), the table (mean, sd, interval,
difference to the baseline with its interval, Welch's verdict), and the verdict line. `s`
stops the set (finished trials stay), Escape closes the view (the set goes on: `t` shows it).
Each trial is in the run history with its set.

A restored network goes on from the stored time, on the stored clock: devices act at the
same times as in the continued run, and STDP's presynaptic traces are carried over. For a
network driven only by deterministic devices, stored with no spike in transit, the restored run
*is* the continued one. Otherwise it is statistically equivalent, not the same trajectory:
spikes in transit, refractory state, STDP's postsynaptic history and the random stream are not
stored, so the first ~50 ms differ, and then the network's chaos takes over. The reference network's 1-s rate
varies by ±3–4 Hz between random streams from one and the same state, so one restored run far
from the continued one says little; several seeds say whether the restore is sound.

## What a snapshot stores, and what it does not

{table}

With the same seed and thread count a restored run is reproducible bit for bit.

## The protocol

Changes at chosen times (`--at T:TARGET.KEY=VALUE`, `[[protocol]]` in the TOML file, or the
model's `protocol()`); a snapshot keeps those still to come. {protocol}
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark", "close", "Close", id="help-close")]

    def __init__(self, not_stored: list[str] | None = None, protocol: tuple[str, ...] = ()) -> None:
        super().__init__()
        # the network's lines name its models and the protocol its targets: a restored one's
        # come from the file
        rows = [f"| {a} | {visible(b)} |" for a, b in itertools.zip_longest(STORED, not_stored or GENERAL_NOT_STORED, fillvalue="")]
        pending = "Still to come:\n\n" + "\n".join(f"- `{visible(c)}`" for c in protocol) if protocol else "This network has none still to come."
        self.text = HELP.format(table="\n".join(["| stored | not stored |", "|---|---|", *rows]), protocol=pending)

    def compose(self) -> ComposeResult:
        # one Static with Rich's Markdown: Textual's Markdown widget makes a widget per table
        # cell, and tearing those down made closing this screen take ~250 ms
        with VerticalScroll(classes="dialog wide tall"):
            yield Static(RichMarkdown(self.text))

    def action_close(self) -> None:
        self.dismiss(None)


COMPARE_COLUMNS = (
    Column("#", 0),
    Column("run", 3, min_width=10),
    Column("seed", 2),
    Column("spikes", 6),
    Column("rate Hz", 1),
    Column("CV ISI", 3),
    Column("mean w", 4),
    Column("Δ rate (σ)", 2),
    Column("Δ CV (σ)", 4),
    Column("Δ w (σ)", 5),
    Column("verdict", 1),
    Column("same as", 6),
    Column("digest", 7, min_width=7, prefix=True),
)
RASTER_ROWS = 8
"""Rows a raster of the compare view needs to be read; fewer fit, the view pages."""


def _num(x: float, digits: int = 2) -> str:
    return "–" if math.isnan(x) else f"{x:.{digits}f}"


def _versus(delta: float, spread: float | None, digits: int = 2) -> str:
    if math.isnan(delta):
        return "–"
    d = f"{delta:+.{digits}f}"
    return d if spread is None or math.isnan(spread) else f"{d} ({spread:.{digits}f})"


def compare_rows(runs: Sequence[RunResult], same_as: Sequence[str], continued_from: Mapping[str, int], weight_model: str, reruns: Sequence[SeedRerun] = ()) -> list[Row]:
    """The compare table: per run its numbers; per restored run its difference to the run
    that continued from its snapshot, next to the spread across seeds (σ), to which seed
    reruns made as trials (``reruns``) count too."""
    stats = [run_stats(r, weight_model) for r in runs]
    versus = versus_continued(runs, continued_from, weight_model, stats=stats, reruns=reruns)
    references = {v.continued for v in versus if v is not None}
    rows = []
    for i, (r, v, st) in enumerate(zip(runs, versus, stats)):
        cells = [str(i + 1), r.label, str(r.seed), str(r.n_spikes), _num(st.rate_hz), _num(st.cv), _num(st.mean_weight)]
        cells += _versus_cells(v) if v is not None else ["", "", "", "reference" if i in references else ""]
        cells += [same_as[i] if i < len(same_as) else "", r.short_digest]
        rows.append(Row(tuple(cells), key=f"r{i}"))
    return rows


def _versus_cells(v: Versus) -> list[str]:
    spread = v.spread
    cells = [_versus(v.delta.rate_hz, spread.rate_hz if spread else None), _versus(v.delta.cv, spread.cv if spread else None, 3), _versus(v.delta.mean_weight, spread.mean_weight if spread else None)]
    verdicts = [v.within(m) for m in ("rate_hz", "cv", "mean_weight")]
    if v.n_seeds < MIN_SEEDS:
        verdict = f"needs {MIN_SEEDS} seeds"
    elif any(w is False for w in verdicts):
        verdict = "OUTSIDE 2σ"
    else:
        verdict = "within 2σ"
    return [*cells, verdict]


class CompareScreen(Screen[None]):
    """The example's figure in the terminal: a raster per run (paged when they do not fit),
    their weights, and the numbers that say whether restored runs are within the network's
    own variability."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,v,q", "close", "Back", id="compare-close"),
        Binding("j,pagedown", "page(1)", "Next runs", id="compare-next"),
        Binding("k,pageup", "page(-1)", "Previous runs", id="compare-previous"),
    ]

    def __init__(self, runs: Sequence[RunResult], same_as: Sequence[str], continued_from: Mapping[str, int], marker: str, group: Group | None = None, weight_model: str = "", reruns: Sequence[SeedRerun] = ()) -> None:
        super().__init__()
        self.runs = list(runs)
        self.reruns = tuple(reruns)
        self.same_as = list(same_as)
        self.continued_from = dict(continued_from)
        self.group = group
        self.weight_model = weight_model
        self.marker = marker
        self.page = 0
        self.per_page = 0

    def compose(self) -> ComposeResult:
        with Horizontal(id="cmp-top"):
            yield Vertical(id="compare-rasters")
            yield WeightsPlot(id="cmp-weights")
        yield StatusLine(id="cmp-note")
        yield FittedTable(COMPARE_COLUMNS, id="cmp-table", cursor_type="none")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(WeightsPlot).marker = self.marker
        self.query_one(FittedTable).set_rows(compare_rows(self.runs, self.same_as, self.continued_from, self.weight_model, self.reruns), cursor_to_end=False)
        if not self.runs:
            self.notify("no runs yet", severity="warning")

    def on_resize(self) -> None:
        table_rows = min(len(self.runs) + 1, 7)
        per_page = max(1, (self.size.height - table_rows - 2) // RASTER_ROWS)
        if per_page != self.per_page:
            first_shown = self.page * self.per_page
            self.per_page = per_page
            self.page = min(first_shown // per_page, self.pages - 1)  # the same runs stay in view
            self._show_page()

    @property
    def pages(self) -> int:
        return max(1, math.ceil(len(self.runs) / max(1, self.per_page)))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "page":
            step = int(str(parameters[0])) if parameters else 1
            return True if 0 <= self.page + step < self.pages else None
        return True

    def action_page(self, step: int) -> None:
        self.page = max(0, min(self.pages - 1, self.page + step))
        self._show_page()

    def _show_page(self) -> None:
        first = self.page * self.per_page
        on_page = list(range(first, min(len(self.runs), first + self.per_page)))
        box = self.query_one("#compare-rasters", Vertical)
        box.remove_children()
        plots = []
        name = self.group.name if self.group is not None else ""
        for i in on_page:
            r = self.runs[i]
            plot = RasterPlot(classes="cmp-raster")
            plot.marker = self.marker
            plot.data = RasterData(f"{i + 1} {r.label} ({r.short_digest})", r.senders, r.times, r.t_start_ms, r.t_stop_ms, self.group, r.n_spikes, run_color(i))
            plots.append(plot)
        box.mount_all(plots)
        samples = tuple((legend_name(str(i + 1), self.runs[i].label), self.runs[i].weights.get(self.weight_model, np.empty(0))) for i in on_page)
        self.query_one(WeightsPlot).show(WeightsData(self.weight_model, samples))
        paging = f"runs {on_page[0] + 1}–{on_page[-1] + 1} of {len(self.runs)} ({name}): j/k pages" if on_page and self.pages > 1 else f"{len(self.runs)} runs ({name})"
        self.query_one("#cmp-note", StatusLine).show(
            [
                Part(escape(paging), None, 0),
                Part(f"Δ: restored run − the run that continued from its snapshot; σ: spread across seeds{self._trials_note()}", f"Δ vs continued, σ across seeds{self._trials_note()}", 1),
            ]
        )
        self.refresh_bindings()

    def _trials_note(self) -> str:
        """How many trials count in a spread: seed reruns of a snapshot a run continued from,
        as long as that run."""
        n = 0
        for rerun in self.reruns:
            c = self.continued_from.get(rerun.snapshot)
            if c is not None and c < len(self.runs) and abs(self.runs[c].t_stop_ms - self.runs[c].t_start_ms - rerun.length_ms) < 1e-6:
                n += 1
        return f", {n} of them trials" if n else ""

    def action_close(self) -> None:
        self.dismiss(None)

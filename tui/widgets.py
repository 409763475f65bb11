"""Widgets that draw themselves: raster, PSTH, weights, the run table and the status line.

Each holds an immutable description of what to show and draws it in ``render`` at its
current size, so a resize redraws it right (titles and labels adapt to small plots). The main
screen and the compare view share them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
from rich.cells import cell_len
from rich.text import Text
from textual.app import RenderResult
from textual.events import Resize
from textual.widgets import DataTable, Static
from textual_plotext import PlotextPlot

from einet.plots import COLORS, draw_conditions, draw_psth, draw_raster, draw_weights
from einet.runs import Group
from einet.text import visible

from .fit import Column, Part, fit_columns, fit_parts, fitted_rows, shorten

D = TypeVar("D")

COMPACT_ROWS = 9
"""Plots lower than this drop the x label (its unit moves into the title)."""


class _Plot(PlotextPlot, Generic[D]):
    """A plotext plot that redraws from its own data (``show``) at every render."""

    marker = "braille"
    data: D | None = None

    def show(self, data: D | None) -> None:
        self.data = data
        self.refresh()

    def _draw(self, compact: bool) -> None:
        raise NotImplementedError

    def render(self) -> RenderResult:
        self.plt.clear_figure()
        self._draw(self.size.height < COMPACT_ROWS)
        return super().render()

    def title(self, *candidates: str) -> str:
        """The first title that fits the plot's width (plotext drops one that does not).
        Names in it come from files (populations, runs): plotext's output is read as ANSI."""
        room = max(1, self.size.width - 2)
        for text in map(visible, candidates):
            if cell_len(text) <= room:
                return text
        return shorten(visible(candidates[-1]), room)


@dataclass(frozen=True)
class RasterData:
    label: str
    senders: np.ndarray
    times: np.ndarray
    t0: float
    t1: float
    group: Group | None
    n_spikes: int
    color: str = "blue"


class RasterPlot(_Plot[RasterData]):
    """Spikes of the shown population's first neurons, one row each."""

    def _draw(self, compact: bool) -> None:
        d = self.data
        if d is None:
            self.plt.title("spikes: no run yet")
            return
        ids = d.group.raster_ids if d.group is not None else np.empty(0, np.int64)
        what = f"first {len(ids)} {d.group.name} neurons" if d.group is not None else "no population"
        unit = ", time [ms]" if compact else ""
        title = self.title(f"{d.label}: spikes, {what} ({d.n_spikes} in all){unit}", f"{d.label}: spikes, {what}{unit}", f"{d.label}: {what}{unit}", d.label)
        draw_raster(self.plt, d.senders, d.times, d.t0, d.t1, ids, title=title, color=d.color, marker=self.marker, xlabel="" if compact else "time [ms]")


@dataclass(frozen=True)
class PsthData:
    label: str
    curves: tuple[tuple[str, np.ndarray, np.ndarray], ...]
    """(population, left bin edges [ms], rate per neuron [Hz])."""
    bin_ms: float = 10.0


class PsthPlot(_Plot[PsthData]):
    """Population rates over time, one line per population."""

    def _draw(self, compact: bool) -> None:
        d = self.data
        if d is None:
            self.plt.title("PSTH: no run yet")
            return
        unit = ", time [ms]" if compact else ""
        title = self.title(f"{d.label}: rate per neuron [Hz], {d.bin_ms:g} ms bins{unit}", f"rate per neuron [Hz], {d.bin_ms:g} ms bins{unit}", f"rate per neuron [Hz]{unit}", "rate [Hz]")
        draw_psth(self.plt, [(visible(name), t, hz) for name, t, hz in d.curves], marker=self.marker, title=title, xlabel="" if compact else "time [ms]")


@dataclass(frozen=True)
class WeightsData:
    model: str
    samples: tuple[tuple[str, np.ndarray], ...]
    """(legend: the run's name, weight sample)."""


class WeightsPlot(_Plot[WeightsData]):
    """Weight distributions of one synapse model, one line per run."""

    def _draw(self, compact: bool) -> None:
        d = self.data
        if d is None or not d.samples:
            self.plt.title("weights: no sample yet")
            return
        # plotext leaves out a legend taller than the plot: show as many runs as it can name
        room = max(1, self.size.height - (4 if compact else 5))
        samples = list(d.samples)[-room:]
        name = d.model or "synapse"
        title = self.title(f"{name} weights: density" + (", x: weight" if compact else ""), f"{name} weights", "weights")
        draw_weights(self.plt, samples, model=d.model, marker=self.marker, title=title, xlabel="" if compact else "weight")


@dataclass(frozen=True)
class ConditionsData:
    """One figure of a set of trials: per condition its trials' values and (mean, 95 % low, high)."""

    figure: str
    conditions: tuple[str, ...]
    values: tuple[tuple[float, ...], ...]
    intervals: tuple[tuple[float, float, float], ...]
    note: str = ""


class ConditionsPlot(_Plot[ConditionsData]):
    """A set's trials: per condition (numbered as in the table) a point per trial, and its mean
    (x) with the 95 % interval (a bar beside the points)."""

    def _draw(self, compact: bool) -> None:
        d = self.data
        if d is None or not any(d.values):
            self.plt.title(f"{d.figure if d is not None else 'trials'}: no trial finished yet")
            return
        title = self.title(f"{d.figure} per trial, by condition (x: mean, bar: 95 % interval){d.note}", f"{d.figure} per trial, by condition{d.note}", d.figure)
        draw_conditions(self.plt, d.conditions, d.values, d.intervals, marker=self.marker, title=title)


def legend_name(number: str, label: str, width: int = 14) -> str:
    """A run's name in a plot legend: its number and (shortened) label."""
    return shorten(visible(f"{number} {label}"), width)


def run_color(index: int) -> str:
    return COLORS[index % len(COLORS)]


@dataclass(frozen=True)
class Row:
    """One table row: its cells (plain text, in column order) and whether to dim it."""

    cells: tuple[str, ...]
    dim: bool = False
    key: str = ""


def _visible_row(row: Row) -> Row:
    """Cells are plain text (no markup), but names from files are among them: control
    characters made visible here, so no caller can forget it, and before the widths are fitted."""
    return Row(tuple(visible(c) for c in row.cells), row.dim, row.key)


class FittedTable(DataTable[Text]):
    """A DataTable whose columns keep to its width: least important columns shrink or go
    first (see :func:`tui.fit.fit_columns`), so no value is ever cut without an ellipsis."""

    DEFAULT_CSS = "FittedTable { scrollbar-size-vertical: 1; }"

    def __init__(self, columns: Sequence[Column], *, id: str | None = None, cursor_type: str = "row", zebra_stripes: bool = True) -> None:
        super().__init__(id=id, cursor_type=cursor_type, zebra_stripes=zebra_stripes)  # type: ignore[arg-type]
        self.spec = tuple(columns)
        self.rows_data: list[Row] = []
        self._layout: list[tuple[int, int]] = []

    def set_rows(self, rows: Sequence[Row], *, cursor_to_end: bool = True) -> None:
        self.rows_data = [_visible_row(r) for r in rows]
        self._lay_out(force=True)
        if cursor_to_end and self.row_count:
            self.move_cursor(row=self.row_count - 1, animate=False)

    def update_rows(self, cells: dict[str, tuple[str, ...]]) -> None:
        """New cells for the rows with these keys (one re-layout for all of them)."""
        self.rows_data = [_visible_row(Row(cells[r.key], r.dim, r.key)) if r.key in cells else r for r in self.rows_data]
        self._lay_out(force=True)

    def on_resize(self, event: Resize) -> None:
        self._lay_out()

    def _lay_out(self, force: bool = False) -> None:
        width = self.size.width - 1  # the vertical scrollbar
        if width <= 0:
            return
        all_cells = [r.cells for r in self.rows_data]
        layout = fit_columns(self.spec, all_cells, width, padding=2 * self.cell_padding)
        if layout == self._layout and not force:
            return  # the same columns at the same widths: nothing to redraw
        self._layout = layout
        keep = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value if self.row_count else None
        self.clear(columns=True)
        for i, w in layout:
            self.add_column(Text(self.spec[i].name), width=w, key=self.spec[i].id)
        for row, fitted in zip(self.rows_data, fitted_rows(self.spec, all_cells, layout)):
            self.add_row(*(Text(c, style="dim" if row.dim else "") for c in fitted), key=row.key or None)
        if keep is not None and keep in self.rows:
            self.move_cursor(row=self.get_row_index(keep), animate=False)


class StatusLine(Static):
    """One line, whatever the width: long forms where they fit, then short ones, then the
    least important parts go (see :func:`tui.fit.fit_parts`)."""

    DEFAULT_CSS = "StatusLine { height: 1; }"

    parts: tuple[Part, ...] = ()

    def show(self, parts: Sequence[Part]) -> None:
        self.parts = tuple(parts)
        self.refresh()

    def render(self) -> RenderResult:
        width = max(1, self.size.width)
        text = Text.from_markup(fit_parts(self.parts, width), overflow="ellipsis", end="")
        text.no_wrap = True
        return text

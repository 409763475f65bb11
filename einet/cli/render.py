"""What the CLI prints: run reports, JSON documents, progress bars, the demo's plots."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ..text import visible
from .exits import EXIT_OK, exit_of


def shown(text: object) -> str:
    """Text from a file or a user for Rich output: visible control characters, escaped markup."""
    from rich.markup import escape

    return escape(visible(text))


@contextlib.contextmanager
def progress(enabled: bool, description: str) -> Iterator[Callable[[float], None]]:
    """A rich progress bar on a terminal; a no-op elsewhere. Yields ``update(fraction)``."""
    if not enabled or not sys.stderr.isatty():
        yield lambda fraction: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    # NEST holds the GIL while it simulates, so a refresh thread would stall: refresh by hand.
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(), console=Console(stderr=True), auto_refresh=False, transient=True) as bar:
        task = bar.add_task(description, total=1.0)

        def update(fraction: float) -> None:
            bar.update(task, completed=fraction)
            bar.refresh()

        yield update


def report_run(args: argparse.Namespace, result: Any, stored: str | None, failed: Exception | None, **extra: Any) -> int:
    """Print a run (and a store's failure after it: ``store_error`` in JSON, its one line on
    stderr); the exit code is the store's."""
    code, line = exit_of(failed) if failed is not None else (EXIT_OK, None)

    def human() -> None:
        print_run(result, stored)
        if "checkpoints" in extra:
            print_checkpoints(extra["checkpoints"])

    emit(args, {**result.summary(), **extra, "stored": stored, "store_error": line}, human)
    if line is not None:
        print(f"einet: {line}", file=sys.stderr)
    return code


def emit(args: argparse.Namespace, document: dict[str, Any], human: Callable[[], None]) -> None:
    if args.json:
        print(json.dumps(document, indent=2))
    else:
        human()


def print_run(result: Any, stored: str | None) -> None:
    from rich.console import Console

    c = Console()
    layout = f"ranks {result.ranks} × threads {result.threads}" if result.ranks > 1 else f"threads {result.threads}"
    c.print(f"[bold]{shown(result.label)}[/]  {shown(result.origin.describe())}  seed {result.seed}  {layout}")
    c.print(f"  t {result.t_start_ms:g}-{result.t_stop_ms:g} ms  spikes {result.n_spikes}  rate {result.rate_hz:.2f} Hz  digest {result.short_digest}")
    rates = result.group_rates_hz()
    if len(rates) > 1:
        c.print("  " + "  ".join(f"{shown(name)} {hz:.2f} Hz" for name, hz in rates.items()))
    if result.exact:
        c.print("  [green]exact: the continued run of the snapshot's, bit for bit (its hidden state restored)[/]")
    if not result.bit_comparable:
        c.print("  [yellow]virtual processes (ranks × threads) differ from the snapshot's: not bit-comparable with runs at the stored count[/]")
    if result.changes:
        c.print("  changes: " + ", ".join(shown(f"{ch['made_at_ms']:g} ms {ch['target']}.{ch['key']}={ch['value']!r}") for ch in result.changes))
    if stored:
        c.print(f"  stored snapshot: {shown(stored)}")


def print_checkpoints(summary: dict[str, Any]) -> None:
    """A run's checkpoints in one line (see :meth:`einet.checkpoints.Checkpointer.summary`)."""
    from rich.console import Console

    skipped = f", {len(summary['skipped_ms'])} skipped" if summary["skipped_ms"] else ""
    failed = f", {len(summary['failed'])} failed" if summary["failed"] else ""
    failed += ", 1 still being written at the end abandoned" if summary.get("abandoned") else ""
    waited = f" (the run waited {summary['waited_s']:.1f} s for them)" if summary.get("waited_s", 0.0) >= 0.05 else ""
    kept = f"{len(summary['kept'])} kept, newest {summary['kept'][-1]}" if summary["kept"] else "none kept"
    Console().print(f"  checkpoints every {summary['every_ms']:g} ms: {len(summary['written'])} written{waited}{skipped}{failed}; {shown(kept)} in {shown(summary['dir'])}", soft_wrap=True)


def demo_plots(results: Sequence[Any]) -> str:
    """The example's figure as text: one raster per run, then PSTHs and weight histograms."""
    import os

    import numpy as np
    import plotext as plt

    from ..plots import COLORS, draw_psth, draw_raster, draw_weights

    plain = bool(os.environ.get("NO_COLOR")) or not sys.stdout.isatty()
    width = min(max(plt.terminal_width() or 100, 60), 140)
    first = results[0].groups[0] if results and results[0].groups else None
    raster_ids = first.raster_ids if first is not None else np.empty(0, np.int64)
    name = first.name if first is not None else ""
    panels: list[Callable[[], None]] = [
        functools.partial(draw_raster, plt, r.senders, r.times, r.t_start_ms, r.t_stop_ms, raster_ids, title=f"{r.label} ({r.short_digest}): spikes, first {len(raster_ids)} {name} neurons", color=COLORS[i % len(COLORS)])
        for i, r in enumerate(results)
    ]
    panels.append(lambda: draw_psth(plt, [(r.label, r.psth_t_ms, r.psth_hz[0]) for r in results if len(r.psth_hz)], align=True, title=f"{name}: rate per neuron [Hz], runs aligned at their start", xlabel="time since the run's start [ms]"))
    weighted = next((m for r in results for m in r.weights), "")
    if weighted:
        panels.append(lambda: draw_weights(plt, [(r.label, r.weights.get(weighted, np.empty(0))) for r in results], model=weighted))
    out = []
    for draw in panels:
        plt.clear_figure()
        plt.plot_size(width, 14)
        draw()
        text = str(plt.build())
        out.append(plt.uncolorize(text) if plain else text)
    return "\n".join(out)


def local_time(iso: str) -> str:
    """An ISO-8601 time as local time to the minute (the text itself if it is not one)."""
    from datetime import datetime

    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M")
    except (ValueError, OverflowError, OSError):
        return iso


class TrialsProgress:
    """The progress of a set of trials: one line per finished trial (stdout) and, on a
    terminal, a bar with the time left (stderr)."""

    def __init__(self, enabled: bool, total: int, bar: Any = None, task: Any = None) -> None:
        self.enabled, self.total, self._bar, self._task = enabled, total, bar, task

    def advance(self, line: str) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(self._task, advance=1)
        print(line, flush=True)


@contextlib.contextmanager
def trials_progress(enabled: bool, total: int) -> Iterator[TrialsProgress]:
    """Yields a :class:`TrialsProgress`; with ``enabled`` False it prints nothing."""
    if not enabled or not sys.stderr.isatty():
        yield TrialsProgress(enabled, total)
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    # this process only waits for workers: the bar may refresh itself
    with Progress(TextColumn("trials"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(), console=Console(stderr=True), transient=True, redirect_stdout=True) as bar:
        yield TrialsProgress(True, total, bar, bar.add_task("trials", total=total))


def _num(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def trial_line(row: dict[str, Any], total: int, figures: Sequence[str]) -> str:
    """A finished trial in one line: its rates, spikes and digest, or why it failed."""
    head = f"trial {row['trial']}/{total} seed {row['seed']} {visible(row['condition'])}:"
    if row.get("error"):
        return f"{head} FAILED: {visible(row['error'])}"
    rates = " ".join(f"{visible(f.split('.', 1)[1])} {_num(row.get(f))} Hz" for f in figures if f.startswith("rate_hz.") and f in row)
    return f"{head} {rates}, {row['spikes']} spikes, {row['digest'][:12]}, {row['wall_s']:.1f} s"


def trials_table(lines: Sequence[Any], conditions: Sequence[str]) -> None:
    """Each figure per condition (``c1`` the baseline, named in a legend above): mean with its
    95 % CI and sd; against the baseline the difference with its 95 % interval and the verdict
    (``--json`` has the p-values). Figures equal in every trial (a static synapse's weight) are
    named, not tabled."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 132)
    if not lines:
        console.print("no trial finished")
        return
    for k, name in enumerate(conditions):
        console.print(f"c{k + 1} = {shown(name)}{' (baseline)' if k == 0 and name != 'baseline' else ''}", soft_wrap=True)
    index = {name: k for k, name in enumerate(conditions)}
    constant = [f for f in dict.fromkeys(line.figure for line in lines) if _constant([x.summary for x in lines if x.figure == f])]
    from rich import box

    # fits 80 columns: intervals as ± their half-width (Student's and Welch's are symmetric)
    table = Table(title="per condition: mean ± 95% CI, sd; against c1: Δ ± 95% CI (Welch's t-test)", title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False)
    for col in ("figure", "", "n", "mean", "±", "sd", "Δ", "±", "differs?"):
        table.add_column(shown(col), justify="left" if col in ("figure", "", "differs?") else "right", no_wrap=col != "figure", overflow="fold", min_width=13 if col == "figure" else None)
    figure = ""
    for line in lines:
        if line.figure in constant:
            continue
        s, v = line.summary, line.versus
        digits = 0 if line.figure == "spikes" else 4 if line.figure.startswith(("weight.", "dweight.")) else 2
        half = "" if s.ci_low != s.ci_low else _num((s.ci_high - s.ci_low) / 2, digits)
        if v is None:
            delta = dhalf = verdict = ""
        else:
            delta = "-" if v.difference != v.difference else f"{v.difference:+.{digits}f}"
            dhalf = "" if v.ci_low != v.ci_low else _num((v.ci_high - v.ci_low) / 2, digits)
            verdict = "[bold red]yes[/]" if v.verdict == "differs" else "no" if v.verdict == "no difference detected" else "-"
        table.add_row(shown(line.figure) if line.figure != figure else "", f"c{index.get(line.condition, 0) + 1}", str(s.n), _num(s.mean, digits), half, _num(s.sd, digits), delta, dhalf, verdict)
        figure = line.figure
    console.print(table)
    for k, name in enumerate(conditions[1:], start=2):  # the verdicts in words
        said = {verdict: [x.figure for x in lines if x.condition == name and x.versus is not None and x.versus.verdict == verdict and x.figure not in constant] for verdict in ("differs", "no difference detected", "too few trials")}
        parts = [f"{verdict} in {', '.join(figs)}" for verdict, figs in said.items() if figs]
        if parts:
            console.print(f"c{k} against c1: {shown('; '.join(parts))}", soft_wrap=True)
    if constant:
        console.print(f"the same in every trial: {shown(', '.join(constant))}", soft_wrap=True)


def _constant(summaries: Sequence[Any]) -> bool:
    means = {x.mean for x in summaries if x.n}
    spread = [x.sd for x in summaries if x.n > 1]
    return len(means) == 1 and bool(spread) and all(sd == 0.0 for sd in spread)

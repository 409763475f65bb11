"""The ``einet`` command: run, restore, inspect, demo, history, and (no arguments) the dashboard.

Exit codes: 0 ok, 1 anything else, 2 usage, 3 invalid or unsafe snapshot, 4 cannot store (the
network holds what a snapshot cannot, or the store failed; with --store this is known right
after the build, before anything is simulated). Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from . import __version__
from .config import DEFAULT_MODEL, ConfigError, NetworkConfig, parse_assignments
from .models import ModelBuildError, ModelError
from .protocol import parse_changes
from .text import one_line, visible

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_SNAPSHOT, EXIT_CANNOT_STORE = 0, 1, 2, 3, 4


class UsageError(Exception):
    pass


def shown(text: object) -> str:
    """Text from a file or a user for Rich output: visible control characters, escaped markup."""
    from rich.markup import escape

    return escape(visible(text))


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _model_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", metavar="REF", help=f"the network: package.module or file.py, optionally :function (default {DEFAULT_MODEL}, the reference network)")
    p.add_argument("--set", action="append", metavar="NAME=VALUE", help="a model parameter (repeatable); VALUE is a number, true/false, a [list] or text")
    p.add_argument("--scale", type=float, help="passed to the model's build (the reference network: 1 = 2000 E + 500 I)")
    p.add_argument("--config", type=Path, help="TOML file: model, scale, threads, seed, t_sim_ms and model parameters")


def _run_flags(p: argparse.ArgumentParser, *, json_flag: bool = True, defaults: str = "") -> None:
    p.add_argument("--threads", type=int, help=f"NEST threads (default {defaults or '2'}; einet's choice wins over the model's)")
    p.add_argument("--seed", type=int, help=f"NEST rng_seed, 1 to 2147483647 (default {defaults or '12345'})")
    p.add_argument("--t", type=float, dest="t_ms", metavar="MS", help=f"simulated time per run in ms (default {defaults or '1000'})")
    p.add_argument("--at", action="append", metavar="T:TARGET.KEY=VALUE", help="at biological time T set KEY of TARGET (a population, device label, node or synapse model) to VALUE (repeatable; a T at or before now applies at once)")
    p.add_argument("--store-workers", type=int, metavar="N", help="processes reading connections when storing (default: every usable core; 1: none forked)")
    p.add_argument("--ranks", type=int, metavar="N", help="run NEST as an MPI job of N ranks (needs an MPI NEST: make setup-mpi)")
    p.add_argument("--mpirun", metavar="CMD", help="the MPI launcher for --ranks, e.g. 'srun' (default: mpirun)")
    if json_flag:
        p.add_argument("--json", action="store_true", help="print one JSON document, no progress")


def _history_flags(p: argparse.ArgumentParser, *, off_flag: bool = True, default: str = "snapshots/einet-history.sqlite") -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--history", type=Path, metavar="PATH", help=f"the run history database (default: $EINET_HISTORY, else {default})")
    if off_flag:
        group.add_argument("--no-history", action="store_true", help="record nothing in the run history")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="einet",
        description="Store and restore NEST network simulations.",
        epilog="exit codes: 0 ok, 1 error (e.g. a model's own code failed), 2 usage, 3 invalid or unsafe snapshot, "
        "4 cannot store (told before simulating when the network is what a snapshot cannot hold), 130 interrupted. "
        "Seeds are 1 to 2147483647. Nothing is overwritten without --overwrite.",
    )
    parser.add_argument("--version", action="version", version=f"einet {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    run = sub.add_parser("run", help="build a network and simulate it")
    _model_flags(run)
    _run_flags(run)
    run.add_argument("--store", type=Path, metavar="PATH", help="store a snapshot at the end")
    run.add_argument("--overwrite", action="store_true", help="allow --store to replace an existing file")
    _history_flags(run)

    restore = sub.add_parser("restore", help="restore a snapshot into a clean kernel and simulate (runs no model code)")
    restore.add_argument("path", type=Path, help="the snapshot file")
    restore.add_argument("--model", metavar="REF", help="check that the snapshot was stored from this model")
    _run_flags(restore, defaults="the snapshot's")
    restore.add_argument("--store", type=Path, metavar="PATH", help="store a snapshot at the end")
    restore.add_argument("--overwrite", action="store_true", help="allow --store to replace an existing file")
    _history_flags(restore)

    inspect = sub.add_parser("inspect", help="show a snapshot's metadata, counts, what is not stored, and integrity")
    inspect.add_argument("path", type=Path, help="the snapshot file")
    inspect.add_argument("--model", metavar="REF", help="check that the snapshot was stored from this model")
    inspect.add_argument("--json", action="store_true", help="print one JSON document")

    demo = sub.add_parser("demo", help="the example's five runs on any model, compared, with terminal plots")
    _model_flags(demo)
    _run_flags(demo)
    demo.add_argument("--store", type=Path, metavar="PATH", help="keep the demo's snapshot here")
    demo.add_argument("--overwrite", action="store_true", help="allow --store to replace an existing file")
    demo.add_argument("--no-plots", action="store_true", help="only the table")
    _history_flags(demo)

    history = sub.add_parser("history", help="the recorded runs (of run, restore, demo and the dashboard), and which are identical")
    history.add_argument("--json", action="store_true", help="print one JSON document")
    history.add_argument("--limit", type=int, default=50, metavar="N", help="the last N runs (default 50)")
    history.add_argument("--snapshot-dir", type=Path, metavar="DIR", help="the history of the dashboard run with this --snapshot-dir (its einet-history.sqlite)")
    _history_flags(history, off_flag=False)

    tui = sub.add_parser("tui", help="the dashboard (also: einet with no arguments)")
    _model_flags(tui)
    _run_flags(tui, json_flag=False)
    from tui.options import add_tui_flags  # no Textual import: only argparse flags

    add_tui_flags(tui)
    _history_flags(tui, default="einet-history.sqlite in --snapshot-dir")
    return parser


def config_from_args(args: argparse.Namespace) -> NetworkConfig:
    """The configuration from --config (TOML), then the flags that override it."""
    base = NetworkConfig.from_toml(args.config) if getattr(args, "config", None) else NetworkConfig()
    model = getattr(args, "model", None)
    if model is not None:
        from .models import ModelRef

        model = str(ModelRef.parse(model))  # a file becomes an absolute path: the engine may run elsewhere
        if model != base.model:
            base = base.replace(model=model, params={})
    config = base.replace(scale=getattr(args, "scale", None), threads=args.threads, seed=args.seed, t_sim_ms=args.t_ms, store_workers=args.store_workers)
    at = tuple(c.to_dict() for c in parse_changes(getattr(args, "at", None)))
    return config.with_params(**parse_assignments(getattr(args, "set", None))).replace(protocol=(*config.protocol, *at) if at else None)


def launch_from_args(args: argparse.Namespace) -> Any:
    """The MPI launch --ranks/--mpirun ask for (an ``einet.engine.launch.MpiLaunch``), or None."""
    ranks, mpirun = getattr(args, "ranks", None), getattr(args, "mpirun", None)
    if ranks is None:
        if mpirun:
            raise UsageError("--mpirun needs --ranks N")
        return None
    from .engine.launch import LaunchError, MpiLaunch

    try:
        launch = MpiLaunch(ranks, mpirun or "")
        launch.command([])  # a missing MPI NEST or launcher is told now, before anything runs
    except LaunchError as exc:
        raise UsageError(str(exc)) from None
    return launch


@contextlib.contextmanager
def _session(args: argparse.Namespace, config: NetworkConfig) -> Iterator[Any]:
    """This process's Session, or with --ranks one served by an MPI job (shut down after)."""
    launch = launch_from_args(args)
    if launch is None:
        from .session import Session

        yield Session(config)
        return
    from .engine.remote import RemoteSession

    with RemoteSession(config, mpi=launch) as session:
        yield session


@contextlib.contextmanager
def _progress(enabled: bool, description: str) -> Iterator[Callable[[float], None]]:
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


def _run_with_progress(session: Any, label: str, quiet: bool) -> Any:
    with _progress(not quiet, f"simulating {label}") as update:
        return session.run(label=label, step_ms=100.0, on_step=lambda u: update(u.progress))


def _store(session: Any, path: Path | None, overwrite: bool, quiet: bool) -> tuple[str | None, Exception | None]:
    """The path stored, or the store's failure: the run before it is reported either way."""
    if path is None:
        return None, None
    try:
        with _progress(not quiet, f"storing {path.name}") as update:
            session.store(path, overwrite=overwrite, progress=update)
    except Exception as exc:  # noqa: BLE001 - reported with the run, its exit code the command's
        return None, exc
    return str(path), None


def _report_run(args: argparse.Namespace, result: Any, stored: str | None, failed: Exception | None, **extra: Any) -> int:
    """Print a run (and a store's failure after it: ``store_error`` in JSON, its one line on
    stderr); the exit code is the store's."""
    code, line = _failure(failed) if failed is not None else (EXIT_OK, None)
    _emit(args, {**result.summary(), **extra, "stored": stored, "store_error": line}, lambda: _print_run(result, stored))
    if line is not None:
        print(f"einet: {line}", file=sys.stderr)
    return code


def _emit(args: argparse.Namespace, document: dict[str, Any], human: Callable[[], None]) -> None:
    if args.json:
        print(json.dumps(document, indent=2))
    else:
        human()


def _print_run(result: Any, stored: str | None) -> None:
    from rich.console import Console

    c = Console()
    layout = f"ranks {result.ranks} × threads {result.threads}" if result.ranks > 1 else f"threads {result.threads}"
    c.print(f"[bold]{shown(result.label)}[/]  {shown(result.origin.describe())}  seed {result.seed}  {layout}")
    c.print(f"  t {result.t_start_ms:g}-{result.t_stop_ms:g} ms  spikes {result.n_spikes}  rate {result.rate_hz:.2f} Hz  digest {result.short_digest}")
    rates = result.group_rates_hz()
    if len(rates) > 1:
        c.print("  " + "  ".join(f"{shown(name)} {hz:.2f} Hz" for name, hz in rates.items()))
    if not result.bit_comparable:
        c.print("  [yellow]virtual processes (ranks × threads) differ from the snapshot's: not bit-comparable with runs at the stored count[/]")
    if result.changes:
        c.print("  changes: " + ", ".join(shown(f"{ch['made_at_ms']:g} ms {ch['target']}.{ch['key']}={ch['value']!r}") for ch in result.changes))
    if stored:
        c.print(f"  stored snapshot: {shown(stored)}")


def _history_file(args: argparse.Namespace) -> Path:
    """--history, else $EINET_HISTORY, else einet-history.sqlite in --snapshot-dir (``history``
    only) or in snapshots/ (from the current folder), as the dashboard finds it."""
    from .history import history_path

    if getattr(args, "history", None) is not None:
        return args.history
    return history_path(getattr(args, "snapshot_dir", None) or Path("snapshots"))


class _Recorder:
    """A command's run history (--history, --no-history): opened at the first run recorded,
    so a command refused earlier touches no file. When the history is or turns off, its one
    warning line goes to stderr, once; nothing goes to stdout and nothing here raises."""

    def __init__(self, args: argparse.Namespace) -> None:
        self._off = bool(getattr(args, "no_history", False))
        self._path = None if self._off else _history_file(args)
        self._history: Any = None
        self._warned = False

    @property
    def wanted(self) -> bool:
        """Whether runs are (still) to be recorded: hashing files for it is worth it."""
        return not self._off and (self._history is None or self._history.enabled)

    def record(self, result: Any, snapshot: Path | None = None) -> int | None:
        """Record a run; ``snapshot`` is the file a restored run came from (hashed here)."""
        if not self.wanted:
            return None
        from .history import History, file_sha256

        if self._history is None:
            self._history = History.open(self._path)  # type: ignore[arg-type]
        sha = file_sha256(snapshot) if snapshot is not None and self._history.enabled else ""
        run_id = self._history.record(result, snapshot_sha256=sha)
        self._warn()
        return run_id

    def stored(self, run_id: int | None, path: Path | None) -> None:
        """Note a snapshot stored from run ``run_id``'s end state (its path and SHA-256)."""
        if run_id is None or path is None or not self.wanted:
            return
        from .history import file_sha256

        self._history.note_stored(run_id, path, file_sha256(path))
        self._warn()

    def close(self) -> None:
        if self._history is not None:
            self._history.close()

    def _warn(self) -> None:
        if self._history is not None and not self._history.enabled and not self._warned:
            self._warned = True
            print(f"einet: warning: {visible(self._history.warning)}", file=sys.stderr)


def _refuse_existing(args: argparse.Namespace) -> None:
    """A --store target that exists is refused before anything is simulated."""
    if args.store is not None and not args.overwrite and (args.store.exists() or args.store.is_symlink()):
        raise UsageError(f"{args.store} exists: choose another name or pass --overwrite")
    if args.store is not None and not args.store.parent.is_dir():
        raise UsageError(f"cannot store {args.store}: folder {args.store.parent} does not exist")


def cmd_run(args: argparse.Namespace) -> int:
    _refuse_existing(args)
    history = _Recorder(args)
    with _session(args, config_from_args(args)) as session:
        session.build()
        if args.store is not None:
            session.check_storable()  # a refusal now, not after the whole run
        result = _run_with_progress(session, "run 1", args.json)
        run_id = history.record(result)
        stored, failed = _store(session, args.store, args.overwrite, args.json)
        history.stored(run_id, args.store if stored else None)
    history.close()
    return _report_run(args, result, stored, failed)


def cmd_restore(args: argparse.Namespace) -> int:
    from .snapshot import open_snapshot

    _refuse_existing(args)
    changes = parse_changes(args.at)  # its syntax before the file is read
    _require_file(args.path)
    snap = open_snapshot(args.path)
    _check_model(args, snap.model)
    history = _Recorder(args)
    # the session's own configuration names no model of the file's: restore runs no model code
    own = NetworkConfig(t_sim_ms=snap.t_sim_ms).replace(t_sim_ms=args.t_ms, store_workers=args.store_workers)
    with _session(args, own) as session:
        session.restore(snap, seed=args.seed, threads=args.threads, changes=changes)
        if args.store is not None:
            session.check_storable()
        result = _run_with_progress(session, "restored", args.json)
        run_id = history.record(result, snapshot=args.path)
        stored, failed = _store(session, args.store, args.overwrite, args.json)
        history.stored(run_id, args.store if stored else None)
    history.close()
    return _report_run(args, result, stored, failed, snapshot=str(args.path))


def _require_file(path: Path) -> None:
    """A missing file is an error (1); anything but a regular file is refused as a snapshot (3)
    before it is opened: a FIFO would block the open, a device could stream forever."""
    from .snapshot import SnapshotError

    if not path.exists() and not path.is_symlink():
        raise FileNotFoundError(f"{path}: no such file")
    if not path.is_file():
        raise SnapshotError(f"{path} is not a regular file")


def _check_model(args: argparse.Namespace, stored: str) -> None:
    if getattr(args, "model", None):
        from .models import ModelRef

        if str(ModelRef.parse(args.model)) != stored:
            raise UsageError(f"the snapshot was stored from model {stored}, not {args.model}")


def cmd_inspect(args: argparse.Namespace) -> int:
    from .snapshot import inspect_snapshot

    _require_file(args.path)
    info = inspect_snapshot(args.path)
    if info.valid:
        _check_model(args, info.model)
    doc = info.to_dict()

    def human() -> None:
        from rich.console import Console
        from rich.table import Table

        c = Console()
        table = Table(show_header=False, box=None)
        verdict = "[green]valid[/]" if info.valid else f"[red]INVALID[/]: {shown(info.problem)}"
        table.add_row("file", shown(f"{info.path} ({info.file_bytes / 1e6:.2f} MB)"))
        table.add_row("integrity", verdict)
        if info.valid:
            params = ", ".join(f"{k}={v}" for k, v in info.params.items())
            table.add_row("model", shown(f"{info.model} (scale {info.scale:g}{', ' + params if params else ''})"))
            table.add_row("format", f"version {info.format_version}")
            table.add_row("populations", shown(", ".join(f"{k} {v}" for k, v in info.groups.items())))
            table.add_row("node models", shown(", ".join(f"{k} {v}" for k, v in info.node_models.items())))
            table.add_row("synapses", shown(", ".join(f"{k} {v}" for k, v in info.synapses.items())))
            if info.custom_models:
                table.add_row("custom models", shown("; ".join(f"{m['op']} {m.get('base', '') + ' → ' if m['op'] == 'CopyModel' else ''}{m['model']}" for m in info.custom_models)))
            table.add_row("stored at", f"t = {info.t_stored_ms:g} ms, seed {info.seed}, n_vp {info.n_vp}")
            table.add_row("created", shown(f"{info.created}  NEST {info.nest_version}, einet {info.einet_version}"))
            for model, w in info.weight_stats.items():
                table.add_row(f"{shown(model)} weight", f"mean {w['mean']:.4f} sd {w['std']:.4f} range {w['min']:.4f}..{w['max']:.4f}")
            for r in info.recorders:
                label = f", label {r['label']}" if r["label"] else ""
                table.add_row("recorder", shown(f"{r['model']} {r['first_id']}" + (f"-{r['first_id'] + r['count'] - 1}" if r["count"] > 1 else "") + f": record_to {r['record_to']}{label}"))
        c.print(table)
        c.print("[bold]stored[/]: " + shown("; ".join(doc["stored"])))
        if info.valid:
            c.print("[bold]stored keys[/] (shared: one value for all; per node or connection: one each):")
            for kind, per in (("nodes", "per node"), ("synapses", "per connection")):
                for model, keys in info.stored_keys.get(kind, {}).items():
                    c.print(f"  - {shown(model)}: shared {shown(', '.join(keys['shared']) or '-')}; {per} {shown(', '.join(keys[per]) or '-')}")
            c.print("[bold]not stored[/]:")
            for line in info.not_stored:
                c.print(f"  - {shown(line)}")

    _emit(args, doc, human)
    if not info.valid:
        print(f"einet: invalid snapshot: {visible(info.problem)}", file=sys.stderr)
        return EXIT_SNAPSHOT
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from .analysis import identical_to
    from .demo import run_demo

    _refuse_existing(args)
    with contextlib.ExitStack() as stack:
        session = stack.enter_context(_session(args, config_from_args(args)))
        path = args.store or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="einet-demo-"))) / "demo.h5"
        with _progress(not args.json, "demo") as update:
            done = [0]

            def on_caption(step: Any) -> None:
                update(done[0] / 6)
                done[0] += 1

            results = run_demo(session, path, t_ms=args.t_ms, on_caption=on_caption, step_ms=100.0, overwrite=args.overwrite or args.store is None)
        history = _Recorder(args)  # while the snapshot (a temporary file without --store) is there to hash
        ids = [history.record(r, snapshot=path if r.origin.kind == "restored" else None) for r in results]
        history.stored(ids[0] if ids else None, args.store)  # the snapshot is the first run's end state
        history.close()
    same = identical_to([r.digest for r in results])
    doc = {"runs": [{**r.summary(), "identical_to": None if k is None else results[k].label} for r, k in zip(results, same)]}

    def human() -> None:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"store/restore, five runs: {session.config.model}")
        for col in ("run", "origin", "seed", "t [ms]", "spikes", "rate [Hz]", "digest", "identical to"):
            table.add_column(shown(col))  # a header is markup: "[ms]" would vanish
        for r, k in zip(results, same):
            table.add_row(r.label, r.origin.kind, str(r.seed), f"{r.t_start_ms:g}-{r.t_stop_ms:g}", str(r.n_spikes), f"{r.rate_hz:.2f}", r.digest[:8], "" if k is None else results[k].label)
        console = Console(width=None if sys.stdout.isatty() else 120)
        console.print(table)
        console.print(f"restored runs go on from the snapshot stored at t = {results[0].t_stop_ms:g} ms, on its clock")
        if not args.no_plots:
            print(_demo_plots(results))

    _emit(args, doc, human)
    return EXIT_OK


def _demo_plots(results: Sequence[Any]) -> str:
    """The example's figure as text: one raster per run, then PSTHs and weight histograms."""
    import os

    import numpy as np
    import plotext as plt

    from .plots import COLORS, draw_psth, draw_raster, draw_weights

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


def cmd_history(args: argparse.Namespace) -> int:
    from .history import History

    if args.limit < 1:
        raise UsageError(f"--limit must be 1 or more, not {args.limit}")
    path = _history_file(args)
    runs: list[Any] = []
    same: list[Any] = []
    if path.exists() or path.is_symlink():
        with History.open(path) as history:
            runs = history.runs(args.limit)
            same = [history.first_with_digest(r.digest, before_id=r.id) for r in runs]
            if not history.enabled:
                print(f"einet: error: {visible(history.problem)}", file=sys.stderr)
                return EXIT_ERROR
    doc = {"history": str(path), "runs": [{**r.to_dict(), "identical_to": None if s is None else s.id} for r, s in zip(runs, same)]}

    def human() -> None:
        from rich.console import Console
        from rich.table import Table

        if not runs:
            print(f"no runs recorded yet in {visible(path)}")
            return
        table = Table(title=f"run history: {shown(path)}")
        for col in ("id", "when", "label", "origin", "seed", "threads", "t [ms]", "spikes", "rate [Hz]", "digest", "same as"):
            table.add_column(shown(col), justify="right" if col in ("id", "seed", "spikes", "rate [Hz]", "same as") else "left", no_wrap=col in ("when", "t [ms]", "digest"))  # "[ms]" is markup
        for r, s in zip(runs, same):
            origin = f"restored {Path(r.snapshot).name}" if r.origin == "restored" and r.snapshot else r.origin
            if r.cancelled:
                origin += " (cancelled)"
            layout = f"{r.ranks}×{r.threads}" if r.ranks > 1 else str(r.threads)
            rate = "" if r.rate_hz is None else f"{r.rate_hz:.2f}"
            table.add_row(str(r.id), shown(_local_time(r.recorded_at)), shown(r.label), shown(origin), str(r.seed), layout, f"{r.t_start_ms:g}-{r.t_stop_ms:g}", str(r.spikes), rate, shown(r.digest[:8]), "" if s is None else str(s.id))
        console = Console(width=None if sys.stdout.isatty() else 120)
        console.print(table)

    _emit(args, doc, human)
    return EXIT_OK


def _local_time(iso: str) -> str:
    """An ISO-8601 time as local time to the minute (the text itself if it is not one)."""
    from datetime import datetime

    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M")
    except (ValueError, OverflowError, OSError):
        return iso


def cmd_tui(args: argparse.Namespace) -> int:
    from tui.app import run_app  # the one import of the UI from einet/: the `tui` command

    return run_app(config_from_args(args), args, launch_from_args(args))


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_run,
    "restore": cmd_restore,
    "inspect": cmd_inspect,
    "demo": cmd_demo,
    "history": cmd_history,
    "tui": cmd_tui,
}


_ENGINE_EXITS = {
    "CannotStoreError": (EXIT_CANNOT_STORE, "cannot store"),
    "SnapshotError": (EXIT_SNAPSHOT, "invalid snapshot"),
    "ConfigError": (EXIT_USAGE, "usage"),
    "ModelError": (EXIT_USAGE, "usage"),
    "ProtocolError": (EXIT_USAGE, "usage"),
    "RunLengthError": (EXIT_USAGE, "usage"),
    "SnapshotExistsError": (EXIT_ERROR, "error"),
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
            argv = ["tui", *argv]  # `einet --scale 0.2` is the dashboard with flags
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except BrokenPipeError:
        # the reader went away (`einet inspect x.h5 | head -1`): nothing left to say
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        print("einet: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - a tool users trust must not spray tracebacks
        code, line = _failure(exc)
        print(f"einet: {line}", file=sys.stderr)
        return code


def _failure(exc: Exception) -> tuple[int, str]:
    """A command's failure as its exit code and its one line (after ``einet: ``)."""
    from .engine.errors import EngineError
    from .session import RunLengthError, SessionError
    from .snapshot import CannotStoreError, SnapshotError, SnapshotExistsError

    if isinstance(exc, ModelBuildError):
        return EXIT_ERROR, f"error: {visible(exc)}"
    if isinstance(exc, (UsageError, ConfigError, ModelError, RunLengthError)):
        return EXIT_USAGE, f"usage: {visible(exc)}"
    if isinstance(exc, CannotStoreError):
        return EXIT_CANNOT_STORE, f"cannot store: {visible(exc)}"
    if isinstance(exc, SnapshotExistsError):
        return EXIT_ERROR, f"error: {visible(exc)}"
    if isinstance(exc, SnapshotError):
        return EXIT_SNAPSHOT, f"invalid snapshot: {visible(exc)}"
    if isinstance(exc, (SessionError, OSError)):
        message = exc.args[0] if isinstance(exc, FileNotFoundError) and exc.args else exc
        return EXIT_ERROR, f"error: {visible(message)}"
    if isinstance(exc, EngineError):  # from an engine (--ranks): its kind says which exit code
        code, what = _ENGINE_EXITS.get(exc.kind, (EXIT_ERROR, "error"))
        return code, f"{what}: {visible(exc)}"
    return EXIT_ERROR, f"error: {type(exc).__name__}: {visible(one_line(exc))}"


def entry() -> int:
    """The ``einet`` command. A command that runs NEST in this process runs in a child that
    Ctrl-C ends within two seconds even while NEST is stuck inside one call
    (:func:`einet.children.run_stoppable`); the dashboard's engine is a process of its own."""
    from .children import run_stoppable

    if sys.argv[1:2] and sys.argv[1] in _NEST_HERE:
        return run_stoppable(_entry)
    return _entry()


_NEST_HERE = ("run", "restore", "demo")


def _entry() -> int:
    """:func:`main`, without "Exception ignored" tracebacks from Ctrl-C.

    Python cannot raise a KeyboardInterrupt that arrives while a garbage-collection callback
    runs (as many do when a store's objects are freed): it prints a traceback and goes on. Such
    an interrupt is noted instead, and the command ends as interrupted (exit 130) once done —
    whatever it published is complete. After the work, the exit itself ignores Ctrl-C."""
    import signal

    swallowed: list[bool] = []
    default = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if unraisable.exc_type is KeyboardInterrupt:
            swallowed.append(True)
        else:
            default(unraisable)

    sys.unraisablehook = hook
    try:
        code = main()
        if swallowed and code == EXIT_OK:
            print("einet: interrupted", file=sys.stderr)
            code = 130
    except KeyboardInterrupt:  # one landing after main() handled its own, or in its handlers
        code = 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    return code


if __name__ == "__main__":
    sys.exit(entry())

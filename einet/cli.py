"""The ``einet`` command: run, restore, inspect, demo, and (no arguments) the dashboard.

Exit codes: 0 ok, 1 anything else, 2 usage, 3 invalid or unsafe snapshot. Errors are one
line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from . import __version__
from .config import ConfigError, NetworkConfig

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_SNAPSHOT = 0, 1, 2, 3


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _network_flags(p: argparse.ArgumentParser, *, scale: bool = True) -> None:
    if scale:
        p.add_argument("--scale", type=float, help="multiply population sizes (default 1: 2000 E + 500 I)")
        p.add_argument("--config", type=Path, help="TOML file with network parameters")
    p.add_argument("--threads", type=int, help="NEST threads")
    p.add_argument("--seed", type=int, help="NEST rng_seed")
    p.add_argument("--t", type=float, dest="t_ms", metavar="MS", help="simulated time per run in ms (default 1000)")
    p.add_argument("--json", action="store_true", help="print one JSON document, no progress")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="einet", description="Store and restore NEST network simulations.")
    parser.add_argument("--version", action="version", version=f"einet {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    run = sub.add_parser("run", help="build a fresh network and simulate it")
    _network_flags(run)
    run.add_argument("--store", type=Path, metavar="PATH", help="store a snapshot at the end")
    run.add_argument("--overwrite", action="store_true", help="allow --store to replace an existing file")

    restore = sub.add_parser("restore", help="restore a snapshot into a clean kernel and simulate")
    restore.add_argument("path", type=Path)
    _network_flags(restore, scale=False)
    restore.add_argument("--store", type=Path, metavar="PATH", help="store a snapshot at the end")
    restore.add_argument("--overwrite", action="store_true", help="allow --store to replace an existing file")

    inspect = sub.add_parser("inspect", help="show a snapshot's metadata, counts and integrity")
    inspect.add_argument("path", type=Path)
    inspect.add_argument("--json", action="store_true")

    demo = sub.add_parser("demo", help="the example's five runs, compared, with terminal plots")
    demo.add_argument("--scale", type=float)
    demo.add_argument("--t", type=float, dest="t_ms", metavar="MS")
    demo.add_argument("--threads", type=int)
    demo.add_argument("--seed", type=int)
    demo.add_argument("--store", type=Path, metavar="PATH", help="keep the demo's snapshot here")
    demo.add_argument("--json", action="store_true")
    demo.add_argument("--no-plots", action="store_true")

    tui = sub.add_parser("tui", help="the dashboard (also: einet with no arguments)")
    from tui.options import add_tui_flags  # no Textual import: only argparse flags

    add_tui_flags(tui)
    return parser


def config_from_args(args: argparse.Namespace) -> NetworkConfig:
    """The network configuration from --config (TOML) and the flags that override it."""
    base = NetworkConfig.from_toml(args.config) if getattr(args, "config", None) else NetworkConfig()
    return base.replace(
        scale=getattr(args, "scale", None),
        threads=args.threads,
        seed=args.seed,
        t_sim_ms=args.t_ms,
    )


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


def _store(session: Any, path: Path | None, overwrite: bool, quiet: bool) -> str | None:
    if path is None:
        return None
    with _progress(not quiet, f"storing {path.name}") as update:
        session.store(path, overwrite=overwrite, progress=update)
    return str(path)


def _emit(args: argparse.Namespace, document: dict[str, Any], human: Callable[[], None]) -> None:
    if args.json:
        print(json.dumps(document, indent=2))
    else:
        human()


def _print_run(result: Any, stored: str | None) -> None:
    from rich.console import Console

    c = Console()
    c.print(f"[bold]{result.label}[/]  {result.origin.describe()}  seed {result.seed}  threads {result.threads}")
    c.print(f"  t {result.t_start_ms:g}-{result.t_stop_ms:g} ms  spikes {result.n_spikes}  rate {result.rate_hz:.2f} Hz  digest {result.short_digest}")
    if not result.bit_comparable:
        c.print("  [yellow]threads differ from the snapshot's: not bit-comparable with runs at the stored thread count[/]")
    if stored:
        c.print(f"  stored snapshot: {stored}")


def cmd_run(args: argparse.Namespace) -> int:
    from .session import Session

    session = Session(config_from_args(args))
    session.build()
    result = _run_with_progress(session, "run 1", args.json)
    stored = _store(session, args.store, args.overwrite, args.json)
    _emit(args, {**result.summary(), "stored": stored}, lambda: _print_run(result, stored))
    return EXIT_OK


def cmd_restore(args: argparse.Namespace) -> int:
    from .session import Session
    from .snapshot import Snapshot

    if not args.path.is_file():
        raise FileNotFoundError(f"{args.path}: no such file")
    snap = Snapshot.open(args.path)
    session = Session(snap.config.replace(t_sim_ms=args.t_ms))
    session.restore(snap, seed=args.seed, threads=args.threads)
    result = _run_with_progress(session, "restored", args.json)
    stored = _store(session, args.store, args.overwrite, args.json)
    _emit(args, {**result.summary(), "snapshot": str(args.path), "stored": stored}, lambda: _print_run(result, stored))
    return EXIT_OK


def cmd_inspect(args: argparse.Namespace) -> int:
    from .snapshot import Snapshot

    if not args.path.is_file():
        raise FileNotFoundError(f"{args.path}: no such file")
    info = Snapshot.inspect(args.path)
    doc = info.to_dict()

    def human() -> None:
        from rich.console import Console
        from rich.table import Table

        c = Console()
        table = Table(show_header=False, box=None)
        verdict = "[green]valid[/]" if info.valid else f"[red]INVALID[/]: {info.problem}"
        table.add_row("file", f"{info.path} ({info.file_bytes / 1e6:.2f} MB)")
        table.add_row("integrity", verdict)
        if info.config is not None:
            cfg = info.config
            table.add_row("neurons", f"E {cfg.n_exc}, I {cfg.n_inh} (scale {cfg.scale:g})")
            table.add_row("synapses", f"e_syn {cfg.n_e_syn}, i_syn {cfg.n_i_syn}")
            table.add_row("stored at", f"t = {info.t_stored_ms:g} ms, seed {info.seed}, n_vp {info.n_vp}")
            table.add_row("created", f"{info.created}  NEST {info.nest_version}, einet {info.einet_version}")
        if info.e_weight_stats:
            w = info.e_weight_stats
            table.add_row("e_syn weight", f"mean {w['mean']:.4f} sd {w['std']:.4f} range {w['min']:.4f}..{w['max']:.4f} mV")
        c.print(table)
        c.print("[bold]stored[/]: " + "; ".join(doc["stored"]))
        c.print("[bold]not stored[/]: " + "; ".join(doc["not_stored"]))

    _emit(args, doc, human)
    if not info.valid:
        print(f"einet: invalid snapshot: {info.problem}", file=sys.stderr)
        return EXIT_SNAPSHOT
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from .analysis import identical_to
    from .demo import run_demo
    from .session import Session

    session = Session(config_from_args(args))
    with contextlib.ExitStack() as stack:
        path = args.store or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="einet-demo-"))) / "demo.h5"
        with _progress(not args.json, "demo") as update:
            done = [0]

            def on_caption(step: Any) -> None:
                update(done[0] / 6)
                done[0] += 1

            results = run_demo(session, path, t_ms=args.t_ms, on_caption=on_caption, step_ms=100.0)
    same = identical_to([r.digest for r in results])
    doc = {"runs": [{**r.summary(), "identical_to": None if k is None else results[k].label} for r, k in zip(results, same)]}

    def human() -> None:
        from rich.console import Console
        from rich.table import Table

        table = Table(title="NEST store/restore example, five runs")
        for col in ("run", "origin", "seed", "t [ms]", "spikes", "rate [Hz]", "digest", "identical to"):
            table.add_column(col)
        for r, k in zip(results, same):
            table.add_row(r.label, r.origin.kind, str(r.seed), f"{r.t_start_ms:g}-{r.t_stop_ms:g}", str(r.n_spikes), f"{r.rate_hz:.2f}", r.digest[:8], "" if k is None else results[k].label)
        console = Console(width=None if sys.stdout.isatty() else 120)
        console.print(table)
        console.print(f"restored runs start at t = 0 from the snapshot stored at t = {results[0].t_stop_ms:g} ms")
        if not args.no_plots:
            print(_demo_plots(results))

    _emit(args, doc, human)
    return EXIT_OK


def _demo_plots(results: Sequence[Any]) -> str:
    """The example's figure as text: one raster per run, then PSTHs and weight histograms."""
    import os

    import plotext as plt

    from .plots import COLORS, draw_psth, draw_raster, draw_weights

    plain = bool(os.environ.get("NO_COLOR")) or not sys.stdout.isatty()
    width = min(max(plt.terminal_width() or 100, 60), 140)
    panels: list[Callable[[], None]] = [
        (lambda i=i, r=r: draw_raster(plt, r.senders, r.times, r.t_start_ms, r.t_stop_ms, title=f"{r.label} ({r.short_digest})", color=COLORS[i]))
        for i, r in enumerate(results)
    ]
    panels.append(lambda: draw_psth(plt, [(r.label, r.psth_t_ms, r.psth_hz) for r in results], align=True))
    panels.append(lambda: draw_weights(plt, [(r.label, r.weights) for r in results]))
    out = []
    for draw in panels:
        plt.clear_figure()
        plt.plot_size(width, 14)
        draw()
        text = str(plt.build())
        out.append(plt.uncolorize(text) if plain else text)
    return "\n".join(out)


def cmd_tui(args: argparse.Namespace) -> int:
    from tui.app import run_app

    return run_app(args)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_run,
    "restore": cmd_restore,
    "inspect": cmd_inspect,
    "demo": cmd_demo,
    "tui": cmd_tui,
}


def main(argv: Sequence[str] | None = None) -> int:
    from .session import SessionError
    from .snapshot import SnapshotError

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
            argv = ["tui", *argv]  # `einet --scale 0.2` is the dashboard with flags
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except UsageError as exc:
        print(f"einet: usage: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as exc:
        print(f"einet: usage: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SnapshotError as exc:
        print(f"einet: invalid snapshot: {exc}", file=sys.stderr)
        return EXIT_SNAPSHOT
    except (SessionError, OSError) as exc:
        message = exc.args[0] if isinstance(exc, FileNotFoundError) and exc.args else exc
        print(f"einet: error: {message}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("einet: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a tool users trust must not spray tracebacks
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"einet: error: {type(exc).__name__}: {first}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())

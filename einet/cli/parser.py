"""The command line: subcommands, their flags, and the configuration they make."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, NoReturn

from .. import __version__
from ..config import DEFAULT_MODEL, NetworkConfig, parse_assignments
from ..protocol import parse_changes


class UsageError(Exception):
    pass


class Parser(argparse.ArgumentParser):
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


def _store_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", type=Path, metavar="PATH", help="store a snapshot at the end")
    p.add_argument("--overwrite", action="store_true", help="allow --store to replace an existing file")


def _checkpoint_flags(p: argparse.ArgumentParser, default_dir: str = "beside --store, NAME.checkpoints/; else checkpoints/") -> None:
    p.add_argument("--checkpoint-every", type=float, metavar="MS", help="store a checkpoint every MS of biological time, in the background, into --checkpoint-dir (resume with einet resume DIR)")
    p.add_argument("--keep", type=int, metavar="K", help="checkpoints to keep, the newest (default 3)")
    p.add_argument("--checkpoint-dir", type=Path, metavar="DIR", help=f"where checkpoints go (default: {default_dir})")


def _history_flags(p: argparse.ArgumentParser, *, off_flag: bool = True, default: str = "snapshots/einet-history.sqlite") -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--history", type=Path, metavar="PATH", help=f"the run history database (default: $EINET_HISTORY, else {default})")
    if off_flag:
        group.add_argument("--no-history", action="store_true", help="record nothing in the run history")


def _trials_parser(sub: Any) -> None:
    """The ``trials`` subcommand and its flags."""
    p = sub.add_parser("trials", help="many trials from one snapshot: conditions × seeds, on every core or a Dask cluster, with per-condition statistics")
    p.add_argument("path", type=Path, help="the snapshot file")
    p.add_argument("--seeds", required=True, metavar="N|LIST", help="seeds 1 to N, or a list (3,7,11): one trial per seed and condition")
    p.add_argument("--at", action="append", metavar="T:TARGET.KEY=VALUE", help="a change (repeatable): alone, a condition compared with the baseline (no change); with --vary, made in every condition")
    p.add_argument("--vary", action="append", metavar="TARGET.KEY=V1,V2,…", help="one condition per value, made at the restore (repeatable: crossed); the first value is the baseline")
    p.add_argument("--t", type=float, dest="t_ms", metavar="MS", help="simulated time per trial in ms (default: the snapshot's)")
    p.add_argument("--threads", type=int, default=1, metavar="N", help="NEST threads per trial (default 1: one trial per core is the fastest use of them)")
    p.add_argument("--workers", type=int, metavar="N", help="local worker processes, or with --dask local the LocalCluster's (default: usable cores ÷ threads)")
    p.add_argument("--dask", metavar="ADDRESS|local", help="run on the Dask cluster at ADDRESS (tcp://host:8786), or on a LocalCluster started here (local)")
    p.add_argument("--ship", action="store_true", help="with --dask: send the snapshot to every worker (default: read from its path where every worker holds the same file, by SHA-256; else sent)")
    p.add_argument("--out", type=Path, metavar="FILE.parquet|.csv", help="one row per trial, written as trials finish")
    p.add_argument("--spikes", type=Path, metavar="DIR", help="each trial's spikes as DIR/trial-NNNN.parquet")
    p.add_argument("--overwrite", action="store_true", help="allow --out and --spikes to replace existing files")
    p.add_argument("--json", action="store_true", help="print one JSON document, no progress")
    _history_flags(p)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="einet",
        description="Store and restore NEST network simulations.",
        epilog="exit codes: 0 ok, 1 error (e.g. a model's own code failed), 2 usage, 3 invalid or unsafe snapshot, "
        "4 cannot store (told before simulating when the network is what a snapshot cannot hold), 130 interrupted. "
        "Seeds are 1 to 2147483647. Nothing is overwritten without --overwrite.",
    )
    parser.add_argument("--version", action="version", version=f"einet {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=Parser)

    run = sub.add_parser("run", help="build a network and simulate it")
    _model_flags(run)
    _run_flags(run)
    _store_flags(run)
    _checkpoint_flags(run)
    _history_flags(run)

    restore = sub.add_parser("restore", help="restore a snapshot into a clean kernel and simulate (runs no model code)")
    restore.add_argument("path", type=Path, help="the snapshot file")
    restore.add_argument("--model", metavar="REF", help="check that the snapshot was stored from this model")
    _run_flags(restore, defaults="the snapshot's")
    _store_flags(restore)
    _checkpoint_flags(restore)
    _history_flags(restore)

    resume = sub.add_parser("resume", help="go on with a run that checkpointed (--checkpoint-every) from its newest whole checkpoint to its planned end")
    resume.add_argument("path", type=Path, metavar="DIR|FILE", help="the run's checkpoint folder (its newest whole checkpoint), or one checkpoint in it")
    resume.add_argument("--store-workers", type=int, metavar="N", help="processes reading connections when storing (default: every usable core; 1: none forked)")
    resume.add_argument("--json", action="store_true", help="print one JSON document, no progress")
    _store_flags(resume)
    _history_flags(resume)

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

    _trials_parser(sub)

    tui = sub.add_parser("tui", help="the dashboard (also: einet with no arguments)")
    _model_flags(tui)
    _run_flags(tui, json_flag=False)
    from einet.tui.options import add_tui_flags  # no Textual import: only argparse flags

    add_tui_flags(tui)
    _checkpoint_flags(tui, default_dir="checkpoints/ in --snapshot-dir, a folder per run")
    _history_flags(tui, default="einet-history.sqlite in --snapshot-dir")
    return parser


def config_from_args(args: argparse.Namespace) -> NetworkConfig:
    """The configuration from --config (TOML), then the flags that override it."""
    base = NetworkConfig.from_toml(args.config) if getattr(args, "config", None) else NetworkConfig()
    model = getattr(args, "model", None)
    if model is not None:
        from ..models import ModelRef

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
    from ..engine.launch import LaunchError, MpiLaunch

    try:
        launch = MpiLaunch(ranks, mpirun or "")
        launch.command([])  # a missing MPI NEST or launcher is told now, before anything runs
    except LaunchError as exc:
        raise UsageError(str(exc)) from None
    return launch

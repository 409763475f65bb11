"""``einet trials``: conditions × seeds restored from one snapshot, on local worker processes or
a Dask cluster; rows as trials finish, then each figure per condition against the baseline."""

from __future__ import annotations

import argparse
import dataclasses
import json
import secrets
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..protocol import parse_changes
from ..text import visible
from .exits import EXIT_ERROR, EXIT_OK
from .parser import UsageError
from .recorder import HistoryRecorder
from .render import trial_line, trials_progress, trials_table

EXIT_INTERRUPTED = 130


def add_trials_parser(sub: Any, history_flags: Any) -> None:
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
    p.add_argument("--out", type=Path, metavar="FILE.parquet|.csv", help="one row per trial, written as trials finish")
    p.add_argument("--spikes", type=Path, metavar="DIR", help="each trial's spikes as DIR/trial-NNNN.parquet")
    p.add_argument("--overwrite", action="store_true", help="allow --out and --spikes to replace existing files")
    p.add_argument("--json", action="store_true", help="print one JSON document, no progress")
    history_flags(p)


def _check_args(args: argparse.Namespace) -> None:
    if args.threads < 1:
        raise UsageError(f"--threads must be 1 or more, not {args.threads}")
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be 1 or more, not {args.workers}")
    if args.workers is not None and args.dask not in (None, "local"):
        raise UsageError("--workers goes with local workers or --dask local; a cluster at an address has its own")
    if args.t_ms is not None and not (args.t_ms > 0 and args.t_ms < float("inf")):
        raise UsageError(f"--t must be a positive number of ms, not {args.t_ms:g}")
    if args.out is not None:
        if args.out.suffix.lower() not in (".csv", ".parquet"):
            raise UsageError(f"--out writes .csv or .parquet, not {args.out.name}")
        if (args.out.exists() or args.out.is_symlink()) and not args.overwrite:
            raise UsageError(f"{args.out} exists: choose another name or pass --overwrite")
        if not args.out.parent.is_dir():
            raise UsageError(f"cannot write {args.out}: folder {args.out.parent} does not exist")
    if args.spikes is not None and args.spikes.exists() and not args.spikes.is_dir():
        raise UsageError(f"--spikes {args.spikes} is not a folder")


def _set_id() -> str:
    """A set's name in the run history: when it started, and a random tail for sets started
    in one second."""
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def cmd_trials(args: argparse.Namespace) -> int:
    from ..trials.pool import PoolError

    try:
        return _trials(args)
    except PoolError as exc:  # no cluster there, a worker without einet: the set cannot run
        print(f"einet: error: {visible(exc)}", file=sys.stderr)
        return EXIT_ERROR


def _trials(args: argparse.Namespace) -> int:
    from ..history import file_sha256
    from ..snapshot import SnapshotError, inspect_snapshot
    from ..trials import TrialSet, parse_seeds, parse_vary, plan_conditions
    from ..trials.output import RowWriter, columns, condition_table, figure_names
    from ..trials.pool import DaskPool, LocalPool, Pool, PoolError, TrialRunner, default_workers, missing_software
    from ..trials.run import TrialSpec, check_changes, run_trial
    from .commands import _require_file

    _check_args(args)
    seeds = parse_seeds(args.seeds)
    at = parse_changes(args.at)
    vary = tuple(parse_vary(v) for v in args.vary or ())
    plan = TrialSet(plan_conditions(at, vary), seeds)
    _require_file(args.path)
    info = inspect_snapshot(args.path)
    if not info.valid:
        raise SnapshotError(info.problem)
    sha = file_sha256(args.path)
    if args.spikes is not None and not args.overwrite:
        clash = [args.spikes / _spike_file(t.index) for t in plan.trials if (args.spikes / _spike_file(t.index)).exists()]
        if clash:
            raise UsageError(f"{clash[0]} exists: choose another --spikes folder or pass --overwrite")
    figures = figure_names(list(info.groups), [m for m in info.weight_stats])
    set_id = _set_id()
    names = [c.name for c in plan.conditions]
    quiet = args.json

    pool: Pool
    if args.dask is not None:
        pool = DaskPool(args.dask, args.workers or min(default_workers(args.threads), len(plan.trials)), args.path)
    else:
        pool = LocalPool(args.workers or min(default_workers(args.threads), len(plan.trials)))
    rows: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    interrupted = False
    writer: RowWriter | None = None
    history = HistoryRecorder(args)
    runner: TrialRunner | None = None
    started = time.monotonic()
    t_ms = args.t_ms
    try:
        try:
            checked = pool.submit(check_changes, str(args.path.resolve()), sha, tuple(tuple(ch.to_dict() for ch in c.changes) for c in plan.conditions)).result()
        except ImportError as exc:
            raise PoolError(missing_software(exc) or str(exc)) from None
        t_ms = args.t_ms if args.t_ms is not None else float(checked["t_sim_ms"])
        if not quiet:
            print(
                f"einet: {len(plan.trials)} trials ({len(plan.conditions)} condition{'s' if len(plan.conditions) != 1 else ''} × {len(seeds)} seeds, {t_ms:g} ms each, {args.threads} thread{'s' if args.threads != 1 else ''}) on {pool.describe()}; set {set_id}",
                file=sys.stderr,
            )
        if args.out is not None:
            writer = RowWriter(args.out, columns(figures))
        if args.spikes is not None:
            args.spikes.mkdir(parents=True, exist_ok=True)
        # what the end needs, loaded while the workers run: a Ctrl-C then ends within 2 s
        import rich.table  # noqa: F401
        import scipy.stats  # noqa: F401

        specs = [
            TrialSpec(set_id, t.index, t.condition, names[t.condition], t.seed, args.threads, t_ms, tuple(ch.to_dict() for ch in plan.conditions[t.condition].changes), str(args.path.resolve()), sha, isinstance(pool, DaskPool))
            for t in plan.trials
        ]
        n_workers = pool.workers
        runner = TrialRunner(pool, specs, run_trial, restart=(lambda: LocalPool(n_workers)) if isinstance(pool, LocalPool) else None)
        with trials_progress(not quiet, len(specs)) as progress:
            for spec, future in runner:
                outcome = _outcome(future, spec, missing_software)
                row = {**outcome.row, "worker": outcome.worker}
                if outcome.result is not None:
                    result = dataclasses.replace(outcome.result, label=f"trials {set_id} #{spec.index + 1} seed {spec.seed} {spec.condition_name}"[:200])
                    result = dataclasses.replace(result, origin=dataclasses.replace(result.origin, snapshot=str(args.path)))
                    history.record(result, sha256=sha)
                    if args.spikes is not None:
                        result.spikes_frame().to_parquet(args.spikes / _spike_file(spec.index))
                rows.append(row)
                if outcome.error:
                    failed.append(row)
                if writer is not None:
                    writer.write(row)
                progress.advance(trial_line(row, len(specs), figures) if not quiet else "")
    except KeyboardInterrupt:
        interrupted = True
        (runner.pool if runner is not None else pool).stop()
    finally:
        if not interrupted:
            (runner.pool if runner is not None else pool).close()
        if writer is not None:
            writer.close()
        history.close()
    rows.sort(key=lambda r: r["trial"])
    table = condition_table(rows, names, figures)
    doc = {
        "set": set_id,
        "snapshot": str(args.path),
        "sha256": sha,
        "where": pool.describe(),
        "conditions": [{"name": c.name, "changes": [ch.to_dict() for ch in c.changes]} for c in plan.conditions],
        "seeds": list(seeds),
        "t_ms": t_ms,
        "threads": args.threads,
        "trials": len(plan.trials),
        "finished": len(rows),
        "failed": len(failed),
        "interrupted": interrupted,
        "worker_restarts": runner.restarts if runner is not None else 0,
        "wall_s": round(time.monotonic() - started, 3),
        "rows": [{k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()} for r in rows],
        "statistics": [line.to_dict() for line in table],
        "method": "Welch's t-test (scipy.stats.ttest_ind, equal_var=False); 95 % intervals",
        "out": None if args.out is None else str(args.out),
    }
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        trials_table(table, names)
    if interrupted:
        print(f"einet: interrupted: {len(rows)} of {len(plan.trials)} trials finished{' (kept in ' + visible(args.out) + ')' if args.out else ''}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if failed:
        print(f"einet: error: {len(failed)} of {len(plan.trials)} trials failed (the first: {visible(failed[0]['error'])})", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def _spike_file(index: int) -> str:
    return f"trial-{index + 1:04d}.parquet"


def _outcome(future: Any, spec: Any, missing_software: Any) -> Any:
    """The trial's outcome; a worker that died or lacks einet fails the trial (one line), or,
    lacking einet or NEST, the set."""
    from ..trials.pool import PoolError
    from ..trials.run import TrialOutcome

    try:
        return future.result()
    except ImportError as exc:
        line = missing_software(exc)
        if line is not None:
            raise PoolError(line) from None
        error = f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # noqa: BLE001 - a worker that died: this trial fails, the set goes on
        error = f"its worker failed: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
    row = {"set": spec.set_id, "trial": spec.index + 1, "condition": spec.condition_name, "condition_index": spec.condition, "seed": spec.seed, "threads": spec.threads, "error": error}
    return TrialOutcome(spec, row, None, error, "")

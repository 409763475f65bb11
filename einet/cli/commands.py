"""The subcommands: each runs, restores, inspects, demos, lists or starts the dashboard."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import NetworkConfig
from ..protocol import parse_changes
from ..runs import RunResult
from ..text import visible
from .exits import EXIT_ERROR, EXIT_OK, EXIT_SNAPSHOT
from .parser import UsageError, config_from_args, launch_from_args
from .recorder import HistoryRecorder, history_file

if TYPE_CHECKING:
    from ..checkpoints import Checkpointer
    from ..session import SessionLike

from .render import demo_plots, emit, local_time, progress, report_run, shown, trial_line, trials_progress, trials_table


@contextlib.contextmanager
def _session(args: argparse.Namespace, config: NetworkConfig) -> Iterator[SessionLike]:
    """This process's Session, or with --ranks one served by an MPI job (shut down after)."""
    launch = launch_from_args(args)
    if launch is None:
        from ..session import Session

        yield Session(config)
        return
    from ..engine.remote import RemoteSession

    with RemoteSession(config, mpi=launch) as session:
        yield session


def _run_with_progress(session: SessionLike, label: str, quiet: bool, checkpoints: Checkpointer | None = None, t_ms: float | None = None) -> RunResult:
    with progress(not quiet, f"simulating {label}") as update:
        if checkpoints is not None:
            return checkpoints.run(session.config.t_sim_ms if t_ms is None else t_ms, label=label, step_ms=100.0, on_step=lambda u: update(u.progress))
        return session.run(t_ms, label=label, step_ms=100.0, on_step=lambda u: update(u.progress))


def _log(line: str) -> None:
    print(f"einet: {line}", file=sys.stderr)


def _checkpoint_folder(args: argparse.Namespace) -> Path | None:
    """The folder --checkpoint-every writes to (checked now, before anything is built), or None."""
    from ..checkpoints import check_folder, check_interval, default_folder

    every = getattr(args, "checkpoint_every", None)
    if every is None:
        if args.keep is not None or args.checkpoint_dir is not None:
            raise UsageError("--keep and --checkpoint-dir go with --checkpoint-every MS")
        return None
    check_interval(every, args.keep)
    if getattr(args, "ranks", None) is not None:
        # MPI ranks must not fork, and a checkpoint that stopped the run would cost the run
        raise UsageError("--checkpoint-every stores in the background, which MPI ranks cannot: not with --ranks")
    folder: Path = args.checkpoint_dir or default_folder(args.store)
    check_folder(folder)
    return folder


def _checkpointer(args: argparse.Namespace, session: SessionLike, folder: Path | None, label: str) -> Checkpointer | None:
    """The run's checkpoints from its current time to one run length later (None without)."""
    if folder is None:
        return None
    from ..checkpoints import DEFAULT_KEEP, Checkpointer, CheckpointPlan
    from ..session import Session

    assert isinstance(session, Session)  # --ranks was refused with --checkpoint-every
    t0 = session.time_ms
    plan = CheckpointPlan(t0, t0 + session.config.t_sim_ms, args.checkpoint_every, args.keep or DEFAULT_KEEP, label)
    if not args.json:
        _log(f"checkpoints every {plan.every_ms:g} ms into {visible(folder)} (after a crash: einet resume {visible(folder)})")
    return Checkpointer(session, folder, plan, log=_log)


def _store(session: SessionLike, path: Path | None, overwrite: bool, quiet: bool) -> tuple[str | None, Exception | None]:
    """The path stored, or the store's failure: the run before it is reported either way."""
    if path is None:
        return None, None
    try:
        with progress(not quiet, f"storing {path.name}") as update:
            session.store(path, overwrite=overwrite, progress=update)
    except Exception as exc:  # noqa: BLE001 - reported with the run, its exit code the command's
        return None, exc
    return str(path), None


def _refuse_existing(args: argparse.Namespace) -> None:
    """A --store target that exists is refused before anything is simulated."""
    if args.store is not None and not args.overwrite and (args.store.exists() or args.store.is_symlink()):
        raise UsageError(f"{args.store} exists: choose another name or pass --overwrite")
    if args.store is not None and not args.store.parent.is_dir():
        raise UsageError(f"cannot store {args.store}: folder {args.store.parent} does not exist")


def cmd_run(args: argparse.Namespace) -> int:
    _refuse_existing(args)
    folder = _checkpoint_folder(args)
    history = HistoryRecorder(args)
    with _session(args, config_from_args(args)) as session:
        session.build()
        if args.store is not None or folder is not None:
            session.check_storable()  # a refusal now, not after the whole run
        checkpoints = _checkpointer(args, session, folder, "run 1")
        result = _run_with_progress(session, "run 1", args.json, checkpoints)
        run_id = history.record(result)
        stored, failed = _store(session, args.store, args.overwrite, args.json)
        history.stored(run_id, args.store if stored else None)
    history.close()
    extra = {"checkpoints": checkpoints.summary()} if checkpoints is not None else {}
    return report_run(args, result, stored, failed, **extra)


def cmd_restore(args: argparse.Namespace) -> int:
    from ..snapshot import open_snapshot

    _refuse_existing(args)
    changes = parse_changes(args.at)  # its syntax before the file is read
    folder = _checkpoint_folder(args)
    _require_file(args.path)
    snap = open_snapshot(args.path)
    _check_model(args, snap.model)
    history = HistoryRecorder(args)
    # the session's own configuration names no model of the file's: restore runs no model code
    own = NetworkConfig(t_sim_ms=snap.t_sim_ms).replace(t_sim_ms=args.t_ms, store_workers=args.store_workers)
    with _session(args, own) as session:
        session.restore(snap, seed=args.seed, threads=args.threads, changes=changes)
        if args.store is not None or folder is not None:
            session.check_storable()
        checkpoints = _checkpointer(args, session, folder, "restored")
        result = _run_with_progress(session, "restored", args.json, checkpoints)
        run_id = history.record(result, snapshot=args.path)
        stored, failed = _store(session, args.store, args.overwrite, args.json)
        history.stored(run_id, args.store if stored else None)
    history.close()
    extra = {"checkpoints": checkpoints.summary()} if checkpoints is not None else {}
    return report_run(args, result, stored, failed, snapshot=str(args.path), **extra)


def cmd_resume(args: argparse.Namespace) -> int:
    """From the newest whole checkpoint to the run's planned end, on the stored clock, with the
    protocol's changes still to come (stored in the checkpoint), the stored seed and threads,
    checkpointing on into the same folder; then like ``run`` at its end (``--store``)."""
    from ..checkpoints import Checkpointer, plan_of, resume_point
    from ..history import file_sha256
    from ..session import Session

    _refuse_existing(args)
    folder, plan = plan_of(args.path)
    point = None if plan.finished else resume_point(args.path, warn=_log)
    if point is None or point.remaining_ms == 0:  # exit 0: a job script that resumes until done stops here
        doc = {"resumed": False, "checkpoint_dir": str(folder), "t_stop_ms": plan.t_stop_ms}
        emit(args, doc, lambda: print(f"nothing to resume: the run in {visible(folder)} reached its planned end ({plan.t_stop_ms:g} ms)"))
        return EXIT_OK
    history = HistoryRecorder(args)
    # hashed now: the checkpoint resumed from is the oldest, the first the rotation removes
    sha = file_sha256(point.path) if history.wanted else ""
    own = NetworkConfig(t_sim_ms=point.snapshot.t_sim_ms).replace(store_workers=args.store_workers)
    session = Session(own)
    session.restore(point.snapshot)
    if args.store is not None:
        session.check_storable()
    checkpoints = Checkpointer(session, point.folder, point.plan, log=_log)
    label = f"{point.plan.label} (resumed)"
    result = _run_with_progress(session, label, args.json, checkpoints, t_ms=point.remaining_ms)
    run_id = history.record(result, snapshot=point.path, sha256=sha)
    stored, failed = _store(session, args.store, args.overwrite, args.json)
    history.stored(run_id, args.store if stored else None)
    history.close()
    return report_run(args, result, stored, failed, resumed=True, snapshot=str(point.path), checkpoints=checkpoints.summary())


def _require_file(path: Path) -> None:
    """A missing file is an error (1); anything but a regular file is refused as a snapshot (3)
    before it is opened: a FIFO would block the open, a device could stream forever."""
    from ..snapshot import SnapshotError

    if not path.exists() and not path.is_symlink():
        raise FileNotFoundError(f"{path}: no such file")
    if not path.is_file():
        raise SnapshotError(f"{path} is not a regular file")


def _check_model(args: argparse.Namespace, stored: str) -> None:
    if getattr(args, "model", None):
        from ..models import ModelRef

        if str(ModelRef.parse(args.model)) != stored:
            raise UsageError(f"the snapshot was stored from model {stored}, not {args.model}")


def cmd_inspect(args: argparse.Namespace) -> int:
    from ..snapshot import inspect_snapshot

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

    emit(args, doc, human)
    if not info.valid:
        print(f"einet: invalid snapshot: {visible(info.problem)}", file=sys.stderr)
        return EXIT_SNAPSHOT
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from ..analysis import identical_to
    from ..demo import run_demo

    _refuse_existing(args)
    with contextlib.ExitStack() as stack:
        session = stack.enter_context(_session(args, config_from_args(args)))
        path = args.store or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="einet-demo-"))) / "demo.h5"
        with progress(not args.json, "demo") as update:
            done = [0]

            def on_caption(step: Any) -> None:
                update(done[0] / 6)
                done[0] += 1

            results = run_demo(session, path, t_ms=args.t_ms, on_caption=on_caption, step_ms=100.0, overwrite=args.overwrite or args.store is None)
        history = HistoryRecorder(args)  # while the snapshot (a temporary file without --store) is there to hash
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
            print(demo_plots(results))

    emit(args, doc, human)
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    from ..history import History

    if args.limit < 1:
        raise UsageError(f"--limit must be 1 or more, not {args.limit}")
    path = history_file(args)
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
        sets = any(r.trial_set for r in runs)  # the column only where trials were run
        for col in ("id", "when", "label", *(("set",) if sets else ()), "origin", "seed", "threads", "t [ms]", "spikes", "rate [Hz]", "digest", "same as"):
            table.add_column(shown(col), justify="right" if col in ("id", "seed", "spikes", "rate [Hz]", "same as") else "left", no_wrap=col in ("when", "t [ms]", "digest", "set"))  # "[ms]" is markup
        for r, s in zip(runs, same):
            origin = f"restored {Path(r.snapshot).name}" if r.origin == "restored" and r.snapshot else r.origin
            if r.cancelled:
                origin += " (cancelled)"
            layout = f"{r.ranks}×{r.threads}" if r.ranks > 1 else str(r.threads)
            rate = "" if r.rate_hz is None else f"{r.rate_hz:.2f}"
            table.add_row(
                str(r.id),
                shown(local_time(r.recorded_at)),
                shown(r.label),
                *((shown(r.trial_set),) if sets else ()),
                shown(origin),
                str(r.seed),
                layout,
                f"{r.t_start_ms:g}-{r.t_stop_ms:g}",
                str(r.spikes),
                rate,
                shown(r.digest[:8]),
                "" if s is None else str(s.id),
            )
        console = Console(width=None if sys.stdout.isatty() else 120)
        console.print(table)

    emit(args, doc, human)
    return EXIT_OK


def cmd_tui(args: argparse.Namespace) -> int:
    from ..checkpoints import check_interval

    check_interval(args.checkpoint_every, args.keep)
    if args.checkpoint_every is None and (args.keep is not None or args.checkpoint_dir is not None):
        raise UsageError("--keep and --checkpoint-dir go with --checkpoint-every MS")
    from einet.tui.app import run_app  # the one import of the UI from einet/: the `tui` command

    return run_app(config_from_args(args), args, launch_from_args(args))


# -- trials -----------------------------------------------------------------------------------
EXIT_INTERRUPTED = 130


def _check_trials_args(args: argparse.Namespace) -> None:
    if args.threads < 1:
        raise UsageError(f"--threads must be 1 or more, not {args.threads}")
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be 1 or more, not {args.workers}")
    if args.workers is not None and args.dask not in (None, "local"):
        raise UsageError("--workers goes with local workers or --dask local; a cluster at an address has its own")
    if getattr(args, "ship", False) and args.dask is None:
        raise UsageError("--ship goes with --dask: local workers read the snapshot from its path")
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
    from ..trials.plan import new_set_id
    from ..trials.pool import DaskPool, LocalPool, Pool, PoolError, TrialRunner, default_workers, missing_software, outcome_of
    from ..trials.run import check_changes, for_history, run_trial, trial_specs

    _check_trials_args(args)
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
    set_id = new_set_id()
    names = [c.name for c in plan.conditions]
    quiet = args.json

    pool: Pool
    if args.dask is not None:
        pool = DaskPool(args.dask, args.workers or min(default_workers(args.threads), len(plan.trials)), args.path, ship=getattr(args, "ship", False))
    else:
        pool = LocalPool(args.workers or min(default_workers(args.threads), len(plan.trials)), (str(args.path.resolve()), sha))
    rows: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    interrupted = False
    writer: RowWriter | None = None
    history = HistoryRecorder(args)
    runner: TrialRunner | None = None
    started = time.monotonic()
    t_ms = args.t_ms
    try:
        checking = pool.submit(check_changes, str(args.path.resolve()), sha, tuple(tuple(ch.to_dict() for ch in c.changes) for c in plan.conditions))
        # what the end needs, loaded while a worker checks: a Ctrl-C then ends within 2 s
        import rich.table  # noqa: F401
        import scipy.stats  # noqa: F401

        try:
            checked = checking.result()
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
        specs = trial_specs(plan, set_id, args.path, sha, threads=args.threads, t_ms=t_ms, dask=isinstance(pool, DaskPool))
        n_workers = pool.workers
        runner = TrialRunner(pool, specs, run_trial, restart=(lambda: LocalPool(n_workers, (str(args.path.resolve()), sha))) if isinstance(pool, LocalPool) else None)
        with trials_progress(not quiet, len(specs)) as progress:
            for spec, future in runner:
                outcome = outcome_of(future, spec)
                row = {**outcome.row, "worker": outcome.worker}
                if outcome.result is not None:
                    history.record(for_history(outcome.result, spec, args.path), sha256=sha, trial_set=set_id)
                    if args.spikes is not None:
                        outcome.result.spikes_frame().to_parquet(args.spikes / _spike_file(spec.index))
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


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_run,
    "restore": cmd_restore,
    "resume": cmd_resume,
    "inspect": cmd_inspect,
    "demo": cmd_demo,
    "history": cmd_history,
    "trials": cmd_trials,
    "tui": cmd_tui,
}

"""Where trials run: local worker processes or a Dask cluster, behind one interface.

Both are a :class:`concurrent.futures.Executor` (a :class:`~concurrent.futures.ProcessPoolExecutor`,
or the one a Dask ``Client`` offers), so one loop submits trials and collects them as they
finish. A worker process keeps its NEST kernel (and the parsed snapshot) between trials.

- Local: ``workers`` processes started fresh (``spawn``: NEST's threads rule out forking a
  process that has it), which ignore Ctrl-C and die with this process; :meth:`Pool.stop` kills them.
- Dask: an existing cluster (``--dask ADDRESS``) or a ``LocalCluster`` of process workers with
  one thread each (``--dask local``). Each worker is asked first whether it reads the same file
  at the snapshot's path (its SHA-256, computed there): if every one does (a shared file
  system, or one machine), trials read it by path; else, or with ``ship=True``, it is shipped
  once to every worker (``scatter``) and checked by its SHA-256 on arrival.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from ..text import one_line
from .run import TrialOutcome, TrialSpec, failed_outcome

_DASK_HINT = "install einet and NEST where the Dask workers run (pip install 'einet[dask]' in their environment)"


QUIET_LOCAL_CLUSTER = {
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.worker.profile.enabled": False,
    # Dask's defaults but for MALLOC_TRIM_THRESHOLD_ (64 kB): each trial frees one network and
    # builds the next, and a heap trimmed in between is paged in again by the next restore
    "distributed.nanny.pre-spawn-environ": {"OMP_NUM_THREADS": 1, "MKL_NUM_THREADS": 1, "OPENBLAS_NUM_THREADS": 1},
    # a worker holds only the trial it runs; the rest wait at the scheduler for whichever
    # worker is free first, as in a local pool (at 1.1 each held a second one, and a worker
    # that finished early waited for work stealing to hand it over)
    "distributed.scheduler.worker-saturation": 1.0,
}
"""Dask settings for ``--dask local``: its scheduler and nannies live in this process and
share the cores with trials that use every one of them; at Dask's defaults (a tick every
20 ms, monitors every 100-500 ms, each worker sampling its own stacks every 10 ms for its
profiler) they took what the trials lost. Made for dashboards and long-lived clusters, they
tell a trial set nothing it needs."""


def local_cluster_config() -> dict[str, Any]:
    """:data:`QUIET_LOCAL_CLUSTER`, and workers forked from this process when it has not
    imported NEST: a worker then starts with Dask and einet already imported and is closed at
    once, instead of importing them anew (spawn) and ending in turn; forking a process that
    has NEST's threads would hang the worker."""
    forkable = "nest" not in sys.modules and "fork" in multiprocessing.get_all_start_methods()
    return QUIET_LOCAL_CLUSTER | ({"distributed.worker.multiprocessing-method": "fork"} if forkable else {})


class PoolError(RuntimeError):
    """Trials cannot be run there (no Dask, no cluster at the address, a worker without einet)."""


def usable_cores() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def default_workers(threads: int) -> int:
    """Usable cores ÷ NEST threads per trial, at least one."""
    return max(1, usable_cores() // max(1, threads))


def _worker_start(path: str = "", sha256: str = "", log: str | None = None) -> None:
    """A local worker: Ctrl-C is the parent's (it stops the set and kills the workers at once,
    which a KeyboardInterrupt raised inside NEST could not), and it dies with the parent. It
    then imports NEST and parses the snapshot (:func:`~einet.trials.run.warm_up`); whatever
    fails there, its first trial says. einet's log warnings (a restore's note that the hidden
    state was not restored, at every trial with other threads than stored) stay out of the
    parent's terminal: with no handler, Python would print each on stderr. With ``log``,
    everything it writes to its descriptors 1 and 2 goes there (under the dashboard, whose
    terminal a worker's warning or traceback would scribble over)."""
    from ..children import die_with_parent
    from .run import warm_up

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent()
    if log is not None:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    logging.getLogger("einet").addHandler(logging.NullHandler())
    with contextlib.suppress(Exception):
        warm_up(path, sha256)


class Pool:
    """Runs functions of :mod:`einet.trials.run` on workers. ``payload`` is passed to each
    (None: the snapshot is read by path)."""

    kind = "local"

    def __init__(self, executor: cf.Executor, workers: int, payload: Any = None) -> None:
        self.executor = executor
        self.workers = workers
        self.payload = payload

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future[Any]:
        return self.executor.submit(fn, *args, self.payload)

    def describe(self) -> str:
        return f"{self.workers} local worker process{'es' if self.workers != 1 else ''}"

    def stop(self) -> None:
        """End every worker now (Ctrl-C): running trials are lost, finished ones are kept."""
        self.executor.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalPool(Pool):
    """``workers`` local processes, all started at once, each importing NEST and parsing the
    snapshot (``snapshot``: its path and SHA-256) as it starts: an executor would start them
    one by one as trials arrive, each then spending its first trial's first seconds on that.
    With ``log``, their output goes to that file. They die with the thread that started them
    (``die_with_parent``): start and use a pool on one thread."""

    def __init__(self, workers: int, snapshot: tuple[str, str] = ("", ""), log: Path | None = None) -> None:
        executor = cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_start, initargs=(*snapshot, None if log is None else str(log)))
        super().__init__(executor, workers)
        self.log = log
        for _ in range(workers):  # a process per task submitted while none is idle
            executor.submit(int)

    def stop(self) -> None:
        # ProcessPoolExecutor has no public way to kill its workers before Python 3.14
        # (kill_workers()); shutdown alone would wait for the trials running to end
        processes = list(getattr(self.executor, "_processes", {}).values())
        super().stop()
        for p in processes:
            with contextlib.suppress(Exception):
                p.kill()
        for p in processes:
            with contextlib.suppress(Exception):
                p.join(1.0)


class DaskPool(Pool):
    """A Dask cluster: ``address`` (``tcp://host:8786``, a scheduler file's address) or
    ``"local"`` for a ``LocalCluster`` of ``workers`` processes with one thread each."""

    kind = "dask"

    def __init__(self, address: str, workers: int, snapshot: Path, *, ship: bool = False) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise PoolError("--dask needs dask.distributed: pip install 'einet[dask]'") from None
        self.cluster: Any = None
        self._pids: list[int] = []
        try:
            if address == "local":
                import dask

                with dask.config.set(local_cluster_config()):
                    self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None, scheduler_kwargs={"dashboard": False}, silence_logs=logging.ERROR)
                client = Client(self.cluster)
            else:
                client = Client(address, timeout=10)
        except (OSError, TimeoutError, ValueError) as exc:
            if self.cluster is not None:
                self.cluster.close()
            raise PoolError(f"cannot reach the Dask cluster at {address}: {one_line(exc)}") from None
        self.client = client
        info = client.scheduler_info()
        n = len(info.get("workers", {}))
        if n == 0:
            self._close()
            raise PoolError(f"the Dask cluster at {address} has no workers")
        lacking = _lacking(client)
        if lacking:
            self._close()
            where, names = lacking
            raise PoolError(f"a Dask worker cannot import {' or '.join(names)} ({where}): {_DASK_HINT}")
        if self.cluster is not None:  # ours: killed at once on Ctrl-C
            self._pids = [int(p) for p in client.run(os.getpid).values()]
        holds = self._warm_up(client, snapshot, ask=not ship)
        self.ships = ship or not holds
        payload = None
        if self.ships:  # once to every worker: trials then need no shared file system
            payload = client.scatter(snapshot.read_bytes(), broadcast=True)
        super().__init__(client.get_executor(pure=False), n, payload)
        self.address = address

    @staticmethod
    def _warm_up(client: Any, snapshot: Path, ask: bool) -> bool:
        """Every worker imports NEST now, all at once (:func:`~einet.trials.run.warm_up`, a task
        on each); with ``ask``, it also says whether it reads the very file at the snapshot's
        path, by its SHA-256 computed there. True when every one does. A worker that cannot
        answer (no einet or NEST there, gone) counts as no: the snapshot is then shipped, and
        the check before the first trial says what is missing."""
        from distributed import wait

        from ..history import file_sha256
        from .run import warm_up

        args = (str(snapshot.resolve()), file_sha256(snapshot)) if ask else ()
        try:
            names = list(client.ncores())
            asked = [client.submit(warm_up, *args, workers=[w], allow_other_workers=False, pure=False) for w in names]
            _, late = wait(asked, timeout=WARM_UP_S)
            if late:  # a worker gone meanwhile: its task would wait for it for ever
                client.cancel(list(late))
                return False
            return bool(names) and all(f.result() for f in asked)
        except Exception:  # noqa: BLE001 - any doubt: ship it
            return False

    def describe(self) -> str:
        where = "a local Dask cluster" if self.cluster is not None else f"the Dask cluster at {self.address}"
        how = "the snapshot shipped to each" if self.ships else "the snapshot read from its path"
        return f"{self.workers} Dask worker{'s' if self.workers != 1 else ''} ({where}; {how})"

    def stop(self) -> None:
        for pid in self._pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            # cancels every task: a running trial sees it and ends at its next step
            self.executor.shutdown(wait=False)
        self._close(timeout=1)

    def close(self) -> None:
        self._close()

    def _close(self, timeout: float = 10) -> None:
        with contextlib.suppress(Exception):
            self.client.close(timeout=timeout)
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                self.cluster.close(timeout=timeout)


def _lacking(client: Any) -> tuple[str, list[str]] | None:
    """The first worker of ``client``'s cluster that cannot import einet or NEST, and what it
    lacks (None: every worker has both). The question is sent by value (:mod:`.probe`), so a
    worker without einet can answer it."""
    import cloudpickle

    from . import probe

    cloudpickle.register_pickle_by_value(probe)
    try:
        answers = client.run(probe.missing_modules)
    finally:
        cloudpickle.unregister_pickle_by_value(probe)
    for worker, missing in sorted(answers.items()):
        if missing:
            return str(worker), list(missing)
    return None


WARM_UP_S = 300.0
"""How long Dask workers may take to import NEST and hash the snapshot before the set."""


def missing_software(exc: BaseException) -> str | None:
    """For an error raised by a Dask worker: the one line saying it lacks einet or NEST (None
    for any other error)."""
    if isinstance(exc, ImportError):
        name = getattr(exc, "name", "") or ""
        top = name.split(".")[0]
        if top in ("einet", "nest", "pynestkernel") or "einet" in str(exc) or "nest" in str(exc):
            return f"a Dask worker cannot import {name or 'einet'} ({one_line(exc)}): {_DASK_HINT}"
    return None


MAX_BREAKS = 2
"""A trial running each time its worker process died this often fails (its own fault, likely:
NEST aborting); the others run again in fresh workers."""


class TrialRunner:
    """Submits ``fn(spec)`` for every spec and yields each ``(spec, future)`` as it finishes.

    Waits in short slices, so that Ctrl-C reaches this (main) thread at once however long a
    trial runs. When a local worker process dies (NEST aborting, the OOM killer, a kill), the
    pool is broken for every trial in it: the pool is replaced (``restart``) and the unfinished
    trials run again, except one that has been in :data:`MAX_BREAKS` broken pools, which is
    yielded with its broken future. ``pool`` is the pool in use (to stop on Ctrl-C).

    ``cancel`` (set from another thread: the dashboard's stop key) ends the iteration within a
    slice, the trials not yet yielded left to the caller to stop (:meth:`Pool.stop`)."""

    def __init__(self, pool: Pool, specs: list[Any], fn: Callable[..., Any], restart: Callable[[], Pool] | None = None, poll_s: float = 0.2, cancel: threading.Event | None = None) -> None:
        self.pool = pool
        self._specs, self._fn, self._restart, self._poll_s = specs, fn, restart, poll_s
        self._cancel = cancel
        self.restarts = 0

    def __iter__(self) -> Iterator[tuple[Any, cf.Future[Any]]]:
        pending = self._submit(self._specs)
        breaks: dict[int, int] = {}
        while pending:
            if self._cancel is not None and self._cancel.is_set():
                return
            done, _ = cf.wait(pending, timeout=self._poll_s, return_when=cf.FIRST_COMPLETED)
            if self._restart is None or not any(_broken(f) for f in done):
                for f in done:
                    yield pending.pop(f), f
                continue
            # every trial still in the dead pool (the broken and those running beside them)
            finished = {f: pending.pop(f) for f in done if not _broken(f)}
            again = []
            for spec in pending.values():
                n = breaks[id(spec)] = breaks.get(id(spec), 0) + 1
                if n < MAX_BREAKS:
                    again.append(spec)
                else:
                    failed: cf.Future[Any] = cf.Future()
                    failed.set_exception(BrokenProcessPool(f"its worker process died {n} times while it ran"))
                    finished[failed] = spec
            self._replace_pool()
            pending = self._submit(again)
            yield from ((spec, f) for f, spec in finished.items())

    def _submit(self, specs: list[Any]) -> dict[cf.Future[Any], Any]:
        """Each spec submitted; a pool found broken meanwhile is replaced and all of them
        submitted again."""
        for attempt in range(MAX_BREAKS + 1):
            try:
                return {self.pool.submit(self._fn, spec): spec for spec in specs}
            except BrokenProcessPool:
                if self._restart is None or attempt == MAX_BREAKS:
                    raise
                self._replace_pool()
        raise AssertionError("unreachable")  # pragma: no cover

    def _replace_pool(self) -> None:
        assert self._restart is not None
        self.pool.stop()
        self.pool = self._restart()
        self.restarts += 1


def outcome_of(future: cf.Future[Any], spec: TrialSpec) -> TrialOutcome:
    """A finished trial's outcome. A worker that died, or failed outside the trial, fails this
    trial (one line); one that cannot import einet or NEST fails the set: raises
    :class:`PoolError` with its one line."""
    try:
        outcome: TrialOutcome = future.result()
        return outcome
    except ImportError as exc:
        line = missing_software(exc)
        if line is not None:
            raise PoolError(line) from None
        error = f"{type(exc).__name__}: {one_line(exc)}"
    except Exception as exc:  # noqa: BLE001 - a worker that died: this trial fails, the set goes on
        error = f"its worker failed: {type(exc).__name__}: {one_line(exc)[:300]}"
    return failed_outcome(spec, error)


def _broken(future: cf.Future[Any]) -> bool:
    return future.done() and not future.cancelled() and isinstance(future.exception(), BrokenProcessPool)

"""The MPI ranks a NEST kernel spans, as one small interface for the rest of einet.

Under ``mpirun`` every rank runs the same einet code on its share of the network (NEST keeps
each neuron, and the connections onto it, on one rank). What must agree goes through
:class:`Ranks`: rank 0 decides (``share``), data comes to rank 0 (``gather``), and a failure on
any rank fails the step everywhere (``together``) so that no rank waits forever in a collective
the others skipped. In a single process every method is the identity and costs nothing.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from .text import one_line

_POLL_S = 0.0005
_POLL_MAX_S = 0.02
_BLOCK_ITEMS = 1 << 24
"""Items per message of a gathered array (MPI counts are C ints; 128 MB of float64)."""


class RankError(RuntimeError):
    """A step failed on another MPI rank (the message names the rank)."""


class Ranks:
    """One process: rank 0 of 1."""

    rank = 0
    size = 1

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def share(self, value: Any = None) -> Any:
        """Rank 0's ``value`` on every rank (the others pass anything)."""
        return value

    def gather(self, value: Any) -> list[Any] | None:
        """Every rank's ``value`` on rank 0, in rank order; None elsewhere."""
        return [value]

    def allgather(self, value: Any) -> list[Any]:
        """Every rank's ``value`` on every rank, in rank order."""
        return [value]

    def gather_arrays(self, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
        """Each (one-dimensional) array concatenated over the ranks (rank order) on rank 0;
        empty elsewhere."""
        return arrays

    def abort(self) -> None:
        """End every rank now (a rank that lost its partner cannot leave the others waiting)."""

    @contextlib.contextmanager
    def or_abort(self) -> Iterator[None]:
        """Run a block of collectives (and the work between them): a rank that fails in the
        middle of one (out of memory gathering, a message too large) cannot tell the others,
        which wait in the next; it ends the job instead."""
        yield

    @contextlib.contextmanager
    def together(self) -> Iterator[None]:
        """Run a block on every rank; if it fails on any rank it fails on all of them (with
        the first failing rank's message), so every rank leaves in the same state."""
        yield


SOLO = Ranks()


class MpiRanks(Ranks):
    """The ranks of ``MPI.COMM_WORLD``, on a duplicate communicator of their own (einet's
    messages never mix with NEST's)."""

    def __init__(self) -> None:
        from mpi4py import MPI

        self._comm = MPI.COMM_WORLD.Dup()
        self.rank = self._comm.Get_rank()
        self.size = self._comm.Get_size()

    def share(self, value: Any = None) -> Any:
        # Rank 0 may wait long for the user (an idle dashboard): the others poll with a sleep
        # instead of a blocking broadcast, which spins a core in Open MPI.
        with self.or_abort():
            if self.rank == 0:
                for other in range(1, self.size):
                    self._comm.send(value, dest=other, tag=7)
                return value
            pause = _POLL_S
            while not self._comm.Iprobe(source=0, tag=7):
                time.sleep(pause)
                pause = min(pause * 1.5, _POLL_MAX_S)
            return self._comm.recv(source=0, tag=7)

    def gather(self, value: Any) -> list[Any] | None:
        with self.or_abort():
            return self._comm.gather(value, root=0)

    def allgather(self, value: Any) -> list[Any]:
        with self.or_abort():
            return self._comm.allgather(value)

    def gather_arrays(self, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
        # Received in place, block by block, one array at a time: a pickled gather held every
        # rank's part twice on rank 0 (bytes and arrays) beside their concatenation, which made
        # rank 0's store of a large network peak far above the other ranks'.
        with self.or_abort():
            shapes = self._comm.allgather([(len(a), a.dtype.str) for a in arrays])
            whole = []
            for k, array in enumerate(arrays):
                sizes = [int(s[k][0]) for s in shapes]
                # an empty part may come with another dtype (NEST's empty events): the parts' own
                dtype = np.result_type(*[np.dtype(s[k][1]) for s in shapes if s[k][0]]) if any(sizes) else array.dtype
                local = np.ascontiguousarray(array, dtype=dtype).reshape(-1)
                if self.rank != 0:
                    for lo in range(0, len(local), _BLOCK_ITEMS):
                        self._comm.Send(local[lo : lo + _BLOCK_ITEMS], dest=0, tag=11)
                    whole.append(array[:0])
                    continue
                out = np.empty(sum(sizes), dtype=dtype)
                start = 0
                for rank, size in enumerate(sizes):
                    part = out[start : start + size]
                    start += size
                    if rank == 0:
                        part[...] = local
                        continue
                    for lo in range(0, size, _BLOCK_ITEMS):
                        self._comm.Recv(part[lo : lo + _BLOCK_ITEMS], source=rank, tag=11)
                whole.append(out)
            return tuple(whole)

    @contextlib.contextmanager
    def or_abort(self) -> Iterator[None]:
        try:
            yield
        except Exception:
            import traceback

            traceback.print_exc()
            self.abort()
            raise

    def abort(self) -> None:
        from mpi4py import MPI

        MPI.COMM_WORLD.Abort(1)

    @contextlib.contextmanager
    def together(self) -> Iterator[None]:
        # A failure the ranks already agreed on (in an inner block) leaves every enclosing
        # block without another exchange: each rank raises it at the same point.
        try:
            yield
        except Exception as exc:
            if not getattr(exc, "einet_agreed", False):
                self.allgather(one_line(exc))
                exc.einet_agreed = True  # type: ignore[attr-defined]
            raise
        failed = [(rank, msg) for rank, msg in enumerate(self.allgather(None)) if msg is not None]
        if failed:
            rank, msg = failed[0]
            error = RankError(f"on MPI rank {rank}: {msg}")
            error.einet_agreed = True  # type: ignore[attr-defined]
            raise error


_current: Ranks | None = None


def ranks() -> Ranks:
    """The ranks of this process's NEST kernel (imports NEST; mpi4py only under MPI)."""
    global _current
    if _current is None:
        from .kernel import nest

        _current = MpiRanks() if int(nest().NumProcesses()) > 1 else SOLO
    return _current


def local_ids(ids: np.ndarray) -> np.ndarray:
    """The node ids of ``ids`` that live on this rank (all of them in one process)."""
    r = ranks()
    if r.size == 1 or len(ids) == 0:
        return ids
    from .kernel import nest

    unique = np.unique(ids)
    with _quiet():
        # NEST's own flag per node (GetLocalNodeCollection misreads the one of a single node)
        flags = np.atleast_1d(np.asarray(nest().NodeCollection(unique.tolist()).local, dtype=bool))
    return ids[np.isin(ids, unique[flags])]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GetLocalNodeCollection warns on every call
        yield

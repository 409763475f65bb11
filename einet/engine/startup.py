"""The engine process's start: ``python -m einet.engine.startup --fd N --log F`` (started by
:class:`einet.engine.client.Engine`), or under MPI on every rank with ``--connect SOCKET``
(ranks inherit no descriptors, so rank 0 connects back to the parent's Unix socket). File
descriptors 1 and 2 point at the log file (``F.rankK`` on rank K > 0) for the whole life of
the process, so nothing NEST prints can reach the terminal of the parent. Serving is
:mod:`.child`'s.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import traceback

from .child import EngineServer, Lifeline, SilentChannel
from .protocol import Channel, ProtocolError


def _log_to(path: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 - the process's own streams, open for its life
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115 - the process's own streams, open for its life


def _launcher_rank() -> int:
    """This process's rank as the launcher tells it (Open MPI, MPICH/PMI, PMIx, Slurm), so the
    log is chosen before NEST (and MPI) start; 0 when none says."""
    for key in ("OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"):
        if os.environ.get(key, "").isdigit():
            return int(os.environ[key])
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="einet-engine")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--fd", type=int, help="a connected socket inherited from the parent")
    where.add_argument("--connect", metavar="PATH", help="the parent's Unix socket (under MPI)")
    p.add_argument("--log", required=True)
    args = p.parse_args(argv)
    if args.fd is not None:
        _log_to(args.log)
        return _serve(Channel(socket.socket(fileno=args.fd)), args.log)
    from ..kernel import nest, set_log_path

    rank = _launcher_rank()
    log = args.log if rank == 0 else f"{args.log}.rank{rank}"
    _log_to(log)
    set_log_path(log)
    if int(nest().Rank()) != rank:  # MPI starts with NEST: its rank is the one that counts
        print(f"einet: the launcher said rank {rank}, NEST says {nest().Rank()}", file=sys.stderr)
        rank = int(nest().Rank())
    from ..ranks import ranks

    if rank != 0:
        return _serve(SilentChannel(), log)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(args.connect)
    except OSError as exc:
        print(f"einet: rank 0 cannot reach the parent at {args.connect}: {exc}", file=sys.stderr)
        ranks().abort()
        return 1
    return _serve(Lifeline(sock, ranks()), log)


def _serve(chan: Channel | SilentChannel, log: str) -> int:
    server = EngineServer(chan, log)
    try:
        server.serve()
    except (ProtocolError, OSError):
        server.ranks.abort()  # the parent is gone: under MPI the other ranks must not wait on
        return 0
    except BaseException:
        if server.ranks.size > 1:
            traceback.print_exc()
            server.ranks.abort()  # a rank that cannot go on must not leave the others waiting
        raise
    finally:
        if isinstance(chan, Channel):
            chan.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

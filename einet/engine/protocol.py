"""The engine's wire protocol: typed messages with numpy arrays over a stream socket.

Each message is framed by :mod:`einet.wire`: a JSON header plus raw little-endian numpy
buffers, never a pickle.

Commands (parent → engine), kind ``"command"``, fields ``id``, ``op``, ``args``:
``build`` (config), ``run`` (t_ms, label), ``continue`` (t_ms, label: a run that must follow
an earlier one), ``pause``, ``resume``, ``cancel``, ``store``
(path, overwrite), ``reset``, ``restore`` (path, seed, threads), ``ping``, ``shutdown``.

Events (engine → parent), by kind:
``ready`` (pid, nest_version, log), ``ack`` (id, op, result…; a run's ack carries the whole
run), ``error`` (id, op, message: one line), ``state`` (state, t_ms, seed, threads, config,
snapshot, snapshot_t_ms, bit_comparable), ``frame`` (t_ms, t_start_ms, t_stop_ms, progress,
n_spikes_total, rate_hz, label; arrays senders, times, and now and then weights),
``progress`` (op, fraction), ``log`` (lines), ``heartbeat`` (t).
"""

from __future__ import annotations

import socket
import threading
from typing import Any

from ..runs import Origin, RunResult
from ..wire import Message, WireError, decode, encode, exact_reader

ProtocolError = WireError
__all__ = ["Channel", "Message", "ProtocolError", "result_from_message", "result_message"]


class Channel:
    """One end of the engine's socket: whole messages in, whole messages out (send is thread-safe)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._send_lock = threading.Lock()
        self._read_exact = exact_reader(sock.recv_into)

    def send(self, msg: Message) -> None:
        data = encode(msg)
        with self._send_lock:
            self.sock.sendall(data)

    def recv(self) -> Message:
        return decode(self._read_exact)

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


# -- run results across the wire -------------------------------------------------------------
_RESULT_ARRAYS = ("senders", "times", "psth_t_ms", "psth_hz", "weights")


def result_message(kind: str, fields: dict[str, Any], result: RunResult) -> Message:
    """Pack a RunResult into a message (arrays travel raw)."""
    meta = {
        "label": result.label,
        "seed": result.seed,
        "threads": result.threads,
        "origin": {"kind": result.origin.kind, "snapshot": result.origin.snapshot, "snapshot_t_ms": result.origin.snapshot_t_ms},
        "t_start_ms": result.t_start_ms,
        "t_stop_ms": result.t_stop_ms,
        "n_recorded": result.n_recorded,
        "rate_hz": result.rate_hz,
        "digest": result.digest,
        "cancelled": result.cancelled,
        "bit_comparable": result.bit_comparable,
        "wall_s": result.wall_s,
    }
    return Message(kind, {**fields, "run": meta}, {k: getattr(result, k) for k in _RESULT_ARRAYS})


def result_from_message(msg: Message) -> RunResult:
    meta = dict(msg["run"])
    origin = Origin(**meta.pop("origin"))
    return RunResult(origin=origin, **meta, **{k: msg.arrays[k] for k in _RESULT_ARRAYS})

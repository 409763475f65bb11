"""The engine's wire protocol: typed messages with numpy arrays over a stream socket.

A message on the wire is ``[u32 header length][JSON header][raw array bytes]``. The header is
``{"kind": str, "fields": {...}, "arrays": [[name, dtype, shape], ...]}``; array bytes follow
in that order. JSON plus raw little-endian buffers: nothing is pickled, so a message can carry
no code, and numpy arrays cross without per-element cost.

Commands (parent → engine), kind ``"command"``, fields ``id``, ``op``, ``args``:
``build`` (config), ``run`` (t_ms, label), ``pause``, ``resume``, ``cancel``, ``store``
(path, overwrite), ``reset``, ``restore`` (path, seed, threads), ``ping``, ``shutdown``.

Events (engine → parent), by kind:
``ready`` (pid, nest_version, log), ``ack`` (id, op, result…; a run's ack carries the whole
run), ``error`` (id, op, message: one line), ``state`` (state, t_ms, seed, threads, config,
snapshot, snapshot_t_ms, bit_comparable), ``frame`` (t_ms, t_start_ms, t_stop_ms, progress,
n_spikes_total, rate_hz, label; arrays senders, times, and now and then weights),
``progress`` (op, fraction), ``log`` (lines), ``heartbeat`` (t).
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..runs import Origin, RunResult

_LEN = struct.Struct("!I")
MAX_HEADER = 1 << 20


class ProtocolError(ConnectionError):
    """The peer closed the connection or sent something that is not a message."""


@dataclass(frozen=True)
class Message:
    kind: str
    fields: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.fields.get(key, default)


def encode(msg: Message) -> bytes:
    arrays = {k: np.ascontiguousarray(v) for k, v in msg.arrays.items()}
    header = json.dumps(
        {
            "kind": msg.kind,
            "fields": msg.fields,
            "arrays": [[k, v.dtype.newbyteorder("<").str, list(v.shape)] for k, v in arrays.items()],
        }
    ).encode()
    body = b"".join(v.astype(v.dtype.newbyteorder("<"), copy=False).tobytes() for v in arrays.values())
    return _LEN.pack(len(header)) + header + body


class Channel:
    """One end of the engine's socket: whole messages in, whole messages out (send is thread-safe)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._send_lock = threading.Lock()

    def send(self, msg: Message) -> None:
        data = encode(msg)
        with self._send_lock:
            self.sock.sendall(data)

    def _read_exact(self, n: int) -> bytes:
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            k = self.sock.recv_into(view[got:], n - got)
            if k == 0:
                raise ProtocolError("connection closed")
            got += k
        return bytes(buf)

    def recv(self) -> Message:
        (size,) = _LEN.unpack(self._read_exact(_LEN.size))
        if size > MAX_HEADER:
            raise ProtocolError(f"header of {size} bytes is too large")
        try:
            header = json.loads(self._read_exact(size))
            specs = [(str(name), np.dtype(dt), tuple(int(x) for x in shape)) for name, dt, shape in header["arrays"]]
        except (ValueError, TypeError, KeyError) as exc:
            raise ProtocolError(f"malformed header: {exc}") from None
        arrays: dict[str, np.ndarray] = {}
        for name, dtype, shape in specs:
            if dtype.hasobject:
                raise ProtocolError("object arrays are not allowed")
            count = int(np.prod(shape)) if shape else 1
            raw = self._read_exact(count * dtype.itemsize)
            arrays[name] = np.frombuffer(raw, dtype=dtype).reshape(shape)
        return Message(str(header["kind"]), dict(header.get("fields", {})), arrays)

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

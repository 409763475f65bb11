"""Messages with numpy arrays as bytes: ``[u32 header length][JSON header][raw arrays]``.

The header is ``{"kind": str, "fields": {...}, "arrays": [[name, dtype, shape], ...]}``; array
bytes follow in that order, little-endian. JSON plus raw buffers: nothing is pickled, so a
message carries no code, and arrays cross without per-element cost. Used by the engine's
socket protocol (the isolated snapshot reader's answer is laid out for a map of its own:
:mod:`einet.snapshot.reader`).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_LEN = struct.Struct("!I")
MAX_HEADER = 1 << 20


class WireError(ConnectionError):
    """The peer closed the stream or sent something that is not a message."""


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
    arrays = {k: np.ascontiguousarray(v.astype(v.dtype.newbyteorder("<"), copy=False)) for k, v in msg.arrays.items()}
    header = json.dumps(
        {
            "kind": msg.kind,
            "fields": msg.fields,
            "arrays": [[k, v.dtype.str, list(v.shape)] for k, v in arrays.items()],
        }
    ).encode()
    return b"".join([_LEN.pack(len(header)) + header, *(v.data.cast("B") for v in arrays.values() if v.nbytes)])


def decode(read_exact: Callable[[int], Any], max_header: int = MAX_HEADER) -> Message:
    """Read one message through ``read_exact(n)``, which returns exactly n bytes (or a
    bytes-like view of them) or raises."""
    (size,) = _LEN.unpack(read_exact(_LEN.size))
    if size > max_header:
        raise WireError(f"header of {size} bytes is too large")
    try:
        header = json.loads(bytes(read_exact(size)))
        specs = [(str(name), np.dtype(dt), tuple(int(x) for x in shape)) for name, dt, shape in header["arrays"]]
    except (ValueError, TypeError, KeyError) as exc:
        raise WireError(f"malformed header: {exc}") from None
    arrays: dict[str, np.ndarray] = {}
    for name, dtype, shape in specs:
        if dtype.hasobject:
            raise WireError("object arrays are not allowed")
        count = int(np.prod(shape)) if shape else 1
        arrays[name] = np.frombuffer(read_exact(count * dtype.itemsize), dtype=dtype).reshape(shape)
    return Message(str(header["kind"]), dict(header.get("fields", {})), arrays)


def exact_reader(recv_into: Callable[[memoryview], int]) -> Callable[[int], bytes]:
    """Turn a ``recv_into``/``readinto``-style function into ``read_exact``."""

    def read_exact(n: int) -> bytes:
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            k = recv_into(view[got:])
            if not k:
                raise WireError("connection closed")
            got += k
        return bytes(buf)

    return read_exact

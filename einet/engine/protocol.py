"""The engine's wire protocol: typed messages with numpy arrays over a stream socket.

Each message is framed by :mod:`einet.wire`: a JSON header plus raw little-endian numpy
buffers, never a pickle.

Commands (parent → engine), kind ``"command"``, fields ``id``, ``op``, ``args``:
``build`` (config: model, scale, params, threads, seed, t_sim_ms), ``run`` (t_ms, label), ``continue`` (t_ms, label: a run that must follow
an earlier one), ``pause``, ``resume``, ``cancel``, ``store`` (path, overwrite, background:
taken at the next step boundary, also while a run goes on, and written by a forked process),
``check_storable`` (refused with the error a store would give, for what the network is made
of: before simulating), ``reset``, ``restore`` (path, seed, threads, changes: protocol changes
beside the stored ones), ``ping``, ``shutdown`` (abandon_store: drop a background store
instead of waiting for it).

Events (engine → parent), by kind:
``ready`` (pid, nest_version, log, ranks, pids and hosts of every rank), ``ack`` (id, op, result…; a run's ack carries the whole
run), ``error`` (id, op, message: one line), ``state`` (state, t_ms, seed, threads, config,
snapshot, snapshot_t_ms, bit_comparable, n_nodes, protocol: the changes still to come), ``network`` (after a build, restore or reset:
groups [{name, size}], weight_models, not_stored, model; arrays ``raster/K``: the first 100
neuron ids of population K), ``frame`` (t_ms, t_start_ms, t_stop_ms, progress,
n_spikes_total, rate_hz, label, weight_models; arrays senders, times, groups (population index
of each spike), and now and then ``weights/K``),
``progress`` (op, fraction, path), ``stored`` (path, bytes, t_stored_ms, seconds and the phases
pause_s, capture_s, write_s: a background store published its file; background false: under MPI
it was taken in the foreground), ``store_failed`` (path, message), ``log`` (lines),
``heartbeat`` (t).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from enum import Enum
from typing import Any

import numpy as np

from ..runs import Group, Origin, RunResult
from ..wire import Message, WireError, decode, encode, exact_reader

ProtocolError = WireError
__all__ = ["Channel", "EngineState", "Message", "ProtocolError", "groups_fields", "groups_from", "result_from_message", "result_message", "weights_fields", "weights_from"]


class EngineState(str, Enum):  # (enum.StrEnum is Python 3.11+)
    """What the engine is doing: sent in ``state`` events, read by the dashboard and tests
    (a ``str``, so it compares equal to its value and prints as it)."""

    STARTING = "starting"
    EMPTY = "empty"
    BUILDING = "building"
    BUILT = "built"
    RUNNING = "running"
    PAUSED = "paused"
    STORING = "storing"
    RESTORING = "restoring"
    DEAD = "dead"

    def __str__(self) -> str:
        return self.value

    @property
    def idle(self) -> bool:
        """Waiting for a command with no run in progress."""
        return self in (EngineState.EMPTY, EngineState.BUILT)

    @property
    def simulating(self) -> bool:
        return self in (EngineState.RUNNING, EngineState.PAUSED)


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
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


# -- run results across the wire -------------------------------------------------------------
_RESULT_ARRAYS = ("senders", "times", "psth_t_ms", "psth_hz", "spike_group")


def groups_fields(groups: tuple[Group, ...]) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """Populations as JSON fields plus their raster ids as arrays ``raster/K``."""
    return [{"name": g.name, "size": g.size, "sends": g.sends} for g in groups], {f"raster/{k}": g.raster_ids for k, g in enumerate(groups)}


def groups_from(fields: list[dict[str, Any]], arrays: dict[str, np.ndarray]) -> tuple[Group, ...]:
    return tuple(Group(str(g["name"]), int(g["size"]), np.asarray(arrays.get(f"raster/{k}", np.empty(0, np.int32))), str(g.get("sends", "spikes"))) for k, g in enumerate(fields))


def weights_fields(weights: dict[str, np.ndarray]) -> tuple[list[str], dict[str, np.ndarray]]:
    """Weight samples as a list of model names plus arrays ``weights/K``."""
    return list(weights), {f"weights/{k}": w for k, w in enumerate(weights.values())}


def weights_from(models: list[str], arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {str(m): arrays[f"weights/{k}"] for k, m in enumerate(models) if f"weights/{k}" in arrays}


def result_message(kind: str, fields: dict[str, Any], result: RunResult) -> Message:
    """Pack a RunResult into a message (arrays travel raw)."""
    groups, group_arrays = groups_fields(result.groups)
    weight_models, weight_arrays = weights_fields(result.weights)
    meta = {
        "label": result.label,
        "seed": result.seed,
        "threads": result.threads,
        "ranks": result.ranks,
        "origin": {"kind": result.origin.kind, "snapshot": result.origin.snapshot, "snapshot_t_ms": result.origin.snapshot_t_ms},
        "t_start_ms": result.t_start_ms,
        "t_stop_ms": result.t_stop_ms,
        "n_recorded": result.n_recorded,
        "rate_hz": result.rate_hz,
        "digest": result.digest,
        "cancelled": result.cancelled,
        "bit_comparable": result.bit_comparable,
        "exact": result.exact,
        "wall_s": result.wall_s,
        "model": result.model,
        "changes": [dict(c) for c in result.changes],
    }
    arrays = {k: getattr(result, k) for k in _RESULT_ARRAYS if getattr(result, k) is not None}
    return Message(kind, {**fields, "run": meta, "groups": groups, "weight_models": weight_models}, {**arrays, **group_arrays, **weight_arrays})


def result_from_message(msg: Message) -> RunResult:
    meta = dict(msg["run"])
    origin = Origin(**meta.pop("origin"))
    meta["changes"] = tuple(meta.get("changes", ()))
    fields: dict[str, Any] = {**meta, **{k: msg.arrays[k] for k in _RESULT_ARRAYS if k in msg.arrays}}
    return RunResult(
        origin=origin,
        **fields,
        weights=weights_from(msg.get("weight_models", []), msg.arrays),
        groups=groups_from(msg.get("groups", []), msg.arrays),
    )

"""Values no real network needs, which make NEST hang, abort or eat memory: refused with one
line before a restore touches the kernel (a well-formed snapshot can hold them all).

Each range keeps out values that made NEST loop inside one call, abort, fail to allocate or
fail after the kernel was reset (the README's Safety section lists them). Memory that grows with delays and resolution (every
node's input ring buffers) and with the values handed to NEST one by one (``spike_times``,
schedules) is counted with the network's own estimate.
"""

from __future__ import annotations

import math
from typing import Any

from .clock import clock_delays
from .snapshot import Snapshot, SnapshotError

KERNEL_RANGES: dict[str, tuple[float, float]] = {
    "resolution": (1e-3, 100.0),
    "tics_per_ms": (1.0, 1e7),
    "min_delay": (1e-3, 1e4),
    "max_delay": (1e-3, 1e4),
    "spike_buffer_grow_extra": (0.0, 10.0),
    "wfr_comm_interval": (1e-3, 1e4),
    "wfr_max_iterations": (1.0, 1e5),
}
"""(least, most) of kernel settings a restore applies."""

NODE_RANGES: dict[str, tuple[float, float]] = {
    "rate": (-1e9, 1e9),  # Hz of generators; rate neurons' rates are far smaller
    "gamma_shape": (0.0, 1e4),
    "n_proc": (0.0, 1e6),
    "activity": (0.0, 1e6),  # spikes per pulse of a pulsepacket_generator
    "n": (0.0, 1e9),  # quantal release sites
}
"""(least, most) of node values where more means NEST works in proportion to it at every step."""

RING_BUFFER_BYTES = 3 * 8
"""Per node and step of the delay range: NEST's input ring buffers (excitatory, inhibitory,
current), a double each."""

HANDED_VALUE_BYTES = 64
"""Per value of a per-node array (spike_times, schedules): the Python list a restore hands NEST
and NEST's own copy (measured: README, "Measured facts the code relies on")."""


STAYS_INSIDE: dict[str, Any] = {"record_to": "memory", "stimulus_source": ""}
"""Keys whose other values make NEST write files, print, or exchange data with other programs
(recording and stimulation backends), and the one value a restore uses. A restored recorder
records to memory whatever was stored (kept as information); a stimulation device that reads
from outside, or a protocol change to either key, is refused."""


def refusal(key: str, value: Any) -> str:
    """Why a restore must not set ``key`` to ``value`` (empty if it may): beyond
    :data:`NODE_RANGES`, or reaching outside the process (:data:`STAYS_INSIDE`)."""
    if key in STAYS_INSIDE and value != STAYS_INSIDE[key]:
        return f"{key} = {value!r} would make NEST reach outside this process, which a restore never does"
    if key in NODE_RANGES and isinstance(value, (int, float)) and not isinstance(value, bool):
        lo, hi = NODE_RANGES[key]
        if not lo <= value <= hi:
            return f"{key} = {value:g} is outside what einet restores ({lo:g} … {hi:g})"
    return ""


def check_limits(snap: Snapshot) -> None:
    """Refuse kernel settings, node values and model defaults beyond what any network needs,
    and stimulation devices reading from outside."""
    for key, (lo, hi) in KERNEL_RANGES.items():
        value = snap.kernel.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not lo <= value <= hi:
            raise SnapshotError(f"kernel setting {key} = {value:g} is outside what einet restores ({lo:g} … {hi:g})")
    for run in snap.nodes:
        for key in (*NODE_RANGES, "stimulus_source"):
            if key in run.keys():
                for value in run.distinct(key) if key == "stimulus_source" else _numbers(run.values_of(key)):
                    if why := refusal(key, value):
                        raise SnapshotError(f"{run.model} {why}")
    for call in snap.model_calls:
        for key, value in call["params"].items():
            if key != "record_to" and (why := refusal(key, value)):  # record_to: replayed as memory
                raise SnapshotError(f"{call['op']} of {call['model']}: {why}")


def _numbers(values: Any) -> list[float]:
    return [v for v in (values.tolist() if hasattr(values, "tolist") else values) if isinstance(v, (int, float)) and not isinstance(v, bool)]


def restore_extra_bytes(snap: Snapshot) -> int:
    """What a restore allocates beyond the nodes and connections themselves: every node's input
    ring buffers over the delay range, and the per-node arrays handed to NEST."""
    res = float(snap.kernel.get("resolution", 0.1)) or 0.1
    steps = math.ceil(clock_delays(snap)["max_delay"] / res) + 1
    handed = sum(len(values) for run in snap.nodes for values, _ in run.ragged.values())
    return snap.n_nodes * steps * RING_BUFFER_BYTES + handed * HANDED_VALUE_BYTES

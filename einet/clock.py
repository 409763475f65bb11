"""The stored clock: a restored network goes on from the stored time, so that every device acts
at the same biological times as in the continued run.

NEST refuses to set ``biological_time``, but an empty kernel simulates fast (one cheap step per
communication interval), after which nodes and connections can be made as usual. Two things
are fixed by that first ``Simulate``: the kernel's delay range, and node keys such as a
recorder's ``time_in_steps``. And a step-wise schedule (a ``step_current_generator``'s
amplitudes, an ``inhomogeneous_poisson_generator``'s rates) made at time ``T`` ignores its
entries at or before ``T``, so a snapshot holds such schedules as seen from the stored time.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from .kernel import nest
from .snapshot import NodeRun, Snapshot
from .snapshot.packed import extremes

FIXED_AT_FIRST_SIMULATE = {"time_in_steps"}
"""Node keys NEST refuses once its clock has run: a restore on the stored clock leaves them at
their defaults (a recorder's time_in_steps only changes how it reports times)."""

STEP_SCHEDULES = {
    "step_current_generator": ("amplitude_times", "amplitude_values"),
    "step_rate_generator": ("amplitude_times", "amplitude_values"),
    "inhomogeneous_poisson_generator": ("rate_times", "rate_values"),
}
"""Devices whose output steps to a new value at each time of a schedule (times, values keys)."""


def clock_delays(snap: Snapshot) -> dict[str, float]:
    """The min and max delay a restored kernel needs before its clock advances (NEST fixes them
    at the first Simulate): the stored kernel's, widened to every stored connection's delay."""
    ranges = [_delay_range(t) for t in snap.synapses if len(t) and ("delay" in t.columns or "delay" in t.uniform)]
    lo = min([float(snap.kernel.get("min_delay", math.inf)), *(r[0] for r in ranges)])
    hi = max([float(snap.kernel.get("max_delay", -math.inf)), *(r[1] for r in ranges)])
    if not math.isfinite(lo):
        lo = hi = max(snap.resolution_ms, 1.0) if not math.isfinite(hi) else hi
    return {"min_delay": lo, "max_delay": max(lo, hi)}


def _delay_range(table: Any) -> tuple[float, float]:
    """(least, most) delay of a synapse table (a shared delay is not spread over every row)."""
    if "delay" in table.uniform:
        return float(table.uniform["delay"]), float(table.uniform["delay"])
    return extremes(table.columns["delay"])


def clock_slices(snap: Snapshot) -> float:
    """How many communication intervals reaching the stored time takes (what it costs)."""
    return snap.t_stored_ms / clock_delays(snap)["min_delay"]


MAX_CLOCK_SLICES = 2e8
"""Communication intervals an empty kernel may step through to reach the stored time: beyond
this a restore would take minutes (README, "Measured facts the code relies on")."""


def advance_clock(snap: Snapshot) -> None:
    """Bring the empty kernel to the stored time, so that every device acts at the same times
    as in the continued run (NEST refuses to set ``biological_time``; an empty kernel
    simulates fast, one cheap step per communication interval)."""
    if snap.t_stored_ms <= 0:
        return
    n = nest()
    # after the first Simulate NEST refuses delays outside these: set them first
    n.SetKernelStatus(clock_delays(snap))
    res = float(n.resolution)
    n.Simulate(round(snap.t_stored_ms / res) * res)


def schedule_from(run: NodeRun, t_ms: float, resolution_ms: float) -> NodeRun:
    """A step-schedule device's run as seen from ``t_ms``: entries at or before it collapse into
    one at the next step with the value in force then (what a device made at ``t_ms`` needs, and
    unchanged by a store right after a restore)."""
    keys = STEP_SCHEDULES.get(run.model)
    if keys is None or t_ms <= 0:
        return run
    times_key, values_key = keys
    if not (set(keys) <= set(run.ragged) | set(run.uniform)):
        return run
    times: list[Any] | np.ndarray
    values: list[Any] | np.ndarray
    if times_key in run.uniform and values_key in run.uniform:  # one schedule for every node: seen once
        times, values = [run.uniform[times_key]], [run.uniform[values_key]]
    else:
        times, values = run.values_of(times_key), run.values_of(values_key)
    new_times, new_values = [], []
    first = round(t_ms + resolution_ms, 10)
    for t, v in zip(times, values):
        t, v = np.asarray(t, dtype=float), np.asarray(v, dtype=float)
        past = t <= t_ms + resolution_ms / 2
        if past.any() and not (t == first).any():
            t, v = np.concatenate([[first], t[~past]]), np.concatenate([[v[past][-1]], v[~past]])
        elif past.any():
            t, v = t[~past], v[~past]
        new_times.append(t)
        new_values.append(v)
    ragged, uniform = dict(run.ragged), dict(run.uniform)
    for key, arrays in ((times_key, new_times), (values_key, new_values)):
        if key in uniform:  # one schedule for every node stays one
            uniform[key] = arrays[0].tolist()
            continue
        offsets = np.zeros(run.count + 1, dtype=run.ragged[key][1].dtype)
        offsets[1:] = np.cumsum([len(a) for a in arrays])
        ragged[key] = (np.concatenate(arrays).astype(run.ragged[key][0].dtype) if offsets[-1] else run.ragged[key][0][:0], offsets)
    return dataclasses.replace(run, uniform=uniform, ragged=ragged)


def step_on_grid(t_ms: float, want_ms: float, stop_ms: float, resolution_ms: float, min_delay_ms: float) -> float:
    """The length of a run's next ``Simulate`` call from ``t_ms``: about ``want_ms``, ending on
    the kernel's communication grid (a whole number of ``min_delay`` from time 0), or at
    ``stop_ms``. Calls that end on the grid are seamless for every model; one that ends inside
    an interval changes the spikes of some networks (NEST 3.10: a ``parrot_neuron`` network run
    as 50 + 0.5 + 49.5 ms fires other spikes than run as 100 or 50 + 1 + 1 + 48 ms), so a
    run's steps would otherwise make its spikes depend on its step lengths."""
    t, stop = round(t_ms / resolution_ms), round(stop_ms / resolution_ms)
    grid = max(1, round(min_delay_ms / resolution_ms))
    end = (t + max(1, round(want_ms / resolution_ms))) // grid * grid
    if end <= t:
        end = (t // grid + 1) * grid
    return (min(end, stop) - t) * resolution_ms

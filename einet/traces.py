"""Presynaptic traces of plastic synapses, referred to the stored time so a restore continues them.

STDP synapses keep a presynaptic trace ``Kplus`` as its value right after the source's last
spike, at the connection's private ``t_lastspike``; NEST decays it only when the next spike
arrives, by ``exp((t_lastspike - t) / tau_plus)``. A connection made by a restore has
``t_lastspike = 0``, which nobody can set. So a snapshot holds each trace's value *at the stored
time* ``T`` (the source's last spike time is its ``t_spike``), and a restore sets it to that
value times ``exp(T / tau)``: NEST's own decay from 0 then gives the continued run's value at
every later time. Storing right after a restore gives back the same values (a source that has
not spiked since reports no ``t_spike``, and its connections' ``t_lastspike`` is 0).

A double holds ``exp(T / tau)`` up to ``T / tau`` ≈ 709, and NEST's decay from 0 underflows
beyond it: restored at a later stored time, such a trace starts from zero (said in the
snapshot's not-stored list).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

_STDP = {"Kplus": "tau_plus"}
TRACES: dict[str, dict[str, str]] = {
    "stdp_synapse": _STDP,
    "stdp_synapse_hom": _STDP,
    "stdp_pl_synapse_hom": _STDP,
    "stdp_nn_pre_centered_synapse": _STDP,
    "stdp_dopamine_synapse": _STDP,
    "jonke_synapse": _STDP,
    "stdp_triplet_synapse": {"Kplus": "tau_plus", "Kplus_triplet": "tau_plus_triplet"},
    "vogels_sprekeler_synapse": {"Kplus": "tau"},
}
"""NEST synapse models (without ``_hpc``/``_lbl``) whose traces decay from ``t_lastspike`` as above."""

LAST_SPIKE_CLOCKED = (
    "tsodyks_synapse",
    "tsodyks2_synapse",
    "tsodyks_synapse_hom",
    "quantal_stp_synapse",
    "ht_synapse",
    "stdp_dopamine_synapse",
    "stdp_nn_symm_synapse",
    "stdp_nn_restr_synapse",
    "clopath_synapse",
    "stdp_facetshw_synapse_hom",
    "urbanczik_synapse",
)
"""Models with other state that evolves from the last spike: it restarts from t = 0 after a restore."""

MAX_EXPONENT = 700.0
"""exp(700) ≈ 1e304: the largest growth factor a double holds with room for the trace."""


def family(model: str) -> str:
    """A NEST synapse model's name without the ``_hpc``/``_lbl`` variant suffix."""
    for suffix in ("_hpc", "_lbl"):
        if model.endswith(suffix):
            return model[: -len(suffix)]
    return model


def traces_of(base: str) -> dict[str, str]:
    """Trace key → time-constant key of a (built-in) synapse model; empty for most models."""
    return TRACES.get(family(base), {})


Tau = Callable[[str], np.ndarray | float]
"""A time constant by name: a column per connection, or one value for the model."""


def refer_to_stored_time(columns: Mapping[str, np.ndarray], tau: Tau, source_last_spike: np.ndarray, t_ms: float, base: str, scratch: np.ndarray | None = None) -> None:
    """Decay each trace of ``columns`` in place from its source's last spike
    (``source_last_spike``, one per connection, < 0 for none since the kernel's t = 0; it is
    overwritten) to the stored time ``t_ms``; ``scratch``, as long or longer, saves an
    allocation (a store refers millions of traces: fresh temporaries cost page faults)."""
    since = source_last_spike
    np.maximum(since, 0.0, out=since)
    np.subtract(t_ms, since, out=since)
    factor = np.empty_like(since) if scratch is None else scratch[: len(since)]
    for key, tau_key in traces_of(base).items():
        if key in columns:
            # each trace times exp(-since / tau), in that order: the values are those NEST's own
            # decay gives (a restore's continuation test compares them bit for bit)
            np.negative(since, out=factor)
            np.divide(factor, tau(tau_key), out=factor)
            np.exp(factor, out=factor)
            np.multiply(columns[key], factor, out=columns[key])


def for_new_connections(columns: Mapping[str, np.ndarray], tau: Tau, t_ms: float, base: str) -> dict[str, np.ndarray]:
    """The values to give new connections (``t_lastspike = 0``) in a kernel at ``t_ms`` so that
    NEST's decay from 0 gives the stored values at ``t_ms``."""
    out = {}
    for key, tau_key in traces_of(base).items():
        if key in columns:
            exponent = np.minimum(t_ms / np.asarray(tau(tau_key), dtype=float), MAX_EXPONENT)
            out[key] = columns[key] * np.exp(exponent)
    return out


def lost_after(base: str, tau: Mapping[str, float]) -> float | None:
    """The stored time from which this model's traces no longer survive a restore (ms)."""
    taus = [tau[k] for k in traces_of(base).values() if k in tau]
    return MAX_EXPONENT * min(taus) if taus else None

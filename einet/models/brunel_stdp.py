"""The reference network: NEST's example "Store and restore a network simulation".

A Brunel-style balanced network: 2000 E + 500 I ``iaf_psc_delta`` neurons (times ``scale``),
STDP on E synapses (``e_syn``, ``stdp_synapse_hom`` with Wmax = 2·JE), static I synapses
(``i_syn``, JI = g·JE), fixed in-degrees 200/50 (multapses allowed, so each neuron gets the
same input at any scale and small networks stay active), an 800 Hz Poisson drive and
V_m ~ N(−65, 5) mV. Written as any user model is: plain PyNEST calls in ``build``.
"""

from __future__ import annotations

from typing import Any


def size(scale: float = 1.0, *, n_inh_base: int = 500, e_to_i_ratio: int = 4, indegree_e: int = 200, indegree_i: int = 50, **_: Any) -> tuple[int, int]:
    """(nodes, connections) ``build`` makes with these parameters (einet checks memory first)."""
    n_inh = int(round(n_inh_base * scale))  # noqa: RUF046 - round() of a NumPy float is a NumPy float
    neurons = n_inh * (1 + e_to_i_ratio)
    return neurons + 1, neurons * (indegree_e + indegree_i + 1)


def build(
    nest: Any,
    scale: float = 1.0,
    *,
    n_inh_base: int = 500,
    e_to_i_ratio: int = 4,
    je_mv: float = 1.0,
    g: float = -4.0,
    wmax_factor: float = 2.0,
    indegree_e: int = 200,
    indegree_i: int = 50,
    poisson_rate_hz: float = 800.0,
    vm_mean_mv: float = -65.0,
    vm_std_mv: float = 5.0,
    neuron_model: str = "iaf_psc_delta",
    resolution_ms: float = 0.1,
) -> dict[str, Any]:
    n_inh = int(round(n_inh_base * scale))  # noqa: RUF046 - round() of a NumPy float is a NumPy float
    if n_inh < 1:
        raise ValueError(f"scale {scale} leaves no neurons")
    n_exc = e_to_i_ratio * n_inh
    nest.resolution = resolution_ms
    nest.CopyModel("stdp_synapse_hom", "e_syn", {"Wmax": wmax_factor * je_mv})
    nest.CopyModel("static_synapse", "i_syn")
    vm = nest.random.normal(vm_mean_mv, vm_std_mv)
    exc = nest.Create(neuron_model, n=n_exc, params={"V_m": vm})
    inh = nest.Create(neuron_model, n=n_inh, params={"V_m": vm})
    neurons = exc + inh
    nest.Connect(exc, neurons, {"rule": "fixed_indegree", "indegree": indegree_e}, {"synapse_model": "e_syn", "weight": je_mv})
    nest.Connect(inh, neurons, {"rule": "fixed_indegree", "indegree": indegree_i}, {"synapse_model": "i_syn", "weight": g * je_mv})
    noise = nest.Create("poisson_generator", params={"rate": poisson_rate_hz})
    nest.Connect(noise, neurons, "all_to_all", {"weight": je_mv})
    return {"E": exc, "I": inh}

"""NEST's brunel_alpha_nest example as an einet model (static synapses, iaf_psc_alpha)."""

import numpy as np


def _psp_norm(tau_m=20.0, c_m=250.0, tau_s=0.5):
    t = np.linspace(0.0, 20.0, 200001)
    a = 1.0 / tau_s - 1.0 / tau_m
    v = np.e / (tau_s * c_m * a) * ((np.exp(-t / tau_m) - np.exp(-t / tau_s)) / a - t * np.exp(-t / tau_s))
    return float(v.max())


def build(nest, scale=1.0, g=5.0, eta=2.0, J=0.1):
    order = int(2500 * scale)
    ne, ni = 4 * order, order
    ce, ci = int(0.1 * ne), int(0.1 * ni)
    params = {"C_m": 250.0, "tau_m": 20.0, "tau_syn_ex": 0.5, "tau_syn_in": 0.5, "t_ref": 2.0, "E_L": 0.0, "V_reset": 0.0, "V_m": 0.0, "V_th": 20.0}
    j_ex = J / _psp_norm()
    p_rate = 1000.0 * eta * 20.0 / (J * ce * 20.0) * ce
    e = nest.Create("iaf_psc_alpha", ne, params=params)
    i = nest.Create("iaf_psc_alpha", ni, params=params)
    noise = nest.Create("poisson_generator", params={"rate": p_rate})
    nest.CopyModel("static_synapse", "excitatory", {"weight": j_ex, "delay": 1.5})
    nest.CopyModel("static_synapse", "inhibitory", {"weight": -g * j_ex, "delay": 1.5})
    nest.Connect(noise, e + i, syn_spec="excitatory")
    nest.Connect(e, e + i, {"rule": "fixed_indegree", "indegree": ce}, "excitatory")
    nest.Connect(i, e + i, {"rule": "fixed_indegree", "indegree": ci}, "inhibitory")
    return {"E": e, "I": i}

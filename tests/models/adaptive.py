"""Adaptive exponential integrate-and-fire E/I network with short-term plasticity on E→E.

Conductance-based ``aeif_cond_alpha`` neurons with random initial V_m and adaptation current
w, ``tsodyks2_synapse`` between excitatory neurons with per-connection U, tau_rec, tau_fac and
weight, static synapses elsewhere, driven by Poisson input.
"""


def build(nest, scale=1.0, n_exc=160, n_inh=40, rate_hz=10000.0, w_ext=3.0, w_ee=1.5, w_ie=1.5, w_inh=-6.0, p_conn=0.1):
    ne = max(2, round(n_exc * scale))
    ni = max(1, round(n_inh * scale))
    nest.resolution = 0.1

    neuron_params = {"a": 2.0, "b": 40.0, "tau_w": 150.0, "V_peak": 0.0}
    E = nest.Create("aeif_cond_alpha", ne, params=neuron_params)
    I = nest.Create("aeif_cond_alpha", ni, params={**neuron_params, "a": 0.0, "b": 0.0})
    for pop in (E, I):
        pop.V_m = nest.random.uniform(-70.0, -55.0)
        pop.w = nest.random.uniform(0.0, 50.0)

    conn = {"rule": "pairwise_bernoulli", "p": p_conn, "allow_autapses": False}
    stp = {
        "synapse_model": "tsodyks2_synapse",
        "weight": nest.random.uniform(0.5 * w_ee, 1.5 * w_ee),
        "delay": 1.5,
        "U": nest.random.uniform(0.2, 0.6),
        "tau_rec": nest.random.uniform(200.0, 800.0),
        "tau_fac": nest.random.uniform(0.0, 50.0),
    }
    nest.Connect(E, E, conn, stp)
    nest.Connect(E, I, conn, {"synapse_model": "static_synapse", "weight": w_ie, "delay": 1.5})
    nest.Connect(I, E + I, conn, {"synapse_model": "static_synapse", "weight": w_inh, "delay": 1.0})

    drive = nest.Create("poisson_generator", params={"rate": rate_hz})
    nest.Connect(drive, E + I, syn_spec={"weight": w_ext, "delay": 1.0})
    return {"E": E, "I": I}

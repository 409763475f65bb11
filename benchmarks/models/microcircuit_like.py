"""An iaf_psc_exp network in the style of the Potjans-Diesmann microcircuit (one layer's E and I,
its neuron and synapse parameters, normally distributed delays): min_delay is one step."""


def build(nest, scale=1.0, k_ext=1600, bg_rate=8.0):
    ne, ni = int(1600 * scale), int(400 * scale)
    params = {"C_m": 250.0, "tau_m": 10.0, "tau_syn_ex": 0.5, "tau_syn_in": 0.5, "t_ref": 2.0, "E_L": -65.0, "V_th": -50.0, "V_reset": -65.0}
    e = nest.Create("iaf_psc_exp", ne, params=params)
    i = nest.Create("iaf_psc_exp", ni, params=params)
    for p in (e, i):
        p.V_m = nest.random.normal(-58.0, 5.0)
    w = 87.8
    d_e = nest.math.redraw(nest.random.normal(1.5, 0.75), 0.1, 100.0)
    d_i = nest.math.redraw(nest.random.normal(0.75, 0.375), 0.1, 100.0)
    noise = nest.Create("poisson_generator", params={"rate": k_ext * bg_rate})
    nest.Connect(noise, e + i, syn_spec={"weight": w, "delay": 1.5})
    nest.Connect(e, e + i, {"rule": "fixed_indegree", "indegree": int(0.1 * ne)}, {"weight": nest.math.redraw(nest.random.normal(w, 0.1 * w), 0.0, 1e9), "delay": d_e})
    nest.Connect(i, e + i, {"rule": "fixed_indegree", "indegree": int(0.1 * ni)}, {"weight": nest.math.redraw(nest.random.normal(-4 * w, 0.4 * w), -1e9, 0.0), "delay": d_i})
    return {"E": e, "I": i}

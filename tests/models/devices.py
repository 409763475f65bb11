"""Devices and special synapses: parrots relaying a spike_generator, a dc_generator, a
multimeter, a multisynapse neuron with two receptor ports, and STDP with per-connection
parameters and random delays. Returns nothing, so einet groups the neurons by model."""


def build(nest, scale=1.0, n=60, rate_hz=9000.0):
    n = max(4, round(n * scale))
    nest.resolution = 0.1

    # parrots repeating fixed spike trains
    sg = nest.Create("spike_generator", params={"spike_times": [2.0, 5.5, 10.0, 20.0, 33.3, 50.0, 75.2, 120.0]})
    parrots = nest.Create("parrot_neuron", 10)
    nest.Connect(sg, parrots)

    # a population with two synaptic time constants
    multi = nest.Create("iaf_psc_exp_multisynapse", n, params={"tau_syn": [2.0, 8.0], "V_th": -60.0})
    multi.V_m = nest.random.uniform(-70.0, -61.0)
    plain = nest.Create("iaf_psc_alpha", n)
    plain.V_m = nest.random.normal(-65.0, 3.0)

    dc = nest.Create("dc_generator", params={"amplitude": 120.0, "start": 20.0, "stop": 150.0})
    nest.Connect(dc, plain)

    noise = nest.Create("poisson_generator", params={"rate": rate_hz})
    nest.Connect(noise, multi, syn_spec={"weight": 12.0, "receptor_type": 1})
    nest.Connect(noise, plain, syn_spec={"weight": 15.0})

    nest.Connect(parrots, multi, {"rule": "fixed_indegree", "indegree": 3}, {"weight": 40.0, "delay": 1.0, "receptor_type": 2})
    nest.Connect(plain, multi, {"rule": "fixed_indegree", "indegree": 5}, {"weight": -20.0, "delay": 2.0, "receptor_type": 2})

    stdp = {
        "synapse_model": "stdp_synapse",
        "weight": nest.random.uniform(10.0, 30.0),
        "delay": nest.random.uniform(0.5, 3.0),
        "tau_plus": nest.random.uniform(10.0, 30.0),
        "Wmax": 100.0,
    }
    nest.Connect(multi, plain, {"rule": "pairwise_bernoulli", "p": 0.2}, stdp)

    mm = nest.Create("multimeter", params={"record_from": ["V_m"], "interval": 1.0})
    nest.Connect(mm, plain[:5])

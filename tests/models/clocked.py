"""A network driven only by deterministic devices with schedules that straddle the store time:
a step current that switches on at 150 ms, spike trains into parrot neurons, STDP from the
parrots onto the neurons, recurrent static connections. Stored at 100 ms nothing is in
transit and nobody is refractory, so a restore must continue it exactly."""


def build(nest, scale=1.0, onset=150.0):
    n = max(4, int(20 * scale))
    nest.resolution = 0.1
    neurons = nest.Create("iaf_psc_delta", n, params={"V_m": [-70.0 + 0.2 * k for k in range(n)], "t_ref": 2.0})
    parrots = nest.Create("parrot_neuron", 5)
    train = nest.Create("spike_generator", params={"spike_times": [5.0, 20.0, 172.5, 190.0, 240.0]})
    step = nest.Create("step_current_generator", params={"amplitude_times": [onset, onset + 80.0], "amplitude_values": [600.0, 0.0], "label": "step"})
    pulse = nest.Create("dc_generator", params={"amplitude": 300.0, "start": 200.0, "stop": 260.0, "label": "pulse"})
    nest.Connect(train, parrots)
    nest.Connect(parrots, neurons, syn_spec={"synapse_model": "stdp_synapse", "weight": 2.0, "delay": 1.0, "tau_plus": 100.0})
    nest.Connect(step, neurons)
    nest.Connect(pulse, neurons[: n // 2])
    nest.Connect(neurons, neurons, {"rule": "fixed_indegree", "indegree": 3}, {"weight": 2.0, "delay": 1.5})
    return {"E": neurons, "parrots": parrots}

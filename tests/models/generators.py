"""Every kind of stimulating device onto one population: step_current_generator, two
spike_generators (the second with spike multiplicities), dc_generator, noise_generator, poisson_generator and inhomogeneous_poisson_generator, plus a
step_rate_generator (it drives rate neurons only: NEST refuses it onto spiking ones, so it is
left unconnected, its settings still part of the network)."""


def build(nest, scale=1.0, n=20):
    n = max(2, round(n * scale))
    neurons = nest.Create("iaf_psc_alpha", n)
    neurons.V_m = nest.random.uniform(-70.0, -60.0)

    # times and values are accepted only together, and allow_offgrid_times only with them
    step = nest.Create("step_current_generator", params={"amplitude_times": [10.0, 60.0, 110.0], "amplitude_values": [250.0, -80.0, 150.0]})
    nest.Create("step_rate_generator", params={"amplitude_times": [5.0, 50.0], "amplitude_values": [10.0, 2.0], "allow_offgrid_times": True})
    spikes = nest.Create("spike_generator", params={"spike_times": [3.0, 7.5, 40.0, 41.0, 90.0], "spike_weights": [50.0, 60.0, 70.0, 80.0, 90.0]})
    # NEST reports its empty multiplicities as floats, which it refuses back: the next one's must still be stored
    doubles = nest.Create("spike_generator", params={"spike_times": [20.0, 70.0], "spike_multiplicities": [2, 3]})
    dc = nest.Create("dc_generator", params={"amplitude": 90.0, "start": 30.0, "stop": 120.0})
    noise = nest.Create("noise_generator", params={"mean": 50.0, "std": 120.0, "dt": 1.0})
    poisson = nest.Create("poisson_generator", params={"rate": 8000.0})
    inhom = nest.Create("inhomogeneous_poisson_generator", params={"rate_times": [20.0, 80.0], "rate_values": [12000.0, 3000.0]})

    for device in (step, dc, noise):
        nest.Connect(device, neurons)
    for device in (spikes, doubles, poisson, inhom):
        nest.Connect(device, neurons, syn_spec={"weight": 12.0})
    nest.Connect(neurons, neurons, {"rule": "fixed_indegree", "indegree": 3}, {"weight": -5.0, "delay": 1.5})
    return {"N": neurons}

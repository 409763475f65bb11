"""One stimulation device, active from 150 to 250 ms, onto what it can drive: spiking devices
onto parrot neurons, current devices onto iaf_psc_delta neurons (the continuation tests)."""

SPIKING = {
    "gamma_sup_generator": {"rate": 200.0, "n_proc": 3},
    "inhomogeneous_poisson_generator": {"rate_times": [120.0, 180.0], "rate_values": [100.0, 300.0]},
    "mip_generator": {"rate": 200.0, "p_copy": 0.5},
    "poisson_generator": {"rate": 200.0},
    "poisson_generator_ps": {"rate": 200.0},
    "ppd_sup_generator": {"rate": 200.0, "n_proc": 3},
    "pulsepacket_generator": {"pulse_times": [120.0, 170.0, 220.0, 270.0], "activity": 5, "sdev": 2.0},
    "sinusoidal_gamma_generator": {"rate": 200.0, "amplitude": 100.0, "frequency": 15.0},
    "sinusoidal_poisson_generator": {"rate": 200.0, "amplitude": 100.0, "frequency": 15.0},
    "spike_generator": {"spike_times": [60.0, 151.0, 170.5, 199.9, 249.0, 260.0]},
}
CURRENT = {
    "ac_generator": {"amplitude": 600.0, "offset": 500.0, "frequency": 15.0},
    "dc_generator": {"amplitude": 1000.0},
    "noise_generator": {"mean": 900.0, "std": 300.0, "dt": 1.0},
    "step_current_generator": {"amplitude_times": [120.0, 200.0], "amplitude_values": [1000.0, 600.0]},
}
START, STOP = 150.0, 250.0


def build(nest, scale=1.0, device="dc_generator"):
    params = {**SPIKING.get(device, {}), **CURRENT.get(device, {}), "start": START, "stop": STOP}
    source = nest.Create(device, params=params)
    if device in SPIKING:
        targets = nest.Create("parrot_neuron_ps" if device.endswith("_ps") else "parrot_neuron", 4)
    else:
        targets = nest.Create("iaf_psc_delta", 4)
    nest.Connect(source, targets, syn_spec={"delay": 1.0})
    return {"targets": targets}

"""The model's own recorders: a weight_recorder watching an STDP synapse model (made with
CopyModel; its ``senders`` filter names neurons created after it), and a spike_recorder and a
multimeter writing ASCII files named by their labels under ``folder``: given to each node, or
(``via_defaults``) set as the spike_recorder's defaults and in a CopyModel of the multimeter."""


def build(nest, scale=1.0, n=20, folder="recordings", via_defaults=False):
    n = max(4, round(n * scale))
    weights = nest.Create("weight_recorder")
    nest.CopyModel("stdp_synapse", "stdp_watched", {"weight_recorder": weights, "Wmax": 100.0})
    neurons = nest.Create("iaf_psc_alpha", n)
    neurons.V_m = nest.random.uniform(-70.0, -56.0)
    weights.senders = neurons[: n // 2]

    drive = nest.Create("poisson_generator", params={"rate": 20000.0})
    nest.Connect(drive, neurons, syn_spec={"weight": 30.0})
    nest.Connect(neurons, neurons, {"rule": "fixed_indegree", "indegree": 4}, {"synapse_model": "stdp_watched", "weight": 20.0})

    if via_defaults:
        nest.SetDefaults("spike_recorder", {"record_to": "ascii", "label": f"{folder}/spikes"})
        nest.CopyModel("multimeter", "ascii_meter", {"record_to": "ascii", "label": f"{folder}/voltages", "precision": 5})
        spikes = nest.Create("spike_recorder")
        voltages = nest.Create("ascii_meter", params={"record_from": ["V_m"], "interval": 1.0})
    else:
        spikes = nest.Create("spike_recorder", params={"record_to": "ascii", "label": f"{folder}/spikes"})
        voltages = nest.Create("multimeter", params={"record_from": ["V_m"], "interval": 1.0, "record_to": "ascii", "label": f"{folder}/voltages", "precision": 5})
    nest.Connect(neurons, spikes)
    nest.Connect(voltages, neurons[:3])
    return {"N": neurons}

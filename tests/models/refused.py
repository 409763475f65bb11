"""Networks einet must refuse to store (one clear line, nothing written)."""


def structural_plasticity(nest, scale=1.0, n=20):
    """Structural plasticity: synaptic elements grow and connections are rewired (one thread
    only: NEST refuses structural plasticity with several)."""
    nest.CopyModel("static_synapse", "synapse_ex", {"weight": 1.0, "delay": 1.0})
    nest.structural_plasticity_synapses = {
        "synapse_ex": {"synapse_model": "synapse_ex", "post_synaptic_element": "Den_ex", "pre_synaptic_element": "Axon_ex"},
    }
    growth = {"growth_curve": "gaussian", "growth_rate": 0.0001, "continuous": False, "eta": 0.0, "eps": 0.05}
    neurons = nest.Create("iaf_psc_alpha", n, {"synaptic_elements": {"Axon_ex": growth, "Den_ex": growth}})
    noise = nest.Create("poisson_generator", params={"rate": 10000.0})
    nest.Connect(noise, neurons, syn_spec={"weight": 10.0})
    nest.EnableStructuralPlasticity()
    return {"N": neurons}


def gap_junctions(nest, scale=1.0, n=10):
    """Hodgkin-Huxley neurons coupled by (symmetric) gap junctions."""
    neurons = nest.Create("hh_psc_alpha_gap", n)
    neurons.V_m = nest.random.uniform(-80.0, -40.0)
    # a chain, each link both ways
    nest.Connect(neurons[:-1], neurons[1:], {"rule": "one_to_one", "make_symmetric": True}, {"synapse_model": "gap_junction", "weight": 0.5})
    noise = nest.Create("poisson_generator", params={"rate": 5000.0})
    nest.Connect(noise, neurons, syn_spec={"weight": 50.0})
    return {"N": neurons}

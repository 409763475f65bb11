"""Spatially structured populations of a copied neuron model, connected by distance."""


def build(nest, scale=1.0, n_free=120, grid=8, rate_hz=8000.0):
    n_free = max(4, round(n_free * scale))
    nest.resolution = 0.1
    nest.CopyModel("iaf_psc_alpha", "my_neuron", {"tau_m": 15.0, "V_th": -52.0, "t_ref": 3.0, "C_m": 200.0})
    nest.CopyModel("static_synapse", "local_syn")
    nest.SetDefaults("local_syn", {"weight": 30.0, "delay": 1.5})

    free = nest.Create("my_neuron", n_free, positions=nest.spatial.free(nest.random.uniform(), num_dimensions=2))
    free.V_m = nest.random.uniform(-70.0, -55.0)
    layer = nest.Create("my_neuron", positions=nest.spatial.grid(shape=[grid, grid], extent=[1.0, 1.0]))
    layer.V_m = nest.random.uniform(-70.0, -55.0)

    distance_conn = {
        "rule": "pairwise_bernoulli",
        "p": nest.spatial_distributions.gaussian(nest.spatial.distance, std=0.25),
        "mask": {"circular": {"radius": 0.4}},
        "allow_autapses": False,
    }
    nest.Connect(free, layer, distance_conn, {"synapse_model": "local_syn"})
    nest.Connect(layer, free, distance_conn, {"synapse_model": "local_syn", "weight": -40.0})
    nest.Connect(free, free, {"rule": "pairwise_bernoulli", "p": 0.3 * nest.math.exp(-nest.spatial.distance / 0.2)}, {"synapse_model": "local_syn", "weight": nest.random.uniform(5.0, 25.0)})

    noise = nest.Create("poisson_generator", params={"rate": rate_hz})
    nest.Connect(noise, free, syn_spec={"weight": 25.0})
    nest.Connect(noise, layer, syn_spec={"weight": 25.0})
    return {"free": free, "grid": layer}

"""A network written the way NEST's example scripts are: module-level ``import nest``, a kernel
reset, the script's own threads and seed, progress printed along the way."""

import nest


def build(nest_module=None, scale=1.0, order=50):
    print("building...")
    nest.ResetKernel()
    nest.local_num_threads = 4
    nest.rng_seed = 999
    nest.set(resolution=0.1)
    nest.print_time = False

    NE = int(4 * order * scale)
    NI = int(order * scale)
    print(f"creating {NE} excitatory and {NI} inhibitory neurons")
    nest.SetDefaults("iaf_psc_delta", {"C_m": 1.0, "tau_m": 20.0, "t_ref": 2.0, "E_L": 0.0, "V_reset": 10.0, "V_m": 0.0, "V_th": 20.0})
    nodes_ex = nest.Create("iaf_psc_delta", NE)
    nodes_in = nest.Create("iaf_psc_delta", NI)
    nodes_ex.V_m = nest.random.uniform(0.0, 20.0)
    nodes_in.V_m = nest.random.uniform(0.0, 20.0)
    noise = nest.Create("poisson_generator", params={"rate": 20000.0})
    espikes = nest.Create("spike_recorder")

    nest.CopyModel("static_synapse", "excitatory", {"weight": 0.1, "delay": 1.5})
    nest.CopyModel("static_synapse", "inhibitory", {"weight": -0.5, "delay": 1.5})
    print("connecting devices")
    nest.Connect(noise, nodes_ex + nodes_in, syn_spec="excitatory")
    nest.Connect(nodes_ex[:50], espikes, syn_spec="excitatory")
    print("connecting network")
    nest.Connect(nodes_ex, nodes_ex + nodes_in, {"rule": "fixed_indegree", "indegree": int(0.1 * NE)}, "excitatory")
    nest.Connect(nodes_in, nodes_ex + nodes_in, {"rule": "fixed_indegree", "indegree": int(0.1 * NI)}, "inhibitory")
    print("done")
    return {"E": nodes_ex, "I": nodes_in}

"""A network on which NEST loops inside one Simulate call: parrot neurons repeat a Poisson
input of 1e12 Hz, and the spike recorder einet attaches writes each of its ~1e8 spikes per
0.1 ms step one by one (a 10 ms step takes an hour) (einet refuses such rates in snapshots, but a model may set one). escape and q
must still end a run.

With ``marker`` set, ``build`` itself simulates (with a recorder of its own): it creates that
file and then stays inside NEST, so a test knows when NEST is stuck."""


def build(nest, scale=1.0, marker=""):
    parrots = nest.Create("parrot_neuron", 2)
    noise = nest.Create("poisson_generator", params={"rate": 1e12})
    nest.Connect(noise, parrots)
    if marker:
        nest.Connect(parrots, nest.Create("spike_recorder"))
        open(marker, "w").close()
        nest.Simulate(10.0)
    return {"parrots": parrots}

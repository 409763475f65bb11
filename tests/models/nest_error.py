"""A model whose build makes NEST refuse a connection with a two-line message ("Creation of
connection is not possible because:" and the reason on the next line)."""


def build(nest, scale=1.0, n=4):
    neurons = nest.Create("iaf_psc_alpha", max(2, int(n * scale)))
    # integrate-and-fire neurons have no gap-junction output
    nest.Connect(neurons[:-1], neurons[1:], {"rule": "one_to_one", "make_symmetric": True}, {"synapse_model": "gap_junction", "weight": 0.5})
    return {"N": neurons}

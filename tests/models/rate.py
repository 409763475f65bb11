"""A rate-model network: linear rate neurons with input noise, coupled instantaneously and with
delays, and a spiking population beside them (einet records spikes of one, rates of the other)."""


def build(nest, scale=1.0):
    n = max(4, int(10 * scale))
    nest.use_wfr = True
    rates = nest.Create("lin_rate_ipn", n, params={"mu": 1.0, "sigma": 0.3, "tau": 5.0})
    nest.Connect(rates, rates, {"rule": "fixed_indegree", "indegree": 2}, {"synapse_model": "rate_connection_instantaneous", "weight": -0.1})
    slow = nest.Create("tanh_rate_ipn", n // 2, params={"mu": 0.5, "sigma": 0.2})
    nest.Connect(rates, slow, "all_to_all", {"synapse_model": "rate_connection_delayed", "weight": 0.05, "delay": 2.0})
    spiking = nest.Create("iaf_psc_alpha", n, params={"I_e": 390.0})
    return {"rates": rates, "slow": slow, "spiking": spiking}

"""A small network around one NEST model, connected the way that model is meant to be (the
every-model walk of tests/test_every_model.py). ``build(nest, node_model=…)`` or
``build(nest, synapse_model=…)``; a model no recipe here can build raises NoRecipe."""

SPIKE_INPUT = {"rate": 8000.0}


class NoRecipe(Exception):
    """No network of this test can use the model (it needs partners the recipes do not make)."""


def _first_that_builds(nest, recipes):
    errors = []
    for recipe in recipes:
        before = nest.network_size
        try:
            return recipe()
        except Exception as exc:  # NEST refuses this way of using the model: try the next one
            errors.append(str(exc).splitlines()[0][:120])
            if nest.network_size != before:
                nest.ResetKernel()  # nodes of a half-built recipe would shift every later id
    raise NoRecipe("; ".join(errors))


def _spiking_targets(nest, n=3):
    targets = nest.Create("iaf_psc_alpha", n, params={"I_e": 300.0})
    return targets


def _neuron(nest, model):
    defaults = nest.GetDefaults(model)
    recordables = defaults.get("recordables") or ()

    def spiking(receptor=None):
        def recipe():
            nodes = nest.Create(model, 3)
            drive = nest.Create("poisson_generator", params=SPIKE_INPUT)
            spec = {"weight": 5.0} if receptor is None else {"weight": 5.0, "receptor_type": receptor}
            nest.Connect(drive, nodes, syn_spec=spec)
            if "parrot" not in model and model != "spike_train_injector":  # parrots in a loop repeat every spike for ever
                nest.Connect(nodes, nodes, "all_to_all", syn_spec={**spec, "weight": 1.0})
            return {"pop": nodes}

        return recipe

    def rate():
        nodes = nest.Create(model, 3, params={"sigma": 1.0} if "gauss" in model else {})  # width 0 gives NaN rates
        nest.Connect(nodes, nodes, "all_to_all", syn_spec={"synapse_model": "rate_connection_delayed", "weight": 0.1})
        return {"pop": nodes}

    def alone():
        return {"pop": nest.Create(model, 3)}

    def compartments():
        nodes = nest.Create(model, 3)
        nodes.compartments = [{"parent_idx": -1}]
        nodes.receptors = [{"comp_idx": 0, "receptor_type": "AMPA"}]
        nest.Connect(nest.Create("poisson_generator", params=SPIKE_INPUT), nodes, syn_spec={"receptor_type": 0})
        return {"pop": nodes}

    recipes = [rate, alone] if "rate" in recordables else [compartments] if model == "cm_default" else [spiking(), spiking(1), alone]
    return _first_that_builds(nest, recipes)


def _stimulator(nest, model):
    def onto(target_model, params=None):
        def recipe():
            device = nest.Create(model, params=params or {})
            targets = nest.Create(target_model, 3)
            nest.Connect(device, targets)
            return {"pop": targets}

        return recipe

    spike_input = nest.Create("poisson_generator", params=SPIKE_INPUT) if model == "spike_dilutor" else None

    def dilutor():
        device = nest.Create(model)
        targets = nest.Create("parrot_neuron", 3)
        nest.Connect(spike_input, device)
        nest.Connect(device, targets)
        return {"pop": targets}

    def rates():
        device = nest.Create(model)
        targets = nest.Create("lin_rate_ipn", 3)
        nest.Connect(device, targets, syn_spec={"synapse_model": "rate_connection_delayed"})
        return {"pop": targets}

    if spike_input is not None:
        return _first_that_builds(nest, [dilutor])
    return _first_that_builds(nest, [onto("iaf_psc_alpha"), onto("parrot_neuron_ps"), onto("parrot_neuron"), rates])


def _recorder(nest, model):
    def observe():
        neurons = _spiking_targets(nest)
        meter = nest.Create(model, params={"record_from": ["V_m"]} if model == "multimeter" else {})
        nest.Connect(meter, neurons)
        return {"pop": neurons}

    def listen():
        neurons = _spiking_targets(nest)
        device = nest.Create(model)
        nest.Connect(neurons, device)
        return {"pop": neurons}

    def listen_binary():
        neurons = nest.Create("ginzburg_neuron", 3)
        device = nest.Create(model)
        nest.Connect(neurons, device)
        return {"pop": neurons}

    def weights():
        device = nest.Create(model)
        nest.CopyModel("stdp_synapse", "recorded_stdp", {"weight_recorder": device})
        sources = nest.Create("parrot_neuron", 3)
        nest.Connect(nest.Create("poisson_generator", params=SPIKE_INPUT), sources)
        targets = _spiking_targets(nest)
        nest.Connect(sources, targets, "all_to_all", {"synapse_model": "recorded_stdp", "weight": 10.0})
        return {"pop": targets}

    return _first_that_builds(nest, [weights] if model == "weight_recorder" else [observe, listen, listen_binary])


# synapse models that need particular neurons on either side: (source model, target model)
PARTNERS = {
    "clopath_synapse": ("parrot_neuron", "aeif_psc_delta_clopath"),
    "urbanczik_synapse": ("parrot_neuron", "pp_cond_exp_mc_urbanczik"),
    "rate_connection_instantaneous": ("lin_rate_ipn", "lin_rate_ipn"),
    "rate_connection_delayed": ("lin_rate_ipn", "lin_rate_ipn"),
    "diffusion_connection": ("siegert_neuron", "siegert_neuron"),
    "gap_junction": ("hh_psc_alpha_gap", "hh_psc_alpha_gap"),
    "sic_connection": ("astrocyte_lr_1994", "aeif_cond_alpha_astro"),
}


def _synapse(nest, model):
    family = model.removesuffix("_hpc").removesuffix("_lbl")
    source_model, target_model = PARTNERS.get(family, ("parrot_neuron", "iaf_psc_alpha"))

    def plain(conn="all_to_all", extra=None):
        def recipe():
            sources = nest.Create(source_model, 3)
            if source_model.startswith("parrot"):
                nest.Connect(nest.Create("poisson_generator", params=SPIKE_INPUT), sources)
            targets = nest.Create(target_model, 3, params={"I_e": 300.0} if target_model == "iaf_psc_alpha" else {})
            syn = model
            if family == "stdp_dopamine_synapse":
                vt = nest.Create("volume_transmitter")
                syn = f"{model}_vt"
                nest.CopyModel(model, syn, {"volume_transmitter": vt})
            if family == "stdp_dopamine_synapse":
                nest.Connect(sources, vt)  # the dopamine spikes
            nest.Connect(sources, targets, conn, {"synapse_model": syn, **(extra or {})})
            return {"pop": targets}

        return recipe

    return _first_that_builds(nest, [plain(), plain(extra={"receptor_type": 1}), plain({"rule": "one_to_one", "make_symmetric": True}, {"weight": 0.5})])


def build(nest, scale=1.0, node_model="", synapse_model=""):
    if synapse_model:
        return _synapse(nest, synapse_model)
    kind = nest.GetDefaults(node_model).get("element_type")
    if kind == "stimulator":
        return _stimulator(nest, node_model)
    if kind == "recorder":
        return _recorder(nest, node_model)
    if kind == "neuron":
        return _neuron(nest, node_model)
    if node_model == "volume_transmitter":
        return _synapse(nest, "stdp_dopamine_synapse")  # it serves that model's connections
    raise NoRecipe(f"{node_model} is a {kind}: it has no network of its own")

"""A protocol against a network: which nodes or connections a change's target names, whether
the change can be made, and making it (see :mod:`einet.protocol` for the changes themselves).

Changes are checked before anything is simulated: against a stored network before a restore
touches the kernel (names, keys and kinds of values, from the snapshot alone), and against a
built network before its first run (there NEST also tries each value on one node or
connection and puts the old one back, so a value NEST refuses is refused before the run).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .kernel import nest, nest_output_to
from .limits import refusal
from .nest_api import connection_handles, connection_status, node_status, set_connection_status, set_node_status
from .network import Network, base_models, node_models
from .protocol import Change, ProtocolError
from .snapshot import Snapshot
from .text import one_line


@dataclass(frozen=True)
class Target:
    """What a change's target names: nodes (by id), or one synapse model's connections."""

    name: str
    ids: np.ndarray | None = None
    synapse_model: str = ""
    models: tuple[str, ...] = ()
    """The NEST models of those nodes, or the synapse model (what their keys come from)."""


def _kind(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "boolean"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return "number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, (list, tuple, np.ndarray)):
        return "list"
    return type(value).__name__


def _check(change: Change, keys: Mapping[str, Any], where: str) -> None:
    """``keys``: the target's settable keys, each with a value of the kind it takes."""
    if change.key not in keys:
        known = ", ".join(sorted(keys)[:12])
        raise ProtocolError(f"{change}: {where} has no settable parameter {change.key!r} (it has: {known}{', …' if len(keys) > 12 else ''})")
    want, got = _kind(keys[change.key]), _kind(change.value)
    if want != got and not (want == "list" and got == "number"):
        raise ProtocolError(f"{change}: {change.key} of {where} takes a {want}, not a {got}")


# -- against a snapshot, before a restore ---------------------------------------------------
def check_against_snapshot(changes: Iterable[Change], snap: Snapshot) -> None:
    """Refuse changes whose target, key or kind of value the stored network does not have
    (the kernel is not touched)."""
    bases = base_models(snap)
    labels: dict[str, list[Any]] = {}
    for run in snap.nodes:
        if "label" in run.keys():
            for label in run.distinct("label"):
                labels.setdefault(str(label), []).append(run)
    for change in changes:
        if why := refusal(change.key, change.value):
            raise ProtocolError(f"{change}: {why}")
        if change.target in snap.groups:
            ids = snap.groups[change.target]
            runs = [r for r, _ in snap.runs_holding(ids)]
        elif change.target in labels:
            runs = labels[change.target]
        elif any(r.model == change.target for r in snap.nodes):
            runs = [r for r in snap.nodes if r.model == change.target]
        elif any(t.model == change.target for t in snap.synapses):
            table = snap.synapse(change.target)
            keys = dict(nest().GetDefaults(bases.get(table.model, table.model)))
            keys |= {k: table.column(k)[0] for k in (*table.columns, *table.uniform)}
            _check(change, keys, f"synapse model {change.target}")
            continue
        else:
            raise ProtocolError(f"{change}: the snapshot has no population, device label, node model or synapse model {change.target!r}")
        for run in runs:
            _check(change, {k: run.first_value(k) for k in run.keys()}, f"{run.model} nodes of {change.target}")
        for model in dict.fromkeys(bases.get(r.model, r.model) for r in runs):
            _try_as_default(change, model)


def _try_as_default(change: Change, model: str) -> None:
    """Let NEST check the value as a default of the node model (put back at once), so that a
    value it refuses is refused before a restore touches the network."""
    n = nest()
    with nest_output_to():
        old = n.GetDefaults(model, change.key)
        try:
            n.SetDefaults(model, {change.key: change.value})
        except Exception as exc:  # noqa: BLE001 - NEST raises its own types (and TypeError) for a value it refuses
            raise ProtocolError(f"{change}: NEST refuses it: {one_line(exc)}") from None
        n.SetDefaults(model, {change.key: old})


# -- against a built network -----------------------------------------------------------------
def resolve(net: Network, name: str) -> Target:
    """The nodes or connections ``name`` stands for in this network: a population, a device
    label, a node model or a synapse model (in that order)."""
    for p in net.populations:
        if p.name == name:
            return Target(name, p.ids, models=tuple(dict.fromkeys(str(m) for m in node_models(net)[p.ids - 1])))
    labelled = np.flatnonzero(_labels(net) == name) + 1
    if len(labelled):
        return Target(name, labelled, models=tuple(dict.fromkeys(str(m) for m in node_models(net)[labelled - 1])))
    models = node_models(net)
    of_model = np.flatnonzero(models == name) + 1
    if len(of_model):
        return Target(name, of_model, models=(name,))
    n = nest()
    if name in n.synapse_models and int(n.GetDefaults(name, "num_connections")) > 0:
        return Target(name, synapse_model=name, models=(name,))
    raise ProtocolError(f"the network has no population, device label, node model or synapse model {name!r}")


def _labels(net: Network) -> np.ndarray:
    """Every node's ``label`` by id - 1 ('' where it has none), read once per network."""
    if net.labels is None:
        with nest_output_to():
            values = node_status(nest().NodeCollection(list(range(1, net.n_nodes + 1))), "label") if net.n_nodes else ()
        values = values if isinstance(values, tuple) else (values,)
        net.labels = np.array(["" if v is None else str(v) for v in values], dtype=object)
    return net.labels


def check_against_network(changes: Iterable[Change], net: Network) -> None:
    """Refuse changes the built network cannot take: unknown target or key, a value of the
    wrong kind, or one NEST refuses (tried on one node or connection, the old value put back)."""
    for change in changes:
        target = resolve(net, change.target)
        with nest_output_to():
            if target.synapse_model:
                _try_on_connection(change, target)
            else:
                for model in target.models:
                    keys = net.settable_nodes[model][0]
                    _check(change, {k: v for k, v in nest().GetDefaults(model).items() if k in keys}, f"{model} nodes of {change.target}")
                _try_on_node(change, target)


def _try_on_node(change: Change, target: Target) -> None:

    assert target.ids is not None
    one = nest().NodeCollection([int(target.ids[0])])
    old = node_status(one, change.key)
    try:
        set_node_status(one, [{change.key: change.value}])
    except Exception as exc:  # noqa: BLE001 - NEST raises its own types (and TypeError) for a value it refuses
        raise ProtocolError(f"{change}: NEST refuses it: {one_line(exc)}") from None
    set_node_status(one, [{change.key: old}])


def _try_on_connection(change: Change, target: Target) -> None:

    n = nest()
    conns = n.GetConnections(synapse_model=target.synapse_model)
    first = connection_handles(conns[0]) if len(conns) else []
    status = connection_status(first)[0] if first else dict(n.GetDefaults(target.synapse_model))
    _check(change, status, f"synapse model {target.synapse_model}")
    if not first:
        return
    try:
        set_connection_status(first, {change.key: change.value})
    except Exception as exc:  # noqa: BLE001 - NEST raises its own types (and TypeError) for a value it refuses
        raise ProtocolError(f"{change}: NEST refuses it: {one_line(exc)}") from None
    set_connection_status(first, {change.key: status[change.key]})


def apply(net: Network, change: Change) -> None:
    """Make one change now."""
    n = nest()
    target = resolve(net, change.target)
    with nest_output_to():
        if target.synapse_model:
            n.GetConnections(synapse_model=target.synapse_model).set({change.key: change.value})
        else:
            assert target.ids is not None
            n.NodeCollection(target.ids.tolist()).set({change.key: change.value})

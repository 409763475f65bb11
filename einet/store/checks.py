"""What a store refuses, and says it does not hold, decided from what the network is made of
before anything is read.
"""

from __future__ import annotations

import numpy as np

from ..kernel import nest, nest_output_to
from ..network import MEMORY, UNSUPPORTED_SYNAPSES, Network, check_restorable, probe_node_models, recorder_backends
from ..snapshot.model import GENERAL_NOT_STORED, CannotStoreError, Snapshot, SnapshotError
from .connections import CONNECTION_READ_ONLY, base_of, connection_counts
from .nodes import NODE_METADATA, json_checked


def check_storable(net: Network) -> None:
    """Refuse (:class:`~einet.snapshot.CannotStoreError`, one line) a network einet cannot
    store faithfully, from what it is made of, before anything is simulated: structural
    plasticity, compartmental models, synapse models NEST builds in pairs or that carry rates
    or currents (gap junctions, …), nodes created after einet's recorder, model calls holding
    values a snapshot cannot (a random Parameter). Reads no state and no connection; what only
    the state shows (a per-connection property that is not a number) a store still refuses."""
    with nest_output_to():
        probe_node_models(net)
        refuse_unsupported(net)
    for call in net.model_calls:
        json_checked(call, f"{call['op']} of {call['model']}")


def check_written(snap: Snapshot) -> None:
    """What einet writes, it can restore: the restore's own check against this NEST
    (:func:`~einet.network.check_restorable`, but for memory: this network is in it already),
    run on a captured snapshot before it is published."""
    try:
        check_restorable(snap, fits=False)
    except SnapshotError as exc:
        raise CannotStoreError(f"einet could not restore it: {exc}") from None


def refuse_unsupported(net: Network) -> None:
    n = nest()
    if n.GetKernelStatus("structural_plasticity_synapses"):
        raise CannotStoreError("structural plasticity is enabled: its synaptic elements and rewiring state cannot be stored faithfully")
    for model, (_, failed) in net.settable_nodes.items():
        if "compartments" in failed:
            raise CannotStoreError(f"{model}: compartmental models cannot be stored yet")
    if int(n.network_size) != net.last_id:
        raise CannotStoreError("nodes were created after einet's spike recorder: store before adding nodes by hand")
    for model in connection_counts():
        base = base_of(net, model)
        if base in UNSUPPORTED_SYNAPSES:
            raise CannotStoreError(f"{UNSUPPORTED_SYNAPSES[base]} ({model}) cannot be stored yet")


# -- what is not stored ------------------------------------------------------------------------
def not_stored_of(net: Network) -> list[str]:
    """What a snapshot of this network does not hold: the general limits, plus the read-only
    state of its node models and connections (known once probed)."""
    out = list(GENERAL_NOT_STORED)
    for model in net.settable_nodes:
        readonly = sorted(set(net.settable_nodes[model][1]) - NODE_METADATA)
        if readonly:
            out.append(f"{model}: {', '.join(readonly)} (NEST does not let them be set)")
    for model, (_, failed) in net.settable_synapses.items():
        readonly = sorted(set(failed) - CONNECTION_READ_ONLY)
        if readonly:
            out.append(f"{model} connections: {', '.join(readonly)} per connection (model-wide values come from the model's defaults)")
    return out + _recorder_notes(net)


def _recorder_notes(net: Network) -> list[str]:
    """One line per model and backend of the recorders that write elsewhere than to memory:
    a restore records to memory (it never makes NEST write a file), so their backend and its
    settings are in the snapshot for the record only."""
    ids, models, backends, labels = recorder_backends(net)
    out = []
    for model, backend in dict.fromkeys(zip(models.tolist(), backends.tolist())):
        if backend in (MEMORY, None):  # None: under MPI, a node of another rank
            continue
        mine = (models == model) & (backends == backend)
        named = ", ".join(sorted({str(label) for label in labels[mine] if label}))
        out.append(f"{model} {_id_list(ids[mine])}: recorded to {backend}{f' (label {named})' if named else ''}; a restore records to memory: the backend and its settings are kept for the record only")
    return out


def _id_list(ids: np.ndarray) -> str:
    shown = ", ".join(str(int(i)) for i in ids[:5])
    return f"node {shown}" if len(ids) == 1 else f"nodes {shown}{', …' if len(ids) > 5 else ''}"

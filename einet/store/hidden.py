"""The hidden section both ways (docs/hidden-state.md): taken by a store at its instant
(:func:`take_hidden`; a background store's forked child reads it with the accessor alone,
:func:`read_asked`, never through PyNEST; under MPI every rank reads its own part and rank 0
merges them) and written back by a restore (:func:`write_back`; under MPI each rank its own
part) when the snapshot was taken by this very NEST binary with as many virtual processes, in
any layout of ranks and threads.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging

import numpy as np

from ..accel.build import AccelUnavailable
from ..accel.library import installed, why_not
from ..accel.state import Hidden, Stdp, check_nodes, kernel_now, merge_hidden, read_hidden, read_hidden_of, state_library, unchecked, write_hidden
from ..kernel import nest, nest_output_to
from ..network import Network, base_models, first_nodes, node_kinds
from ..ranks import RankError, ranks
from ..snapshot.hidden import HIDDEN_NOT_STORED, HIDDEN_VERSION, KIND_OF_MODEL, LAST_SPIKE_BASES, STDP_BASES, STDP_ROW, TRANSIT, HiddenSection, hidden_base
from ..snapshot.model import FLOAT_DTYPE, GENERAL_NOT_STORED, ID_DTYPE, INT_DTYPE, Snapshot
from ..text import one_line
from ..traces import traces_of
from .connections import base_of
from .plan import STDP_RUN_KEYS, CapturePlan, HiddenAsked

log = logging.getLogger("einet")

COVERED_SYNAPSES = frozenset({"static_synapse", "static_synapse_hom_w", *LAST_SPIKE_BASES})
"""Synapse models without hidden state of their own, or with one the accessor reads."""
COVERED_DEVICES = frozenset({"poisson_generator", "dc_generator", "step_current_generator", "spike_generator"})
"""Devices whose hidden state (a Poisson distribution's cache) the accessor reads, or that have
none a run depends on (a current generator's output, and which of a spike generator's spikes it
sends, are a function of its parameters and the time: what it sent before the store waits in
its targets' buffers, which the accessor reads); recorders have none either."""

_said: set[str] = set()


class HiddenWriteFailed(Exception):
    """Writing the hidden state back failed after it had begun: the kernel must be rebuilt."""


def uncovered_models(net: Network, plan: CapturePlan) -> list[str]:
    """The network's node and synapse models whose hidden state einet cannot read."""
    kinds = node_kinds(net)
    out = []
    for model, first in first_nodes(net).items():
        kind = kinds[first]
        if base_of(net, model) not in KIND_OF_MODEL and base_of(net, model) not in COVERED_DEVICES and kind != "recorder":
            out.append(str(model))
    return out + [m.model for m in plan.models if m.count and hidden_base(base_of(net, m.model)) not in COVERED_SYNAPSES]


def take_hidden(plan: CapturePlan, *, in_child: bool = False) -> None:
    """Read the hidden state now (between two Simulate calls) into ``plan.hidden``, and say in
    ``plan.not_stored`` what of it stays lost. Without the accessor, or for a kernel it cannot
    read (another random generator type), the plan is left as it is: the store is today's, its
    general lines say what it lacks. Under MPI every rank calls it and reads its own part, and
    rank 0's plan gets the section; a rank that cannot read its part leaves every plan as it is.

    With ``in_child`` (one process only) only what PyNEST must tell is asked now, and the first
    node of each model not yet checked in this process is checked against NEST's status; a
    forked child reads the rest into ``plan.hidden`` with :func:`read_asked` (the memory it sees
    is this instant's). The pause of a background store then does not grow with the nodes."""
    r = ranks()
    failed: str | None = None
    try:
        asked = _ask(plan)
        if in_child:
            _check_first_nodes(plan.net, asked.uncovered)
            plan.hidden_asked = asked
        else:
            local = read_hidden(stdp=False)
    except AccelUnavailable as exc:
        failed = one_line(exc)
    if r.size > 1:
        failed = next((why for why in r.allgather(failed) if why is not None), None)
    if failed is not None:
        _say_once(f"hidden state not stored: {failed}", quiet="EINET_ACCEL=0" in failed)
        return
    if not in_child:
        parts = _gather_hidden(local) if r.size > 1 else [local]
        try:
            plan.hidden = _section(plan, asked, parts[0] if len(parts) == 1 else merge_hidden(parts)) if parts else None
        except AccelUnavailable as exc:
            _say_once(f"hidden state not stored: {one_line(exc)}")
            if r.is_root:  # the store is today's (the other ranks' plans make no snapshot)
                return
    plan.not_stored_without_hidden = plan.not_stored
    plan.not_stored = _not_stored(plan, asked.uncovered)
    # the plastic connections' t_lastspike (and an STDP model's exact Kplus) come with the
    # rest of each connection, by run, from the connection reader's typed path (one pass over
    # the connections, rows aligned with the synapse tables): finish() adds them to the section
    for m in plan.models:
        base = hidden_base(base_of(plan.net, m.model))
        if base in LAST_SPIKE_BASES:
            m.run_keys = [key for key in STDP_RUN_KEYS if base in STDP_BASES or key != "Kplus"]


def _gather_hidden(local: Hidden) -> list[Hidden]:
    """Every rank's part on rank 0, in rank order (none on the others): the records, the bulk
    of it, as arrays, the rest pickled."""
    r = ranks()
    (records,) = r.gather_arrays(local.records)
    parts = r.gather(dataclasses.replace(local, records=local.records[:0]))
    if parts is None:
        return []
    starts = np.cumsum([0, *(int(p.offsets[-1]) for p in parts)])
    return [dataclasses.replace(p, records=records[lo:hi]) for p, lo, hi in zip(parts, starts[:-1], starts[1:])]


def read_asked(plan: CapturePlan) -> None:
    """In a background store's child: the hidden state that :func:`take_hidden` asked for, read
    into ``plan.hidden`` by the accessor alone. Should that fail, the store is today's and
    says so (as a store whose hidden read failed in the pause would)."""
    asked, plan.hidden_asked = plan.hidden_asked, None
    if asked is None:
        return
    try:
        plan.hidden = _section(plan, asked, read_hidden_of(state_library(), asked.now))
    except AccelUnavailable as exc:
        _say_once(f"hidden state not stored: {one_line(exc)}")
        plan.hidden, plan.not_stored = None, plan.not_stored_without_hidden


def _ask(plan: CapturePlan) -> HiddenAsked:
    found = installed()
    state_library()
    n = nest()
    with nest_output_to():
        status = n.GetKernelStatus()
    return HiddenAsked(found, status, kernel_now(), uncovered_models(plan.net, plan))


def _check_first_nodes(net: Network, uncovered: list[str]) -> None:
    """Check the first node of each covered model not yet checked in this process (the checks
    need PyNEST; a forked child then reads the records unchecked)."""
    ids = [first + 1 for model, first in first_nodes(net).items() if model not in uncovered and base_of(net, model) in KIND_OF_MODEL and unchecked({base_of(net, model)})]
    if ids:
        check_nodes(np.array(ids, dtype=np.int64))


def split_stdp(plan: CapturePlan, model: str, keep: np.ndarray | None = None) -> dict[str, np.ndarray] | None:
    """A model's rows of the hidden section as the connection reader read them, by run, of the
    rows ``keep`` marks (all without): Kplus as NEST holds it, before ``finish`` refers the
    traces to the stored time. None for a model without them (not asked for, or read through
    PyNEST: then :func:`attach_stdp` drops the section)."""
    runs = plan.stdp_runs.pop(model, None)
    if runs is None:  # under MPI only rank 0 holds the section: every rank makes its rows
        return None
    if keep is not None:
        runs = runs.of_rows(keep)
    # a model without Kplus (Tsodyks') holds 0 there
    return {"runs": runs.start.astype(INT_DTYPE), **{key: runs.values[name].astype(FLOAT_DTYPE) if name in runs.values else np.zeros(len(runs.start) - 1, FLOAT_DTYPE) for key, name in zip(STDP_ROW, STDP_RUN_KEYS)}}


def attach_stdp(plan: CapturePlan, model: str, rows: dict[str, np.ndarray] | None) -> None:
    """Add a model's STDP rows (its synapse table's, as runs: :func:`split_stdp`) to the
    section; a model the store expected them for but could not read them of (read through
    PyNEST, or no typed reader) drops the whole section: the store is then today's, its lines
    say what it lacks."""
    if plan.hidden is None or hidden_base(base_of(plan.net, model)) not in LAST_SPIKE_BASES:
        return
    if rows is None or (len(rows["t_lastspike"]) and np.isnan(rows["t_lastspike"]).all()) or not np.isfinite(rows["kplus"]).all():
        # quiet when the connection reader was turned off: its own line says why
        _say_once(f"hidden state not stored: {model}'s last-spike times could not be read (connections were read through NEST's status)", quiet=why_not() is not None)
        plan.hidden, plan.not_stored = None, plan.not_stored_without_hidden
        return
    k = len(plan.hidden.meta["stdp"])
    plan.hidden.meta["stdp"].append({"model": model, "count": int(rows["runs"][-1]), "runs": len(rows["runs"]) - 1})
    plan.hidden.arrays.update({f"stdp/{k}/{key}": values for key, values in rows.items()})


def _section(plan: CapturePlan, asked: HiddenAsked, hidden: Hidden) -> HiddenSection:
    found, status = asked.found, asked.status
    res = float(status["resolution"])
    min_steps, max_steps = round(float(status["min_delay"]) / res), round(float(status["max_delay"]) / res)
    uncovered = asked.uncovered
    text = [t.encode("ascii") for t in hidden.rngs]
    meta = {
        "version": HIDDEN_VERSION,
        "nest_version": found.version,
        "nest_binary": found.digest,
        "t_ms": float(hidden.t_ms),
        "ranks": len(hidden.vps) // hidden.threads,
        "threads": int(hidden.threads),
        "step_in_interval": round(hidden.t_ms / res) % min_steps,
        "buffer_slots": _buffer_slots(hidden, min_steps + max_steps),
        "rng_type": text[0].split(b" ", 1)[0].decode(),
        "compressed_spikes": bool(status["use_compressed_spikes"]),
        "node_models": _node_counts(hidden),
        "n_records": len(hidden.records),
        "stdp": [],  # added by attach_stdp, from the connections read
        "rng_bytes": sum(len(t) for t in text),
        "devices_bytes": len(hidden.devices.encode("ascii")),
        "transit": len(hidden.transit["source"]),
        "uncovered": uncovered,
    }
    # the accessor's own arrays where their dtype is the file's (the records: MBs)
    arrays: dict[str, np.ndarray] = {"nodes/id": hidden.nodes.astype(ID_DTYPE), "nodes/offsets": hidden.offsets.astype(INT_DTYPE, copy=False), "nodes/records": hidden.records.astype(FLOAT_DTYPE, copy=False)}
    arrays["rng/text"] = np.frombuffer(b"".join(text), dtype=np.uint8).copy()
    arrays["rng/offsets"] = np.array([0, *np.cumsum([len(t) for t in text])], dtype=INT_DTYPE)
    arrays["devices/text"] = np.frombuffer(hidden.devices.encode("ascii"), dtype=np.uint8).copy()
    arrays |= {f"transit/{key}": hidden.transit[key].astype(ID_DTYPE) for key in TRANSIT}
    return HiddenSection(meta, arrays)


def _buffer_slots(hidden: Hidden, kernels: int) -> int:
    """The input buffers' length, as the records have them (NEST sized them at its last
    prepare; the kernel's status may have moved on), else the kernel's ``min + max_delay``."""
    slots = np.unique(hidden.records[hidden.offsets[:-1] + 2]) if len(hidden.nodes) else np.array([kernels])
    if len(slots) != 1:
        raise AccelUnavailable("the nodes' input buffers have different lengths")
    return int(slots[0])


def _node_counts(hidden: Hidden) -> dict[str, int]:
    from ..snapshot.hidden import MODEL_OF_KIND

    kinds = hidden.records[hidden.offsets[:-1]].astype(np.int64) if len(hidden.nodes) else np.empty(0, np.int64)
    return {MODEL_OF_KIND[int(k)]: int(c) for k, c in zip(*np.unique(kinds, return_counts=True))}


def _not_stored(plan: CapturePlan, uncovered: list[str]) -> list[str]:
    """The plan's not-stored lines with the hidden section's: the general lines on state NEST
    does not expose (and per model what a covered model's status reads but cannot set) go; one
    line names the models whose hidden state stays lost."""
    covered_nodes = {m for m in plan.net.settable_nodes if m not in uncovered}
    covered_stdp = {m.model for m in plan.models if hidden_base(base_of(plan.net, m.model)) in LAST_SPIKE_BASES}
    lost = GENERAL_NOT_STORED[:3]

    def kept(line: str) -> bool:
        if line in lost:
            return False
        if any(line.startswith(f"{m}: ") for m in covered_nodes):
            return False
        return not any(line.startswith(f"{m} connections: ") for m in covered_stdp)

    return [line for line in plan.not_stored if kept(line)] + ([HIDDEN_NOT_STORED.format(models=", ".join(uncovered))] if uncovered else [])


def _say_once(line: str, *, quiet: bool = False) -> None:
    if line not in _said:
        _said.add(line)
        (log.info if quiet else log.warning)(line)


# -- restore ------------------------------------------------------------------------------------
OTHER_VPS = "other virtual processes"


def why_not_written(snap: Snapshot) -> str | None:
    """Why the snapshot's hidden section cannot be written into the kernel just rebuilt from it
    (None: it can). Reads the kernel only: nothing is changed."""
    section = snap.hidden
    if section is None:
        return "the snapshot holds none"
    meta = section.meta
    try:
        found = installed()
        state_library()
    except AccelUnavailable as exc:
        return f"the accessor is not available ({one_line(exc)})"
    if found.digest != meta["nest_binary"]:
        return f"NEST binary differs (stored by NEST {meta['nest_version']} {meta['nest_binary'][:12]}…, this is {found.version} {found.digest[:12]}…)"
    bases = base_models(snap)
    traced = [m for m in meta["uncovered"] if traces_of(bases.get(m, m))]
    if traced:
        # their stored traces are referred to their sources' last spikes (einet.traces), which
        # the node records would move while the connections' own t_lastspike stays at 0
        return f"{', '.join(traced)} (no accessor) keeps traces the section's last spikes would shift"
    with nest_output_to():
        status = nest().GetKernelStatus()
    res = float(status["resolution"])
    min_steps = round(float(status["min_delay"]) / res)
    lags = section.arrays["transit/lag"]
    checks = [
        (int(status["total_num_virtual_procs"]) == meta["ranks"] * meta["threads"], f"{OTHER_VPS} ({status['total_num_virtual_procs']}, stored with {meta['ranks'] * meta['threads']})"),
        (not len(lags) or int(lags.max()) < min_steps, "spikes in transit at lags beyond the kernel's communication interval"),
        (round(float(status["biological_time"]) / res) % min_steps == meta["step_in_interval"], "the clock is at another place in the communication interval"),
        (str(status["rng_type"]) == meta["rng_type"], f"another random generator type ({status['rng_type']})"),
        (bool(status["use_compressed_spikes"]) == meta["compressed_spikes"], "use_compressed_spikes differs"),
    ]
    return next((why for ok, why in checks if not ok), None)


def hidden_of(snap: Snapshot, *, generators: bool) -> Hidden:
    """The accessor's form of a snapshot's validated section, every virtual process's; its
    STDP rows are the synapse tables' in their order, with the section's Kplus and
    t_lastspike."""
    section = snap.hidden
    assert section is not None
    a, meta = section.arrays, section.meta
    offsets, text = a["rng/offsets"], a["rng/text"].tobytes().decode("ascii")
    rngs = [text[lo:hi] for lo, hi in itertools.pairwise(offsets)] if generators else []
    transit = {key: a[f"transit/{key}"].astype(np.int64) for key in TRANSIT}
    tables = {t.model: t for t in snap.synapses}
    # the rows whose sources' spike history the section also restores: the others keep the
    # trace the rebuild gave them (referred to a last spike at 0, as their restored sources
    # report none): given their true last spike, a later store would refer the trace to the
    # wrong time (einet.traces) and lose it
    covered = np.zeros(int(a["nodes/id"].max(initial=0)) + 1, dtype=bool)
    covered[a["nodes/id"]] = True
    stdp = {}
    for k, e in enumerate(meta["stdp"]):
        table = tables[e["model"]]
        # the table's own rows (written a block at a time), the section's values by run
        kplus, t_lastspike = (a[f"stdp/{k}/{key}"].astype(np.float64) for key in STDP_ROW)
        stdp[e["model"]] = Stdp(table.source, table.target, kplus, t_lastspike, runs=a[f"stdp/{k}/runs"], covered=covered)
    n_vp = int(meta["ranks"]) * int(meta["threads"])
    return Hidden(float(meta["t_ms"]), int(meta["threads"]), a["nodes/id"].astype(np.int64), a["nodes/offsets"].astype(np.int64), a["nodes/records"].astype(np.float64), stdp, rngs, section.text("devices"), transit, list(range(n_vp)))


def write_back(snap: Snapshot, *, seed: int) -> tuple[bool, str, bool]:
    """Write the snapshot's hidden section into the kernel just rebuilt from it, if it fits:
    (whether the restored network is now the continued one; a note saying what was not
    written and why, or ''; whether that follows from what the restore was asked for, another
    seed or other virtual processes, rather than from something the user may not know of). A
    failure once writing began raises :class:`HiddenWriteFailed` (the kernel is then part
    written: rebuild it). Under MPI every rank calls it, and they agree on each outcome."""
    why = why_not_written(snap)
    if ranks().size > 1:
        why = next((w for w in ranks().allgather(why) if w is not None), None)
    if why is not None:
        return False, f"hidden state not restored: {why}", why.startswith(OTHER_VPS)
    assert snap.hidden is not None
    generators = seed == snap.seed
    try:
        write_hidden(hidden_of(snap, generators=generators))
    except (AccelUnavailable, RankError) as exc:
        raise HiddenWriteFailed(f"hidden state not restored: {one_line(exc)}") from None
    if not generators:
        return False, f"hidden state restored but the random generators (seed {seed} asks for another stream than the stored {snap.seed})", True
    if not snap.hidden.complete:
        return False, f"hidden state restored but for {', '.join(snap.hidden.meta['uncovered'])} (einet has no accessor for them)", False
    return True, "", False

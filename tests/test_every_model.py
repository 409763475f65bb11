"""Every node and synapse model of this NEST, in a small network of its own: built, run, stored,
restored and stored again, both snapshots equal, its connections read by the accelerator as
PyNEST reads them — or refused at store time with one line that names the model. A new NEST model that breaks a round trip fails here, not in a user's restore."""

from __future__ import annotations

from pathlib import Path

import pytest

from einet import NetworkConfig, Session
from einet.models import ModelBuildError
from einet.snapshot import SnapshotError, open_snapshot

from .conftest import assert_same_state
from .test_accel import assert_bulk_equals_pynest

MODEL = str(Path(__file__).parent / "models" / "any_model.py")

# Refused at store time, with the words the refusal must contain (the README's table).
REFUSED = {
    "cm_default": "compartmental models",
    "gap_junction": "gap junctions",
    "stdp_facetshw_synapse_hom": "init_flag is not a number",
}
# Models no network of this test can use: e-prop's synapses learn only inside their own
# training protocol (learning signals from readouts, eprop_synapse between eprop neurons with
# an optimizer), which a generic small network does not make.
NO_RECIPE = {"eprop_learning_signal_connection", "eprop_learning_signal_connection_bsshslm_2020", "eprop_synapse", "eprop_synapse_bsshslm_2020"}


def _kernel_models() -> tuple[list[str], list[str]]:
    from einet.kernel import builtin_models

    nodes, synapses = builtin_models()
    return sorted(nodes), sorted(synapses)


NODE_MODELS, SYNAPSE_MODELS = _kernel_models()
CASES = [("node_model", m) for m in NODE_MODELS] + [("synapse_model", m) for m in SYNAPSE_MODELS]


REHEARSE_EVERY = 8
"""One model in this many is restored over its live network, which rehearses the restore in a
fresh process first (NEST imported anew: most of this file's time when every model did it); the
others into a reset kernel, where nothing is rehearsed. The rehearsal runs the same restore, so
a sample of models keeps it covered."""


def round_trip(kind: str, model: str, folder: Path, rehearse: bool = True) -> tuple[str, str]:
    """("round trip" | "refused" | "no recipe", detail) for one model."""
    session = Session(NetworkConfig(model=MODEL, params={kind: model}, threads=1, t_sim_ms=20.0))
    try:
        session.build()
    except ModelBuildError as exc:
        if "NoRecipe" in str(exc):
            return "no recipe", str(exc)
        raise
    session.run()
    try:
        first = session.store(folder / "a.h5")
        assert_bulk_equals_pynest(session)  # the accelerator reads this model as PyNEST does
    except SnapshotError as exc:
        return "refused", str(exc)
    if not rehearse:
        session.reset()
    session.restore(folder / "a.h5")
    again = session.store(folder / "b.h5")
    assert first is not None and again is not None
    assert_same_state(first, again)
    assert_same_state(first, open_snapshot(folder / "b.h5"))
    session.run(10.0)  # and the restored network runs
    return "round trip", ""


@pytest.mark.parametrize(("kind", "model"), CASES, ids=[m for _, m in CASES])
def test_every_model_round_trips_or_is_refused_by_name(kind: str, model: str, tmp_path: Path) -> None:
    outcome, detail = round_trip(kind, model, tmp_path, rehearse=CASES.index((kind, model)) % REHEARSE_EVERY == 0)
    family = model.removesuffix("_hpc").removesuffix("_lbl")
    if outcome == "refused":
        assert family in REFUSED, f"{model} refused: {detail}"
        assert REFUSED[family] in detail and model in detail and "\n" not in detail
    elif outcome == "no recipe":
        assert family in NO_RECIPE, f"{model}: no test network ({detail})"
    else:
        assert family not in REFUSED, f"{model} is stored now: take it off the refused list"

"""How much of the continued run a restored run reproduces, for the suite's networks: of the
continued run's spikes in the first 200 ms after the store, the share the restored run (same
seed and threads) has from the same neuron within 1 ms, and whether the spikes are identical:
restored without the snapshot's hidden section (as every restore was before it, and is where
it cannot be written) and with it.

    .venv/bin/python benchmarks/fidelity.py
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from einet import NetworkConfig, Session

MODELS = ROOT / "tests" / "models"
NETWORKS = {
    "reference (scale 0.2)": ("einet.models.brunel_stdp", 0.2, 500.0),
    "adaptive": (str(MODELS / "adaptive.py"), 1.0, 300.0),
    "devices": (str(MODELS / "devices.py"), 1.0, 300.0),
    "spatial_copy": (str(MODELS / "spatial_copy.py"), 1.0, 300.0),
    "example_style": (str(MODELS / "example_style.py"), 1.0, 300.0),
    "rate (its spiking part)": (str(MODELS / "rate.py"), 1.0, 300.0),
    "clocked (deterministic)": (str(MODELS / "clocked.py"), 1.0, 100.0),
}


def matched(a_senders: np.ndarray, a_times: np.ndarray, b_senders: np.ndarray, b_times: np.ndarray, within_ms: float = 1.0) -> float:
    """Share of spikes of a with a spike of b from the same sender within ``within_ms``."""
    if not len(a_times):
        return 1.0
    hits = 0
    for sender in np.unique(a_senders):
        bt = np.sort(b_times[b_senders == sender])
        at = a_times[a_senders == sender]
        if not len(bt):
            continue
        i = np.clip(np.searchsorted(bt, at), 1, len(bt)) if len(bt) > 1 else np.zeros(len(at), int)
        nearest = np.minimum(np.abs(bt[np.clip(i, 0, len(bt) - 1)] - at), np.abs(bt[np.clip(i - 1, 0, len(bt) - 1)] - at))
        hits += int((nearest <= within_ms + 1e-9).sum())
    return hits / len(a_times)


def main() -> None:
    print("| network | stored at | continued spikes, first 200 ms | without the hidden section: matched within 1 ms | identical | with it: matched within 1 ms | identical | models without an accessor |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for name, (model, scale, t_store) in NETWORKS.items():
            s = Session(NetworkConfig(model=model, scale=scale, threads=2))
            s.build()
            s.run(t_store)
            path = Path(folder) / "f.h5"
            snap = s.store(path, overwrite=True)
            assert snap is not None
            continued = s.run(200.0)
            cells = []
            # the restore as it was before the hidden section (and is where it cannot be
            # written: MPI, another NEST, no compiler), then as it is
            for source in (dataclasses.replace(snap, hidden=None), path):
                s.restore(source)
                restored = s.run(200.0)
                share = matched(continued.senders, continued.times, restored.senders, restored.times)
                same = "yes" if continued.digest == restored.digest else "no"
                cells.append(f"{100 * share:.1f} % | {same + (', exact' if s.exact else '')}")
            uncovered = snap.hidden.meta["uncovered"] if snap.hidden is not None else ["(no hidden section)"]
            print(f"| {name} | {t_store:g} ms | {continued.n_spikes} | {' | '.join(cells)} | {', '.join(f'`{m}`' for m in uncovered)} |", flush=True)


if __name__ == "__main__":
    main()

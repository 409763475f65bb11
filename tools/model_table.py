"""The README's model table: every node and synapse model of this NEST through the walk of
tests/test_every_model.py (build a small network with it, run, store, restore, store again).

    .venv/bin/python tools/model_table.py
"""

from __future__ import annotations

import collections
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.test_every_model import CASES, round_trip  # noqa: E402


def main() -> None:
    outcomes: dict[tuple[str, str], list[str]] = collections.defaultdict(list)
    with tempfile.TemporaryDirectory() as folder:
        for kind, model in CASES:
            case = Path(folder) / model
            case.mkdir()
            try:
                outcome, detail = round_trip(kind, model, case)
            except Exception as exc:  # noqa: BLE001 - a table of outcomes, failures included
                outcome, detail = "FAILS", f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
            outcomes[(kind, outcome)].append(f"{model} ({detail})" if outcome != "round trip" else model)
    for kind in ("node_model", "synapse_model"):
        total = sum(len(v) for (k, _), v in outcomes.items() if k == kind)
        print(f"\n{kind.replace('_', ' ')}s: {total}")
        for (k, outcome), models in sorted(outcomes.items()):
            if k == kind:
                print(f"- {outcome}: {len(models)}" + ("" if outcome == "round trip" else ": " + "; ".join(models)))


if __name__ == "__main__":
    main()

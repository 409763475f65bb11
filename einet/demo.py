"""The five runs of NEST's store/restore example, as data shared by the CLI and the dashboard."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from .runs import RunResult

if TYPE_CHECKING:
    from .session import Session

OTHER_SEED = 987654321
"""The example's 'different seed'."""

Action = Literal["build", "store", "continue", "restore"]


@dataclass(frozen=True)
class DemoStep:
    action: Action
    label: str
    caption: str
    other_seed: bool = False


DEMO_STEPS: tuple[DemoStep, ...] = (
    DemoStep("build", "initial", "Build a fresh network (random V_m) and simulate: the initial run."),
    DemoStep("store", "", "Store every node's state and every connection (weights, delays, traces) to a snapshot."),
    DemoStep("continue", "continued", "Continue the same kernel: full state, including spikes in transit."),
    DemoStep("restore", "restored", "Reset the kernel, restore the snapshot and simulate from t = 0 with the same seed."),
    DemoStep("restore", "restored, same seed", "Again: same snapshot, same seed, same threads: spikes are identical."),
    DemoStep("restore", "restored, other seed", f"Again with seed {OTHER_SEED}: the Poisson drive changes, so spikes differ.", True),
)


def run_demo(session: Session, snapshot: str | Path, *, t_ms: float | None = None, on_caption: Callable[[DemoStep], None] | None = None, overwrite: bool = False, **run_kwargs: object) -> list[RunResult]:
    """Play the example's five runs in ``session``; the snapshot is written to ``snapshot``
    (an existing file is replaced only with ``overwrite``)."""
    results: list[RunResult] = []
    seed = session.config.seed
    for step in DEMO_STEPS:
        if on_caption is not None:
            on_caption(step)
        if step.action == "build":
            session.build()
        elif step.action == "store":
            session.store(snapshot, overwrite=overwrite)
            continue
        elif step.action == "restore":
            session.restore(snapshot, seed=OTHER_SEED if step.other_seed else seed)
        results.append(session.run(t_ms, label=step.label, **run_kwargs))  # type: ignore[arg-type]
    return results


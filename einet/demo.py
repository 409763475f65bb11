"""The five runs of NEST's store/restore example, as data shared by the CLI and the dashboard."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from .runs import RunResult

if TYPE_CHECKING:
    from .session import SessionLike

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
    DemoStep("restore", "restored", "Reset the kernel, restore the snapshot (with the state NEST hides, where einet can read it) and simulate on from the stored time with the same seed."),
    DemoStep("restore", "restored, same seed", "Again: same snapshot, same seed, same threads: spikes are identical."),
    DemoStep("restore", "restored, other seed", f"Again with seed {OTHER_SEED}: the Poisson drive changes, so spikes differ.", True),
)


class DemoPlayer(Protocol):
    """What plays the demo's steps: a Session here, the engine in the dashboard. Each step
    says whether it worked (False stops the demo; errors are the player's to report)."""

    def build(self) -> bool: ...
    def store(self, path: Path) -> bool: ...
    def restore(self, path: Path, seed: int) -> bool: ...
    def run(self, label: str) -> RunResult | None: ...


def play_demo(player: DemoPlayer, snapshot: Path, seed: int, *, on_step: Callable[[int, DemoStep], object] | None = None, stopped: Callable[[], bool] = lambda: False) -> tuple[list[RunResult], bool]:
    """Play :data:`DEMO_STEPS` (the one list the CLI and the dashboard's tour share); returns
    the runs made and whether every step completed."""
    results: list[RunResult] = []
    for i, step in enumerate(DEMO_STEPS):
        if stopped():
            return results, False
        if on_step is not None:
            on_step(i, step)
        if step.action == "build":
            ok = player.build()
        elif step.action == "store":
            if not player.store(snapshot):
                return results, False
            continue
        elif step.action == "restore":
            ok = player.restore(snapshot, OTHER_SEED if step.other_seed else seed)
        else:
            ok = True
        if not ok or stopped():
            return results, False
        result = player.run(step.label)
        if result is None:
            return results, False
        results.append(result)
        if result.cancelled:
            return results, False
    return results, True


class _SessionPlayer:
    def __init__(self, session: SessionLike, t_ms: float | None, overwrite: bool, run_kwargs: dict[str, object]) -> None:
        self.session, self.t_ms, self.overwrite, self.run_kwargs = session, t_ms, overwrite, run_kwargs

    def build(self) -> bool:
        self.session.build()
        self.session.check_storable()  # the demo stores after its first run: refused now, not then
        return True

    def store(self, path: Path) -> bool:
        self.session.store(path, overwrite=self.overwrite)
        return True

    def restore(self, path: Path, seed: int) -> bool:
        self.session.restore(path, seed=seed)
        return True

    def run(self, label: str) -> RunResult:
        return self.session.run(self.t_ms, label=label, **self.run_kwargs)  # type: ignore[arg-type]


def run_demo(session: SessionLike, snapshot: str | Path, *, t_ms: float | None = None, on_caption: Callable[[DemoStep], None] | None = None, overwrite: bool = False, **run_kwargs: object) -> list[RunResult]:
    """Play the example's five runs in ``session``; the snapshot is written to ``snapshot``
    (an existing file is replaced only with ``overwrite``). Errors raise."""
    results, _ = play_demo(_SessionPlayer(session, t_ms, overwrite, run_kwargs), Path(snapshot), session.config.seed, on_step=None if on_caption is None else lambda i, step: on_caption(step))
    return results

"""The session verbs the CLI uses (build, run, store, restore), served by an engine process:
how ``einet run/restore/demo --ranks N`` drive an MPI job from a plain Python process.
Nothing here imports NEST."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import NetworkConfig
from ..protocol import Change
from ..runs import RunResult, StepUpdate
from ..snapshot import Snapshot
from .client import Engine
from .launch import MpiLaunch
from .protocol import Message, result_from_message

StepCallback = Callable[[StepUpdate], None]
TIMEOUT_S = 24 * 3600.0  # a long run is not a hang: the engine's heartbeats tell those apart


class RemoteSession:
    """A :class:`~einet.session.Session` in an engine process (an MPI job with ``mpi``).

    Use as a context manager: the engine starts on entry and is shut down on exit.
    """

    def __init__(self, config: NetworkConfig | None = None, *, mpi: MpiLaunch | None = None) -> None:
        self.config = config or NetworkConfig()
        self.engine = Engine(mpi=mpi, on_event=self._event)
        self._on_step: StepCallback | None = None

    def __enter__(self) -> RemoteSession:
        self.engine.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.engine.close()

    def _event(self, msg: Message) -> None:
        on_step = self._on_step
        if msg.kind == "frame" and on_step is not None:
            on_step(
                StepUpdate(
                    float(msg["t_ms"]),
                    float(msg["t_start_ms"]),
                    float(msg["t_stop_ms"]),
                    msg.arrays["senders"],
                    msg.arrays["times"],
                    int(msg["n_spikes_total"]),
                    float(msg["rate_hz"]),
                    msg.arrays.get("groups"),
                )
            )

    def build(self, config: NetworkConfig | None = None) -> None:
        if config is not None:
            self.config = config
        self.engine.build(self.config, TIMEOUT_S)

    def check_storable(self) -> None:
        """See :meth:`einet.session.Session.check_storable`."""
        self.engine.check_storable(TIMEOUT_S)

    def run(self, t_ms: float | None = None, *, label: str | None = None, on_step: StepCallback | None = None, **_: Any) -> RunResult:
        """Simulate (the engine chooses its step lengths); frames reach ``on_step``."""
        self._on_step = on_step
        try:
            ack = self.engine.run(self.config.t_sim_ms if t_ms is None else t_ms, label, timeout_s=TIMEOUT_S)
        finally:
            self._on_step = None
        return result_from_message(ack)

    def store(self, path: str | Path, *, overwrite: bool = False, **_: Any) -> None:
        self.engine.store(Path(path).absolute(), overwrite=overwrite, timeout_s=TIMEOUT_S)

    def restore(self, source: str | Path | Snapshot, *, seed: int | None = None, threads: int | None = None, changes: tuple[Change, ...] = ()) -> None:
        path = source.source_path if isinstance(source, Snapshot) else str(source)
        self.engine.restore(Path(path).absolute(), seed=seed, threads=threads, changes=changes, timeout_s=TIMEOUT_S)
        self.config = self.config.replace(seed=seed) if seed is not None else self.config

    def reset(self) -> None:
        self.engine.reset(TIMEOUT_S)

"""The demo tour: the example's five runs, played through the dashboard's engine.

The steps run on a worker thread (each waits for the engine) and tell the UI thread how far
they got with messages. The restores need the snapshot's file, written in the background
after the store's reply: the tour waits for the store to end on a condition the UI thread
signals, and Escape signals it too, so a stopped tour never sits out a store.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from textual.message import Message

from einet.demo import DEMO_STEPS, DemoPlayer, DemoStep, play_demo
from einet.runs import RunResult

from .messages import TourCaption, TourEnded

STORE_WAIT_S = 600.0
"""The longest a tour (or quitting) waits for a background store."""


class Tour:
    """Plays the demo with ``engine``'s steps (whose ``store`` returns once the state is
    taken); ``store_busy`` says whether a snapshot is still being written."""

    def __init__(self, engine: DemoPlayer, store_busy: Callable[[], bool], post: Callable[[Message], object]) -> None:
        self._engine = engine
        self._store_busy = store_busy
        self._post = post
        self._changed = threading.Condition()
        self._stopped = False

    def start(self) -> None:
        """(UI thread, before :meth:`play`.) Here, not on the worker: an Escape pressed before
        the worker runs still stops this play."""
        with self._changed:
            self._stopped = False

    def play(self, folder: Path, seed: int) -> None:
        """(Worker thread.) One play, into a new snapshot in ``folder``; ends with ``TourEnded``."""
        path = folder / datetime.now().strftime("demo-%Y%m%d-%H%M%S.h5")
        folder.mkdir(parents=True, exist_ok=True)
        complete = False
        try:
            _, complete = play_demo(self, path, seed, on_step=self._step, stopped=self.stopped)
        finally:
            self._post(TourEnded(complete))

    def stop(self) -> None:
        with self._changed:
            self._stopped = True
            self._changed.notify_all()

    def stopped(self) -> bool:
        return self._stopped

    def store_ended(self) -> None:
        """(UI thread.) A store ended: published, failed, or lost with the engine."""
        with self._changed:
            self._changed.notify_all()

    def _step(self, i: int, step: DemoStep) -> None:
        self._post(TourCaption(f"[{i + 1}/{len(DEMO_STEPS)}] {step.caption}"))

    # the demo's steps (DemoPlayer), on the worker thread
    def build(self) -> bool:
        return self._engine.build()

    def store(self, path: Path) -> bool:
        if not self._engine.store(path):
            return False
        with self._changed:
            self._changed.wait_for(lambda: self._stopped or not self._store_busy(), timeout=STORE_WAIT_S)
        return path.exists()

    def restore(self, path: Path, seed: int) -> bool:
        return self._engine.restore(path, seed)

    def run(self, label: str) -> RunResult | None:
        return self._engine.run(label)

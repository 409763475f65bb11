"""Where this session's runs came from and which of them are the same: the dashboard's run
bookkeeping, kept apart from drawing and threads so its rules are tested on their own (no
NEST, no Textual).

Two facts arrive out of order. A store's reply says at what time the state was taken, and so
which run's end state the file holds; the ``stored`` event says the file is published. Under
MPI the file is out before the reply, so either may come first, and the history learns of the
snapshot only when both are in.
"""

from __future__ import annotations

from dataclasses import dataclass

from einet.analysis import identical_to
from einet.history import HistoryRun
from einet.runs import RunResult


@dataclass(frozen=True)
class LastStore:
    """The last store from the kernel as it is now: a run that goes on from exactly this state
    is the one a run restored from ``path`` is compared with."""

    path: str
    t_ms: float
    run: int | None
    """The run whose end state the file holds (None: a state taken mid-run, or of no run)."""


class RunLedger:
    """This session's runs, where each came from, and the first run with the same spikes."""

    def __init__(self) -> None:
        self.runs: list[RunResult] = []
        self.same_as: list[str] = []
        """Per run: "run K" or "hID" (an earlier session's), the first run with its spikes; or ""."""
        self.history_ids: list[int | None] = []
        """Per run: its id in the history (None: not recorded, or not yet)."""
        self.continued_from: dict[str, int] = {}
        """Snapshot → the run that went on from the state it holds."""
        self.unstored = False
        """The kernel ran since its state was last stored."""
        self.earlier: list[HistoryRun] = []
        """Earlier sessions' runs, as the history lists them."""
        self.earlier_same: dict[int, int] = {}
        """Earlier run's id → id of the first run with its digest."""
        self._on_kernel: list[int] = []  # runs of this session whose end states the kernel went through
        self._last_store: LastStore | None = None
        self._writing: dict[str, int] = {}  # snapshot whose reply came first → the run it holds
        self._published: set[str] = set()  # snapshots published before their store's reply

    def next_label(self, snapshot: str, t_ms: float) -> str:
        """A run's default label; the first run of a freshly restored kernel says so."""
        restored = bool(snapshot) and not self._on_kernel and t_ms == 0
        return f"run {len(self.runs) + 1}" + (" (restored)" if restored else "")

    def add(self, result: RunResult) -> int:
        """A run ended; returns its index."""
        index = len(self.runs)
        self.runs.append(result)
        self.history_ids.append(None)
        last = self._last_store
        if result.origin.kind == "continued" and last is not None and self._on_kernel and last.run == self._on_kernel[-1] and result.t_start_ms == last.t_ms:
            self.continued_from[last.path] = index
        self._on_kernel.append(index)
        self.unstored = True
        first = self.identical()[-1]
        self.same_as.append("" if first is None else f"run {first + 1}")
        return index

    def identical(self) -> list[int | None]:
        """Per run, the first run of this session with identical spikes (None: the first)."""
        return identical_to([r.digest for r in self.runs])

    def new_kernel(self) -> None:
        """After a build, reset or restore no run of this session is on the kernel."""
        self._on_kernel = []
        self._last_store = None

    def engine_died(self) -> None:
        """The kernel is gone, and the files its stores were writing with it."""
        self.new_kernel()
        self._writing.clear()

    def store_taken(self, path: str, t_ms: float) -> int | None:
        """The store's reply: the state at ``t_ms`` was taken. Returns the run whose end state
        the file holds once it is also published (the history notes it then), else None."""
        self.unstored = False
        run = self._on_kernel[-1] if self._on_kernel and self.runs[self._on_kernel[-1]].t_stop_ms == t_ms else None
        self._last_store = LastStore(path, t_ms, run)
        if run is None:
            return None
        if path in self._published:
            self._published.discard(path)
            return run
        self._writing[path] = run
        return None

    def store_published(self, path: str) -> int | None:
        """The file is out. Returns the run whose end state it holds once the reply is also in."""
        if path in self._writing:
            return self._writing.pop(path)
        self._published.add(path)
        return None

    def store_failed(self, path: str) -> None:
        self._writing.pop(path, None)

    def recorded(self, index: int, history_id: int | None, earlier: HistoryRun | None) -> bool:
        """The history recorded run ``index``; ``earlier`` is an earlier session's run with its
        spikes. Returns whether the run is now named the same as that one (none of this
        session's runs was)."""
        self.history_ids[index] = history_id
        if earlier is None or self.same_as[index]:
            return False
        self.same_as[index] = f"h{earlier.id}"
        return True

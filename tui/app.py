"""The einet dashboard: run, store, reset, restore and rerun NEST's balanced network live.

NEST runs in the engine process (``einet.engine``); this process only draws. The app holds the
wiring: keys to engine commands (on worker threads), engine events to state. Engine events
arrive on the engine's reader thread: frames go into a bounded accumulator (``LiveRun``) that
the main screen draws from on a timer, everything else is posted as a typed message. What the
runs were is the ledger's (``ledger``), the history file is written on its own thread
(``history_io``), the demo tour plays on a worker (``tour``), and the main screen draws.
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import ClassVar, Protocol

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from einet.checkpoints import DEFAULT_KEEP
from einet.children import STOP_GRACE_S
from einet.config import NetworkConfig
from einet.engine import Engine, EngineError, Message, result_from_message
from einet.engine.client import EventCallback, default_log_dir
from einet.engine.launch import MpiLaunch
from einet.engine.protocol import EngineState, weights_from
from einet.history import history_path
from einet.runs import Group, RunResult
from einet.text import one_line, visible
from einet.trials.plan import new_set_id

from .checkpoints import RunCheckpoints
from .history_io import HistoryIO
from .ledger import RunLedger
from .live import LiveRun
from .main_screen import MainScreen
from .markup import escape, textual_escape
from .messages import CheckpointDue, EngineDied, EngineStatus, HistoryOpened, NestLog, NetworkChanged, OpProgress, RunRecorded, StateChanged, Stored, StoreFailed, TourCaption, TourEnded, TrialsProgress, from_engine
from .screens import CompareScreen, ConfirmScreen, HelpScreen, RestoreScreen, SeedScreen, StoreScreen
from .tour import STORE_WAIT_S, Tour
from .trials import TrialsDialog, TrialsScreen, run_set
from .trials_book import TrialsBook, TrialsRequest

RESTORE_TOAST_ITEMS = 3
"""What a restore's toast names of the state not restored (the help lists it all): a longer
toast reached down over the run table."""


class EngineClient(Protocol):
    """What the dashboard asks of its engine: :class:`einet.engine.Engine`'s typed commands
    and life cycle, its events through ``on_event``. Tests give a scripted one."""

    on_event: EventCallback | None
    ranks: int

    @property
    def pid(self) -> int | None: ...
    def start(self, timeout_s: float = ...) -> Message: ...
    def close(self, timeout_s: float = ..., *, abandon_store: bool = ...) -> None: ...
    def kill(self, reason: str = ...) -> None: ...
    def build(self, config: NetworkConfig, timeout_s: float | None = ...) -> Message: ...
    def run(self, t_ms: float, label: str | None = ..., *, continued: bool = ..., timeout_s: float | None = ...) -> Message: ...
    def store(self, path: str | Path, *, overwrite: bool = ..., background: bool = ..., timeout_s: float | None = ...) -> Message: ...
    def restore(self, path: str | Path, *, seed: int | None = ..., threads: int | None = ..., timeout_s: float | None = ...) -> Message: ...
    def reset(self, timeout_s: float | None = ...) -> Message: ...
    def ping(self, timeout_s: float | None = ...) -> Message: ...
    def pause(self, timeout_s: float | None = ...) -> Message: ...
    def resume(self, timeout_s: float | None = ...) -> Message: ...
    def cancel(self, timeout_s: float | None = ...) -> Message: ...


class EinetApp(App[int]):
    """The dashboard. ``config`` is the network built at start (unless ``restore`` is given);
    runs are recorded in the history next to the snapshots (``EINET_HISTORY`` overrides).
    ``engine`` replaces the NEST engine process the app otherwise starts (its events are
    sent to the app)."""

    TITLE = "einet"
    CSS_PATH = "einet.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "run_pause", "Run/Pause", id="run-pause"),
        Binding("c", "continue_run", "Continue", id="continue"),
        Binding("b", "build", "Build", id="build"),
        Binding("s", "store", "Store", id="store"),
        Binding("r", "reset", "Reset", id="reset"),
        Binding("l", "restore", "Restore", id="restore"),
        Binding("n", "rerun_seed", "Seed rerun", id="rerun-seed"),
        Binding("v", "compare", "Compare", id="compare"),
        Binding("t", "trials", "Trials", id="trials"),
        Binding("p", "next_population", "Population", id="next-population"),
        Binding("w", "next_weights", "Weights of", id="next-weights"),
        Binding("d", "demo", "Demo", id="demo"),
        Binding("escape", "stop", "Stop", id="stop"),
        Binding("question_mark", "help", "Help", id="help"),
        Binding("q", "quit", "Quit", id="quit"),
    ]

    def __init__(
        self,
        config: NetworkConfig | None = None,
        *,
        snapshot_dir: Path = Path("snapshots"),
        restore: Path | None = None,
        marker: str = "braille",
        log_dir: Path | None = None,
        mpi: MpiLaunch | None = None,
        history: Path | None = None,
        record: bool = True,
        checkpoints: RunCheckpoints | None = None,
        engine: EngineClient | None = None,
    ) -> None:
        super().__init__()
        self.checkpoints = checkpoints
        self.config = config or NetworkConfig()
        self.snapshot_dir = snapshot_dir
        self.restore_at_start = restore
        self.marker = marker
        self.engine: EngineClient = engine if engine is not None else Engine(log_dir=log_dir, mpi=mpi)
        self.engine.on_event = self._from_engine
        self.engine_status = EngineStatus()
        self.live = LiveRun()
        self.ledger = RunLedger()
        self.history_io = HistoryIO(history or history_path(snapshot_dir), self.post_message)
        self.record = record
        self.tour = Tour(DemoSteps(self), lambda: bool(self.store_busy), self.post_message)
        self.touring = False
        self.main = MainScreen()
        self.busy_op = ""  # an operation's progress, for the status line
        self.current_snapshot = ""
        self.groups: tuple[Group, ...] = ()
        self.group_index = 0
        self.weight_models: list[str] = []
        self.weight_index = 0
        self.not_stored: list[str] = []
        self.store_busy = ""  # name of the snapshot a background store is writing
        self.store_progress = 0.0
        self.log_dir = Path(log_dir) if log_dir is not None else default_log_dir()
        self.trial_sets: dict[str, TrialsBook] = {}
        """Every set of trials of this session, by id (the newest state of each)."""
        self.trials_running = ""  # the set of trials running now ('' for none)
        self._trials_cancel = threading.Event()

    def get_default_screen(self) -> Screen:
        return self.main

    def on_ready(self) -> None:
        """Only once the main screen is up: what the engine and the history report is drawn there."""
        if self.record:
            self.history_io.open()
        self.boot()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A worker's unexpected exception reaches the user (``exit_on_error=False`` would
        otherwise drop it silently)."""
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            error = event.worker.error
            name, why = type(error).__name__, one_line(error)
            text = name if why == name else f"{name}: {why}"
            self.notify(textual_escape(text), severity="error", title="unexpected error")
            self.main.log_line(f"[red]unexpected error in {escape(event.worker.name or 'a worker')}: {escape(text)}[/]")

    # -- engine plumbing -----------------------------------------------------------------
    def _from_engine(self, event: Message) -> None:
        """Runs on the engine's reader thread: frames into the accumulator, the rest as
        typed messages to the UI thread."""
        if event.kind == "frame":
            weights = weights_from(event.get("weight_models", []), event.arrays)
            self.live.add_frame(event.fields, event.arrays["senders"], event.arrays["times"], event.arrays.get("groups"), weights or None)
            if self.checkpoints is not None and (due := self.checkpoints.due(float(event.fields["t_ms"]))) is not None:
                self.post_message(CheckpointDue(due))
            return
        try:
            message = from_engine(event)
        except (KeyError, TypeError, ValueError) as exc:  # the reader thread must live on
            self.post_message(NestLog([f"einet: an engine event '{event.kind}' was malformed ({exc!r}); ignored"]))
            return
        if message is not None:
            self.post_message(message)

    @on(StateChanged)
    def state_changed(self, message: StateChanged) -> None:
        self.engine_status = message.status
        self.refresh_bindings()
        self.main.show_intro()
        self.main.show_status()

    @on(NetworkChanged)
    def network_changed(self, message: NetworkChanged) -> None:
        self.groups = message.groups
        self.weight_models = message.weight_models
        self.not_stored = message.not_stored
        self.group_index = min(self.group_index, max(0, len(self.groups) - 1))
        self.weight_index = min(self.weight_index, max(0, len(self.weight_models) - 1))
        self.live.set_groups(self.groups, self.group_index)
        self.main.show_intro()
        self.main.show_status()

    @on(NestLog)
    def nest_log(self, message: NestLog) -> None:
        for line in message.lines[-50:]:
            self.main.log_line(f"[dim]nest[/] {escape(line)}")

    @on(OpProgress)
    def op_progress(self, message: OpProgress) -> None:
        if message.op == "store" and self.store_busy:
            self.store_progress = message.fraction
        else:
            self.busy_op = f"{message.op} {100 * message.fraction:.0f}%"
        self.main.show_status()

    @on(Stored)
    def stored(self, message: Stored) -> None:
        r = message.report
        self._store_ended()
        self.notify(f"stored {textual_escape(r.path.name)} ({r.bytes / 1e6:.1f} MB, t = {r.t_stored_ms:g} ms; simulation paused {1000 * r.pause_s:.0f} ms)", title="store")
        how = "in the background" if r.background else "by every MPI rank (ranks store in the foreground)"
        self.main.log_line(f"stored {escape(str(r.path))} in {r.seconds:.1f} s {how} (pause {1000 * r.pause_s:.0f} ms, reading {r.capture_s:.1f} s, writing {r.write_s:.1f} s)")
        run = self.ledger.store_published(str(r.path))
        if run is not None:
            self.history_io.note_stored(run, r.path)
        if self.checkpoints is not None and r.path.parent == self.checkpoints.folder:
            for old in self.checkpoints.rotate(r.path):
                self.main.log_line(f"removed checkpoint {escape(old.name)} (keeping the newest {self.checkpoints.keep})")
        self.refresh_bindings()
        self.main.show_status()

    @on(CheckpointDue)
    def checkpoint_due(self, message: CheckpointDue) -> None:
        if self.store_busy:  # one store at a time: the run is not held up for a checkpoint
            self.main.log_line(f"checkpoint {escape(message.path.name)} skipped: {escape(self.store_busy)} is still being written")
            return
        self.store_busy = message.path.name  # before the worker starts: the next one due sees it
        self.run_worker(lambda: self.store_snapshot(message.path), thread=True, group="cmd", exit_on_error=False)

    @on(StoreFailed)
    def store_failed(self, message: StoreFailed) -> None:
        self._store_ended()
        self.ledger.store_failed(str(message.path))
        self.current_snapshot = "" if self.current_snapshot == str(message.path) else self.current_snapshot
        self.notify(textual_escape(message.text), severity="error", title="store failed")
        self.main.log_line(f"[red]{escape(message.text)}[/]")
        self.refresh_bindings()
        self.main.show_status()

    @on(EngineDied)
    def engine_died(self, message: EngineDied) -> None:
        self.engine_status = EngineStatus(EngineState.DEAD)
        self.ledger.engine_died()
        if self.store_busy:
            self.main.log_line(f"[red]the store of {escape(self.store_busy)} was lost with the engine[/]")
        self._store_ended()
        self.notify(f"{textual_escape(message.reason)}; starting a fresh engine (empty kernel)", severity="error", title="engine")
        self.main.log_line(f"[red]engine: {escape(message.reason)}[/]")
        self.refresh_bindings()
        self.boot(build=False)

    @work(thread=True, exclusive=True, group="boot", exit_on_error=False)
    def boot(self, build: bool = True) -> None:
        try:
            ready = self.engine.start()
        except EngineError as exc:
            self.call_from_thread(self.notify, textual_escape(str(exc)), severity="error", title="engine")
            return
        self.call_from_thread(self.main.log_line, f"engine pid {ready['pid']}, NEST {ready['nest_version']}, log {escape(str(ready['log']))}")
        if not build:
            return
        if self.restore_at_start is not None:
            self.restore_snapshot(self.restore_at_start)
        else:
            self.build_network()

    # -- engine commands (worker threads) ------------------------------------------------
    # Each asks the engine, waits for its reply and hands what it changes to the UI thread;
    # the keys' actions and the demo tour's steps (``DemoSteps``) use them.
    def _call(self, op: str, command: Callable[[], Message]) -> Message | None:
        """Run one of the engine's commands and wait (worker threads only); failures become
        notifications naming ``op``."""
        try:
            return command()
        except EngineError as exc:
            self.call_from_thread(self.notify, textual_escape(str(exc)), severity="error", title=f"{op} failed")
            self.call_from_thread(self.main.log_line, f"[red]{op} failed: {escape(str(exc))}[/]")
            return None

    def build_network(self) -> bool:
        ack = self._call("build", lambda: self.engine.build(self.config))
        if ack is not None:
            self.call_from_thread(self.ledger.new_kernel)
        return ack is not None

    def run_network(self, label: str | None = None, t_ms: float | None = None, op: str = "run") -> RunResult | None:
        t_ms = self.config.t_sim_ms if t_ms is None else t_ms
        status = self.engine_status
        label = label or self.ledger.next_label(status.snapshot, status.t_ms)
        self.live.reset(label, status.t_ms, status.t_ms + t_ms)
        if self.checkpoints is not None:
            folder = self.checkpoints.start(label, status.t_ms, status.t_ms + t_ms)
            self.call_from_thread(self.main.log_line, f"checkpoints every {self.checkpoints.every_ms:g} ms into {escape(str(folder))} (after a crash: einet resume {escape(str(folder))})")
        ack = self._call(op, lambda: self.engine.run(t_ms, label, continued=op == "continue"))
        if ack is None:
            return None
        result = result_from_message(ack)
        if self.checkpoints is not None:
            self.checkpoints.finish(result)
        self.call_from_thread(self.add_result, result)
        return result

    def store_snapshot(self, path: Path) -> bool:
        """Store in the background: the engine takes the state at its next step boundary (a
        run goes on) and a forked process writes the file; ``Stored`` reports the end."""
        self.call_from_thread(self._store_started, path.name)
        ack = self._call("store", lambda: self.engine.store(path, background=True))
        self.call_from_thread(self._store_taken, path, ack)
        return ack is not None

    def restore_snapshot(self, path: Path, seed: int | None = None) -> bool:
        ack = self._call("restore", lambda: self.engine.restore(path, seed=seed))
        if ack is not None:
            self.call_from_thread(self._restored, path, ack)
        return ack is not None

    def _rerun(self, path: Path, seed: int) -> None:
        if self.restore_snapshot(path, seed):
            self.run_network(f"restored, seed {seed}")

    # -- what the commands' replies change (UI thread) -----------------------------------
    def add_result(self, result: RunResult) -> None:
        index = self.ledger.add(result)
        same_as = self.ledger.same_as[index]
        self.main.show_table()
        note = f" — identical to {same_as}" if same_as else ""
        self.main.log_line(f"{escape(result.label)}: {result.n_spikes} spikes, {result.rate_hz:.1f} Hz, digest {result.short_digest}{note}")
        self.history_io.record(index, result)
        self.live.finish(result.label, result.t_start_ms)
        self.main.draw_idle()
        self.main.show_intro()
        self.refresh_bindings()

    def _store_started(self, name: str) -> None:
        self.store_busy = name
        self.store_progress = 0.0
        self.refresh_bindings()
        self.main.show_status()

    def _store_taken(self, path: Path, ack: Message | None) -> None:
        if ack is None:
            self._store_ended()
        else:
            t = float(ack["t_stored_ms"])
            self.current_snapshot = str(path)
            run = self.ledger.store_taken(str(path), t)
            if run is not None:
                self.history_io.note_stored(run, path)
            self.main.log_line(f"storing {escape(path.name)} (state at t = {t:g} ms taken in {1000 * float(ack['pause_s']):.0f} ms)")
            if ack.get("background") and not ack.get("free_cores", 1) and self.engine_status.state.simulating:
                self.main.log_line("NEST's threads use every core: the store reads at idle priority, so mostly once the run stops")
        self.refresh_bindings()
        self.main.show_status()

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information", timeout: float | None = None, markup: bool = True) -> None:
        """One toast at a time, over the raster's top right: stacked, they reached down over
        the run table; the newest replaces the last. Textual adds a
        toast when it handles the message ``notify`` posts: the clearing is queued before it."""
        self.call_later(self.clear_notifications)
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    def _store_ended(self) -> None:
        """No store is being written any more (published, failed, or lost with the engine)."""
        self.store_busy = ""
        self.tour.store_ended()

    def _restored(self, path: Path, ack: Message) -> None:
        self.ledger.new_kernel()
        self.current_snapshot = str(path)
        self.main.log_line(f"restored {escape(path.name)} (stored at t = {ack['t_stored_ms']:g} ms), seed {ack['seed']}, threads {ack['threads']}")
        # whether a run from here is the continued run (the hidden state written back whole),
        # and if not, why: the user cannot tell it from the spikes of one run
        exact, note = bool(ack.get("exact")), str(ack.get("hidden_note") or "")
        if exact:
            self.main.log_line("[green]exact: a run from here is the run the stored one would have continued, bit for bit[/]")
        elif note:
            self.main.log_line(escape(note))
        missing = [line.split(" (")[0] for line in ack.get("not_stored", [])]
        shown = "; ".join(missing[:RESTORE_TOAST_ITEMS]) + (f"; {len(missing) - RESTORE_TOAST_ITEMS} more" if len(missing) > RESTORE_TOAST_ITEMS else "")
        body = "not restored: " + textual_escape(shown) + " — ? lists all" if missing else "nothing left out"
        self.notify(("exact: the continued run. " if exact else "") + body, title=f"restored {visible(path.name)}", timeout=6)
        self.main.show_status()

    # -- the history (its thread's replies) ----------------------------------------------
    @on(HistoryOpened)
    def history_opened(self, message: HistoryOpened) -> None:
        self.ledger.earlier, self.ledger.earlier_same = message.earlier, message.same
        if message.warning:
            self.notify(textual_escape(message.warning), severity="warning", title="history", timeout=8)
            self.main.log_line(f"[yellow]{escape(message.warning)}[/]")
        elif message.earlier:
            self.main.log_line(f"{len(message.earlier)} runs of earlier sessions from {escape(str(self.history_io.path))} (#hN; einet history lists all)")
        self.main.show_table()

    @on(RunRecorded)
    def run_recorded(self, message: RunRecorded) -> None:
        if message.warning and message.run_id is None:
            self.notify(textual_escape(message.warning), severity="warning", title="history", timeout=8)
            self.main.log_line(f"[yellow]{escape(message.warning)}[/]")
        earlier = message.earlier
        if self.ledger.recorded(message.index, message.run_id, earlier) and earlier is not None:
            self.main.log_line(f"{escape(self.ledger.runs[message.index].label)} is identical to h{earlier.id}, {escape(earlier.label)} of {escape(earlier.recorded_at)} (an earlier session)")
            self.main.show_table()

    # -- which keys apply ----------------------------------------------------------------
    @property
    def group(self) -> Group | None:
        return self.groups[self.group_index] if self.groups else None

    @property
    def weight_model(self) -> str:
        return self.weight_models[self.weight_index] if self.weight_models else ""

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        state = self.engine_status.state
        if self.screen is not self.main:
            # dialogs and the compare view have their own keys; the app's stay out of the way
            return action in ("quit", "help")
        idle = state.idle and not self.touring
        built = state == EngineState.BUILT
        rules = {
            "run_pause": (built and not self.touring) or state.simulating,
            "continue_run": built and not self.touring and self.engine_status.t_ms > 0,
            "build": idle,
            "store": ((built and not self.touring) or state.simulating) and not self.store_busy,
            "reset": idle,
            "restore": idle,
            "rerun_seed": idle and bool(self.current_snapshot) and not self.store_busy,
            "demo": idle,
            "compare": bool(self.ledger.runs),
            "trials": True,  # without a snapshot it says so in one line
            "next_population": len(self.groups) > 1,
            "next_weights": len(self.weight_models) > 1,
            "stop": self.touring or state.simulating,
        }
        if action in rules:
            return True if rules[action] else None
        return True

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for binding in self.BINDINGS:
            assert isinstance(binding, Binding)
            if self.check_action(binding.action, ()) and binding.action not in ("quit", "stop"):
                yield SystemCommand(f"{binding.description} ({binding.key})", f"einet: {binding.description.lower()}", lambda a=binding.action: self.run_action(a))

    # -- actions -------------------------------------------------------------------------
    def action_run_pause(self) -> None:
        state = self.engine_status.state
        if state == EngineState.RUNNING:
            self._send("pause", self.engine.pause)
        elif state == EngineState.PAUSED:
            self._send("resume", self.engine.resume)
        elif state == EngineState.BUILT:
            self.run_worker(lambda: self.run_network(), thread=True, group="run", exit_on_error=False)

    def action_continue_run(self) -> None:
        self.run_worker(lambda: self.run_network(f"run {len(self.ledger.runs) + 1} (continued)", op="continue"), thread=True, group="run", exit_on_error=False)

    def _send(self, op: str, command: Callable[[], Message]) -> None:
        """Pause/resume/cancel without blocking the UI; failures are notified like any command's.

        (A done-callback on the request's future ran on the UI thread when the engine was
        already dead, where ``call_from_thread`` refuses to run and the error was lost.)
        """
        self.run_worker(lambda: self._call(op, command), thread=True, group="control", exit_on_error=False)

    def action_build(self) -> None:
        self.engine_status = replace(self.engine_status, state=EngineState.BUILDING)
        self.refresh_bindings()
        self.run_worker(lambda: self.build_network() and self.call_from_thread(self.main.log_line, "built a fresh network"), thread=True, group="cmd", exit_on_error=False)

    def action_store(self) -> None:
        def stored(path: Path | None) -> None:
            if path is not None:
                self.snapshot_dir.mkdir(parents=True, exist_ok=True)
                self.run_worker(lambda: self.store_snapshot(path), thread=True, group="cmd", exit_on_error=False)

        self.push_screen(StoreScreen(self.snapshot_dir), stored)

    def action_reset(self) -> None:
        def reset() -> None:
            if self._call("reset", self.engine.reset) is not None:
                self.call_from_thread(self.ledger.new_kernel)
                self.call_from_thread(self.main.log_line, "kernel reset: empty")

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.run_worker(reset, thread=True, group="cmd", exit_on_error=False)

        if self.ledger.unstored and self.engine_status.state == EngineState.BUILT:
            self.push_screen(ConfirmScreen("The last run was not stored. Reset the kernel anyway?"), confirmed)
        else:
            confirmed(True)

    def action_restore(self) -> None:
        def chosen(path: Path | None) -> None:
            if path is not None:
                self.run_worker(lambda: self.restore_snapshot(path), thread=True, group="cmd", exit_on_error=False)

        self.push_screen(RestoreScreen(self.snapshot_dir), chosen)

    def action_rerun_seed(self) -> None:
        snapshot = self.current_snapshot

        def chosen(seed: int | None) -> None:
            if seed is not None:
                self.run_worker(lambda: self._rerun(Path(snapshot), seed), thread=True, group="run", exit_on_error=False)

        self.push_screen(SeedScreen(snapshot, self.engine_status.seed), chosen)

    def action_compare(self) -> None:
        ledger = self.ledger
        reruns = [r for book in self.trial_sets.values() for r in book.reruns]
        self.push_screen(CompareScreen(ledger.runs, ledger.same_as, ledger.continued_from, self.marker, self.group, self.weight_model, reruns))

    # -- trials from the current snapshot (worker processes beside the engine) -----------
    def action_trials(self) -> None:
        if self.trials_running:  # one set at a time: t shows the one running
            self.push_screen(TrialsScreen(self.trial_sets[self.trials_running], self.marker, self.stop_trials, self._trials_figure()))
            return
        snapshot = self.current_snapshot
        if not snapshot:
            self.notify("trials need a snapshot: store one (s) or restore one (l) first", severity="warning", title="trials")
            return
        if self.store_busy and Path(snapshot).name == self.store_busy:
            self.notify(f"{textual_escape(self.store_busy)} is still being written: trials start once it is stored", severity="warning", title="trials")
            return

        def chosen(request: TrialsRequest | None) -> None:
            if request is not None:
                self.start_trials(request)

        self.push_screen(TrialsDialog(snapshot, self.config.t_sim_ms), chosen)

    def start_trials(self, request: TrialsRequest) -> None:
        """Start a set (UI thread) and show its view."""
        set_id = new_set_id()
        book = TrialsBook(set_id, str(request.snapshot), tuple(c.name for c in request.plan.conditions), len(request.plan.trials))
        self.trial_sets[set_id] = book
        self.trials_running = set_id
        self._trials_cancel = cancel = threading.Event()
        self.main.log_line(f"trials {set_id}: {len(request.plan.trials)} trials from {escape(request.snapshot.name)} on {request.workers} worker process{'es' if request.workers != 1 else ''}")
        self.push_screen(TrialsScreen(book, self.marker, self.stop_trials, self._trials_figure()))
        self.run_worker(lambda: self._run_trials(request, book, cancel), thread=True, group="trials", exit_on_error=False, name=f"trials {set_id}")

    def _trials_figure(self) -> str:
        """The view opens on the rate of the population the raster shows."""
        return f"rate_hz.{self.group.name}" if self.group is not None else ""

    def _run_trials(self, request: TrialsRequest, book: TrialsBook, cancel: threading.Event) -> None:
        log = self.log_dir / f"engine-trials-{book.set_id}.log"  # engine-*: pruned with the engine's logs
        self.log_dir.mkdir(parents=True, exist_ok=True)
        run_set(request, book, cancel, self.post_message, log, self._record_trial)

    def _record_trial(self, result: RunResult, sha256: str, trial_set: str) -> None:
        if self.record:
            self.history_io.record_trial(result, sha256, trial_set)

    def stop_trials(self) -> None:
        """Stop the running set: its workers end now, its finished trials stay."""
        self._trials_cancel.set()

    @on(TrialsProgress)
    def trials_progress(self, message: TrialsProgress) -> None:
        book = message.book
        self.trial_sets[book.set_id] = book
        if not book.running and self.trials_running == book.set_id:
            self.trials_running = ""
            done = f"trials {book.set_id}: {len(book.rows)} of {book.total} finished" + (f", {len(book.failed)} failed" if book.failed else "")
            if book.state == "failed":
                self.notify(textual_escape(book.problem), severity="error", title="trials failed")
                self.main.log_line(f"[red]trials {book.set_id} failed: {escape(book.problem)}[/]")
            else:
                self.notify(textual_escape(done + (" (stopped)" if book.state == "stopped" else "")), title="trials")
                self.main.log_line(escape(done) + (" (stopped)" if book.state == "stopped" else ""))
        screen = self.screen
        if isinstance(screen, TrialsScreen) and screen.book.set_id == book.set_id:
            screen.show(book)

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.not_stored, self.engine_status.protocol))

    def action_next_population(self) -> None:
        if self.groups:
            self.group_index = (self.group_index + 1) % len(self.groups)
            self.live.set_groups(self.groups, self.group_index)
            self.notify(f"raster shows {textual_escape(self.groups[self.group_index].name)}", timeout=2)
            self.main.redraw_live()
            self.main.draw_idle()

    def action_next_weights(self) -> None:
        if self.weight_models:
            self.weight_index = (self.weight_index + 1) % len(self.weight_models)
            self.notify(f"weights of {textual_escape(self.weight_model)}", timeout=2)
            self.main.draw_weights()

    def action_stop(self) -> None:
        self.tour.stop()
        if self.engine_status.state.simulating:
            self._send("cancel", self.engine.cancel)
            self.set_timer(STOP_GRACE_S, self._stop_stuck_engine)

    def _stop_stuck_engine(self) -> None:
        """A run that did not stop is stuck inside one NEST call (cancel is honoured between
        steps): end the engine; a fresh one starts and the dashboard goes on."""
        if self.engine_status.state.simulating:
            reason = f"the run did not stop within {STOP_GRACE_S:g} s (NEST is stuck inside one call): engine stopped"
            self.run_worker(lambda: self.engine.kill(reason), thread=True, group="kill", exit_on_error=False)

    # -- the demo tour -------------------------------------------------------------------
    def on_key(self) -> None:
        if not self.touring:
            self.remove_class("captioned")

    def action_demo(self) -> None:
        self.touring = True
        self.add_class("touring")
        self.main.show_intro()
        self.refresh_bindings()
        self.tour.start()
        self.run_worker(lambda: self.tour.play(self.snapshot_dir, self.config.seed), thread=True, group="tour", exit_on_error=False)

    @on(TourCaption)
    def tour_caption(self, message: TourCaption) -> None:
        self.main.caption(message.text)

    @on(TourEnded)
    def tour_ended(self, message: TourEnded) -> None:
        self.touring = False
        self.remove_class("touring")
        self.add_class("captioned")  # the closing caption stays until the next key
        self.refresh_bindings()
        self.main.show_intro()
        self.main.caption("demo complete: the same seed's restored runs are identical (to the continued run too, when the restore was exact); the other seed differs — press v to compare" if message.complete else "demo stopped")

    # -- quitting ------------------------------------------------------------------------
    async def action_quit(self) -> None:
        self.tour.stop()
        self.stop_trials()
        if self.store_busy:

            def answered(wait: bool | None) -> None:
                self.run_worker(lambda: self._close_and_exit(abandon=not wait), thread=True, group="quit", exit_on_error=False)

            self.push_screen(ConfirmScreen(f"A store of {textual_escape(self.store_busy)} is in progress. Wait for it (y), or abandon it (n: nothing is published)?"), answered)
            return
        self.engine.close(timeout_s=STOP_GRACE_S)  # a stuck engine is killed after it
        self.exit(0)

    def _close_and_exit(self, abandon: bool) -> None:
        self.call_from_thread(self.notify, "abandoning the store" if abandon else "waiting for the store to finish…", timeout=30)
        self.engine.close(timeout_s=STORE_WAIT_S, abandon_store=abandon)
        self.call_from_thread(self.exit, 0)

    def on_unmount(self) -> None:
        self.stop_trials()  # the set's thread kills its workers within a poll
        self.engine.close(timeout_s=3.0)
        self.history_io.close()


class DemoSteps:
    """The demo's steps as the dashboard's engine commands (worker thread), for :class:`Tour`."""

    def __init__(self, app: EinetApp) -> None:
        self.app = app

    def build(self) -> bool:
        return self.app.build_network()

    def store(self, path: Path) -> bool:
        return self.app.store_snapshot(path)

    def restore(self, path: Path, seed: int) -> bool:
        return self.app.restore_snapshot(path, seed)

    def run(self, label: str) -> RunResult | None:
        return self.app.run_network(label)


def make_app(config: NetworkConfig, args: argparse.Namespace, mpi: MpiLaunch | None = None) -> EinetApp:
    """The dashboard for ``config`` with the dashboard's own flags (shared by ``einet`` and the
    tests), its engine an MPI job with ``mpi``. The CLI builds ``config`` and ``mpi``: the
    dashboard never imports the CLI (no import cycle)."""
    every = getattr(args, "checkpoint_every", None)
    checkpoints = None if every is None else RunCheckpoints(getattr(args, "checkpoint_dir", None) or args.snapshot_dir / "checkpoints", every, getattr(args, "keep", None) or DEFAULT_KEEP)
    return EinetApp(config, snapshot_dir=args.snapshot_dir, restore=args.restore, marker=args.marker, mpi=mpi, history=getattr(args, "history", None), record=not getattr(args, "no_history", False), checkpoints=checkpoints)


def run_app(config: NetworkConfig, args: argparse.Namespace, mpi: MpiLaunch | None = None) -> int:
    app = make_app(config, args, mpi)
    return app.run(mouse=not args.no_mouse) or 0

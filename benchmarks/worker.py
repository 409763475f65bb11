"""One measurement in a fresh process (so peak memory is this measurement's alone).

    python benchmarks/worker.py TASK SCALE DIR  ->  one JSON line on stdout

Tasks: store-example, store-einet, restore-example, restore-einet, simulate-bare,
simulate-engine. The example's way is NEST's "Store and restore a network simulation":
``GetConnections().get(..., output="pandas")`` + pickle, and its restore from that pickle.
The pickle here is written and read by this benchmark only.
"""

from __future__ import annotations

import json
import os
import pickle
import resource
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from einet import NetworkConfig, Session
from einet.kernel import nest, nest_output_to
from einet.models import describe_params
from einet.snapshot import open_snapshot
from einet.snapshot.packed import PackedColumn

REFERENCE = describe_params("einet.models.brunel_stdp")  # the reference model's defaults

T_SIM = 1000.0


def _status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak() -> int:
    """Reset the peak-RSS counter (Linux) and return the current RSS in kB."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_kb("VmRSS")


def _measure(fn: Any) -> dict[str, float]:
    base = _reset_peak()
    t0 = time.perf_counter()
    fn()
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "peak_extra_mb": max(0, _status_kb("VmHWM") - base) / 1024}


MONITOR = """
import os, sys, time
from pathlib import Path
root, stop = int(sys.argv[1]), Path(sys.argv[2])
me = os.getpid()
def tree(pid):
    out = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [c for k in (task / "children").read_text().split() if int(k) != me for c in tree(int(k))]
        except OSError:
            pass
    return out
def pss(pid):
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0
peak = 0
while not stop.exists():
    peak = max(peak, sum(pss(p) for p in tree(root)))
    time.sleep(0.05)
print(peak)
"""


class PssMonitor:
    """Peak proportional memory (PSS) of this process and all its children, sampled by another
    process every 50 ms (reading smaps costs CPU): forked children share pages copy-on-write, which RSS would count twice."""

    def __init__(self, folder: Path) -> None:
        import subprocess

        self.stop = folder / f"monitor-stop-{time.monotonic_ns()}"
        self.proc = subprocess.Popen([sys.executable, "-c", MONITOR, str(os.getpid()), str(self.stop)], stdout=subprocess.PIPE, text=True)
        time.sleep(0.2)

    def peak_kb(self) -> int:
        self.stop.touch()
        out, _ = self.proc.communicate(30)
        return int(out.strip() or 0)


def _pss_kb() -> int:
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def _built(scale: float, threads: int = 2, t_ms: float = T_SIM) -> Session:
    session = Session(NetworkConfig(scale=scale, threads=threads))
    session.build()
    session.run(t_ms)
    return session


def store_example(scale: float, folder: Path) -> dict[str, Any]:
    session = _built(scale)
    net = session.network
    assert net is not None
    n = nest()
    path = folder / "example.pkl"
    exc, inh = (n.NodeCollection(p.ids.tolist()) for p in net.populations)

    def store() -> None:
        with nest_output_to():
            network = {
                "n_vp": n.total_num_virtual_procs,
                "e_nrns": exc.get(["V_m"], output="pandas"),
                "i_nrns": inh.get(["V_m"], output="pandas"),
                "e_syns": n.GetConnections(synapse_model="e_syn").get(("source", "target", "weight"), output="pandas"),
                "i_syns": n.GetConnections(synapse_model="i_syn").get(("source", "target", "weight"), output="pandas"),
            }
        with open(path, "wb") as f:
            pickle.dump(network, f, pickle.HIGHEST_PROTOCOL)

    return {**_measure(store), "bytes": path.stat().st_size}


def store_einet(scale: float, folder: Path) -> dict[str, Any]:
    session = _built(scale)
    path = folder / "einet.h5"
    if path.exists():
        path.unlink()
    t0 = time.perf_counter()
    session.store(path)
    seconds = time.perf_counter() - t0
    again = folder / "einet-memory.h5"
    again.unlink(missing_ok=True)
    base = _pss_kb()
    monitor = PssMonitor(folder)  # forked workers' memory counts too; not while timing
    session.store(again)
    return {"seconds": seconds, "peak_extra_mb": max(0, monitor.peak_kb() - base) / 1024, "bytes": path.stat().st_size}


def store_scaling(scale: float, folder: Path) -> dict[str, Any]:
    """The status-read part of a store with 1..N forked workers (N: usable cores, at least 2)."""
    from einet.config import usable_cores
    from einet.store import plan_capture, read_connections, read_in_workers

    session = _built(scale)
    plan = plan_capture(session.network, seed=session.seed)
    seconds = []
    workers = list(range(1, max(2, usable_cores()) + 1))
    for w in workers:
        t0 = time.perf_counter()
        read_connections(plan) if w == 1 else read_in_workers(plan, w)
        seconds.append(time.perf_counter() - t0)
    return {"workers": workers, "seconds": seconds, "connections": plan.n_connections}


def _overlap(session: Session, folder: Path, pairs: int) -> dict[str, Any]:
    """Store while simulating 1 s vs storing, then simulating, in alternating pairs (medians:
    1 s of simulation alone varies by up to ±15 % here); the longest pause."""
    seq, bg = folder / "seq.h5", folder / "bg.h5"

    def one_after_the_other() -> float:
        t0 = time.perf_counter()
        session.store(seq, overwrite=True)
        session.run(T_SIM)
        return time.perf_counter() - t0

    def overlapped() -> tuple[float, Any]:
        t0 = time.perf_counter()
        handle = session.store(bg, overwrite=True, background=True)
        session.run(T_SIM)
        handle.wait()
        return time.perf_counter() - t0, handle

    sequential: list[float] = []
    together: list[float] = []
    handles = []
    for k in range(pairs):
        if k % 2:
            sequential.append(one_after_the_other())
        t, h = overlapped()
        together.append(t)
        handles.append(h)
        if not k % 2:
            sequential.append(one_after_the_other())
    return {
        **handles[-1].phases,
        "pause_s": max(h.pause_s for h in handles),
        "pairs": pairs,
        "ratios": [a / b for a, b in zip(sequential, together)],
        "sequential_s": statistics.median(sequential),
        "overlapped_s": statistics.median(together),
        "store_s": statistics.median(h.seconds for h in handles),
        "bytes": bg.stat().st_size,
    }


def store_background(scale: float, folder: Path) -> dict[str, Any]:
    """The overlap with NEST on both cores; then, in a last round with a memory monitor (it
    costs CPU, so not while timing), the peak extra memory."""
    session = _built(scale)
    result = _overlap(session, folder, 3 if scale >= 10 else 5)
    memory = folder / "bg-memory.h5"
    memory.unlink(missing_ok=True)
    base = _pss_kb()
    monitor = PssMonitor(folder)
    again = session.store(memory, background=True)
    session.run(T_SIM)  # the simulation touches pages meanwhile: copy-on-write copies them
    again.wait()
    return {**result, "peak_extra_mb": max(0, monitor.peak_kb() - base) / 1024}


def store_background_free_core(scale: float, folder: Path) -> dict[str, Any]:
    """The overlap with NEST on one thread: a core is free for the readers."""
    return _overlap(_built(scale, threads=1), folder, 3)


def _timed_run(session: Session) -> dict[str, float]:
    """One 1-s run: wall seconds, CPU seconds of this process (all NEST threads), kernel CPU
    seconds and minor page faults (a copy-on-write copy is one)."""
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    session.run(T_SIM)
    wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    sys_s = r1.ru_stime - r0.ru_stime
    return {"wall": wall, "cpu": r1.ru_utime - r0.ru_utime + sys_s, "sys": sys_s, "faults": r1.ru_minflt - r0.ru_minflt}


def _busy(runs: list[dict[str, float]]) -> float:
    return statistics.median(r["cpu"] / r["wall"] for r in runs)


def copy_on_write_cost(scale: float, folder: Path, reps: int = 5) -> dict[str, Any]:
    """1 s of simulation alone vs while a forked process (sleeping) holds the kernel's pages:
    the parent's first write to each page after the fork copies it. A background store's
    process holds them until it is done. Also how many cores NEST keeps busy meanwhile: the
    rest is all an idle-priority store can use during the run."""
    session = _built(scale)
    alone: list[dict[str, float]] = []
    held: list[dict[str, float]] = []
    for _ in range(reps):
        alone.append(_timed_run(session))
        pid = os.fork()
        if pid == 0:
            time.sleep(600)
            os._exit(0)
        try:
            held.append(_timed_run(session))
        finally:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)

    def median(runs: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    return {
        "alone_s": median(alone, "wall"),
        "held_s": median(held, "wall"),
        "busy_cores": _busy(alone),
        "copied_mb": max(0.0, median(held, "faults") - median(alone, "faults")) * resource.getpagesize() / 2**20,
        "copy_sys_s": max(0.0, median(held, "sys") - median(alone, "sys")),
        "reps": reps,
    }


def simulate_busy(scale: float, folder: Path, reps: int = 5) -> dict[str, Any]:
    """1 s of simulation: wall time and cores busy (run with OMP_WAIT_POLICY=passive to see
    what NEST's threads sleeping at their barriers instead of spinning would leave free)."""
    session = _built(scale)
    runs = [_timed_run(session) for _ in range(reps)]
    return {"seconds": statistics.median(r["wall"] for r in runs), "busy_cores": _busy(runs), "reps": reps}


def _repeat(fn: Any, reps: int = 3) -> dict[str, float]:
    runs = [_measure(fn) for _ in range(reps)]
    return {"seconds": statistics.median(r["seconds"] for r in runs), "peak_extra_mb": max(r["peak_extra_mb"] for r in runs)}


def restore_example(scale: float, folder: Path) -> dict[str, Any]:
    config = NetworkConfig(scale=scale)
    p = REFERENCE
    n_inh = int(round(p["n_inh_base"] * scale))  # noqa: RUF046 - round() of a NumPy float is a NumPy float
    n_exc = p["e_to_i_ratio"] * n_inh
    n = nest()

    def restore() -> None:
        with nest_output_to():
            n.ResetKernel()
            n.local_num_threads = config.threads
            n.CopyModel("stdp_synapse_hom", "e_syn", {"Wmax": p["wmax_factor"] * p["je_mv"]})
            n.CopyModel("static_synapse", "i_syn")
            with open(folder / "example.pkl", "rb") as f:
                network = pickle.load(f)  # the example's way; this benchmark wrote the file
            exc = n.Create(p["neuron_model"], n=n_exc, params={"V_m": network["e_nrns"].V_m.values})
            inh = n.Create(p["neuron_model"], n=n_inh, params={"V_m": network["i_nrns"].V_m.values})
            neurons = exc + inh
            pg = n.Create("poisson_generator", {"rate": p["poisson_rate_hz"]})
            sr = n.Create("spike_recorder")
            for model in ("e_syns", "i_syns"):
                syn = network[model]
                n.Connect(syn.source.values, syn.target.values, "one_to_one", {"synapse_model": model[:-1], "weight": syn.weight.values})
            n.Connect(pg, neurons, "all_to_all", {"weight": p["je_mv"]})
            n.Connect(exc, sr)

    return _repeat(restore)


def restore_einet(scale: float, folder: Path) -> dict[str, Any]:
    """A restore into a session with no network yet (the CLI's): nothing to rehearse."""
    return _repeat(lambda: Session(NetworkConfig(scale=scale)).restore(folder / "einet.h5"))


def restore_einet_rehearsed(scale: float, folder: Path) -> dict[str, Any]:
    """A restore over a running network (the dashboard's): rehearsed first in a fresh process,
    as for each new file."""
    session = Session(NetworkConfig(scale=scale))
    session.restore(folder / "einet.h5")

    def restore() -> None:
        session._rehearsed.clear()  # as if the file were new to the session
        session.restore(folder / "einet.h5")

    return _repeat(restore)


def restore_einet_kernel_only(scale: float, folder: Path) -> dict[str, Any]:
    """einet's restore without reading and validating the file: the NEST part alone."""

    snap = open_snapshot(folder / "einet.h5")
    session = Session(NetworkConfig(scale=scale))
    return _repeat(lambda: session.restore(snap))


def restore_einet_clock(scale: float, folder: Path) -> dict[str, Any]:
    """The NEST part of a restore of the same network stored at 1 s, 10 s and 1000 s: what
    bringing the kernel to the stored time costs (one empty step per communication interval)."""
    import dataclasses

    from einet.clock import clock_delays

    snap = open_snapshot(folder / "einet.h5")
    session = Session(NetworkConfig(scale=scale))
    seconds = {}
    for t_s in (1, 10, 1000):
        at = dataclasses.replace(snap, t_stored_ms=1000.0 * t_s)
        seconds[str(t_s)] = _repeat(lambda at=at: session.restore(at))["seconds"]
    return {"seconds": seconds, "min_delay_ms": clock_delays(snap)["min_delay"]}


def simulate_bare(scale: float, folder: Path) -> dict[str, Any]:
    session = Session(NetworkConfig(scale=scale))
    session.build()
    n = nest()

    def simulate() -> None:
        with nest_output_to():
            n.Simulate(T_SIM)

    return _measure(simulate)


def simulate_engine(scale: float, folder: Path) -> dict[str, Any]:
    from einet.engine import Engine, Message

    seen = {"frames": 0, "spikes": 0}

    def on_event(msg: Message) -> None:
        if msg.kind == "frame":  # consume every frame, as the dashboard does
            seen["frames"] += 1
            seen["spikes"] += len(msg.arrays["senders"])

    with Engine(log_dir=folder / "logs", on_event=on_event) as engine:
        engine.call("build", config=NetworkConfig(scale=scale).to_dict())
        t0 = time.perf_counter()
        engine.call("run", t_ms=T_SIM)
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, **seen}


# -- node scale (benchmarks/node.py): a short run, as a checkpoint of a long one would see it --
NODE_T_MS = 20.0


def node_build(scale: float, folder: Path) -> dict[str, Any]:
    """NEST's own build of the network (Create and Connect through the model's code), and the
    process's memory once built and run 20 ms, and its peak (VmHWM, as node_restore's). Without einet's probe of the synapse models,
    whose fetch makes NEST's connection tables (the first Simulate does that otherwise)."""
    import einet.session

    einet.session.probe_synapse_models = lambda net: None  # type: ignore[assignment]
    session = Session(NetworkConfig(scale=scale, threads=2))
    t0 = time.perf_counter()
    session.build()
    seconds = time.perf_counter() - t0
    session.run(NODE_T_MS)
    n = nest()
    return {"seconds": seconds, "pss_mb": _pss_kb() / 1024, "peak_mb": _status_kb("VmHWM") / 1024, "connections": int(n.num_connections)}


def node_store(scale: float, folder: Path) -> dict[str, Any]:
    """A store of the built network (the accelerator unless EINET_ACCEL=0), then its peak extra
    memory (PSS of this process and its children) in a second store."""
    from einet.accel import why_not

    session = _built(scale, t_ms=NODE_T_MS)
    path = folder / "node.h5"
    path.unlink(missing_ok=True)
    t0 = time.perf_counter()
    session.store(path)
    seconds = time.perf_counter() - t0
    again = folder / "node-memory.h5"
    again.unlink(missing_ok=True)
    base = _pss_kb()
    monitor = PssMonitor(folder)
    session.store(again)
    peak = max(0, monitor.peak_kb() - base) / 1024
    again.unlink()
    return {"seconds": seconds, "peak_extra_mb": peak, "bytes": path.stat().st_size, "accelerated": why_not() is None}


def node_pause(scale: float, folder: Path) -> dict[str, Any]:
    """The pauses of three background stores in turn (the simulation goes on meanwhile; the
    first in a process asks NEST more)."""
    session = _built(scale, t_ms=NODE_T_MS)
    pauses = []
    for _ in range(3):
        handle = session.store(folder / "node-bg.h5", overwrite=True, background=True)
        session.run(NODE_T_MS)
        handle.wait()
        pauses.append(handle.pause_s)
    return {"seconds": max(pauses), "each_s": pauses, "store_s": handle.seconds}


def node_restore(scale: float, folder: Path) -> dict[str, Any]:
    """A restore of node_store's file into a fresh session, and this process's peak memory
    (VmHWM: no sampling monitor while timing — reading a 5 GB process's smaps every 50 ms
    slowed the restore by half)."""
    session = Session(NetworkConfig(scale=scale, threads=2))
    t0 = time.perf_counter()
    session.restore(folder / "node.h5")
    seconds = time.perf_counter() - t0
    peak_mb = _status_kb("VmHWM") / 1024
    # what a restore holds of the connection tables beside NEST (after the peak is taken)
    columns = [c for t in open_snapshot(folder / "node.h5").synapses for c in (t.source, t.target, *t.columns.values())]
    held = sum(c.packed_bytes if isinstance(c, PackedColumn) else c.nbytes for c in columns)
    return {"seconds": seconds, "peak_mb": peak_mb, "tables_mb": sum(c.nbytes for c in columns) / 2**20, "tables_held_mb": held / 2**20}


TASKS = {
    f.__name__.replace("_", "-"): f
    for f in (
        node_build,
        node_store,
        node_pause,
        node_restore,
        store_example,
        store_einet,
        store_scaling,
        store_background,
        store_background_free_core,
        copy_on_write_cost,
        simulate_busy,
        restore_example,
        restore_einet,
        restore_einet_rehearsed,
        restore_einet_kernel_only,
        restore_einet_clock,
        simulate_bare,
        simulate_engine,
    )
}

if __name__ == "__main__":
    task, scale, folder = sys.argv[1], float(sys.argv[2]), Path(sys.argv[3])
    folder.mkdir(parents=True, exist_ok=True)
    result = TASKS[task](scale, folder)
    sys.stdout.write(json.dumps({"task": task, "scale": scale, **result}) + "\n")
    sys.stdout.flush()
    os._exit(0)  # skip NEST's slow teardown

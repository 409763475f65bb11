"""`make fuzz`: the snapshot loader against >= 10,000 damaged files, well-formed but hostile
snapshots restored over a running network, Ctrl-C and kills during damaged reads and during
stores, and kill -9 during store.

    python benchmarks/fuzz.py --cases 10000 --hostile 300 --kills 60 --interrupts 30

Every damaged file must be refused with a one-line SnapshotError or be byte-for-byte the
original snapshot's content; after every kill the folder must hold exactly the complete old or
the complete new snapshot. Prints counts; exits 1 on any violation.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from einet import NetworkConfig, Session, Snapshot
from einet.snapshot import CannotStoreError, list_snapshots, open_snapshot, write_snapshot
from tests.hostile import DEVICES, NEURONS, Restorer, hostile_snapshot
from tests.mutations import STRUCTURAL, UNCHECKED, random_byte_mutation, readers_of, same_snapshot, verdict, write_structural

CONFIG = NetworkConfig(scale=0.02, t_sim_ms=100.0)

STORER = textwrap.dedent(
    """
    import sys
    from einet import NetworkConfig, Session
    s = Session(NetworkConfig(scale=0.02, t_sim_ms=100.0))
    s.build()
    s.run()
    print("ready", flush=True)
    while True:
        s.store(sys.argv[1], overwrite=True)
    """
)


def fuzz(original: Path, snap: Snapshot, cases: int, folder: Path, seed: int, structural: bool = True) -> collections.Counter[str]:
    rng = random.Random(seed)
    data = original.read_bytes()
    counts: collections.Counter[str] = collections.Counter()
    target = folder / "fuzz.h5"
    tampers = {**STRUCTURAL, **UNCHECKED} if structural else {}
    for name, tamper in tampers.items():
        write_structural(original, target, tamper, fix=name in STRUCTURAL)
        counts[f"structural {verdict(target, snap)}"] += 1
    for _ in range(cases - len(tampers)):
        kind, mutated = random_byte_mutation(data, rng)
        target.write_bytes(mutated)
        counts[f"{kind} {verdict(target, snap)}"] += 1
    return counts


def kills(n: int, folder: Path, seed: int) -> collections.Counter[str]:
    """Kill a process that stores with the real NEST at random moments (a fresh process each time)."""
    rng = random.Random(seed)
    target = folder / "killed.h5"
    s = Session(CONFIG)
    s.build()
    s.run(50.0)
    old = s.store(target)  # different from what the killed process stores (t = 100 ms)
    counts: collections.Counter[str] = collections.Counter()
    for _ in range(n):
        p = subprocess.Popen([sys.executable, "-c", STORER, str(target)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.25))
        p.send_signal(signal.SIGKILL)
        p.wait(10)
        now = open_snapshot(target)  # raises if half-written
        listed = [x.name for x in list_snapshots(folder)]
        if listed != ["killed.h5"]:
            raise SystemExit(f"folder lists {listed} after a kill")
        if same_snapshot(now, old):
            counts["old intact"] += 1
        elif now.t_stored_ms == 100.0 and now.config == old.config:
            counts["new complete"] += 1
            old = now
        else:
            raise SystemExit("after a kill the file is neither the old nor the new snapshot")
    counts["hidden temp files left (never listed)"] = len(list(folder.glob(".*.partial")))
    return counts


def _ctrl_c_allowed() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a shell without job control ignores it in children


def interrupts(n: int, folder: Path, seed: int) -> tuple[collections.Counter[str], list[float]]:
    """Ctrl-C, SIGTERM and SIGKILL of `einet inspect` while its reader child is stuck in a file
    that makes libhdf5 loop: the CLI must exit at once and no reader may outlive it."""
    rng = random.Random(seed)
    counts: collections.Counter[str] = collections.Counter()
    waits: list[float] = []
    hangs = ROOT / "tests" / "data" / "hdf5-hangs.h5"
    for k in range(n):
        how = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)[k % 3]
        path = folder / f"loops-{k}.h5"
        path.write_bytes(hangs.read_bytes())
        p = subprocess.Popen([sys.executable, "-m", "einet.cli", "inspect", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT, preexec_fn=_ctrl_c_allowed)
        deadline = time.monotonic() + 30
        while len(readers_of(path)) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.5))
        t0 = time.monotonic()
        p.send_signal(how)
        _, err = p.communicate(timeout=30)
        waits.append(time.monotonic() - t0)
        deadline = time.monotonic() + 2
        while readers_of(path) and time.monotonic() < deadline:
            time.sleep(0.02)
        left = readers_of(path)
        ok = not left and waits[-1] < 2.0 and "Traceback" not in err and (how != signal.SIGINT or p.returncode == 130)
        if not ok:
            raise SystemExit(f"{how.name}: exit after {waits[-1]:.2f} s, code {p.returncode}, {len(left)} processes left, stderr {err.strip()[:200]!r}")
        counts[f"{how.name}: exited, nothing left"] += 1
    return counts, waits


def ctrl_c_during_store(n: int, folder: Path, seed: int) -> collections.Counter[str]:
    """Ctrl-C at random moments of `einet run --store`: exit 0 (done) or 130 (interrupted), one
    line at most, never a traceback; the file is either absent or a complete snapshot."""
    rng = random.Random(seed)
    counts: collections.Counter[str] = collections.Counter()
    path = folder / "interrupted.h5"
    for _ in range(n):
        path.unlink(missing_ok=True)
        p = subprocess.Popen([sys.executable, "-m", "einet.cli", "run", "--scale", "0.3", "--t", "100", "--store", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT, preexec_fn=_ctrl_c_allowed)
        time.sleep(rng.uniform(0.5, 2.5))
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
        stored = path.exists()
        if stored:
            open_snapshot(path)  # complete, or this raises
        if p.returncode not in (0, 130) or "Traceback" in err or "Exception ignored" in err or len(err.strip().splitlines()) > 1:
            raise SystemExit(f"Ctrl-C during store: code {p.returncode}, stderr {err.strip()[:300]!r}")
        counts[f"exit {p.returncode}, " + ("a complete file" if stored else "no file")] += 1
    return counts


HOSTILE_OK = ("refused", "restored")


def hostile(n: int, folder: Path, seed: int, cli_every: int = 10) -> tuple[collections.Counter[str], list[str]]:
    """Hostile snapshots written by einet's writer, restored over a running network: each must
    be refused with the network kept, or restored; nothing written outside, no escape reaching
    the terminal (every ``cli_every``-th file also through ``einet restore``)."""
    from einet.kernel import nest

    rng = random.Random(seed)
    outside, cwd = folder / "outside", folder / "cwd"
    outside.mkdir()
    cwd.mkdir()
    bases = []
    for config in (CONFIG, NetworkConfig(model=str(ROOT / "tests" / "models" / "recorders.py"), params={"folder": str(outside)}, t_sim_ms=50.0)):
        s = Session(config)
        s.build()
        s.run()
        bases.append(s.store(folder / f"base-{len(bases)}.h5"))
    for p in outside.iterdir():
        p.unlink()  # the recorders model's own files, written while it ran
    n_ = nest()
    models = {*NEURONS, *DEVICES, "stdp_synapse", "tsodyks_synapse", "static_synapse", *(r.model for b in bases for r in b.nodes), *(t.model for b in bases for t in b.synapses)}
    defaults = {}
    for m in models:
        with contextlib.suppress(Exception):  # a model made by a base's CopyModel: not in this kernel
            defaults[m] = dict(n_.GetDefaults(m))
    counts: collections.Counter[str] = collections.Counter()
    problems: list[str] = []
    restorer = Restorer(cwd)
    path = folder / "hostile.h5"
    try:
        for k in range(n):
            kind, snap = hostile_snapshot(rng.choice(bases), rng, outside, defaults)
            try:
                write_snapshot(snap, path, overwrite=True)
            except CannotStoreError:
                counts[f"{kind}: not written (einet's writer refuses it)"] += 1
                continue
            reply = restorer.restore(path)
            counts[f"{kind}: {reply['outcome']}"] += 1
            if reply["outcome"] not in HOSTILE_OK:
                problems.append(f"case {k} ({kind}): {reply['outcome']}: {reply['message']}")
                path.replace(folder / f"violation-{k}.h5")
                continue
            if k % cli_every == 0:
                p = subprocess.run([sys.executable, "-m", "einet.cli", "restore", str(path), "--t", "1", "--no-history"], capture_output=True, text=True, cwd=cwd, timeout=300)
                want = 0 if reply["outcome"] == "restored" else 3
                lines = p.stderr.strip().splitlines()
                if p.returncode != want or (want and len(lines) != 1) or any(c in p.stdout + p.stderr for c in "\x1b\x07"):
                    problems.append(f"case {k} ({kind}) through the CLI: exit {p.returncode} (want {want}), stderr {p.stderr.strip()[:200]!r}")
                counts["… also through `einet restore`"] += 1
            written = [str(q) for q in (*outside.rglob("*"), *cwd.rglob("*"))]
            if written:
                problems.append(f"case {k} ({kind}): files written: {written[:3]}")
                for q in sorted((*outside.rglob("*"), *cwd.rglob("*")), reverse=True):
                    q.rmdir() if q.is_dir() else q.unlink()
    finally:
        restorer.close()
    return counts, problems


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--cases", type=int, default=10_000)
    p.add_argument("--hostile", type=int, default=300)
    p.add_argument("--kills", type=int, default=60)
    p.add_argument("--interrupts", type=int, default=30)
    p.add_argument("--seed", type=int, default=20261125)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="einet-fuzz-") as tmp:
        folder = Path(tmp)
        original = folder / "original.h5"
        s = Session(CONFIG)
        s.build()
        s.run()
        snap = s.store(original)
        snap = open_snapshot(original)
        t0 = time.perf_counter()
        counts = fuzz(original, snap, args.cases, folder, args.seed)
        print(f"loader fuzz: {sum(counts.values())} damaged files in {time.perf_counter() - t0:.0f} s, every one refused or intact")
        for k, v in sorted(counts.items()):
            print(f"  {k:44s} {v}")
        v1 = ROOT / "tests" / "data" / "v1-scale-0.02.h5"  # format v1 files are still read
        t0 = time.perf_counter()
        counts = fuzz(v1, open_snapshot(v1), args.cases // 10, folder, args.seed, structural=False)
        print(f"loader fuzz, format v1: {sum(counts.values())} damaged files in {time.perf_counter() - t0:.0f} s, every one refused or intact")
        for k, v in sorted(counts.items()):
            print(f"  {k:44s} {v}")
        t0 = time.perf_counter()
        (folder / "hostile").mkdir()
        hc, problems = hostile(args.hostile, folder / "hostile", args.seed)
        print(f"well-formed hostile snapshots restored over a running network: {args.hostile} in {time.perf_counter() - t0:.0f} s, {len(problems)} violations")
        for k, v in sorted(hc.items()):
            print(f"  {k:58s} {v}")
        for line in problems:
            print(f"  VIOLATION {line}")
        t0 = time.perf_counter()
        ic, waits = interrupts(args.interrupts, folder, args.seed)
        print(f"Ctrl-C/SIGTERM/SIGKILL during a read that hangs libhdf5: {len(waits)} in {time.perf_counter() - t0:.0f} s; the CLI exited within {max(waits):.2f} s (median {sorted(waits)[len(waits) // 2]:.2f} s), no reader left")
        for k, v in sorted(ic.items()):
            print(f"  {k:38s} {v}")
        t0 = time.perf_counter()
        cc = ctrl_c_during_store(args.interrupts, folder, args.seed)
        print(f"Ctrl-C at random moments of `einet run --store`: {args.interrupts} in {time.perf_counter() - t0:.0f} s, no traceback, never a partial file")
        for k, v in sorted(cc.items()):
            print(f"  {k:38s} {v}")
        (folder / "kills").mkdir()
        t0 = time.perf_counter()
        kc = kills(args.kills, folder / "kills", args.seed)
        print(f"kill -9 during store: {args.kills} kills in {time.perf_counter() - t0:.0f} s, the file was complete every time")
        for k, v in sorted(kc.items()):
            print(f"  {k:38s} {v}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

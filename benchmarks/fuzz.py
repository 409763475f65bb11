"""`make fuzz`: the snapshot loader against >= 10,000 damaged files, and kill -9 during store.

    python benchmarks/fuzz.py --cases 10000 --kills 60

Every damaged file must be refused with a one-line SnapshotError or be byte-for-byte the
original snapshot's content; after every kill the folder must hold exactly the complete old or
the complete new snapshot. Prints counts; exits 1 on any violation.
"""

from __future__ import annotations

import argparse
import collections
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

from einet import NetworkConfig, Session, Snapshot  # noqa: E402
from einet.snapshot import list_snapshots  # noqa: E402
from tests.mutations import STRUCTURAL, UNCHECKED, random_byte_mutation, same_snapshot, verdict, write_structural  # noqa: E402

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
        now = Snapshot.open(target)  # raises if half-written
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


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--cases", type=int, default=10_000)
    p.add_argument("--kills", type=int, default=60)
    p.add_argument("--seed", type=int, default=20261125)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="einet-fuzz-") as tmp:
        folder = Path(tmp)
        original = folder / "original.h5"
        s = Session(CONFIG)
        s.build()
        s.run()
        snap = s.store(original)
        snap = Snapshot.open(original)
        t0 = time.perf_counter()
        counts = fuzz(original, snap, args.cases, folder, args.seed)
        print(f"loader fuzz: {sum(counts.values())} damaged files in {time.perf_counter() - t0:.0f} s, every one refused or intact")
        for k, v in sorted(counts.items()):
            print(f"  {k:44s} {v}")
        v1 = ROOT / "tests" / "data" / "v1-scale-0.02.h5"  # format v1 files are still read
        t0 = time.perf_counter()
        counts = fuzz(v1, Snapshot.open(v1), args.cases // 10, folder, args.seed, structural=False)
        print(f"loader fuzz, format v1: {sum(counts.values())} damaged files in {time.perf_counter() - t0:.0f} s, every one refused or intact")
        for k, v in sorted(counts.items()):
            print(f"  {k:44s} {v}")
        (folder / "kills").mkdir()
        t0 = time.perf_counter()
        kc = kills(args.kills, folder / "kills", args.seed)
        print(f"kill -9 during store: {args.kills} kills in {time.perf_counter() - t0:.0f} s, the file was complete every time")
        for k, v in sorted(kc.items()):
            print(f"  {k:38s} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

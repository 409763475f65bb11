"""`make soak`: store/restore cycles through the engine; the engine's memory must stay flat.

python benchmarks/soak.py --cycles 200
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from einet import NetworkConfig
from einet.engine import Engine

WARM_UP = 50


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def soak(cycles: int, scale: float, folder: Path) -> dict[str, float]:
    path = folder / "soak.h5"
    samples: list[float] = []
    with Engine(log_dir=folder / "logs") as engine:
        assert engine.pid is not None
        engine.call("build", config=NetworkConfig(scale=scale).to_dict())
        engine.call("run", t_ms=50.0)
        t0 = time.perf_counter()
        for _ in range(cycles):
            engine.call("store", path=str(path), overwrite=True)
            engine.call("restore", path=str(path))
            engine.call("run", t_ms=20.0)
            samples.append(rss_mb(engine.pid))
        seconds = time.perf_counter() - t0
    # the allocator's heap settles within a few dozen cycles; a leak keeps growing after that
    warm = samples[min(WARM_UP, len(samples)) - 1]
    every = " ".join(f"{i + 1}:{samples[i]:.0f}" for i in range(0, len(samples), 25))
    return {"cycles": cycles, "seconds": seconds, "first_mb": samples[0], "warm_mb": warm, "last_mb": samples[-1], "max_mb": max(samples), "every": every}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--cycles", type=int, default=200)
    p.add_argument("--scale", type=float, default=0.1)
    p.add_argument("--max-growth-mb", type=float, default=5.0)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="einet-soak-") as tmp:
        r = soak(args.cycles, args.scale, Path(tmp))
    growth = r["last_mb"] - r["warm_mb"]
    print(f"soak: {r['cycles']} store/restore/run cycles at scale {args.scale} in {r['seconds']:.0f} s")
    print(f"engine RSS: first {r['first_mb']:.1f} MB, after {WARM_UP} cycles {r['warm_mb']:.1f} MB, last {r['last_mb']:.1f} MB, max {r['max_mb']:.1f} MB")
    print(f"RSS in MB by cycle: {r['every']}")
    print(f"growth after warm-up: {growth:+.1f} MB (limit {args.max_growth_mb:g} MB): {'flat' if growth <= args.max_growth_mb else 'GROWING'}")
    return 0 if growth <= args.max_growth_mb else 1


if __name__ == "__main__":
    sys.exit(main())

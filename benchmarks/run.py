"""einet's benchmarks against the example's way, in one run; writes a table into the README.

    python benchmarks/run.py --scales 1 4 --readme README.md
    python benchmarks/run.py --scales 10 --large          # make bench-large

Each number comes from a fresh process (benchmarks/worker.py), so peak memory is that of
the measured step alone. Ratios matter more than seconds on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MARKERS = {False: ("<!-- bench:start -->", "<!-- bench:end -->"), True: ("<!-- bench-large:start -->", "<!-- bench-large:end -->")}

# Targets from the issues: (key, comparison, threshold by scale)
STORE_SPEEDUP = {1: 4.0, 4: 4.0, 10: 5.0}  # with every core (2 here); 2.0 / 2.2 / 3.0 on one
PAUSE_S = {1: 0.15, 4: 0.3, 10: 0.6}


def work(task: str, scale: float, folder: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    p = subprocess.run([sys.executable, str(HERE / "worker.py"), task, str(scale), str(folder)], capture_output=True, text=True, env={**os.environ, **(env or {})})
    if p.returncode != 0:
        raise SystemExit(f"benchmark {task} at scale {scale} failed: {p.stderr.strip().splitlines()[-1:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


V1_COMMIT = "6bfe619"  # the last einet with only the reference network (snapshot format v1)
V1_STORE = """
import json, sys, time
from pathlib import Path
from einet import NetworkConfig, Session
s = Session(NetworkConfig(scale=float(sys.argv[1]))); s.build(); s.run(1000.0)
path = Path(sys.argv[2]) / "einet-v1.h5"
path.unlink(missing_ok=True)
t0 = time.perf_counter(); s.store(path); seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "bytes": path.stat().st_size}))
"""


def work_v1(scale: float, folder: Path) -> dict[str, Any] | None:
    """The same store with einet's reference-only code of before the generic snapshot (from
    git history), so the generic path's cost is measured in the same run, on the same machine."""
    tree = folder / "einet-v1"
    if not tree.exists():
        tree.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(HERE.parent), "archive", V1_COMMIT, "einet"], capture_output=True)
        if archive.returncode != 0:
            return None  # not a git checkout with that history
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    p = subprocess.run([sys.executable, "-c", V1_STORE, str(scale), str(folder)], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(tree)}, cwd=tree)
    if p.returncode != 0:
        return None
    return json.loads(p.stdout.strip().splitlines()[-1])


def verdict(ok: bool) -> str:
    return "yes" if ok else "**no**"


def snapshot_rows(scale: float, folder: Path, large: bool) -> list[str]:
    ex_store = work("store-example", scale, folder)
    ei_store = work("store-einet", scale, folder)
    speed = ex_store["seconds"] / ei_store["seconds"]
    mem = ei_store["peak_extra_mb"] / max(ex_store["peak_extra_mb"], 1e-9)
    size = ei_store["bytes"] / ex_store["bytes"]
    s = int(scale)
    rows = [
        f"| {s} | store time | {ex_store['seconds']:.2f} s | {ei_store['seconds']:.2f} s | {speed:.2f}x faster | ≥ {STORE_SPEEDUP.get(s, 2.0)}x | {verdict(speed >= STORE_SPEEDUP.get(s, 2.0))} |",
        f"| {s} | store peak extra memory | {ex_store['peak_extra_mb']:.0f} MB | {ei_store['peak_extra_mb']:.0f} MB | {mem:.3f}x | ≤ 0.1x{' and < 1 GB' if large else ''} | {verdict(mem <= 0.1 and (not large or ei_store['peak_extra_mb'] < 1024))} |",
        f"| {s} | file size | {ex_store['bytes'] / 1e6:.1f} MB | {ei_store['bytes'] / 1e6:.1f} MB | {size:.2f}x | ≤ 0.3x | {verdict(size <= 0.3)} |",
    ]
    scaling = work("store-scaling", scale, folder)
    secs = scaling["seconds"]
    two = secs[0] / secs[1]
    rows.append(f"| {s} | fetching and reading connections (the part workers share), 1→2 workers | {secs[0]:.2f} s | {secs[1]:.2f} s | {two:.2f}x faster | ≥ 1.6x (0.8 × workers) | {verdict(two >= 1.6)} |")
    if len(secs) > 2:
        rows.append(f"| {s} | … 1..{len(secs)} workers | | " + " / ".join(f"{x:.2f}" for x in secs) + " s | | | |")
    bg = work("store-background", scale, folder)
    rows.append(
        f"| {s} | simulation paused by a background store (settings, counts, fork), longest of {bg['pairs']} | | {1000 * bg['pause_s']:.0f} ms | | ≤ {1000 * PAUSE_S.get(s, 0.6):.0f} ms | {verdict(bg['pause_s'] <= PAUSE_S.get(s, 0.6))} |"
    )
    rows.append(_overlap_row(s, bg, "NEST on both cores"))
    cow = work("copy-on-write-cost", scale, folder)
    cores = os.cpu_count() or 1
    rows += [
        f"| {s} | … 1 s of simulation alone vs while a forked process holds the kernel copy-on-write (what a waiting store costs it; "
        f"{cow['copied_mb']:.0f} MB copied, {1000 * cow['copy_sys_s']:.0f} ms of kernel time), medians of {cow['reps']} "
        f"| {cow['alone_s']:.2f} s | {cow['held_s']:.2f} s | {cow['alone_s'] / cow['held_s']:.2f}x | | |",
        f"| {s} | … cores NEST keeps busy during 1 s of simulation (CPU time / wall time; an idle-priority store gets the rest) | | {cow['busy_cores']:.2f} of {cores} | | | |",
    ]
    passive = work("simulate-busy", scale, folder, env={"OMP_WAIT_POLICY": "passive"})
    rows.append(
        f"| {s} | … 1 s of simulation, NEST's threads spinning at their barriers (default) vs sleeping (OMP_WAIT_POLICY=passive: "
        f"{passive['busy_cores']:.2f} of {cores} cores busy), medians of {passive['reps']} | {cow['alone_s']:.2f} s | {passive['seconds']:.2f} s | {cow['alone_s'] / passive['seconds']:.2f}x | | |"
    )
    if not large:
        rows.append(_overlap_row(s, work("store-background-free-core", scale, folder), "NEST on 1 thread, a core free"))
    rows.append(
        f"| {s} | background store peak extra memory, all processes (PSS) | {ex_store['peak_extra_mb']:.0f} MB | {bg['peak_extra_mb']:.0f} MB | {bg['peak_extra_mb'] / max(ex_store['peak_extra_mb'], 1e-9):.3f}x | ≤ 0.1x | {verdict(bg['peak_extra_mb'] <= 0.1 * ex_store['peak_extra_mb'])} |"
    )
    v1 = work_v1(scale, folder)
    if v1 is not None:
        t, b = ei_store["seconds"] / v1["seconds"], ei_store["bytes"] / v1["bytes"]
        rows.append(f"| {s} | generic store (any network, format v2, every core) vs einet 0.1's reference-only store (v1, one core): time | {v1['seconds']:.2f} s | {ei_store['seconds']:.2f} s | {t:.2f}x | ≤ 1.05x | {verdict(t <= 1.05)} |")
        rows.append(f"| {s} | … file size | {v1['bytes'] / 1e6:.2f} MB | {ei_store['bytes'] / 1e6:.2f} MB | {b:.2f}x | ≤ 1.05x | {verdict(b <= 1.05)} |")
    if not large:
        ex_restore = work("restore-example", scale, folder)
        ei_restore = work("restore-einet", scale, folder)
        r = ei_restore["seconds"] / ex_restore["seconds"]
        kernel = work("restore-einet-kernel-only", scale, folder)
        rows.append(f"| {s} | restore time, median of 3 (einet: read + validate in a child process, then rebuild) | {ex_restore['seconds']:.3f} s | {ei_restore['seconds']:.3f} s | {r:.2f}x | ≤ 1.2x | {verdict(r <= 1.2)} |")
        rows.append(f"| {s} | … of which NEST rebuild alone (einet also restores delay and Kplus) | {ex_restore['seconds']:.3f} s | {kernel['seconds']:.3f} s | {kernel['seconds'] / ex_restore['seconds']:.2f}x | | |")
        rehearsed = work("restore-einet-rehearsed", scale, folder)
        rows.append(
            f"| {s} | … over a running network, rehearsed first in a fresh process (once per file and session) vs into an empty session | {ei_restore['seconds']:.3f} s | {rehearsed['seconds']:.3f} s | {rehearsed['seconds'] / ei_restore['seconds']:.2f}x | | |"
        )
        clock = work("restore-einet-clock", scale, folder)
        at = clock["seconds"]
        for t_s in ("10", "1000"):
            rows.append(
                f"| {s} | … NEST rebuild of the snapshot stored at {t_s} s vs at 1 s (the clock brought to the stored time in steps of {clock['min_delay_ms']:g} ms) | {at['1']:.3f} s | {at[t_s]:.3f} s | {at[t_s] / at['1']:.2f}x | | |"
            )
    return rows


def _overlap_row(s: int, bg: dict[str, Any], cores: str) -> str:
    ratio, spread = bg["sequential_s"] / bg["overlapped_s"], bg["ratios"]
    return (
        f"| {s} | store + 1 s of simulation ({cores}): one after the other vs background store during it, medians of {bg['pairs']} alternating pairs "
        f"(pairs {min(spread):.2f}x–{max(spread):.2f}x) | {bg['sequential_s']:.2f} s | {bg['overlapped_s']:.2f} s | {ratio:.2f}x | ≥ 1.0x | {verdict(ratio >= 1.0)} |"
    )


def engine_rows(scale: float, folder: Path, reps: int = 5) -> list[str]:
    # interleaved repetitions, medians: this shared machine's speed drifts by ±10 % minute to minute
    bare, eng = [], []
    for _ in range(reps):
        bare.append(work("simulate-bare", scale, folder))
        eng.append(work("simulate-engine", scale, folder))
    b = statistics.median(r["seconds"] for r in bare)
    e = statistics.median(r["seconds"] for r in eng)
    thr = b / e
    s = int(scale)
    return [
        f"| {s} | Simulate(1000 ms), median of {reps}: bare in-process vs engine consuming every frame ({eng[0]['frames']} frames) | {b:.2f} s | {e:.2f} s | {thr:.2f}x throughput | ≥ 0.95x | {verdict(thr >= 0.95)} |",
    ]


def dashboard_rows(scale: float, folder: Path) -> list[str]:
    script = HERE / "tui_latency.py"
    if not script.exists():
        return []
    p = subprocess.run([sys.executable, str(script), str(scale), str(folder)], capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"dashboard benchmark failed: {p.stderr.strip().splitlines()[-1:]}")
    d = json.loads(p.stdout.strip().splitlines()[-1])
    s = int(scale)
    return [
        f"| {s} | key latency while simulating, p50 / p95 of {d['presses']} presses | | {d['p50_ms']:.0f} / {d['p95_ms']:.0f} ms | | p95 ≤ 100 ms | {verdict(d['p95_ms'] <= 100)} |",
        f"| {s} | dashboard process CPU while idle (engine built, nothing running) | | {d['idle_cpu_pct']:.1f} % | | | |",
    ]


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--scales", type=float, nargs="+", default=[1, 4])
    p.add_argument("--readme", type=Path)
    p.add_argument("--large", action="store_true", help="snapshot store only (scale 10 takes minutes)")
    args = p.parse_args()
    header = [
        "| scale | measure | example's way | einet | ratio | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    rows: list[str] = []
    with tempfile.TemporaryDirectory(prefix="einet-bench-") as tmp:
        for scale in args.scales:
            folder = Path(tmp) / f"s{scale:g}"
            print(f"scale {scale:g}: snapshot ...", file=sys.stderr, flush=True)
            rows += snapshot_rows(scale, folder, args.large)
            if not args.large:
                print(f"scale {scale:g}: engine ...", file=sys.stderr, flush=True)
                rows += engine_rows(scale, folder)
                rows += dashboard_rows(scale, folder)
    cpu = platform.processor() or platform.machine()
    table = "\n".join([f"Measured {date.today()} on {cpu}, {subprocess.os.cpu_count()} cores, 2 NEST threads, `make {'bench-large' if args.large else 'bench'}`:", "", *header, *rows])
    print(table)
    if args.readme:
        write_table(args.readme, MARKERS[args.large], table)
    return 0


def write_table(readme: Path, markers: tuple[str, str], table: str) -> None:
    """Put ``table`` between the README's markers (appended with them if they are missing)."""
    start, end = markers
    text = readme.read_text()
    block = f"{start}\n{table}\n{end}"
    if start in text and end in text:
        text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text += "\n" + block + "\n"
    readme.write_text(text)


if __name__ == "__main__":
    sys.exit(main())

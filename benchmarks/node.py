"""Node scale: storing and restoring a network that fills a compute node, against NEST's own
build of it, in one run (each number from a fresh process: benchmarks/worker.py).

    python benchmarks/node.py --scale 40 --readme README.md      # make bench-node

Measured: NEST's build (Create + Connect) and its memory; a store with the C++ accelerator
and through PyNEST (EINET_ACCEL=0), their peak extra memory (PSS, every process); the pause
of a background store; a restore into a fresh process, and its peak memory against the build's.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run import measured, verdict, work, write_table  # the script's folder is on the path: the benchmarks share their runner

from einet.children import holding_a_network

MARKERS = ("<!-- bench-node:start -->", "<!-- bench-node:end -->")


def timed_cli(*args: str) -> float:
    """Wall seconds of one `einet` command (what a user runs), failing loudly."""
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "einet.cli", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"einet {' '.join(args)} failed: {done.stderr.strip().splitlines()[-1:]}")
    return time.perf_counter() - t0


def checkpoint_row(scale: float, folder: Path, t_ms: float, every_ms: float) -> str:
    """A run with checkpoints against the same run without, whole `einet run` processes."""
    common = ["run", "--scale", f"{scale:g}", "--t", f"{t_ms:g}", "--no-history", "--json"]
    plain = timed_cli(*common)
    checked = timed_cli(*common, "--checkpoint-every", f"{every_ms:g}", "--checkpoint-dir", str(folder / "checkpoints"))
    taken = len(list((folder / "checkpoints").glob("ckpt-*.h5")))
    cost = checked / plain - 1
    # a checkpoint not written costs nothing: the target holds only if they were written
    return f"| {scale:g} | `einet run --t {t_ms:g}` with `--checkpoint-every {every_ms:g}` ({taken} kept) vs without, whole processes | {plain:.0f} s | {checked:.0f} s | {100 * cost:+.1f} % | ≤ +10 %, checkpoints written | {verdict(cost <= 0.10 and taken > 0)} |"


def rows(scale: float, folder: Path, pynest: bool) -> list[str]:
    build = work("node-build", scale, folder)
    store = work("node-store", scale, folder)
    if not store["accelerated"]:
        raise SystemExit("the accelerator was not used: see `python -m einet.accel`")
    slow = work("node-store", scale, folder / "pynest", env={"EINET_ACCEL": "0"}) if pynest else None
    pause = work("node-pause", scale, folder, env=holding_a_network(os.environ))  # as the dashboard's engine is started
    restore = work("node-restore", scale, folder)
    s, b, nest_mb = f"{scale:g}", build["seconds"], build["pss_mb"]
    out = [
        f"| {s} | network: {build['connections'] / 1e6:.1f}M connections, NEST's process {nest_mb / 1024:.1f} GB | | | | | |",
        f"| {s} | store (accelerator) vs NEST's build | {b:.1f} s | {store['seconds']:.1f} s | {store['seconds'] / b:.2f}x | ≤ 1x | {verdict(store['seconds'] <= b)} |",
    ]
    if slow is not None:
        out.append(f"| {s} | store through PyNEST (EINET_ACCEL=0, forked readers) vs accelerated | {slow['seconds']:.1f} s | {store['seconds']:.1f} s | {slow['seconds'] / store['seconds']:.1f}x faster | | |")
    peak = store["peak_extra_mb"]
    out += [
        f"| {s} | store peak extra memory (PSS, all processes) vs NEST's | {nest_mb / 1024:.2f} GB | {peak / 1024:.2f} GB | {peak / nest_mb:.2f}x | ≤ 0.25x | {verdict(peak <= 0.25 * nest_mb)} |",
        f"| {s} | background store: pause of the simulation (longest of 3; in a process started as the dashboard's engine is) | | {pause['seconds'] * 1000:.0f} ms | | ≤ 200 ms | {verdict(pause['seconds'] <= 0.2)} |",
        f"| {s} | restore into a fresh process vs NEST's build | {b:.1f} s | {restore['seconds']:.1f} s | {restore['seconds'] / b:.2f}x | ≤ 1.5x | {verdict(restore['seconds'] <= 1.5 * b)} |",
        f"| {s} | restore peak memory (VmHWM) vs NEST's build and 20 ms run | {build['peak_mb'] / 1024:.2f} GB | {restore['peak_mb'] / 1024:.2f} GB | {restore['peak_mb'] / build['peak_mb']:.2f}x | ≤ 1.25x | {verdict(restore['peak_mb'] <= 1.25 * build['peak_mb'])} |",
        f"| {s} | restore: connection tables held beside NEST, as arrays vs deflated (a block inflated at a time) | {restore['tables_mb']:.0f} MiB | {restore['tables_held_mb']:.0f} MiB | {restore['tables_held_mb'] / restore['tables_mb']:.2f}x | | |",
        f"| {s} | file size | | {store['bytes'] / 2**20:.0f} MiB | {store['bytes'] / build['connections']:.1f} B per connection | | |",
    ]
    return out


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--scale", type=float, default=40.0)
    p.add_argument("--no-pynest", action="store_true", help="skip the (slow) store through PyNEST")
    p.add_argument("--checkpoints", type=float, nargs=2, metavar=("T_MS", "EVERY_MS"), help="also time a run of T_MS with a checkpoint every EVERY_MS against one without")
    p.add_argument("--readme", type=Path)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="einet-bench-node-") as tmp:
        table_rows = rows(args.scale, Path(tmp), not args.no_pynest)
        if args.checkpoints:
            table_rows.append(checkpoint_row(args.scale, Path(tmp), *args.checkpoints))
    table = measured("2 NEST threads, `make bench-node`", ["| scale | measure | NEST / PyNEST | einet | ratio | target | met |", "|---|---|---|---|---|---|---|", *table_rows])
    print(table)
    if args.readme:
        write_table(args.readme, MARKERS, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""1 rank × 2 threads against 2 ranks × 1 thread, in one run, on the MPI NEST of `make setup-mpi`.

    python benchmarks/mpi.py --scale 4 --readme README.md

Both layouts run the reference network through the engine (the same MPI build of NEST, so
only the layout differs): build, 1 s of simulation, store, restore. Each rank's peak memory
(VmHWM) is summed, and rank 0's is shown alone (it gathers a store and holds the whole file
on a restore). Same total virtual processes: the two restored runs give one digest where both
restores write the snapshot's hidden state, or neither does.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from run import measured, write_table  # the script's folder is on the path: the benchmarks share their runner

from einet.config import NetworkConfig
from einet.engine import Engine, result_from_message
from einet.engine.launch import MpiLaunch

MARKERS = ("<!-- bench-mpi:start -->", "<!-- bench-mpi:end -->")
CALL_S = 3600.0


def peak_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as fh:
            total += next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
    return total / 1024


def layout(ranks: int, threads: int, scale: float, folder: Path) -> dict[str, float | str]:
    eng = Engine(mpi=MpiLaunch(ranks), hang_timeout_s=600)
    out: dict[str, float | str] = {}
    try:
        tic = time.perf_counter()
        eng.start(timeout_s=120)
        out["start_s"] = time.perf_counter() - tic
        tic = time.perf_counter()
        eng.call("build", CALL_S, config=NetworkConfig(scale=scale, threads=threads, t_sim_ms=1000.0).to_dict())
        out["build_s"] = time.perf_counter() - tic
        out["simulate_s"] = result_from_message(eng.call("run", CALL_S, t_ms=1000.0)).wall_s
        path = folder / f"{ranks}x{threads}.h5"
        tic = time.perf_counter()
        eng.call("store", CALL_S, path=str(path))
        out["store_s"] = time.perf_counter() - tic
        out["file_mb"] = path.stat().st_size / 1e6
        tic = time.perf_counter()
        restored = eng.call("restore", CALL_S, path=str(folder / "1x2.h5"), threads=threads)
        out["restore_s"] = time.perf_counter() - tic
        out["exact"] = "the continued run" if restored.get("exact") else f"not exact: {restored.get('hidden_note') or 'no hidden state written'}"
        out["digest"] = result_from_message(eng.call("run", CALL_S, t_ms=200.0)).digest
        out["peak_mb"] = peak_mb(eng.rank_pids)
        out["rank0_peak_mb"] = peak_mb(eng.rank_pids[:1])
    finally:
        eng.close(timeout_s=60)
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--scale", type=float, default=4.0)
    p.add_argument("--readme", type=Path)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="einet-bench-mpi-") as tmp:
        folder = Path(tmp)
        one = layout(1, 2, args.scale, folder)  # first: it writes the file both restore
        two = layout(2, 1, args.scale, folder)
    rows = [
        ("build", "build_s", "s"),
        ("simulate 1 s", "simulate_s", "s"),
        ("store", "store_s", "s"),
        ("restore (the 1×2 file)", "restore_s", "s"),
        ("snapshot file", "file_mb", "MB"),
        ("peak memory, all ranks", "peak_mb", "MB"),
        ("peak memory, rank 0 (target at 2 ranks: ≤ 0.6x)", "rank0_peak_mb", "MB"),
    ]
    lines = [
        "| step | 1 rank × 2 threads | 2 ranks × 1 thread | ratio |",
        "|---|---|---|---|",
    ]
    for label, key, unit in rows:
        a, b = float(one[key]), float(two[key])
        lines.append(f"| {label} | {a:.2f} {unit} | {b:.2f} {unit} | {b / a:.2f}x |")
    same = "identical" if one["digest"] == two["digest"] else f"different (digests {str(one['digest'])[:12]} and {str(two['digest'])[:12]})"
    lines += [
        "",
        f"The 1×2 snapshot restored into both layouts and run for 200 ms: spikes {same}; the 1×2 restore is {one['exact']}, the 2×1 restore {two['exact']}.",
    ]
    table = measured(f"scale {args.scale:g}, the MPI build of NEST 3.10, `make bench-mpi`", lines)
    print(table)
    if args.readme:
        write_table(args.readme, MARKERS, table)


if __name__ == "__main__":
    main()

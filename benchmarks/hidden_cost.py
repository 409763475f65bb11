"""What the hidden section (docs/hidden-state.md) adds to a store and to a restore, in one
process: the reference network stored with and without it, and each file restored, in
turns (``--reps`` of each); the medians' difference against the time without.

    .venv/bin/python benchmarks/hidden_cost.py --scales 1 4

A rough measure: on a shared machine run it when it is quiet. Without the section, the store
skips the hidden read (and the file its arrays); the restore of the file without it skips
the write (NEST's own Prepare, which the write makes, is then left to the next Simulate).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import einet.store as store_package  # noqa: E402 - after the path is set
from einet import NetworkConfig, Session  # noqa: E402


def measure(scale: float, reps: int, folder: Path) -> dict[str, float]:
    s = Session(NetworkConfig(scale=scale, threads=2, t_sim_ms=200.0, store_workers=1))
    s.build()
    s.run(200.0)
    take = store_package.take_hidden
    with_path, without_path = folder / "with.h5", folder / "without.h5"
    s.store(folder / "warm.h5", overwrite=True)  # first use in the process: builds, loads, checks
    times: dict[str, list[float]] = {"store": [], "store, no hidden": [], "restore": [], "restore, no hidden": []}
    for _ in range(reps):
        for hidden in (True, False):
            store_package.take_hidden = take if hidden else (lambda plan: None)  # type: ignore[assignment]
            t0 = time.perf_counter()
            s.store(with_path if hidden else without_path, overwrite=True)
            times["store" if hidden else "store, no hidden"].append(time.perf_counter() - t0)
    store_package.take_hidden = take
    Session().restore(with_path)  # the first in the process: its full read-back check
    for _ in range(reps):
        for hidden in (True, False):
            r = Session()  # as `einet restore` does: no running network, so no rehearsal
            t0 = time.perf_counter()
            r.restore(with_path if hidden else without_path)
            times["restore" if hidden else "restore, no hidden"].append(time.perf_counter() - t0)
            if hidden and not r.exact:
                raise SystemExit(f"the restore was not exact: {r.hidden_note}")
    out = {k: statistics.median(v) for k, v in times.items()}
    out["file MB"] = with_path.stat().st_size / 1e6
    out["file MB, no hidden"] = without_path.stat().st_size / 1e6
    return out


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--scales", type=float, nargs="+", default=[1, 4])
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args()
    print("| scale | store without / with the section | added | restore without / with | added | file without / with |")
    print("|---|---|---|---|---|---|")
    for scale in args.scales:
        with tempfile.TemporaryDirectory(prefix="einet-hcost-") as tmp:
            m = measure(scale, args.reps, Path(tmp))
        add_s = m["store"] / m["store, no hidden"] - 1
        add_r = m["restore"] / m["restore, no hidden"] - 1
        print(
            f"| {scale:g} | {m['store, no hidden']:.2f} / {m['store']:.2f} s | {100 * add_s:+.0f} % | {m['restore, no hidden']:.2f} / {m['restore']:.2f} s | {100 * add_r:+.0f} % | {m['file MB, no hidden']:.1f} / {m['file MB']:.1f} MB |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What the hidden section (docs/hidden-state.md) adds to a store and to a restore, in one
process: the reference network stored with and without it, and each file restored, in
turns (``--reps`` of each); what it adds: the mean paired difference, with its 95 %
confidence interval, against the median time without.

    .venv/bin/python benchmarks/hidden_cost.py --scales 1 4

A rough measure: on a shared machine run it when it is quiet, or read the CPU seconds (this
process's, every thread's), which other processes' load disturbs less than the wall seconds.
Without the section, the store
skips the hidden read (and the file its arrays); the restore of the file without it skips
the write (NEST's own Prepare, which the write makes, is then left to the next Simulate).
Background stores (every checkpoint, and the dashboard's) are measured too: the pause the
simulation waits for, and the time until the file is written (a forked child reads the
section there).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scipy import stats

import einet.store as store_package
import einet.store.background as background_module
from einet import NetworkConfig, Session, open_snapshot


def measure(scale: float, reps: int, folder: Path) -> dict[str, Any]:
    s = Session(NetworkConfig(scale=scale, threads=2, t_sim_ms=200.0, store_workers=1))
    s.build()
    s.run(200.0)
    take = store_package.take_hidden
    with_path, without_path = folder / "with.h5", folder / "without.h5"
    s.store(folder / "warm.h5", overwrite=True)  # first use in the process: builds, loads, checks
    times: dict[str, list[float]] = {f"{what}{cpu}": [] for what in ("store", "store, no hidden", "restore", "restore, no hidden") for cpu in ("", " cpu")}
    for rep in range(reps):
        for hidden in (True, False)[:: 1 - 2 * (rep % 2)]:  # each first in turn
            store_package.take_hidden = take if hidden else (lambda plan: None)  # type: ignore[assignment]
            t0, c0 = time.perf_counter(), time.process_time()
            s.store(with_path if hidden else without_path, overwrite=True)
            key = "store" if hidden else "store, no hidden"
            times[key].append(time.perf_counter() - t0)
            times[f"{key} cpu"].append(time.process_time() - c0)
    store_package.take_hidden = take
    # a background store (every checkpoint, and the dashboard's): the simulation waits for
    # its pause only; a forked child reads the section and writes the file
    for what in ("pause", "pause, no hidden", "background", "background, no hidden"):
        times[what] = []
    for rep in range(reps):
        for hidden in (True, False)[:: 1 - 2 * (rep % 2)]:  # each first in turn
            background_module.take_hidden = take if hidden else (lambda plan, **_: None)  # type: ignore[assignment]
            handle = s.store(with_path if hidden else without_path, overwrite=True, background=True)
            handle.wait(600)
            if hidden and open_snapshot(with_path).hidden is None:
                raise SystemExit("the background store's child took no hidden section")
            suffix = "" if hidden else ", no hidden"
            times[f"pause{suffix}"].append(handle.pause_s)
            times[f"background{suffix}"].append(handle.seconds)
    background_module.take_hidden = take
    Session().restore(with_path)  # the first in the process: its full read-back check
    for rep in range(reps):
        for hidden in (True, False)[:: 1 - 2 * (rep % 2)]:  # each first in turn
            r = Session()  # as `einet restore` does: no running network, so no rehearsal
            t0, c0 = time.perf_counter(), time.process_time()
            r.restore(with_path if hidden else without_path)
            key = "restore" if hidden else "restore, no hidden"
            times[key].append(time.perf_counter() - t0)
            times[f"{key} cpu"].append(time.process_time() - c0)
            if hidden and not r.exact:
                raise SystemExit(f"the restore was not exact: {r.hidden_note}")
    out: dict[str, Any] = dict(times)
    out["file MB"] = with_path.stat().st_size / 1e6
    out["file MB, no hidden"] = without_path.stat().st_size / 1e6
    return out


def added(plain: list[float], hidden: list[float]) -> str:
    """What the section adds, as a share of the median time without it: the mean of the paired
    differences (each rep stores or restores both ways in turn) and its 95 % confidence
    interval, which the machine's noise widens; a median's difference alone hid it."""
    base = statistics.median(plain)
    ci = stats.ttest_rel(hidden, plain).confidence_interval(0.95)
    mean = statistics.fmean(h - p for h, p in zip(hidden, plain))
    return f"{100 * mean / base:+.0f} % ({100 * ci.low / base:+.0f} … {100 * ci.high / base:+.0f})"


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--scales", type=float, nargs="+", default=[1, 4])
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args()
    print(
        "| scale | store without / with the section (medians) | added (95 % CI) | CPU s without / with | added (95 % CI) | restore without / with | added (95 % CI) | CPU s without / with | added (95 % CI) | background store's pause without / with | added (95 % CI) | background store, until written | added (95 % CI) | file without / with |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for scale in args.scales:
        with tempfile.TemporaryDirectory(prefix="einet-hcost-") as tmp:
            m = measure(scale, args.reps, Path(tmp))
        cells = []
        for what, cpu in (("store", ""), ("store", " cpu"), ("restore", ""), ("restore", " cpu"), ("pause", ""), ("background", "")):
            plain, hidden = m[f"{what}, no hidden{cpu}"], m[f"{what}{cpu}"]
            unit = (1000, "ms") if what == "pause" else (1, "s")
            cells.append(f"{unit[0] * statistics.median(plain):.{0 if what == 'pause' else 2}f} / {unit[0] * statistics.median(hidden):.{0 if what == 'pause' else 2}f} {unit[1]} | {added(plain, hidden)}")
        print(f"| {scale:g} | {' | '.join(cells)} | {m['file MB, no hidden']:.1f} / {m['file MB']:.1f} MB |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

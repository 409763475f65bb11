"""Well-formed but hostile snapshots: written through einet's own writer (every checksum right),
holding values drawn at the extremes of what each model's keys take, wrong types, recording and
stimulation backends, labels naming paths outside, schedules, counts and protocol changes.

:func:`hostile_snapshot` makes one; :class:`Restorer` restores them one after the other in a
separate process that holds a running network, under a memory limit and a deadline, and says
what happened to each. Used by ``make fuzz`` and by a few cases in ``tests/test_hostile.py``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import resource
import select
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from einet import Snapshot
from einet.snapshot.model import NodeRun

ROOT = Path(__file__).resolve().parents[1]

NUMBERS: tuple[Any, ...] = (0, -0.0, -1, -1e-300, 1e-300, 1e300, -1e300, 1e23, -1e23, 2**31, 2**63 - 1, -(2**63), 1e9, 1e12, 0.001, 65536)
WRONG_TYPES: tuple[Any, ...] = ("x", "\x1b]52;c;ZXZpbA==\x07", "\x1b]0;owned\x07", [], [1.0, 2.0, 3.0], {"a": 1}, True, None)
BACKENDS = ("ascii", "screen", "mpi", "sionlib", "memory", "no_such_backend", "")
NEURONS = ("iaf_psc_alpha", "iaf_psc_exp", "aeif_cond_alpha", "hh_psc_alpha", "izhikevich", "parrot_neuron", "gif_psc_exp")
DEVICES = (
    "spike_generator",
    "step_current_generator",
    "inhomogeneous_poisson_generator",
    "poisson_generator",
    "gamma_sup_generator",
    "ppd_sup_generator",
    "sinusoidal_poisson_generator",
    "noise_generator",
    "dc_generator",
    "spike_recorder",
    "multimeter",
)


def _value(rng: random.Random) -> Any:
    return rng.choice(NUMBERS) if rng.random() < 0.75 else rng.choice(WRONG_TYPES)


def _set_uniform(run: NodeRun, key: str, value: Any) -> NodeRun:
    return dataclasses.replace(
        run,
        uniform={**run.uniform, key: value},
        columns={k: v for k, v in run.columns.items() if k != key},
        ragged={k: v for k, v in run.ragged.items() if k != key},
        varying={k: v for k, v in run.varying.items() if k != key},
    )


def hostile_snapshot(snap: Snapshot, rng: random.Random, outside: Path, defaults: dict[str, dict[str, Any]]) -> tuple[str, Snapshot]:
    """One hostile variant of ``snap`` and the kind of hostility. ``outside`` is where labels
    and paths point (nothing may appear there); ``defaults`` maps model names to their NEST
    defaults (the keys values are drawn for)."""
    kind = rng.choice(("node value", "synapse value", "kernel", "backend", "model call", "new device", "many nodes", "protocol"))
    nodes, synapses = list(snap.nodes), list(snap.synapses)
    label = rng.choice((str(outside / "evil"), "\x1b]52;c;ZXZpbA==\x07", str(outside / "sub" / "x"), "../../" + str(outside / "up")))
    if kind == "node value":
        i = rng.randrange(len(nodes))
        keys = sorted(set(nodes[i].keys()) | {k for k, v in defaults.get(nodes[i].model, {}).items() if isinstance(v, (int, float, str))})
        nodes[i] = _set_uniform(nodes[i], rng.choice(keys), _value(rng))
    elif kind == "synapse value":
        i = rng.randrange(len(synapses))
        t = synapses[i]
        key = rng.choice(sorted({"weight", "delay", "receptor_type", *t.columns, *t.uniform, *(k for k, v in defaults.get(t.model, {}).items() if isinstance(v, (int, float)))}))
        value = _value(rng)
        if rng.random() < 0.5 and isinstance(value, (int, float)) and not isinstance(value, bool):
            column = np.array(t.column(key) if key in t.columns or key in t.uniform else np.zeros(len(t)), dtype=float)
            column[rng.randrange(len(t))] = value  # one connection of many
            synapses[i] = dataclasses.replace(t, columns={**t.columns, key: column}, uniform={k: v for k, v in t.uniform.items() if k != key})
        else:
            synapses[i] = dataclasses.replace(t, uniform={**t.uniform, key: value}, columns={k: v for k, v in t.columns.items() if k != key})
    elif kind == "kernel":
        key = rng.choice(("resolution", "tics_per_ms", "min_delay", "max_delay", "spike_buffer_grow_extra", "wfr_comm_interval", "rng_type", "data_path", "data_prefix", "overwrite_files", "print_time"))
        value = rng.choice((str(outside), label, True)) if key in ("data_path", "data_prefix", "overwrite_files", "print_time", "rng_type") else _value(rng)
        snap = dataclasses.replace(snap, kernel={**snap.kernel, key: value}, kernel_set=tuple(dict.fromkeys((*snap.kernel_set, key))))
    elif kind == "backend":
        model = rng.choice(("spike_recorder", "multimeter", "poisson_generator", "spike_generator"))
        key, value = ("stimulus_source", rng.choice(BACKENDS)) if model.endswith("generator") else ("record_to", rng.choice(BACKENDS))
        params = {key: value, "label": label}
        if model == "multimeter":
            params["record_from"] = ["V_m"]
        if rng.random() < 0.5:
            nodes.append(NodeRun(snap.n_nodes + 1, rng.choice((1, 3)), model, params))
        else:  # as the model's defaults, or a copy of it
            op = rng.choice(("SetDefaults", "CopyModel"))
            call = {"op": op, "model": model, "params": params} if op == "SetDefaults" else {"op": op, "base": model, "model": f"evil_{model}", "params": params}
            snap = dataclasses.replace(snap, model_calls=(*snap.model_calls, call))
            nodes.append(NodeRun(snap.n_nodes + 1, 1, call["model"], {}))
    elif kind == "model call":
        model = rng.choice((*NEURONS, *DEVICES, "stdp_synapse", "tsodyks_synapse", "static_synapse"))
        keys = sorted(k for k, v in defaults.get(model, {}).items() if isinstance(v, (int, float, str)))
        params = {rng.choice(keys): _value(rng)} if keys else {"x": 1}
        op = rng.choice(("SetDefaults", "CopyModel"))
        call = {"op": op, "model": model, "params": params} if op == "SetDefaults" else {"op": op, "base": model, "model": f"copy_{model}", "params": params}
        snap = dataclasses.replace(snap, model_calls=(*snap.model_calls, call))
        if call["model"] not in (t.model for t in synapses) and model not in ("stdp_synapse", "tsodyks_synapse", "static_synapse"):
            nodes.append(NodeRun(snap.n_nodes + 1, 2, call["model"], {}))
    elif kind == "new device":
        model = rng.choice(DEVICES)
        n = rng.choice((1, 1000, 100_000, 3_000_000))
        times = np.sort(rng.choice((np.random.default_rng(rng.randrange(2**32)).uniform(snap.t_stored_ms + 0.1, snap.t_stored_ms + 1e4, n), np.full(n, rng.choice(NUMBERS[:10])))))
        ragged_key = {"spike_generator": "spike_times", "step_current_generator": "amplitude_times", "inhomogeneous_poisson_generator": "rate_times"}.get(model)
        run = NodeRun(snap.n_nodes + 1, 1, model, {"label": label})
        if ragged_key:
            run = dataclasses.replace(run, ragged={ragged_key: (times, np.array([0, n]))})
            partner = {"step_current_generator": "amplitude_values", "inhomogeneous_poisson_generator": "rate_values"}.get(model)
            if partner:
                run = dataclasses.replace(run, ragged={**run.ragged, partner: (np.full(n, float(rng.choice((1.0, 1e9, -1e300)))), np.array([0, n]))})
        else:
            keys = sorted(k for k, v in defaults.get(model, {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool))
            if keys:
                run = _set_uniform(run, rng.choice(keys), _value(rng))
        nodes.append(run)
    elif kind == "many nodes":
        nodes.append(NodeRun(snap.n_nodes + 1, rng.choice((10_000, 1_000_000, 100_000_000, 10**12)), rng.choice(NEURONS), {}))
    else:  # a stored protocol change
        targets = (*snap.groups, *(r.model for r in nodes), *(t.model for t in synapses))
        key = rng.choice(("rate", "V_m", "C_m", "I_e", "weight", "record_to", "stimulus_source", "label", "frozen", "origin", "start", "stop", "spike_times"))
        value = rng.choice(BACKENDS) if key in ("record_to", "stimulus_source") else _value(rng)
        t_ms = rng.choice((snap.t_stored_ms + 0.1, snap.t_stored_ms + 1e6, 1e300, -5.0, snap.t_stored_ms))
        snap = dataclasses.replace(snap, protocol=(*snap.protocol, {"t_ms": t_ms, "target": rng.choice(targets), "key": key, "value": value}))
    return kind, dataclasses.replace(snap, nodes=tuple(nodes), synapses=tuple(synapses))


WORKER = r"""
import json, sys
from einet import NetworkConfig, Session, SnapshotError
from einet.protocol import ProtocolError
s = Session(NetworkConfig(scale=0.02, t_sim_ms=20.0))
s.build()
s.run()
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    path = json.loads(line)["path"]
    before = s.time_ms
    try:
        s.restore(path)
    except (SnapshotError, ProtocolError) as exc:
        kept = s.time_ms == before and s.run(1.0).origin.kind == "continued"
        reply = {"outcome": "refused" if kept else "lost", "message": str(exc)}
    except BaseException as exc:
        reply = {"outcome": "lost" if s.network is None else "raised", "message": f"{type(exc).__name__}: {exc}"[:300]}
        if s.network is None:
            s.build()
            s.run()
    else:
        try:
            s.run(1.0)
            reply = {"outcome": "restored", "message": ""}
        except BaseException as exc:
            reply = {"outcome": "restored, run failed", "message": f"{type(exc).__name__}: {exc}"[:300]}
    print(json.dumps(reply), flush=True)
"""


class Restorer:
    """A process holding a running network that restores the files it is given, under a memory
    limit and a deadline per file; it is started again after a hang or a crash."""

    def __init__(self, folder: Path, memory_bytes: int = 4 << 30, deadline_s: float = 120.0) -> None:
        self.folder, self.memory_bytes, self.deadline_s = folder, memory_bytes, deadline_s
        self.proc: subprocess.Popen[str] | None = None

    def _start(self) -> subprocess.Popen[str]:
        limit = self.memory_bytes

        def limited() -> None:
            resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))

        proc = subprocess.Popen(
            [sys.executable, "-c", WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=self.folder, preexec_fn=limited, start_new_session=True, env={**os.environ, "PYTHONPATH": str(ROOT)}
        )
        assert self._reply(proc, 300.0) == {"ready": True}
        return proc

    def _reply(self, proc: subprocess.Popen[str], timeout: float) -> dict[str, Any] | None:
        assert proc.stdout is not None
        if not select.select([proc.stdout], [], [], timeout)[0]:
            return None
        line = proc.stdout.readline()
        return json.loads(line) if line else {"outcome": "died", "message": f"exit {proc.wait(10)}"}

    def restore(self, path: Path) -> dict[str, Any]:
        """What happened: outcome ``refused`` (network kept), ``restored`` (and ran), or a
        violation: ``hang``, ``died``, ``lost``, ``raised``, ``restored, run failed``."""
        if self.proc is None:
            self.proc = self._start()
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"path": str(path)}) + "\n")
        self.proc.stdin.flush()
        reply = self._reply(self.proc, self.deadline_s)
        if reply is None:
            reply = {"outcome": "hang", "message": f"no answer within {self.deadline_s:g} s"}
        if reply["outcome"] in ("hang", "died"):
            self.close()
        return reply

    def close(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None

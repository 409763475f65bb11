"""einet owns the kernel while a model builds: what the model does is recorded, and its own
choices of threads and seed give way to einet's.

Models are written the way NEST's examples are: they may call ``nest.ResetKernel()``, set
``nest.local_num_threads`` or ``nest.rng_seed``, copy models and print progress. PyNEST routes
every such call through a handful of functions of its kernel module (``nestkernel_api``), so
wrapping those for the duration of the build sees them all, whether the model uses the ``nest``
it was given or its own ``import nest``:

- ``ResetKernel`` resets and then sets einet's threads and seed again;
- kernel settings of threads, virtual processes and seed are dropped (einet's win), others
  pass and the ones that shape the network (resolution, delays, …) are remembered;
- ``CopyModel`` and ``SetDefaults`` are recorded, so a snapshot can replay them;
- spatial ``Create`` calls are recorded, so a snapshot can keep node positions.

Everything the model prints goes to the log, never to the terminal or ``--json`` output.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .kernel import nest_output_to
from .nest_api import kernel_api

OWNED_KERNEL_KEYS = ("local_num_threads", "total_num_virtual_procs", "rng_seed")
SHAPING_KERNEL_KEYS = (
    "resolution",
    "tics_per_ms",
    "min_delay",
    "max_delay",
    "rng_type",
    "use_wfr",
    "wfr_comm_interval",
    "wfr_tol",
    "wfr_max_iterations",
    "wfr_interpolation_order",
    "off_grid_spiking",
    "keep_source_table",
    "use_compressed_spikes",
    "spike_buffer_grow_extra",
)
"""Kernel settings that change what a network is or does, kept in a snapshot when set."""


@dataclass
class BuildRecord:
    """What a model did to the kernel while einet watched."""

    model_calls: list[dict[str, Any]] = field(default_factory=list)
    kernel_set: dict[str, Any] = field(default_factory=dict)
    layers: list[Any] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def plain(value: Any) -> Any:
    """NumPy scalars and arrays as plain JSON-able Python values (others unchanged)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def apply_owned(threads: int, seed: int) -> None:
    """Set threads (must come first after a reset) and seed through the unwrapped kernel."""
    api = kernel_api()
    setter = getattr(api.llapi_set_kernel_status, "__wrapped__", api.llapi_set_kernel_status)
    setter({"local_num_threads": threads})
    setter({"rng_seed": seed})


@contextlib.contextmanager
def model_owned_by_einet(threads: int, seed: int, log_path: str | None = None) -> Iterator[BuildRecord]:
    """Reset the kernel, set einet's threads and seed, and watch the model build."""
    api = kernel_api()
    record = BuildRecord()
    original = {name: getattr(api, name) for name in ("llapi_reset_kernel", "llapi_set_kernel_status", "llapi_copy_model", "llapi_set_defaults", "llapi_create_spatial")}

    def reset_kernel() -> None:
        original["llapi_reset_kernel"]()
        apply_owned(threads, seed)
        record.model_calls.clear()
        record.kernel_set.clear()
        record.layers.clear()
        record.notes.append("the model reset the kernel; einet set its threads and seed again")

    def set_kernel_status(params: dict[str, Any]) -> Any:
        params = dict(params)
        for key in OWNED_KERNEL_KEYS:
            if key in params:
                asked = params.pop(key)
                own = threads if key != "rng_seed" else seed
                if key != "total_num_virtual_procs" and asked != own:
                    record.notes.append(f"the model set {key} = {asked}; einet keeps {own}")
        for key in SHAPING_KERNEL_KEYS:
            if key in params:
                record.kernel_set[key] = plain(params[key])
        return original["llapi_set_kernel_status"](params) if params else None

    def copy_model(existing: str, new: str, params: dict[str, Any]) -> Any:
        out = original["llapi_copy_model"](existing, new, params)
        record.model_calls.append({"op": "CopyModel", "model": str(new), "base": str(existing), "params": plain(dict(params or {}))})
        return out

    def set_defaults(model: str, params: dict[str, Any]) -> Any:
        out = original["llapi_set_defaults"](model, params)
        record.model_calls.append({"op": "SetDefaults", "model": str(model), "params": plain(dict(params or {}))})
        return out

    def create_spatial(specs: dict[str, Any]) -> Any:
        layer = original["llapi_create_spatial"](specs)
        record.layers.append(layer)
        return layer

    set_kernel_status.__wrapped__ = original["llapi_set_kernel_status"]  # type: ignore[attr-defined]
    wrapped = {
        "llapi_reset_kernel": reset_kernel,
        "llapi_set_kernel_status": set_kernel_status,
        "llapi_copy_model": copy_model,
        "llapi_set_defaults": set_defaults,
        "llapi_create_spatial": create_spatial,
    }
    try:
        with nest_output_to(log_path), _python_output_to(log_path):
            original["llapi_reset_kernel"]()
            apply_owned(threads, seed)
            for name, fn in wrapped.items():
                setattr(api, name, fn)
            try:
                yield record
            finally:
                for name, fn in original.items():
                    setattr(api, name, fn)
    finally:
        # outside the redirection: inside it, these went to the log with the model's output
        for note in record.notes:
            print(f"einet: {note}", file=sys.stderr)


@contextlib.contextmanager
def output_to_log(log_path: str | None = None) -> Iterator[None]:
    """Everything printed meanwhile, by NEST's C++ or by Python, goes to the log."""
    with nest_output_to(log_path), _python_output_to(log_path):
        yield


@contextlib.contextmanager
def _python_output_to(log_path: str | None) -> Iterator[None]:
    """Python-level prints of the model go to the log too (file descriptors are not enough:
    ``sys.stdout`` buffers and would flush onto the terminal after the build)."""
    from .kernel import current_log_path

    target = log_path or current_log_path()
    with open(target, "a", buffering=1, encoding="utf-8", errors="replace") if target != os.devnull else io.StringIO() as sink, contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        yield

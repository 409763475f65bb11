"""What einet is asked to simulate: which model, at what scale, with which parameters, and how.

A :class:`NetworkConfig` names a *model* (a Python function that builds a network with plain
PyNEST calls, see :mod:`einet.models`), the ``scale`` and ``params`` passed to it, and what
einet owns: threads, seed and the length of one run.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import stat
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from .text import one_line

DEFAULT_MODEL = "einet.models.brunel_stdp"
"""The built-in reference network: NEST's store/restore example (2000 E + 500 I, STDP)."""

SEED_MAX = 2**31 - 1
"""NEST accepts rng_seed in [1, 2**31 - 1]."""

_OWN_KEYS = ("model", "scale", "threads", "seed", "t_sim_ms", "store_workers", "protocol")
_MAX_CONFIG_BYTES = 1 << 20


class ConfigError(ValueError):
    """A configuration value is out of range or of the wrong type."""


@dataclass(frozen=True)
class NetworkConfig:
    """The model to build and how einet runs it.

    ``model`` is ``"package.module"``, ``"path/to/file.py"``, either optionally followed by
    ``":function"`` (default function: ``build``). ``scale`` and ``params`` are passed to it as
    ``build(nest, scale=scale, **params)``. Threads and seed are einet's: it sets them on a
    fresh kernel before calling the model, and they win over what the model sets.
    """

    model: str = DEFAULT_MODEL
    scale: float = 1.0
    params: dict[str, Any] = field(default_factory=dict)
    threads: int = 2
    seed: int = 12345
    t_sim_ms: float = 1000.0
    store_workers: int = 0
    """Processes reading connections when storing; 0: the usable cores."""
    protocol: tuple[dict[str, Any], ...] = ()
    """Changes at chosen times (``t_ms``, ``target``, ``key``, ``value``; see :mod:`einet.protocol`)."""

    def __post_init__(self) -> None:
        checks = [
            (isinstance(self.model, str) and bool(self.model.strip()), "model must be a non-empty string"),
            (isinstance(self.scale, (int, float)) and math.isfinite(self.scale) and self.scale > 0, f"scale must be a positive finite number, not {self.scale}"),
            (isinstance(self.threads, int) and self.threads >= 1, f"threads must be >= 1, not {self.threads}"),
            (isinstance(self.seed, int) and 1 <= self.seed <= SEED_MAX, f"seed must be in [1, {SEED_MAX}], not {self.seed}"),
            (isinstance(self.t_sim_ms, (int, float)) and math.isfinite(self.t_sim_ms) and 0 < self.t_sim_ms <= 1e12, f"t must be a positive finite time in ms, at most 1e12 (30 years), not {self.t_sim_ms}"),
            (isinstance(self.store_workers, int) and 0 <= self.store_workers <= 4096, f"store workers must be >= 0 (0: every usable core), not {self.store_workers}"),
            (isinstance(self.params, dict) and all(isinstance(k, str) for k in self.params), "params must be a mapping of names to values"),
            (isinstance(self.protocol, tuple) and all(isinstance(c, dict) for c in self.protocol), "protocol must be a list of tables (t_ms, target, key, value)"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        try:
            json.dumps(self.params, allow_nan=False)
        except (TypeError, ValueError):
            raise ConfigError("model parameters must be numbers, strings, booleans or lists of them") from None

    @property
    def is_reference(self) -> bool:
        return self.model == DEFAULT_MODEL

    def replace(self, **changes: Any) -> NetworkConfig:
        """A copy with some fields changed; ``None`` values are ignored (unset CLI flags)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise ConfigError(f"unknown configuration keys: {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)

    def with_params(self, **params: Any) -> NetworkConfig:
        """A copy with some model parameters added or changed."""
        return dataclasses.replace(self, params={**self.params, **params})

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "scale": self.scale, "params": dict(self.params), "threads": self.threads, "seed": self.seed, "t_sim_ms": self.t_sim_ms, "store_workers": self.store_workers, "protocol": [dict(c) for c in self.protocol]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetworkConfig:
        """Build from a mapping, checking names and types (TOML files, the engine protocol).

        einet's own keys are ``model``, ``scale``, ``threads``, ``seed``, ``t_sim_ms`` and a
        ``params`` table; any other key is a model parameter (so the reference network's
        TOML files, which name its parameters at the top level, keep working).
        """
        if not isinstance(data, dict):
            raise ConfigError("configuration must be a table")
        own: dict[str, Any] = {}
        params = data.get("params", {})
        if not isinstance(params, dict):
            raise ConfigError("params must be a table")
        params = dict(params)
        for key, value in data.items():
            if key == "params":
                continue
            if key in _OWN_KEYS:
                own[key] = _typed(key, value)
            elif isinstance(value, dict):
                raise ConfigError(f"unknown table [{key}] (model parameters go at the top level or under [params])")
            else:
                params[key] = value
        return cls(**own, params=params)

    @classmethod
    def from_toml(cls, path: str | Path) -> NetworkConfig:
        """Load a TOML file: einet's keys and model parameters at the top level, under
        ``[network]``, or model parameters under ``[params]``."""
        try:
            # a FIFO would block open() and a device stream forever: regular files only
            if not stat.S_ISREG(os.stat(path).st_mode):
                raise ConfigError(f"{path} is not a regular file")
            with open(path, "rb") as fh:
                raw = fh.read(_MAX_CONFIG_BYTES + 1)
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
        if len(raw) > _MAX_CONFIG_BYTES:
            raise ConfigError(f"{path} is larger than {_MAX_CONFIG_BYTES // 1024} KiB: not a configuration file")
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path} is not valid TOML: {one_line(exc)}") from None
        if "network" in data:
            extra = sorted(set(data) - {"network", "params", "protocol"})
            if extra:
                raise ConfigError(f"{path}: unknown top-level keys beside [network]: {', '.join(extra)}")
            data = {**data["network"], **{k: data[k] for k in ("params", "protocol") if k in data}}
        return cls.from_dict(data)


def _typed(key: str, value: Any) -> Any:
    if key == "protocol":
        # [[protocol]] tables; each is checked as a change where the network is known
        if not isinstance(value, (list, tuple)) or not all(isinstance(c, dict) for c in value):
            raise ConfigError("protocol must be a list of tables ([[protocol]] with t_ms, target, key, value)")
        return tuple(dict(c) for c in value)
    want = {"model": str, "scale": float, "threads": int, "seed": int, "t_sim_ms": float, "store_workers": int}[key]
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not want:
        raise ConfigError(f"{key} must be {want.__name__}, not {type(value).__name__}")
    return value


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def check_threads(threads: int) -> None:
    """Refuse thread counts far beyond the machine (NEST segfaults at 100000 and a thousand
    threads exhaust memory): at most 4 per usable core, and at least 8 allowed."""
    limit = max(8, 4 * usable_cores())
    if threads > limit:
        raise ConfigError(f"{threads} threads is far beyond this machine's {usable_cores()} usable cores (at most {limit})")


def parse_value(text: str) -> Any:
    """A ``--set NAME=VALUE`` value: a TOML literal (number, boolean, string, list) or else text."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_assignments(items: list[str] | None) -> dict[str, Any]:
    """``["a=1", "b=x"]`` → ``{"a": 1, "b": "x"}``; a clear error for anything else."""
    out: dict[str, Any] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise ConfigError(f"--set takes NAME=VALUE, not {item!r}")
        out[name] = parse_value(value.strip())
    return out

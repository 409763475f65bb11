"""The network's configuration: NEST's store/restore example, with a scale knob."""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


class ConfigError(ValueError):
    """A configuration value is out of range or of the wrong type."""


@dataclass(frozen=True)
class NetworkConfig:
    """Everything needed to build the balanced E-I network with STDP.

    Defaults are those of NEST's example "Store and restore a network simulation":
    2000 E + 500 I ``iaf_psc_delta`` neurons, STDP on E synapses (``e_syn``, Wmax = 2·JE),
    static I synapses (``i_syn``, JI = −4·JE), fixed in-degrees 200/50, an 800 Hz Poisson
    drive and V_m ~ N(−65, 5) mV. ``scale`` multiplies both population sizes; in-degrees
    stay fixed (multapses are allowed), so each neuron gets the same input at any scale and
    small networks stay active.
    """

    scale: float = 1.0
    n_inh_base: int = 500
    e_to_i_ratio: int = 4
    je_mv: float = 1.0
    g: float = -4.0
    wmax_factor: float = 2.0
    indegree_e: int = 200
    indegree_i: int = 50
    poisson_rate_hz: float = 800.0
    vm_mean_mv: float = -65.0
    vm_std_mv: float = 5.0
    neuron_model: str = "iaf_psc_delta"
    resolution_ms: float = 0.1
    threads: int = 2
    seed: int = 12345
    t_sim_ms: float = 1000.0

    def __post_init__(self) -> None:
        checks = [
            (self.scale > 0 and self.n_inh > 0, f"scale {self.scale} leaves no neurons"),
            (self.n_inh <= 5_000_000, f"scale {self.scale} is too large"),
            (self.threads >= 1, f"threads must be >= 1, not {self.threads}"),
            (0 <= self.seed < 2**32 - 1, f"seed must be in [0, 2**32 - 2], not {self.seed}"),
            (self.t_sim_ms > 0, f"t must be positive, not {self.t_sim_ms}"),
            (self.resolution_ms > 0, "resolution must be positive"),
            (self.indegree_e >= 0 and self.indegree_i >= 0, "in-degrees must be >= 0"),
            (self.poisson_rate_hz >= 0, "poisson rate must be >= 0"),
            (self.vm_std_mv >= 0, "V_m std must be >= 0"),
            (self.wmax_factor > 0 and self.je_mv > 0, "JE and Wmax must be positive"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    @property
    def n_inh(self) -> int:
        return int(round(self.n_inh_base * self.scale))

    @property
    def n_exc(self) -> int:
        return self.e_to_i_ratio * self.n_inh

    @property
    def n_neurons(self) -> int:
        return self.n_exc + self.n_inh

    @property
    def ji_mv(self) -> float:
        return self.g * self.je_mv

    @property
    def wmax_mv(self) -> float:
        return self.wmax_factor * self.je_mv

    @property
    def n_e_syn(self) -> int:
        """Number of ``e_syn`` connections the fixed in-degree rule creates."""
        return self.n_neurons * self.indegree_e

    @property
    def n_i_syn(self) -> int:
        return self.n_neurons * self.indegree_i

    def replace(self, **changes: Any) -> NetworkConfig:
        """A copy with some fields changed; ``None`` values are ignored (unset CLI flags)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise ConfigError(f"unknown configuration keys: {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetworkConfig:
        """Build from a mapping, checking names and types (used for TOML and snapshots)."""
        known = {f.name: f for f in fields(cls)}
        unknown = set(data) - set(known)
        if unknown:
            raise ConfigError(f"unknown configuration keys: {', '.join(sorted(unknown))}")
        typed: dict[str, Any] = {}
        for key, value in data.items():
            want = type(getattr(cls(), key))
            if want is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if type(value) is not want:
                raise ConfigError(f"{key} must be {want.__name__}, not {type(value).__name__}")
            typed[key] = value
        return cls(**typed)

    @classmethod
    def from_toml(cls, path: str | Path) -> NetworkConfig:
        """Load a TOML file whose top-level keys are field names (a ``[network]`` table works too)."""
        try:
            data = tomllib.loads(Path(path).read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from None
        return cls.from_dict(data.get("network", data))

from pathlib import Path

import pytest

from einet.config import DEFAULT_MODEL, ConfigError, NetworkConfig, parse_assignments
from einet.models import ModelError, load_model


def test_defaults_are_the_reference_network() -> None:
    c = NetworkConfig()
    assert c.model == DEFAULT_MODEL and c.is_reference
    assert (c.scale, c.params, c.threads, c.seed, c.t_sim_ms) == (1.0, {}, 2, 12345, 1000.0)


def test_toml_and_overrides(tmp_path: Path) -> None:
    f = tmp_path / "net.toml"
    f.write_text("[network]\nscale = 0.5\nseed = 7\nt_sim_ms = 300\nje_mv = 1.5\n[params]\ng = -5.0\n")
    c = NetworkConfig.from_toml(f).replace(seed=9, threads=None)
    assert (c.scale, c.seed, c.t_sim_ms, c.threads) == (0.5, 9, 300.0, 2)
    assert c.params == {"je_mv": 1.5, "g": -5.0}, "model parameters at the top level or under [params]"


@pytest.mark.parametrize("bad", [{"scale": 0.0}, {"scale": float("nan")}, {"threads": 0}, {"seed": -1}, {"seed": 0}, {"seed": 2**31}, {"t_sim_ms": -5.0}, {"t_sim_ms": float("inf")}])
def test_bad_values_are_refused(bad: dict) -> None:
    with pytest.raises(ConfigError):
        NetworkConfig(**bad)


def test_unknown_or_mistyped_keys_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must be int"):
        NetworkConfig.from_dict({"seed": "1"})
    with pytest.raises(ConfigError, match="unknown table"):
        NetworkConfig.from_dict({"nework": {"scale": 1.0}})
    f = tmp_path / "bad.toml"
    f.write_text("scale = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        NetworkConfig.from_toml(f)
    f.write_text("sclae = 2\n[network]\nscale = 1.0\n")
    with pytest.raises(ConfigError, match="beside"):
        NetworkConfig.from_toml(f)


def test_set_values_and_model_parameters_are_checked_before_building() -> None:
    assert parse_assignments(["a=1", "b=2.5", "c=true", "d=[1, 2]", "e=iaf_psc_alpha"]) == {"a": 1, "b": 2.5, "c": True, "d": [1, 2], "e": "iaf_psc_alpha"}
    with pytest.raises(ConfigError, match="NAME=VALUE"):
        parse_assignments(["novalue"])
    load_model(DEFAULT_MODEL, {"je_mv": 2.0})
    with pytest.raises(ModelError, match="takes no parameter 'je_mvv'"):
        load_model(DEFAULT_MODEL, {"je_mvv": 2.0})
    with pytest.raises(ModelError, match="no model module"):
        load_model("einet.models.nonexistent", {})
    with pytest.raises(ModelError, match="does not exist"):
        load_model("/nonexistent/model.py", {})

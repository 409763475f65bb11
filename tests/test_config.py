from pathlib import Path

import pytest

from einet.config import ConfigError, NetworkConfig


def test_defaults_are_the_examples_network() -> None:
    c = NetworkConfig()
    assert (c.n_exc, c.n_inh, c.n_neurons) == (2000, 500, 2500)
    assert (c.je_mv, c.ji_mv, c.wmax_mv) == (1.0, -4.0, 2.0)
    assert (c.indegree_e, c.indegree_i) == (200, 50)
    assert c.poisson_rate_hz == 800.0 and c.neuron_model == "iaf_psc_delta"
    assert (c.vm_mean_mv, c.vm_std_mv) == (-65.0, 5.0)
    assert (c.n_e_syn, c.n_i_syn) == (500_000, 125_000)


def test_scale_multiplies_populations_not_indegrees() -> None:
    c = NetworkConfig(scale=0.1)
    assert (c.n_exc, c.n_inh) == (200, 50)
    assert c.n_e_syn == 250 * 200


def test_toml_and_overrides(tmp_path: Path) -> None:
    f = tmp_path / "net.toml"
    f.write_text("[network]\nscale = 0.5\nseed = 7\nt_sim_ms = 300\n")
    c = NetworkConfig.from_toml(f).replace(seed=9, threads=None)
    assert (c.n_inh, c.seed, c.t_sim_ms, c.threads) == (250, 9, 300.0, 2)


@pytest.mark.parametrize("bad", [{"scale": 0.0}, {"threads": 0}, {"seed": -1}, {"t_sim_ms": -5.0}])
def test_bad_values_are_refused(bad: dict) -> None:
    with pytest.raises(ConfigError):
        NetworkConfig(**bad)


def test_unknown_or_mistyped_keys_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown"):
        NetworkConfig.from_dict({"scael": 1.0})
    with pytest.raises(ConfigError, match="must be int"):
        NetworkConfig.from_dict({"seed": "1"})
    f = tmp_path / "bad.toml"
    f.write_text("scale = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        NetworkConfig.from_toml(f)

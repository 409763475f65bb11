"""Users' own scripts (issue #20): everything einet stores, it restores. Models split over
several files, NEST's own error messages, devices whose keys are settable only together, and
recorders writing to files; each with the real NEST."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from .conftest import einet_cli

MODELS = Path(__file__).resolve().parent / "models"


# -- a model split over several files ------------------------------------------------------------
def test_a_model_imports_from_its_own_folder_while_loading_and_building(tmp_path: Path) -> None:
    folder = tmp_path / "mynet"
    folder.mkdir()
    (folder / "helpers.py").write_text(textwrap.dedent("""
        def make_pop(nest, n):
            return nest.Create("iaf_psc_alpha", n, params={"I_e": 400.0})
        """))
    (folder / "wiring.py").write_text(textwrap.dedent("""
        def connect(nest, pop):
            nest.Connect(pop, pop, {"rule": "fixed_indegree", "indegree": 2}, {"weight": 5.0})
        """))
    (folder / "mynet.py").write_text(textwrap.dedent("""
        from helpers import make_pop  # at load time

        def build(nest, scale=1.0, n=12):
            import wiring  # lazily, while building

            pop = make_pop(nest, n)
            wiring.connect(nest, pop)
            return {"pop": pop}
        """))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    p = einet_cli("run", "--model", str(folder / "mynet.py"), "--t", "100", "--set", "n=9", "--json", "--no-history", cwd=elsewhere)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["population_rates_hz"]["pop"] > 0 and doc["spikes"] > 0


# -- NEST's error messages -----------------------------------------------------------------------
def test_a_multi_line_nest_error_reaches_the_user_whole_on_one_line() -> None:
    p = einet_cli("run", "--model", str(MODELS / "nest_error.py"), "--t", "10", "--no-history")
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    # NEST's first line and, on the same line, its second one: the reason
    assert "Creation of connection is not possible because: The source node does not support gap junction output" in lines[0]

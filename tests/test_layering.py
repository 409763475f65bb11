"""The library loads no UI; the UI loads no NEST."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import einet
import tui

EINET_MODULES = ["einet"] + [f"einet.{m.name}" for m in pkgutil.walk_packages(einet.__path__) if not m.name.startswith("engine.child")] + ["einet.engine.client", "einet.engine.protocol"]
TUI_MODULES = ["tui"] + [f"tui.{m.name}" for m in pkgutil.iter_modules(tui.__path__)]


def _loaded_after(module: str, banned: tuple[str, ...]) -> list[str]:
    code = f"import importlib, sys; importlib.import_module({module!r}); print(' '.join(m for m in sys.modules if m.split('.')[0] in {banned!r}))"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return p.stdout.split()


@pytest.mark.parametrize("module", sorted(set(EINET_MODULES)))
def test_einet_loads_no_ui(module: str) -> None:
    assert _loaded_after(module, ("textual", "tui")) == []


@pytest.mark.parametrize("module", sorted(set(TUI_MODULES)))
def test_tui_loads_no_nest(module: str) -> None:
    assert _loaded_after(module, ("nest",)) == []


def test_engine_client_loads_no_nest() -> None:
    assert _loaded_after("einet.engine", ("nest",)) == []

"""The library loads no UI; the UI loads no NEST and no h5py; no import cycle between them.

Checked twice: on the source (every import statement, those inside functions too, in every
module of einet/ — engine/ included — and tui/), and by importing each module in a fresh
interpreter and looking at what got loaded.
"""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import einet
import einet.tui

from .conftest import ROOT

# einet/cli/ is the front door: its `tui` command starts the dashboard, and the dashboard's
# own flags are defined beside it (argparse only)
ALLOWED = {("einet/cli/commands.py", "einet.tui.app"), ("einet/cli/parser.py", "einet.tui.options")}


def _module_of(path: Path) -> tuple[str, ...]:
    """A source file's module path as Python imports it: tui/ installs as einet.tui."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ("einet", *parts) if parts[0] == "tui" else parts


def _is_ui(name: str) -> bool:
    return name.split(".")[0] in ("textual", "textual_plotext") or name == "einet.tui" or name.startswith("einet.tui.")


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's package
                package = _module_of(path)[: -node.level]
                base = ".".join(package + ((node.module,) if node.module else ()))
            else:
                base = node.module or ""
            names.append(base)
    return names


def _sources(package: str) -> list[Path]:
    """The package's source files: "einet" is the library (einet/), "einet.tui" the dashboard
    (its source folder is tui/)."""
    return sorted((ROOT / ("tui" if package == "einet.tui" else package)).rglob("*.py"))


@pytest.mark.parametrize("path", _sources("einet"), ids=lambda p: str(p.relative_to(ROOT)))
def test_einet_source_imports_no_ui(path: Path) -> None:
    rel = str(path.relative_to(ROOT))
    for name in _imports(path):
        if _is_ui(name):
            assert (rel, name) in ALLOWED, f"{rel} imports {name}"
        if name.split(".")[0] == "rich":
            assert rel.startswith("einet/cli/"), f"{rel} imports {name} (only the CLI prints with rich)"


@pytest.mark.parametrize("path", _sources("einet.tui"), ids=lambda p: str(p.relative_to(ROOT)))
def test_tui_source_imports_no_nest_no_h5py_no_cli(path: Path) -> None:
    rel = str(path.relative_to(ROOT))
    for name in _imports(path):
        assert name.split(".")[0] not in ("nest", "h5py"), f"{rel} imports {name}"
        assert not name.startswith("einet.cli"), f"{rel} imports {name}: an import cycle with einet/cli/"
        assert name not in ("einet.snapshot.h5", "einet.snapshot.v1"), f"{rel} imports {name} (h5py)"


@pytest.mark.parametrize("path", _sources("einet"), ids=lambda p: str(p.relative_to(ROOT)))
def test_one_module_imports_nest_and_one_reaches_its_low_level_api(path: Path) -> None:
    rel = str(path.relative_to(ROOT))
    if rel not in ("einet/kernel.py", "einet/nest_api.py"):
        assert not [name for name in _imports(path) if name.split(".")[0] == "nest"], f"{rel} imports nest (einet/kernel.py does)"
    # ownership.py wraps some of the kernel API's functions (got from nest_api.kernel_api());
    # einet/accel/ is the other door, in C++: it links to nestkernel_api.so itself
    if rel not in ("einet/nest_api.py", "einet/ownership.py") and not rel.startswith("einet/accel/"):
        text = path.read_text()
        assert "llapi_" not in text and "._datum" not in text and "nestkernel_api" not in text, f"{rel} reaches into PyNEST's low-level API (einet/nest_api.py does)"


def test_the_source_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    probe = ROOT / "einet" / "_probe_layering.py"
    probe.write_text("def f():\n    import textual\n")
    try:
        assert "textual" in _imports(probe)
    finally:
        probe.unlink()


# walk_packages recurses into subpackages only with the prefix (without it engine/ and
# snapshot/ were never walked); the engine's child is NEST's side by design
EINET_MODULES = ["einet"] + [m.name for m in pkgutil.walk_packages(einet.__path__, prefix="einet.") if m.name not in ("einet.engine.child", "einet.engine.startup") and not m.name.startswith("einet.tui") and not m.name.endswith(".__main__")]
TUI_MODULES = ["einet.tui"] + [f"einet.tui.{m.name}" for m in pkgutil.iter_modules(einet.tui.__path__)]


# One interpreter forks a child per module to import: each child starts from the same fresh
# interpreter (numpy loaded, which every einet module loads; no check looks for it), without an
# interpreter start and numpy's import each.
_FORK_SERVER = """
import importlib, json, os, sys
import numpy
for line in sys.stdin:
    module, banned = json.loads(line)
    r, w = os.pipe()
    if os.fork() == 0:
        try:
            importlib.import_module(module)
            answer = {"loaded": [m for m in sys.modules if any(m == b or m.startswith(b + ".") for b in banned)]}
        except BaseException as exc:
            answer = {"error": repr(exc)}
        os.write(w, json.dumps(answer).encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as answer:
        print(answer.read().decode(), flush=True)
    os.wait()
"""


@pytest.fixture(scope="module")
def importer() -> Iterator[subprocess.Popen[str]]:
    server = subprocess.Popen([sys.executable, "-c", _FORK_SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    yield server
    server.kill()
    server.wait()


def _loaded_after(importer: subprocess.Popen[str], module: str, banned: tuple[str, ...]) -> list[str]:
    """The modules named by ``banned`` (or under them) that importing ``module`` in a fresh
    interpreter loads."""
    assert importer.stdin is not None and importer.stdout is not None
    importer.stdin.write(json.dumps([module, banned]) + "\n")
    importer.stdin.flush()
    line = importer.stdout.readline()
    assert line, "the importer died"
    answer = json.loads(line)
    assert "error" not in answer, answer.get("error")
    return list(answer["loaded"])


def test_every_einet_module_is_walked() -> None:
    assert {"einet.engine.client", "einet.engine.protocol", "einet.snapshot.reader", "einet.store.workers"} <= set(EINET_MODULES)


@pytest.mark.parametrize("module", sorted(set(EINET_MODULES)))
def test_einet_loads_no_ui(module: str, importer: subprocess.Popen[str]) -> None:
    assert _loaded_after(importer, module, ("textual", "einet.tui")) == []


@pytest.mark.parametrize("module", sorted(set(TUI_MODULES)))
def test_tui_loads_no_nest_and_no_h5py(module: str, importer: subprocess.Popen[str]) -> None:
    assert _loaded_after(importer, module, ("nest", "h5py")) == []


def test_engine_client_loads_no_nest(importer: subprocess.Popen[str]) -> None:
    assert _loaded_after(importer, "einet.engine", ("nest",)) == []


def test_the_importer_sees_what_a_module_loads(importer: subprocess.Popen[str]) -> None:
    """The check can fail: the file format loads h5py, the dashboard loads Textual."""
    assert "h5py" in _loaded_after(importer, "einet.snapshot.h5", ("nest", "h5py"))
    assert "textual" in _loaded_after(importer, "einet.tui.app", ("textual",))


def _module_graph() -> dict[str, set[str]]:
    """Which modules of einet/ and tui/ (einet.tui) each one imports (at run time: imports under
    ``if TYPE_CHECKING:`` are left out), those inside functions too. ``from pkg import name``
    is an import of ``pkg.name`` when that is a module, else of ``pkg``."""

    def name_of(path: Path) -> str:
        parts = _module_of(path)
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    modules = {name_of(p): p for package in ("einet", "einet.tui") for p in _sources(package)}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test) for n in ast.walk(block)}
        targets: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                wanted = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = ".".join([*package[: len(package) - node.level + 1], *([node.module] if node.module else [])]) if node.level else node.module or ""
                wanted = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            for target in wanted:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    targets.add(target)
        graph[name] = targets
    return graph


def test_no_import_cycles() -> None:
    graph = _module_graph()
    assert {"einet.store", "einet.snapshot.model", "einet.tui.app"} <= set(graph)
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycle = [*path[path.index(target) :], target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_the_import_contract_names_every_library_module() -> None:
    """`make lint`'s import-linter contract lists the library's modules one by one: a module
    added to einet/ must be added there too."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib

    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    library = next(c for c in contracts if c["name"].startswith("The library loads no UI"))
    here = {f"einet.{p.stem}" for p in (ROOT / "einet").glob("*.py") if p.stem != "__init__"}
    here |= {f"einet.{p.name}" for p in (ROOT / "einet").iterdir() if (p / "__init__.py").exists()}
    assert set(library["source_modules"]) == here

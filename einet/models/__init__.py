"""Models: Python functions that build a network with plain PyNEST calls.

A model is ``build(nest, scale=1.0, **params)``. It creates nodes and connections with the
``nest`` module it is given and may return ``{population name: NodeCollection}``: the
populations einet records and shows (without it, einet groups neurons by NEST model). einet
resets the kernel and sets threads and seed before calling it; see :mod:`einet.ownership`.

A model is named by ``package.module`` or ``path/to/file.py``, optionally followed by
``:function`` (default ``build``). The reference network is :mod:`einet.models.brunel_stdp`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..text import one_line

BuildFunction = Callable[..., Any]


class ModelError(ValueError):
    """The model cannot be found, loaded, or does not take the given parameters."""


class ModelBuildError(ModelError):
    """The model's own code failed while it built the network."""


@dataclass(frozen=True)
class ModelRef:
    """Where a model's build function lives."""

    target: str
    function: str = "build"
    is_file: bool = False

    @classmethod
    def parse(cls, ref: str) -> ModelRef:
        ref = ref.strip()
        target, _, function = ref.rpartition(":") if _has_function(ref) else (ref, "", "")
        function = function or "build"
        if not function.isidentifier():
            raise ModelError(f"model {ref!r}: {function!r} is not a function name")
        is_file = target.endswith(".py") or "/" in target or target.startswith(".")
        if is_file:
            target = str(Path(target).expanduser().resolve())
        elif not all(part.isidentifier() for part in target.split(".")):
            raise ModelError(f"model {ref!r} is neither a .py file nor a module name")
        return cls(target, function, is_file)

    def __str__(self) -> str:
        return self.target + ("" if self.function == "build" else f":{self.function}")

    def load(self) -> BuildFunction:
        """Import the module (or run the file) and return its build function."""
        if self.is_file:
            path = Path(self.target)
            if not path.is_file():
                raise ModelError(f"model file {path} does not exist")
            name = "einet_model_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise ModelError(f"cannot load {path} as Python")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            try:
                with _importable(path.parent, keep=name):
                    spec.loader.exec_module(module)
            except Exception as exc:  # noqa: BLE001 - a user model may raise anything: one line names it
                sys.modules.pop(name, None)
                raise ModelError(f"loading {path.name} failed: {type(exc).__name__}: {one_line(exc, 200)}") from None
        else:
            try:
                module = importlib.import_module(self.target)
            except ModuleNotFoundError as exc:
                raise ModelError(f"no model module {self.target!r} ({one_line(exc, 200)})") from None
            except Exception as exc:  # noqa: BLE001 - a user model may raise anything: one line names it
                raise ModelError(f"loading {self.target} failed: {type(exc).__name__}: {one_line(exc, 200)}") from None
        build = getattr(module, self.function, None)
        if not callable(build):
            raise ModelError(f"model {self} has no function {self.function}(nest, scale, **params)")
        if self.function == "build":
            # beside build: see network_size() and model_protocol()
            for name in ("size", "protocol"):
                if callable(helper := getattr(module, name, None)):
                    if self.is_file:
                        # it may import from its folder only when it is called
                        helper = _in_folder(helper, Path(self.target).parent)
                    setattr(build, f"einet_{name}", helper)
        if self.is_file:
            build = _in_folder(build, Path(self.target).parent)
        return build


@contextlib.contextmanager
def _importable(folder: Path, keep: str = "") -> Iterator[None]:
    """``folder`` first on ``sys.path``, as ``python file.py`` puts its script's folder, and
    taken off again afterwards. Modules imported from it meanwhile (except ``keep``) are
    forgotten, so that two models with a ``helpers.py`` each, or an edited helper, are each
    imported from their own folder the next time instead of from the module cache."""
    entry = str(folder)
    before = set(sys.modules)
    sys.path.insert(0, entry)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(entry)
        for name in set(sys.modules) - before - {keep}:
            origin = getattr(sys.modules[name], "__file__", None) or ""
            if origin and Path(origin).resolve().is_relative_to(folder):
                del sys.modules[name]


def _in_folder(function: BuildFunction, folder: Path) -> BuildFunction:
    """``function`` run with its model file's folder importable (signature kept for
    :func:`check_params`)."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _importable(folder):
            return function(*args, **kwargs)

    return wrapper


def _has_function(ref: str) -> bool:
    # "C:\..." is not a thing here; a colon after the last path separator names a function
    return ":" in ref.rsplit("/", 1)[-1]


def load_model(ref: str, params: dict[str, Any]) -> BuildFunction:
    """The build function of ``ref``, after checking that it accepts ``params``."""
    build = ModelRef.parse(ref).load()
    check_params(build, params, ref)
    return build


def network_size(build: BuildFunction, scale: float, params: dict[str, Any], ref: str) -> tuple[int, int] | None:
    """(nodes, connections) the model says it will build, if its module has
    ``size(scale, **params)`` beside ``build``: einet refuses a network that would not fit in
    memory before NEST starts allocating it."""
    size = getattr(build, "einet_size", None)
    if size is None:
        return None
    try:
        nodes, connections = size(scale, **params)
        return int(nodes), int(connections)
    except Exception as exc:  # noqa: BLE001 - a user model may raise anything: one line names it
        raise ModelError(f"model {ref}: size() failed: {type(exc).__name__}: {one_line(exc, 200)}") from None


def model_protocol(build: BuildFunction, scale: float, params: dict[str, Any], ref: str) -> list[dict[str, Any]]:
    """The changes a model's ``protocol(scale, **params)`` beside ``build`` asks for (each a
    mapping with ``t_ms``, ``target``, ``key`` and ``value``), or none."""
    protocol = getattr(build, "einet_protocol", None)
    if protocol is None:
        return []
    try:
        entries = list(protocol(scale, **params))
    except Exception as exc:  # noqa: BLE001 - a user model may raise anything: one line names it
        raise ModelError(f"model {ref}: protocol() failed: {type(exc).__name__}: {one_line(exc, 200)}") from None
    if not all(isinstance(e, dict) for e in entries):
        raise ModelError(f"model {ref}: protocol() must return mappings with t_ms, target, key and value")
    return entries


def check_params(build: BuildFunction, params: dict[str, Any], ref: str) -> None:
    """Refuse parameters the build function does not take, before anything is built."""
    try:
        sig = inspect.signature(build)
    except (TypeError, ValueError):  # pragma: no cover - builtins
        return
    kinds = {p.kind for p in sig.parameters.values()}
    if inspect.Parameter.VAR_KEYWORD in kinds:
        return
    names = {name for name, p in sig.parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    unknown = sorted(set(params) - names - {"nest", "scale"})
    if unknown:
        known = ", ".join(sorted(names - {"nest", "scale"})) or "none"
        raise ModelError(f"model {ref} takes no parameter {unknown[0]!r} (it takes: {known})")
    if "scale" in params:
        raise ModelError("scale is einet's own setting: use --scale, not --set scale=…")


def describe_params(ref: str) -> dict[str, Any]:
    """The model's parameters and their defaults (for ``--help``-like listings)."""
    build = ModelRef.parse(ref).load()
    sig = inspect.signature(build)
    return {n: (None if p.default is inspect.Parameter.empty else p.default) for n, p in sig.parameters.items() if n not in ("nest",) and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}

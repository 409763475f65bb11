"""Compiling the accelerator against the NEST that is installed, once per NEST binary.

The library is built from ``connections.cpp`` with NEST's own headers (shipped in the wheel,
or installed by ``make setup-mpi``) and linked to its ``nestkernel_api.so``. It is cached under
``$EINET_CACHE`` (default ``~/.cache/einet``) in a folder named by the SHA-256 of that
``nestkernel_api.so``, of the folder it is installed in and of the source, so a different NEST
never loads a library built for another, and a new einet builds its own. The folder counts
because the library finds ``nestkernel_api.so`` by its run path: the same binary installed in
two environments (two checkouts' venvs sharing one cache) must not have one environment's
library load the other's kernel beside its own, a second NEST in one process.

What the build needs and why: a C++20 compiler (NEST's headers use ``<concepts>``); Boost's
headers (NEST's include them; the wheel ships none: Debian's ``libboost-dev``); not GSL's (the
GSL models' headers include them for types only: ``gsl_fallback`` stands in); the string ABI
NEST was built with (the wheel's manylinux GCC uses the old one); an MPI build's compiler
flags when NEST has MPI; no OpenMP (a second OpenMP runtime beside NEST's is trouble).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import functools
import hashlib
import logging
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SOURCE = Path(__file__).with_name("connections.cpp")
LIBRARY = "einet-connections.so"
STATE_SOURCE = Path(__file__).with_name("state.cpp")
STATE_LIBRARY = "einet-state.so"
"""The hidden-state accessor (docs/hidden-state.md): a library of its own."""
GSL_FALLBACK = Path(__file__).with_name("gsl_fallback")
"""Stand-ins for the GSL headers NEST's GSL models include, searched only after the system's
(``-idirafter``): the wheel ships no GSL headers, and the accessor needs only GSL's types."""
_BUILD_TIMEOUT_S = 600.0


class AccelUnavailable(Exception):
    """Why the accelerator cannot be built or used here (one line)."""


@dataclass(frozen=True)
class Nest:
    """The NEST installation a library is built for."""

    folder: Path
    """The ``nest`` package folder: ``nestkernel_api.so`` and ``include/nest``."""
    version: str
    digest: str
    """SHA-256 of ``nestkernel_api.so``."""

    @property
    def kernel(self) -> Path:
        return self.folder / "nestkernel_api.so"

    @property
    def built_for(self) -> str:
        """What a library built for this NEST says it was built for: its version, binary and
        folder (the library's run path)."""
        return f"{self.version} {self.digest} {self.folder}"


def cache_root() -> Path:
    return Path(os.environ.get("EINET_CACHE") or Path.home() / ".cache" / "einet")


@functools.cache
def _digest(path: Path, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def nest_of(folder: Path) -> Nest:
    """The NEST installed in ``folder`` (the package folder holding ``nestkernel_api.so``)."""
    kernel = folder / "nestkernel_api.so"
    config = folder / "include" / "nest" / "config.h"
    if not kernel.is_file():
        raise AccelUnavailable(f"no nestkernel_api.so in {folder}")
    if not config.is_file():
        raise AccelUnavailable(f"NEST's headers are not installed ({config} is missing)")
    found = re.search(r'#define NEST_VERSION "([^"]+)"', config.read_text(errors="replace"))
    stat = kernel.stat()
    return Nest(folder.resolve(), found.group(1) if found else "unknown", _digest(kernel, stat.st_size, stat.st_mtime_ns))


def library_path(nest: Nest, source: Path = SOURCE, library: str = LIBRARY) -> Path:
    """Where the library for ``nest`` and this einet's source is cached: a new einet or a new
    NEST binary builds anew. ``source`` and ``library`` name another of einet's libraries
    (its own file name, so that libraries never overwrite each other)."""
    headers = [*sorted(source.parent.glob("*.h")), *sorted(GSL_FALLBACK.glob("gsl/*.h"))]
    digest = hashlib.sha256(b"".join(f.read_bytes() for f in (source, *headers))).hexdigest()  # its headers too
    where = hashlib.sha256(str(nest.folder).encode()).hexdigest()
    return cache_root() / "accel" / f"{nest.digest[:20]}-{where[:8]}-{digest[:12]}" / library


def _new_string_abi(kernel: Path) -> bool:
    """Whether NEST was built with libstdc++'s C++11 string ABI (its symbols then name it)."""
    with open(kernel, "rb") as f:
        return b"B5cxx11" in f.read()


def _compiler() -> str:
    for name in (os.environ.get("CXX", ""), "c++", "g++", "clang++"):
        if name and shutil.which(name):
            return name
    raise AccelUnavailable("no C++ compiler found (install g++)")


def _mpi_flags(config: str) -> list[str]:
    if not re.search(r"^#define HAVE_MPI 1", config, re.M):
        return []
    wrapper = shutil.which("mpicxx")
    if wrapper is None:
        raise AccelUnavailable("NEST has MPI but mpicxx (for MPI's headers) is not installed")
    shown = subprocess.run([wrapper, "--showme:compile"], capture_output=True, text=True, check=False)
    if shown.returncode != 0:
        raise AccelUnavailable("mpicxx --showme:compile failed")
    return shlex.split(shown.stdout)


def command(nest: Nest, output: Path, source: Path = SOURCE) -> list[str]:
    """The compiler command that builds the library for ``nest`` from ``source`` into
    ``output``."""
    include = nest.folder / "include" / "nest"
    config = (include / "config.h").read_text(errors="replace")
    if not any(Path(d, "boost", "sort", "spreadsort", "spreadsort.hpp").is_file() for d in ("/usr/include", "/usr/local/include")):
        raise AccelUnavailable("Boost's headers are not installed (Debian: apt-get install libboost-dev)")
    if not any(Path(d, "ltdl.h").is_file() for d in ("/usr/include", "/usr/local/include")):
        raise AccelUnavailable("libtool's ltdl.h, which NEST's headers include, is not installed (Debian: apt-get install libltdl-dev)")
    abi = "1" if _new_string_abi(nest.kernel) else "0"
    return [
        _compiler(),
        "-O2",
        "-std=c++20",
        "-fPIC",
        "-shared",
        f"-D_GLIBCXX_USE_CXX11_ABI={abi}",
        "-DNDEBUG",
        f'-DEINET_BUILT_FOR="{nest.built_for}"',
        f"-I{include}",
        *_mpi_flags(config),
        "-idirafter",
        str(GSL_FALLBACK),
        str(source),
        "-o",
        str(output),
        f"-L{nest.folder}",
        "-l:nestkernel_api.so",
        f"-Wl,-rpath,{nest.folder}",
        "-pthread",
    ]


def build(nest: Nest, source: Path = SOURCE, library: str = LIBRARY) -> Path:
    """The library for ``nest``, compiled now unless cached (one build at a time per cache:
    processes that start together wait for the first). ``source`` and ``library`` build
    another of einet's libraries (the hidden-state accessor: ``state.cpp``)."""
    target = library_path(nest, source, library)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.is_file():
            return target
        fd, tmp = tempfile.mkstemp(prefix=".build-", suffix=".so", dir=target.parent)
        os.close(fd)
        try:
            compile_it = command(nest, Path(tmp), source)  # missing tools are said before anything is built
            logging.getLogger("einet").warning("building the C++ accelerator for this NEST (once per NEST and einet version, about 15 s)")
            try:
                done = subprocess.run(compile_it, capture_output=True, text=True, timeout=_BUILD_TIMEOUT_S, check=False)
            except subprocess.TimeoutExpired:
                raise AccelUnavailable(f"compiling the accelerator took over {_BUILD_TIMEOUT_S:.0f} s") from None
            if done.returncode != 0:
                (target.parent / "build.log").write_text(done.stderr)
                first = next((line for line in done.stderr.splitlines() if "error" in line), done.stderr.strip()[:200])
                raise AccelUnavailable(f"compiling the accelerator failed ({target.parent / 'build.log'}): {first.strip()}")
            os.replace(tmp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    return target


def load(path: Path, nest: Nest, what: str, built_for_symbol: str) -> ctypes.CDLL:
    """The library at ``path``, loaded only if its ``built_for_symbol()`` names ``nest``'s very
    binary (a library built for another NEST reads another memory layout)."""
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as exc:
        raise AccelUnavailable(f"the {what} does not load: {exc}") from None
    try:
        function = getattr(lib, built_for_symbol)
        function.restype = ctypes.c_char_p
        built_for = function().decode()
    except AttributeError:
        raise AccelUnavailable(f"{path} is not einet's {what}") from None
    if built_for != nest.built_for:
        version, digest, folder = [*built_for.split(" ", 2), "", ""][:3]
        raise AccelUnavailable(f"the {what} at {path} was built for another NEST ({version} {digest[:12]}… in {folder})")
    return lib

"""How the engine starts as an MPI job: which Python (one whose NEST has MPI), which launcher,
which flags. Nothing here imports NEST.

The PyPI wheel of NEST has no MPI; ``make setup-mpi`` builds one into
``~/.cache/einet/nest-mpi-3.10/venv``. A site's own MPI NEST (an HPC module) is used by
pointing ``EINET_NEST_MPI_PYTHON`` at a Python that imports it (einet installed there too).
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..children import holding_a_network
from .errors import EngineError

SETUP_HINT = "run `make setup-mpi`, or set EINET_NEST_MPI_PYTHON to a Python whose NEST has MPI"
MAX_RANKS = 1024


class LaunchError(EngineError):
    """The MPI job cannot be started here (no MPI NEST, no launcher); one line says why."""


def mpi_python() -> str:
    """The Python whose NEST has MPI: ``EINET_NEST_MPI_PYTHON``, else the one ``make setup-mpi``
    built (under ``EINET_MPI_PREFIX``, default ``~/.cache/einet/nest-mpi-3.10``)."""
    given = os.environ.get("EINET_NEST_MPI_PYTHON", "")
    if given:
        found = shutil.which(given)
        if not found:
            raise LaunchError(f"EINET_NEST_MPI_PYTHON={given} is not an executable Python")
        return found
    prefix = Path(os.environ.get("EINET_MPI_PREFIX") or Path.home() / ".cache" / "einet" / "nest-mpi-3.10")
    python = prefix / "venv" / "bin" / "python"
    if not (python.exists() and (prefix / "venv" / ".einet-mpi-ready").exists()):
        raise LaunchError(f"--ranks needs NEST built with MPI (the PyPI wheel has none): {SETUP_HINT}")
    return str(python)


@functools.cache
@functools.cache
def _is_open_mpi(launcher: str) -> bool:
    try:
        out = subprocess.run([launcher, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return "Open MPI" in out or "OpenRTE" in out


@dataclass(frozen=True)
class MpiLaunch:
    """The engine as an MPI job of ``ranks`` processes, started by ``mpirun`` (a command line,
    e.g. ``srun`` or ``srun --mpi=pmix``; default Open MPI's ``mpirun`` on this machine)."""

    ranks: int
    mpirun: str = ""

    def __post_init__(self) -> None:
        if not 1 <= self.ranks <= MAX_RANKS:
            raise LaunchError(f"--ranks must be 1 to {MAX_RANKS}, not {self.ranks}")

    @property
    def launcher(self) -> list[str]:
        argv = shlex.split(self.mpirun) if self.mpirun.strip() else ["mpirun"]
        if not shutil.which(argv[0]):
            hint = "install Open MPI (`make setup-mpi` does)" if not self.mpirun.strip() else "check --mpirun"
            raise LaunchError(f"{argv[0]} not found: {hint}")
        return argv

    def command(self, child_args: list[str]) -> list[str]:
        """The whole command line: launcher, rank count, the MPI Python running the engine."""
        launcher = self.launcher
        python = mpi_python()
        extra: list[str] = []
        if self._here():
            # this machine only: as many ranks as asked even beyond its cores, and no pinning
            # (Open MPI binds each rank to one core, which its NEST threads would then share)
            extra = ["--oversubscribe", "--bind-to", "none"]
        return [*launcher, "-n", str(self.ranks), *extra, python, "-m", "einet.engine.startup", *child_args]

    def env(self) -> dict[str, str]:
        env = holding_a_network({**os.environ, "PYTHONUNBUFFERED": "1"})
        if os.geteuid() == 0:
            # Open MPI refuses root unless told twice; only ever set for a user who is root
            env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
            env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        if self._here():
            # ranks and their NEST threads share this machine's cores: a rank waiting for a
            # message, or a thread at NEST's barriers, must give its core away, not spin on it
            # (a 2x2 job on 2 busy cores took minutes for what takes seconds)
            env.setdefault("OMPI_MCA_mpi_yield_when_idle", "1")
            env.setdefault("OMP_WAIT_POLICY", "passive")
        return env

    def _here(self) -> bool:
        """Whether the job runs on this machine by einet's own ``mpirun`` (not in a cluster
        allocation, nor by a launcher the user named)."""
        return not self.mpirun.strip() and _is_open_mpi(self.launcher[0]) and not _in_allocation()


def _in_allocation() -> bool:
    return any(k in os.environ for k in ("SLURM_JOB_ID", "PBS_JOBID", "LSB_JOBID", "COBALT_JOBID"))


def mpi_failure(log: Path | None) -> str:
    """One line on why the MPI job ended, from its log: NEST's own fatal error, else the
    launcher's account of a rank's end, else the log's last line of words."""
    if log is None:
        return ""
    try:
        lines = [ln.strip() for ln in log.read_bytes()[-65536:].decode("utf-8", "replace").splitlines()]
    except OSError:
        return ""
    for line in lines:
        if line.startswith(("[FATAL]", "[ERROR]")):
            text = _STAMP.sub("", line)
            return f"{text} ({SETUP_HINT})" if "not compiled with MPI" in text else text
    for line in reversed(lines):
        if "noticed that process rank" in line or "exited on signal" in line or "MPI_ABORT" in line:
            return line.rstrip(".")
    words = [ln for ln in lines if any(ch.isalpha() for ch in ln) and not ln.startswith("einet: mpirun")]
    return words[-1][:300] if words else ""


_STAMP = re.compile(r"^\[(FATAL|ERROR)\] \[[^]]*\] ")

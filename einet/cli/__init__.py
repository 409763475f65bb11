"""The ``einet`` command: run, restore, inspect, demo, history, and (no arguments) the dashboard.

Exit codes: 0 ok, 1 anything else, 2 usage, 3 invalid or unsafe snapshot, 4 cannot store (the
network holds what a snapshot cannot, or the store failed; with --store this is known right
after the build, before anything is simulated). Errors are one line on stderr, never a traceback.

- :mod:`.parser` — subcommands, flags and the configuration they make;
- :mod:`.commands` — the subcommands, on a local session or one an MPI job serves;
- :mod:`.render` — what is printed: run reports, JSON, progress bars, the demo's plots;
- :mod:`.recorder` — the run history the commands keep;
- :mod:`.exits` — exit codes, and a failure as its code and its one line;
- :mod:`.main` — ``main(argv)`` and the console script.

The dashboard is the other front end (``einet.tui``, source folder ``tui/``), which the library never imports.
"""

from __future__ import annotations

from .exits import EXIT_CANNOT_STORE, EXIT_ERROR, EXIT_OK, EXIT_SNAPSHOT, EXIT_USAGE, exit_of
from .main import entry, main

__all__ = ["EXIT_CANNOT_STORE", "EXIT_ERROR", "EXIT_OK", "EXIT_SNAPSHOT", "EXIT_USAGE", "entry", "exit_of", "main"]

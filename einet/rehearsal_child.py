"""The rehearsal process (:mod:`einet.rehearsal`): a fresh interpreter that restores a snapshot
under a memory limit and writes one line of JSON saying whether NEST built it."""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path
from typing import Any

from .children import die_with_parent, exit_now
from .protocol import Change
from .rehearsal import refused_by_nest
from .snapshot import SnapshotError


def main(job: dict[str, Any]) -> None:
    """The rehearsal process: restore, then write ``{"ok": true}`` or ``{"error": line}``."""
    die_with_parent()
    resource.setrlimit(resource.RLIMIT_DATA, (job["limit"], job["limit"]))
    from .session import Session  # after the limit, so that it holds for NEST too

    try:
        Session(keep_results=False).restore(job["path"], seed=job["seed"], threads=job["threads"], changes=tuple(Change.from_dict(c) for c in job["changes"]))
        reply: dict[str, Any] = {"ok": True}
    except MemoryError:
        reply = {"error": "restoring the snapshot needs more memory than it declares"}
    except SnapshotError as exc:
        reply = {"error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - NEST's own exception types: each is a refusal with its message
        reply = {"error": str(refused_by_nest(exc))}
    Path(job["answer"]).write_text(json.dumps(reply))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
    exit_now(0)

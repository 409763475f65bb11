"""``python -m einet.accel``: build the accelerator for the installed NEST now (as ``make
setup`` does), or say in one line why it cannot be built here (exit 0 either way: einet works
without it)."""

from __future__ import annotations

import sys
import time


def main() -> int:
    from .build import STATE_LIBRARY, STATE_SOURCE, AccelUnavailable, build
    from .library import installed

    t0 = time.perf_counter()
    try:
        nest_ = installed()
        path = build(nest_)
        build(nest_, STATE_SOURCE, STATE_LIBRARY)  # the hidden-state accessor
    except AccelUnavailable as exc:
        print(f"einet: accelerator not built: {exc}; connections will be read through PyNEST", file=sys.stderr)
        return 0
    print(f"einet: accelerator ready ({path.parent}, {time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Command-line flags of the dashboard's own (argparse only, so ``einet --help`` loads no
Textual). The network flags are the CLI's, shared with ``einet run``."""

from __future__ import annotations

import argparse
from pathlib import Path

MARKERS = ("braille", "dot", "hd", "fhd", "sd")


def add_tui_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--snapshot-dir", type=Path, default=Path("snapshots"), help="where snapshots are stored and listed")
    p.add_argument("--restore", type=Path, metavar="FILE", help="restore this snapshot at start")
    p.add_argument("--no-mouse", action="store_true", help="do not capture the mouse")
    p.add_argument("--marker", choices=MARKERS, default="braille", help="plot marker; 'dot' works without braille fonts")

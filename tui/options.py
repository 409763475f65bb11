"""Command-line flags of the dashboard (argparse only, so ``einet --help`` loads no Textual)."""

from __future__ import annotations

import argparse
from pathlib import Path

MARKERS = ("braille", "dot", "hd", "fhd", "sd")


def add_tui_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scale", type=float, help="multiply population sizes (default 1: 2000 E + 500 I)")
    p.add_argument("--threads", type=int, help="NEST threads (default 2)")
    p.add_argument("--seed", type=int, help="NEST rng_seed")
    p.add_argument("--t", type=float, dest="t_ms", metavar="MS", help="length of one run in ms (default 1000)")
    p.add_argument("--config", type=Path, help="TOML file with network parameters")
    p.add_argument("--snapshot-dir", type=Path, default=Path("snapshots"), help="where snapshots are stored and listed")
    p.add_argument("--restore", type=Path, metavar="FILE", help="restore this snapshot at start")
    p.add_argument("--no-mouse", action="store_true", help="do not capture the mouse")
    p.add_argument("--marker", choices=MARKERS, default="braille", help="plot marker; 'dot' works without braille fonts")

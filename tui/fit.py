"""Fitting text into a terminal's width: table columns by priority, a status line by parts.

Pure functions (no Textual), so the rules are tested directly: nothing is ever cut mid-value
without a visible ``…``, and what cannot fit is dropped whole, least important first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.text import Text

ELLIPSIS = "…"


@dataclass(frozen=True)
class Column:
    """A table column. Lower ``priority`` is kept longer. A column with ``min_width`` may
    shrink to it: ``prefix`` columns (digests) are cut to a prefix, others get an ellipsis."""

    name: str
    priority: int
    min_width: int = 0
    prefix: bool = False
    key: str = ""

    @property
    def id(self) -> str:
        return self.key or self.name


def shorten(text: str, width: int, *, prefix: bool = False) -> str:
    """``text`` in at most ``width`` cells: a prefix, or the start with ``…`` at the end."""
    if cell_len(text) <= width:
        return text
    if prefix:
        return text[:width]
    out = ""
    for ch in text:
        if cell_len(out + ch) > width - 1:
            break
        out += ch
    return out.rstrip(" ,") + ELLIPSIS


def fit_columns(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int, padding: int = 2) -> list[tuple[int, int]]:
    """Which columns to show and how wide: ``[(index, width), …]`` in table order.

    Each column starts at its widest cell (header included). While the table is wider than
    ``width``, the least important column shrinks to its ``min_width`` (if it may) or goes.
    """
    natural = [max([cell_len(c.name)] + [cell_len(str(r[i])) for r in rows if i < len(r)]) for i, c in enumerate(columns)]
    widths = dict(enumerate(natural))

    def total() -> int:
        return sum(w + padding for w in widths.values())

    # least important first; among equals the rightmost first
    for i in sorted(range(len(columns)), key=lambda i: (-columns[i].priority, -i)):
        if total() <= width:
            break
        c = columns[i]
        if c.min_width and widths[i] > c.min_width:
            widths[i] = max(c.min_width, widths[i] - (total() - width))
        if total() > width and len(widths) > 1:
            del widths[i]
    return sorted(widths.items())


def fitted_rows(columns: Sequence[Column], rows: Sequence[Sequence[str]], layout: Sequence[tuple[int, int]]) -> list[list[str]]:
    """The cells of ``rows`` for a ``fit_columns`` layout, each shortened to its width."""
    return [[shorten(str(row[i]), w, prefix=columns[i].prefix) for i, w in layout] for row in rows]


@dataclass(frozen=True)
class Part:
    """One piece of a status line: its full text and an optional shorter form (Rich markup;
    ``""`` as the short form drops the part), and a priority (lower stays longer)."""

    text: str
    short: str | None = None
    priority: int = 0


def _plain(markup: str) -> str:
    return Text.from_markup(markup).plain


SEPARATOR = " │ "


def fit_parts(parts: Sequence[Part], width: int, separator: str = SEPARATOR) -> str:
    """Join ``parts`` into one line of at most ``width`` cells: long forms where they fit,
    then short forms (least important first), then whole parts dropped (least important
    first). Markup is kept; measuring uses the plain text."""
    chosen: list[tuple[str, str] | None] = [(p.text, _plain(p.text)) for p in parts]

    def length() -> int:
        shown = [c[1] for c in chosen if c is not None]
        return sum(cell_len(s) for s in shown) + cell_len(separator) * max(0, len(shown) - 1)

    order = sorted(range(len(parts)), key=lambda i: (-parts[i].priority, -i))
    for i in order:
        if length() <= width:
            break
        short = parts[i].short
        if short is not None:
            chosen[i] = (short, _plain(short)) if short else None
    for i in order:
        if length() <= width:
            break
        if sum(c is not None for c in chosen) > 1:
            chosen[i] = None
    for i in reversed(order):  # room freed by dropping: long forms back, most important first
        was = chosen[i]
        if was is not None and was[0] != parts[i].text:
            chosen[i] = (parts[i].text, _plain(parts[i].text))
            if length() > width:
                chosen[i] = was
    return separator.join(c[0] for c in chosen if c is not None)

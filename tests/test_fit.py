"""Fitting tables and the status line into a terminal's width (pure rules, no Textual app)."""

from __future__ import annotations

import pytest
from rich.cells import cell_len
from rich.text import Text

from einet.tui.fit import ELLIPSIS, Column, Part, fit_columns, fit_parts, fitted_rows, shorten
from einet.tui.main_screen import HISTORY_COLUMNS
from einet.tui.screens import PICKER_COLUMNS

ROWS = [
    ("1", "initial", "", "fresh", "12345", "0-1000", "137169", "54.9", "48a4747c3a1f"),
    ("h12", "restored, other seed", "run 1", "restored ← snapshot-20261126-101112", "987654321", "0-1000", "99686", "39.9", "f4c45c2f0e9b"),
]
MUST = {"seed", "spikes", "rate Hz", "digest"}


@pytest.mark.parametrize("width", [78, 79, 100, 119, 200])
def test_history_columns_keep_seed_spikes_rate_and_a_digest_prefix(width: int) -> None:
    layout = fit_columns(HISTORY_COLUMNS, ROWS, width)
    names = {HISTORY_COLUMNS[i].name for i, _ in layout}
    assert names >= MUST, names
    assert sum(w + 2 for _, w in layout) <= width
    for row, cells in zip(ROWS, fitted_rows(HISTORY_COLUMNS, ROWS, layout)):
        shown = dict(zip((HISTORY_COLUMNS[i].name for i, _ in layout), cells))
        assert shown["seed"] == row[4] and shown["spikes"] == row[6] and shown["rate Hz"] == row[7]
        assert row[8].startswith(shown["digest"]) and len(shown["digest"]) >= 7
        for (i, w), cell in zip(layout, cells):
            assert cell_len(cell) <= w
            assert cell == row[i] or cell.endswith(ELLIPSIS) or HISTORY_COLUMNS[i].prefix, "never cut mid-value without an ellipsis"


def test_wide_tables_show_everything_and_narrow_ones_drop_the_least_important_first() -> None:
    everything = fit_columns(HISTORY_COLUMNS, ROWS, 300)
    assert [i for i, _ in everything] == list(range(len(HISTORY_COLUMNS)))
    at_80 = {HISTORY_COLUMNS[i].name for i, _ in fit_columns(HISTORY_COLUMNS, ROWS, 79)}
    assert "t [ms]" not in at_80 and "origin" not in at_80 and "run" in at_80 and "same as" in at_80


def test_the_picker_never_cuts_the_network_or_the_seed() -> None:
    rows = [("snapshot-20261126-101112.h5", "t=1000 ms", "2000+500", "1234567", "2", "27.3 MB", "ok")]
    layout = fit_columns(PICKER_COLUMNS, rows, 66)
    cells = dict(zip((PICKER_COLUMNS[i].name for i, _ in layout), fitted_rows(PICKER_COLUMNS, rows, layout)[0]))
    assert cells["network"] == "2000+500" and cells["seed"] == "1234567" and cells["integrity"] == "ok"


def test_shorten() -> None:
    assert shorten("restored, other seed", 10) == "restored" + ELLIPSIS
    assert shorten("abcdef123456", 7, prefix=True) == "abcdef1"
    assert shorten("short", 10) == "short"


PARTS = [
    Part("[b]running[/]", None, 0),
    Part("t 523.4 ms since restore (snapshot t 1000 → 1523.4 ms)", "t 523.4 ms", 0),
    Part("[b]storing snapshot-20261126-101112.h5 40%[/]", "[b]storing 40%[/]", 0),
    Part("seed 987654321", None, 2),
    Part("2 ranks × 1 thread ≠ snapshot", "2×1 ≠", 3),
    Part("snapshot snapshot-20261126-101112.h5", "snapshot-2026112…", 4),
    Part("2000 E + 500 I", "2500 neurons", 5),
]


@pytest.mark.parametrize("width", [40, 60, 78, 118, 200])
def test_the_status_line_is_one_line_at_every_width(width: int) -> None:
    line = fit_parts(PARTS, width)
    plain = Text.from_markup(line).plain
    assert cell_len(plain) <= width and "\n" not in plain
    assert plain.startswith("running"), "the state is never dropped"
    if width >= 78:
        assert "storing" in plain and "seed 987654321" in plain


def test_the_status_line_uses_long_forms_when_there_is_room() -> None:
    assert Text.from_markup(fit_parts(PARTS, 400)).plain == " │ ".join(Text.from_markup(p.text).plain for p in PARTS)
    narrow = Text.from_markup(fit_parts(PARTS, 78)).plain
    assert "t 523.4 ms" in narrow and "2000 E + 500 I" not in narrow


def test_columns_with_no_room_keep_the_most_important() -> None:
    cols = [Column("a", 0), Column("b", 1), Column("c", 2)]
    layout = fit_columns(cols, [("aaaa", "bbbb", "cccc")], 7)
    assert [i for i, _ in layout] == [0]


@pytest.mark.parametrize("name", ["exp[B].h5", "a[$x]b", "run[bold red].h5", "[b]snaps[", "plain"])
def test_names_are_shown_as_they_are_by_textual_markup(name: str) -> None:
    from textual.content import Content

    from einet.tui.markup import textual_escape

    assert Content.from_markup(f"[b]{textual_escape(name)}[/b] ok").plain == f"{name} ok"

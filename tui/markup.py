"""Text from files and users, made safe before any widget shows it.

Every such string (file and folder names, dataset names in a refusal, populations, synapse
models, history labels, NEST's log lines, error messages) passes one of these, each of which
starts with :func:`einet.text.visible` (the CLI's too): control characters, escape sequences
among them, are shown as ``\\xNN`` and never reach the terminal, whatever the widget.

Two parsers read markup here. Rich's (the status line, the log) takes only lowercase tags, and
``rich.markup.escape`` is right for it. Textual's (Static, Label, notifications) also reads
``[B]`` or ``[$x]`` as tags, which ``rich.markup.escape`` leaves alone: ``exp[B].h5`` would
show as ``exp.h5``. For Textual, every ``[`` is escaped. Widgets that take plain text (table
cells, notification titles, plot titles) need only :func:`visible`.
"""

from __future__ import annotations

from rich.markup import escape as _rich_escape

from einet.text import visible

__all__ = ["escape", "textual_escape"]


def escape(text: object) -> str:
    """``text`` shown as it is by Rich's markup (the log, the status line)."""
    return _rich_escape(visible(text))


def textual_escape(text: object) -> str:
    """``text`` shown as it is by Textual's markup (Static, Label, notify)."""
    return visible(text).replace("[", "\\[")

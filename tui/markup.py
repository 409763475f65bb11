"""Text from files and users inside markup.

Two parsers read markup here. Rich's (the status line, the log) takes only lowercase tags, and
``rich.markup.escape`` is right for it. Textual's (Static, Label, notifications) also reads
``[B]`` or ``[$x]`` as tags, which ``rich.markup.escape`` leaves alone: ``exp[B].h5`` would
show as ``exp.h5``. For Textual, every ``[`` is escaped.
"""

from __future__ import annotations

from rich.markup import escape

__all__ = ["escape", "textual_escape"]


def textual_escape(text: object) -> str:
    """``text`` shown as it is by Textual's markup (Static, Label, notify)."""
    return str(text).replace("[", "\\[")

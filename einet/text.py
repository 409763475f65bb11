"""Text for users: errors as one line, and strings from files made safe for a terminal."""

from __future__ import annotations


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's whole message on one line, its lines joined and whitespace collapsed
    (NEST puts the reason on the second line: "Creation of connection is not possible
    because:\\n…"); its type's name when it has none. At most ``limit`` characters."""
    text = " ".join(str(exc).split())
    return (text or type(exc).__name__)[:limit]


def visible(text: object) -> str:
    """Text from a file, a file name or a user, safe for a terminal: every character that is
    not printable (escape sequences, line breaks, bells, …) is shown as ``\\xNN`` or
    ``\\uNNNN`` instead of reaching the terminal. The one such function: the CLI prints
    through it and the dashboard's escaping (``einet.tui.markup``) starts with it."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in str(text))

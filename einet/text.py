"""Errors as the one line a user sees."""

from __future__ import annotations


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's whole message on one line, its lines joined and whitespace collapsed
    (NEST puts the reason on the second line: "Creation of connection is not possible
    because:\\n…"); its type's name when it has none. At most ``limit`` characters."""
    text = " ".join(str(exc).split())
    return (text or type(exc).__name__)[:limit]

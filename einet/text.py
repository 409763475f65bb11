"""Errors as the one line a user sees."""

from __future__ import annotations


def one_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message (its type's name when it has none)."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:limit]

"""Helpers shared by the syntax modules (private)."""

from __future__ import annotations

from typing import Final

_SHOWN_CHARS: Final = 80


def shown(value: object) -> str:
    """A short repr for error messages: inputs can be kilobytes long and come from strangers."""
    text = repr(value)
    if len(text) <= _SHOWN_CHARS:
        return text
    return f"{text[:_SHOWN_CHARS]}... ({len(text)} chars)"

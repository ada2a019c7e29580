"""Language tags (Lexicon `language` format): BCP 47 / RFC 5646 as atproto restricts it.

Two levels, matching the interop fixtures:

- `is_valid_language_syntax` — well-formed per the RFC 5646 §2.1 grammar, with atproto's
  strictness: the primary language subtag is lowercase and 2-3 (optionally with extended language
  subtags) or 5-8 letters; the reserved 4-letter form is refused. Script, region, variant and
  extension subtags are case-insensitive; private-use tags (`x-...`, `X-...`) and the irregular
  grandfathered tags (`i-default`, `en-GB-oed`, ...) are accepted (`language_syntax_*`).
- `parse_language` / `is_valid_language` — additionally "valid" per RFC 5646 §2.2.9: no variant
  subtag and no extension singleton may appear twice, compared case-insensitively
  (`language_parse_invalid`).

Errors: `InvalidLanguage`.
"""

from __future__ import annotations

import re
from typing import Final, Self

from atcore.syntax._common import shown
from atcore.syntax.errors import InvalidLanguage

LANGUAGE_MAX_LENGTH: Final = 128

# Irregular grandfathered tags: they do not fit the langtag grammar, so they are listed (RFC 5646
# §2.2.8). The regular ones (`zh-hakka`, `art-lojban`, ...) already match the grammar.
_IRREGULAR_GRANDFATHERED: Final = frozenset(
    tag.lower()
    for tag in (
        "en-GB-oed",
        "i-ami",
        "i-bnn",
        "i-default",
        "i-enochian",
        "i-hak",
        "i-klingon",
        "i-lux",
        "i-mingo",
        "i-navajo",
        "i-pwn",
        "i-tao",
        "i-tay",
        "i-tsu",
        "sgn-BE-FR",
        "sgn-BE-NL",
        "sgn-CH-DE",
    )
)

# The variant and extension runs are captured whole so duplicates can be checked afterwards; the
# subtag shapes (script 4 letters, region 2 letters / 3 digits, variant 5-8 alnum or digit + 3,
# extension singleton 1 char) never overlap, so each subtag lands in exactly one group.
_LANGTAG_MATCH: Final = re.compile(
    r"(?:[a-z]{2,3}(?:-[a-zA-Z]{3}){0,3}|[a-z]{5,8})"
    r"(?:-[a-zA-Z]{4})?"
    r"(?:-(?:[a-zA-Z]{2}|[0-9]{3}))?"
    r"(?P<variants>(?:-(?:[a-zA-Z0-9]{5,8}|[0-9][a-zA-Z0-9]{3}))*)"
    r"(?P<extensions>(?:-[0-9a-wyzA-WYZ](?:-[a-zA-Z0-9]{2,8})+)*)"
    r"(?:-[xX](?:-[a-zA-Z0-9]{1,8})+)?"
).fullmatch
_PRIVATE_USE_MATCH: Final = re.compile(r"[xX](?:-[a-zA-Z0-9]{1,8})+").fullmatch


def _is_grandfathered_or_private(value: str) -> bool:
    return value.lower() in _IRREGULAR_GRANDFATHERED or _PRIVATE_USE_MATCH(value) is not None


def is_valid_language_syntax(value: str) -> bool:
    """Well-formed (RFC 5646 §2.1 with atproto's lowercase primary subtag); duplicates allowed."""
    if len(value) > LANGUAGE_MAX_LENGTH:
        return False
    return _LANGTAG_MATCH(value) is not None or _is_grandfathered_or_private(value)


def _has_duplicates(run: str) -> bool:
    subtags = run.lower().split("-")[1:]
    return len(set(subtags)) != len(subtags)


def _language_problem(value: str) -> str | None:
    """Why `value` is not a valid language tag, or None when it is (one regex match)."""
    if len(value) > LANGUAGE_MAX_LENGTH:
        return "too long"
    match = _LANGTAG_MATCH(value)
    if match is None:
        return None if _is_grandfathered_or_private(value) else "not a well-formed BCP 47 tag"
    variants, extensions = match.group("variants", "extensions")
    if variants and _has_duplicates(variants):
        return "repeated variant subtag"
    if extensions:
        # Extension subtags are 2-8 chars, so the 1-char subtags are exactly the singletons.
        singletons = [tag for tag in extensions.lower().split("-") if len(tag) == 1]
        if len(set(singletons)) != len(singletons):
            return "repeated extension singleton"
    return None


class Language(str):
    """A valid language tag, kept as written."""

    __slots__ = ()

    def __new__(cls, value: str) -> Self:
        problem = _language_problem(value)
        if problem is not None:
            raise InvalidLanguage(f"invalid language tag ({problem}): {shown(value)}")
        return super().__new__(cls, value)

    @property
    def primary(self) -> str:
        """The primary language subtag, lowercased (`x` for private use, `i` for `i-*`)."""
        return self.split("-", 1)[0].lower()


def parse_language(value: str) -> Language:
    return value if type(value) is Language else Language(value)


def is_valid_language(value: str) -> bool:
    return _language_problem(value) is None

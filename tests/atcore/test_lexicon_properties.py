"""Hypothesis: generated schemas accept generated values exactly when an oracle says they are valid.

The oracle measures with the plain definitions (UTF-8 bytes via `str.encode`, grapheme clusters by
segmenting every string with `regex`'s `\\X`), so the validator's shortcuts (ASCII and code-point
bounds that skip encoding or segmenting) are checked against the slow, obvious computation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import regex
from hypothesis import given
from hypothesis import strategies as st

from atcore.lexicon import Catalog, ValidationError

NSID = "com.example.generated"
INT64 = 2**63

# Pieces that stress grapheme segmentation: combining marks, ZWJ sequences, flags, CR LF, Hangul.
PIECES = [
    "a",
    "Z",
    " ",
    "e\u0301",
    "\u0301",
    "\u200d",
    "🏳️‍🌈",
    "🇩🇪",
    "👩‍👩‍👦",
    "\r\n",
    "\r",
    "한",
    "ß",
]
texts = st.lists(st.sampled_from(PIECES) | st.characters(), max_size=30).map("".join)


def bounds(low: int, high: int) -> st.SearchStrategy[tuple[int | None, int | None]]:
    """An optional (minimum, maximum) pair with minimum <= maximum."""

    def ordered(pair: tuple[int, int]) -> tuple[int | None, int | None]:
        return min(pair), max(pair)

    def lower_only(pair: tuple[int | None, int | None]) -> tuple[int | None, int | None]:
        return pair[0], None

    def upper_only(pair: tuple[int | None, int | None]) -> tuple[int | None, int | None]:
        return None, pair[1]

    both = st.tuples(st.integers(low, high), st.integers(low, high)).map(ordered)
    neither: st.SearchStrategy[tuple[int | None, int | None]] = st.just((None, None))
    return neither | both | both.map(lower_only) | both.map(upper_only)


@dataclass(frozen=True)
class Schema:
    min_length: int | None
    max_length: int | None
    min_graphemes: int | None
    max_graphemes: int | None
    minimum: int | None
    maximum: int | None
    max_items: int | None

    def document(self) -> dict[str, Any]:
        text: dict[str, Any] = {"type": "string"}
        number: dict[str, Any] = {"type": "integer"}
        for target, key, value in [
            (text, "minLength", self.min_length),
            (text, "maxLength", self.max_length),
            (text, "minGraphemes", self.min_graphemes),
            (text, "maxGraphemes", self.max_graphemes),
            (number, "minimum", self.minimum),
            (number, "maximum", self.maximum),
        ]:
            if value is not None:
                target[key] = value
        numbers: dict[str, Any] = {"type": "array", "items": number}
        if self.max_items is not None:
            numbers["maxLength"] = self.max_items
        record = {
            "type": "object",
            "required": ["text"],
            "properties": {"text": text, "number": number, "numbers": numbers},
        }
        return {
            "lexicon": 1,
            "id": NSID,
            "defs": {"main": {"type": "record", "key": "any", "record": record}},
        }


@st.composite
def schemas(draw: st.DrawFn) -> Schema:
    min_length, max_length = draw(bounds(0, 60))
    min_graphemes, max_graphemes = draw(bounds(0, 20))
    if min_graphemes is not None and max_length is not None and min_graphemes > max_length:
        min_graphemes = max_length  # a document may not ask for more graphemes than bytes
    minimum, maximum = draw(bounds(-1000, 1000))
    max_items = draw(st.none() | st.integers(0, 5))
    return Schema(min_length, max_length, min_graphemes, max_graphemes, minimum, maximum, max_items)


integers = st.integers(-1000, 1000) | st.integers(-2 * INT64, 2 * INT64) | st.booleans()


def within(value: int, low: int | None, high: int | None) -> bool:
    return (low is None or value >= low) and (high is None or value <= high)


def integer_ok(schema: Schema, value: object) -> bool:
    return (
        type(value) is int
        and -INT64 <= value < INT64
        and within(value, schema.minimum, schema.maximum)
    )


def text_ok(schema: Schema, value: str) -> bool:
    size = len(value.encode("utf-8", "surrogatepass"))
    clusters = len(regex.findall(r"\X", value))
    return within(size, schema.min_length, schema.max_length) and within(
        clusters, schema.min_graphemes, schema.max_graphemes
    )


def oracle(schema: Schema, record: dict[str, Any]) -> bool:
    numbers = record.get("numbers", [])
    return (
        text_ok(schema, record["text"])
        and ("number" not in record or integer_ok(schema, record["number"]))
        and within(len(numbers), None, schema.max_items)
        and all(integer_ok(schema, n) for n in numbers)
    )


def accepted(catalog: Catalog, record: dict[str, Any]) -> bool:
    try:
        catalog.validate_record(NSID, record)
    except ValidationError:
        return False
    return True


@given(
    schema=schemas(),
    text=texts,
    number=st.none() | integers,
    numbers=st.lists(integers, max_size=7),
)
def test_generated_records_match_the_oracle(
    schema: Schema, text: str, number: object, numbers: list[object]
) -> None:
    catalog = Catalog([schema.document()])
    record: dict[str, Any] = {"$type": NSID, "text": text, "numbers": numbers}
    if number is not None:
        record["number"] = number
    assert accepted(catalog, record) == oracle(schema, record)


@given(schema=schemas(), text=texts)
def test_string_bounds_match_the_oracle(schema: Schema, text: str) -> None:
    catalog = Catalog([schema.document()])
    assert accepted(catalog, {"$type": NSID, "text": text}) == text_ok(schema, text)

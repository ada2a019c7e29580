from __future__ import annotations

import pytest

from pds.blobstore.sniff import (
    FALLBACK_MIME,
    SNIFF_BYTES,
    normalize_declared_mime,
    sniff_mime_type,
)

from .samples import SNIFFED, iso_bmff, png_1x1


@pytest.mark.parametrize(
    ("content", "expected"), [pytest.param(c, m, id=name) for name, c, m in SNIFFED]
)
@pytest.mark.parametrize("declared", [None, "*/*", "application/octet-stream", "image/jpeg"])
def test_content_decides_over_any_declared_type(
    content: bytes, expected: str, declared: str | None
) -> None:
    assert sniff_mime_type(content[:SNIFF_BYTES], declared) == expected


@pytest.mark.parametrize(
    ("declared", "expected"),
    [
        ("text/plain", "text/plain"),
        ("Application/JSON; charset=utf-8", "application/json"),
        ("image/svg+xml", "image/svg+xml"),
        (None, FALLBACK_MIME),
        ("", FALLBACK_MIME),
        ("*/*", FALLBACK_MIME),
        ("image/*", FALLBACK_MIME),
        ("application/octet-stream", FALLBACK_MIME),
        ("binary/octet-stream", FALLBACK_MIME),
        ("not a type", FALLBACK_MIME),
        ("text/plain\r\nX-Evil: 1", FALLBACK_MIME),
    ],
)
def test_unrecognised_content_keeps_a_specific_declared_type(
    declared: str | None, expected: str
) -> None:
    assert sniff_mime_type(b'{"text": "no magic number here"}', declared) == expected


def test_empty_content_falls_back_to_declared_or_octet_stream() -> None:
    assert sniff_mime_type(b"", "image/png") == "image/png"
    assert sniff_mime_type(b"") == FALLBACK_MIME


def test_truncated_headers_are_not_guessed() -> None:
    assert sniff_mime_type(png_1x1()[:3]) == FALLBACK_MIME
    # An ftyp box cut short says nothing reliable about its brands.
    assert sniff_mime_type(iso_bmff(b"heix", b"mif1")[:14]) == FALLBACK_MIME


def test_iso_bmff_without_a_known_brand_is_not_an_image() -> None:
    assert sniff_mime_type(iso_bmff(b"zzzz", b"yyyy")) == FALLBACK_MIME


@pytest.mark.parametrize(
    ("declared", "expected"),
    [("IMAGE/PNG", "image/png"), (" video/mp4 ", "video/mp4"), ("*/*", None), (None, None)],
)
def test_normalize_declared_mime(declared: str | None, expected: str | None) -> None:
    assert normalize_declared_mime(declared) == expected

"""MIME type of an upload from its first bytes, because clients' declared types are unreliable.

The atproto SDKs often upload with `*/*` or a guessed type, so the PDS trusts the content: the
`filetype` library recognises images (jpeg, png, gif, webp, avif, heic, ...), video (mp4, webm,
quicktime, ...), audio, archives and office documents from magic numbers. In front of it sits a
small ISO-BMFF brand table for the HEIF/AVIF variants the library misses (10-bit `heix` photos,
`avis` image sequences). Content with no magic number (text, JSON, SVG) keeps the declared type
when that is specific, and is `application/octet-stream` otherwise.

The sniffed type is what the PDS records and serves; serving user content safely (nosniff,
a restrictive Content-Security-Policy) is the endpoint's job, not this module's.
"""

from __future__ import annotations

import re
from typing import Final

import filetype  # no type information shipped (pyproject: ignore_missing_imports)

# Enough for every signature the library checks (it reads at most 8 KiB itself).
SNIFF_BYTES: Final = 8192

FALLBACK_MIME: Final = "application/octet-stream"

# Types a client sends when it does not know; they say nothing about the content.
_GENERIC_TYPES: Final = frozenset({"application/octet-stream", "binary/octet-stream"})

# RFC 9110 `type "/" subtype`, each a token; parameters after ";" are dropped.
_MEDIA_TYPE: Final = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+/[!#$%&'*+.^_`|~0-9a-z-]+")

_MIF_MAJOR_BRANDS: Final = frozenset({b"mif1", b"msf1"})
_HEIF_BRANDS: Final = (
    (frozenset({b"avif", b"avis"}), "image/avif"),
    (frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"}), "image/heic"),
)


def sniff_mime_type(head: bytes, declared: str | None = None) -> str:
    """The MIME type for content starting with `head` (its first `SNIFF_BYTES` bytes or all)."""
    sniffed = _heif_brand_mime(head) or _library_mime(head)
    if sniffed:
        return sniffed
    specific = normalize_declared_mime(declared)
    return specific or FALLBACK_MIME


def normalize_declared_mime(declared: str | None) -> str | None:
    """A client-declared type reduced to a lowercase `type/subtype`, or None if it says nothing."""
    if not declared:
        return None
    essence = declared.split(";", 1)[0].strip().lower()
    if not _MEDIA_TYPE.fullmatch(essence) or "*" in essence or essence in _GENERIC_TYPES:
        return None
    return essence


def _library_mime(head: bytes) -> str | None:
    if not head:
        return None
    match = filetype.guess(head)
    return None if match is None else str(match.mime)


def _heif_brand_mime(head: bytes) -> str | None:
    """AVIF/HEIC from an ISO-BMFF `ftyp` box: by major brand, or by compatible brands under a
    generic `mif1`/`msf1` major brand (how many encoders label still images)."""
    brands = _ftyp_brands(head)
    if brands is None:
        return None
    major, compatible = brands
    for family, mime in _HEIF_BRANDS:
        if major in family or (major in _MIF_MAJOR_BRANDS and family & compatible):
            return mime
    return None


def _ftyp_brands(head: bytes) -> tuple[bytes, frozenset[bytes]] | None:
    """(major brand, compatible brands) of a leading `ftyp` box, if there is a complete one."""
    if len(head) < 16 or head[4:8] != b"ftyp":
        return None
    box_size = int.from_bytes(head[0:4], "big")
    if box_size < 16 or box_size > len(head):
        return None
    compatible = frozenset(head[offset : offset + 4] for offset in range(16, box_size - 3, 4))
    return head[8:12], compatible

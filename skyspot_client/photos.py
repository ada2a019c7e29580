"""Photos ready to upload: metadata stripped, upright, small enough for a Bluesky image embed.

A phone photo carries EXIF GPS coordinates, which would publish the exact spot of a check-in whose
author chose neighborhood or city precision. `prepare_photo` therefore re-saves every image it can
decode without EXIF (applying the EXIF orientation to the pixels first, so it still displays
upright), and shrinks it until it fits `MAX_PHOTO_BYTES`, the Bluesky app's image limit. Images
Pillow cannot decode are passed through untouched: the PDS decides whether they are images at
all, and the check-in rules refuse anything else.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PHOTO_BYTES: Final = 1_000_000
MAX_SIDE: Final = 2000
# Formats re-encoded as themselves; anything else decodable becomes a JPEG.
_KEPT_FORMATS: Final = frozenset({"JPEG", "PNG", "WEBP"})
_MIME_TYPES: Final = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
_QUALITIES: Final = (90, 80, 70, 60)


@dataclass(frozen=True, slots=True)
class PhotoInput:
    """A photo to attach: its bytes and alt text (required: describe it for people who can't
    see it). `aspect_ratio` is read from the image when not given."""

    data: bytes
    alt: str
    aspect_ratio: tuple[int, int] | None = None

    @classmethod
    def from_path(cls, path: str | Path, alt: str) -> PhotoInput:
        return cls(Path(path).read_bytes(), alt)


@dataclass(frozen=True, slots=True)
class PreparedPhoto:
    data: bytes
    alt: str
    aspect_ratio: tuple[int, int] | None
    mime_type: str = "application/octet-stream"  # what the upload declares; the PDS sniffs too


def prepare_photo(photo: PhotoInput, *, max_bytes: int = MAX_PHOTO_BYTES) -> PreparedPhoto:
    """Strip metadata, apply orientation and shrink to `max_bytes` (when Pillow can decode it)."""
    try:
        with Image.open(io.BytesIO(photo.data)) as opened:
            source_format = opened.format or ""
            image = ImageOps.exif_transpose(opened)
            image.load()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        return PreparedPhoto(photo.data, photo.alt, photo.aspect_ratio)
    target = source_format if source_format in _KEPT_FORMATS else "JPEG"
    data = _encode_within(image, target, max_bytes)
    return PreparedPhoto(data, photo.alt, photo.aspect_ratio or image.size, _MIME_TYPES[target])


def _encode_within(image: Image.Image, target: str, max_bytes: int) -> bytes:
    if target == "JPEG" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    if max(image.size) > MAX_SIDE:
        image = _scaled(image, MAX_SIDE / max(image.size))
    while True:
        for quality in _QUALITIES if target != "PNG" else (None,):
            data = _save(image, target, quality)
            if len(data) <= max_bytes:
                return data
        if max(image.size) <= 64:
            return data  # cannot get smaller in any useful way; the PDS will say it is too big
        image = _scaled(image, 0.75)


def _scaled(image: Image.Image, factor: float) -> Image.Image:
    size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    return image.resize(size, Image.Resampling.LANCZOS)


def _save(image: Image.Image, image_format: str, quality: int | None) -> bytes:
    out = io.BytesIO()
    options: dict[str, object] = {"optimize": True}
    if quality is not None:
        options["quality"] = quality
    # No `exif=` and no XMP: the saved file carries no location or camera metadata.
    image.save(out, format=image_format, **options)
    return out.getvalue()

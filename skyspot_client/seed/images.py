"""Generated JPEG photos for seeded check-ins: small, varied, deterministic, honest alt text.

Each photo is a sky-to-ground gradient with a few translucent shapes, drawn from the caller's
`random.Random`; its alt text says what it is (a generated placeholder, its colours), since
pretending it shows the venue would mislead screen-reader users browsing seeded data.
"""

from __future__ import annotations

import io
import random
from typing import Final

from PIL import Image, ImageDraw

SIZES: Final = ((400, 300), (300, 400), (400, 400), (480, 270))
_PALETTE: Final = {
    "teal": (32, 128, 140),
    "coral": (240, 110, 90),
    "gold": (230, 180, 60),
    "violet": (120, 80, 170),
    "leaf": (80, 150, 70),
    "slate": (70, 80, 100),
    "rose": (220, 120, 160),
}


def generated_photo(rng: random.Random, place: str) -> tuple[bytes, str]:
    """(JPEG bytes, alt text) for a placeholder photo at `place`."""
    width, height = rng.choice(SIZES)
    top_name, bottom_name, shape_name = rng.sample(sorted(_PALETTE), 3)
    image = _gradient(width, height, _PALETTE[top_name], _PALETTE[bottom_name])
    draw = ImageDraw.Draw(image, "RGBA")
    red, green, blue = _PALETTE[shape_name]
    for _ in range(rng.randint(2, 6)):
        x, y = rng.randrange(width), rng.randrange(height)
        radius = rng.randint(min(width, height) // 12, min(width, height) // 4)
        box = (x - radius, y - radius, x + radius, y + radius)
        fill = (red, green, blue, rng.randint(90, 200))
        if rng.random() < 0.5:
            draw.ellipse(box, fill=fill)
        else:
            draw.rectangle(box, fill=fill)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=75)
    alt = (
        f"Generated placeholder image for {place}: a {top_name} to {bottom_name} gradient "
        f"with {shape_name} shapes"
    )
    return out.getvalue(), alt


def _gradient(
    width: int, height: int, top: tuple[int, int, int], bottom: tuple[int, int, int]
) -> Image.Image:
    # A 1-pixel-wide column resized to the full width: fast, no per-pixel Python loop.
    column = Image.new("RGB", (1, height))
    for row in range(height):
        mix = row / max(1, height - 1)
        column.putpixel(
            (0, row), tuple(round(a + (b - a) * mix) for a, b in zip(top, bottom, strict=True))
        )
    return column.resize((width, height))

"""base58btc (the Bitcoin alphabet), the body of multibase `z...` strings used for atproto keys.

Inputs here are at most a few dozen bytes, so a big-integer conversion is both the simplest and
a fast enough way to do it.
"""

from __future__ import annotations

from typing import Final

from atcore.crypto.errors import CryptoError

ALPHABET: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def b58encode(data: bytes) -> str:
    """Encode bytes as base58btc; each leading zero byte becomes a leading `1`."""
    num = int.from_bytes(data, "big")
    digits: list[str] = []
    while num:
        num, rem = divmod(num, 58)
        digits.append(ALPHABET[rem])
    zeros = len(data) - len(data.lstrip(b"\x00"))
    return "1" * zeros + "".join(reversed(digits))


def b58decode(text: str) -> bytes:
    """Decode base58btc text; raises `CryptoError` on any character outside the alphabet."""
    num = 0
    for char in text:
        index = ALPHABET.find(char)
        if index < 0:
            raise CryptoError(f"invalid base58btc character {char!r}")
        num = num * 58 + index
    zeros = len(text) - len(text.lstrip("1"))
    body = num.to_bytes((num.bit_length() + 7) // 8, "big")
    return b"\x00" * zeros + body

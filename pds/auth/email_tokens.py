"""Short codes sent by email (account deletion, signing a PLC operation), checked statelessly.

A code is 10 bytes in base32, shown as `XXXX-XXXX-XXXX-XXXX`: the minute it was issued (4 bytes,
big-endian) and the first 6 bytes of HMAC-SHA256(JWT secret, purpose, DID, minute). It is good
for 15 minutes, for that DID and purpose only. Guessing one means guessing 48 bits of HMAC, on
endpoints that also demand the password and are rate limited. Input is read leniently: case,
spaces and dashes do not matter.

Errors: `EmailTokenError(ValueError)` → `EmailTokenInvalid` / `EmailTokenExpired`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Final

TOKEN_TTL_SECONDS: Final = 15 * 60
PURPOSE_DELETE_ACCOUNT: Final = "delete_account"
PURPOSE_PLC_OPERATION: Final = "plc_operation"
_MAC_BYTES: Final = 6


class EmailTokenError(ValueError):
    """An emailed code was not accepted."""


class EmailTokenInvalid(EmailTokenError):
    pass


class EmailTokenExpired(EmailTokenError):
    pass


class EmailTokens:
    def __init__(self, secret: str, *, clock: Callable[[], float] = time.time) -> None:
        self._key = hashlib.sha256(b"pds-email-token\0" + secret.encode("utf-8")).digest()
        self._clock = clock

    def _mac(self, did: str, purpose: str, minute: int) -> bytes:
        message = f"{purpose}\0{did}\0{minute}".encode()
        return hmac.new(self._key, message, hashlib.sha256).digest()[:_MAC_BYTES]

    def issue(self, did: str, purpose: str) -> str:
        minute = int(self._clock() // 60)
        raw = minute.to_bytes(4, "big") + self._mac(did, purpose, minute)
        text = base64.b32encode(raw).decode("ascii")
        return "-".join(text[i : i + 4] for i in range(0, len(text), 4))

    def check(self, did: str, purpose: str, token: str) -> None:
        compact = token.replace("-", "").replace(" ", "").upper()
        try:
            raw = base64.b32decode(compact)
        except (binascii.Error, ValueError):
            raise EmailTokenInvalid("Token is invalid") from None
        if len(raw) != 4 + _MAC_BYTES:
            raise EmailTokenInvalid("Token is invalid")
        minute = int.from_bytes(raw[:4], "big")
        if not hmac.compare_digest(raw[4:], self._mac(did, purpose, minute)):
            raise EmailTokenInvalid("Token is invalid")
        if self._clock() - minute * 60 > TOKEN_TTL_SECONDS:
            raise EmailTokenExpired("Token is expired")

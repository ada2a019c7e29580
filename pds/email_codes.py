"""Single-use codes mailed to an account, one store for every purpose (`Purpose`).

Password resets, email confirmation and change, account deletion and PLC-operation signing all
mail the account a short code and later take it back, as the reference PDS does: the code lives
in the `email_token` table (`pds.db.email_tokens`), one per (purpose, account), so a new request
replaces the previous code; redeeming deletes it, so a code works once; it is good for 15
minutes. Changing the account's email forgets all its codes (they went to the old address).

A code is 10 random base32 characters (50 bits), shown and stored as `XXXXX-XXXXX` like the
reference's; input is read leniently (case, spaces and dashes do not matter). Within a purpose a
code is unique, so a password reset code alone names its account (`account_of`); every other
purpose is redeemed together with the DID of the session or request (`check`, `redeem`, `use`),
and a code of another purpose or account is simply not found. Guessing means hitting one of the
few live codes among 2^50 values on rate-limited endpoints.

Errors (`atcore.xrpc.InvalidRequest`, 400, the lexicons' names): `InvalidToken` (malformed,
unknown, used, replaced, another purpose's or account's code) and `ExpiredToken`.

Every issue also sweeps expired codes of all purposes, so the table holds only live codes plus
those expired since the last issue.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Final

from sqlalchemy.ext.asyncio import AsyncConnection

from atcore.syntax import Did
from atcore.xrpc import InvalidRequest
from pds.db import email_tokens as q
from pds.db.email_tokens import EmailTokenRow, Purpose
from pds.db.engine import Database

TOKEN_TTL_MS: Final = 15 * 60 * 1000
TOKEN_ALPHABET: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"  # noqa: S105 (base32)
TOKEN_LENGTH: Final = 10
"""Characters of a code (5 bits each), shown as two groups of five."""
TOKEN_INPUT_MAX_LENGTH: Final = 64
"""Longest `token` input read at all (a code is 11 characters, typed with a few spaces at most)."""
_ISSUE_ATTEMPTS: Final = 8
_IGNORED_IN_INPUT: Final = str.maketrans("", "", "- \t\r\n")


def new_token() -> str:
    """A fresh random code in its canonical form, `XXXXX-XXXXX`."""
    raw = "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(TOKEN_LENGTH))
    return f"{raw[:5]}-{raw[5:]}"


def canonical_token(text: str) -> str | None:
    """The canonical form of a typed code, or None when it cannot be one."""
    compact = text.translate(_IGNORED_IN_INPUT)
    if not compact.isascii():  # before upper(): "ß".upper() is "SS"
        return None
    compact = compact.upper()
    if len(compact) != TOKEN_LENGTH or any(ch not in TOKEN_ALPHABET for ch in compact):
        return None
    return f"{compact[:5]}-{compact[5:]}"


def invalid_token() -> InvalidRequest:
    return InvalidRequest("Token is invalid", error="InvalidToken")


def expired_token() -> InvalidRequest:
    return InvalidRequest("Token is expired", error="ExpiredToken")


class EmailCodes:
    def __init__(
        self,
        db: Database,
        *,
        clock: Callable[[], float] = time.time,
        token_source: Callable[[], str] = new_token,
    ) -> None:
        self._db = db
        self._clock = clock
        self._token_source = token_source

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    # -- issuing ----------------------------------------------------------------------------------
    async def issue(self, did: Did, purpose: Purpose) -> str:
        """Store a new code for the account (replacing its previous one) and return it."""
        now = self.now_ms()
        async with self._db.transaction() as conn:
            await q.delete_requested_before(conn, now - TOKEN_TTL_MS)
            token = await self._unused_token(conn, purpose)
            await q.put_token(conn, purpose=purpose, did=did, token=token, requested_at=now)
        return token

    async def _unused_token(self, conn: AsyncConnection, purpose: Purpose) -> str:
        # Inside the single writer's transaction, so no other issue can take it meanwhile.
        for _ in range(_ISSUE_ATTEMPTS):
            token = self._token_source()
            if not await q.token_taken(conn, purpose, token):
                return token
        raise RuntimeError(f"could not draw an unused {purpose} code")

    # -- checking and redeeming -------------------------------------------------------------------
    async def account_of(self, purpose: Purpose, token: str) -> tuple[Did, str]:
        """The account a live code names, and the code's canonical form (nothing consumed)."""
        canonical = canonical_token(token)
        if canonical is None:
            raise invalid_token()
        async with self._db.read() as conn:
            found = await q.find_token(conn, purpose, canonical)
        return self._live(found).did, canonical

    async def check(self, did: Did, purpose: Purpose, token: str) -> str:
        """Raise unless `token` is the account's live code; its canonical form (not consumed)."""
        async with self._db.read() as conn:
            return await self._checked(conn, did, purpose, token)

    async def redeem(self, conn: AsyncConnection, did: Did, purpose: Purpose, token: str) -> None:
        """Check and consume the account's code in the caller's write transaction, so the code
        is spent exactly when the change it allows commits."""
        canonical = await self._checked(conn, did, purpose, token)
        await self.take(conn, did, purpose, canonical)

    async def use(self, did: Did, purpose: Purpose, token: str) -> None:
        """Check and consume the account's code in a transaction of its own."""
        async with self._db.transaction() as conn:
            await self.redeem(conn, did, purpose, token)

    async def spend(self, did: Did, purpose: Purpose, canonical: str) -> None:
        """`take` in a transaction of its own (after work done between `check` and now)."""
        async with self._db.transaction() as conn:
            await self.take(conn, did, purpose, canonical)

    @staticmethod
    async def take(conn: AsyncConnection, did: Did, purpose: Purpose, canonical: str) -> None:
        """Consume a code checked earlier; InvalidToken when it was used or replaced since."""
        if not await q.take_token(conn, purpose, canonical, did):
            raise invalid_token()

    async def _checked(self, conn: AsyncConnection, did: Did, purpose: Purpose, token: str) -> str:
        canonical = canonical_token(token)
        if canonical is None:
            raise invalid_token()
        found = await q.find_token(conn, purpose, canonical)
        if found is not None and found.did != did:
            found = None  # another account's code: as unknown as any other
        self._live(found)
        return canonical

    def _live(self, found: EmailTokenRow | None) -> EmailTokenRow:
        if found is None:
            raise invalid_token()
        if self.now_ms() - found.requested_at >= TOKEN_TTL_MS:
            raise expired_token()
        return found

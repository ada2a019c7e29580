"""Forgotten passwords: `com.atproto.server.requestPasswordReset` and `resetPassword`.

Unlike the stateless codes of `pds.auth.email_tokens` (bound to a DID the caller also sends),
a reset code must name its account by itself and work once, so it lives in the `email_token`
table (`pds.db.email_tokens`): one live code per account, replaced when a new one is requested,
deleted when used.

A code is 10 random base32 characters (50 bits), shown and stored as `XXXXX-XXXXX` like the
reference PDS's; input is read leniently (case, spaces and dashes do not matter). A code is good
for 15 minutes. Guessing one means hitting one of the few live codes among 2^50 values, on an
endpoint limited to 50 attempts per IP every 5 minutes.

Resetting sets the new password hash, consumes the code and revokes every refresh token of the
account (sessions from app passwords included) in one transaction, as the reference does; app
passwords themselves are kept. Access tokens already issued stay valid until they expire (at
most the access-token lifetime), as in the reference: they are not stored.

Errors (`atcore.xrpc.InvalidRequest`, 400): `InvalidToken` (malformed, unknown, used or
replaced code), `ExpiredToken`, and plain `InvalidRequest` for a password of the wrong length
or an email that names no account (the reference's answer, "account does not have an email
address").
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Final

from sqlalchemy.ext.asyncio import AsyncConnection

from atcore.syntax import Did
from atcore.xrpc import InvalidRequest
from pds.accounts import normalize_email
from pds.auth import passwords
from pds.db import accounts as account_queries
from pds.db import email_tokens as q
from pds.db.email_tokens import PURPOSE_RESET_PASSWORD
from pds.db.engine import Database
from pds.mailer import Mailer

TOKEN_TTL_MS: Final = 15 * 60 * 1000
TOKEN_ALPHABET: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"  # noqa: S105 (base32)
TOKEN_LENGTH: Final = 10
"""Characters of a code (5 bits each), shown as two groups of five."""
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


def check_new_password(password: str) -> None:
    """The same rule as createAccount and the admin's updateAccountPassword, plus non-empty."""
    if not password:
        raise InvalidRequest("Input/password must not be empty")
    if len(password) > passwords.NEW_PASSWORD_MAX_LENGTH:
        raise InvalidRequest(
            f"Invalid password length. Maximum length is {passwords.NEW_PASSWORD_MAX_LENGTH} "
            "characters."
        )


def _invalid_token() -> InvalidRequest:
    return InvalidRequest("Token is invalid", error="InvalidToken")


class PasswordResets:
    def __init__(
        self,
        *,
        db: Database,
        mailer: Mailer,
        clock: Callable[[], float] = time.time,
        token_source: Callable[[], str] = new_token,
    ) -> None:
        self._db = db
        self._mailer = mailer
        self._clock = clock
        self._token_source = token_source

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def request(self, email: str) -> None:
        """Mail a fresh code to the account with this email (deactivated or taken down too)."""
        try:
            normalized = normalize_email(email)
        except InvalidRequest:
            normalized = None  # no account can have it: the same answer as an unknown one
        account = None
        if normalized is not None:
            async with self._db.read() as conn:
                account = await account_queries.get_account_by_email(conn, normalized)
        if account is None or account.email is None:
            raise InvalidRequest("account does not have an email address")
        token = await self._issue(account.did)
        await self._mailer.send_reset_password(
            to=account.email, handle=account.handle or account.email, token=token
        )

    async def _issue(self, did: Did) -> str:
        """Store a new code for the account (replacing its previous one) and return it."""
        now = self._now_ms()
        async with self._db.transaction() as conn:
            await q.delete_requested_before(conn, PURPOSE_RESET_PASSWORD, now - TOKEN_TTL_MS)
            token = await self._unused_token(conn)
            await q.put_token(
                conn, purpose=PURPOSE_RESET_PASSWORD, did=did, token=token, requested_at=now
            )
        return token

    async def _unused_token(self, conn: AsyncConnection) -> str:
        # Inside the single writer's transaction, so no other issue can take it meanwhile.
        for _ in range(_ISSUE_ATTEMPTS):
            token = self._token_source()
            if not await q.token_taken(conn, PURPOSE_RESET_PASSWORD, token):
                return token
        raise RuntimeError("could not draw an unused password reset code")

    async def reset(self, token: str, password: str) -> Did:
        """Set the password of the code's account; the code is used up, sessions revoked."""
        check_new_password(password)
        canonical = canonical_token(token)
        if canonical is None:
            raise _invalid_token()
        async with self._db.read() as conn:
            found = await q.find_token(conn, PURPOSE_RESET_PASSWORD, canonical)
        if found is None:
            raise _invalid_token()
        if self._now_ms() - found.requested_at >= TOKEN_TTL_MS:
            raise InvalidRequest("Token is expired", error="ExpiredToken")
        # scrypt runs before the write transaction: the single writer must not wait on it.
        hashed = await passwords.hash_password_async(password)
        async with self._db.transaction() as conn:
            if not await q.take_token(conn, PURPOSE_RESET_PASSWORD, canonical, found.did):
                raise _invalid_token()  # used or replaced since it was read
            if await account_queries.get_account(conn, found.did) is None:
                raise _invalid_token()
            await account_queries.update_password(conn, found.did, hashed)
            await account_queries.delete_refresh_tokens_of(conn, found.did)
        return found.did

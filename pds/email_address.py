"""The account's email address: confirming it and changing it, as the reference PDS does.

- `request_confirmation` mails a `confirm_email` code to the account's address (again, if it is
  already confirmed: confirming twice is harmless). `confirm` takes that code with the address
  it was sent to (compared normalized, like createAccount's) and marks the address confirmed.
- `request_update` mails an `update_email` code to the CURRENT address when that address is
  confirmed (`tokenRequired`: whoever changes it must read the old inbox); an unconfirmed address
  needs no code and nothing is mailed. `update` sets the new address, unconfirmed, and forgets
  every pending code of the account (all were mailed to the old address). A code given where none
  is required is still checked, as in the reference.

Each change runs in ONE write transaction that re-reads the account, redeems the code and writes
the row, so the code is spent exactly when the change commits, a concurrent confirmation cannot
let an update slip through without a code, and an address taken by another account (checked
under the single writer) leaves the code unspent for another try.

Unlike the reference, setting the address the account already has is a no-op: it does not drop
the confirmation of an address whose owner just proved control of it again.

Errors (`InvalidRequest`, 400, the lexicons' names): `AccountNotFound`, `InvalidEmail` (not the
account's address), `TokenRequired`, `InvalidToken`, `ExpiredToken`, and plain `InvalidRequest`
for an unsupported or taken address, or an account without one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from sqlalchemy.ext.asyncio import AsyncConnection

from atcore.syntax import Did
from atcore.xrpc import InvalidRequest
from pds.accounts import normalize_email
from pds.db import accounts as q
from pds.db import email_tokens
from pds.db.accounts import AccountRow
from pds.db.email_tokens import Purpose
from pds.db.engine import Database
from pds.email_codes import EmailCodes
from pds.mailer import Mailer

EMAIL_TAKEN_MESSAGE: Final = "This email address is already in use, please use a different email."


class EmailAddresses:
    def __init__(
        self,
        *,
        db: Database,
        codes: EmailCodes,
        mailer: Mailer,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        self._codes = codes
        self._mailer = mailer
        self._clock = clock

    # -- confirmation -----------------------------------------------------------------------------
    async def request_confirmation(self, did: Did) -> None:
        email = _address_of(await self._account(did))
        token = await self._codes.issue(did, Purpose.CONFIRM_EMAIL)
        await self._mailer.send_confirm_email(to=email, token=token)

    async def confirm(self, did: Did, email: str, token: str) -> None:
        claimed = _normalized_or_none(email)
        async with self._db.transaction() as conn:
            account = await q.get_account(conn, did)
            if account is None:
                raise InvalidRequest("user not found", error="AccountNotFound")
            if account.email is None or claimed != account.email:
                raise InvalidRequest("invalid email", error="InvalidEmail")
            await self._codes.redeem(conn, did, Purpose.CONFIRM_EMAIL, token)
            await q.set_email_confirmed_at(conn, did, int(self._clock() * 1000))

    # -- change -----------------------------------------------------------------------------------
    async def request_update(self, did: Did) -> bool:
        """Mail a code to the current address if it is confirmed; whether one is required."""
        account = await self._account(did)
        email = _address_of(account)
        if account.email_confirmed_at is None:
            return False
        token = await self._codes.issue(did, Purpose.UPDATE_EMAIL)
        await self._mailer.send_update_email(to=email, token=token)
        return True

    async def update(self, did: Did, email: str, token: str | None) -> None:
        new_email = normalize_email(email)
        async with self._db.transaction() as conn:
            account = await q.get_account(conn, did)
            if account is None:
                raise InvalidRequest("account not found")
            if not token and account.email_confirmed_at is not None:
                raise InvalidRequest("confirmation token required", error="TokenRequired")
            if token:
                await self._codes.redeem(conn, did, Purpose.UPDATE_EMAIL, token)
            await _ensure_not_taken(conn, new_email, did)
            if new_email != account.email:
                await q.update_email(conn, did, new_email)
                await email_tokens.delete_tokens_of(conn, did)

    async def _account(self, did: Did) -> AccountRow:
        async with self._db.read() as conn:
            account = await q.get_account(conn, did)
        if account is None:
            raise InvalidRequest("account not found")
        return account


async def _ensure_not_taken(conn: AsyncConnection, email: str, did: Did) -> None:
    # Read under the single writer, so no other account can take the address before we write.
    owner = await q.email_owner(conn, email)
    if owner is not None and owner != did:
        raise InvalidRequest(EMAIL_TAKEN_MESSAGE)


def _address_of(account: AccountRow) -> str:
    if account.email is None:
        raise InvalidRequest("account does not have an email address")
    return account.email


def _normalized_or_none(email: str) -> str | None:
    try:
        return normalize_email(email)
    except InvalidRequest:
        return None  # cannot be the account's address either

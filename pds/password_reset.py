"""Forgotten passwords: `com.atproto.server.requestPasswordReset` and `resetPassword`.

The code is a `pds.email_codes` code of purpose `reset_password`: it names its account by
itself (the caller is not signed in), works once, is replaced by a new request and is good for
15 minutes. Guessing one means hitting one of the few live codes among 2^50 values, on an
endpoint limited to 50 attempts per IP every 5 minutes; requests are limited per IP and, so
that many addresses cannot flood one inbox, per account (`pds.api.server_account`).

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

from atcore.syntax import Did
from atcore.xrpc import InvalidRequest
from pds.accounts import normalize_email
from pds.auth import passwords
from pds.db import accounts as account_queries
from pds.db.accounts import AccountRow
from pds.db.email_tokens import Purpose
from pds.db.engine import Database
from pds.email_codes import EmailCodes, invalid_token
from pds.mailer import Mailer


def check_new_password(password: str) -> None:
    """The same rule as createAccount and the admin's updateAccountPassword, plus non-empty."""
    if not password:
        raise InvalidRequest("Input/password must not be empty")
    if len(password) > passwords.NEW_PASSWORD_MAX_LENGTH:
        raise InvalidRequest(
            f"Invalid password length. Maximum length is {passwords.NEW_PASSWORD_MAX_LENGTH} "
            "characters."
        )


class PasswordResets:
    def __init__(self, *, db: Database, mailer: Mailer, codes: EmailCodes) -> None:
        self._db = db
        self._mailer = mailer
        self._codes = codes

    async def request(self, email: str) -> None:
        """Mail a fresh code to the account with this email (`account_for`, then `mail_code`)."""
        await self.mail_code(await self.account_for(email))

    async def account_for(self, email: str) -> AccountRow:
        """The account (deactivated or taken down too) with this email, or InvalidRequest."""
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
        return account

    async def mail_code(self, account: AccountRow) -> None:
        if account.email is None:
            raise InvalidRequest("account does not have an email address")
        token = await self._codes.issue(account.did, Purpose.RESET_PASSWORD)
        await self._mailer.send_reset_password(
            to=account.email, handle=account.handle or account.email, token=token
        )

    async def reset(self, token: str, password: str) -> Did:
        """Set the password of the code's account; the code is used up, sessions revoked."""
        check_new_password(password)
        did, canonical = await self._codes.account_of(Purpose.RESET_PASSWORD, token)
        # scrypt runs before the write transaction: the single writer must not wait on it.
        hashed = await passwords.hash_password_async(password)
        async with self._db.transaction() as conn:
            await self._codes.take(conn, did, Purpose.RESET_PASSWORD, canonical)
            if await account_queries.get_account(conn, did) is None:
                raise invalid_token()
            await account_queries.update_password(conn, did, hashed)
            await account_queries.delete_refresh_tokens_of(conn, did)
        return did

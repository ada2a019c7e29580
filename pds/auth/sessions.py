"""Logins, session tokens, refresh-token rotation and app passwords.

Rotation (refreshSession) as in the reference: the presented refresh token gets a successor id
(`next_id`) and its own life is cut to a grace period of two hours (or less, if it expired
sooner). Presenting the same old token again within the grace period yields the SAME successor
(same `jti`), so a client that lost the response, or two tabs refreshing at once, end up holding
one valid session instead of one of them being logged out. Each rotation runs in one serialized
write transaction, which is what makes the concurrent case deterministic. Expired tokens are
swept whenever their account refreshes.

Logins take at least `LOGIN_MIN_SECONDS` whatever the outcome, so response time does not reveal
whether an identifier exists. Taken-down accounts can log in only with their account password
and get a `com.atproto.takendown` session whose refresh token is not stored (it cannot rotate).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Final

from atcore.syntax import Did, is_valid_at_identifier
from atcore.xrpc import AuthenticationRequired, InvalidRequest
from pds.auth import passwords
from pds.auth.tokens import TokenIssuer, TokenPair, scope_for
from pds.db import accounts as q
from pds.db.engine import Database

LOGIN_MIN_SECONDS: Final = 0.35
REFRESH_GRACE_MS: Final = 2 * 3600 * 1000
APP_PASSWORD_NAME_MAX: Final = 256


@dataclass(frozen=True, slots=True)
class AppPasswordInfo:
    name: str
    privileged: bool


@dataclass(frozen=True, slots=True)
class LoginResult:
    account: q.AccountRow
    app_password: AppPasswordInfo | None


@dataclass(frozen=True, slots=True)
class NewAppPassword:
    name: str
    password: str
    created_at: int
    privileged: bool


def _now_ms() -> int:
    return int(time.time() * 1000)


class SessionManager:
    def __init__(
        self, db: Database, tokens: TokenIssuer, *, login_min_seconds: float = LOGIN_MIN_SECONDS
    ) -> None:
        self._db = db
        self._tokens = tokens
        self._login_min_seconds = login_min_seconds

    # -- login ------------------------------------------------------------------------------------
    async def login(self, identifier: str, password: str) -> LoginResult:
        """Check credentials; `AuthenticationRequired` without saying which part was wrong."""
        started = time.monotonic()
        try:
            return await self._check_login(identifier.lower(), password)
        finally:
            remaining = self._login_min_seconds - (time.monotonic() - started)
            if remaining > 0:
                await asyncio.sleep(remaining)

    async def _check_login(self, identifier: str, password: str) -> LoginResult:
        account = await self._find_for_login(identifier)
        if account is None:
            raise AuthenticationRequired("Invalid identifier or password")
        if await passwords.verify_password_async(password, account.password_scrypt):
            return LoginResult(account=account, app_password=None)
        if not account.taken_down:
            app_password = await self.verify_app_password(account.did, password)
            if app_password is not None:
                return LoginResult(account=account, app_password=app_password)
        raise AuthenticationRequired("Invalid identifier or password")

    async def _find_for_login(self, identifier: str) -> q.AccountRow | None:
        async with self._db.read() as conn:
            if "@" in identifier:
                return await q.get_account_by_email(conn, identifier)
            if is_valid_at_identifier(identifier):
                return await q.get_account_by_identifier(conn, identifier)
        return None

    async def verify_account_password(self, did: str, password: str) -> bool:
        async with self._db.read() as conn:
            account = await q.get_account(conn, did)
        if account is None:
            return False
        return await passwords.verify_password_async(password, account.password_scrypt)

    async def verify_app_password(self, did: str, password: str) -> AppPasswordInfo | None:
        if len(password) > passwords.OLD_PASSWORD_MAX_LENGTH:
            return None
        async with self._db.read() as conn:
            rows = await q.list_app_passwords(conn, did)
        if not rows:
            return None
        candidate = await passwords.hash_app_password_async(did, password)
        index = passwords.matches_any(candidate, [row.password_scrypt for row in rows])
        if index is None:
            return None
        return AppPasswordInfo(name=rows[index].name, privileged=rows[index].privileged)

    # -- sessions ---------------------------------------------------------------------------------
    async def create_session(
        self, did: Did, app_password: AppPasswordInfo | None, *, taken_down: bool = False
    ) -> TokenPair:
        privileged = None if app_password is None else app_password.privileged
        pair = self._tokens.create_pair(did, scope_for(privileged, taken_down=taken_down))
        if not taken_down:
            async with self._db.transaction() as conn:
                await q.insert_refresh_token(
                    conn,
                    token_id=pair.refresh_id,
                    did=did,
                    expires_at=pair.refresh_expires_at * 1000,
                    app_password_name=None if app_password is None else app_password.name,
                )
        return pair

    async def rotate_refresh_token(self, token_id: str) -> TokenPair | None:
        """The successor session, or None when the token is unknown, revoked or expired."""
        async with self._db.transaction() as conn:
            row = await q.get_refresh_token(conn, token_id)
            if row is None:
                return None
            now = _now_ms()
            await q.delete_expired_refresh_tokens(conn, row.did, now)
            grace_ends = min(now + REFRESH_GRACE_MS, row.expires_at)
            if grace_ends <= now:
                return None
            if row.app_password_name is not None and row.app_password_privileged is None:
                return None  # its app password was revoked
            pair = self._tokens.create_pair(
                row.did, scope_for(row.app_password_privileged), refresh_id=row.next_id
            )
            await q.set_refresh_successor(
                conn, token_id, next_id=pair.refresh_id, expires_at=grace_ends
            )
            await q.insert_refresh_token(
                conn,
                token_id=pair.refresh_id,
                did=row.did,
                expires_at=pair.refresh_expires_at * 1000,
                app_password_name=row.app_password_name,
            )
            return pair

    async def revoke_refresh_token(self, token_id: str) -> bool:
        async with self._db.transaction() as conn:
            return await q.delete_refresh_token(conn, token_id)

    # -- app passwords ----------------------------------------------------------------------------
    async def create_app_password(self, did: str, name: str, privileged: bool) -> NewAppPassword:
        if not name.strip() or len(name) > APP_PASSWORD_NAME_MAX:
            raise InvalidRequest(
                f"App password name must be 1 to {APP_PASSWORD_NAME_MAX} characters"
            )
        password = passwords.generate_app_password()
        hashed = await passwords.hash_app_password_async(did, password)
        now = _now_ms()
        async with self._db.transaction() as conn:
            created = await q.insert_app_password(
                conn, did=did, name=name, password_scrypt=hashed, privileged=privileged, now=now
            )
        if not created:
            raise InvalidRequest(f"An app password named {name!r} already exists")
        return NewAppPassword(name=name, password=password, created_at=now, privileged=privileged)

    async def list_app_passwords(self, did: str) -> list[q.AppPasswordRow]:
        async with self._db.read() as conn:
            return await q.list_app_passwords(conn, did)

    async def revoke_app_password(self, did: str, name: str) -> None:
        """Delete the app password and every refresh token issued through it."""
        async with self._db.transaction() as conn:
            await q.delete_app_password(conn, did, name)
            await q.delete_app_password_refresh_tokens(conn, did, name)

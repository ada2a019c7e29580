"""All SQL touching accounts, app passwords and refresh tokens (invites: `invites`, moderation
and status tallies: `moderation`).

Every function takes the connection of the caller's transaction (`Database.transaction()` for
writes, `Database.read()` for reads), so a multi-step change (say, account row + repo + events)
commits or rolls back as one. Times are epoch milliseconds. Handles and emails are stored
lowercase; lookups lowercase their argument.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from atcore.syntax import Did
from pds.db.schema import account, account_pref, app_password, email_token, refresh_token


@dataclass(frozen=True, slots=True)
class AccountRow:
    did: Did
    handle: str | None
    email: str | None
    password_scrypt: str
    signing_key: bytes
    created_at: int
    email_confirmed_at: int | None
    deactivated_at: int | None
    delete_after: int | None
    takedown_ref: str | None
    invites_disabled: bool

    @property
    def taken_down(self) -> bool:
        return self.takedown_ref is not None

    @property
    def deactivated(self) -> bool:
        return self.deactivated_at is not None

    @classmethod
    def from_row(cls, row: Any) -> AccountRow:
        return cls(
            did=Did(row.did),
            handle=row.handle,
            email=row.email,
            password_scrypt=row.password_scrypt,
            signing_key=bytes(row.signing_key),
            created_at=row.created_at,
            email_confirmed_at=row.email_confirmed_at,
            deactivated_at=row.deactivated_at,
            delete_after=row.delete_after,
            takedown_ref=row.takedown_ref,
            invites_disabled=bool(row.invites_disabled),
        )


@dataclass(frozen=True, slots=True)
class AppPasswordRow:
    name: str
    password_scrypt: str
    privileged: bool
    created_at: int


@dataclass(frozen=True, slots=True)
class RefreshTokenRow:
    id: str
    did: Did
    expires_at: int
    next_id: str | None
    app_password_name: str | None
    app_password_privileged: bool | None
    """None when the token came from the account password (or its app password is gone)."""


# -- accounts ---------------------------------------------------------------------------------
async def insert_account(
    conn: AsyncConnection,
    *,
    did: str,
    handle: str,
    email: str | None,
    password_scrypt: str,
    signing_key: bytes,
    now: int,
) -> None:
    await conn.execute(
        insert(account).values(
            did=did,
            handle=handle.lower(),
            email=email.lower() if email else None,
            password_scrypt=password_scrypt,
            signing_key=signing_key,
            created_at=now,
            invites_disabled=False,
        )
    )


async def get_account(conn: AsyncConnection, did: str) -> AccountRow | None:
    row = (await conn.execute(select(account).where(account.c.did == did))).first()
    return AccountRow.from_row(row) if row else None


async def get_account_by_handle(conn: AsyncConnection, handle: str) -> AccountRow | None:
    query = select(account).where(account.c.handle == handle.lower())
    row = (await conn.execute(query)).first()
    return AccountRow.from_row(row) if row else None


async def get_account_by_email(conn: AsyncConnection, email: str) -> AccountRow | None:
    row = (await conn.execute(select(account).where(account.c.email == email.lower()))).first()
    return AccountRow.from_row(row) if row else None


async def get_account_by_identifier(conn: AsyncConnection, identifier: str) -> AccountRow | None:
    """By DID (`did:...`), else by handle."""
    if identifier.startswith("did:"):
        return await get_account(conn, identifier)
    return await get_account_by_handle(conn, identifier)


async def handle_owner(conn: AsyncConnection, handle: str) -> str | None:
    query = select(account.c.did).where(account.c.handle == handle.lower())
    return (await conn.execute(query)).scalar_one_or_none()


async def email_owner(conn: AsyncConnection, email: str) -> str | None:
    query = select(account.c.did).where(account.c.email == email.lower())
    return (await conn.execute(query)).scalar_one_or_none()


async def update_handle(conn: AsyncConnection, did: str, handle: str) -> None:
    await conn.execute(update(account).where(account.c.did == did).values(handle=handle.lower()))


async def update_password(conn: AsyncConnection, did: str, password_scrypt: str) -> None:
    await conn.execute(
        update(account).where(account.c.did == did).values(password_scrypt=password_scrypt)
    )


async def update_email(conn: AsyncConnection, did: str, email: str) -> None:
    """Set a new address, not yet confirmed."""
    await conn.execute(
        update(account)
        .where(account.c.did == did)
        .values(email=email.lower(), email_confirmed_at=None)
    )


async def set_email_confirmed_at(conn: AsyncConnection, did: str, confirmed_at: int) -> None:
    await conn.execute(
        update(account).where(account.c.did == did).values(email_confirmed_at=confirmed_at)
    )


async def set_deactivated(
    conn: AsyncConnection, did: str, *, deactivated_at: int | None, delete_after: int | None
) -> bool:
    """Set (or clear, with None) the deactivation; False when there is no such account."""
    result = await conn.execute(
        update(account)
        .where(account.c.did == did)
        .values(deactivated_at=deactivated_at, delete_after=delete_after)
    )
    return result.rowcount > 0


async def set_takedown(conn: AsyncConnection, did: str, takedown_ref: str | None) -> bool:
    result = await conn.execute(
        update(account).where(account.c.did == did).values(takedown_ref=takedown_ref)
    )
    return result.rowcount > 0


async def delete_account_rows(conn: AsyncConnection, did: str) -> None:
    """Remove the account and every credential, mailed code and preference it owns."""
    await conn.execute(delete(refresh_token).where(refresh_token.c.did == did))
    await conn.execute(delete(app_password).where(app_password.c.did == did))
    await conn.execute(delete(account_pref).where(account_pref.c.did == did))
    await conn.execute(delete(email_token).where(email_token.c.did == did))
    await conn.execute(delete(account).where(account.c.did == did))


# -- app passwords ----------------------------------------------------------------------------
async def insert_app_password(
    conn: AsyncConnection,
    *,
    did: str,
    name: str,
    password_scrypt: str,
    privileged: bool,
    now: int,
) -> bool:
    """False when the account already has an app password with that name."""
    result = await conn.execute(
        sqlite_insert(app_password)
        .values(
            did=did,
            name=name,
            password_scrypt=password_scrypt,
            privileged=privileged,
            created_at=now,
        )
        .on_conflict_do_nothing()
    )
    return result.rowcount > 0


async def list_app_passwords(conn: AsyncConnection, did: str) -> list[AppPasswordRow]:
    query = (
        select(app_password)
        .where(app_password.c.did == did)
        .order_by(app_password.c.created_at.desc(), app_password.c.name)
    )
    return [
        AppPasswordRow(
            name=row.name,
            password_scrypt=row.password_scrypt,
            privileged=bool(row.privileged),
            created_at=row.created_at,
        )
        for row in await conn.execute(query)
    ]


async def delete_app_password(conn: AsyncConnection, did: str, name: str) -> bool:
    result = await conn.execute(
        delete(app_password).where(app_password.c.did == did, app_password.c.name == name)
    )
    return result.rowcount > 0


# -- refresh tokens ---------------------------------------------------------------------------
async def insert_refresh_token(
    conn: AsyncConnection,
    *,
    token_id: str,
    did: str,
    expires_at: int,
    app_password_name: str | None,
) -> None:
    """Store a refresh token; a no-op when it exists (a successor re-issued in the grace period)."""
    await conn.execute(
        sqlite_insert(refresh_token)
        .values(id=token_id, did=did, expires_at=expires_at, app_password_name=app_password_name)
        .on_conflict_do_nothing()
    )


async def get_refresh_token(conn: AsyncConnection, token_id: str) -> RefreshTokenRow | None:
    query = (
        select(refresh_token, app_password.c.privileged)
        .select_from(
            refresh_token.outerjoin(
                app_password,
                and_(
                    app_password.c.did == refresh_token.c.did,
                    app_password.c.name == refresh_token.c.app_password_name,
                ),
            )
        )
        .where(refresh_token.c.id == token_id)
    )
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    return RefreshTokenRow(
        id=row.id,
        did=Did(row.did),
        expires_at=row.expires_at,
        next_id=row.next_id,
        app_password_name=row.app_password_name,
        app_password_privileged=None if row.privileged is None else bool(row.privileged),
    )


async def set_refresh_successor(
    conn: AsyncConnection, token_id: str, *, next_id: str, expires_at: int
) -> bool:
    """Record the successor and shorten the token's life to the grace period.

    False when another rotation already chose a different successor (the caller retries).
    """
    result = await conn.execute(
        update(refresh_token)
        .where(
            refresh_token.c.id == token_id,
            or_(refresh_token.c.next_id.is_(None), refresh_token.c.next_id == next_id),
        )
        .values(next_id=next_id, expires_at=expires_at)
    )
    return result.rowcount > 0


async def delete_refresh_token(conn: AsyncConnection, token_id: str) -> bool:
    result = await conn.execute(delete(refresh_token).where(refresh_token.c.id == token_id))
    return result.rowcount > 0


async def delete_refresh_tokens_of(conn: AsyncConnection, did: str) -> None:
    await conn.execute(delete(refresh_token).where(refresh_token.c.did == did))


async def delete_app_password_refresh_tokens(conn: AsyncConnection, did: str, name: str) -> None:
    await conn.execute(
        delete(refresh_token).where(
            refresh_token.c.did == did, refresh_token.c.app_password_name == name
        )
    )


async def delete_expired_refresh_tokens(conn: AsyncConnection, did: str, now: int) -> None:
    await conn.execute(
        delete(refresh_token).where(refresh_token.c.did == did, refresh_token.c.expires_at <= now)
    )

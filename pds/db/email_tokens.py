"""SQL for single-use codes mailed to an account (`email_token`), for every `Purpose`.

A row is (purpose, DID, token, requested_at): at most one per (purpose, DID), so issuing a new
code replaces the previous one, and a token is unique within its purpose, so it alone names its
account. Redeeming deletes the row in the caller's transaction, which is what makes a code
single-use. Times are epoch milliseconds; every function takes the caller's connection. The
rules around these rows (format, lifetime, errors) live in `pds.email_codes`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import delete, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from atcore.syntax import Did
from pds.db.schema import email_token


class Purpose(StrEnum):
    """What a mailed code allows (the reference PDS's names, stored in `email_token.purpose`)."""

    RESET_PASSWORD = "reset_password"  # noqa: S105 (a purpose, not a secret)
    CONFIRM_EMAIL = "confirm_email"
    UPDATE_EMAIL = "update_email"
    DELETE_ACCOUNT = "delete_account"
    PLC_OPERATION = "plc_operation"


@dataclass(frozen=True, slots=True)
class EmailTokenRow:
    did: Did
    requested_at: int


async def token_taken(conn: AsyncConnection, purpose: str, token: str) -> bool:
    """True when another account's live (or expired, not yet swept) code is `token`."""
    query = select(email_token.c.did).where(
        email_token.c.purpose == purpose, email_token.c.token == token
    )
    return (await conn.execute(query)).first() is not None


async def put_token(
    conn: AsyncConnection, *, purpose: str, did: str, token: str, requested_at: int
) -> None:
    """Store the account's code for `purpose`, replacing any earlier one."""
    statement = sqlite_insert(email_token).values(
        purpose=purpose, did=did, token=token, requested_at=requested_at
    )
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=[email_token.c.purpose, email_token.c.did],
            set_={"token": statement.excluded.token, "requested_at": requested_at},
        )
    )


async def find_token(conn: AsyncConnection, purpose: str, token: str) -> EmailTokenRow | None:
    query = select(email_token.c.did, email_token.c.requested_at).where(
        email_token.c.purpose == purpose, email_token.c.token == token
    )
    row = (await conn.execute(query)).first()
    return EmailTokenRow(did=Did(row.did), requested_at=row.requested_at) if row else None


async def take_token(conn: AsyncConnection, purpose: str, token: str, did: str) -> bool:
    """Delete the code if it is still the account's; False when it was used or replaced."""
    result = await conn.execute(
        delete(email_token).where(
            email_token.c.purpose == purpose,
            email_token.c.token == token,
            email_token.c.did == did,
        )
    )
    return result.rowcount > 0


async def delete_requested_before(conn: AsyncConnection, cutoff: int) -> None:
    """Drop codes of any purpose requested before `cutoff` (expired: nobody can redeem them)."""
    await conn.execute(delete(email_token).where(email_token.c.requested_at < cutoff))


async def delete_token(conn: AsyncConnection, purpose: str, did: str) -> None:
    """Forget the account's code for `purpose` (e.g. its password was set another way)."""
    await conn.execute(
        delete(email_token).where(email_token.c.purpose == purpose, email_token.c.did == did)
    )


async def delete_tokens_of(conn: AsyncConnection, did: str) -> None:
    """Forget every code of the account (they were mailed to an address it no longer has)."""
    await conn.execute(delete(email_token).where(email_token.c.did == did))

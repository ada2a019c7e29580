"""SQL for invite codes and their uses (times in epoch milliseconds)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from pds.db.schema import invite_code, invite_code_use


@dataclass(frozen=True, slots=True)
class InviteCodeRow:
    code: str
    available_uses: int
    disabled: bool
    for_account: str
    created_by: str
    created_at: int
    uses: int


# -- invite codes -----------------------------------------------------------------------------
async def insert_invite_codes(
    conn: AsyncConnection,
    codes: Sequence[str],
    *,
    available_uses: int,
    for_account: str,
    created_by: str,
    now: int,
) -> None:
    await conn.execute(
        insert(invite_code),
        [
            {
                "code": code,
                "available_uses": available_uses,
                "disabled": False,
                "for_account": for_account,
                "created_by": created_by,
                "created_at": now,
            }
            for code in codes
        ],
    )


async def get_invite_code(conn: AsyncConnection, code: str) -> InviteCodeRow | None:
    uses = (
        select(func.count())
        .select_from(invite_code_use)
        .where(invite_code_use.c.code == invite_code.c.code)
        .scalar_subquery()
    )
    row = (
        await conn.execute(
            select(invite_code, uses.label("uses")).where(invite_code.c.code == code)
        )
    ).first()
    if row is None:
        return None
    return InviteCodeRow(
        code=row.code,
        available_uses=row.available_uses,
        disabled=bool(row.disabled),
        for_account=row.for_account,
        created_by=row.created_by,
        created_at=row.created_at,
        uses=row.uses,
    )


async def record_invite_use(conn: AsyncConnection, code: str, used_by: str, now: int) -> None:
    await conn.execute(insert(invite_code_use).values(code=code, used_by=used_by, used_at=now))


async def invited_by(conn: AsyncConnection, did: str) -> str | None:
    query = select(invite_code_use.c.code).where(invite_code_use.c.used_by == did)
    return (await conn.execute(query)).scalars().first()


@dataclass(frozen=True, slots=True)
class InviteUse:
    used_by: str
    used_at: int


@dataclass(frozen=True, slots=True)
class InviteCodeDetail:
    """A code with who used it (newest use first), as getAccountInviteCodes lists it."""

    code: str
    available_uses: int
    disabled: bool
    for_account: str
    created_by: str
    created_at: int
    uses: tuple[InviteUse, ...]


async def list_codes_for_account(conn: AsyncConnection, did: str) -> list[InviteCodeDetail]:
    """The codes made for the account (by the admin or earned), oldest first, with their uses."""
    codes = (
        await conn.execute(
            select(invite_code)
            .where(invite_code.c.for_account == did)
            .order_by(invite_code.c.created_at, invite_code.c.code)
        )
    ).all()
    uses: dict[str, list[InviteUse]] = {row.code: [] for row in codes}
    use_rows = await conn.execute(
        select(invite_code_use)
        .join(invite_code, invite_code.c.code == invite_code_use.c.code)
        .where(invite_code.c.for_account == did)
        .order_by(invite_code_use.c.used_at.desc(), invite_code_use.c.used_by)
    )
    for use in use_rows:  # same snapshot (`Database.read()`): every use's code was listed
        uses[use.code].append(InviteUse(used_by=use.used_by, used_at=use.used_at))
    return [
        InviteCodeDetail(
            code=row.code,
            available_uses=row.available_uses,
            disabled=bool(row.disabled),
            for_account=row.for_account,
            created_by=row.created_by,
            created_at=row.created_at,
            uses=tuple(uses[row.code]),
        )
        for row in codes
    ]

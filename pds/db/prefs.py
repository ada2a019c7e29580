"""SQL for account preferences (`account_pref`): private per-account settings, kept in order.

Each preference is one JSON object with a `$type` (stored as `name`) and a `position` that fixes
the order clients wrote them in. Writes replace a whole namespace (`app.bsky` in practice) in one
go, as `app.bsky.actor.putPreferences` does; preferences outside the namespace and those the
caller asks to `preserve` (types it may not see, so may not overwrite) survive the replacement.

Every function takes the caller's connection, so a replacement is atomic within its transaction.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from pds.db.schema import account_pref


def in_namespace(name: str, namespace: str) -> bool:
    """True when the preference type `name` is `namespace` itself or lies below it."""
    return name == namespace or name.startswith(f"{namespace}.")


async def read_preferences(
    conn: AsyncConnection, did: str, *, namespace: str
) -> list[dict[str, Any]]:
    """The account's preferences in `namespace`, in the order they were written."""
    rows = await conn.execute(
        select(account_pref.c.name, account_pref.c.value_json)
        .where(account_pref.c.did == did)
        .order_by(account_pref.c.position)
    )
    return [json.loads(row.value_json) for row in rows if in_namespace(row.name, namespace)]


async def replace_preferences(
    conn: AsyncConnection,
    did: str,
    preferences: Sequence[Mapping[str, Any]],
    *,
    namespace: str,
    preserve: Collection[str] = (),
) -> None:
    """Replace the account's preferences in `namespace` with `preferences` (each has `$type`).

    Stored preferences whose type is in `preserve` are kept. The new ones go after every kept
    row, so reading back returns kept rows first, then `preferences` in the given order.
    """
    stored = await conn.execute(
        select(account_pref.c.position, account_pref.c.name).where(account_pref.c.did == did)
    )
    doomed = [
        row.position
        for row in stored
        if in_namespace(row.name, namespace) and row.name not in preserve
    ]
    if doomed:
        await conn.execute(
            delete(account_pref).where(
                account_pref.c.did == did, account_pref.c.position.in_(doomed)
            )
        )
    if not preferences:
        return
    highest = await conn.scalar(
        select(func.max(account_pref.c.position)).where(account_pref.c.did == did)
    )
    start = 0 if highest is None else int(highest) + 1
    await conn.execute(
        insert(account_pref),
        [
            {
                "did": did,
                "position": start + offset,
                "name": preference["$type"],
                "value_json": json.dumps(preference, separators=(",", ":"), ensure_ascii=False),
            }
            for offset, preference in enumerate(preferences)
        ],
    )

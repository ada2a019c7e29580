"""SQL for the `com.atproto.sync` listings that span accounts and repositories."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from pds.db import schema

_account = schema.account
_root = schema.repo_root


@dataclass(frozen=True, slots=True)
class HostedRepo:
    did: str
    head: str
    rev: str
    deactivated: bool
    taken_down: bool


async def list_hosted_repos(
    conn: AsyncConnection, *, after: str | None, limit: int
) -> list[HostedRepo]:
    """Accounts with a repository, ordered by DID, starting after the DID `after`."""
    query = (
        select(
            _root.c.did,
            _root.c.cid,
            _root.c.rev,
            _account.c.deactivated_at,
            _account.c.takedown_ref,
        )
        .join(_account, _account.c.did == _root.c.did)
        .order_by(_root.c.did)
        .limit(limit)
    )
    if after is not None:
        query = query.where(_root.c.did > after)
    return [
        HostedRepo(did, head, rev, deactivated is not None, takedown is not None)
        for did, head, rev, deactivated, takedown in await conn.execute(query)
    ]

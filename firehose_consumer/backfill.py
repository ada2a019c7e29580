"""Whole-host backfill: every repository a PDS (or relay) lists, queued for `getRepo` resync.

Backfill does not fetch anything itself. It pages through the host's repository list and marks
each repo `desynchronized` in `repo_state` (new rows for unknown repos, `resync_after` = now);
the consumer's resync scheduler then fetches them with bounded concurrency, through each DID's
lane so live events of that DID stay ordered after its snapshot. Because the queue lives in the
database, a backfill interrupted by a crash simply continues after the restart.

A partitioned consumer (`CONSUMER_PARTITION`) backfilling after `#info OutdatedCursor` queues
only its own DIDs (`owns`); every partition gets the same `#info` and queues its share. The
`backfill HOST` command queues every DID: each partition's scheduler then takes its own.

Listing: `com.atproto.sync.listReposByCollection?collection=app.skyspot.checkin` first (relays
serve it, and it names only repos that have check-ins); when the host does not implement it, the
full `com.atproto.sync.listRepos`.

Errors: `BackfillError` (a `ValueError`) when the host cannot be listed.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine

from atcore import nsids
from atcore.index.retry import run_transaction
from atcore.index.schema import STATUS_ACTIVE
from atcore.syntax import is_valid_did
from firehose_consumer.db import queries

PAGE_SIZE: Final = 1000
# Not in atcore.nsids (which lists what our own services serve); relays implement it.
LIST_REPOS_BY_COLLECTION: Final = "com.atproto.sync.listReposByCollection"
_NOT_IMPLEMENTED: Final = frozenset({400, 404, 405, 501})


class BackfillError(ValueError):
    """The host's repository list could not be read."""


@dataclass(frozen=True, slots=True)
class Listing:
    did: str
    status: str  # "active" or the reason it is not


async def _page(
    session: aiohttp.ClientSession, url: str, params: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    timeout = aiohttp.ClientTimeout(total=60)
    try:
        async with session.get(url, params=params, timeout=timeout) as response:
            body = await response.json(content_type=None) if response.status == 200 else {}
            return response.status, body if isinstance(body, dict) else {}
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise BackfillError(f"{url}: {exc!r}") from exc


async def list_repos(
    session: aiohttp.ClientSession, http_base: str
) -> AsyncIterator[list[Listing]]:
    """Pages of repos, preferring the check-in collection's list when the host has one."""
    by_collection = f"{http_base}/xrpc/{LIST_REPOS_BY_COLLECTION}"
    status, body = await _page(
        session, by_collection, {"collection": nsids.SKYSPOT_CHECKIN, "limit": str(PAGE_SIZE)}
    )
    if status == 200:
        async for page in _paged(
            session, by_collection, body, {"collection": nsids.SKYSPOT_CHECKIN}
        ):
            yield page
        return
    if status not in _NOT_IMPLEMENTED:
        raise BackfillError(f"{by_collection} answered {status}")
    everything = f"{http_base}/xrpc/{nsids.SYNC_LIST_REPOS}"
    status, body = await _page(session, everything, {"limit": str(PAGE_SIZE)})
    if status != 200:
        raise BackfillError(f"{everything} answered {status}")
    async for page in _paged(session, everything, body, {}):
        yield page


async def _paged(
    session: aiohttp.ClientSession, url: str, body: dict[str, Any], params: dict[str, str]
) -> AsyncIterator[list[Listing]]:
    seen_cursors: set[str] = set()
    while True:
        yield _listings(body)
        cursor = body.get("cursor")
        if not isinstance(cursor, str) or not cursor or cursor in seen_cursors:
            return
        seen_cursors.add(cursor)
        status, body = await _page(
            session, url, {**params, "limit": str(PAGE_SIZE), "cursor": cursor}
        )
        if status != 200:
            raise BackfillError(f"{url} answered {status} at cursor {cursor!r}")


def _listings(body: dict[str, Any]) -> list[Listing]:
    repos = body.get("repos")
    if not isinstance(repos, list):
        raise BackfillError("the repository list has no 'repos' array")
    found = []
    for repo in repos:
        did = repo.get("did") if isinstance(repo, dict) else None
        if not isinstance(did, str) or not is_valid_did(did):
            continue
        active = repo.get("active", True) is not False
        status = repo.get("status")
        found.append(Listing(did, STATUS_ACTIVE if active else str(status or "deactivated")))
    return found


def _everything(_did: str) -> bool:
    return True


async def schedule_backfill(
    engine: AsyncEngine,
    session: aiohttp.ClientSession,
    http_base: str,
    owns: Callable[[str], bool] = _everything,
) -> list[str]:
    """Queue every listed repo that `owns` accepts for resync; returns the DIDs queued."""
    queued: list[str] = []
    async for listed in list_repos(session, http_base):
        page = [listing for listing in listed if owns(listing.did)]
        now = time.time_ns() // 1_000_000
        by_status: dict[str, list[str]] = {}
        for listing in page:
            by_status.setdefault(listing.status, []).append(listing.did)

        async def mark(conn: Any, groups: dict[str, list[str]] = by_status, at: int = now) -> None:
            for status, dids in groups.items():
                await queries.mark_desynchronized(conn, dids, status, at, at)

        await run_transaction(engine, mark)
        queued.extend(listing.did for listing in page)
    return queued

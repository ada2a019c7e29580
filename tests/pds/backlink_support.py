"""Helpers for the backlink tests: records that link, the stored index, and the index expected.

`expected_backlinks` derives the rows from listed records with the test's own reading of the
four record types (independent of `pds.repo.backlinks`), so comparing it with `stored_backlinks`
checks the PDS's index against what the repository really holds.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from atcore import nsids
from tests.pds.xrpc_client import Xrpc, bearer

LIKE = nsids.BSKY_FEED_LIKE
REPOST = nsids.BSKY_FEED_REPOST
FOLLOW = nsids.BSKY_GRAPH_FOLLOW
BLOCK = nsids.BSKY_GRAPH_BLOCK
LINKING = (LIKE, REPOST, FOLLOW, BLOCK)
CREATED_AT = "2027-01-01T00:00:00.000Z"
# Any well-formed CID does for a strong ref's `cid` (the subject need not be stored here).
SUBJECT_CID = "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"

Row = tuple[str, str, str]  # (uri, path, link_to)


def post_uri(n: int) -> str:
    return f"at://did:plc:subjectsubjectsubject{n:04d}/{nsids.BSKY_FEED_POST}/3jzfcijpj2z2{n}"


def account_did(n: int) -> str:
    return f"did:plc:followedfollowedfolo{n:04d}"


def record_for(collection: str, subject: str) -> dict[str, Any]:
    """A like/repost of post `subject`, or a follow/block of account `subject`."""
    if collection in (LIKE, REPOST):
        return {
            "$type": collection,
            "subject": {"uri": subject, "cid": SUBJECT_CID},
            "createdAt": CREATED_AT,
        }
    return {"$type": collection, "subject": subject, "createdAt": CREATED_AT}


def subject_of(value: dict[str, Any]) -> str:
    subject = value["subject"]
    return str(subject["uri"] if isinstance(subject, dict) else subject)


def expected_backlinks(records: dict[str, dict[str, Any]]) -> set[Row]:
    """The rows the index must hold for these records (uri → value), all well formed."""
    rows: set[Row] = set()
    for uri, value in records.items():
        path = "subject.uri" if isinstance(value["subject"], dict) else "subject"
        rows.add((uri, path, subject_of(value)))
    return rows


def stored_backlinks(sqlite_path: Path, did: str) -> set[Row]:
    """The backlink rows of `did`, read straight from the PDS's database file."""
    with closing(sqlite3.connect(sqlite_path)) as db:
        rows = db.execute("SELECT uri, path, link_to FROM backlink WHERE did = ?", (did,))
        return {(str(u), str(p), str(t)) for u, p, t in rows}


async def list_all(
    xrpc: Xrpc, did: str, collections: tuple[str, ...] = LINKING
) -> dict[str, dict[str, Any]]:
    """Every record of `collections` in the repo, uri → value, through listRecords."""
    found: dict[str, dict[str, Any]] = {}
    for collection in collections:
        cursor: str | None = None
        while True:
            params = {"repo": did, "collection": collection, "limit": "100"}
            if cursor is not None:
                params["cursor"] = cursor
            page = (await xrpc.query(nsids.REPO_LIST_RECORDS, params)).ok()
            found.update((r["uri"], r["value"]) for r in page["records"])
            cursor = page.get("cursor")
            if cursor is None:
                break
    return found


async def create(
    xrpc: Xrpc,
    token: str,
    did: str,
    collection: str,
    subject: str,
    **extra: Any,
) -> dict[str, Any]:
    """createRecord of a linking record (`extra`: more input fields, None ones left out)."""
    body = {"repo": did, "collection": collection, "record": record_for(collection, subject)}
    given = {name: value for name, value in extra.items() if value is not None}
    reply = await xrpc.procedure(nsids.REPO_CREATE_RECORD, {**body, **given}, headers=bearer(token))
    result: dict[str, Any] = reply.ok()
    return result

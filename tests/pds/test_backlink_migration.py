"""Alembic revision 0005 (backlink) upgrades a populated 0004 database, backfilling the index
from the stored record blocks, and downgrades again."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from alembic import command

from atcore import dagcbor, nsids
from atcore.cid import CID
from pds.db.engine import alembic_config
from tests.pds.backlink_support import (
    BLOCK,
    FOLLOW,
    LIKE,
    REPOST,
    account_did,
    post_uri,
    record_for,
)
from tests.pds.migration_checks import upgrade_to_head_and_compare

ALICE = "did:plc:aliceaaaaaaaaaaaaaaaaaaa"
BOB = "did:plc:bobbbbbbbbbbbbbbbbbbbbbb"
MANY = 1234  # more records than one backfill page


def store(db: sqlite3.Connection, did: str, collection: str, rkey: str, value: Any) -> str:
    """A record row and its block, as revision 0004's writer stored them; returns the URI."""
    block = dagcbor.encode(value)
    cid = CID.for_dag_cbor(block)
    uri = f"at://{did}/{collection}/{rkey}"
    db.execute(
        "INSERT INTO record (uri, cid, did, collection, rkey, repo_rev, indexed_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (uri, str(cid), did, collection, rkey, "3jzfcijpj2z2a", 1),
    )
    db.execute(
        "INSERT OR IGNORE INTO repo_block (did, cid, repo_rev, size, content) "
        "VALUES (?, ?, ?, ?, ?)",
        (did, cid.cid_bytes, "3jzfcijpj2z2a", len(block), block),
    )
    return uri


def test_revision_0005_backfills_backlinks(tmp_path: Path) -> None:
    path = tmp_path / "pds.sqlite"
    url = f"sqlite:///{path}"
    command.upgrade(alembic_config(url), "0004")
    expected: set[tuple[str, str, str, str]] = set()
    with closing(sqlite3.connect(path)) as old, old:
        for did in (ALICE, BOB):
            linked = [
                (LIKE, post_uri(1)),
                (REPOST, post_uri(1)),
                (FOLLOW, account_did(1)),
                (BLOCK, account_did(1)),
            ]
            for n, (collection, subject) in enumerate(linked):
                uri = store(old, did, collection, f"k{n}", record_for(collection, subject))
                kind = "subject.uri" if collection in (LIKE, REPOST) else "subject"
                expected.add((uri, kind, subject, did))
        # A duplicate stays a duplicate: the backfill indexes, it does not clean up.
        uri = store(old, ALICE, LIKE, "dup", record_for(LIKE, post_uri(1)))
        expected.add((uri, "subject.uri", post_uri(1), ALICE))
        for n in range(MANY):
            uri = store(old, BOB, LIKE, f"many{n:05d}", record_for(LIKE, post_uri(n % 10)))
            expected.add((uri, "subject.uri", post_uri(n % 10), BOB))
        store(old, ALICE, FOLLOW, "bad", {"$type": FOLLOW, "subject": "alice.test"})
        store(old, ALICE, nsids.BSKY_FEED_POST, "p", {"$type": nsids.BSKY_FEED_POST, "text": "x"})
        # A record whose block is missing, and one whose CID text is not a CID: no row, no crash.
        old.execute(
            "INSERT INTO record (uri, cid, did, collection, rkey, repo_rev, indexed_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                f"at://{ALICE}/{LIKE}/gone",
                str(CID.for_dag_cbor(b"\xa0")),
                ALICE,
                LIKE,
                "gone",
                "r",
                1,
            ),
        )
        old.execute(
            "INSERT INTO record (uri, cid, did, collection, rkey, repo_rev, indexed_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (f"at://{ALICE}/{LIKE}/odd", "not-a-cid", ALICE, LIKE, "odd", "r", 1),
        )
    command.upgrade(alembic_config(url), "0005")
    with closing(sqlite3.connect(path)) as db:
        rows = set(db.execute("SELECT uri, path, link_to, did FROM backlink"))
        assert rows == expected
        plan = db.execute(
            "EXPLAIN QUERY PLAN SELECT uri FROM backlink "
            "WHERE did = ? AND path = ? AND link_to = ?",
            (ALICE, "subject.uri", post_uri(1)),
        ).fetchall()
        assert "ix_backlink_did_path_link_to" in " ".join(str(step) for step in plan)
    upgrade_to_head_and_compare(url)
    command.downgrade(alembic_config(url), "0004")
    with closing(sqlite3.connect(path)) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        assert "backlink" not in tables
        assert "ix_backlink_did_path_link_to" not in tables
        assert db.execute("SELECT count(*) FROM record").fetchone() == (2 * 4 + 1 + MANY + 4,)
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [("0004",)]

"""The check-in index: the contract between the firehose consumer (writer) and the feed (reader).

SQLAlchemy Core tables that run unchanged on SQLite, PostgreSQL and CockroachDB. Rules:

- Natural keys only (DIDs, rkeys, source URLs): no sequences, no autoincrement, so CockroachDB
  spreads writes and nothing depends on a database-assigned counter.
- Times are BIGINT epoch milliseconds; coordinates integer microdegrees; H3 cell ids BIGINT (see
  `atcore.index.geo` for the resolutions and how a band query uses them).
- Revs are TIDs, whose string order is their time order, so `rev` columns compare as text.

Tables:

`checkin` - one row per indexed check-in record, keyed by (author_did, collection, rkey), with the
record's `cid` and the repo `rev` of the commit that last wrote it. `sort_at` = min(created_at,
indexed_at): the newest-first key, immune to back- or future-dated `createdAt`. `visible` is false
while the author's account is not active (deactivated, taken down, suspended); the feed serves only
visible rows whose companion post exists (`post_exists`).

`repo_state` - one row per repository the consumer follows: the last applied `rev` and MST root
(`data_cid`) for the Sync 1.1 chain check, the hosting `status` from `#account` events, and
`sync_status` ('synchronized' or 'desynchronized'; desynchronized repos are resynced from
`com.atproto.sync.getRepo`, retried from `resync_after`).

`companion_post` - the record keys of the `app.bsky.feed.post`s that exist, per followed author (a
row exists exactly while the post does). A check-in names its companion post under its own record
key; when the post was written in an earlier commit than the check-in, this is where the writer
finds it, so `post_exists` does not depend on both arriving in one commit.

`source_cursor` - one row per firehose source: the watermark `seq` of fully indexed events,
written in the same transaction as the changes it covers.

Indexes serving the feed: global newest-first keyset (`ix_checkin_sort_at_...`, hash-sharded on
CockroachDB, where a monotonically increasing leading column would otherwise make one range hot),
per-cell newest-first keysets at each band resolution, and the viewer's latest check-in
(`ix_checkin_author_did_sort_at`). `ix_checkin_post_uri` lets companion-post events find their
check-in without decoding the post.

CockroachDB-only DDL: an index with `info={"cockroachdb_hash_sharded": True}` is created with
`USING HASH` on CockroachDB only; other dialects get a plain index (see `compile_create_index`).
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import CreateIndex

from atcore import nsids

NAMING_CONVENTION: Final = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
HASH_SHARDED: Final = "cockroachdb_hash_sharded"
VERSION_TABLE: Final = "index_alembic_version"  # apart from the PDS's if they share a database

CHECKIN_COLLECTION: Final = nsids.SKYSPOT_CHECKIN
POST_COLLECTION: Final = nsids.BSKY_FEED_POST

# repo_state.status: the hosting status of `#account` events ("active" or the reason it is not).
STATUS_ACTIVE: Final = "active"
INACTIVE_STATUSES: Final = frozenset({"deactivated", "takendown", "suspended", "deleted"})
# repo_state.sync_status
SYNCHRONIZED: Final = "synchronized"
DESYNCHRONIZED: Final = "desynchronized"

metadata = MetaData(naming_convention=NAMING_CONVENTION)

checkin = Table(
    "checkin",
    metadata,
    Column("author_did", String, primary_key=True),
    Column("collection", String, primary_key=True),
    Column("rkey", String, primary_key=True),
    Column("cid", String, nullable=False),
    Column("rev", String, nullable=False),
    Column("lat_e6", Integer, nullable=False),
    Column("lon_e6", Integer, nullable=False),
    Column("h3_r7", BigInteger, nullable=True),  # NULL when published coarser than resolution 7
    Column("h3_r5", BigInteger, nullable=True),
    Column("h3_r3", BigInteger, nullable=True),
    Column("place_name", String, nullable=False),
    Column("place_category", String, nullable=True),
    Column("place_uri", String, nullable=True),  # venue URI (e.g. a Foursquare or OSM link)
    Column("place_locality", String, nullable=True),
    Column("place_country", String, nullable=True),  # ISO 3166 code when the address gives one
    Column("post_uri", String, nullable=True),  # the companion app.bsky.feed.post
    Column("post_cid", String, nullable=True),
    Column("post_exists", Boolean, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("visited_at", BigInteger, nullable=True),
    Column("indexed_at", BigInteger, nullable=False),
    Column("sort_at", BigInteger, nullable=False),
    Column("visible", Boolean, nullable=False),
    CheckConstraint("lat_e6 BETWEEN -90000000 AND 90000000", name="lat_range"),
    CheckConstraint("lon_e6 BETWEEN -180000000 AND 180000000", name="lon_range"),
)

_KEYSET: Final = ("sort_at", "author_did", "collection", "rkey")

Index(None, *(checkin.c[name] for name in _KEYSET), info={HASH_SHARDED: True})
Index(None, checkin.c.h3_r7, *(checkin.c[name] for name in _KEYSET))
Index(None, checkin.c.h3_r5, *(checkin.c[name] for name in _KEYSET))
Index(None, checkin.c.h3_r3, *(checkin.c[name] for name in _KEYSET))
Index(None, checkin.c.author_did, checkin.c.sort_at)
Index(None, checkin.c.post_uri)

repo_state = Table(
    "repo_state",
    metadata,
    Column("did", String, primary_key=True),
    Column("rev", String, nullable=True),  # NULL until a commit or a resync has been applied
    Column("data_cid", String, nullable=True),  # MST root at `rev`
    Column("status", String, nullable=False),
    Column("sync_status", String, nullable=False),
    Column("resync_after", BigInteger, nullable=True),  # epoch ms; NULL = no resync pending
    Column("updated_at", BigInteger, nullable=False),
)
Index(None, repo_state.c.resync_after)

companion_post = Table(
    "companion_post",
    metadata,
    Column("author_did", String, primary_key=True),
    Column("rkey", String, primary_key=True),  # of an app.bsky.feed.post the author has now
)

source_cursor = Table(
    "source_cursor",
    metadata,
    Column("source", String, primary_key=True),  # the subscribeRepos service URL
    Column("seq", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)


@compiles(CreateIndex, "cockroachdb")
def compile_create_index(create: CreateIndex, compiler: Any, **kw: Any) -> str:
    """CockroachDB: `CREATE INDEX ... (cols) USING HASH` for indexes marked hash-sharded."""
    text: str = compiler.visit_create_index(create, **kw)
    if create.element.info.get(HASH_SHARDED):
        text += " USING HASH"
    return text

"""All of the consumer's SQL, for SQLite, PostgreSQL and CockroachDB alike.

Writes come in one shape: `apply_batch(conn, batch, now_ms)` inside the caller's transaction
(which `atcore.index.retry.run_transaction` re-runs whole on serialization failures), so index
changes and source cursors always commit together. Statements are multi-row (`executemany`,
which SQLAlchemy turns into multi-VALUES inserts), never one round trip per row.

Idempotence: check-in upserts only overwrite a row with a newer `rev`; deletes only remove rows
not newer than the deleting commit; replaying a batch therefore changes nothing.

Upserts use `INSERT ... ON CONFLICT DO UPDATE`, which all three databases speak (SQLAlchemy's
PostgreSQL construct compiles for CockroachDB too).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

from sqlalchemy import Insert, and_, bindparam, case, delete, exists, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from atcore.index.schema import (
    DESYNCHRONIZED,
    checkin,
    companion_post,
    repo_state,
    source_cursor,
)
from firehose_consumer.changes import Batch, RepoStateRow

_CHECKIN_KEY: Final = ("author_did", "collection", "rkey")
_DELETE_CHUNK: Final = 500


def _insert(conn: AsyncConnection, table: Any) -> Any:
    """The dialect's INSERT with ON CONFLICT support."""
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table)
    return postgresql.insert(table)


def _checkin_upsert(conn: AsyncConnection) -> Insert:
    stmt = _insert(conn, checkin)
    new = stmt.excluded
    updated = {c.name: new[c.name] for c in checkin.columns if c.name not in _CHECKIN_KEY}
    # Same companion post: keep what post events already established about it.
    updated["post_exists"] = case(
        (checkin.c.post_uri.is_not_distinct_from(new.post_uri),
         checkin.c.post_exists | new.post_exists),
        else_=new.post_exists,
    )  # fmt: skip
    upsert: Insert = stmt.on_conflict_do_update(
        index_elements=list(_CHECKIN_KEY), set_=updated, where=new.rev > checkin.c.rev
    )
    return upsert


_DELETE_CHECKIN: Final = delete(checkin).where(
    checkin.c.author_did == bindparam("d"),
    checkin.c.collection == bindparam("c"),
    checkin.c.rkey == bindparam("r"),
    checkin.c.rev <= bindparam("rev"),
)
_MARK_POST: Final = (
    update(checkin)
    .where(checkin.c.author_did == bindparam("d"), checkin.c.post_uri == bindparam("uri"))
    .values(post_exists=bindparam("exists"))
)
_FORGET_POST: Final = delete(companion_post).where(
    companion_post.c.author_did == bindparam("d"), companion_post.c.rkey == bindparam("r")
)
# A check-in upserted without its post in the same commit: linked if the post exists already.
_LINK_POST: Final = (
    update(checkin)
    .where(
        checkin.c.author_did == bindparam("d"),
        checkin.c.collection == bindparam("c"),
        checkin.c.rkey == bindparam("r"),
        checkin.c.post_uri == bindparam("uri"),
        checkin.c.post_exists.is_(False),
        exists().where(
            companion_post.c.author_did == bindparam("d"),
            companion_post.c.rkey == bindparam("post_rkey"),
        ),
    )
    .values(post_exists=True)
)
_SET_VISIBLE: Final = (
    update(checkin).where(checkin.c.author_did == bindparam("d")).values(visible=bindparam("v"))
)


async def apply_batch(conn: AsyncConnection, batch: Batch, now_ms: int) -> None:
    """Write one coalesced batch (see `firehose_consumer.changes`) and its cursors."""
    resets = batch.resets()
    for start in range(0, len(resets), _DELETE_CHUNK):
        chunk = resets[start : start + _DELETE_CHUNK]
        await conn.execute(delete(checkin).where(checkin.c.author_did.in_(chunk)))
        await conn.execute(delete(companion_post).where(companion_post.c.author_did.in_(chunk)))
    deletes = batch.deletes()
    if deletes:
        await conn.execute(
            _DELETE_CHECKIN, [{"d": d, "c": c, "r": r, "rev": rev} for (d, c, r), rev in deletes]
        )
    marks = batch.post_marks()
    if marks:
        await conn.execute(_MARK_POST, [{"d": d, "uri": u, "exists": e} for d, u, e in marks])
    await _apply_companion_posts(conn, batch)
    flips = batch.visibility()
    if flips:
        await conn.execute(_SET_VISIBLE, [{"d": d, "v": v} for d, v in flips])
    upserts = batch.upserts()
    if upserts:
        await conn.execute(_checkin_upsert(conn), upserts)
        await _link_posts(conn, batch.unlinked_upserts())
    await upsert_repo_states(conn, batch.repo_states(), now_ms)
    for source, seq in batch.cursors.items():
        await save_cursor(conn, source, seq, now_ms)


async def _apply_companion_posts(conn: AsyncConnection, batch: Batch) -> None:
    present, gone = batch.companion_posts()
    if gone:
        await conn.execute(_FORGET_POST, [{"d": d, "r": r} for d, r in gone])
    if present:
        stmt = _insert(conn, companion_post).on_conflict_do_nothing(
            index_elements=["author_did", "rkey"]
        )
        await conn.execute(stmt, [{"author_did": d, "rkey": r} for d, r in present])


async def _link_posts(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        params = [
            {
                "d": row["author_did"],
                "c": row["collection"],
                "r": row["rkey"],
                "uri": row["post_uri"],
                "post_rkey": row["post_uri"].rsplit("/", 1)[1],
            }
            for row in rows
        ]
        await conn.execute(_LINK_POST, params)


async def upsert_repo_states(
    conn: AsyncConnection, rows: Sequence[RepoStateRow], now_ms: int
) -> None:
    if not rows:
        return
    stmt = _insert(conn, repo_state)
    stmt = stmt.on_conflict_do_update(
        index_elements=["did"],
        set_={c.name: stmt.excluded[c.name] for c in repo_state.columns if c.name != "did"},
    )
    await conn.execute(stmt, [row.values(now_ms) for row in rows])


async def save_cursor(conn: AsyncConnection, source: str, seq: int, now_ms: int) -> None:
    stmt = _insert(conn, source_cursor).values(source=source, seq=seq, updated_at=now_ms)
    stmt = stmt.on_conflict_do_update(
        index_elements=["source"], set_={"seq": seq, "updated_at": now_ms}
    )
    await conn.execute(stmt)


# -- reads ----------------------------------------------------------------------------------


async def load_cursor(conn: AsyncConnection, source: str) -> int | None:
    row = await conn.execute(select(source_cursor.c.seq).where(source_cursor.c.source == source))
    seq = row.scalar_one_or_none()
    return None if seq is None else int(seq)


async def load_cursors_of(conn: AsyncConnection, source: str) -> dict[str, int]:
    """Every cursor row of `source`: its own key and any `<source>#...` (partition) keys."""
    rows = await conn.execute(
        select(source_cursor.c.source, source_cursor.c.seq).where(
            or_(
                source_cursor.c.source == source,
                source_cursor.c.source.startswith(f"{source}#", autoescape=True),
            )
        )
    )
    return {key: int(seq) for key, seq in rows}


def _repo_row(row: Any) -> RepoStateRow:
    return RepoStateRow(
        did=row.did,
        rev=row.rev,
        data_cid=row.data_cid,
        status=row.status,
        sync_status=row.sync_status,
        resync_after=row.resync_after,
    )


async def load_repo_state(conn: AsyncConnection, did: str) -> RepoStateRow | None:
    row = (await conn.execute(select(repo_state).where(repo_state.c.did == did))).first()
    return None if row is None else _repo_row(row)


async def load_tracked_dids(
    conn: AsyncConnection, owns: Callable[[str], bool] | None = None
) -> set[str]:
    """Every DID the index follows, or those `owns` accepts (a partition's share).

    The consumer keeps this set in memory for filtering. A partition's share cannot be selected
    in SQL (no portable hash), so rows are streamed and filtered here, once, at startup.
    """
    result = await conn.stream(select(repo_state.c.did))
    if owns is None:
        return {did async for (did,) in result}
    return {did async for (did,) in result if owns(did)}


async def due_resyncs(conn: AsyncConnection, now_ms: int, limit: int) -> list[str]:
    """Desynchronized repos whose resync time has come, oldest first."""
    rows = await conn.execute(
        select(repo_state.c.did)
        .where(
            and_(
                repo_state.c.sync_status == DESYNCHRONIZED,
                repo_state.c.resync_after <= now_ms,
            )
        )
        .order_by(repo_state.c.resync_after)
        .limit(limit)
    )
    return [did for (did,) in rows]


DueKey = tuple[int, str]  # (resync_after, did): the resync queue's order


async def due_resyncs_after(
    conn: AsyncConnection, now_ms: int, limit: int, after: DueKey | None
) -> list[DueKey]:
    """Like `due_resyncs`, as keys, resuming after `after` (a keyset scan of the queue)."""
    query = select(repo_state.c.resync_after, repo_state.c.did).where(
        repo_state.c.sync_status == DESYNCHRONIZED, repo_state.c.resync_after <= now_ms
    )
    if after is not None:
        at, did = after
        query = query.where(
            or_(
                repo_state.c.resync_after > at,
                and_(repo_state.c.resync_after == at, repo_state.c.did > did),
            )
        )
    rows = await conn.execute(
        query.order_by(repo_state.c.resync_after, repo_state.c.did).limit(limit)
    )
    return [(int(at), did) for at, did in rows]


async def mark_desynchronized(
    conn: AsyncConnection, dids: Sequence[str], status: str, resync_after: int, now_ms: int
) -> None:
    """Queue repos for resync (backfill): new ones are inserted, known ones keep their state."""
    if not dids:
        return
    stmt = _insert(conn, repo_state)
    stmt = stmt.on_conflict_do_update(
        index_elements=["did"],
        set_={"sync_status": DESYNCHRONIZED, "resync_after": resync_after, "updated_at": now_ms},
    )
    await conn.execute(
        stmt,
        [
            {
                "did": did,
                "rev": None,
                "data_cid": None,
                "status": status,
                "sync_status": DESYNCHRONIZED,
                "resync_after": resync_after,
                "updated_at": now_ms,
            }
            for did in dids
        ],
    )


async def checkins_of(conn: AsyncConnection, did: str) -> list[dict[str, Any]]:
    rows = await conn.execute(
        select(checkin).where(checkin.c.author_did == did).order_by(checkin.c.rkey)
    )
    return [dict(row._mapping) for row in rows]

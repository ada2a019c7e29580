"""Backlink conflicts: the deletes a create carries so one like, repost, follow or block remains.

createRecord (unless `validate` is false) marks its write `replaces_conflicts`, as the reference
PDS does: the caller's records *of the same collection* whose backlink (`pds.repo.backlinks`)
equals one of the new record's are deleted in the commit that creates it. A like and a repost
of the same post, or a follow and a block of the same account, do not conflict; nor do the
records of other accounts.

When it runs, and against what
    The writer calls `add_conflict_deletes` while planning, under its lock, so nothing else
    writes records meanwhile (an import or an account deletion moves the repo's root, which
    sends the batch back to planning and here again). What the database shows is therefore
    everything committed; what it does not yet show is the commits planned earlier in the same
    batch, which `earlier` replays on top. So two creates racing for the same subject, even in
    one group commit, end with the second deleting the first.

The deletes come before the create in the commit's writes and tolerate a missing record (the
index never disagrees with the tree, but a stale index entry must not fail the user's write).
A record at the very URI being written is never deleted: creating over an existing record key
still fails with "Record already exists", rather than being turned into a replace.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from atcore.syntax import parse_record_key
from pds.db import repo as repo_sql
from pds.db.engine import Database
from pds.repo.plan import PlannedCommit
from pds.repo.prepare import PreparedWrite

# (path, link_to) → URIs of the repo's records holding that backlink.
Sources = dict[tuple[str, str], set[str]]


async def add_conflict_deletes(
    db: Database,
    did: str,
    writes: Sequence[PreparedWrite],
    batch_so_far: Iterable[PlannedCommit],
) -> Sequence[PreparedWrite]:
    """`writes` with the deletes of their backlink conflicts before each conflicting create.

    `batch_so_far`: the commits planned before this one in the current batch, in order (any
    repo's; iterated only when some write asks for conflicts to be replaced, so the common case
    costs nothing). Returns `writes` itself when none does.
    """
    wanted = [write for write in writes if write.replaces_conflicts]
    if not wanted:
        return writes
    links = [(link.path, link.link_to) for write in wanted for link in write.backlinks]
    async with db.read() as conn:
        sources = await repo_sql.backlink_sources(conn, did, links)
    for planned in batch_so_far:
        if planned.state.did != did:
            continue
        _replay(sources, planned)
    written = {write.uri for write in writes}
    deleted: set[str] = set()
    expanded: list[PreparedWrite] = []
    for write in writes:
        if write.replaces_conflicts:
            for uri in _conflicts(write, sources):
                if uri not in written and uri not in deleted:
                    deleted.add(uri)
                    expanded.append(_delete(write, uri))
        expanded.append(write)
    return expanded


def _replay(sources: Sources, planned: PlannedCommit) -> None:
    """Bring `sources` up to date with a commit not yet in the database."""
    for result in planned.results:
        if result.action is None:
            continue
        for uris in sources.values():
            uris.discard(result.uri)
        if result.action == "delete":
            continue
        for link in result.write.backlinks:
            holders = sources.get((link.path, link.link_to))
            if holders is not None:
                holders.add(result.uri)


def _conflicts(write: PreparedWrite, sources: Sources) -> list[str]:
    """The repo's records of the write's collection sharing a backlink with it, oldest key first."""
    prefix = _collection_prefix(write)
    found = {
        uri
        for link in write.backlinks
        for uri in sources.get((link.path, link.link_to), ())
        if uri.startswith(prefix)
    }
    return sorted(found)


def _delete(write: PreparedWrite, uri: str) -> PreparedWrite:
    rkey = parse_record_key(uri.removeprefix(_collection_prefix(write)))
    return PreparedWrite("delete", write.did, write.collection, rkey, missing_ok=True)


def _collection_prefix(write: PreparedWrite) -> str:
    return f"at://{write.did}/{write.collection}/"

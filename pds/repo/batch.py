"""The net database effect of a batch of planned commits (pure; no I/O).

Commits of one batch are applied in order, and later ones can undo earlier ones: re-create a
node an earlier commit removed, free a node or record block an earlier commit created, rewrite
a record twice. `collect` folds them into the rows `pds.db.repo_batch.apply_batch` writes:

* blocks: for each (did, cid) its last fate wins: stored (with the rev of the commit that made
  it), deleted, or, for old record blocks, a *candidate* the transaction frees only if no record
  of the repo still points at it (identical records share one block);
* records: each touched URI's final version (upsert) or its deletion;
* backlinks: the rows of every URI deleted or rewritten in the batch go, and the final
  versions' backlinks are stored (a fresh create has no old rows, so it only inserts);
* record → blob refs: rewritten for every touched record when anything about blobs can have
  changed (fresh records without blobs, the common case, touch no blob table);
* roots: compare-and-swap from the head the batch was planned on to the last commit;
* one `#commit` event per commit, in order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from atcore import dagcbor
from atcore.cid import CID
from pds.db.repo_batch import BatchWrite, BlobRefs, EventRow, RecordRow, RootMove
from pds.repo.plan import PlannedCommit
from pds.repo.prepare import PreparedWrite
from pds.sequencer import CommitEvent


@dataclass(frozen=True, slots=True)
class PlannedEntry:
    """One planned commit, with the commit CID it was planned on top of."""

    planned: PlannedCommit
    base: CID


def collect(
    entries: Sequence[PlannedEntry], *, claimed: dict[str, list[str]], now: int, time_text: str
) -> BatchWrite:
    """Fold planned commits (in order) into one `BatchWrite`; `claimed`: temp blobs per did."""
    write = BatchWrite(now=now, time_text=time_text)
    puts: dict[tuple[str, CID], tuple[str, bytes]] = {}
    deletes: set[tuple[str, CID]] = set()
    candidates: set[tuple[str, CID]] = set()
    origins: dict[str, CID] = {}
    heads: dict[str, PlannedCommit] = {}
    final: dict[str, PreparedWrite | None] = {}
    superseded: list[PreparedWrite] = []
    rewritten: set[str] = set()  # URIs deleted or updated: their old backlinks go
    blob_rows_change = False
    for entry in entries:
        planned = entry.planned
        did = str(planned.state.did)
        origins.setdefault(did, entry.base)
        heads[did] = planned
        _fold_blocks(did, planned, puts, deletes, candidates)
        for result in planned.results:
            if result.action is None:
                continue
            earlier = final.get(result.uri)
            if earlier is not None:
                superseded.append(earlier)
            final[result.uri] = None if result.action == "delete" else result.write
            if result.action != "create":
                rewritten.add(result.uri)
            blob_rows_change |= result.action != "create" or bool(result.write.blobs)
        write.events.append(EventRow(did, "commit", _encoder(planned.event)))
    write.roots = [
        RootMove(did, str(origins[did]), str(p.state.commit_cid), str(p.state.rev))
        for did, p in heads.items()
    ]
    write.block_puts = [
        (did, cid.cid_bytes, rev, block) for (did, cid), (rev, block) in puts.items()
    ]
    write.block_deletes = [(did, cid.cid_bytes) for did, cid in deletes]
    write.block_candidates = [(did, cid.cid_bytes, str(cid)) for did, cid in candidates]
    for uri, version in final.items():
        if version is None:
            write.record_deletes.append(uri)
        else:
            write.record_upserts.append(_record_row(version, str(heads[version.did].state.rev)))
    write.backlink_clears = sorted(rewritten)
    write.backlink_rows = [
        (uri, link.path, link.link_to, version.did)
        for uri, version in final.items()
        if version is not None
        for link in version.backlinks
    ]
    if blob_rows_change or claimed:
        write.blobs = _blob_refs(final, superseded, claimed)
    return write


def _fold_blocks(
    did: str,
    planned: PlannedCommit,
    puts: dict[tuple[str, CID], tuple[str, bytes]],
    deletes: set[tuple[str, CID]],
    candidates: set[tuple[str, CID]],
) -> None:
    rev = str(planned.state.rev)
    for cid in planned.removed_blocks:
        key = (did, cid)
        puts.pop(key, None)
        candidates.discard(key)
        deletes.add(key)
    for cid in planned.old_record_cids:
        candidates.add((did, cid))
    for cid, block in planned.new_blocks.items():
        key = (did, cid)
        puts[key] = (rev, block)
        deletes.discard(key)
        candidates.discard(key)


def _blob_refs(
    final: dict[str, PreparedWrite | None],
    superseded: Sequence[PreparedWrite],
    claimed: dict[str, list[str]],
) -> dict[str, BlobRefs]:
    refs: dict[str, BlobRefs] = {did: BlobRefs(claimed=list(cids)) for did, cids in claimed.items()}
    for uri, version in final.items():
        did = _did_of(uri)
        entry = refs.setdefault(did, BlobRefs())
        entry.touched_uris.append(uri)
        if version is not None:
            entry.rows.extend((str(ref.ref), uri) for ref in version.blobs)
    for version in superseded:
        refs.setdefault(version.did, BlobRefs()).loose.update(str(ref.ref) for ref in version.blobs)
    return refs


def _encoder(event: CommitEvent) -> Callable[[int, str], bytes]:
    def build(seq: int, time_text: str) -> bytes:
        return dagcbor.encode(event.body(seq, time_text))

    return build


def _record_row(write: PreparedWrite, rev: str) -> RecordRow:
    assert write.cid is not None
    return RecordRow(
        write.uri, write.did, str(write.collection), str(write.rkey), str(write.cid), rev
    )


def _did_of(uri: str) -> str:
    return uri.removeprefix("at://").split("/", 1)[0]

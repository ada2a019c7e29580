"""`com.atproto.repo.importRepo`: bring a repository exported elsewhere (a CAR) into this PDS.

This is the data step of an account migration: the account was created here deactivated
(`createAccount` with an existing DID), and its old PDS's `getRepo` export is uploaded here.

What is checked, before anything is stored (`verify_repo_car`, CPU only, run in a thread):

* the CAR parses and every block hashes to its CID;
* it has exactly one root, and that root is a valid v3 commit whose `did` is the account's;
* the MST under the commit is complete and well formed: every node present and on its layer,
  every key a valid `collection/rkey`, and rebuilding the tree from its entries gives the very
  same root (so the shape is canonical);
* every record block is present and is a DAG-CBOR map.

The commit's signature is deliberately *not* checked, as in the reference PDS: a user restoring
a backup after their DID's key already moved (the old PDS being gone) must be able to import,
and the import only ever writes into the importer's own repository. The content is then
re-signed: the repository's new head is a fresh commit over the same MST root, with a new rev,
signed with this PDS's key for the account, so after the DID document points here the repo
verifies against the DID's current key. (The reference keeps the source's commit block and only
re-signs on the next write; a `#sync` at activation would then carry a commit the new key does
not verify.)

Storing replaces the repository's whole content in one transaction (`pds.db.repo_import`):
importing the same CAR again gives the same records, and importing a newer export replaces the
older one. Only a deactivated account can import (`AccountActive` otherwise): a live repository
would change under the firehose without `#commit` events. The imported records' backlinks are
indexed like written ones (`pds.repo.backlinks`), duplicates included: an import keeps what the
repository holds. Blob references of the imported records are recorded, so `listMissingBlobs`
lists the blobs still to upload; blobs uploaded *before* the import (temporary until a record
references them) are made permanent afterwards, under the blob locks, like an upload that finds
references already there (`pds.blobs`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from atcore import dagcbor
from atcore.car import CarError, read_car
from atcore.cid import CID
from atcore.commit import CommitError, SignedCommit, UnsignedCommit, sign
from atcore.crypto import K256Keypair
from atcore.datajson import iter_blob_refs
from atcore.mst import MST, MemoryBlockStore, MSTError
from atcore.syntax import Did, InvalidSyntax, parse_nsid, parse_record_key
from pds.blobstore.contract import BlobNotFound as StoredBlobNotFound
from pds.blobstore.contract import BlobStoreError
from pds.db import accounts as account_sql
from pds.db import blobs as blob_sql
from pds.db import repo as repo_sql
from pds.db.repo_import import ImportedRecord, replace_repo_content, temporary_uploads_among
from pds.repo.backlinks import backlinks_of
from pds.repo.errors import RepoError, RepoNotFound
from pds.repo.plan import next_rev
from pds.repo.writer import RepoWriter

log = logging.getLogger(__name__)


class ImportRejected(RepoError):
    """The CAR is not an importable repository for this account (nothing was stored)."""


class AccountActive(RepoError):
    """The account is active: its repository is only written through commits now."""


@dataclass(frozen=True, slots=True)
class VerifiedRepo:
    """A checked repository: its MST root, the blocks to store and what the records hold."""

    did: Did
    data: CID
    rev: str  # the imported commit's: the re-signed head must come after it
    node_blocks: dict[CID, bytes]
    record_blocks: dict[CID, bytes]
    records: list[ImportedRecord]
    record_blobs: list[tuple[str, str]]  # (blob cid, record uri)


@dataclass(frozen=True, slots=True)
class ImportResult:
    commit_cid: CID
    rev: str
    records: int
    blobs_referenced: int


def verify_repo_car(car: bytes, did: Did) -> VerifiedRepo:
    """Check an exported repository (see the module notes); raises `ImportRejected`."""
    try:
        roots, blocks = read_car(car)
    except CarError as exc:
        raise ImportRejected(f"Invalid CAR file: {exc}") from exc
    if len(roots) != 1:
        raise ImportRejected(f"expected one root in the CAR, found {len(roots)}")
    commit = _root_commit(blocks, roots[0])
    if commit.did != did:
        raise ImportRejected(f"The repository in the CAR belongs to {commit.did}, not to {did}")
    try:
        tree = MST.load(MemoryBlockStore(blocks), commit.data)
        items = list(tree.items())
        rebuilt = MST.from_items(items)
        canonical = rebuilt.root_cid() == commit.data
        node_blocks = dict(rebuilt.iter_blocks())
    except MSTError as exc:
        raise ImportRejected(f"The repository's tree is incomplete or malformed: {exc}") from exc
    if not canonical:
        raise ImportRejected("The repository's tree is not in its canonical shape")
    return _collect_records(did, commit, items, blocks, node_blocks)


def _root_commit(blocks: dict[CID, bytes], root: CID) -> SignedCommit:
    block = blocks.get(root)
    if block is None:
        raise ImportRejected(f"The CAR lacks its root block {root}")
    try:
        return SignedCommit.decode(block)
    except CommitError as exc:
        raise ImportRejected(f"The CAR's root is not a repository commit: {exc}") from exc


def _collect_records(
    did: Did,
    commit: SignedCommit,
    items: list[tuple[str, CID]],
    blocks: dict[CID, bytes],
    node_blocks: dict[CID, bytes],
) -> VerifiedRepo:
    records: list[ImportedRecord] = []
    record_blocks: dict[CID, bytes] = {}
    record_blobs: list[tuple[str, str]] = []
    for path, cid in items:
        collection, rkey = _split_path(path)
        block = blocks.get(cid)
        if block is None:
            raise ImportRejected(f"The CAR lacks the block of record {path} ({cid})")
        try:
            value = dagcbor.decode(block)
        except dagcbor.DagCborError as exc:
            raise ImportRejected(f"Could not parse record at '{path}': {exc}") from exc
        if not isinstance(value, dict):
            raise ImportRejected(f"Record at '{path}' is not a map")
        uri = f"at://{did}/{path}"
        record_blocks[cid] = block
        links = tuple((link.path, link.link_to) for link in backlinks_of(value))
        records.append(ImportedRecord(uri, str(cid), collection, rkey, links))
        refs = {str(ref.ref) for ref in iter_blob_refs(value, include_legacy=True)}
        record_blobs.extend((ref, uri) for ref in sorted(refs))
    return VerifiedRepo(
        did, commit.data, str(commit.rev), node_blocks, record_blocks, records, record_blobs
    )


def _split_path(path: str) -> tuple[str, str]:
    collection, sep, rkey = path.partition("/")
    try:
        if not sep:
            raise InvalidSyntax("no '/' between collection and record key")
        return str(parse_nsid(collection)), str(parse_record_key(rkey))
    except InvalidSyntax as exc:
        raise ImportRejected(f"Invalid record path in the repository: {path!r}: {exc}") from exc


class RepoImporter:
    """Verifies and stores imported repositories through the PDS's `RepoWriter` pieces."""

    def __init__(self, writer: RepoWriter) -> None:
        self.writer = writer
        self.db = writer.db

    async def import_car(self, did: Did, car: bytes) -> ImportResult:
        verified = await asyncio.to_thread(verify_repo_car, car, did)
        result = await self._store(verified)
        self.writer.forget(did)
        await self._promote_uploads(did, [cid for cid, _ in verified.record_blobs])
        return result

    async def _store(self, repo: VerifiedRepo) -> ImportResult:
        did = repo.did
        async with self.db.transaction() as conn:
            account = await account_sql.get_account(conn, did)
            head = await repo_sql.get_root(conn, did)
            if account is None or head is None:
                raise RepoNotFound(f"Could not find repo for DID: {did}")
            if not account.deactivated:
                raise AccountActive(
                    "A repository can only be imported while the account is deactivated"
                )
            # Revs only ever grow for a DID, across hosts too: after ours and the imported one.
            rev = next_rev(self.writer.clock, max(head[1], repo.rev))
            keypair = K256Keypair.from_private_bytes(account.signing_key)
            commit = sign(UnsignedCommit(did=did, data=repo.data, rev=rev), keypair)
            commit_block = commit.encode()
            commit_cid = CID.for_dag_cbor(commit_block)
            blocks = [
                *repo.node_blocks.items(),
                *repo.record_blocks.items(),
                (commit_cid, commit_block),
            ]
            stored = await replace_repo_content(
                conn,
                did=did,
                commit_cid=commit_cid,
                rev=rev,
                blocks=blocks,
                records=repo.records,
                record_blobs=repo.record_blobs,
                now=int(time.time() * 1000),
            )
            if not stored:
                raise RepoNotFound(f"Could not find repo for DID: {did}")
        self.writer.cache.put(commit_cid, commit_block)
        blob_count = len({cid for cid, _ in repo.record_blobs})
        return ImportResult(commit_cid, rev, len(repo.records), blob_count)

    async def _promote_uploads(self, did: Did, referenced: list[str]) -> None:
        """Make permanent the blobs uploaded before the import that its records reference."""
        store = self.writer.blobstore
        if store is None or not referenced:
            return
        async with self.db.read() as conn:
            waiting = await temporary_uploads_among(conn, did, referenced)
        for cid_text, _ in waiting:
            async with self.writer.blob_locks.hold([(did, cid_text)]):
                try:
                    await self._promote_one(did, cid_text)
                except BlobStoreError:
                    # The row stays temporary and referenced: a later upload of the same
                    # bytes promotes it (see `pds.blobs.store_upload`).
                    log.exception(
                        "could not make the imported blob %s of %s permanent", cid_text, did
                    )

    async def _promote_one(self, did: Did, cid_text: str) -> None:
        store = self.writer.blobstore
        assert store is not None
        async with self.db.read() as conn:
            rows = await temporary_uploads_among(conn, did, [cid_text])  # again, under the lock
        if not rows:
            return
        cid = CID.parse(cid_text)
        try:
            await store.make_permanent(rows[0][1], did, cid)
        except StoredBlobNotFound:
            if not await store.exists(did, cid):
                return
        async with self.db.transaction() as conn:
            await blob_sql.mark_permanent(conn, did, cid_text)

"""Shared pieces of the repository tests: a writer on a real SQLite file, and verifiers.

The verifiers use only atcore (CAR reading, commit signatures, MST loading and Sync 1.1
inversion), never the code under test, so they check what a relay or an SDK would check.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atcore import dagcbor
from atcore.car import read_car
from atcore.cid import CID
from atcore.commit import SignedCommit
from atcore.crypto import K256Keypair, PublicKey
from atcore.lexicon import Catalog
from atcore.mst import MST, MemoryBlockStore, RecordOp, invert_commit
from atcore.syntax import Did, parse_did
from pds.db import schema
from pds.db.engine import Database
from pds.repo.prepare import WritePreparer
from pds.repo.reader import RepoReader
from pds.repo.writer import RepoWriter
from pds.sequencer import Sequencer, events_after

REPO_ROOT = Path(__file__).resolve().parents[2]


def load_catalog() -> Catalog:
    return Catalog.from_directory(REPO_ROOT / "lexicons")


@dataclass
class RepoEnv:
    db: Database
    sequencer: Sequencer
    writer: RepoWriter
    reader: RepoReader
    prep: WritePreparer
    keys: dict[str, K256Keypair] = field(default_factory=dict)

    async def new_account(self, name: str) -> Did:
        """An account row plus its empty repo (the way `pds.accounts` creates one)."""
        keypair = K256Keypair.generate()
        digest = hashlib.sha256(name.encode()).hexdigest()[:24]
        did = parse_did(f"did:plc:{digest}")
        async with self.sequencer.transaction() as conn:
            await conn.execute(
                schema.account.insert().values(
                    did=did,
                    handle=f"{name}.test",
                    email=None,
                    password_scrypt="x",
                    signing_key=keypair.export_private_bytes(),
                    created_at=0,
                    invites_disabled=False,
                )
            )
            await self.writer.create_repo(conn, did, keypair)
        self.keys[did] = keypair
        return did

    async def export(self, did: str, since: str | None = None) -> bytes:
        return b"".join([chunk async for chunk in self.reader.export_car(did, since)])

    async def events(self) -> list[tuple[str, dict[str, Any]]]:
        async with self.db.read() as conn:
            stored = await events_after(conn, 0, limit=100_000)
        return [(e.event_type, dagcbor.decode(e.body)) for e in stored]


async def make_env(tmp_path: Path, blobstore: Any = None) -> AsyncIterator[RepoEnv]:
    db = Database(tmp_path / "pds.sqlite")
    await db.migrate()
    sequencer = Sequencer(db)
    writer = RepoWriter(sequencer, blobstore)
    env = RepoEnv(
        db,
        sequencer,
        writer,
        RepoReader(db, writer.cache),
        WritePreparer(load_catalog(), writer.clock),
    )
    try:
        yield env
    finally:
        await writer.close()
        await db.close()


# -- verification ----------------------------------------------------------------------------


def verify_repo_car(car: bytes, did: str, key: PublicKey) -> tuple[SignedCommit, dict[str, Any]]:
    """Check a full repo export: signed commit, MST, every record; returns (commit, records)."""
    roots, blocks = read_car(car)
    assert len(roots) == 1
    commit = SignedCommit.decode(blocks[roots[0]])
    assert commit.did == did
    assert commit.verify(key), "commit signature does not verify against the account key"
    tree = MST.load(MemoryBlockStore(blocks), commit.data)
    items = list(tree.items())
    records: dict[str, Any] = {}
    for path, cid in items:
        assert cid in blocks, f"record {path} is missing from the CAR"
        records[path] = dagcbor.decode(blocks[cid])
    rebuilt = MST.from_items(items)
    assert rebuilt.root_cid() == commit.data, "re-importing the records gives another root"
    return commit, records


def verify_commit_event(body: dict[str, Any], key: PublicKey) -> SignedCommit:
    """Check one `#commit` body the way a Sync 1.1 relay does."""
    roots, blocks = read_car(body["blocks"])
    assert roots[0] == body["commit"]
    commit = SignedCommit.decode(blocks[body["commit"]])
    assert commit.verify(key)
    assert commit.did == body["repo"]
    assert commit.rev == body["rev"]
    assert body["rebase"] is False
    assert body["tooBig"] is False
    assert body["blobs"] == []
    assert isinstance(body["seq"], int)
    assert isinstance(body["time"], str)
    ops = [RecordOp(op["action"], op["path"], op["cid"], op.get("prev")) for op in body["ops"]]
    for op in body["ops"]:
        if op["action"] == "create":
            assert "prev" not in op
        if op["cid"] is not None:
            assert op["cid"] in blocks, "a written record's block is missing from the event"
    if body["since"] is None:
        assert "prevData" not in body
    else:
        assert invert_commit(commit.data, ops, blocks) == body["prevData"]
    return commit


def commit_chain(events: list[tuple[str, dict[str, Any]]], did: str) -> list[dict[str, Any]]:
    """The `#commit` bodies of one repo, in seq order."""
    return [body for kind, body in events if kind == "commit" and body["repo"] == did]


def check_chain(bodies: list[dict[str, Any]], key: PublicKey) -> None:
    """Every commit verifies and chains to the previous one (since = previous rev, data)."""
    previous: SignedCommit | None = None
    for body in bodies:
        commit = verify_commit_event(body, key)
        if previous is None:
            assert body["since"] is None
        else:
            assert body["since"] == previous.rev
            assert body["prevData"] == previous.data
            assert commit.rev > previous.rev
        previous = commit


def record_cid(value: dict[str, Any]) -> CID:
    return CID.for_dag_cbor(dagcbor.encode(value))

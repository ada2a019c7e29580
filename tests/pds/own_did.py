"""A did:plc of the test's own, "hosted elsewhere", for the account-migration tests.

The test registers it at the shared PLC directory with its own rotation and signing keys, so it
can mint service JWTs, build signed repositories and sign PLC operations of every kind, good
and bad.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp

from atcore import dagcbor, nsids
from atcore.car import write_car
from atcore.cid import CID
from atcore.commit import UnsignedCommit, sign
from atcore.crypto import K256Keypair
from atcore.identity.plc import (
    PlcOperation,
    create_genesis_op,
    did_for_genesis,
    op_to_json,
)
from atcore.mst import MST
from atcore.syntax import parse_did, parse_tid
from atcore.tid import TidClock
from pds.auth.service_jwt import create_service_jwt
from tests.pds.migration_support import TwoPds
from tests.pds.stack import unique_name
from tests.pds.xrpc_client import Reply, Xrpc, bearer

CAR = {"Content-Type": "application/vnd.ipld.car"}


@dataclass
class OwnDid:
    """A did:plc registered by the test, first pointing at PDS A."""

    did: str
    handle: str
    rotation: K256Keypair
    signing: K256Keypair
    last: PlcOperation

    def service_jwt(self, aud: str, **overrides: Any) -> str:
        claims: dict[str, Any] = {
            "keypair": self.signing,
            "iss": self.did,
            "aud": aud,
            "lxm": nsids.SERVER_CREATE_ACCOUNT,
        }
        claims.update(overrides)
        return create_service_jwt(**claims)


async def register_did(http: aiohttp.ClientSession, pds: TwoPds) -> OwnDid:
    rotation, signing = K256Keypair.generate(), K256Keypair.generate()
    handle = f"{unique_name('own')}.test"
    genesis = create_genesis_op(
        signer=rotation,
        rotation_keys=[rotation.did()],
        signing_key=signing.did(),
        handle=handle,
        pds_endpoint=pds.a.pds_url,
    )
    did = did_for_genesis(genesis)
    async with http.post(f"{pds.plc_url}/{did}", json=op_to_json(genesis)) as response:
        assert response.status == 200, await response.text()
    return OwnDid(did, handle, rotation, signing, genesis)


async def create_on(xrpc: Xrpc, own: OwnDid, token: str | None, **extra: Any) -> Reply:
    headers = {} if token is None else bearer(token)
    body = {"did": own.did, "handle": own.handle, "password": "migrating-pw", **extra}
    return await xrpc.procedure(nsids.SERVER_CREATE_ACCOUNT, body, headers=headers)


async def migrated_in(http: aiohttp.ClientSession, pds: TwoPds) -> tuple[OwnDid, str]:
    """An own DID with a deactivated account on B; returns it and its access token."""
    own = await register_did(http, pds)
    reply = await create_on(Xrpc(http, pds.b), own, own.service_jwt(pds.b.settings.service_did))
    return own, reply.ok()["accessJwt"]


def repo_car(
    did: str, key: K256Keypair, records: dict[str, dict[str, Any]], rev: str | None = None
) -> bytes:
    """A signed repository export built with atcore alone (`rev`: its commit's, else now)."""
    blocks = {path: dagcbor.encode(value) for path, value in records.items()}
    cids = {path: CID.for_dag_cbor(block) for path, block in blocks.items()}
    tree = MST.from_items(cids.items())
    commit_rev = TidClock().next() if rev is None else parse_tid(rev)
    unsigned = UnsignedCommit(did=parse_did(did), data=tree.root_cid(), rev=commit_rev)
    commit = sign(unsigned, key)
    commit_block = commit.encode()
    commit_cid = CID.for_dag_cbor(commit_block)
    record_blocks = [(cids[path], block) for path, block in blocks.items()]
    return write_car(
        [commit_cid], [(commit_cid, commit_block), *tree.iter_blocks(), *record_blocks]
    )


def post(text: str) -> dict[str, Any]:
    return {"$type": "app.bsky.feed.post", "text": text, "createdAt": "2026-01-01T00:00:00.000Z"}


async def status_of(xrpc: Xrpc, token: str) -> dict[str, Any]:
    reply = await xrpc.query(nsids.SERVER_CHECK_ACCOUNT_STATUS, headers=bearer(token))
    result: dict[str, Any] = reply.ok()
    return result

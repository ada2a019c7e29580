"""Accounts that arrive with an existing DID: the first step of a migration *to* this PDS.

`createAccount` with a `did` (the official migration flow, `goat account migrate`, the SDK
recipes) works as in the reference PDS:

* the caller proves control of the DID with a service JWT its current PDS minted
  (`getServiceAuth` there with `aud` = our service DID, `lxm` = createAccount), checked against
  the DID document's `#atproto` key (`AuthVerifier.optional_service`); no token, or a token for
  another DID, is 401 `AuthRequired`;
* the handle, email, password and invite code follow the rules of a new account (a handle
  outside our domains must already resolve to the DID);
* the account is created *deactivated*, with a fresh signing key (or the one reserved for the
  DID with `reserveSigningKey`) and an empty repository; no PLC operation is sent and no firehose
  event is sequenced; the DID's account elsewhere is not touched. Session tokens come back so the
  client can import the repo, upload blobs and set up the DID document; `activateAccount` then
  checks the document and announces the account (`AccountManager.activate`).

A `plcOp` input is refused, as the reference refuses it outside entryway deployments: bringing a
DID means its document is updated later, by `submitPlcOperation`.

`reserveSigningKey` hands out a K-256 key ahead of account creation (optionally bound to a DID),
so a did:web user can put the key in their document before `createAccount`. It needs no
authentication (as in the reference), so it is rate limited per IP and reservations nobody
claims are dropped after `RESERVATION_TTL_MS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from atcore.crypto import K256Keypair
from atcore.identity import IdentityError
from atcore.identity.resolver import DidResolver
from atcore.syntax import Did, InvalidSyntax, parse_did
from atcore.xrpc import InvalidRequest
from pds.accounts import AccountManager, NewAccount, now_ms
from pds.auth.tokens import AuthScope, TokenPair
from pds.db import accounts as account_sql
from pds.db import reserved_keys

RESERVATION_TTL_MS: Final = 7 * 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class MigratedAccount:
    did: Did
    handle: str
    did_doc: dict[str, Any] | None
    tokens: TokenPair


def parse_input_did(raw: str) -> Did:
    try:
        did = parse_did(raw)
    except InvalidSyntax:
        raise InvalidRequest("Input/did must be a valid did") from None
    if not did.startswith(("did:plc:", "did:web:")):
        raise InvalidRequest("Only did:plc and did:web accounts can be hosted here")
    return did


class InboundMigration:
    def __init__(self, accounts: AccountManager, resolver: DidResolver) -> None:
        self.accounts = accounts
        self.db = accounts.db
        self.resolver = resolver

    async def create_account(self, did: Did, new: NewAccount) -> MigratedAccount:
        """The deactivated account for a DID brought from elsewhere (see the module notes)."""
        vetted = await self.accounts.vet(new, did=did)
        pair = self.accounts.tokens.create_pair(did, AuthScope.ACCESS)
        async with self.db.transaction() as conn:
            reserved = await reserved_keys.reserved_for_did(conn, did)
            signing_key = (
                K256Keypair.from_private_bytes(reserved.private_key)
                if reserved is not None
                else K256Keypair.generate()
            )
            await self.accounts.insert_account(conn, did, vetted, signing_key, pair)
            await account_sql.set_deactivated(conn, did, deactivated_at=now_ms(), delete_after=None)
            # The empty repository, without events: a deactivated account announces nothing
            # until activateAccount sequences #account, #identity and a #sync of its repo.
            await self.accounts.repo_writer.write_genesis(conn, did, signing_key)
            await reserved_keys.delete_reserved(conn, key_did=signing_key.did(), did=did)
        return MigratedAccount(did, vetted.handle, await self._did_doc(did), pair)

    async def _did_doc(self, did: Did) -> dict[str, Any] | None:
        """The DID's document as it stands (still naming the old PDS); None if unresolvable."""
        try:
            return (await self.resolver.resolve(did, force_refresh=True)).to_json()
        except IdentityError:
            return None

    async def reserve_signing_key(self, did: Did | None) -> str:
        """The did:key of a key reserved for `did` (the same one on every call), or a new one."""
        async with self.db.transaction() as conn:
            await reserved_keys.delete_reserved_before(conn, now_ms() - RESERVATION_TTL_MS)
            if did is not None:
                existing = await reserved_keys.reserved_for_did(conn, did)
                if existing is not None:
                    return existing.key_did
            keypair = K256Keypair.generate()
            await reserved_keys.insert_reserved(
                conn,
                key_did=keypair.did(),
                did=did,
                private_key=keypair.export_private_bytes(),
                now=now_ms(),
            )
            return keypair.did()

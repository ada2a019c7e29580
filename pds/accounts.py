"""The account lifecycle: creation, handles, (de)activation, takedown, deletion.

Creating an account is all-or-nothing. Inputs are checked first (handle policy, email, password
length, invite code); then a fresh K-256 signing key and a did:plc genesis operation (our
rotation key, the handle, this PDS as `#atproto_pds`) are made and submitted to the PLC
directory; then ONE write transaction inserts the account row and its first refresh token,
consumes the invite, sequences the `#identity` and `#account` events and creates the empty
repository (whose writer sequences `#commit` and `#sync`). If that transaction fails, nothing of
it is left and the DID is tombstoned at the directory (best effort), so it cannot linger
pointing at us. The directory is called outside the transaction because the database has a
single writer that must not wait on the network.

Every transaction that changes what the network should know about (a handle, the account status)
writes its firehose event in the same transaction (`pds.sequencer`), through
`Sequencer.transaction()` so subscribers are woken once it commits. The repository side
(`RepoWriter.create_repo`, which sequences `#commit` and `#sync` after our `#identity` and
`#account`, as the reference orders them; `delete_repo`; `sequence_sync`) runs in the same
transactions.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy.exc
from sqlalchemy.ext.asyncio import AsyncConnection

from atcore.cid import CID
from atcore.crypto import K256Keypair
from atcore.identity.plc import (
    PlcOp,
    create_genesis_op,
    create_tombstone_op,
    create_update_op,
    did_for_genesis,
    document_from_op,
)
from atcore.identity.plc import PlcTombstone as _Tombstone
from atcore.syntax import Did
from atcore.xrpc import InvalidRequest, UpstreamFailure
from pds import sequencer as seq
from pds.account_status import AccountStatus, sequence_identity, sequence_status, status_of
from pds.auth import passwords
from pds.auth.tokens import AuthScope, TokenIssuer, TokenPair
from pds.blobstore.contract import BlobStore
from pds.db import accounts as q
from pds.db import email_tokens, invites
from pds.db.engine import Database
from pds.handles import HandlePolicy
from pds.plc_client import PlcClient, PlcClientError
from pds.repo.blobs import delete_unowned
from pds.repo.writer import RepoWriter
from pds.sequencer import Sequencer

log = logging.getLogger(__name__)

MAX_EMAIL_LENGTH: Final = 254


@dataclass(frozen=True, slots=True)
class NewAccount:
    handle: str
    password: str
    email: str | None = None
    invite_code: str | None = None
    recovery_key: str | None = None
    """A did:key the user holds, listed ahead of ours so it can override our PLC operations."""


@dataclass(frozen=True, slots=True)
class VettedAccount:
    """A `NewAccount` that passed the checks: its handle and email normalized, password hashed."""

    handle: str
    email: str | None
    password_hash: str
    invite_code: str | None


@dataclass(frozen=True, slots=True)
class CreatedAccount:
    did: Did
    handle: str
    did_doc: dict[str, Any]
    tokens: TokenPair


def now_ms() -> int:
    return int(time.time() * 1000)


def normalize_email(raw: str) -> str:
    email = raw.strip().lower()
    local, at, domain = email.rpartition("@")
    valid = (
        at
        and local
        and "." in domain.strip(".")
        and len(email) <= MAX_EMAIL_LENGTH
        and not any(ch.isspace() for ch in email)
        and "@" not in local
    )
    if not valid:
        raise InvalidRequest("This email address is not supported, please use a different email.")
    return email


class AccountManager:
    def __init__(
        self,
        *,
        db: Database,
        plc: PlcClient,
        rotation_key: K256Keypair,
        public_url: str,
        handles: HandlePolicy,
        tokens: TokenIssuer,
        invite_required: bool,
        repo_writer: RepoWriter,
        sequencer: Sequencer,
        blobstore: BlobStore | None,
    ) -> None:
        self.db = db
        self.plc = plc
        self.rotation_key = rotation_key
        self.public_url = public_url
        self.handles = handles
        self.tokens = tokens
        self.invite_required = invite_required
        self.repo_writer = repo_writer
        self.sequencer = sequencer
        self.blobstore = blobstore

    # -- lookups ----------------------------------------------------------------------------------
    async def get(self, did: str) -> q.AccountRow | None:
        async with self.db.read() as conn:
            return await q.get_account(conn, did)

    async def get_by_identifier(self, identifier: str) -> q.AccountRow | None:
        async with self.db.read() as conn:
            return await q.get_account_by_identifier(conn, identifier)

    async def signing_key(self, did: str) -> K256Keypair:
        account = await self.get(did)
        if account is None:
            raise InvalidRequest("Account not found", error="AccountNotFound")
        return K256Keypair.from_private_bytes(account.signing_key)

    # -- creation ---------------------------------------------------------------------------------
    async def create_account(self, new: NewAccount) -> CreatedAccount:
        vetted = await self.vet(new)
        handle, signing_key = vetted.handle, K256Keypair.generate()
        genesis = create_genesis_op(
            signer=self.rotation_key,
            rotation_keys=[
                *([new.recovery_key] if new.recovery_key else []),
                self.rotation_key.did(),
            ],
            signing_key=signing_key.did(),
            handle=handle,
            pds_endpoint=self.public_url,
        )
        did = did_for_genesis(genesis)
        await self._submit(did, genesis)
        pair = self.tokens.create_pair(did, AuthScope.ACCESS)
        try:
            async with self.sequencer.transaction() as conn:
                await self.insert_account(conn, did, vetted, signing_key, pair)
                await sequence_identity(conn, did, handle)
                await sequence_status(conn, did, AccountStatus.ACTIVE)
                await self.repo_writer.create_repo(conn, did, signing_key)
        except Exception:
            await self._tombstone(did, genesis)
            raise
        did_doc = document_from_op(did, genesis).to_json()
        return CreatedAccount(did=did, handle=handle, did_doc=did_doc, tokens=pair)

    async def vet(self, new: NewAccount, *, did: Did | None = None) -> VettedAccount:
        """The checks before any account is made (new, or migrating in with `did`)."""
        if len(new.password) > passwords.NEW_PASSWORD_MAX_LENGTH:
            raise InvalidRequest(
                f"Password too long. Maximum length is {passwords.NEW_PASSWORD_MAX_LENGTH} "
                "characters.",
                error="InvalidPassword",
            )
        if self.invite_required and not new.invite_code:
            raise InvalidRequest("No invite code provided", error="InvalidInviteCode")
        email = normalize_email(new.email) if new.email else None
        handle = await self.handles.validate(new.handle, did=did)
        if did is not None and await self.get(did) is not None:
            raise InvalidRequest(f"An account with this DID is already hosted here: {did}")
        await self.check_available(handle, email, new.invite_code)
        password_hash = await passwords.hash_password_async(new.password)
        return VettedAccount(handle, email, password_hash, new.invite_code)

    async def check_available(self, handle: str, email: str | None, invite: str | None) -> None:
        async with self.db.read() as conn:
            if await q.handle_owner(conn, handle) is not None:
                raise InvalidRequest(f"Handle already taken: {handle}", error="HandleNotAvailable")
            if email is not None and await q.email_owner(conn, email) is not None:
                raise InvalidRequest(f"Email already taken: {email}")
            if self.invite_required and invite:
                _ensure_invite_available(await invites.get_invite_code(conn, invite))

    async def insert_account(
        self,
        conn: AsyncConnection,
        did: Did,
        vetted: VettedAccount,
        signing_key: K256Keypair,
        session: TokenPair,
    ) -> None:
        """The account's row, its invite used up, and its first session's refresh token."""
        try:
            await q.insert_account(
                conn,
                did=did,
                handle=vetted.handle,
                email=vetted.email,
                password_scrypt=vetted.password_hash,
                signing_key=signing_key.export_private_bytes(),
                now=now_ms(),
            )
        except sqlalchemy.exc.IntegrityError:
            # A concurrent signup took the handle or email between the check and now.
            raise InvalidRequest(
                "Handle or email already taken", error="HandleNotAvailable"
            ) from None
        if self.invite_required and vetted.invite_code:
            await consume_invite(conn, vetted.invite_code, did)
        await q.insert_refresh_token(
            conn,
            token_id=session.refresh_id,
            did=did,
            expires_at=session.refresh_expires_at * 1000,
            app_password_name=None,
        )

    async def _submit(self, did: str, op: PlcOp) -> None:
        try:
            await self.plc.send_operation(did, op)
        except PlcClientError as exc:
            raise UpstreamFailure(
                f"Could not register the DID with the PLC directory: {exc}"
            ) from exc

    async def _tombstone(self, did: str, genesis: PlcOp) -> None:
        try:
            await self.plc.send_operation(
                did, create_tombstone_op(genesis, signer=self.rotation_key)
            )
        except Exception:
            log.exception("could not tombstone %s after a failed account creation", did)

    # -- handles ----------------------------------------------------------------------------------
    async def update_handle(
        self, did: Did, raw_handle: str, *, allow_reserved: bool = False
    ) -> str:
        """Validate, update the DID document (did:plc), store, and sequence `#identity`."""
        account = await self.get(did)
        if account is None:
            raise InvalidRequest("Account not found", error="AccountNotFound")
        handle = await self.handles.validate(raw_handle, did=did, allow_reserved=allow_reserved)
        async with self.db.read() as conn:
            owner = await q.handle_owner(conn, handle)
        if owner is not None and owner != did:
            raise InvalidRequest(f"Handle already taken: {handle}", error="HandleNotAvailable")
        if did.startswith("did:plc:"):
            await self._update_plc_handle(did, handle)
        async with self.sequencer.transaction() as conn:
            try:
                await q.update_handle(conn, did, handle)
            except sqlalchemy.exc.IntegrityError:
                raise InvalidRequest(
                    f"Handle already taken: {handle}", error="HandleNotAvailable"
                ) from None
            await sequence_identity(conn, did, handle)
        return handle

    async def _update_plc_handle(self, did: str, handle: str) -> None:
        try:
            last = await self.plc.last_operation(did)
        except PlcClientError as exc:
            raise UpstreamFailure(f"Could not read the DID from the PLC directory: {exc}") from exc
        if isinstance(last, _Tombstone):
            raise InvalidRequest("The DID has been tombstoned")
        update = create_update_op(last, signer=self.rotation_key, handle=handle)
        await self._submit(did, update)

    # -- status -----------------------------------------------------------------------------------
    async def deactivate(self, did: Did, *, delete_after: int | None) -> None:
        async with self.sequencer.transaction() as conn:
            if not await q.set_deactivated(
                conn, did, deactivated_at=now_ms(), delete_after=delete_after
            ):
                raise InvalidRequest("Account not found", error="AccountNotFound")
            account = await q.get_account(conn, did)
            await sequence_status(conn, did, status_of(account))

    async def activate(self, did: Did) -> None:
        account = await self.get(did)
        if account is None or account.taken_down:
            raise InvalidRequest("user not found", error="AccountNotFound")
        await self.assert_valid_did_document(did, account)
        async with self.sequencer.transaction() as conn:
            await q.set_deactivated(conn, did, deactivated_at=None, delete_after=None)
            current = await q.get_account(conn, did)
            await sequence_status(conn, did, status_of(current))
            await sequence_identity(conn, did, account.handle)
            await self.repo_writer.sequence_sync(conn, did)

    async def is_did_document_valid(self, did: Did, account: q.AccountRow) -> bool:
        try:
            await self.assert_valid_did_document(did, account)
        except (InvalidRequest, UpstreamFailure):
            return False
        return True

    async def assert_valid_did_document(self, did: Did, account: q.AccountRow) -> None:
        """The DID's PLC data names our rotation key, our URL and the account's signing key."""
        if not did.startswith("did:plc:"):
            raise InvalidRequest("Only did:plc accounts are hosted here")
        try:
            data = await self.plc.document_data(did)
        except PlcClientError as exc:
            raise UpstreamFailure(f"Could not read the DID from the PLC directory: {exc}") from exc
        if self.rotation_key.did() not in data.rotation_keys:
            raise InvalidRequest("Server rotation key not included in PLC DID data")
        pds = data.services.get("atproto_pds")
        if pds is None or pds.endpoint != self.public_url:
            raise InvalidRequest(
                "DID document atproto_pds service endpoint does not match PDS public url"
            )
        expected_key = K256Keypair.from_private_bytes(account.signing_key).did()
        if data.verification_methods.get("atproto") != expected_key:
            raise InvalidRequest(
                "DID document verification method does not match expected signing key"
            )

    async def set_takedown(self, did: Did, takedown_ref: str | None) -> None:
        """Apply (a reference string) or lift (None) a takedown; a takedown ends all sessions."""
        async with self.sequencer.transaction() as conn:
            if not await q.set_takedown(conn, did, takedown_ref):
                raise InvalidRequest("Account not found", error="AccountNotFound")
            if takedown_ref is not None:
                await q.delete_refresh_tokens_of(conn, did)
            account = await q.get_account(conn, did)
            await sequence_status(conn, did, status_of(account))

    async def update_password(self, did: Did, password: str) -> None:
        if len(password) > passwords.NEW_PASSWORD_MAX_LENGTH:
            raise InvalidRequest("Password too long", error="InvalidPassword")
        hashed = await passwords.hash_password_async(password)
        async with self.db.transaction() as conn:
            if await q.get_account(conn, did) is None:
                raise InvalidRequest("Account not found", error="AccountNotFound")
            await q.update_password(conn, did, hashed)
            await q.delete_refresh_tokens_of(conn, did)
            await email_tokens.delete_token(conn, email_tokens.Purpose.RESET_PASSWORD, did)

    # -- deletion ---------------------------------------------------------------------------------
    async def delete_account(self, did: Did) -> None:
        """Remove the account, its repo, records and blobs; sequence `#account` deleted."""
        async with self.sequencer.transaction() as conn:
            await q.delete_account_rows(conn, did)
            blob_cids = await self.repo_writer.delete_repo(conn, did)
            await seq.mark_invalidated(conn, did)
            await sequence_status(conn, did, AccountStatus.DELETED)
        await self._purge_blobs(did, blob_cids)

    async def _purge_blobs(self, did: Did, cids: Sequence[CID]) -> None:
        # Under the blob locks, like every deletion of blob bytes (`pds.repo.blobs`); failures
        # are logged there (the rows are gone, so the files are unreachable).
        await delete_unowned(
            self.db, self.blobstore, self.repo_writer.blob_locks, [(did, str(c)) for c in cids]
        )

    # -- invites ----------------------------------------------------------------------------------
    async def create_invite_codes(
        self, codes: Sequence[str], *, uses: int, for_account: str
    ) -> None:
        async with self.db.transaction() as conn:
            await invites.insert_invite_codes(
                conn, codes, available_uses=uses, for_account=for_account, created_by="admin",
                now=now_ms(),
            )  # fmt: skip


def _ensure_invite_available(invite: invites.InviteCodeRow | None) -> None:
    if invite is None or invite.disabled or invite.uses >= invite.available_uses:
        raise InvalidRequest("Provided invite code not available", error="InvalidInviteCode")


async def consume_invite(conn: AsyncConnection, code: str, did: str) -> None:
    _ensure_invite_available(await invites.get_invite_code(conn, code))
    await invites.record_invite_use(conn, code, did, now_ms())

"""did:plc operations for account migration, both ways.

Moving *to* this PDS (we are the new PDS):

* `recommended_credentials`: what the DID document should say once the account lives here (our
  rotation key, `at://<handle>`, the account's signing key, our URL as `#atproto_pds`), as
  `getRecommendedDidCredentials` returns it;
* `submit`: the operation the old PDS signed (`signPlcOperation` there), checked before it goes
  to the directory: it must keep our rotation key, name our URL as an `AtprotoPersonalDataServer`,
  name the account's signing key as `#atproto` and (when the account has a handle) start
  `alsoKnownAs` with it. Anything else is `InvalidRequest` and nothing is sent. After the
  directory accepts it, an `#identity` event is sequenced and our cached document dropped.

Moving *away* (we are the old PDS):

* `sign`: an update of the DID's last operation with the fields the client gives (the rest kept),
  signed with our rotation key, which the DID must still list. The caller checks the emailed
  token (`requestPlcOperationSignature`) first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from atcore.crypto import K256Keypair
from atcore.identity import IdentityError
from atcore.identity.diddoc import AT_URI_PREFIX, ATPROTO_KEY_ID, PDS_SERVICE
from atcore.identity.plc import (
    PlcOperation,
    PlcService,
    PlcTombstone,
    normalize_op,
    op_cid,
    sign_op,
)
from atcore.identity.plc_parse import parse_operation
from atcore.identity.resolver import DidResolver
from atcore.syntax import Did
from atcore.xrpc import InvalidRequest, UpstreamFailure
from pds.account_status import sequence_identity
from pds.accounts import AccountManager
from pds.plc_client import PlcClientError, PlcRejected


@dataclass(frozen=True, slots=True)
class OperationChanges:
    """The fields of `signPlcOperation`'s input; None keeps the last operation's value."""

    rotation_keys: Sequence[str] | None = None
    also_known_as: Sequence[str] | None = None
    verification_methods: Mapping[str, str] | None = None
    services: Mapping[str, PlcService] | None = None


class PlcOperations:
    def __init__(self, accounts: AccountManager, resolver: DidResolver) -> None:
        self.accounts = accounts
        self.resolver = resolver

    # -- the new PDS ------------------------------------------------------------------------------
    async def recommended_credentials(self, did: Did) -> dict[str, Any]:
        account = await self.accounts.get(did)
        if account is None:
            raise InvalidRequest("Account not found", error="AccountNotFound")
        signing_key = K256Keypair.from_private_bytes(account.signing_key)
        body: dict[str, Any] = {
            "rotationKeys": [self.accounts.rotation_key.did()],
            "verificationMethods": {ATPROTO_KEY_ID: signing_key.did()},
            "services": {
                PDS_SERVICE.fragment: {
                    "type": PDS_SERVICE.type,
                    "endpoint": self.accounts.public_url,
                }
            },
        }
        if account.handle:
            body["alsoKnownAs"] = [AT_URI_PREFIX + account.handle]
        return body

    async def submit(self, did: Did, raw_operation: object) -> None:
        account = await self.accounts.get(did)
        if account is None:
            raise InvalidRequest("Account not found", error="AccountNotFound")
        if not did.startswith("did:plc:"):
            raise InvalidRequest("Only did:plc identities have PLC operations")
        operation = _parse_update(raw_operation)
        self._check_points_here(operation, account.signing_key, account.handle)
        try:
            await self.accounts.plc.send_operation(did, operation)
        except PlcRejected as exc:
            raise InvalidRequest(f"The PLC directory refused the operation: {exc}") from exc
        except PlcClientError as exc:
            raise UpstreamFailure(f"Could not reach the PLC directory: {exc}") from exc
        self.resolver.invalidate(did)
        async with self.accounts.sequencer.transaction() as conn:
            await sequence_identity(conn, did, account.handle)

    def _check_points_here(
        self, operation: PlcOperation, signing_key: bytes, handle: str | None
    ) -> None:
        if self.accounts.rotation_key.did() not in operation.rotation_keys:
            raise InvalidRequest("Rotation keys do not include server's rotation key")
        pds = operation.services.get(PDS_SERVICE.fragment)
        if pds is None or pds.type != PDS_SERVICE.type:
            raise InvalidRequest("Incorrect type on atproto_pds service")
        if pds.endpoint != self.accounts.public_url:
            raise InvalidRequest("Incorrect endpoint on atproto_pds service")
        expected_key = K256Keypair.from_private_bytes(signing_key).did()
        if operation.verification_methods.get(ATPROTO_KEY_ID) != expected_key:
            raise InvalidRequest("Incorrect signing key")
        aliases = operation.also_known_as
        if handle and (not aliases or aliases[0] != AT_URI_PREFIX + handle):
            raise InvalidRequest("Incorrect handle in alsoKnownAs")

    # -- the old PDS -----------------------------------------------------------------------------
    async def sign(self, did: Did, changes: OperationChanges) -> PlcOperation:
        """An update of the DID's last operation with `changes`, signed with our rotation key."""
        if not did.startswith("did:plc:"):
            raise InvalidRequest("Only did:plc identities have PLC operations")
        try:
            last = await self.accounts.plc.last_operation(did)
        except PlcClientError as exc:
            raise UpstreamFailure(f"Could not read the DID from the PLC directory: {exc}") from exc
        if isinstance(last, PlcTombstone):
            raise InvalidRequest("Did is tombstoned")
        base = normalize_op(last)
        rotation_key = self.accounts.rotation_key
        if rotation_key.did() not in base.rotation_keys:
            raise InvalidRequest("This PDS's rotation key can no longer update the DID")
        unsigned = PlcOperation(
            rotation_keys=tuple(
                changes.rotation_keys if changes.rotation_keys is not None else base.rotation_keys
            ),
            verification_methods=dict(
                changes.verification_methods
                if changes.verification_methods is not None
                else base.verification_methods
            ),
            also_known_as=tuple(
                changes.also_known_as if changes.also_known_as is not None else base.also_known_as
            ),
            services=dict(changes.services if changes.services is not None else base.services),
            prev=str(op_cid(last)),
        )
        return sign_op(unsigned, rotation_key)


def _parse_update(raw: object) -> PlcOperation:
    try:
        operation = parse_operation(raw)
    except IdentityError as exc:
        raise InvalidRequest(f"Invalid operation: {exc}") from exc
    if not isinstance(operation, PlcOperation) or operation.prev is None:
        raise InvalidRequest("Invalid operation: expected a plc_operation updating the DID")
    return operation

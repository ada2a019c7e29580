"""atproto identity: DID documents, the did:plc method, and DID / handle resolution.

Layout:

- `diddoc`: `DidDocument` (typed, validated; handle, `#atproto` key, services) and builders for
  the documents our services publish.
- `plc`: did:plc operations (model, signing, verification, DID derivation, DID documents);
  `plc_parse`: their JSON wire form and audit-log entries; `plc_log`: the chain rules.
- `resolver`: `DidResolver` (did:plc via a PLC directory, did:web via `/.well-known/did.json`,
  with a bounded TTL cache and one shared fetch per DID); `handles`: `HandleResolver` and the
  bidirectional handle check; `cache`: the TTL cache they use.

Error tree (all `ValueError`s, defined in `errors`)::

    IdentityError
    ├── InvalidDidDocument
    ├── DidNotFound
    ├── HandleNotFound
    ├── HandleMismatch
    ├── UnsupportedDidMethod
    ├── ResolutionUnavailable     network failure / timeout / 5xx: "could not ask", not "absent"
    └── PlcOperationError
        ├── InvalidPlcOperation
        ├── InvalidPlcSignature
        ├── GenesisMismatch
        ├── MisorderedOperation
        └── LateRecovery
"""

from atcore.identity.diddoc import (
    APPVIEW_SERVICE,
    FEED_GENERATOR_SERVICE,
    LABELER_SERVICE,
    PDS_SERVICE,
    DidDocument,
    Service,
    ServiceKind,
    VerificationMethod,
    atproto_account_document,
    build_did_document,
    service_did_document,
)
from atcore.identity.errors import (
    DidNotFound,
    GenesisMismatch,
    HandleMismatch,
    HandleNotFound,
    IdentityError,
    InvalidDidDocument,
    InvalidPlcOperation,
    InvalidPlcSignature,
    LateRecovery,
    MisorderedOperation,
    PlcOperationError,
    ResolutionUnavailable,
    UnsupportedDidMethod,
)
from atcore.identity.handles import HandleResolver, IdentityResolver, VerifiedIdentity
from atcore.identity.resolver import DidResolver

__all__ = [
    "APPVIEW_SERVICE",
    "FEED_GENERATOR_SERVICE",
    "LABELER_SERVICE",
    "PDS_SERVICE",
    "DidDocument",
    "DidNotFound",
    "DidResolver",
    "GenesisMismatch",
    "HandleMismatch",
    "HandleNotFound",
    "HandleResolver",
    "IdentityError",
    "IdentityResolver",
    "InvalidDidDocument",
    "InvalidPlcOperation",
    "InvalidPlcSignature",
    "LateRecovery",
    "MisorderedOperation",
    "PlcOperationError",
    "ResolutionUnavailable",
    "Service",
    "ServiceKind",
    "UnsupportedDidMethod",
    "VerificationMethod",
    "VerifiedIdentity",
    "atproto_account_document",
    "build_did_document",
    "service_did_document",
]

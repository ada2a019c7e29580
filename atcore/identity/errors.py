"""The error tree of `atcore.identity` (see the package docstring for the full picture).

IdentityError(ValueError)
├── InvalidDidDocument       a document is malformed, or lacks what the caller needs
├── DidNotFound              the DID's method says it does not exist (or is deactivated)
├── HandleNotFound           no DID is published for the handle
├── HandleMismatch           handle -> DID worked, but the DID document does not claim it
├── UnsupportedDidMethod     a syntactically valid DID of a method atproto does not use
├── ResolutionUnavailable    the authority could not be asked (network, timeout, 5xx)
└── PlcOperationError        a did:plc operation or log breaks the method's rules
    ├── InvalidPlcOperation      wrong shape, field types or sizes
    ├── InvalidPlcSignature      not signed by an allowed rotation key, or a malformed sig
    ├── GenesisMismatch          the genesis operation does not derive the DID
    ├── MisorderedOperation      `prev` does not chain, or the log was already tombstoned
    └── LateRecovery             a fork outside the 72 h recovery window
"""

from __future__ import annotations


class IdentityError(ValueError):
    """Root of every error raised by `atcore.identity`."""


class InvalidDidDocument(IdentityError):
    """A DID document is malformed, names another DID, or lacks a required entry."""


class DidNotFound(IdentityError):
    """The DID does not exist, or its method reports it deactivated (tombstoned)."""


class HandleNotFound(IdentityError):
    """No DID is published for the handle (neither well-known file nor DNS record)."""


class HandleMismatch(IdentityError):
    """The handle names a DID whose document does not list the handle back."""


class UnsupportedDidMethod(IdentityError):
    """A syntactically valid DID whose method atproto does not resolve (only plc and web)."""


class ResolutionUnavailable(IdentityError):
    """The identity could not be looked up right now: network error, timeout or server error.

    Distinct from `DidNotFound` / `HandleNotFound` so callers can retry instead of concluding the
    identity does not exist.
    """


class PlcOperationError(IdentityError):
    """A did:plc operation, or an operation log, violates the did:plc method rules."""


class InvalidPlcOperation(PlcOperationError):
    """An operation is not a well-formed `plc_operation`, `plc_tombstone` or legacy `create`."""


class InvalidPlcSignature(PlcOperationError):
    """An operation's `sig` is malformed or not made by any of the allowed rotation keys."""


class GenesisMismatch(PlcOperationError):
    """The genesis operation hashes to a different DID than the one it was submitted for."""


class MisorderedOperation(PlcOperationError):
    """An operation's `prev` does not point at a usable earlier operation."""


class LateRecovery(PlcOperationError):
    """A fork (recovery) came more than 72 hours after the operation it would nullify."""

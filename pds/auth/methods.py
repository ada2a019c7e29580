"""Which XRPC methods may be delegated to another service, and from which sessions.

As in the reference PDS (`pipethrough.ts`): account-management methods are used directly with
the PDS and are never proxied nor granted through service auth (`PROTECTED_METHODS`); some
methods may be delegated only from a full session or a privileged app password
(`is_privileged_method`: account creation elsewhere, and everything in `chat.bsky`). Method
names compare case-insensitively.
"""

from __future__ import annotations

from typing import Final

from atcore import nsids

PROTECTED_METHODS: Final = frozenset(
    name.lower()
    for name in (
        nsids.ADMIN_SEND_EMAIL,
        nsids.IDENTITY_REQUEST_PLC_SIGNATURE,
        nsids.IDENTITY_SIGN_PLC_OPERATION,
        nsids.IDENTITY_UPDATE_HANDLE,
        nsids.SERVER_ACTIVATE_ACCOUNT,
        nsids.SERVER_CONFIRM_EMAIL,
        nsids.SERVER_CREATE_APP_PASSWORD,
        nsids.SERVER_DEACTIVATE_ACCOUNT,
        nsids.SERVER_GET_ACCOUNT_INVITE_CODES,
        nsids.SERVER_GET_SESSION,
        nsids.SERVER_LIST_APP_PASSWORDS,
        nsids.SERVER_REQUEST_ACCOUNT_DELETE,
        nsids.SERVER_REQUEST_EMAIL_CONFIRMATION,
        nsids.SERVER_REQUEST_EMAIL_UPDATE,
        nsids.SERVER_REVOKE_APP_PASSWORD,
        nsids.SERVER_UPDATE_EMAIL,
    )
)
_PRIVILEGED_METHODS: Final = frozenset({nsids.SERVER_CREATE_ACCOUNT.lower()})
_PRIVILEGED_NAMESPACE_PREFIX: Final = nsids.CHAT_NAMESPACE.lower() + "."


def is_protected_method(nsid: str) -> bool:
    return nsid.lower() in PROTECTED_METHODS


def is_privileged_method(nsid: str) -> bool:
    lowered = nsid.lower()
    return lowered in _PRIVILEGED_METHODS or lowered.startswith(_PRIVILEGED_NAMESPACE_PREFIX)

"""An account's hosting status (active, takendown, suspended, deactivated, deleted) as the PDS
reports it: from the account row (`status_of`), and as the firehose's `#account` and
`#identity` events, written in the caller's transaction.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from sqlalchemy.ext.asyncio import AsyncConnection

from atcore.syntax import Did
from pds import sequencer as seq
from pds.db import accounts as q


class AccountStatus(StrEnum):
    ACTIVE = "active"
    TAKENDOWN = "takendown"
    SUSPENDED = "suspended"
    DEACTIVATED = "deactivated"
    DELETED = "deleted"


_EVENT_STATUS: Final[dict[AccountStatus, seq.AccountStatus]] = {
    AccountStatus.TAKENDOWN: "takendown",
    AccountStatus.SUSPENDED: "suspended",
    AccountStatus.DEACTIVATED: "deactivated",
    AccountStatus.DELETED: "deleted",
}


async def sequence_status(conn: AsyncConnection, did: Did, status: AccountStatus) -> None:
    """The `#account` event for a status: active, or inactive saying why."""
    if status is AccountStatus.ACTIVE:
        await seq.sequence_account(conn, did, True)
    else:
        await seq.sequence_account(conn, did, False, _EVENT_STATUS[status])


async def sequence_identity(conn: AsyncConnection, did: Did, handle: str | None) -> None:
    await seq.sequence_identity(conn, did, handle)


def status_of(account: q.AccountRow | None) -> AccountStatus:
    if account is None:
        return AccountStatus.DELETED
    if account.taken_down:
        return AccountStatus.TAKENDOWN
    if account.deactivated:
        return AccountStatus.DEACTIVATED
    return AccountStatus.ACTIVE

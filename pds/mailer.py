"""Outgoing account email: the codes of `pds.email_codes` (password reset, email confirmation and
change, account deletion, PLC operation signature).

No SMTP transport is configured in this deployment's settings, so `LogMailer` writes each message
to the `pds.mailer` log at WARNING level, the way the reference PDS's dev mailer does; an
operator (or a test) reads the code from there. Each line ends with `: <code>`. A real transport
implements the same `Mailer` protocol.
"""

from __future__ import annotations

import logging
from typing import Protocol

log = logging.getLogger("pds.mailer")


class Mailer(Protocol):
    async def send_account_delete(self, *, to: str, token: str) -> None: ...

    async def send_plc_operation(self, *, to: str, token: str) -> None: ...

    async def send_reset_password(self, *, to: str, handle: str, token: str) -> None: ...

    async def send_confirm_email(self, *, to: str, token: str) -> None: ...

    async def send_update_email(self, *, to: str, token: str) -> None:
        """The code that allows changing the address, sent to the CURRENT (confirmed) address."""
        ...


class LogMailer:
    async def send_account_delete(self, *, to: str, token: str) -> None:
        log.warning("account deletion code for %s: %s", to, token)

    async def send_plc_operation(self, *, to: str, token: str) -> None:
        log.warning("PLC operation signature code for %s: %s", to, token)

    async def send_reset_password(self, *, to: str, handle: str, token: str) -> None:
        log.warning("password reset code for %s (%s): %s", to, handle, token)

    async def send_confirm_email(self, *, to: str, token: str) -> None:
        log.warning("email confirmation code for %s: %s", to, token)

    async def send_update_email(self, *, to: str, token: str) -> None:
        log.warning("email update code for %s: %s", to, token)

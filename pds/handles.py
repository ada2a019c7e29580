"""Which handles an account on this PDS may take.

A handle is normalized (lowercased) and must be valid syntax with an allowed TLD. Under one of
our service domains (`PDS_SERVICE_HANDLE_DOMAINS`, e.g. `.test` in dev) the part in front must be
a single label of 3 to 18 characters and not a reserved name. Any other domain is a "custom"
handle: refused at account creation (`UnsupportedDomain`), and on a handle update accepted only
when the domain already resolves to the account's DID.

All refusals are 400 XRPC errors named as in the reference (`InvalidHandle`,
`HandleNotAvailable`, `UnsupportedDomain`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from atcore.identity import IdentityError
from atcore.identity.handles import HandleResolver
from atcore.syntax import Handle, InvalidSyntax, is_disallowed_handle_tld, normalize_handle
from atcore.xrpc import InvalidRequest

MIN_SERVICE_LABEL: Final = 3
MAX_SERVICE_LABEL: Final = 18

RESERVED_LABELS: Final = frozenset(
    {
        "abuse", "account", "accounts", "admin", "administrator", "api", "app", "atproto",
        "auth", "blog", "bsky", "dev", "feed", "feeds", "help", "hostmaster", "info", "login",
        "logout", "mail", "mod", "moderation", "moderator", "official", "oauth", "pds", "plc",
        "postmaster", "root", "security", "settings", "signup", "skyspot", "staff", "status",
        "support", "sysadmin", "system", "team", "webmaster", "www",
    }
)  # fmt: skip


def parse_handle_input(raw: str) -> Handle:
    """Syntax + TLD check and lowercasing; `InvalidHandle` on failure."""
    try:
        handle = normalize_handle(raw)
    except InvalidSyntax as exc:
        raise InvalidRequest(str(exc), error="InvalidHandle") from None
    if is_disallowed_handle_tld(handle):
        raise InvalidRequest("Handle TLD is invalid or disallowed", error="InvalidHandle")
    return handle


def service_domain_of(handle: str, domains: Sequence[str]) -> str | None:
    """The service domain (`.test`) the handle sits under, if any."""
    for domain in domains:
        if handle.endswith(domain.lower()):
            return domain.lower()
    return None


def is_service_handle(handle: str, domains: Sequence[str]) -> bool:
    """A handle under a service domain, or a service domain itself (`test` for `.test`)."""
    return service_domain_of(handle, domains) is not None or any(
        handle == domain.lower().lstrip(".") for domain in domains
    )


def check_service_constraints(handle: str, domain: str, *, allow_reserved: bool) -> None:
    label = handle[: len(handle) - len(domain)]
    if "." in label:
        raise InvalidRequest("Invalid characters in handle", error="InvalidHandle")
    if len(label) < MIN_SERVICE_LABEL:
        raise InvalidRequest("Handle too short", error="InvalidHandle")
    if len(label) > MAX_SERVICE_LABEL:
        raise InvalidRequest("Handle too long", error="InvalidHandle")
    if not allow_reserved and label in RESERVED_LABELS:
        raise InvalidRequest("Reserved handle", error="HandleNotAvailable")


class HandlePolicy:
    def __init__(self, domains: Sequence[str], resolver: HandleResolver) -> None:
        self.domains = tuple(domains)
        self._resolver = resolver

    async def validate(
        self, raw: str, *, did: str | None = None, allow_reserved: bool = False
    ) -> Handle:
        """The normalized handle, if `did` (None: a new account) may take it."""
        handle = parse_handle_input(raw)
        domain = service_domain_of(handle, self.domains)
        if domain is not None:
            check_service_constraints(handle, domain, allow_reserved=allow_reserved)
            return handle
        if did is None:
            raise InvalidRequest("Not a supported handle domain", error="UnsupportedDomain")
        try:
            resolved = await self._resolver.resolve(handle, force_refresh=True)
        except IdentityError:
            resolved = None
        if resolved != did:
            raise InvalidRequest("External handle did not resolve to DID")
        return handle

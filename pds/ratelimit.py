"""Rate limits with the reference PDS's numbers, in memory, fixed windows per key.

A `RateLimit` is a named budget of points per window (`createSession`: 30 per 5 minutes and 300
per day per identifier+IP; repo writes: 5000 points per hour and 35000 per day per DID, a create
costing 3, an update 2, a delete 1; ...). A window opens at a key's first request and lasts
`duration_seconds`; every request spends points, refused ones included, as in the reference's
`rate-limiter-flexible` memory store.

Handlers call `await limiter.consume(request, (LIMIT, key), ...)`. On success the tightest
status (fewest points left) is remembered on the request and `apply_headers` (run when the
response is prepared) writes `RateLimit-Limit`, `-Remaining`, `-Reset` (epoch seconds) and
`-Policy` (`<limit>;w=<seconds>`). Over budget, `RateLimitExceeded` (429) carries the same headers
plus `Retry-After`. With limits disabled (`PDS_RATE_LIMITS_ENABLED=false`, the dev default)
nothing is counted and no headers are sent. The global per-IP budget is applied by
`global_limit_middleware`.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Middleware

from atcore import nsids
from atcore.xrpc import Handler, RateLimitExceeded, is_xrpc_path

MINUTE: Final = 60
HOUR: Final = 60 * MINUTE
DAY: Final = 24 * HOUR
_SWEEP_EVERY: Final = 10_000
EXPOSED_HEADERS: Final = (
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "RateLimit-Policy",
    "Retry-After",
)


@dataclass(frozen=True, slots=True)
class RateLimit:
    name: str
    duration_seconds: int
    points: int


# The reference PDS's limits (packages/pds/src/rate-limits.ts and each method's `rateLimit`).
GLOBAL_IP: Final = RateLimit("global-ip", 5 * MINUTE, 3000)
CREATE_SESSION_SHORT: Final = RateLimit("createSession-5m", 5 * MINUTE, 30)
CREATE_SESSION_DAY: Final = RateLimit("createSession-day", DAY, 300)
CREATE_ACCOUNT: Final = RateLimit("createAccount", 5 * MINUTE, 100)
DELETE_ACCOUNT: Final = RateLimit("deleteAccount", 5 * MINUTE, 50)
REQUEST_ACCOUNT_DELETE_HOUR: Final = RateLimit("requestAccountDelete-hour", HOUR, 5)
REQUEST_ACCOUNT_DELETE_DAY: Final = RateLimit("requestAccountDelete-day", DAY, 15)
UPDATE_HANDLE_SHORT: Final = RateLimit("updateHandle-5m", 5 * MINUTE, 10)
UPDATE_HANDLE_DAY: Final = RateLimit("updateHandle-day", DAY, 50)
UPLOAD_BLOB: Final = RateLimit("uploadBlob", DAY, 1000)
REPO_WRITE_HOUR: Final = RateLimit("repo-write-hour", HOUR, 5000)
REPO_WRITE_DAY: Final = RateLimit("repo-write-day", DAY, 35000)
SYNC_GET_REPO: Final = RateLimit("getRepo", 5 * MINUTE, 6000)
REQUEST_PASSWORD_RESET_HOUR: Final = RateLimit("requestPasswordReset-hour", HOUR, 15)
REQUEST_PASSWORD_RESET_DAY: Final = RateLimit("requestPasswordReset-day", DAY, 50)
RESET_PASSWORD: Final = RateLimit("resetPassword", 5 * MINUTE, 50)
REQUEST_EMAIL_CONFIRMATION_HOUR: Final = RateLimit("requestEmailConfirmation-hour", HOUR, 5)
REQUEST_EMAIL_CONFIRMATION_DAY: Final = RateLimit("requestEmailConfirmation-day", DAY, 15)
REQUEST_EMAIL_UPDATE_HOUR: Final = RateLimit("requestEmailUpdate-hour", HOUR, 5)
REQUEST_EMAIL_UPDATE_DAY: Final = RateLimit("requestEmailUpdate-day", DAY, 15)
# Ours (the reference has none for these): account migration endpoints that mail a code, check
# one, mint keys without authentication, or rewrite a whole repository.
RESERVE_SIGNING_KEY: Final = RateLimit("reserveSigningKey", 5 * MINUTE, 100)
REQUEST_PLC_SIGNATURE_HOUR: Final = RateLimit("requestPlcOperationSignature-hour", HOUR, 5)
REQUEST_PLC_SIGNATURE_DAY: Final = RateLimit("requestPlcOperationSignature-day", DAY, 15)
SIGN_PLC_OPERATION: Final = RateLimit("signPlcOperation", 5 * MINUTE, 30)
IMPORT_REPO: Final = RateLimit("importRepo", HOUR, 20)
# Ours too: password reset mail per account (the reference limits only per IP, so many IPs could
# flood one inbox; same budget as the other mailing endpoints), and the calls that take a mailed
# code with a session (or answer whether an address is taken).
REQUEST_PASSWORD_RESET_ACCOUNT_HOUR: Final = RateLimit("requestPasswordReset-account-hour", HOUR, 5)
REQUEST_PASSWORD_RESET_ACCOUNT_DAY: Final = RateLimit("requestPasswordReset-account-day", DAY, 15)
CONFIRM_EMAIL: Final = RateLimit("confirmEmail", 5 * MINUTE, 30)
UPDATE_EMAIL: Final = RateLimit("updateEmail", 5 * MINUTE, 30)
REPO_WRITE_POINTS: Final = {"create": 3, "update": 2, "delete": 1}


@dataclass(frozen=True, slots=True)
class RateLimitStatus:
    limit: int
    duration_seconds: int
    remaining: int
    reset_at: float
    """Epoch seconds at which the window ends."""

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(int(self.reset_at)),
            "RateLimit-Policy": f"{self.limit};w={self.duration_seconds}",
        }


RATE_LIMIT_STATUS: Final = web.RequestKey("pds_rate_limit_status", RateLimitStatus)


@dataclass(slots=True)
class _Window:
    ends_at: float
    consumed: int


class RateLimiter:
    """Fixed-window counters keyed by (limit name, caller key)."""

    def __init__(self, *, enabled: bool, clock: Callable[[], float] = time.time) -> None:
        self.enabled = enabled
        self._clock = clock
        self._windows: dict[tuple[str, str], _Window] = {}
        self._calls = 0

    def spend(self, limit: RateLimit, key: str, points: int = 1) -> RateLimitStatus:
        """Spend points; raises `RateLimitExceeded` (with headers) when over budget."""
        now = self._clock()
        self._maybe_sweep(now)
        window = self._windows.get((limit.name, key))
        if window is None or window.ends_at <= now:
            window = _Window(ends_at=now + limit.duration_seconds, consumed=0)
            self._windows[(limit.name, key)] = window
        window.consumed += points
        status = RateLimitStatus(
            limit=limit.points,
            duration_seconds=limit.duration_seconds,
            remaining=max(limit.points - window.consumed, 0),
            reset_at=window.ends_at,
        )
        if window.consumed > limit.points:
            headers = status.headers()
            headers["Retry-After"] = str(max(int(window.ends_at - now + 0.999), 1))
            raise RateLimitExceeded("Rate Limit Exceeded", headers=headers)
        return status

    async def consume(
        self, request: web.Request, *limits: tuple[RateLimit, str], points: int = 1
    ) -> None:
        """Spend `points` from every (limit, key) pair; remember the tightest status."""
        if not self.enabled:
            return
        for limit, key in limits:
            status = self.spend(limit, key, points)
            previous = request.get(RATE_LIMIT_STATUS)
            if previous is None or status.remaining < previous.remaining:
                request[RATE_LIMIT_STATUS] = status

    def _maybe_sweep(self, now: float) -> None:
        """Drop finished windows now and then, so memory stays bounded by active callers."""
        self._calls += 1
        if self._calls % _SWEEP_EVERY:
            return
        for key in [k for k, w in self._windows.items() if w.ends_at <= now]:
            del self._windows[key]


def caller_ip(request: web.Request) -> str:
    """The client's address, seen through reverse proxies on private networks.

    Behind a proxy (Caddy in docker-compose) every request comes from the proxy's address, so
    per-IP budgets would be shared by all users. Like the reference PDS (Express `trust proxy`
    for loopback, link-local and unique-local peers), a peer on such an address is trusted to
    append the client to `X-Forwarded-For`; the caller is the right-most entry that is not itself
    a trusted proxy. A public peer's header is ignored, so clients cannot pick their own bucket.
    """
    peer = request.remote or "unknown"
    if not _is_trusted_proxy(peer):
        return peer
    hops = [hop.strip() for hop in request.headers.get("X-Forwarded-For", "").split(",")]
    for hop in reversed([h for h in hops if h]):
        if not _is_trusted_proxy(hop):
            return hop
    return peer


def _is_trusted_proxy(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_link_local or ip.is_private


def apply_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Write the tightest status's headers, unless a 429 already carries the exceeded one's."""
    status = request.get(RATE_LIMIT_STATUS)
    if status is not None and "RateLimit-Limit" not in response.headers:
        response.headers.update(status.headers())


_GET_REPO_PATH: Final = nsids.xrpc_path(nsids.SYNC_GET_REPO)


def global_limit_middleware(limiter: RateLimiter) -> Middleware:
    """Per-IP budget for every XRPC call except getRepo (which has its own)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if (
            limiter.enabled
            and request.method != "OPTIONS"
            and is_xrpc_path(request.path)
            and request.path != _GET_REPO_PATH
        ):
            await limiter.consume(request, (GLOBAL_IP, caller_ip(request)))
        return await handler(request)

    return middleware

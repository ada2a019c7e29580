"""The small HTTP layer the identity resolvers share: bounded GETs with failure classification.

Every lookup is one GET with a total timeout and a cap on the body size (identity documents are
tiny; a huge body is a misbehaving or hostile server). Failures are sorted into what the caller
must tell apart: the server answered (any status, handled by the resolver), the name does not
exist in DNS (`NameNotResolved`: the authority's *absence*, so "not found"), or the server could
not be asked (`ResolutionUnavailable`: connection refused, reset, TLS failure, timeout).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Final, Self

import aiohttp

from atcore.identity.errors import ResolutionUnavailable

DEFAULT_TIMEOUT: Final = 3.0


class NameNotResolved(Exception):
    """The URL's host name does not resolve (internal: resolvers turn it into a not-found)."""


@dataclass(frozen=True, slots=True)
class HttpReply:
    status: int
    body: bytes
    too_large: bool


class AsyncClosing:
    """`async with` support for the resolvers: leaving the block calls `aclose()`."""

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


class HttpClient(AsyncClosing):
    """Owns an aiohttp session unless one is passed in (then the caller closes it)."""

    def __init__(self, session: aiohttp.ClientSession | None, timeout: float) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self._session = session
        self._owns_session = session is None
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    def _get_session(self) -> aiohttp.ClientSession:
        # Created on first use, inside a running event loop, as aiohttp requires.
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def get(
        self, url: str, *, accept: str, max_bytes: int, max_redirects: int = 0
    ) -> HttpReply:
        """GET `url`; 3xx replies are returned as-is when `max_redirects` is 0."""
        try:
            async with self._get_session().get(
                url,
                headers={"Accept": accept},
                timeout=self._timeout,
                allow_redirects=max_redirects > 0,
                max_redirects=max(max_redirects, 1),
            ) as response:
                body = await response.content.read(max_bytes + 1)
                return HttpReply(response.status, body[:max_bytes], len(body) > max_bytes)
        except aiohttp.ClientConnectorDNSError as exc:
            raise NameNotResolved(str(exc)) from exc
        except aiohttp.TooManyRedirects as exc:
            raise ResolutionUnavailable(f"too many redirects from {url}") from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise ResolutionUnavailable(f"could not fetch {url}: {exc!r}") from exc

    async def aclose(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None


def is_unavailable_status(status: int) -> bool:
    """Statuses that say "ask again later" rather than "there is no such identity"."""
    return status >= 500 or status in (408, 425, 429)

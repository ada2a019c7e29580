"""Per-IP rate-limit keys see through trusted reverse proxies, and only through them."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request

from pds.ratelimit import caller_ip


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        # A public client talking to us directly: its header is ignored (no bucket shopping).
        ("8.8.4.4", "1.1.1.1", "8.8.4.4"),
        # Behind Caddy on a private network: the client it appended.
        ("172.18.0.5", "1.1.1.1", "1.1.1.1"),
        # A client-supplied entry left of the real one is skipped: right-most untrusted wins.
        ("172.18.0.5", "6.6.6.6, 1.1.1.1", "1.1.1.1"),
        # Chained proxies on private/loopback addresses are all skipped.
        ("127.0.0.1", "9.9.9.9, 10.0.0.3", "9.9.9.9"),
        ("::1", "2606:4700::1111", "2606:4700::1111"),
        # A trusted peer with no header (or only proxies in it) is itself the caller.
        ("10.0.0.2", "", "10.0.0.2"),
        ("10.0.0.2", "10.0.0.9", "10.0.0.2"),
        # Garbage entries are never trusted as proxies, so they are taken as given.
        # (Documentation ranges such as 198.51.100.0/24 count as private in `ipaddress`.)
        ("10.0.0.2", "not-an-ip", "not-an-ip"),
    ],
)
def test_caller_ip(peer: str, forwarded: str, expected: str) -> None:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    request = make_mocked_request("GET", "/xrpc/x", headers=headers).clone(remote=peer)
    assert caller_ip(request) == expected

"""PDS sources speak only for the accounts they host (CONSUMER_PDS_SOURCES).

Two PDS-like hosts share one PLC directory. An account lives on A, then migrates to B. B's
events for it before the move, and A's after it, are ignored: the DID document decides.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from atcore.identity import DidResolver
from firehose_consumer.hosting import HostGuard, canonical_endpoint
from firehose_consumer.settings import (
    ConsumerSettings,
    SettingsError,
    parse_source,
    with_pds_endpoints,
)
from tests.firehose_consumer.conftest import IndexReader, consumer_settings, eventually, running
from tests.firehose_consumer.fakenet import FakeHost, Network
from tests.firehose_consumer.test_consumer_loopback import PARIS, metric


@pytest.fixture
async def second_host() -> AsyncIterator[FakeHost]:
    host = FakeHost()
    await host.start()
    try:
        yield host
    finally:
        await host.drop_connections()
        await host.stop()


def _both_as_pds(network: Network, other: FakeHost, url: str) -> ConsumerSettings:
    sources = (parse_source(network.host.ws_url), parse_source(other.ws_url))
    marked = with_pds_endpoints(sources, f"{network.host.ws_url},{other.ws_url}")
    return consumer_settings(network, url, sources=marked)


async def _passed(reader: IndexReader, host: FakeHost, seq: int) -> bool:
    return (await reader.cursor(host.ws_url) or 0) >= seq


async def test_events_count_only_from_the_accounts_current_pds(
    network: Network, second_host: FakeHost, sqlite_url: str
) -> None:
    a, b = network.host, second_host
    repo = await network.new_repo()  # hosted at A
    first, body = repo.checkin_with_post(*PARIS, "At A")
    seq_a = await a.publish("#commit", body)
    second, replayed = repo.checkin_with_post(*PARIS, "Replayed by B")
    await b.publish("#commit", replayed)  # genuine and signed, but B does not host the DID
    seq_b = await b.account(repo.did, active=False, status="deactivated")
    reader = IndexReader(sqlite_url)
    async with running(_both_as_pds(network, b, sqlite_url)) as consumer:
        await eventually(lambda: _passed(reader, a, seq_a), "A's first check-in")
        await eventually(lambda: _passed(reader, b, seq_b), "B's foreign events")
        rows = await reader.checkins()
        assert set(rows) == {(repo.did, first)}
        assert rows[(repo.did, first)]["visible"]  # B's "deactivated" changed nothing
        assert await metric(
            consumer, "firehose_verification_failures_total", reason="wrong_host"
        ) == 1  # fmt: skip
        assert await metric(consumer, "firehose_skipped_total", reason="wrong_host") == 1

        seq_a = await a.publish("#commit", replayed)  # the same commit from its own host
        await eventually(lambda: _passed(reader, a, seq_a), "the commit from A")
        assert set(await reader.checkins()) == {(repo.did, first), (repo.did, second)}

        # The account moves to B: the directory names B, B announces it, then writes.
        await network.plc.move(repo.did, network.rotation, b.url)
        b.repos[repo.did] = repo
        await b.publish("#identity", {"did": repo.did})
        third, body = repo.checkin_with_post(*PARIS, "At B")
        seq_b = await b.publish("#commit", body)
        await eventually(lambda: _passed(reader, b, seq_b), "the first commit from B")
        # The old host deactivates its copy last and still emits a commit: both ignored.
        await a.account(repo.did, active=False, status="deactivated")
        _, stray = repo.checkin_with_post(*PARIS, "Stray from A")
        seq_a = await a.publish("#commit", stray)
        await eventually(lambda: _passed(reader, a, seq_a), "A's late events")
        rows = await reader.checkins()
        assert set(rows) == {(repo.did, first), (repo.did, second), (repo.did, third)}
        assert all(row["visible"] for row in rows.values())
        assert await metric(
            consumer, "firehose_verification_failures_total", reason="wrong_host"
        ) == 2  # fmt: skip
        assert await metric(consumer, "firehose_skipped_total", reason="wrong_host") == 2
    await reader.close()


async def test_relay_sources_are_trusted_for_every_account(
    network: Network, second_host: FakeHost, sqlite_url: str
) -> None:
    """Without CONSUMER_PDS_SOURCES a source is a relay: it carries any host's accounts."""
    repo = await network.new_repo()  # hosted at A, relayed by B
    rkey, body = repo.checkin_with_post(*PARIS, "Relayed")
    seq = await second_host.publish("#commit", body)
    sources = (parse_source(second_host.ws_url),)
    reader = IndexReader(sqlite_url)
    async with running(consumer_settings(network, sqlite_url, sources=sources)) as consumer:
        await eventually(lambda: _passed(reader, second_host, seq), "the relayed check-in")
        assert set(await reader.checkins()) == {(repo.did, rkey)}
        assert await metric(consumer, "firehose_verification_failures_total") == 0
    await reader.close()


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_forced_refreshes_are_limited_per_did(
    network: Network, second_host: FakeHost
) -> None:
    repo = await network.new_repo()
    a, b = canonical_endpoint(network.host.url), canonical_endpoint(second_host.url)
    assert a is not None
    assert b is not None
    clock = _Clock()
    async with aiohttp.ClientSession() as session:
        resolver = DidResolver(session=session, plc_url=network.plc.url, allow_http_loopback=True)
        guard = HostGuard(resolver, refresh_interval_s=60.0, clock=clock)
        assert await guard.elsewhere(repo.did, a) is None
        assert await guard.elsewhere(repo.did, b) == network.host.url  # refreshed: still A
        await network.plc.move(repo.did, network.rotation, second_host.url)
        # Refreshed moments ago: the cached document answers, however often B asks.
        assert await guard.elsewhere(repo.did, b) == network.host.url
        clock.now += 61.0
        assert await guard.elsewhere(repo.did, b) is None  # one new look finds the move
        assert await guard.elsewhere(repo.did, a) == second_host.url


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("https://pds.example", "https://pds.example"),
        ("https://PDS.Example:443/", "https://pds.example"),
        ("http://127.0.0.1:2583", "http://127.0.0.1:2583"),
        ("http://localhost:80", "http://localhost"),
        ("https://[::1]:8443", "https://[::1]:8443"),
        ("wss://relay.example", None),
        ("https://pds.example/xrpc", None),
        ("https://pds.example:99999", None),
        ("not a url", None),
    ],
)
def test_canonical_endpoint(url: str, canonical: str | None) -> None:
    assert canonical_endpoint(url) == canonical


def test_pds_sources_setting() -> None:
    env = {
        "FIREHOSE_SERVICES": "ws://pds:2583,wss://relay.example",
        "CONSUMER_PDS_SOURCES": "ws://pds:2583=https://PDS.example.com/",
    }
    pds, relay = ConsumerSettings.from_env(env).sources
    assert pds.pds_endpoint == "https://pds.example.com"
    assert relay.pds_endpoint is None
    unset = ConsumerSettings.from_env({**env, "CONSUMER_PDS_SOURCES": ""})
    assert [s.pds_endpoint for s in unset.sources] == [None, None]
    # A bare entry: the public URL is the source's own (a PDS subscribed at its public name).
    bare = {"FIREHOSE_SERVICES": "https://pds.example", "CONSUMER_PDS_SOURCES": "pds.example"}
    (source,) = ConsumerSettings.from_env(bare).sources
    assert source.pds_endpoint == "https://pds.example"


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("wss://other.example", "is not one of FIREHOSE_SERVICES"),
        ("ws://pds:2583=wss://pds.example", "not an http(s) URL"),
        ("ws://pds:2583=https://pds.example/path", "not an http(s) URL"),
        ("ftp://pds", "not a source URL"),
        ("ws://pds:2583,ws://pds:2583=https://x.example", "listed twice"),
    ],
)
def test_bad_pds_sources_name_the_variable(value: str, complaint: str) -> None:
    env = {"FIREHOSE_SERVICES": "ws://pds:2583", "CONSUMER_PDS_SOURCES": value}
    with pytest.raises(SettingsError, match="CONSUMER_PDS_SOURCES") as caught:
        ConsumerSettings.from_env(env)
    assert complaint in str(caught.value)

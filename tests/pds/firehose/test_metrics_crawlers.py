"""`/metrics` (Prometheus text) and `requestCrawl` notices to the crawlers in `PDS_CRAWLERS`.

The crawler is a stand-in relay: an aiohttp server on loopback recording what it is sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from atcore import nsids
from pds.firehose.crawlers import CrawlerConfigError, CrawlerNotifier, crawler_url
from pds.firehose.metrics import FirehoseMetrics, RateMeter
from tests.pds.firehose.support import (
    bound_socket,
    checkin,
    head_seq,
    loop_stack,
    read_stream,
    wait_for_subscribers,
)


@dataclass
class Relay:
    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
async def relay() -> AsyncIterator[Relay]:
    sock = bound_socket()
    found = Relay(f"http://127.0.0.1:{sock.getsockname()[1]}")

    async def request_crawl(request: web.Request) -> web.Response:
        found.requests.append(await request.json())
        found.arrived.set()
        return web.json_response({})

    app = web.Application()
    app.router.add_post(nsids.xrpc_path(nsids.SYNC_REQUEST_CRAWL), request_crawl)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    try:
        yield found
    finally:
        await runner.cleanup()
        sock.close()


async def scrape(url: str, http: aiohttp.ClientSession) -> dict[str, float]:
    async with http.get(url + "/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    return {
        sample.name
        + "".join(f"{{{k}={v}}}" for k, v in sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics_report_head_subscribers_events_and_frames(tmp_path: Path) -> None:
    async with loop_stack(tmp_path) as stack:
        account = await stack.create_account()
        reader = asyncio.create_task(
            read_stream(stack.http, stack.subscribe_url("cursor=0"), count=10)
        )
        await wait_for_subscribers(stack, 1, reader)
        for n in range(6):
            await stack.create_record(account, checkin(n))
        received = await reader
        head = await head_seq(stack)
        assert head == 10
        assert received.seqs() == list(range(1, 11))
        # The fanout may still be between ring and read; the database says where it must get.
        while stack.firehose.fanout.head < head:  # noqa: ASYNC110 (a sync point, not a timing)
            await asyncio.sleep(0.01)
        metrics = await scrape(stack.pds_url, stack.http)
    assert metrics["pds_sequencer_head_seq"] == head
    assert metrics["pds_firehose_events_total"] == head
    assert metrics["pds_firehose_frames_sent_total"] == 10
    assert metrics["pds_firehose_events_per_second"] > 0
    assert metrics["pds_firehose_slow_consumers_dropped_total"] == 0
    assert metrics["pds_firehose_subscribers"] in (0, 1)  # the reader is closing


async def test_metrics_want_the_operator_token_when_one_is_set(tmp_path: Path) -> None:
    async with loop_stack(tmp_path, PDS_METRICS_TOKEN="s3cret-token") as stack:
        url = stack.pds_url + "/metrics"
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-token"}):
            async with stack.http.get(url, headers=headers) as response:
                assert response.status == 401
                assert (await response.json())["error"] == "AuthenticationRequired"
        bearer = {"Authorization": "Bearer s3cret-token"}
        async with stack.http.get(url, headers=bearer) as response:
            assert response.status == 200
            assert "pds_sequencer_head_seq" in await response.text()


async def test_outbox_bounds_come_from_the_settings(tmp_path: Path) -> None:
    async with loop_stack(
        tmp_path, PDS_FIREHOSE_BUFFER_EVENTS="7", PDS_FIREHOSE_BUFFER_BYTES="65536"
    ) as stack:
        config = stack.firehose.config
        assert (config.buffer_events, config.buffer_bytes) == (7, 65536)
        subscription = stack.firehose.subscribe()
        try:
            assert (subscription.max_events, subscription.max_bytes) == (7, 65536)
        finally:
            stack.firehose.fanout.unsubscribe(subscription)


async def test_subscriber_gauge_follows_connections(tmp_path: Path) -> None:
    async with loop_stack(tmp_path) as stack, stack.http.ws_connect(stack.subscribe_url()):
        await wait_for_subscribers(stack, 1)
        assert (await scrape(stack.pds_url, stack.http))["pds_firehose_subscribers"] == 1


def test_rate_meter_averages_over_its_window() -> None:
    now = [1000.0]
    meter = RateMeter(window_seconds=10, clock=lambda: now[0])
    meter.add(30)
    now[0] += 5
    meter.add(20)
    assert meter.per_second() == 5.0
    now[0] += 6  # the first bucket leaves the window
    assert meter.per_second() == 2.0
    now[0] += 10
    assert meter.per_second() == 0.0


async def test_crawlers_hear_from_the_pds_at_startup(tmp_path: Path, relay: Relay) -> None:
    async with loop_stack(tmp_path, PDS_CRAWLERS=relay.url) as stack:
        async with asyncio.timeout(60):
            await relay.arrived.wait()
        assert relay.requests == [{"hostname": stack.settings.hostname}]
        account = await stack.create_account()
        await stack.create_record(account, checkin(1))
        metrics = await scrape(stack.pds_url, stack.http)
    # Writes within 20 minutes of the last notice send no new one.
    assert len(relay.requests) == 1
    assert metrics["pds_crawler_requests_total{outcome=ok}"] == 1


async def test_notices_after_writes_are_spaced_by_the_interval(relay: Relay) -> None:
    now = [0.0]
    metrics = FirehoseMetrics()
    async with aiohttp.ClientSession() as http:
        notifier = CrawlerNotifier(
            http, "pds.example.com", [relay.url], metrics, min_interval=1200, clock=lambda: now[0]
        )
        notifier.notify_of_update()
        notifier.notify_of_update()
        await notifier.close()
        assert len(relay.requests) == 1
        now[0] += 1199
        notifier.notify_of_update()
        await notifier.close()
        assert len(relay.requests) == 1
        now[0] += 1
        notifier.notify_of_update()
        await notifier.close()
    assert relay.requests == [{"hostname": "pds.example.com"}] * 2


async def test_an_unreachable_crawler_is_counted_and_does_not_block(relay: Relay) -> None:
    closed = bound_socket()  # bound, never listening: connections are refused
    dead = f"http://127.0.0.1:{closed.getsockname()[1]}"
    metrics = FirehoseMetrics()
    async with aiohttp.ClientSession() as http:
        notifier = CrawlerNotifier(http, "pds.example.com", [dead, relay.url], metrics)
        notifier.notify_of_update()
        await notifier.close()
    closed.close()
    assert relay.requests == [{"hostname": "pds.example.com"}]
    assert metrics.crawl_requests.labels(outcome="error")._value.get() == 1
    assert metrics.crawl_requests.labels(outcome="ok")._value.get() == 1


@pytest.mark.parametrize(
    ("entry", "url"),
    [
        ("bsky.network", "https://bsky.network/xrpc/com.atproto.sync.requestCrawl"),
        (
            "https://relay.example.com/",
            "https://relay.example.com/xrpc/com.atproto.sync.requestCrawl",
        ),
        ("http://127.0.0.1:2470", "http://127.0.0.1:2470/xrpc/com.atproto.sync.requestCrawl"),
    ],
)
def test_crawler_entries_become_request_crawl_urls(entry: str, url: str) -> None:
    assert crawler_url(entry) == url


@pytest.mark.parametrize("entry", ["ftp://relay.example.com", "https://", "https://r.example?x=1"])
def test_bad_crawler_entries_are_refused(entry: str) -> None:
    with pytest.raises(CrawlerConfigError):
        crawler_url(entry)

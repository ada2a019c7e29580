"""The createRecord workload of `pds_writes`: one account, N posts at a fixed concurrency, with a
firehose subscriber counting the commits that come back.

Everything here speaks plain XRPC over HTTP, so it drives any PDS — ours or the reference — the
same way. Latency is measured per request, from just before the request is sent to the end of
the response body, on the driver's monotonic clock; throughput is records over the wall time of
the whole phase.

Errors: `LoadError` (a `ValueError`) when a PDS refuses a request the benchmark needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp

from atcore import frames, nsids
from scripts.bench._util import percentile

POST_COLLECTION = "app.bsky.feed.post"
DELIVERY_TIMEOUT_S = 30.0


class LoadError(ValueError):
    """A PDS answered a benchmark request with an error."""


@dataclass(frozen=True)
class Account:
    did: str
    access_jwt: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_jwt}"}


@dataclass(frozen=True)
class PhaseResult:
    """One phase (or several rounds of it, merged): every request's latency, in seconds."""

    concurrency: int
    records: int
    seconds: float
    latencies: tuple[float, ...]
    delivered: int  # commit events for these writes seen on the firehose
    server_cpu_s: float  # CPU time the server process used during the phase

    @property
    def cpu_ms_per_record(self) -> float:
        return self.server_cpu_s / self.records * 1000

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies, 50) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies, 99) * 1000

    @classmethod
    def merge(cls, rounds: Sequence[PhaseResult]) -> PhaseResult:
        """Rounds of one phase as one: total records over total time, latencies pooled."""
        if not rounds or len({r.concurrency for r in rounds}) != 1:
            raise ValueError("merge needs rounds of one concurrency")
        return cls(
            concurrency=rounds[0].concurrency,
            records=sum(r.records for r in rounds),
            seconds=sum(r.seconds for r in rounds),
            latencies=tuple(x for r in rounds for x in r.latencies),
            delivered=sum(r.delivered for r in rounds),
            server_cpu_s=sum(r.server_cpu_s for r in rounds),
        )


def post_record(index: int) -> dict[str, Any]:
    """A realistic `app.bsky.feed.post`: text with a link facet, a language, a timestamp."""
    link = f"https://example.com/spots/{index}"
    text = f"Checked in at Café Lumière, Rue des Écoles — flat white and a quiet corner. {link}"
    start = len(text.encode()) - len(link.encode())
    return {
        "$type": POST_COLLECTION,
        "text": text,
        "langs": ["en"],
        "facets": [
            {
                "index": {"byteStart": start, "byteEnd": start + len(link.encode())},
                "features": [{"$type": "app.bsky.richtext.facet#link", "uri": link}],
            }
        ],
        "createdAt": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }


async def _xrpc_post(
    http: aiohttp.ClientSession,
    url: str,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    async with http.post(url, json=body, headers=headers) as response:
        payload: dict[str, Any] = await response.json(content_type=None)
        if response.status != 200:
            raise LoadError(f"{url} answered {response.status}: {payload}")
        return payload


async def create_account(http: aiohttp.ClientSession, pds_url: str) -> Account:
    label = f"bench{secrets.token_hex(5)}"
    body = {
        "handle": f"{label}.test",
        "email": f"{label}@example.com",
        "password": f"pw-{secrets.token_hex(8)}",
    }
    url = pds_url + nsids.xrpc_path(nsids.SERVER_CREATE_ACCOUNT)
    created = await _xrpc_post(http, url, body)
    return Account(did=created["did"], access_jwt=created["accessJwt"])


class FirehoseCounter:
    """A subscriber on `subscribeRepos` (live tail) noting the records one account's `#commit`
    frames create, by repo path (`collection/rkey`), so each write is matched to its event."""

    def __init__(self, did: str) -> None:
        self.did = did
        self.created: set[str] = set()
        self._changed = asyncio.Condition()

    async def consume(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            if message.type != aiohttp.WSMsgType.BINARY:
                continue
            frame = frames.decode(message.data)
            if isinstance(frame, frames.ErrorFrame):
                raise LoadError(f"firehose error frame: {frame.error} {frame.message}")
            if frame.type == "#commit" and frame.body.get("repo") == self.did:
                paths = [op["path"] for op in frame.body["ops"] if op["action"] == "create"]
                async with self._changed:
                    self.created.update(paths)
                    self._changed.notify_all()

    async def delivered(self, paths: set[str]) -> int:
        """How many of `paths` arrived, waiting up to `DELIVERY_TIMEOUT_S` for all of them."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DELIVERY_TIMEOUT_S), self._changed:
                await self._changed.wait_for(lambda: paths <= self.created)
        return len(paths & self.created)


@contextlib.asynccontextmanager
async def firehose_subscriber(
    http: aiohttp.ClientSession, pds_url: str, did: str
) -> AsyncIterator[FirehoseCounter]:
    """Attach a subscriber for the duration of the block."""
    url = pds_url.replace("http", "ws", 1) + nsids.xrpc_path(nsids.SYNC_SUBSCRIBE_REPOS)
    counter = FirehoseCounter(did)
    async with http.ws_connect(url, max_msg_size=0, autoping=True) as ws:
        task = asyncio.create_task(counter.consume(ws))
        try:
            yield counter
        finally:
            task.cancel()
            (outcome,) = await asyncio.gather(task, return_exceptions=True)
            if isinstance(outcome, Exception):
                raise LoadError(f"firehose subscriber failed: {outcome!r}") from outcome


async def write_phase(
    http: aiohttp.ClientSession,
    pds_url: str,
    account: Account,
    counter: FirehoseCounter,
    server_cpu: Callable[[], float],
    *,
    records: int,
    concurrency: int,
    first_index: int = 0,
) -> PhaseResult:
    """`records` createRecord calls from `concurrency` workers sharing one queue of posts.

    `server_cpu` reads the server's CPU clock (seconds), sampled at both ends of the phase."""
    url = pds_url + nsids.xrpc_path(nsids.REPO_CREATE_RECORD)
    indices: Iterator[int] = iter(range(first_index, first_index + records))
    latencies: list[float] = []
    written: set[str] = set()

    async def worker() -> None:
        for index in indices:  # one iterator shared by all workers: each post is sent once
            body = {
                "repo": account.did,
                "collection": POST_COLLECTION,
                "record": post_record(index),
            }
            sent = time.perf_counter()
            created = await _xrpc_post(http, url, body, account.headers)
            latencies.append(time.perf_counter() - sent)
            written.add(_repo_path(created["uri"]))

    cpu_before, started = server_cpu(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds, cpu = time.perf_counter() - started, server_cpu() - cpu_before
    delivered = await counter.delivered(written)
    return PhaseResult(
        concurrency=concurrency,
        records=records,
        seconds=seconds,
        latencies=tuple(latencies),
        delivered=delivered,
        server_cpu_s=cpu,
    )


def _repo_path(uri: str) -> str:
    """`at://did/collection/rkey` -> `collection/rkey`, the path a commit op names."""
    collection, rkey = uri.removeprefix("at://").split("/")[1:3]
    return f"{collection}/{rkey}"

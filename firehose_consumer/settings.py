"""Consumer configuration, read once from the environment into a frozen value.

Variables (defaults in brackets):

- FIREHOSE_SERVICES (required): comma-separated ws(s)/http(s) URLs or host names;
- DATABASE_URL [sqlite+aiosqlite:///./data/index.sqlite]: the index;
- DID_PLC_URL [https://plc.directory];
- CONSUMER_START_CURSOR [none: live]: where a source with no stored cursor starts (`0` = the
  host's whole backfill window, right for a fresh index of our own PDS);
- CONSUMER_METRICS_PORT [9102; `off` disables, 0 picks a free port], CONSUMER_METRICS_HOST
  [127.0.0.1]: /metrics and /health;
- CONSUMER_DEV_MODE [false]: allow plain http to loopback PDS and did:web hosts;
- CONSUMER_VERIFY_SIGNATURES [true];
- CONSUMER_RECEIVE_TIMEOUT [60 s]: stall detection; CONSUMER_RECONNECT_MAX [60 s]: backoff cap;
- CONSUMER_QUEUE_FRAMES [10000], CONSUMER_QUEUE_BYTES [256 MiB]: the frame queue's bounds;
- CONSUMER_PAUSE_GRACE [2 s]: how long a reader waits on a full queue before disconnecting;
- CONSUMER_MAX_INFLIGHT [20000]: events being processed before the queue stops draining;
- CONSUMER_BATCH_EVENTS [2000], CONSUMER_BATCH_DELAY [0.05 s]: write batches;
- CONSUMER_MAX_FRAME_BYTES [5000000]: the per-frame limit;
- CONSUMER_LEXICON_DIR [the repository's lexicons/]: record validation;
- CONSUMER_RESYNC_NEW_REPOS [true]: `getRepo` a repo first seen mid-history;
- CONSUMER_BACKFILL_ON_OUTDATED [true]: `listRepos` + `getRepo` after `#info OutdatedCursor`;
- CONSUMER_RESYNC_CONCURRENCY [4]: parallel `getRepo` fetches;
- CONSUMER_PDS_SOURCES [none]: comma-separated `source=public URL` (or a bare `source` when the
  two are the same) for the FIREHOSE_SERVICES that are PDSes rather than relays: `#commit`,
  `#sync` and `#account` events from such a source count only for DIDs whose document names that
  public URL as their PDS (see `firehose_consumer.hosting`);
- CONSUMER_PARTITION [0/1: everything]: `i/n` indexes only the repos whose DID hashes to `i` of
  `n` (see `firehose_consumer.partition`); run n processes, 0/n .. n-1/n, on one index.

Errors: `SettingsError` (a `ValueError`) naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from atcore.index.engine import DEFAULT_URL, IndexDatabaseError, parse_database_url
from atcore.nsids import SYNC_SUBSCRIBE_REPOS
from firehose_consumer.hosting import canonical_endpoint
from firehose_consumer.partition import WHOLE, Partition, PartitionError

DEFAULT_PLC_URL: Final = "https://plc.directory"
DEFAULT_LEXICON_DIR: Final = Path(__file__).resolve().parent.parent / "lexicons"
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})


class SettingsError(ValueError):
    """An environment variable with an unusable value."""


@dataclass(frozen=True, slots=True)
class Source:
    """One subscribeRepos service: its cursor key, WebSocket URL and HTTP base.

    `pds_endpoint` is set for a PDS (not a relay): the canonical public URL its accounts' DID
    documents name, against which its events are checked.
    """

    name: str  # canonical: scheme://host[:port] with ws/wss
    http_base: str
    pds_endpoint: str | None = None

    @property
    def subscribe_url(self) -> str:
        return f"{self.name}/xrpc/{SYNC_SUBSCRIBE_REPOS}"


def parse_source(text: str) -> Source:
    """`wss://bsky.network`, `https://pds.example`, `http://127.0.0.1:2583` or a bare host."""
    value = text.strip().rstrip("/")
    if "://" not in value:
        value = f"wss://{value}"
    parts = urlsplit(value)
    secure = {"wss": True, "https": True, "ws": False, "http": False}.get(parts.scheme)
    if secure is None or not parts.hostname:
        raise SettingsError(f"FIREHOSE_SERVICES: not a ws(s)/http(s) URL: {text!r}")
    if parts.path not in ("", "/") or parts.query:
        raise SettingsError(f"FIREHOSE_SERVICES: give the service root, not a path: {text!r}")
    netloc = parts.netloc.lower()
    return Source(
        name=f"{'wss' if secure else 'ws'}://{netloc}",
        http_base=f"{'https' if secure else 'http'}://{netloc}",
    )


def with_pds_endpoints(sources: tuple[Source, ...], spec: str) -> tuple[Source, ...]:
    """Mark the sources CONSUMER_PDS_SOURCES names as PDSes with their public URLs."""
    by_name = {source.name: source for source in sources}
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        source_text, _, public = item.partition("=")
        try:
            source = parse_source(source_text)
        except SettingsError:
            raise SettingsError(f"CONSUMER_PDS_SOURCES: not a source URL: {item!r}") from None
        if source.name not in by_name:
            raise SettingsError(
                f"CONSUMER_PDS_SOURCES: {source_text.strip()!r} is not one of FIREHOSE_SERVICES"
            )
        endpoint = canonical_endpoint(public if public.strip() else source.http_base)
        if endpoint is None:
            raise SettingsError(f"CONSUMER_PDS_SOURCES: not an http(s) URL: {public.strip()!r}")
        if by_name[source.name].pds_endpoint is not None:
            raise SettingsError(f"CONSUMER_PDS_SOURCES: {source.name} is listed twice")
        by_name[source.name] = replace(by_name[source.name], pds_endpoint=endpoint)
    return tuple(by_name[source.name] for source in sources)


@dataclass(frozen=True, slots=True)
class ConsumerSettings:
    sources: tuple[Source, ...]
    database_url: str = DEFAULT_URL
    did_plc_url: str = DEFAULT_PLC_URL
    start_cursor: int | None = None
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = 9102
    dev_mode: bool = False
    verify_signatures: bool = True
    receive_timeout_s: float = 60.0
    reconnect_base_s: float = 0.5
    reconnect_max_s: float = 60.0
    queue_max_frames: int = 10_000
    queue_max_bytes: int = 256 * 1024 * 1024
    pause_grace_s: float = 2.0
    max_inflight: int = 20_000
    batch_max_events: int = 2000
    batch_max_delay_s: float = 0.05
    max_frame_bytes: int = 5_000_000
    lexicon_dir: Path = DEFAULT_LEXICON_DIR
    resync_new_repos: bool = True
    backfill_on_outdated: bool = True
    resync_concurrency: int = 4
    partition: Partition = WHOLE

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ConsumerSettings:
        env = os.environ if env is None else env
        raw = env.get("FIREHOSE_SERVICES", "")
        sources = tuple(parse_source(item) for item in raw.split(",") if item.strip())
        if not sources:
            raise SettingsError("FIREHOSE_SERVICES: give at least one subscribeRepos service")
        if len({s.name for s in sources}) != len(sources):
            raise SettingsError("FIREHOSE_SERVICES: a service is listed twice")
        sources = with_pds_endpoints(sources, env.get("CONSUMER_PDS_SOURCES", ""))
        database_url = env.get("DATABASE_URL", DEFAULT_URL)
        try:
            parse_database_url(database_url)
        except (IndexDatabaseError, ValueError) as exc:
            raise SettingsError(f"DATABASE_URL: {exc}") from exc
        return cls(
            sources=sources,
            database_url=database_url,
            did_plc_url=env.get("DID_PLC_URL", DEFAULT_PLC_URL).rstrip("/"),
            start_cursor=_cursor(env, "CONSUMER_START_CURSOR"),
            metrics_host=env.get("CONSUMER_METRICS_HOST", "127.0.0.1"),
            metrics_port=_port(env, "CONSUMER_METRICS_PORT", 9102),
            dev_mode=_flag(env, "CONSUMER_DEV_MODE", False),
            verify_signatures=_flag(env, "CONSUMER_VERIFY_SIGNATURES", True),
            receive_timeout_s=_number(env, "CONSUMER_RECEIVE_TIMEOUT", 60.0),
            reconnect_max_s=_number(env, "CONSUMER_RECONNECT_MAX", 60.0),
            queue_max_frames=int(_number(env, "CONSUMER_QUEUE_FRAMES", 10_000)),
            queue_max_bytes=int(_number(env, "CONSUMER_QUEUE_BYTES", 256 * 1024 * 1024)),
            pause_grace_s=_number(env, "CONSUMER_PAUSE_GRACE", 2.0),
            max_inflight=int(_number(env, "CONSUMER_MAX_INFLIGHT", 20_000)),
            batch_max_events=int(_number(env, "CONSUMER_BATCH_EVENTS", 2000)),
            batch_max_delay_s=_number(env, "CONSUMER_BATCH_DELAY", 0.05),
            max_frame_bytes=int(_number(env, "CONSUMER_MAX_FRAME_BYTES", 5_000_000)),
            lexicon_dir=Path(env.get("CONSUMER_LEXICON_DIR", str(DEFAULT_LEXICON_DIR))),
            resync_new_repos=_flag(env, "CONSUMER_RESYNC_NEW_REPOS", True),
            backfill_on_outdated=_flag(env, "CONSUMER_BACKFILL_ON_OUTDATED", True),
            resync_concurrency=int(_number(env, "CONSUMER_RESYNC_CONCURRENCY", 4)),
            partition=_partition(env, "CONSUMER_PARTITION"),
        )


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = env.get(name)
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise SettingsError(f"{name}: expected true/false, got {value!r}")


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    value = env.get(name)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise SettingsError(f"{name}: not a number: {value!r}") from None
    if number <= 0:
        raise SettingsError(f"{name}: must be positive")
    return number


def _cursor(env: Mapping[str, str], name: str) -> int | None:
    value = env.get(name, "").strip()
    if not value:
        return None
    if not value.isdigit():
        raise SettingsError(f"{name}: not a non-negative integer: {value!r}")
    return int(value)


def _partition(env: Mapping[str, str], name: str) -> Partition:
    value = env.get(name, "").strip()
    if not value:
        return WHOLE
    try:
        return Partition.parse(value)
    except PartitionError as exc:
        raise SettingsError(f"{name}: {exc}") from None


def _port(env: Mapping[str, str], name: str, default: int) -> int | None:
    value = env.get(name)
    if value is None or value == "":
        return default
    if value.strip().lower() in ("off", "false", "no"):
        return None
    if not value.isdigit() or int(value) > 65535:
        raise SettingsError(f"{name}: not a port number: {value!r}")
    return int(value)

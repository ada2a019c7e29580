"""The feed generator's one frozen settings object, built from environment variables.

- `FEEDGEN_PORT` (3000), `FEEDGEN_LISTENHOST` (127.0.0.1): where to listen.
- `FEEDGEN_HOSTNAME` (localhost): the public host name, for the did:web and the endpoint.
- `FEEDGEN_PUBLIC_URL` (`https://<hostname>`): the `#bsky_fg` service endpoint.
- `FEEDGEN_SERVICE_DID` (`did:web:<hostname>`): our service DID, a did:web or a did:plc.
- `FEEDGEN_PUBLISHER_DID` (the service DID): the account whose repo holds the feed records.
- `DATABASE_URL` (`sqlite+aiosqlite:///./data/index.sqlite`): the index, opened read only.
- `FEEDGEN_DID_PLC_URL` (https://plc.directory): where viewers' did:plc documents come from.
- `FEEDGEN_DEV_MODE` (true on loopback hosts): resolve loopback did:web over plain HTTP.
- `FEEDGEN_FRESHNESS_HOURS` (720 = 30 days): only check-ins younger than this are served.
- `FEEDGEN_BAND_PENALTIES` (`strict`): or three hour values, the handicap of bands 1, 2, 3
  (a far check-in that much newer than a near one is ranked above it).
- `FEEDGEN_PAGE_CACHE_SECONDS` (2; 0 disables): lifetime of cached first pages.
- `FEEDGEN_WORKERS` (1): server processes sharing the port (`SO_REUSEPORT`); each has its own
  caches and metrics. One process runs Python on one core at a time: use one per core.
- `FEEDGEN_DB_THREADS` (the number of CPUs, at most 8): SQLite reads run on the event loop;
  these threads only wait out a locked database (`feedgen.db.sqlite_reader`). (PostgreSQL uses
  a pool of 8 connections.)
- `FEEDGEN_REGION_FEEDS` (none): extra fixed-anchor feeds, `rkey=lat,lon;rkey2=lat,lon`.
- `FEEDGEN_PRIVACY_POLICY_URL`, `FEEDGEN_TERMS_OF_SERVICE_URL`: describeFeedGenerator links.

On loopback hosts (`localhost`, `127.0.0.1`) the defaults describe a local stack: the did:web
carries the port (`did:web:localhost%3A3000`) and the endpoint is plain `http://`.

Errors: `SettingsError(ValueError)` naming the variable.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from atcore.identity.resolver import DEFAULT_PLC_URL, is_loopback_host
from atcore.syntax import Did, InvalidSyntax, RecordKey, parse_did, parse_record_key

DEFAULT_PORT: Final = 3000
DEFAULT_DATABASE_URL: Final = "sqlite+aiosqlite:///./data/index.sqlite"
DEFAULT_FRESHNESS_HOURS: Final = 720.0
DEFAULT_PAGE_CACHE_SECONDS: Final = 2.0
HOUR_MS: Final = 3_600_000
NEARBY_FEED_RKEY: Final = "nearby"
MAX_DEFAULT_THREADS: Final = 8
BAND_PENALTY_COUNT: Final = 3  # bands 1..3; band 0 is the reference and carries no handicap


class SettingsError(ValueError):
    """An environment variable is missing or malformed."""


@dataclass(frozen=True, slots=True)
class RegionFeed:
    """A feed ranked around a fixed point (a city or region) instead of the viewer."""

    rkey: RecordKey
    lat_e6: int
    lon_e6: int


@dataclass(frozen=True)
class FeedgenSettings:
    port: int
    listen_host: str
    hostname: str
    public_url: str
    service_did: Did
    publisher_did: Did
    database_url: str
    did_plc_url: str
    dev_mode: bool
    freshness_window_ms: int
    band_penalties_ms: tuple[int, ...] | None  # None = strict banding
    page_cache_seconds: float
    db_threads: int
    workers: int
    region_feeds: tuple[RegionFeed, ...] = ()
    privacy_policy_url: str | None = None
    terms_of_service_url: str | None = None
    # When set, /metrics wants `Authorization: Bearer <token>` (it shares the public port).
    metrics_token: str | None = field(default=None, repr=False)

    @property
    def uses_did_web(self) -> bool:
        return self.service_did.startswith("did:web:")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> FeedgenSettings:
        env = dict(os.environ if env is None else env)
        port = _int(env, "FEEDGEN_PORT", DEFAULT_PORT, low=1, high=65535)
        hostname = env.get("FEEDGEN_HOSTNAME") or "localhost"
        loopback = is_loopback_host(hostname)
        service_did = _did(env, "FEEDGEN_SERVICE_DID") or _did_web(hostname, port, loopback)
        public_url = env.get("FEEDGEN_PUBLIC_URL") or (
            f"http://{hostname}:{port}" if loopback else f"https://{hostname}"
        )
        return cls(
            port=port,
            listen_host=env.get("FEEDGEN_LISTENHOST") or "127.0.0.1",
            hostname=hostname,
            public_url=public_url.rstrip("/"),
            service_did=service_did,
            publisher_did=_did(env, "FEEDGEN_PUBLISHER_DID") or service_did,
            database_url=env.get("DATABASE_URL") or DEFAULT_DATABASE_URL,
            did_plc_url=(env.get("FEEDGEN_DID_PLC_URL") or DEFAULT_PLC_URL).rstrip("/"),
            dev_mode=_bool(env, "FEEDGEN_DEV_MODE", loopback),
            freshness_window_ms=_hours_ms(env, "FEEDGEN_FRESHNESS_HOURS", DEFAULT_FRESHNESS_HOURS),
            band_penalties_ms=_band_penalties(env.get("FEEDGEN_BAND_PENALTIES", "")),
            page_cache_seconds=_float(
                env, "FEEDGEN_PAGE_CACHE_SECONDS", DEFAULT_PAGE_CACHE_SECONDS
            ),
            db_threads=_int(env, "FEEDGEN_DB_THREADS", _default_threads(), low=1, high=64),
            workers=_int(env, "FEEDGEN_WORKERS", 1, low=1, high=64),
            region_feeds=_region_feeds(env.get("FEEDGEN_REGION_FEEDS", "")),
            privacy_policy_url=env.get("FEEDGEN_PRIVACY_POLICY_URL") or None,
            terms_of_service_url=env.get("FEEDGEN_TERMS_OF_SERVICE_URL") or None,
            metrics_token=env.get("FEEDGEN_METRICS_TOKEN") or None,
        )


def _default_threads() -> int:
    return max(1, min(MAX_DEFAULT_THREADS, os.cpu_count() or 2))


def _did_web(hostname: str, port: int, loopback: bool) -> Did:
    # did:web encodes a port as %3A; only loopback stacks run on a non-default port.
    return Did(f"did:web:{hostname}%3A{port}" if loopback else f"did:web:{hostname}")


def _did(env: Mapping[str, str], name: str) -> Did | None:
    raw = env.get(name)
    if not raw:
        return None
    try:
        did = parse_did(raw)
    except InvalidSyntax as exc:
        raise SettingsError(f"{name} is not a valid DID: {raw!r}") from exc
    if did.method not in ("plc", "web"):
        raise SettingsError(f"{name} must be a did:plc or did:web, got {raw!r}")
    return did


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _int(env: Mapping[str, str], name: str, default: int, *, low: int, high: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from exc
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    return _non_negative(raw, name)


def _non_negative(raw: str, name: str) -> float:
    try:
        value = float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from exc
    if not math.isfinite(value) or value < 0:
        raise SettingsError(f"{name} must be a finite number >= 0, got {raw!r}")
    return value


def _hours_ms(env: Mapping[str, str], name: str, default: float) -> int:
    hours = _float(env, name, default)
    if hours <= 0:
        raise SettingsError(f"{name} must be positive")
    return round(hours * HOUR_MS)


def _band_penalties(raw: str) -> tuple[int, ...] | None:
    """`strict` (or empty) -> None; otherwise three non-decreasing hour values for bands 1..3."""
    text = raw.strip().lower()
    if text in ("", "strict"):
        return None
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != BAND_PENALTY_COUNT:
        raise SettingsError(
            f"FEEDGEN_BAND_PENALTIES needs {BAND_PENALTY_COUNT} comma-separated hour values "
            f"(bands 1, 2, 3) or 'strict', got {raw!r}"
        )
    hours = [_non_negative(p, "FEEDGEN_BAND_PENALTIES") for p in parts]
    penalties = (0, *(round(h * HOUR_MS) for h in hours))
    if any(a > b for a, b in itertools.pairwise(penalties)):
        raise SettingsError("FEEDGEN_BAND_PENALTIES must not decrease from band to band")
    return penalties


def _region_feeds(raw: str) -> tuple[RegionFeed, ...]:
    """`rkey=lat,lon;rkey2=lat,lon` (decimal degrees) -> region feeds; rkeys must be unique."""
    feeds: list[RegionFeed] = []
    for entry in filter(None, (e.strip() for e in raw.split(";"))):
        rkey, sep, coords = entry.partition("=")
        lat_text, comma, lon_text = coords.partition(",")
        if not sep or not comma:
            raise SettingsError(f"FEEDGEN_REGION_FEEDS entry must be rkey=lat,lon: {entry!r}")
        try:
            feed = RegionFeed(
                rkey=parse_record_key(rkey.strip()),
                lat_e6=_microdegrees(lat_text, 90),
                lon_e6=_microdegrees(lon_text, 180),
            )
        except (InvalidSyntax, ValueError) as exc:
            raise SettingsError(f"FEEDGEN_REGION_FEEDS entry {entry!r}: {exc}") from exc
        feeds.append(feed)
    rkeys = [f.rkey for f in feeds]
    if len(set(rkeys)) != len(rkeys) or NEARBY_FEED_RKEY in rkeys:
        raise SettingsError("FEEDGEN_REGION_FEEDS rkeys must be unique and not 'nearby'")
    return tuple(feeds)


def _microdegrees(text: str, limit: int) -> int:
    value = float(text.strip())
    if not math.isfinite(value) or abs(value) > limit:
        raise ValueError(f"coordinate {text.strip()!r} is outside [-{limit}, {limit}]")
    return round(value * 1_000_000)

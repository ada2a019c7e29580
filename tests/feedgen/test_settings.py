"""FeedgenSettings.from_env: defaults, local-stack defaults, explicit values and every refusal."""

from __future__ import annotations

import pytest

from atcore.syntax import RecordKey
from feedgen.settings import HOUR_MS, FeedgenSettings, RegionFeed, SettingsError


def test_loopback_defaults_describe_a_local_stack() -> None:
    settings = FeedgenSettings.from_env({})
    assert settings.port == 3000
    assert settings.listen_host == "127.0.0.1"
    assert settings.service_did == "did:web:localhost%3A3000"
    assert settings.publisher_did == settings.service_did
    assert settings.public_url == "http://localhost:3000"
    assert settings.dev_mode is True
    assert settings.uses_did_web
    assert settings.band_penalties_ms is None
    assert settings.freshness_window_ms == 720 * HOUR_MS
    assert settings.database_url.startswith("sqlite+aiosqlite:///")


def test_public_host_defaults() -> None:
    settings = FeedgenSettings.from_env(
        {"FEEDGEN_HOSTNAME": "feed.example.com", "FEEDGEN_PORT": "8080"}
    )
    assert settings.service_did == "did:web:feed.example.com"
    assert settings.public_url == "https://feed.example.com"
    assert settings.dev_mode is False


def test_explicit_values() -> None:
    settings = FeedgenSettings.from_env(
        {
            "FEEDGEN_PORT": "3100",
            "FEEDGEN_LISTENHOST": "0.0.0.0",
            "FEEDGEN_HOSTNAME": "feed.example.com",
            "FEEDGEN_SERVICE_DID": "did:plc:ewvi7nxzyoun6zhxrhs64oiz",
            "FEEDGEN_PUBLISHER_DID": "did:plc:abcdefghijklmnopqrstuvwx",
            "DATABASE_URL": "postgresql://db/index",
            "FEEDGEN_DID_PLC_URL": "http://127.0.0.1:2582/",
            "FEEDGEN_FRESHNESS_HOURS": "48",
            "FEEDGEN_BAND_PENALTIES": "1, 6.5, 24",
            "FEEDGEN_PAGE_CACHE_SECONDS": "0",
            "FEEDGEN_REGION_FEEDS": "paris=48.8566,2.3522; tokyo=35.6762,139.6503",
            "FEEDGEN_PRIVACY_POLICY_URL": "https://feed.example.com/privacy",
            "FEEDGEN_WORKERS": "3",
            "FEEDGEN_DB_THREADS": "5",
        }
    )
    assert settings.workers == 3
    assert settings.db_threads == 5
    assert settings.port == 3100
    assert settings.listen_host == "0.0.0.0"
    assert settings.service_did == "did:plc:ewvi7nxzyoun6zhxrhs64oiz"
    assert not settings.uses_did_web
    assert settings.publisher_did == "did:plc:abcdefghijklmnopqrstuvwx"
    assert settings.database_url == "postgresql://db/index"
    assert settings.did_plc_url == "http://127.0.0.1:2582"
    assert settings.freshness_window_ms == 48 * HOUR_MS
    assert settings.band_penalties_ms == (0, HOUR_MS, int(6.5 * HOUR_MS), 24 * HOUR_MS)
    assert settings.page_cache_seconds == 0
    assert settings.region_feeds == (
        RegionFeed(RecordKey("paris"), 48_856_600, 2_352_200),
        RegionFeed(RecordKey("tokyo"), 35_676_200, 139_650_300),
    )
    assert settings.privacy_policy_url == "https://feed.example.com/privacy"
    assert settings.terms_of_service_url is None


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("FEEDGEN_PORT", "http", "FEEDGEN_PORT"),
        ("FEEDGEN_PORT", "70000", "FEEDGEN_PORT"),
        ("FEEDGEN_SERVICE_DID", "not-a-did", "FEEDGEN_SERVICE_DID"),
        (
            "FEEDGEN_SERVICE_DID",
            "did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme",
            "did:plc or did:web",
        ),
        ("FEEDGEN_PUBLISHER_DID", "did:example:x", "did:plc or did:web"),
        ("FEEDGEN_DEV_MODE", "maybe", "FEEDGEN_DEV_MODE"),
        ("FEEDGEN_WORKERS", "0", "FEEDGEN_WORKERS"),
        ("FEEDGEN_DB_THREADS", "many", "FEEDGEN_DB_THREADS"),
        ("FEEDGEN_FRESHNESS_HOURS", "0", "positive"),
        ("FEEDGEN_FRESHNESS_HOURS", "nan", "finite"),
        ("FEEDGEN_BAND_PENALTIES", "1,2", "3 comma-separated"),
        ("FEEDGEN_BAND_PENALTIES", "5,1,9", "must not decrease"),
        ("FEEDGEN_BAND_PENALTIES", "1,-2,9", ">= 0"),
        ("FEEDGEN_PAGE_CACHE_SECONDS", "-1", ">= 0"),
        ("FEEDGEN_REGION_FEEDS", "paris", "rkey=lat,lon"),
        ("FEEDGEN_REGION_FEEDS", "paris=91,2", "outside"),
        ("FEEDGEN_REGION_FEEDS", "paris=1,2;paris=3,4", "unique"),
        ("FEEDGEN_REGION_FEEDS", "nearby=1,2", "unique"),
        ("FEEDGEN_REGION_FEEDS", "a/b=1,2", "a/b"),
    ],
)
def test_malformed_values_are_refused(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        FeedgenSettings.from_env({name: value})

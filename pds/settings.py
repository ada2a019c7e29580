"""The PDS's one frozen settings object, built from environment variables in `__main__`.

Names follow the reference TypeScript PDS (`PDS_*`). In dev mode (`PDS_DEV_MODE=true`, the default
for the embedded stack) missing secrets are generated once and persisted under the data directory,
so restarts keep the same JWT secret, admin password and PLC rotation key.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from atcore.crypto import K256Keypair

DEFAULT_PORT = 2583
DEFAULT_PLC_URL = "http://localhost:2582"
DEFAULT_BLOB_UPLOAD_LIMIT = 100 * 1024 * 1024
# Service proxying, as the reference PDS (timeouts in milliseconds).
DEFAULT_PROXY_HEADERS_TIMEOUT_MS = 10_000
DEFAULT_PROXY_BODY_TIMEOUT_MS = 30_000
DEFAULT_PROXY_MAX_RESPONSE_SIZE = 10 * 1024 * 1024
DEFAULT_BACKFILL_WINDOW_HOURS = 72
# Firehose history older than the backfill window is deleted this often (0: never).
DEFAULT_SEQUENCER_PRUNE_INTERVAL_SECONDS = 3600
# One subscriber's outbox: how far it may fall behind the live stream before ConsumerTooSlow.
DEFAULT_FIREHOSE_BUFFER_EVENTS = 5000
DEFAULT_FIREHOSE_BUFFER_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_REPO_IMPORT_SIZE = 100 * 1024 * 1024  # bytes of CAR one importRepo may carry
SECRETS_FILE = "secrets.json"


class SettingsError(ValueError):
    """An environment variable is missing or malformed."""


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from exc


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    value = _int(env, name, default)
    if value <= 0:
        raise SettingsError(f"{name} must be positive, got {value}")
    return value


def _non_negative_int(env: Mapping[str, str], name: str, default: int) -> int:
    value = _int(env, name, default)
    if value < 0:
        raise SettingsError(f"{name} must be zero or positive, got {value}")
    return value


def _url(env: Mapping[str, str], name: str) -> str | None:
    """An optional absolute http(s) URL."""
    raw = env.get(name)
    if not raw:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise SettingsError(f"{name} must be an http(s) URL, got {raw!r}")
    return raw


def _email(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name)
    if not raw:
        return None
    local, at, domain = raw.partition("@")
    if not (local and at and domain) or any(c.isspace() for c in raw):
        raise SettingsError(f"{name} must be an email address, got {raw!r}")
    return raw


def _list(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = env.get(name)
    if raw is None:
        return default
    return tuple(item.strip() for item in raw.split(",") if item.strip())


@dataclass(frozen=True)
class PdsSettings:
    hostname: str
    port: int
    bind_host: str
    public_url: str
    data_directory: Path
    service_did: str
    service_handle_domains: tuple[str, ...]
    jwt_secret: str
    admin_password: str
    plc_rotation_key_hex: str
    did_plc_url: str
    bsky_app_view_url: str | None
    bsky_app_view_did: str | None
    blob_upload_limit: int
    blobstore_disk_location: Path | None
    blobstore_env: Mapping[str, str] = field(repr=False)
    invite_required: bool = False
    rate_limits_enabled: bool = False
    dev_mode: bool = False
    crawlers: tuple[str, ...] = ()
    backfill_window_hours: int = DEFAULT_BACKFILL_WINDOW_HOURS
    sequencer_prune_interval_seconds: int = DEFAULT_SEQUENCER_PRUNE_INTERVAL_SECONDS
    firehose_buffer_events: int = DEFAULT_FIREHOSE_BUFFER_EVENTS
    firehose_buffer_bytes: int = DEFAULT_FIREHOSE_BUFFER_BYTES
    # Account migration into this PDS (com.atproto.repo.importRepo).
    accepting_repo_imports: bool = True
    max_repo_import_size: int = DEFAULT_MAX_REPO_IMPORT_SIZE
    # describeServer `links` / `contact`
    privacy_policy_url: str | None = None
    terms_of_service_url: str | None = None
    contact_email_address: str | None = None
    # Service proxying: wait for response headers, then for each read of the body (ms).
    proxy_headers_timeout_ms: int = DEFAULT_PROXY_HEADERS_TIMEOUT_MS
    proxy_body_timeout_ms: int = DEFAULT_PROXY_BODY_TIMEOUT_MS
    proxy_max_response_size: int = DEFAULT_PROXY_MAX_RESPONSE_SIZE
    # When set, /metrics wants `Authorization: Bearer <token>` (it shares the public port).
    metrics_token: str | None = field(default=None, repr=False)

    @property
    def plc_rotation_keypair(self) -> K256Keypair:
        return K256Keypair.from_hex(self.plc_rotation_key_hex)

    @property
    def sqlite_path(self) -> Path:
        return self.data_directory / "pds.sqlite"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PdsSettings:
        env = dict(os.environ if env is None else env)
        dev_mode = _bool(env, "PDS_DEV_MODE", False)
        port = _int(env, "PDS_PORT", DEFAULT_PORT)
        hostname = env.get("PDS_HOSTNAME") or ("localhost" if dev_mode else "")
        if not hostname:
            raise SettingsError("PDS_HOSTNAME is required outside dev mode")
        data_dir = Path(env.get("PDS_DATA_DIRECTORY") or "./data/pds")
        found = _secrets(env, data_dir, dev_mode)
        public_url = env.get("PDS_PUBLIC_URL") or (
            f"http://{hostname}:{port}" if dev_mode else f"https://{hostname}"
        )
        blob_dir = env.get("PDS_BLOBSTORE_DISK_LOCATION")
        if not blob_dir and not env.get("PDS_BLOBSTORE_S3_BUCKET"):
            blob_dir = str(data_dir / "blocks")
        default_domains = (".test",) if dev_mode else (f".{hostname}",)
        return cls(
            hostname=hostname,
            port=port,
            bind_host=env.get("PDS_BIND_HOST") or ("127.0.0.1" if dev_mode else "0.0.0.0"),  # noqa: S104
            public_url=public_url.rstrip("/"),
            data_directory=data_dir,
            service_did=env.get("PDS_SERVICE_DID") or _did_web(hostname, port, dev_mode),
            service_handle_domains=_list(env, "PDS_SERVICE_HANDLE_DOMAINS", default_domains),
            jwt_secret=found["PDS_JWT_SECRET"],
            admin_password=found["PDS_ADMIN_PASSWORD"],
            plc_rotation_key_hex=found["PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX"],
            did_plc_url=(env.get("PDS_DID_PLC_URL") or DEFAULT_PLC_URL).rstrip("/"),
            bsky_app_view_url=env.get("PDS_BSKY_APP_VIEW_URL") or None,
            bsky_app_view_did=env.get("PDS_BSKY_APP_VIEW_DID") or None,
            blob_upload_limit=_int(env, "PDS_BLOB_UPLOAD_LIMIT", DEFAULT_BLOB_UPLOAD_LIMIT),
            blobstore_disk_location=Path(blob_dir) if blob_dir else None,
            blobstore_env={k: v for k, v in env.items() if k.startswith("PDS_BLOBSTORE_")},
            invite_required=_bool(env, "PDS_INVITE_REQUIRED", False),
            rate_limits_enabled=_bool(env, "PDS_RATE_LIMITS_ENABLED", not dev_mode),
            dev_mode=dev_mode,
            crawlers=_list(env, "PDS_CRAWLERS", ()),
            # Never negative: the pruner deletes history older than this window.
            backfill_window_hours=_non_negative_int(
                env, "PDS_SEQUENCER_BACKFILL_HOURS", DEFAULT_BACKFILL_WINDOW_HOURS
            ),
            sequencer_prune_interval_seconds=_non_negative_int(
                env,
                "PDS_SEQUENCER_PRUNE_INTERVAL_SECONDS",
                DEFAULT_SEQUENCER_PRUNE_INTERVAL_SECONDS,
            ),
            firehose_buffer_events=_positive_int(
                env, "PDS_FIREHOSE_BUFFER_EVENTS", DEFAULT_FIREHOSE_BUFFER_EVENTS
            ),
            firehose_buffer_bytes=_positive_int(
                env, "PDS_FIREHOSE_BUFFER_BYTES", DEFAULT_FIREHOSE_BUFFER_BYTES
            ),
            accepting_repo_imports=_bool(env, "PDS_ACCEPTING_REPO_IMPORTS", True),
            max_repo_import_size=_positive_int(
                env, "PDS_MAX_REPO_IMPORT_SIZE", DEFAULT_MAX_REPO_IMPORT_SIZE
            ),
            privacy_policy_url=_url(env, "PDS_PRIVACY_POLICY_URL"),
            terms_of_service_url=_url(env, "PDS_TERMS_OF_SERVICE_URL"),
            contact_email_address=_email(env, "PDS_CONTACT_EMAIL_ADDRESS"),
            proxy_headers_timeout_ms=_positive_int(
                env, "PDS_PROXY_HEADERS_TIMEOUT", DEFAULT_PROXY_HEADERS_TIMEOUT_MS
            ),
            proxy_body_timeout_ms=_positive_int(
                env, "PDS_PROXY_BODY_TIMEOUT", DEFAULT_PROXY_BODY_TIMEOUT_MS
            ),
            proxy_max_response_size=_positive_int(
                env, "PDS_PROXY_MAX_RESPONSE_SIZE", DEFAULT_PROXY_MAX_RESPONSE_SIZE
            ),
            metrics_token=env.get("PDS_METRICS_TOKEN") or None,
        )


def _did_web(hostname: str, port: int, dev_mode: bool) -> str:
    # did:web encodes a port as %3A; only dev stacks run on a non-default port.
    return f"did:web:{hostname}%3A{port}" if dev_mode else f"did:web:{hostname}"


_SECRET_NAMES = (
    "PDS_JWT_SECRET",
    "PDS_ADMIN_PASSWORD",
    "PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX",
)


def _secrets(env: Mapping[str, str], data_dir: Path, dev_mode: bool) -> dict[str, str]:
    """Secrets from env; in dev mode, missing ones come from (or are added to) secrets.json."""
    found = {name: env[name] for name in _SECRET_NAMES if env.get(name)}
    missing = [name for name in _SECRET_NAMES if name not in found]
    if not missing:
        return found
    if not dev_mode:
        raise SettingsError(f"missing required secrets: {', '.join(missing)}")
    path = data_dir / SECRETS_FILE
    stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    generators = {
        "PDS_JWT_SECRET": lambda: secrets.token_hex(32),
        "PDS_ADMIN_PASSWORD": lambda: secrets.token_urlsafe(18),
        "PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX": lambda: (
            K256Keypair.generate().private_key_hex()
        ),
    }
    changed = False
    for name in missing:
        if name not in stored:
            stored[name] = generators[name]()
            changed = True
        found[name] = stored[name]
    if changed:
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(stored, indent=2))
        tmp.chmod(0o600)
        tmp.replace(path)
    return found

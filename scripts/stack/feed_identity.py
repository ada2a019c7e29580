"""Give the embedded stack's feed generator an identity, and publish its feed.

`python -m scripts.stack.feed_identity --pds URL --plc URL --endpoint URL --state DIR`

1. The **publisher**: an account on the PDS (`skyspot-feeds` under the PDS's first handle domain)
   whose repository holds the `app.bsky.feed.generator` record. Its password is generated once and
   kept in `<state>/publisher.json` (mode 0600); if the PDS no longer knows the account (its data
   was wiped), the account is created again with the same handle and password.
2. The **service DID**: a `did:plc` on the local PLC directory whose document carries the
   `#bsky_fg` (`BskyFeedGenerator`) service at `--endpoint`. A local AppView resolves only
   `did:plc` over plain http, so the embedded stack uses one rather than a did:web. One K-256 key,
   generated once and kept in `<state>/service-identity.json` (0600), is both its rotation key and
   its `#atproto` key (a dev stack; production keeps rotation keys offline, see
   docs/operations.md). When the endpoint changes (another `FEEDGEN_PORT`), a signed update
   operation moves it; when the directory no longer knows the DID, a new one is created.
   `--service-did` skips this step and uses the DID given (e.g. a did:web).
3. The **feed record** (`at://<publisher>/app.bsky.feed.generator/nearby`), written by
   `scripts/publish-feed` itself, naming the service DID. Re-running it with an identical record
   is a no-op on the PDS.

Prints three `NAME=value` lines for `scripts/run`: `FEEDGEN_SERVICE_DID`, `FEEDGEN_PUBLISHER_DID`
and `SKYSPOT_FEED_URI`.

Errors: `StackError` (from `scripts.stack.http`) for anything that cannot be done; `main` prints
it and exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from atcore import nsids
from atcore.crypto import K256Keypair
from atcore.identity import IdentityError
from atcore.identity.diddoc import FEED_GENERATOR_SERVICE
from atcore.identity.plc import (
    PlcOperation,
    PlcService,
    create_genesis_op,
    create_update_op,
    did_for_genesis,
    op_to_json,
)
from atcore.identity.plc_parse import parse_operation
from scripts.stack.http import HttpFailure, StackError, get_json, post_json, xrpc_url

PUBLISHER_LABEL: Final = "skyspot-feeds"
FEED_RKEY: Final = "nearby"
FEED_DISPLAY_NAME: Final = "Skyspot nearby"
FEED_DESCRIPTION: Final = "Check-ins from everywhere, nearest to your latest check-in first."
PUBLISHER_FILE: Final = "publisher.json"
SERVICE_IDENTITY_FILE: Final = "service-identity.json"
PUBLISH_FEED: Final = Path(__file__).resolve().parents[1] / "publish-feed"
_GONE: Final = frozenset({404, 410})


@dataclass(frozen=True, slots=True)
class Publisher:
    did: str
    handle: str
    password: str


@dataclass(frozen=True, slots=True)
class FeedIdentity:
    service_did: str
    publisher_did: str
    feed_uri: str

    def env_lines(self) -> str:
        return (
            f"FEEDGEN_SERVICE_DID={self.service_did}\n"
            f"FEEDGEN_PUBLISHER_DID={self.publisher_did}\n"
            f"SKYSPOT_FEED_URI={self.feed_uri}\n"
        )


# -- the publisher account -------------------------------------------------------------------------
def ensure_publisher(pds: str, state: Path) -> Publisher:
    """Log in as the publisher, creating the account (and its stored password) when missing."""
    path = state / PUBLISHER_FILE
    stored = _read_json(path)
    if stored is None:
        handle = PUBLISHER_LABEL + _first_handle_domain(pds)
        stored = {"handle": handle, "password": secrets.token_urlsafe(18)}
        _write_private_json(path, stored)
    handle, password = str(stored["handle"]), str(stored["password"])
    try:
        did = _login(pds, handle, password)
    except HttpFailure as exc:
        if exc.status not in (400, 401):
            raise
        did = _create_account(pds, handle, password)
    return Publisher(did, handle, password)


def _first_handle_domain(pds: str) -> str:
    described = get_json(xrpc_url(pds, nsids.SERVER_DESCRIBE_SERVER))
    domains = described.get("availableUserDomains") if isinstance(described, dict) else None
    if not domains or not isinstance(domains[0], str):
        raise StackError(f"{pds} offers no handle domain for the feed publisher account")
    return domains[0]


def _login(pds: str, handle: str, password: str) -> str:
    body = {"identifier": handle, "password": password}
    session = post_json(xrpc_url(pds, nsids.SERVER_CREATE_SESSION), body)
    return str(session["did"])


def _create_account(pds: str, handle: str, password: str) -> str:
    body = {
        "handle": handle,
        "password": password,
        "email": f"{handle.split('.', maxsplit=1)[0]}@example.com",
    }
    try:
        created = post_json(xrpc_url(pds, nsids.SERVER_CREATE_ACCOUNT), body)
    except HttpFailure as exc:
        raise StackError(
            f"cannot log in as or create the feed publisher {handle}: {exc} "
            f"(if the PDS data was replaced, remove the stack's {PUBLISHER_FILE})"
        ) from None
    return str(created["did"])


# -- the service did:plc ---------------------------------------------------------------------------
def ensure_service_did(plc: str, endpoint: str, state: Path) -> str:
    """The feed generator's did:plc, created or moved so `#bsky_fg` points at `endpoint`."""
    path = state / SERVICE_IDENTITY_FILE
    stored = _read_json(path) or {}
    keypair = K256Keypair.from_hex(stored["key"]) if "key" in stored else K256Keypair.generate()
    services = {FEED_GENERATOR_SERVICE.fragment: PlcService(FEED_GENERATOR_SERVICE.type, endpoint)}
    did = stored.get("did")
    if isinstance(did, str):
        current = _current_endpoint(plc, did)
        if current == endpoint:
            return did
        if current is not None:
            last = _last_operation(plc, did)
            if last is not None:
                update = create_update_op(last, signer=keypair, services=services)
                post_json(f"{plc.rstrip('/')}/{did}", op_to_json(update))
                return did
    genesis = create_genesis_op(
        signer=keypair,
        rotation_keys=[keypair.did()],
        signing_key=keypair.did(),
        services=services,
    )
    did = str(did_for_genesis(genesis))
    post_json(f"{plc.rstrip('/')}/{did}", op_to_json(genesis))
    _write_private_json(path, {"did": did, "key": keypair.private_key_hex()})
    return did


def _current_endpoint(plc: str, did: str) -> str | None:
    """The DID's `#bsky_fg` endpoint ("" when it has none), or None when the directory lost it."""
    try:
        data = get_json(f"{plc.rstrip('/')}/{did}/data")
    except HttpFailure as exc:
        if exc.status in _GONE:
            return None
        raise
    service = data.get("services", {}).get(FEED_GENERATOR_SERVICE.fragment, {})
    endpoint = service.get("endpoint") if isinstance(service, dict) else None
    return endpoint if isinstance(endpoint, str) else ""


def _last_operation(plc: str, did: str) -> PlcOperation | None:
    try:
        op = parse_operation(get_json(f"{plc.rstrip('/')}/{did}/log/last"))
    except IdentityError as exc:
        message = f"the PLC directory returned a malformed operation for {did}: {exc}"
        raise StackError(message) from None
    return op if isinstance(op, PlcOperation) else None  # a tombstone: start afresh


# -- the feed record -------------------------------------------------------------------------------
def publish_feed(pds: str, publisher: Publisher, service_did: str) -> str:
    """Write the feed's generator record with `scripts/publish-feed`; its at:// URI."""
    env = {
        **os.environ,
        "SKYSPOT_PDS": pds,
        "SKYSPOT_IDENTIFIER": publisher.handle,
        "SKYSPOT_PASSWORD": publisher.password,
    }
    args = [
        str(PUBLISH_FEED),
        *("--rkey", FEED_RKEY),
        *("--service-did", service_did),
        *("--display-name", FEED_DISPLAY_NAME),
        *("--description", FEED_DESCRIPTION),
    ]
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise StackError(f"scripts/publish-feed failed: {result.stderr.strip()}")
    return f"at://{publisher.did}/{nsids.BSKY_FEED_GENERATOR}/{FEED_RKEY}"


def ensure_feed_identity(
    *, pds: str, plc: str, endpoint: str, state: Path, service_did: str | None = None
) -> FeedIdentity:
    state.mkdir(parents=True, exist_ok=True)
    publisher = ensure_publisher(pds, state)
    did = service_did or ensure_service_did(plc, endpoint, state)
    return FeedIdentity(did, publisher.did, publish_feed(pds, publisher, did))


# -- files -----------------------------------------------------------------------------------------
def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        value = json.loads(path.read_text())
    except ValueError:
        raise StackError(f"{path} is not JSON; remove it to start afresh") from None
    if not isinstance(value, dict):
        raise StackError(f"{path} does not hold a JSON object; remove it to start afresh")
    return value


def _write_private_json(path: Path, value: dict[str, Any]) -> None:
    """Write atomically with mode 0600 from the start: the file holds a password or a key."""
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(value, handle, indent=2)
    tmp.replace(path)


def main(argv: Sequence[str] | None = None) -> int:
    parse = argparse.ArgumentParser(prog="python -m scripts.stack.feed_identity")
    parse.add_argument("--pds", required=True, help="the PDS URL")
    parse.add_argument("--plc", required=True, help="the PLC directory URL")
    parse.add_argument("--endpoint", required=True, help="the feed generator's public URL")
    parse.add_argument("--state", required=True, type=Path, help="where keys and passwords live")
    parse.add_argument("--service-did", help="use this service DID instead of a local did:plc")
    args = parse.parse_args(argv)
    try:
        identity = ensure_feed_identity(
            pds=args.pds,
            plc=args.plc,
            endpoint=args.endpoint,
            state=args.state,
            service_did=args.service_did,
        )
    except StackError as exc:
        print(f"feed identity: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(identity.env_lines())
    return 0


if __name__ == "__main__":
    sys.exit(main())

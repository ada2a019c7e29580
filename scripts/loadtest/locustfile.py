"""Locust users for the Skyspot stack: check-in writers and feed readers, run together.

Run through `python -m scripts.loadtest.run` (it starts the stack and passes the settings), or by
hand against a running stack:

    SKYSPOT_FEEDGEN=http://localhost:3000 SKYSPOT_FEED_URI=at://.../nearby \\
    SKYSPOT_FEED_SERVICE_DID=did:plc:... .venv/bin/locust -f scripts/loadtest/locustfile.py \\
        --host http://localhost:2583 --headless -u 16 -r 4 -t 60s

- `CheckinWriter`: its own account; each task is one check-in (the `app.skyspot.checkin` record
  and its companion post, composed and checked by `skyspot_client`, written with one
  `com.atproto.repo.applyWrites`), at a random point near one of a dozen cities.
- `FeedReader`: its own account with one check-in (its feed anchor); asks its PDS for a service
  token for the feed generator (`getServiceAuth`, renewed before it expires) and reads the feed:
  first pages of 30 (the app's page), `limit=1` polls (the app checking for news), three pages
  deep following the cursor, and anonymous first pages.

Never imported by the test suite: locust monkey-patches the standard library with gevent.
"""

from __future__ import annotations

import os
import random
import secrets
import time
from typing import Any, ClassVar, Final
from urllib.parse import urlencode

from locust import FastHttpUser, constant, task

from atcore import nsids
from skyspot_client import build_checkin_writes, compose_checkin

CITIES: Final = (
    ("Lisbon", 38.7223, -9.1393),
    ("Paris", 48.8566, 2.3522),
    ("Berlin", 52.5200, 13.4050),
    ("New York", 40.7128, -74.0060),
    ("São Paulo", -23.5505, -46.6333),
    ("Lagos", 6.5244, 3.3792),
    ("Nairobi", -1.2921, 36.8219),
    ("Mumbai", 19.0760, 72.8777),
    ("Tokyo", 35.6762, 139.6503),
    ("Seoul", 37.5665, 126.9780),
    ("Sydney", -33.8688, 151.2093),
    ("Mexico City", 19.4326, -99.1332),
)
PASSWORD: Final = "load-test-password"  # throw-away loopback accounts
TOKEN_LIFETIME_S: Final = 40.0  # getServiceAuth tokens last 60 s; renew well before
PAGE: Final = 30
DEEP_PAGES: Final = 3
FEED_SKELETON: Final = f"/xrpc/{nsids.BSKY_FEED_GET_FEED_SKELETON}"


class SkyspotUser(FastHttpUser):
    """An account on the PDS (locust's host) that can post check-ins."""

    abstract = True
    wait_time = constant(0)  # closed loop: each user sends its next request at once
    did: str
    access_jwt: str

    def on_start(self) -> None:
        handle = f"lt{secrets.token_hex(5)}.test"
        body = {"handle": handle, "email": f"{handle}@example.com", "password": PASSWORD}
        with self.client.post(
            f"/xrpc/{nsids.SERVER_CREATE_ACCOUNT}",
            json=body,
            name="setup: createAccount",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"createAccount {response.status_code}: {response.text}")
                raise RuntimeError("cannot create the load-test account")
            created: dict[str, Any] = response.json()
        self.did, self.access_jwt = created["did"], created["accessJwt"]

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_jwt}"}

    def post_checkin(self, name: str) -> None:
        city, lat, lon = random.choice(CITIES)  # load, not secrets
        checkin = compose_checkin(
            lat=f"{lat + random.uniform(-0.05, 0.05):.6f}",
            lon=f"{lon + random.uniform(-0.05, 0.05):.6f}",
            place=f"{city} spot {random.randrange(1000)}",
            text=f"Load-testing in {city}",
        )
        writes = build_checkin_writes(self.did, checkin)
        self.client.post(
            f"/xrpc/{nsids.REPO_APPLY_WRITES}",
            json=writes.apply_writes_input(),
            headers=self.auth,
            name=name,
        )


class CheckinWriter(SkyspotUser):
    @task
    def write_checkin(self) -> None:
        self.post_checkin("applyWrites check-in")


class FeedReader(SkyspotUser):
    feedgen: ClassVar[str] = os.environ.get("SKYSPOT_FEEDGEN", "http://localhost:3000")
    feed: ClassVar[str] = os.environ.get("SKYSPOT_FEED_URI", "")
    service_did: ClassVar[str] = os.environ.get("SKYSPOT_FEED_SERVICE_DID", "")
    _token: str = ""
    _token_at: float = 0.0

    def on_start(self) -> None:
        super().on_start()
        self.post_checkin("setup: anchor check-in")

    def viewer_headers(self) -> dict[str, str]:
        if time.monotonic() - self._token_at > TOKEN_LIFETIME_S:
            query = urlencode({"aud": self.service_did, "lxm": nsids.BSKY_FEED_GET_FEED_SKELETON})
            response = self.client.get(
                f"/xrpc/{nsids.SERVER_GET_SERVICE_AUTH}?{query}",
                headers=self.auth,
                name="getServiceAuth",
            )
            self._token, self._token_at = response.json()["token"], time.monotonic()
        return {"Authorization": f"Bearer {self._token}"}

    def skeleton(
        self, name: str, *, limit: int, cursor: str | None = None, viewer: bool = True
    ) -> str | None:
        params = {"feed": self.feed, "limit": str(limit)}
        if cursor:
            params["cursor"] = cursor
        response = self.client.get(
            f"{self.feedgen}{FEED_SKELETON}?{urlencode(params)}",
            headers=self.viewer_headers() if viewer else {},
            name=name,
        )
        if response.status_code != 200:
            return None
        found: str | None = response.json().get("cursor")
        return found

    @task(5)
    def first_page(self) -> None:
        self.skeleton("getFeedSkeleton first page (30)", limit=PAGE)

    @task(3)
    def poll(self) -> None:
        self.skeleton("getFeedSkeleton poll (1)", limit=1)

    @task(2)
    def deep_pages(self) -> None:
        cursor = self.skeleton("getFeedSkeleton first page (30)", limit=PAGE)
        for _ in range(DEEP_PAGES):
            if cursor is None:
                return
            cursor = self.skeleton("getFeedSkeleton next page (30)", limit=PAGE, cursor=cursor)

    @task(1)
    def anonymous(self) -> None:
        self.skeleton("getFeedSkeleton anonymous (30)", limit=PAGE, viewer=False)

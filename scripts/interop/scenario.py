"""What the interop run writes on our PDS and checks on the official AppView.

Authors on our PDS post check-ins (the check-in record and its companion `app.bsky.feed.post` in
one commit, some with a photo) around Lisbon and in Tokyo; a viewer, also on our PDS, checks in
in Lisbon last. Then:

1. **Hydration**: the AppView's `app.bsky.feed.getPosts` returns every companion post with its
   author's handle (resolved and verified both ways, never `handle.invalid`), display name and
   text, and photo posts as `app.bsky.embed.images#view` whose image URLs the AppView serves as
   JPEGs it fetched from our PDS (`com.atproto.sync.getBlob`, CID-verified).
2. **The feed, the realistic way**: the viewer calls `app.bsky.feed.getFeed` on *our PDS*, which
   mints a service token for our feed generator's did:plc and proxies to the AppView, which asks
   our feed generator for the skeleton (forwarding that token) and hydrates it. The posts come
   back hydrated, in the feed generator's order: the viewer's own area first, then farther bands.

Errors: `InteropFailure` for a failed check (its message says what differed).
"""

from __future__ import annotations

import io
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from atproto import Client
from PIL import Image

from atcore import nsids
from atcore.syntax import AtUri
from scripts.interop import InteropFailure
from scripts.stack.http import HttpFailure, bearer, get_json, post_json, xrpc_url
from skyspot_client import PhotoInput, post_checkin

PASSWORD: Final = "interop-password"  # throw-away loopback accounts
INDEX_TIMEOUT_S: Final = 240.0
BAND_ORDER: Final = ("near", "city", "region", "world")


@dataclass(frozen=True, slots=True)
class Person:
    handle: str
    did: str
    display_name: str
    access_jwt: str


@dataclass(frozen=True, slots=True)
class Spot:
    place: str
    lat: str
    lon: str


@dataclass(frozen=True, slots=True)
class Posted:
    author: Person
    spot: Spot
    uri: str
    text: str
    photo_alt: str | None


LISBON_VIEWPOINT: Final = Spot("Miradouro da Graça", "38.716375", "-9.131470")
LISBON_ALFAMA: Final = Spot("Alfama", "38.711502", "-9.129970")
SINTRA: Final = Spot("Palácio da Pena", "38.787623", "-9.390550")
SETUBAL: Final = Spot("Setúbal", "38.524400", "-8.888200")
TOKYO: Final = Spot("Shibuya Crossing", "35.659500", "139.700400")


def create_person(pds: str, name: str, display_name: str) -> Person:
    body = {"handle": f"{name}.test", "email": f"{name}@example.com", "password": PASSWORD}
    created = post_json(xrpc_url(pds, nsids.SERVER_CREATE_ACCOUNT), body)
    person = Person(created["handle"], created["did"], display_name, created["accessJwt"])
    profile = {"$type": "app.bsky.actor.profile", "displayName": display_name}
    record = {"repo": person.did, "collection": "app.bsky.actor.profile", "rkey": "self"}
    post_json(
        xrpc_url(pds, nsids.REPO_PUT_RECORD),
        {**record, "record": profile},
        headers=bearer(person.access_jwt),
    )
    return person


def photo(seed: int, alt: str) -> PhotoInput:
    """A small generated JPEG (a gradient; enough for the AppView to decode and resize)."""
    image = Image.new("RGB", (640, 480))
    pixels = [
        ((x + seed * 40) % 256, y % 256, (x + y) % 256) for y in range(480) for x in range(640)
    ]
    image.putdata(pixels)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return PhotoInput(buffer.getvalue(), alt)


def check_in(pds: str, author: Person, spot: Spot, with_photo: bool) -> Posted:
    client = Client(base_url=pds)
    try:
        client.login(author.handle, PASSWORD, fetch_bsky_profile=False)
        text = f"{author.display_name} at {spot.place}"
        alt = f"A view of {spot.place}" if with_photo else None
        photos = [photo(len(spot.place), alt)] if alt else []
        posted = post_checkin(
            client, lat=spot.lat, lon=spot.lon, place=spot.place, text=text, photos=photos
        )
    finally:
        client.request.close()
    # The companion post's text is the check-in's plus the place line: compare with what the PDS
    # stored, which is what the AppView must show.
    uri = AtUri(str(posted.post_uri))
    params = {"repo": author.did, "collection": nsids.BSKY_FEED_POST, "rkey": str(uri.rkey)}
    stored = get_json(xrpc_url(pds, nsids.REPO_GET_RECORD, params))["value"]
    return Posted(author, spot, str(posted.post_uri), str(stored["text"]), alt)


def eventually(check: Callable[[], str | None], what: str) -> None:
    """Poll `check` (None = done, else why not yet) until it passes or time runs out."""
    deadline = time.monotonic() + INDEX_TIMEOUT_S
    while (reason := check()) is not None:
        if time.monotonic() > deadline:
            raise InteropFailure(f"{what} within {INDEX_TIMEOUT_S:.0f} s: {reason}")
        time.sleep(1.0)


def appview_posts(appview: str, uris: list[str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(uris), 25):
        query = "&".join(f"uris={uri}" for uri in uris[start : start + 25])
        answer = get_json(f"{appview}/xrpc/app.bsky.feed.getPosts?{query}")
        found.update({view["uri"]: view for view in answer["posts"]})
    return found


def hydration_gap(appview: str, posted: list[Posted]) -> str | None:
    """Why the AppView does not (yet) serve every post fully hydrated; None when it does."""
    views = appview_posts(appview, [p.uri for p in posted])
    for item in posted:
        view = views.get(item.uri)
        if view is None:
            return f"{item.uri} not indexed"
        problem = post_problem(view, item)
        if problem is not None:
            return problem
    return None


def post_problem(view: dict[str, Any], item: Posted) -> str | None:
    author = view["author"]
    if author["handle"] != item.author.handle:
        return f"{item.uri}: author handle {author['handle']!r}, not {item.author.handle!r}"
    if author.get("displayName") != item.author.display_name:
        return f"{item.uri}: display name {author.get('displayName')!r}"
    if view["record"].get("text") != item.text:
        return f"{item.uri}: text {view['record'].get('text')!r}"
    if item.photo_alt is not None:
        embed = view.get("embed") or {}
        images = embed.get("images") or []
        if embed.get("$type") != "app.bsky.embed.images#view" or not images:
            return f"{item.uri}: no image embed view ({embed.get('$type')})"
        if images[0].get("alt") != item.photo_alt:
            return f"{item.uri}: alt text {images[0].get('alt')!r}"
    return None


def fetch_image(url: str) -> tuple[str, tuple[int, int]]:
    """Content type and pixel size of an image URL the AppView handed out."""
    with urllib.request.urlopen(url, timeout=60) as response:  # the loopback AppView
        content_type = str(response.headers.get("Content-Type"))
        data = response.read()
    with Image.open(io.BytesIO(data)) as image:
        return content_type, image.size


def feed_via_pds(pds: str, viewer: Person, feed: str) -> list[dict[str, Any]]:
    """`app.bsky.feed.getFeed` on the viewer's PDS (proxied to the AppView)."""
    url = xrpc_url(pds, nsids.BSKY_FEED_GET_FEED, {"feed": feed, "limit": 30})
    answer = get_json(url, headers=bearer(viewer.access_jwt))
    return list(answer["feed"])


def skeleton_for(pds: str, feedgen: str, viewer: Person, feed: str, service_did: str) -> list[Any]:
    """The feed generator's own answer for the viewer, with a token minted the same way."""
    params = {"aud": service_did, "lxm": nsids.BSKY_FEED_GET_FEED_SKELETON}
    token = get_json(
        xrpc_url(pds, nsids.SERVER_GET_SERVICE_AUTH, params), headers=bearer(viewer.access_jwt)
    )["token"]
    url = xrpc_url(feedgen, nsids.BSKY_FEED_GET_FEED_SKELETON, {"feed": feed, "limit": 30})
    return list(get_json(url, headers=bearer(token))["feed"])


def band_of(context: str) -> str:
    return context.split(";", maxsplit=1)[0].removeprefix("band=")


def feed_gap(pds: str, viewer: Person, feed: str, expected: set[str]) -> str | None:
    try:
        items = feed_via_pds(pds, viewer, feed)
    except HttpFailure as exc:
        return str(exc)
    got = {item["post"]["uri"] for item in items}
    return None if expected <= got else f"missing {sorted(expected - got)}"

"""Interop with the official Bluesky AppView: `python -m scripts.appview_interop`.

Starts our stack exactly as `./scripts/run` does (local PLC, PDS, firehose consumer, feed
generator with a did:plc), the official AppView (`@atproto/bsky` from npm, Node 22 from npm, a
throw-away PostgreSQL 15) wired to our PDS and PLC the way `@atproto/dev-env`'s `TestBsky` does,
and checks (scripts/interop/scenario.py):

1. posts written on our PDS are hydrated by the AppView: handles verified, profiles, texts, image
   embeds whose images the AppView serves after fetching them from our PDS;
2. a viewer whose account is on our PDS calls `app.bsky.feed.getFeed` on our PDS and gets our
   feed's check-in posts, hydrated by the AppView, nearest first.

Most content is written before the AppView starts (it replays our PDS's firehose from cursor 0);
the viewer's check-in is written while it runs (the live path). Prints a Markdown report
(docs/appview-interop.md). Slow (an npm install the first time, then about a minute): not part of
the default test run. `--install-dir` keeps the npm install between runs.

Exit status: 0 when every check passes, 1 when a check fails, 2 when a prerequisite is missing.
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from scripts.interop import InteropError, InteropFailure, InteropUnavailable
from scripts.interop.appview import AppViewIdentity, RunningAppView, running_appview
from scripts.interop.node import prepare
from scripts.interop.postgres import throwaway_postgres
from scripts.interop.scenario import (
    BAND_ORDER,
    LISBON_ALFAMA,
    LISBON_VIEWPOINT,
    SETUBAL,
    SINTRA,
    TOKYO,
    Person,
    Posted,
    Spot,
    appview_posts,
    band_of,
    check_in,
    create_person,
    eventually,
    feed_gap,
    feed_via_pds,
    fetch_image,
    hydration_gap,
    post_problem,
    skeleton_for,
)
from scripts.stack.http import StackError, get_json, xrpc_url
from scripts.stack.process import RunScript, free_ports, stop_on_sigterm

DEFAULT_INSTALL_DIR: Final = Path.home() / ".cache" / "skyspot" / "appview-interop"


@dataclass(frozen=True, slots=True)
class FeedLine:
    rank: int
    handle: str
    place: str
    context: str
    km: float
    images: str


def distance_km(a: Spot, b: Spot) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, map(float, (a.lat, a.lon, b.lat, b.lon)))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371.0088 * math.asin(math.sqrt(h))


def check_profiles(appview: str, people: list[Person]) -> None:
    for person in people:
        profile = get_json(xrpc_url(appview, "app.bsky.actor.getProfile", {"actor": person.did}))
        if profile["handle"] != person.handle:
            raise InteropFailure(f"{person.did}: AppView shows handle {profile['handle']!r}")


def check_images(views: dict[str, dict[str, Any]], posted: list[Posted]) -> dict[str, str]:
    """Fetch every image URL the AppView hands out for the photo posts; uri -> summary."""
    served = {}
    for item in posted:
        if item.photo_alt is None:
            continue
        image = views[item.uri]["embed"]["images"][0]
        sizes = []
        for kind in ("thumb", "fullsize"):
            content_type, size = fetch_image(image[kind])
            if not content_type.startswith("image/"):
                raise InteropFailure(f"{image[kind]} served {content_type}")
            sizes.append(f"{kind} {size[0]}x{size[1]} {content_type}")
        served[item.uri] = ", ".join(sizes)
    return served


def check_feed(
    script: RunScript, viewer: Person, posted: list[Posted], served: dict[str, str]
) -> list[FeedLine]:
    """getFeed via the viewer's PDS: every post, hydrated, in the feed generator's order."""
    by_uri = {item.uri: item for item in posted}
    eventually(
        lambda: feed_gap(script.pds_url, viewer, script.feed_uri, set(by_uri)),
        "getFeed through our PDS to return every check-in post",
    )
    items = feed_via_pds(script.pds_url, viewer, script.feed_uri)
    skeleton = skeleton_for(
        script.pds_url, script.feedgen_url, viewer, script.feed_uri, script.service_did
    )
    order = [item["post"]["uri"] for item in items]
    if order != [entry["post"] for entry in skeleton]:
        raise InteropFailure(f"getFeed order {order} differs from the skeleton {skeleton}")
    lines = []
    for rank, (item, entry) in enumerate(zip(items, skeleton, strict=True), start=1):
        source = by_uri[item["post"]["uri"]]
        problem = post_problem(item["post"], source)
        if problem is not None:
            raise InteropFailure(f"getFeed item not hydrated: {problem}")
        context = str(entry.get("feedContext", ""))
        handle = item["post"]["author"]["handle"]
        km = distance_km(LISBON_VIEWPOINT, source.spot)  # the viewer's latest check-in
        images = "served" if source.uri in served else ""
        lines.append(FeedLine(rank, handle, source.spot.place, context, km, images))
    bands = [BAND_ORDER.index(band_of(line.context)) for line in lines]
    if bands != sorted(bands):
        raise InteropFailure(f"bands are not nearest first: {[line.context for line in lines]}")
    if {line.place for line in lines[:2]} != {LISBON_VIEWPOINT.place, LISBON_ALFAMA.place}:
        raise InteropFailure(f"the viewer's Lisbon check-ins do not come first: {lines}")
    return lines


def run(install_dir: Path, work_dir: Path | None) -> str:
    install = prepare(install_dir)
    with tempfile.TemporaryDirectory(prefix="skyspot-appview-interop-") as tmp:
        work = work_dir or Path(tmp)
        bsky_port, dataplane_port = free_ports(2)
        identity = AppViewIdentity.create(bsky_port)
        script = RunScript.start(
            work / "stack",
            extra_env={
                "PDS_BSKY_APP_VIEW_URL": f"http://localhost:{bsky_port}",
                "PDS_BSKY_APP_VIEW_DID": identity.did,
            },
        )
        try:
            identity.register(script.plc_url)
            alice = create_person(script.pds_url, "alice", "Alice Tavares")
            bob = create_person(script.pds_url, "bob", "Bob Sato")
            viewer = create_person(script.pds_url, "viewer", "Vera Viewer")
            posted = [
                check_in(script.pds_url, alice, LISBON_ALFAMA, with_photo=True),
                check_in(script.pds_url, alice, SINTRA, with_photo=False),
                check_in(script.pds_url, bob, SETUBAL, with_photo=False),
                check_in(script.pds_url, bob, TOKYO, with_photo=True),
                check_in(script.pds_url, alice, TOKYO, with_photo=False),
            ]
            with (
                throwaway_postgres() as db_url,
                running_appview(
                    install,
                    identity,
                    port=bsky_port,
                    dataplane_port=dataplane_port,
                    db_url=db_url,
                    plc_url=script.plc_url,
                    pds_url=script.pds_url,
                    handle_domains=".test",
                    work_dir=work,
                ) as appview,
            ):
                # Written while the AppView runs: the live path (the rest is replayed from 0).
                posted.append(check_in(script.pds_url, viewer, LISBON_VIEWPOINT, with_photo=True))
                return verify(script, appview, [alice, bob, viewer], viewer, posted)
        finally:
            if script.process.poll() is None:
                script.stop(signal.SIGTERM)


def verify(
    script: RunScript,
    appview: RunningAppView,
    people: list[Person],
    viewer: Person,
    posted: list[Posted],
) -> str:
    eventually(lambda: hydration_gap(appview.url, posted), "the AppView to hydrate every post")
    check_profiles(appview.url, people)
    views = appview_posts(appview.url, [item.uri for item in posted])
    served = check_images(views, posted)
    lines = check_feed(script, viewer, posted, served)
    return report(appview, people, posted, served, lines)


def report(
    appview: RunningAppView,
    people: list[Person],
    posted: list[Posted],
    served: dict[str, str],
    lines: list[FeedLine],
) -> str:
    rows = [
        f"| {line.rank} | @{line.handle} | {line.place} | {line.context} | {line.km:.1f} | "
        f"{line.images} |"
        for line in lines
    ]
    return "\n".join(
        [
            f"AppView: `@atproto/bsky` {appview.version} (Node 22, PostgreSQL 15).",
            "",
            f"- {len(posted)} check-in posts by {len(people)} accounts on our PDS: all hydrated by"
            " the AppView (handle verified, display name, text; photo posts as"
            " `app.bsky.embed.images#view`).",
            *(
                f"- images served by the AppView for {uri}: {summary}"
                for uri, summary in served.items()
            ),
            "- `app.bsky.feed.getFeed` on our PDS as the viewer (proxied to the AppView, which"
            " asked our feed generator with the forwarded token): every post, hydrated, in the"
            " feed generator's order:",
            "",
            "| rank | author (AppView) | place | feedContext | km from the viewer | image |",
            "| ---: | --- | --- | --- | ---: | --- |",
            *rows,
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parse = argparse.ArgumentParser(prog="python -m scripts.appview_interop", description=__doc__)
    parse.add_argument(
        "--install-dir",
        type=Path,
        default=DEFAULT_INSTALL_DIR,
        help="where Node 22 and @atproto/bsky are installed (reused; default %(default)s)",
    )
    parse.add_argument(
        "--work-dir",
        type=Path,
        help="keep the stack's data and the AppView's log here (default: a temporary directory)",
    )
    args = parse.parse_args(argv)
    stop_on_sigterm()
    try:
        print(run(args.install_dir, args.work_dir))
    except InteropUnavailable as exc:
        print(f"appview interop: unavailable here: {exc}", file=sys.stderr)
        return 2
    except (InteropError, StackError) as exc:
        print(f"appview interop: FAILED: {exc}", file=sys.stderr)
        return 1
    print("\nall checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

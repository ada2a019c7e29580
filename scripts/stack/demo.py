"""`scripts/run --demo`: seed demo check-ins, then print one feed page as a demo viewer sees it.

`python -m scripts.stack.demo --pds URL --feedgen URL --feed AT-URI --service-did DID`

1. `scripts/seed` creates the demo accounts and their check-ins (idempotent: a second `--demo`
   run adds nothing) at real cities, with generated photos.
2. Waits until the firehose consumer has indexed at least as many check-ins as the seed reports,
   counting through the feed generator's anonymous `getFeedSkeleton` pages.
3. The demo viewer is the first seeded account that has a check-in; its latest check-in anchors
   the feed. It asks its PDS for a service token (`com.atproto.server.getServiceAuth`, audience
   the feed generator's DID, `lxm` getFeedSkeleton: what a PDS mints when proxying `getFeed`) and
   calls `getFeedSkeleton` with it, then reads each item's post and check-in from the PDS to
   show place, distance band, author and text.

Errors: `StackError` (from `scripts.stack.http`); `main` prints it and exits 1.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from atcore import nsids
from atcore.syntax import AtUri
from scripts.stack.http import StackError, bearer, get_json, post_json, xrpc_url
from skyspot_client.cli.seed import DEV_SECRET
from skyspot_client.seed.plan import SeedAccount, seed_accounts

SEED_SCRIPT: Final = Path(__file__).resolve().parents[1] / "seed"
SEED: Final = 1
HANDLE_PREFIX: Final = "spot"
PAGE_SIZE: Final = 100  # the feed's largest page, to count what is indexed in few requests
INDEX_TIMEOUT_S: Final = 300.0
SEED_TIMEOUT_S: Final = 1800.0


@dataclass(frozen=True, slots=True)
class DemoOptions:
    pds: str
    feedgen: str
    feed: str
    service_did: str
    accounts: int
    checkins: int
    limit: int


@dataclass(frozen=True, slots=True)
class FeedLine:
    rank: int
    context: str
    handle: str
    place: str
    text: str

    def render(self) -> str:
        text = self.text.replace("\n", " ")
        text = text if len(text) <= 70 else text[:69] + "…"
        return f"{self.rank:>3}. {self.place} [{self.context}] @{self.handle}\n     {text}"


def seed(options: DemoOptions) -> int:
    """Run `scripts/seed`; the number of seeded check-ins now on the PDS."""
    args = [
        str(SEED_SCRIPT),
        *("--pds", options.pds),
        *("--accounts", str(options.accounts)),
        *("--checkins", str(options.checkins)),
        *("--seed", str(SEED)),
        *("--handle-prefix", HANDLE_PREFIX),
        "--no-progress",
        "--json",
    ]
    result = subprocess.run(
        args, capture_output=True, text=True, timeout=SEED_TIMEOUT_S, check=False
    )
    if result.returncode != 0:
        raise StackError(f"scripts/seed failed: {result.stderr.strip()}")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    return int(report["checkins_present"]) + int(report["checkins_written"])


def wait_for_index(options: DemoOptions, expected: int) -> int:
    """Poll the anonymous feed until it holds `expected` items; how many it holds."""
    deadline = time.monotonic() + INDEX_TIMEOUT_S
    while True:
        count = count_feed_items(options.feedgen, options.feed)
        if count >= expected:
            return count
        if time.monotonic() > deadline:
            raise StackError(
                f"only {count} of {expected} seeded check-ins were indexed after "
                f"{INDEX_TIMEOUT_S:.0f} s (see the consumer's log)"
            )
        time.sleep(0.5)


def count_feed_items(feedgen: str, feed: str) -> int:
    """How many items the anonymous feed holds, paging through it."""
    count, cursor = 0, None
    while True:
        params: dict[str, str | int] = {"feed": feed, "limit": PAGE_SIZE}
        if cursor:
            params["cursor"] = cursor
        page = get_json(xrpc_url(feedgen, nsids.BSKY_FEED_GET_FEED_SKELETON, params))
        count += len(page["feed"])
        cursor = page.get("cursor")
        if not page["feed"] or not cursor:
            return count


def demo_viewer(options: DemoOptions) -> tuple[SeedAccount, dict[str, Any]]:
    """The first seeded account with a check-in, and its latest check-in record."""
    described = get_json(xrpc_url(options.pds, nsids.SERVER_DESCRIBE_SERVER))
    domain = described["availableUserDomains"][0]
    accounts = seed_accounts(
        seed=SEED, count=options.accounts, prefix=HANDLE_PREFIX, domain=domain, secret=DEV_SECRET
    )
    for account in accounts:
        params: dict[str, str | int] = {
            "repo": account.handle,
            "collection": nsids.SKYSPOT_CHECKIN,
            "limit": 1,
        }
        found = get_json(xrpc_url(options.pds, nsids.REPO_LIST_RECORDS, params))
        if found["records"]:
            return account, found["records"][0]["value"]
    raise StackError("no seeded account has a check-in")


def viewer_page(options: DemoOptions, viewer: SeedAccount) -> list[dict[str, Any]]:
    """One page of the feed, requested with a service token minted by the viewer's PDS."""
    session = post_json(
        xrpc_url(options.pds, nsids.SERVER_CREATE_SESSION),
        {"identifier": viewer.handle, "password": viewer.password},
    )
    service_auth = get_json(
        xrpc_url(
            options.pds,
            nsids.SERVER_GET_SERVICE_AUTH,
            {"aud": options.service_did, "lxm": nsids.BSKY_FEED_GET_FEED_SKELETON},
        ),
        headers=bearer(session["accessJwt"]),
    )
    params: dict[str, str | int] = {"feed": options.feed, "limit": options.limit}
    page = get_json(
        xrpc_url(options.feedgen, nsids.BSKY_FEED_GET_FEED_SKELETON, params),
        headers=bearer(service_auth["token"]),
    )
    return list(page["feed"])


def hydrate(options: DemoOptions, items: list[dict[str, Any]]) -> list[FeedLine]:
    """Read each item's post and check-in (same record key) and its author's handle."""
    handles: dict[str, str] = {}
    lines = []
    for rank, item in enumerate(items, start=1):
        uri = AtUri(item["post"])
        did, rkey = str(uri.authority), str(uri.rkey)
        if did not in handles:
            repo = get_json(xrpc_url(options.pds, nsids.REPO_DESCRIBE_REPO, {"repo": did}))
            handles[did] = repo["handle"]
        post = _record(options.pds, did, nsids.BSKY_FEED_POST, rkey)
        checkin = _record(options.pds, did, nsids.SKYSPOT_CHECKIN, rkey)
        lines.append(
            FeedLine(
                rank=rank,
                context=str(item.get("feedContext", "")),
                handle=handles[did],
                place=place_label(checkin),
                text=str(post.get("text", "")),
            )
        )
    return lines


def place_label(checkin: dict[str, Any]) -> str:
    """The place's name, with its locality when the check-in carries an address."""
    name = str(checkin["place"]["name"])
    for location in checkin.get("locations", []):
        locality = location.get("locality") if isinstance(location, dict) else None
        if isinstance(locality, str) and locality and locality != name:
            return f"{name}, {locality}"
    return name


def _record(pds: str, did: str, collection: str, rkey: str) -> dict[str, Any]:
    params = {"repo": did, "collection": collection, "rkey": rkey}
    return dict(get_json(xrpc_url(pds, nsids.REPO_GET_RECORD, params))["value"])


def run_demo(options: DemoOptions) -> str:
    """Seed, wait for the index, and render the demo viewer's first page."""
    print(f"seeding {options.accounts} demo accounts and {options.checkins} check-ins ...")
    sys.stdout.flush()
    expected = seed(options)
    indexed = wait_for_index(options, expected)
    viewer, latest = demo_viewer(options)
    lines = hydrate(options, viewer_page(options, viewer))
    header = (
        f"{indexed} check-ins indexed. Feed page for demo viewer @{viewer.handle} "
        f"(password {viewer.password}),\nwhose latest check-in is at {place_label(latest)}:"
    )
    return "\n".join([header, *(line.render() for line in lines)])


def main(argv: Sequence[str] | None = None) -> int:
    parse = argparse.ArgumentParser(prog="python -m scripts.stack.demo")
    parse.add_argument("--pds", required=True)
    parse.add_argument("--feedgen", required=True, help="the feed generator's URL")
    parse.add_argument("--feed", required=True, help="the feed's at:// URI")
    parse.add_argument("--service-did", required=True, help="the feed generator's DID")
    parse.add_argument("--accounts", type=int, default=12)
    parse.add_argument("--checkins", type=int, default=120)
    parse.add_argument("--limit", type=int, default=10, help="items on the printed page")
    args = parse.parse_args(argv)
    options = DemoOptions(
        pds=args.pds,
        feedgen=args.feedgen,
        feed=args.feed,
        service_did=args.service_did,
        accounts=args.accounts,
        checkins=args.checkins,
        limit=args.limit,
    )
    try:
        print(run_demo(options))
    except StackError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

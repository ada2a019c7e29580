"""`scripts/checkin`: post one check-in, with photos, and its companion Bluesky post."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from atproto_client.exceptions import AtProtocolError

from atcore.checkin import (
    AddressLocation,
    CheckinError,
    Precision,
    checkin_to_data,
    parse_checkin,
)
from skyspot_client.cli.common import UsageError, add_login_arguments, fail, login
from skyspot_client.client import PostedCheckin, UnexpectedReply, post_checkin
from skyspot_client.compose import compose_checkin
from skyspot_client.photos import PhotoInput

EXAMPLE = """\
example:
  SKYSPOT_IDENTIFIER=alice.test SKYSPOT_PASSWORD=... scripts/checkin \\
      --lat 38.713909 --lon -9.133476 --place "Miradouro da Graça" --category landmark \\
      --text "Best view in town" --photo view.jpg --alt "Rooftops of Lisbon at sunset"
"""


def parser() -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(
        prog="checkin",
        description="Post one app.skyspot.checkin record and its companion app.bsky.feed.post "
        "in a single commit, photos included.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_login_arguments(parse)
    place = parse.add_argument_group("where")
    place.add_argument("--lat", required=True, help="latitude in decimal degrees, e.g. 38.713909")
    place.add_argument("--lon", required=True, help="longitude in decimal degrees")
    place.add_argument("--place", required=True, help="venue name (or area, if coarse)")
    place.add_argument("--category", help="cafe, restaurant, bar, park, museum, landmark, ...")
    place.add_argument("--venue-uri", help="the venue's web page")
    place.add_argument(
        "--precision",
        choices=[p.value for p in Precision],
        default=Precision.EXACT.value,
        help="publish exact coordinates, or only the neighborhood / city (default %(default)s)",
    )
    place.add_argument("--country", help="ISO 3166 country code (adds an address location)")
    place.add_argument("--region", help="state, province, ... (with --country)")
    place.add_argument("--locality", help="city or town (with --country)")
    place.add_argument("--street", help="street address (with --country; exact precision only)")
    place.add_argument("--postal-code", help="postal code (with --country; exact precision only)")
    place.add_argument("--fsq-id", help="Foursquare Open Source Places id of the venue")
    what = parse.add_argument_group("what")
    what.add_argument("--text", help="what you want to say (up to 300 graphemes)")
    what.add_argument("--lang", action="append", default=[], help="language tag, repeatable")
    what.add_argument("--photo", action="append", default=[], type=Path, help="image file, up to 4")
    what.add_argument(
        "--alt", action="append", default=[], help="alt text, one per --photo, in the same order"
    )
    what.add_argument("--visited-at", help="when you were there (ISO 8601), if not now")
    parse.add_argument("--json", action="store_true", help="print the result as JSON")
    return parse


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        photos = _photos(args.photo, args.alt)
        options = {
            "lat": args.lat,
            "lon": args.lon,
            "place": args.place,
            "text": args.text,
            "category": args.category,
            "venue_uri": args.venue_uri,
            "precision": args.precision,
            "address": _address(args),
            "fsq_place_id": args.fsq_id,
            "langs": args.lang,
            "visited_at": _when(args.visited_at),
        }
        # Every rule that does not need the account, before logging in or uploading anything.
        parse_checkin(checkin_to_data(compose_checkin(**options)))
        client, did = login(args)
        try:
            posted = post_checkin(client, did=did, photos=photos, **options)
        finally:
            client.request.close()
    except UsageError as exc:
        return fail(str(exc), status=2)
    except CheckinError as exc:
        return fail(f"invalid check-in: {exc}")
    except (AtProtocolError, UnexpectedReply, OSError) as exc:
        return fail(f"{type(exc).__name__}: {exc}")
    _report(posted, as_json=args.json)
    return 0


def _photos(paths: list[Path], alts: list[str]) -> list[PhotoInput]:
    if len(paths) != len(alts):
        raise UsageError(f"give one --alt per --photo ({len(paths)} photos, {len(alts)} alts)")
    return [PhotoInput.from_path(path, alt) for path, alt in zip(paths, alts, strict=True)]


def _address(args: argparse.Namespace) -> AddressLocation | None:
    parts = (args.region, args.locality, args.street, args.postal_code)
    if args.country is None:
        if any(part is not None for part in parts):
            raise UsageError("--region, --locality, --street and --postal-code need --country")
        return None
    return AddressLocation(
        args.country,
        postal_code=args.postal_code,
        region=args.region,
        locality=args.locality,
        street=args.street,
    )


def _when(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--visited-at: not an ISO 8601 date and time: {text!r}") from None
    return moment if moment.tzinfo is not None else moment.astimezone()


def _report(posted: PostedCheckin, *, as_json: bool) -> None:
    rows = {
        "checkin": str(posted.checkin_uri),
        "checkin_cid": str(posted.checkin_cid),
        "post": str(posted.post_uri),
        "post_cid": str(posted.post_cid),
        "commit": posted.commit_cid,
        "rev": posted.rev,
    }
    if as_json:
        print(json.dumps(rows))
        return
    print(f"check-in  {rows['checkin']}")
    print(f"post      {rows['post']}")
    print(f"commit    {rows['commit']} (rev {rows['rev']})")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

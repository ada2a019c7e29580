"""`scripts/publish-feed`: write, update or delete an `app.bsky.feed.generator` record.

The record announces a feed (`at://<your DID>/app.bsky.feed.generator/<rkey>`) and names the
service DID that answers `getFeedSkeleton` for it. Updating keeps the original `createdAt` and,
unless a new one is given, the avatar. The avatar must be a PNG or JPEG of at most 1,000,000
bytes (the lexicon's limit); larger images are shrunk (and stripped of metadata) first.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from atproto import Client, models
from atproto_client.exceptions import AtProtocolError, BadRequestError
from PIL import Image, UnidentifiedImageError

from atcore import nsids
from atcore.syntax import Datetime, is_valid_did, is_valid_record_key
from skyspot_client.cli.common import UsageError, add_login_arguments, fail, login
from skyspot_client.client import UnexpectedReply, upload_photo
from skyspot_client.photos import PhotoInput, prepare_photo
from skyspot_client.post import grapheme_count

DEFAULT_RKEY: Final = "nearby"  # the feed generator's global feed (feedgen NEARBY_FEED_RKEY)
MAX_AVATAR_BYTES: Final = 1_000_000
AVATAR_FORMATS: Final = frozenset({"PNG", "JPEG"})
MAX_NAME_GRAPHEMES: Final = 24
MAX_DESCRIPTION_GRAPHEMES: Final = 300


def parser() -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(
        prog="publish-feed",
        description="Write, update or delete the app.bsky.feed.generator record of a feed.",
    )
    add_login_arguments(parse)
    parse.add_argument(
        "--rkey", default=DEFAULT_RKEY, help="the feed's record key (default %(default)s)"
    )
    parse.add_argument(
        "--service-did",
        default=_default_service_did(),
        help="DID of the feed generator service (env FEEDGEN_SERVICE_DID, or did:web of "
        "FEEDGEN_HOSTNAME)",
    )
    parse.add_argument("--display-name", help=f"up to {MAX_NAME_GRAPHEMES} graphemes")
    parse.add_argument("--description", help=f"up to {MAX_DESCRIPTION_GRAPHEMES} graphemes")
    parse.add_argument("--avatar", type=Path, help="PNG or JPEG image")
    parse.add_argument(
        "--accepts-interactions",
        action="store_true",
        help="the generator accepts interaction feedback",
    )
    parse.add_argument("--delete", action="store_true", help="delete the record instead")
    parse.add_argument("--dry-run", action="store_true", help="print the record, write nothing")
    return parse


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not is_valid_record_key(args.rkey):
        return fail(f"--rkey: {args.rkey!r} is not a record key", 2)
    try:
        client, did = login(args)
        try:
            uri = f"at://{did}/{nsids.BSKY_FEED_GENERATOR}/{args.rkey}"
            if args.delete:
                if not args.dry_run:
                    _delete(client, did, args.rkey)
                print(f"{'would delete' if args.dry_run else 'deleted'} {uri}")
                return 0
            record = _record(client, did, args)
            if args.dry_run:
                print(json.dumps(record, indent=2, ensure_ascii=False))
                return 0
            _put(client, did, args.rkey, record)
        finally:
            client.request.close()
    except UsageError as exc:
        return fail(str(exc), status=2)
    except (AtProtocolError, UnexpectedReply, OSError) as exc:
        return fail(f"{type(exc).__name__}: {exc}")
    print(f"published {uri}")
    print(f"https://bsky.app/profile/{did}/feed/{args.rkey}")
    return 0


def _record(client: Client, did: str, args: argparse.Namespace) -> dict[str, Any]:
    existing = _existing(client, did, args.rkey) or {}
    service_did = args.service_did or existing.get("did")
    if not service_did or not is_valid_did(service_did):
        raise UsageError("--service-did must be the feed generator's DID")
    name = args.display_name or existing.get("displayName")
    if not name or grapheme_count(name) > MAX_NAME_GRAPHEMES:
        raise UsageError(f"--display-name is required, at most {MAX_NAME_GRAPHEMES} graphemes")
    record: dict[str, Any] = {
        "$type": nsids.BSKY_FEED_GENERATOR,
        "did": service_did,
        "displayName": name,
        "createdAt": existing.get("createdAt") or str(Datetime.from_datetime(_now())),
    }
    description = args.description if args.description is not None else existing.get("description")
    if description:
        if grapheme_count(description) > MAX_DESCRIPTION_GRAPHEMES:
            raise UsageError(f"--description: at most {MAX_DESCRIPTION_GRAPHEMES} graphemes")
        record["description"] = description
    avatar = _avatar(client, args.avatar, args.dry_run) if args.avatar else existing.get("avatar")
    if avatar:
        record["avatar"] = avatar
    if args.accepts_interactions or existing.get("acceptsInteractions"):
        record["acceptsInteractions"] = True
    return record


def _avatar(client: Client, path: Path, dry_run: bool) -> dict[str, Any]:
    data = path.read_bytes()
    try:
        with Image.open(io.BytesIO(data)) as image:
            image_format = image.format
    except UnidentifiedImageError:
        raise UsageError(f"--avatar: {path} is not an image") from None
    if image_format not in AVATAR_FORMATS:
        raise UsageError(f"--avatar must be a PNG or JPEG, not {image_format}")
    photo = PhotoInput(data, "feed avatar")
    if dry_run:
        size = len(prepare_photo(photo, max_bytes=MAX_AVATAR_BYTES).data)
        return {"$type": "blob", "mimeType": f"image/{image_format.lower()}", "size": size}
    uploaded = upload_photo(client, photo)  # shrinks to 1,000,000 bytes and strips metadata
    if uploaded.image.size > MAX_AVATAR_BYTES:
        raise UsageError(f"--avatar is still {uploaded.image.size} bytes after shrinking")
    return uploaded.image.to_json()


def _existing(client: Client, did: str, rkey: str) -> dict[str, Any] | None:
    query = models.ComAtprotoRepoGetRecord.Params(
        repo=did, collection=nsids.BSKY_FEED_GENERATOR, rkey=rkey
    )
    try:
        response = client.invoke_query(nsids.REPO_GET_RECORD, params=query)
    except BadRequestError:
        return None
    value = response.content.get("value") if isinstance(response.content, dict) else None
    return value if isinstance(value, dict) else None


def _put(client: Client, did: str, rkey: str, record: dict[str, Any]) -> None:
    body = {"repo": did, "collection": nsids.BSKY_FEED_GENERATOR, "rkey": rkey, "record": record}
    client.invoke_procedure(
        nsids.REPO_PUT_RECORD,
        content=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )


def _delete(client: Client, did: str, rkey: str) -> None:
    body = {"repo": did, "collection": nsids.BSKY_FEED_GENERATOR, "rkey": rkey}
    client.invoke_procedure(
        nsids.REPO_DELETE_RECORD,
        content=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )


def _default_service_did() -> str | None:
    hostname = os.environ.get("FEEDGEN_HOSTNAME")
    return os.environ.get("FEEDGEN_SERVICE_DID") or (f"did:web:{hostname}" if hostname else None)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

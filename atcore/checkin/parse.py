"""Data-model record → `Checkin`, enforcing the rules a lexicon cannot express.

`parse_checkin` never trusts the input's shape (a wrong type raises `CheckinError`, never a
`KeyError` or `TypeError`), but it checks only what the lexicon does not: run `validate_checkin`
for records from outside, which checks the lexicon first. Beyond the location rules (`locations`):

* `precision`, when present, is one of `exact`, `neighborhood`, `city` (a reader that did not know
  a precision could not honor it, so unknown values are refused rather than ignored);
* a coarse check-in has no venue `place.uri`;
* at most 4 photos, each a JPEG/PNG/WebP/GIF/HEIC/HEIF/AVIF blob with non-blank alt text;
* facets need text, and each facet's byte range lies inside it;
* companions are distinct DIDs, and not the author;
* `post` is a strong reference to an `app.bsky.feed.post` in the author's own repository (by DID),
  under the check-in's own record key, with a DAG-CBOR CID.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from atcore import nsids
from atcore.checkin.coords import Precision
from atcore.checkin.errors import CheckinError
from atcore.checkin.locations import optional_str, parse_locations
from atcore.checkin.model import AspectRatio, Checkin, Photo, Place, StrongRef
from atcore.cid import CID, CidError
from atcore.datajson import BlobRef, DataModelError
from atcore.syntax import Datetime, InvalidSyntax, parse_at_uri, parse_datetime

ROOT: Final = "record"
MAX_PHOTOS: Final = 4
IMAGE_TYPES: Final = frozenset(
    {"image/jpeg", "image/png", "image/webp", "image/gif", "image/heic", "image/heif", "image/avif"}
)


def parse_checkin(
    record: Mapping[str, Any], *, author: str | None = None, rkey: str | None = None
) -> Checkin:
    """Build the typed check-in; `author` (the repo DID) and `rkey` enable the `post` checks."""
    if not isinstance(record, Mapping):
        raise CheckinError(ROOT, "must be an object")
    record_type = record.get("$type", nsids.SKYSPOT_CHECKIN)
    if record_type != nsids.SKYSPOT_CHECKIN:
        raise CheckinError(f"{ROOT}/$type", f"must be {nsids.SKYSPOT_CHECKIN}")
    precision = _precision(record.get("precision"))
    text = optional_str(record, "text", ROOT)
    return Checkin(
        place=_place(record.get("place"), precision),
        locations=parse_locations(record.get("locations"), precision, f"{ROOT}/locations"),
        created_at=_datetime(record.get("createdAt"), "createdAt"),
        precision=precision,
        text=text,
        facets=_facets(record.get("facets"), text),
        langs=_strings(record.get("langs"), "langs"),
        photos=_photos(record.get("photos")),
        companions=_companions(record.get("companions"), author),
        visited_at=None
        if record.get("visitedAt") is None
        else _datetime(record["visitedAt"], "visitedAt"),
        post=None if record.get("post") is None else _post(record["post"], author, rkey),
    )


def _precision(value: object) -> Precision:
    if value is None:
        return Precision.EXACT
    for precision in Precision:
        if value == precision.value:
            return precision
    known = ", ".join(p.value for p in Precision)
    raise CheckinError(f"{ROOT}/precision", f"must be one of {known}")


def _place(value: object, precision: Precision) -> Place:
    path = f"{ROOT}/place"
    if not isinstance(value, Mapping):
        raise CheckinError(path, "must be an object")
    name = value.get("name")
    if type(name) is not str or not name.strip():
        raise CheckinError(f"{path}/name", "must be a non-empty string")
    uri = optional_str(value, "uri", path)
    if uri is not None and precision.is_coarse:
        raise CheckinError(f"{path}/uri", f"must be absent for {precision} precision")
    return Place(name, optional_str(value, "category", path), uri)


def _datetime(value: object, key: str) -> Datetime:
    if type(value) is not str:
        raise CheckinError(f"{ROOT}/{key}", "must be a datetime string")
    try:
        return parse_datetime(value)
    except InvalidSyntax as exc:
        raise CheckinError(f"{ROOT}/{key}", f"must be a valid datetime ({exc})") from None


def _array(value: object, key: str) -> list[Any]:
    if value is None:
        return []
    if type(value) is not list:
        raise CheckinError(f"{ROOT}/{key}", "must be an array")
    return value


def _strings(value: object, key: str) -> tuple[str, ...]:
    items = _array(value, key)
    for index, item in enumerate(items):
        if type(item) is not str:
            raise CheckinError(f"{ROOT}/{key}/{index}", "must be a string")
    return tuple(items)


def _photos(value: object) -> tuple[Photo, ...]:
    items = _array(value, "photos")
    if len(items) > MAX_PHOTOS:
        raise CheckinError(f"{ROOT}/photos", f"must have at most {MAX_PHOTOS} photos")
    return tuple(_photo(item, f"{ROOT}/photos/{index}") for index, item in enumerate(items))


def _photo(value: object, path: str) -> Photo:
    if not isinstance(value, Mapping):
        raise CheckinError(path, "must be an object")
    try:
        image = BlobRef.from_data(value.get("image"))
    except DataModelError as exc:
        raise CheckinError(f"{path}/image", f"must be a blob reference ({exc})") from None
    if image.mime_type not in IMAGE_TYPES:
        raise CheckinError(
            f"{path}/image",
            f"must be a JPEG, PNG, WebP, GIF, HEIC or AVIF image, not {image.mime_type}",
        )
    alt = value.get("alt")
    if type(alt) is not str or not alt.strip():
        raise CheckinError(f"{path}/alt", "must describe the photo (alt text is required)")
    return Photo(image, alt, _aspect_ratio(value.get("aspectRatio"), f"{path}/aspectRatio"))


def _aspect_ratio(value: object, path: str) -> AspectRatio | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise CheckinError(path, "must be an object")
    width, height = value.get("width"), value.get("height")
    if type(width) is not int or type(height) is not int or width < 1 or height < 1:
        raise CheckinError(path, "must have positive integer width and height")
    return AspectRatio(width, height)


def _facets(value: object, text: str | None) -> tuple[Mapping[str, Any], ...]:
    items = _array(value, "facets")
    if not items:
        return ()
    if text is None:
        raise CheckinError(f"{ROOT}/facets", "must be absent when there is no text")
    size = len(text.encode("utf-8"))
    for index, facet in enumerate(items):
        path = f"{ROOT}/facets/{index}"
        span = facet.get("index") if isinstance(facet, Mapping) else None
        if not isinstance(span, Mapping):
            raise CheckinError(f"{path}/index", "must be an object")
        start, end = span.get("byteStart"), span.get("byteEnd")
        if type(start) is not int or type(end) is not int or not 0 <= start < end <= size:
            raise CheckinError(f"{path}/index", f"must be a byte range inside the text (0..{size})")
    return tuple(items)


def _companions(value: object, author: str | None) -> tuple[str, ...]:
    companions = _strings(value, "companions")
    seen: set[str] = set()
    for index, did in enumerate(companions):
        if did in seen:
            raise CheckinError(f"{ROOT}/companions/{index}", "must not repeat a companion")
        if did == author:
            raise CheckinError(f"{ROOT}/companions/{index}", "must not be the author")
        seen.add(did)
    return companions


def _post(value: object, author: str | None, rkey: str | None) -> StrongRef:
    path = f"{ROOT}/post"
    if not isinstance(value, Mapping):
        raise CheckinError(path, "must be an object")
    uri_text, cid_text = value.get("uri"), value.get("cid")
    try:
        uri = parse_at_uri(uri_text) if type(uri_text) is str else None
    except InvalidSyntax:
        uri = None
    # Split once: the typed accessors re-validate on every call, and this is the hot path.
    authority, _, path_part = (uri or "").removeprefix("at://").partition("/")
    collection, _, key = path_part.partition("/")
    if uri is None or collection != nsids.BSKY_FEED_POST or not key or "/" in key:
        raise CheckinError(f"{path}/uri", f"must be the at:// URI of an {nsids.BSKY_FEED_POST}")
    if not authority.startswith("did:") or (author is not None and authority != author):
        raise CheckinError(f"{path}/uri", "must name a post in the author's repository, by DID")
    if rkey is not None and key != rkey:
        raise CheckinError(f"{path}/uri", f"must use the check-in's record key ({rkey})")
    try:
        cid = CID.parse(cid_text) if type(cid_text) is str else None
    except CidError:
        cid = None
    if cid is None or not cid.is_dag_cbor():
        raise CheckinError(f"{path}/cid", "must be the CID of a record (CIDv1, dag-cbor, sha-256)")
    return StrongRef(uri, cid)

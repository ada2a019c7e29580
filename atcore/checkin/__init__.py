"""The typed check-in model shared by every service, and the rules its lexicon cannot express.

    checkin = validate_checkin(catalog, record, author=did, rkey=rkey)   # lexicon + rules
    checkin.coordinates.latitude_e6, checkin.precision, checkin.photos[0].image.ref
    record = checkin_to_json(checkin)                                    # and back

Records are in the data-model form (`atcore.datajson.json_to_data` converts JSON). Coordinates
are integer microdegrees; degrees strings follow `-?[0-9]{1,3}(.[0-9]{1,6})?` within
[-90, 90] / [-180, 180]; coarse precisions publish fewer decimals and coarser H3 cells; photos are
at most 4 images with alt text; the companion post lives in the author's repo under the same rkey.
docs/lexicons.md explains every field and rule.

Errors: `CheckinError(ValueError)` only, with `.path` (`record/locations/0/latitude`), `.reason`
and a message naming the field; lexicon failures are re-raised as `CheckinError` too.
"""

from atcore.checkin.coords import (
    LATITUDE_LIMIT,
    LONGITUDE_LIMIT,
    MAX_DECIMALS,
    Coordinates,
    Precision,
    format_degrees,
    parse_degrees,
)
from atcore.checkin.encode import checkin_to_data, checkin_to_json, location_to_data
from atcore.checkin.errors import CheckinError
from atcore.checkin.model import (
    AddressLocation,
    AspectRatio,
    Checkin,
    FsqLocation,
    GeoLocation,
    H3Location,
    Location,
    OtherLocation,
    Photo,
    Place,
    StrongRef,
)
from atcore.checkin.parse import IMAGE_TYPES, MAX_PHOTOS, parse_checkin
from atcore.checkin.validate import ALWAYS_VALIDATED, check_record, validate_checkin

__all__ = [
    "ALWAYS_VALIDATED",
    "IMAGE_TYPES",
    "LATITUDE_LIMIT",
    "LONGITUDE_LIMIT",
    "MAX_DECIMALS",
    "MAX_PHOTOS",
    "AddressLocation",
    "AspectRatio",
    "Checkin",
    "CheckinError",
    "Coordinates",
    "FsqLocation",
    "GeoLocation",
    "H3Location",
    "Location",
    "OtherLocation",
    "Photo",
    "Place",
    "Precision",
    "StrongRef",
    "check_record",
    "checkin_to_data",
    "checkin_to_json",
    "format_degrees",
    "location_to_data",
    "parse_checkin",
    "parse_degrees",
    "validate_checkin",
]

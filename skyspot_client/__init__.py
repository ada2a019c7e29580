"""Skyspot for developers: post check-ins with the plain `atproto` SDK, correctly.

    from skyspot_client import PhotoInput, post_checkin
    posted = post_checkin(client, lat=48.8584, lon=2.2945, place="Tour Eiffel",
                          photos=[PhotoInput.from_path("eiffel.jpg", alt="The tower at dusk")])

`post_checkin` uploads the photos, writes the `app.skyspot.checkin` record and its companion
`app.bsky.feed.post` in one commit and returns both URIs and CIDs. `compose_checkin` and
`build_checkin_writes` do the same offline (for other clients, or async code), and
`skyspot_client.post` holds the companion-post convention documented in docs/lexicons.md.

Errors: `atcore.checkin.CheckinError` (a `ValueError`, naming the field) for invalid input, raised
before any request; `UnexpectedReply` if the PDS stored other CIDs than the ones computed.
"""

from atcore.checkin import CheckinError, Precision
from skyspot_client.client import (
    PostedCheckin,
    UnexpectedReply,
    apply_checkin_writes,
    post_checkin,
    upload_photo,
)
from skyspot_client.compose import CheckinWrites, build_checkin_writes, compose_checkin
from skyspot_client.photos import PhotoInput, prepare_photo
from skyspot_client.post import compose_post, venue_link

__all__ = [
    "CheckinError",
    "CheckinWrites",
    "PhotoInput",
    "PostedCheckin",
    "Precision",
    "UnexpectedReply",
    "apply_checkin_writes",
    "build_checkin_writes",
    "compose_checkin",
    "compose_post",
    "post_checkin",
    "prepare_photo",
    "upload_photo",
    "venue_link",
]

"""Interop with the official Bluesky AppView (`@atproto/bsky`), run by scripts/appview_interop.py.

- `node`: Node 22 and `@atproto/bsky` from npm, installed into a directory of the caller's choice;
- `postgres`: a throw-away PostgreSQL 15 cluster on 127.0.0.1 (the AppView's only dependency);
- `appview`: the AppView's identity on our PLC directory and the AppView process itself;
- `scenario`: accounts, check-ins with photos and the checks on what the AppView serves.

Errors::

    InteropError            (ValueError) the interop run cannot go on
    ├── InteropUnavailable  a prerequisite is missing here (npm, PostgreSQL binaries, ...)
    └── InteropFailure      a check failed: the AppView does not serve what it should
"""


class InteropError(ValueError):
    """The interop run cannot go on; the message says why."""


class InteropUnavailable(InteropError):
    """Something the run needs is not available on this machine."""


class InteropFailure(InteropError):
    """A check failed: what the AppView served differs from what it should serve."""

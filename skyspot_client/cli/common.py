"""What the command-line tools share: where the PDS is, who logs in, how failures are reported.

Credentials come from flags or, better (they stay out of shell history), the environment:
`SKYSPOT_PDS`, `SKYSPOT_IDENTIFIER` (handle, DID or email) and `SKYSPOT_PASSWORD` (use an app
password on a public PDS).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from typing import Final
from urllib.parse import urlsplit

from atproto import Client

DEFAULT_PDS: Final = "http://localhost:2583"


class UsageError(ValueError):
    """The command line cannot be acted on (reported without a traceback, exit status 2)."""


def add_pds_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pds",
        default=os.environ.get("SKYSPOT_PDS", DEFAULT_PDS),
        help="PDS URL (env SKYSPOT_PDS; default %(default)s)",
    )


def add_login_arguments(parser: argparse.ArgumentParser) -> None:
    add_pds_argument(parser)
    parser.add_argument(
        "--identifier",
        default=os.environ.get("SKYSPOT_IDENTIFIER"),
        help="handle, DID or email to log in as (env SKYSPOT_IDENTIFIER)",
    )
    parser.add_argument(
        "--password",
        default=os.environ.get("SKYSPOT_PASSWORD"),
        help="password or app password (env SKYSPOT_PASSWORD, preferred over this flag)",
    )


def login(args: argparse.Namespace) -> tuple[Client, str]:
    """An SDK client logged in as the command line says, and the account's DID."""
    if not args.identifier or not args.password:
        raise UsageError("give --identifier and --password (or SKYSPOT_IDENTIFIER/PASSWORD)")
    client = Client(base_url=args.pds)
    client.login(args.identifier, args.password, fetch_bsky_profile=False)
    session = client.com.atproto.server.get_session()
    return client, str(session.did)


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def fail(message: str, status: int = 1) -> int:
    print(f"error: {message}", file=sys.stderr)
    return status

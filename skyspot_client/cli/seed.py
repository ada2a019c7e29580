"""`scripts/seed`: fill a PDS with accounts and check-ins at real places, resumably."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Final

from atproto_client.exceptions import AtProtocolError

from skyspot_client.cli.common import add_pds_argument, fail, is_loopback
from skyspot_client.seed.plan import SeedPlanError
from skyspot_client.seed.runner import SeedError, SeedOptions, SeedReport, run_seed

DEV_SECRET: Final = "skyspot-dev-seed"  # noqa: S105 - loopback dev stacks only
# A new PDS's relay quotas are per hour and per day; about 1,400 commits an hour stays clear.
PUBLIC_RATE: Final = 0.4

DESCRIPTION = """\
Create N accounts and M check-ins (each with its companion post) on a PDS, at world cities
weighted by population and jittered within them, with generated JPEG photos.

Idempotent and resumable: handles, passwords and record keys derive from --seed (and --secret),
and existing check-ins are found by listing each account's records, so re-running the same
command adds only what is missing (nothing, after a complete run).
"""


def parser() -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(
        prog="seed", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_pds_argument(parse)
    parse.add_argument("--accounts", type=int, default=20, help="accounts (default %(default)s)")
    parse.add_argument("--checkins", type=int, default=200, help="check-ins (default %(default)s)")
    parse.add_argument("--seed", type=int, default=1, help="what to generate (default 1)")
    parse.add_argument(
        "--handle-prefix", default="spot", help="handles are <prefix>-<seed>-<n> (default spot)"
    )
    parse.add_argument(
        "--secret",
        default=os.environ.get("SKYSPOT_SEED_SECRET"),
        help="derives the account passwords (env SKYSPOT_SEED_SECRET); required unless the PDS "
        "is on loopback",
    )
    parse.add_argument("--invite-code", help="invite code, if the PDS requires one")
    parse.add_argument(
        "--concurrency", type=int, default=8, help="accounts written at once (default 8)"
    )
    parse.add_argument(
        "--rate-limit",
        type=float,
        help=f"commits per second at most (default: none on loopback, {PUBLIC_RATE} elsewhere, "
        "to respect relay quotas)",
    )
    parse.add_argument(
        "--photo-ratio",
        type=float,
        default=0.6,
        help="share of check-ins with 1-4 photos (default %(default)s)",
    )
    parse.add_argument(
        "--days", type=float, default=14.0, help="spread createdAt over the last N days (14)"
    )
    parse.add_argument("--dry-run", action="store_true", help="read only: say what would be done")
    parse.add_argument(
        "--no-progress", action="store_true", help="no progress bar (none unless on a terminal)"
    )
    parse.add_argument("--json", action="store_true", help="print the summary as JSON")
    return parse


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    loopback = is_loopback(args.pds)
    secret = args.secret or (DEV_SECRET if loopback else None)
    if secret is None:
        return fail("--secret (or SKYSPOT_SEED_SECRET) is required for a non-loopback PDS", 2)
    if not 0.0 <= args.photo_ratio <= 1.0 or args.concurrency < 1:
        return fail("--photo-ratio must be within 0..1 and --concurrency at least 1", 2)
    rate = args.rate_limit if args.rate_limit is not None else (0.0 if loopback else PUBLIC_RATE)
    options = SeedOptions(
        pds=args.pds,
        accounts=args.accounts,
        checkins=args.checkins,
        secret=secret,
        seed=args.seed,
        handle_prefix=args.handle_prefix,
        concurrency=args.concurrency,
        rate_limit=rate,
        photo_ratio=args.photo_ratio,
        days=args.days,
        invite_code=args.invite_code,
        dry_run=args.dry_run,
        progress=not args.no_progress and sys.stderr.isatty(),
    )
    try:
        report = run_seed(options)
    except (SeedError, SeedPlanError) as exc:
        return fail(str(exc), status=2)
    except AtProtocolError as exc:
        return fail(f"{type(exc).__name__}: {exc}")
    print(report.as_json() if args.json else _summary(report))
    return 0


def _summary(report: SeedReport) -> str:
    if report.dry_run:
        return (
            f"accounts: {report.accounts_existing} existing, "
            f"{report.accounts_missing} to create\n"
            f"check-ins: {report.checkins_present} already present, would write "
            f"{report.checkins_planned} ({report.photos_planned} photos)"
        )
    return (
        f"accounts: {report.accounts_existing} existing, {report.accounts_created} created\n"
        f"check-ins: {report.checkins_present} already present, wrote "
        f"{report.checkins_written} ({report.photos_uploaded} photos) in {report.seconds:.1f} s"
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

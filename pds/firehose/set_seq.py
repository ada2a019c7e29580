"""Operator command: move the firehose sequence forward, e.g. above a relay's last seen seq.

    python -m pds.firehose.set_seq --above 123456     # every future event gets a seq > 123456
    python -m pds.firehose.set_seq --show             # print the last assigned seq

After restoring a backup, or moving the PDS to fresh storage, the relays still hold the cursor
they last saw; new events must be numbered above it, or a relay would take them for events it
already has. The change is durable (`sequencer_state`, in one transaction) and safe while the PDS
runs: SQLite serializes it with the PDS's writes, and the firehose reads events by seq, so it
simply continues with the higher numbers. The sequence never moves back: asking for a value at
or below the current one changes nothing.

The database is the PDS's (`PDS_DATA_DIRECTORY`/pds.sqlite, from the same environment as
`python -m pds`), or the file given with `--db`.

Errors: a malformed argument or an unusable environment exits with status 2 and a message.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from pds.db.engine import Database
from pds.sequencer import last_seq, set_next_seq
from pds.settings import PdsSettings, SettingsError


async def raise_floor(db: Database, above: int) -> tuple[int, int]:
    """Make every future seq greater than `above`; returns (last seq before, last seq after)."""
    async with db.transaction() as conn:
        before = await last_seq(conn)
        if above > before:
            await set_next_seq(conn, above + 1)
        return before, max(before, above)


async def show(db: Database) -> int:
    async with db.read() as conn:
        return await last_seq(conn)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pds.firehose.set_seq",
        description="Move the PDS firehose sequence forward (it never moves back).",
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument(
        "--above",
        type=_non_negative,
        metavar="SEQ",
        help="make every future event's seq greater than SEQ (e.g. a relay's last seen seq)",
    )
    action.add_argument("--show", action="store_true", help="print the last assigned seq")
    parser.add_argument("--db", type=Path, help="the PDS SQLite file (default: from PDS_* env)")
    return parser


def _non_negative(raw: str) -> int:
    if not raw.isascii() or not raw.isdigit():
        raise argparse.ArgumentTypeError(f"{raw!r} is not a non-negative integer")
    return int(raw)


def _database_path(given: Path | None) -> Path:
    if given is not None:
        return given
    return PdsSettings.from_env().sqlite_path


async def _run(args: argparse.Namespace) -> str:
    db = Database(_database_path(args.db))
    try:
        await db.migrate()
        if args.show:
            return f"last seq: {await show(db)}"
        before, after = await raise_floor(db, args.above)
        if after == before:
            return f"unchanged: the last seq {before} is already at or above {args.above}"
        return f"last seq moved from {before} to {after}; the next event gets {after + 1}"
    finally:
        await db.close()


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        print(asyncio.run(_run(args)))
    except SettingsError as exc:
        print(f"set_seq: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()

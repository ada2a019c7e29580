"""The operator command that moves the sequence above a relay's last seen seq."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from pds.db.engine import Database
from pds.firehose import set_seq
from pds.sequencer import Sequencer, events_after, last_seq, sequence_identity
from tests.pds.firehose.support import (
    checkin,
    head_seq,
    loop_stack,
    read_stream,
    wait_for_subscribers,
)

REPO_ROOT = Path(__file__).resolve().parents[3]


def run_command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pds.firehose.set_seq", *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        timeout=120,
        check=False,
    )


async def write_events(path: Path, count: int) -> list[int]:
    db = Database(path)
    await db.migrate()
    sequencer = Sequencer(db)
    try:
        async with sequencer.transaction() as conn:
            return [await sequence_identity(conn, "did:plc:setseqtest", None) for _ in range(count)]
    finally:
        await db.close()


async def stored_seqs(path: Path) -> tuple[int, list[int]]:
    db = Database(path)
    try:
        async with db.read() as conn:
            return await last_seq(conn), [e.seq for e in await events_after(conn, 0)]
    finally:
        await db.close()


async def test_the_command_raises_the_floor_durably_and_never_lowers_it(tmp_path: Path) -> None:
    path = tmp_path / "pds.sqlite"
    assert await write_events(path, 3) == [1, 2, 3]

    moved = run_command("--db", str(path), "--above", "1000")
    assert moved.returncode == 0, moved.stderr
    assert "the next event gets 1001" in moved.stdout
    assert await write_events(path, 1) == [1001]

    unchanged = run_command("--db", str(path), "--above", "500")
    assert unchanged.returncode == 0, unchanged.stderr
    assert unchanged.stdout.startswith("unchanged")
    shown = run_command("--db", str(path), "--show")
    assert shown.stdout.strip() == "last seq: 1001"
    assert await stored_seqs(path) == (1001, [1, 2, 3, 1001])


def test_malformed_arguments_exit_with_status_2(tmp_path: Path) -> None:
    path = str(tmp_path / "pds.sqlite")
    for args in (["--above", "-5"], ["--above", "12x"], [], ["--above", "1", "--show"]):
        result = run_command("--db", path, *args)
        assert result.returncode == 2, args


async def test_a_running_pds_continues_above_the_new_floor(tmp_path: Path) -> None:
    async with loop_stack(tmp_path) as stack:
        account = await stack.create_account()
        before = await head_seq(stack)
        relay_cursor = 5000
        argv = ["--db", str(stack.settings.sqlite_path), "--above", str(relay_cursor)]
        await asyncio.to_thread(set_seq.main, argv)
        # A relay that last saw 5000 is not told its cursor is in the future...
        reader = asyncio.create_task(
            read_stream(stack.http, stack.subscribe_url(f"cursor={relay_cursor}"), count=1)
        )
        await wait_for_subscribers(stack, 1, reader)
        await stack.create_record(account, checkin(1))
        received = await reader
        assert received.error is None
        # ...and gets the next event numbered above it; a replay shows the jump.
        assert received.seqs() == [relay_cursor + 1]
        replayed = await read_stream(
            stack.http, stack.subscribe_url("cursor=0"), until_seq=relay_cursor + 1
        )
        assert replayed.seqs() == [*range(1, before + 1), relay_cursor + 1]

"""Partitioning by DID: the hash, cursor keys, where a partition resumes, and the setting.

Plus the two queries partitions add (the resync queue's keyset scan, a source's cursor rows), on
every backend. The whole-consumer behaviour (partitions against one stream and one index,
re-partitioning mid-stream) is in test_partition_consumers.py.
"""

from __future__ import annotations

import base64
import hashlib
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from firehose_consumer.db import queries
from firehose_consumer.partition import (
    WHOLE,
    Partition,
    PartitionError,
    partition_of,
    partition_of_key,
    resume_seq,
)
from firehose_consumer.settings import ConsumerSettings, SettingsError
from tests.firehose_consumer.test_queries import engine  # noqa: F401 - fixture: every backend
from tests.pg import pg_cluster  # noqa: F401 - fixture (for the engine's PostgreSQL case)

ROOT = Path(__file__).resolve().parents[2]
SOURCE = "wss://relay.example"


def plc_like(n: int) -> str:
    """A did:plc-shaped DID (24 base32 characters), different for every n."""
    digest = hashlib.blake2b(n.to_bytes(8, "big"), digest_size=15).digest()
    return "did:plc:" + base64.b32encode(digest).decode().lower()


def web_like(n: int) -> str:
    """Structured DIDs that differ in a digit or two: where a weak hash clusters."""
    return f"did:web:user{n}.example.com"


# -- the hash -------------------------------------------------------------------------------------

# The first 8 bytes of SHA-256 over the DID, as `sha256sum` prints them. Deployed indexes depend on
# this function: changing it would silently move every DID to another partition.
PINNED = {
    "did:plc:ewvi7nxzyoun6zhxrhs64oiz": "099e4ea96cd62c05",
    "did:web:example.com": "3e234cd33525135d",
}


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7, 16, 1000])
def test_the_hash_is_the_first_eight_bytes_of_sha256(count: int) -> None:
    for did, prefix in PINNED.items():
        assert partition_of(did, count) == int(prefix, 16) % count


def test_the_hash_does_not_depend_on_the_process() -> None:
    """Unlike `hash()`, which is salted per process (PYTHONHASHSEED)."""
    dids = [plc_like(n) for n in range(50)] + [web_like(n) for n in range(50)]
    script = (
        "import sys; from firehose_consumer.partition import partition_of; "
        "print(' '.join(str(partition_of(d, 7)) for d in sys.argv[1:]))"
    )
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
        done = subprocess.run(
            [sys.executable, "-c", script, *dids], env=env, cwd=ROOT, capture_output=True,
            text=True, check=True, timeout=60,
        )  # fmt: skip
        assert done.stdout.split() == [str(partition_of(d, 7)) for d in dids]


@given(
    count=st.integers(min_value=2, max_value=16),
    first=st.integers(min_value=0, max_value=10**9),
    shape=st.sampled_from([plc_like, web_like]),
)
def test_partitions_are_uniform(count: int, first: int, shape: object) -> None:
    """4,000 consecutive DIDs spread evenly: each share within 6 standard deviations."""
    total = 4000
    assert callable(shape)
    shares = [0] * count
    for n in range(first, first + total):
        shares[partition_of(shape(n), count)] += 1
    p = 1 / count
    sigma = math.sqrt(total * p * (1 - p))
    assert all(abs(share - total * p) <= 6 * sigma for share in shares), shares


@given(did=st.text(min_size=1, max_size=80), count=st.integers(min_value=1, max_value=64))
def test_every_did_belongs_to_exactly_one_partition(did: str, count: int) -> None:
    owners = [i for i in range(count) if Partition(i, count).owns(did)]
    assert owners == [partition_of(did, count)]


@given(
    did=st.text(min_size=1, max_size=40),
    fine=st.integers(min_value=1, max_value=12),
    index=st.integers(min_value=0),
    coarse=st.integers(min_value=1, max_value=12),
)
def test_a_coarser_partition_contains_the_finer_ones_it_says(
    did: str, fine: int, index: int, coarse: int
) -> None:
    part = Partition(index % fine, fine)
    outer = Partition(part.index % coarse, coarse)
    if outer.contains(part) and part.owns(did):
        assert outer.owns(did)
    assert outer.contains(part) == (fine % coarse == 0)


# -- cursor keys ----------------------------------------------------------------------------------


@given(index=st.integers(min_value=0, max_value=99), count=st.integers(min_value=1, max_value=100))
def test_cursor_keys_name_their_partition(index: int, count: int) -> None:
    part = Partition(index % count, count)
    key = part.cursor_key(SOURCE)
    assert partition_of_key(SOURCE, key) == part
    assert partition_of_key(SOURCE + ":1", key) is None  # another source's key
    assert (key == SOURCE) == (count == 1)  # one consumer keeps the row it always had


def test_foreign_and_garbled_keys_are_not_partitions() -> None:
    assert partition_of_key(SOURCE, "wss://relay.example.org") is None
    assert partition_of_key(SOURCE, f"{SOURCE}#partition=3/2") is None
    assert partition_of_key(SOURCE, f"{SOURCE}#partition=x") is None
    assert partition_of_key(SOURCE, f"{SOURCE}#other") is None


# -- where a partition resumes --------------------------------------------------------------------

UNIVERSE = [plc_like(n) for n in range(600)]
partitions = st.integers(min_value=1, max_value=6).flatmap(
    lambda n: st.builds(Partition, st.integers(min_value=0, max_value=n - 1), st.just(n))
)


@given(
    stored=st.dictionaries(partitions, st.integers(min_value=0, max_value=1000), max_size=8),
    target=partitions,
    start=st.none() | st.integers(min_value=0, max_value=1000),
)
def test_a_partition_never_resumes_past_an_event_one_of_its_dids_needs(
    stored: dict[Partition, int], target: Partition, start: int | None
) -> None:
    """A row at seq c means: every event up to c of the DIDs it owns is indexed. So each of the
    target's DIDs is indexed up to the highest row owning it (or from `start` when none does), and
    the partition must resume at or below the lowest of those points."""
    keys = {part.cursor_key(SOURCE): seq for part, seq in stored.items()}
    keys["wss://another.example#partition=0/2"] = 0  # other sources' rows are no concern
    resumed = resume_seq(target, SOURCE, keys, start)
    if not stored:
        assert resumed == start
        return
    assert resumed is not None
    for did in UNIVERSE:
        if not target.owns(did):
            continue
        owners = [seq for part, seq in stored.items() if part.owns(did)]
        if owners:
            assert resumed <= max(owners)
        elif start is not None:
            assert resumed <= start


@given(
    stored=st.dictionaries(partitions, st.integers(min_value=0, max_value=1000), max_size=8),
    target=partitions,
)
def test_a_partition_resumes_no_lower_than_any_complete_cover(
    stored: dict[Partition, int], target: Partition
) -> None:
    """Its own row, a row containing it, or every row of a complete partitioning: obsolete rows
    of older partitionings never drag it back further than that."""
    keys = {part.cursor_key(SOURCE): seq for part, seq in stored.items()}
    resumed = resume_seq(target, SOURCE, keys, 0)
    for part, seq in stored.items():
        if part.contains(target):
            assert resumed is not None
            assert resumed >= seq
    for count in {part.count for part in stored}:
        group = [seq for part, seq in stored.items() if part.count == count]
        if len(group) == count:
            assert resumed is not None
            assert resumed >= min(group)


def test_resume_examples() -> None:
    one, halves = WHOLE.cursor_key(SOURCE), [Partition(i, 2).cursor_key(SOURCE) for i in (0, 1)]
    thirds = [Partition(i, 3).cursor_key(SOURCE) for i in range(3)]
    # 1 -> 2: both halves start at the single consumer's cursor.
    assert resume_seq(Partition(1, 2), SOURCE, {one: 40}, None) == 40
    # 2 -> 3: from the lower half; the stale single row (10) no longer matters.
    stored = {one: 10, halves[0]: 70, halves[1]: 55}
    assert resume_seq(Partition(2, 3), SOURCE, stored, None) == 55
    # Only one half ever ran: the other half's DIDs go back to the start, or the lowest row.
    assert resume_seq(Partition(0, 3), SOURCE, {halves[0]: 70}, 0) == 0
    assert resume_seq(Partition(0, 3), SOURCE, {halves[0]: 70}, None) == 70
    # 3 -> 1: the single consumer's old row is behind the complete thirds.
    stored = {one: 10, thirds[0]: 90, thirds[1]: 95, thirds[2]: 93}
    assert resume_seq(WHOLE, SOURCE, stored, 0) == 90
    # Nothing stored: CONSUMER_START_CURSOR.
    assert resume_seq(Partition(0, 2), SOURCE, {}, 5) == 5


# -- the queries partitions rely on, on every backend ---------------------------------------------


async def test_the_resync_queue_pages_in_order(engine: AsyncEngine) -> None:  # noqa: F811
    """The keyset scan a partition uses: every due repo once, oldest first, none early."""
    dids = [f"did:plc:{n:024d}" for n in range(30)]
    async with engine.begin() as conn:
        for n, did in enumerate(dids):  # three repos per due time: ties broken by DID
            await queries.mark_desynchronized(conn, [did], "active", 100 + n // 3, 0)
    seen: list[tuple[int, str]] = []
    after = None
    async with engine.connect() as conn:
        while page := await queries.due_resyncs_after(conn, 105, 4, after):
            seen += page
            after = page[-1]
    assert seen == [(100 + n // 3, did) for n, did in enumerate(dids) if 100 + n // 3 <= 105]


async def test_a_sources_cursor_rows_are_found_by_exact_prefix(engine: AsyncEngine) -> None:  # noqa: F811
    """LIKE wildcards in a source URL (`_`) match nothing but themselves."""
    source = "ws://relay_a.example:2583"
    rows = {
        source: 5,
        f"{source}#partition=0/2": 7,
        f"{source}#partition=1/2": 9,
        "ws://relayXa.example:2583#partition=0/2": 1,  # `_` must not match X
        f"{source}0": 2,  # another port
    }
    async with engine.begin() as conn:
        for key, seq in rows.items():
            await queries.save_cursor(conn, key, seq, 0)
    async with engine.connect() as conn:
        found = await queries.load_cursors_of(conn, source)
    assert found == {key: seq for key, seq in rows.items() if key.startswith(source + "#")
                     or key == source}  # fmt: skip


# -- the setting ----------------------------------------------------------------------------------


def settings_with(partition: str | None) -> ConsumerSettings:
    env = {"FIREHOSE_SERVICES": SOURCE}
    if partition is not None:
        env["CONSUMER_PARTITION"] = partition
    return ConsumerSettings.from_env(env)


@pytest.mark.parametrize(
    ("text", "expected"),
    [(None, WHOLE), ("", WHOLE), ("0/1", WHOLE), ("0/4", Partition(0, 4)),
     (" 3/4 ", Partition(3, 4)), ("07/10", Partition(7, 10))],
)  # fmt: skip
def test_partition_setting(text: str | None, expected: Partition) -> None:
    assert settings_with(text).partition == expected


@pytest.mark.parametrize(
    "text", ["4/4", "1/0", "0/0", "-1/2", "1", "1/2/3", "a/b", "1 / 2", "½/2", "0/4,1/4"]
)
def test_bad_partition_settings_name_the_variable(text: str) -> None:
    with pytest.raises(SettingsError, match=r"^CONSUMER_PARTITION: "):
        settings_with(text)


def test_partition_rejects_impossible_values_directly() -> None:
    with pytest.raises(PartitionError):
        Partition(2, 2)


def test_a_bad_partition_exits_non_zero_with_a_clear_message() -> None:
    env = {**os.environ, "FIREHOSE_SERVICES": SOURCE, "CONSUMER_PARTITION": "1of4",
           "PYTHONPATH": str(ROOT)}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "firehose_consumer"], env=env, cwd=ROOT, capture_output=True,
        text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 64
    assert "CONSUMER_PARTITION: expected i/n such as 0/4, got '1of4'" in done.stderr

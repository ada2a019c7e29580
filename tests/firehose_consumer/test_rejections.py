"""Hostile and broken input: rejected, counted, and the consumer keeps indexing.

Every case publishes the bad event(s) and then a good check-in from a well-behaved repo; the test
waits for the cursor to pass the good one (so the consumer demonstrably kept running), then checks
that nothing of the bad event reached the index and that the right counter moved.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from atcore import dagcbor, frames
from atcore.car import read_car, write_car
from atcore.crypto import K256Keypair
from tests.firehose_consumer.conftest import IndexReader, consumer_settings, eventually, running
from tests.firehose_consumer.fakenet import CHECKIN, POST, Network, SimRepo, checkin_record
from tests.firehose_consumer.test_consumer_loopback import PARIS, metric

Publish = Callable[[Network], Awaitable[SimRepo | None]]


async def _finish_with_good_checkin(network: Network) -> tuple[SimRepo, str, int]:
    good = await network.new_repo()
    rkey, body = good.checkin_with_post(*PARIS, "Good")
    return good, rkey, await network.commit(good, body)


async def _run_case(
    network: Network, url: str, publish: Publish, counter: str, **labels: str
) -> tuple[SimRepo | None, dict[tuple[str, str], dict[str, Any]]]:
    bad = await publish(network)
    good, rkey, last = await _finish_with_good_checkin(network)
    reader = IndexReader(url)
    async with running(consumer_settings(network, url)) as consumer:
        await eventually(
            lambda: _cursor_is(reader, network, last), "the good check-in after the bad event"
        )
        assert await metric(consumer, counter, **labels) >= 1
        rows = await reader.checkins()
        assert (good.did, rkey) in rows
    await reader.close()
    return bad, rows


async def _cursor_is(reader: IndexReader, network: Network, seq: int) -> bool:
    return await reader.cursor(network.host.ws_url) == seq


def _bad_rows(bad: SimRepo | None, rows: dict[tuple[str, str], Any]) -> list[tuple[str, str]]:
    return [key for key in rows if bad is not None and key[0] == bad.did]


async def forged_signature(network: Network) -> SimRepo:
    """A commit whose signature has one bit flipped (the CAR and CIDs stay consistent)."""
    repo = await network.new_repo()
    _, body = repo.checkin_with_post(*PARIS, "Forged")
    roots, blocks = read_car(body["blocks"])
    commit = dagcbor.decode(blocks.pop(roots[0]))
    commit["sig"] = commit["sig"][:-1] + bytes([commit["sig"][-1] ^ 1])
    forged, forged_block = dagcbor.cid_of(commit)
    body["blocks"] = write_car([forged], [(forged, forged_block), *blocks.items()])
    body["commit"] = forged
    await network.commit(repo, body)
    return repo


async def wrong_key(network: Network) -> SimRepo:
    repo = await network.new_repo()
    rkey = repo.clock.next_str()
    record = checkin_record(*PARIS, "Wrong key", did=repo.did, rkey=rkey, post_cid=None)
    body = repo.commit([("create", f"{CHECKIN}/{rkey}", record)], key=K256Keypair.generate())
    await network.commit(repo, body)
    return repo


async def broken_inversion(network: Network) -> SimRepo:
    repo = await network.new_repo()
    _, body = repo.checkin_with_post(*PARIS, "Missing op")
    body["ops"] = [op for op in body["ops"] if not op["path"].startswith(POST)]  # hide one op
    await network.commit(repo, body)
    return repo


async def wrong_prev_data(network: Network) -> SimRepo:
    repo = await network.new_repo()
    _, body = repo.checkin_with_post(*PARIS, "Wrong prevData")
    body["prevData"] = dagcbor.cid_of({"not": "the previous root"})[0]
    await network.commit(repo, body)
    return repo


async def mismatched_rev(network: Network) -> SimRepo:
    repo = await network.new_repo()
    _, body = repo.checkin_with_post(*PARIS, "Rev lies")
    body["rev"] = repo.clock.next_str()
    await network.commit(repo, body)
    return repo


async def no_pds_service(network: Network) -> SimRepo:
    """Signed by the right key, but the DID names no PDS: not a functioning identity."""
    repo = await network.new_repo()
    await network.plc.drop_pds(repo.did, network.rotation)
    _, body = repo.checkin_with_post(*PARIS, "Homeless")
    await network.commit(repo, body)
    return repo


async def garbage_frames(network: Network) -> None:
    for frame in (
        os.urandom(300),
        b"",
        b"\xa2",
        frames.encode_message("#commit", {"seq": 10_000_000})[:-3],  # truncated
        dagcbor.encode({"op": 1, "t": "#commit"}) + b"\xff\xff",  # header, then junk
        frames.encode_message("#commit", {"repo": "not a did", "ops": [], "seq": 1}),
        dagcbor.encode({"op": 7}) + dagcbor.encode({}),  # unknown op
    ):
        if frame:
            await network.host.publish_raw(frame)


async def oversized_frame(network: Network) -> SimRepo:
    repo = await network.new_repo()
    _, body = repo.checkin_with_post(*PARIS, "Huge")
    body["blocks"] = body["blocks"] + b"\x00" * 5_100_000  # frame over the 5 MB limit
    await network.commit(repo, body)
    return repo


async def invalid_checkin(network: Network) -> SimRepo:
    repo = await network.new_repo()
    rkey = repo.clock.next_str()
    record = checkin_record(*PARIS, "Bad", did=repo.did, rkey=rkey, post_cid=None)
    record["locations"][0]["latitude"] = "91.5"  # out of range
    await network.commit(repo, repo.commit([("create", f"{CHECKIN}/{rkey}", record)]))
    rkey2 = repo.clock.next_str()
    not_a_checkin = {"$type": CHECKIN, "place": {"name": ""}, "createdAt": "yesterday"}
    await network.commit(repo, repo.commit([("create", f"{CHECKIN}/{rkey2}", not_a_checkin)]))
    return repo


@pytest.mark.parametrize(
    ("publish", "counter", "labels"),
    [
        (forged_signature, "firehose_verification_failures_total", {"reason": "bad_signature"}),
        (wrong_key, "firehose_verification_failures_total", {"reason": "bad_signature"}),
        (broken_inversion, "firehose_verification_failures_total", {"reason": "inversion_failed"}),
        (wrong_prev_data, "firehose_verification_failures_total", {"reason": "inversion_failed"}),
        (mismatched_rev, "firehose_verification_failures_total", {"reason": "field_mismatch"}),
        (no_pds_service, "firehose_verification_failures_total", {"reason": "identity_unusable"}),
        (garbage_frames, "firehose_invalid_total", {"reason": "malformed_frame"}),
        (oversized_frame, "firehose_invalid_total", {"reason": "oversized_frame"}),
        (invalid_checkin, "firehose_invalid_total", {"reason": "invalid_record"}),
    ],
    ids=lambda value: getattr(value, "__name__", None),
)
async def test_bad_input_is_rejected_counted_and_survived(
    network: Network, sqlite_url: str, publish: Publish, counter: str, labels: dict[str, str]
) -> None:
    bad, rows = await _run_case(network, sqlite_url, publish, counter, **labels)
    assert _bad_rows(bad, rows) == []


async def test_invalid_record_does_not_break_the_chain(network: Network, sqlite_url: str) -> None:
    repo = await invalid_checkin(network)
    rkey, body = repo.checkin_with_post(*PARIS, "Valid after invalid")
    last = await network.commit(repo, body)
    reader = IndexReader(sqlite_url)
    async with running(consumer_settings(network, sqlite_url)) as consumer:
        await eventually(lambda: _cursor_is(reader, network, last), "the valid check-in")
        assert set(await reader.checkins()) == {(repo.did, rkey)}
        assert await metric(consumer, "firehose_invalid_total", reason="invalid_record") == 2
        assert await metric(consumer, "firehose_resyncs_total") == 0  # chain intact
    await reader.close()


async def test_rotated_key_is_picked_up_with_one_forced_refresh(
    network: Network, sqlite_url: str
) -> None:
    repo = await network.new_repo()
    first, body = repo.checkin_with_post(*PARIS, "Old key")
    seq = await network.commit(repo, body)
    reader = IndexReader(sqlite_url)
    async with running(consumer_settings(network, sqlite_url)) as consumer:
        await eventually(lambda: _cursor_is(reader, network, seq), "the first check-in")
        new_key = K256Keypair.generate()
        await network.plc.rotate_signing_key(repo.did, network.rotation, new_key)
        repo.key = new_key  # no #identity event: the cached document is now stale
        second, body = repo.checkin_with_post(*PARIS, "New key")
        seq = await network.commit(repo, body)
        await eventually(lambda: _cursor_is(reader, network, seq), "the re-keyed check-in")
        assert set(await reader.checkins()) == {(repo.did, first), (repo.did, second)}
        assert await metric(consumer, "firehose_verification_failures_total") == 0
    await reader.close()

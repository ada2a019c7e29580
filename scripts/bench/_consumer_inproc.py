"""The in-process sections of the consumer benchmark (`scripts.bench.consumer`): `decode`
(our filtered decode vs the `atproto` SDK's parsing path) and `verify` (verification and record
validation of every check-in commit), each timed in CPU seconds of this process on one core.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from functools import partial

from atcore import dagcbor
from atcore.car import read_car
from atcore.identity import DidDocument, atproto_account_document
from atcore.lexicon import Catalog
from firehose_consumer.decode import CHECKIN_PREFIX, decode_frame
from firehose_consumer.events import CommitEvent
from firehose_consumer.records import decode_checkin
from firehose_consumer.settings import DEFAULT_LEXICON_DIR
from firehose_consumer.verify import CommitVerifier
from scripts.bench._consumer_stream import Recording
from scripts.bench._util import Measurement


def _timed(
    label: str, subject: str, count: int, work: Callable[[], object], note: str = ""
) -> Measurement:
    """Throughput per CPU-second of this process (steadier than wall time on a busy machine)."""
    started = time.process_time()
    work()
    elapsed = time.process_time() - started
    return Measurement(label, subject, count / elapsed, note)


def _ours_filter(frames: list[bytes], tracked: set[str]) -> None:
    def interest(did: str, touches: bool) -> bool:
        return touches or did in tracked

    for frame in frames:
        decode_frame(frame, interest)


def _ours_records(frames: list[bytes], tracked: set[str]) -> int:
    found = 0

    def interest(did: str, touches: bool) -> bool:
        return touches or did in tracked

    for frame in frames:
        event = decode_frame(frame, interest)
        if isinstance(event, CommitEvent):
            wanted = [op for op in event.ops if op.path.startswith(CHECKIN_PREFIX) and op.cid]
            if wanted:
                _, blocks = read_car(event.blocks)
                for op in wanted:
                    dagcbor.decode(blocks[op.cid])  # type: ignore[index]
                    found += 1
    return found


def _sdk_records(frames: list[bytes]) -> int:
    from atproto import CAR
    from atproto_firehose import parse_subscribe_repos_message
    from atproto_subscription.frames import Frame  # type: ignore[import-untyped]

    found = 0
    for raw in frames:
        message = parse_subscribe_repos_message(Frame.from_bytes(raw))
        ops = getattr(message, "ops", None)
        if not ops:
            continue
        wanted = [op for op in ops if op.path.startswith(CHECKIN_PREFIX) and op.cid]
        if wanted:
            car = CAR.from_bytes(message.blocks)
            for op in wanted:
                if car.blocks.get(op.cid) is not None:
                    found += 1
    return found


def decode_section(recording: Recording, frames: list[bytes]) -> list[Measurement]:
    tracked = set()
    for frame in frames[:2000]:
        event = decode_frame(frame, lambda _d, touches: touches)
        if isinstance(event, CommitEvent):
            tracked.add(event.repo)
    unrelated = frames[1::2]
    both = "filtered decode + check-in records (frames/s per CPU second)"
    return [
        _timed(
            "filtered decode, relay-like traffic (frames/s per CPU second)",
            "ours: decode_frame",
            len(unrelated),
            lambda: _ours_filter(unrelated, tracked),
            "unrelated commits only",
        ),
        _timed(both, "ours", len(frames), lambda: _ours_records(frames, tracked), "1:1 mix"),
        _timed(both, "atproto SDK", len(frames), lambda: _sdk_records(frames), "1:1 mix"),
    ]


class ManifestDocuments:
    """DID documents from the recorded PLC operations (no network in this section)."""

    def __init__(self, recording: Recording) -> None:
        self._documents = {
            did: atproto_account_document(
                did,
                handle=None,
                signing_key=op["verificationMethods"]["atproto"],
                pds_endpoint=op["services"]["atproto_pds"]["endpoint"],
            )
            for did, op in recording.plc_ops().items()
        }

    async def resolve(self, did: str, *, force_refresh: bool = False) -> DidDocument:
        return self._documents[did]


async def _verify_all(
    verifier: CommitVerifier, catalog: Catalog, commits: list[CommitEvent]
) -> None:
    for event in commits:
        parsed = await verifier.verify_commit(event)
        for op in event.ops:
            if op.path.startswith(CHECKIN_PREFIX) and op.cid is not None:
                rkey = op.path.split("/", 1)[1]
                decode_checkin(catalog, parsed.blocks[op.cid], did=event.repo, rkey=rkey)


def verify_section(recording: Recording, frames: list[bytes]) -> list[Measurement]:
    catalog = Catalog.from_directory(DEFAULT_LEXICON_DIR)
    commits = []
    for frame in frames:
        event = decode_frame(frame, lambda _d, touches: touches)
        if isinstance(event, CommitEvent):
            commits.append(event)
    rows = []
    for verify in (True, False):
        verifier = CommitVerifier(ManifestDocuments(recording), verify_signatures=verify)
        subject = "ours, signatures on" if verify else "ours, signatures off"
        rows.append(
            _timed(
                "verify + validate (check-in commits/s per CPU second)",
                subject,
                len(commits),
                partial(asyncio.run, _verify_all(verifier, catalog, commits)),
                "CAR, fields, inversion, lexicon+rules",
            )
        )
    return rows

"""Verifying `#commit` and `#sync` events before anything reaches the index.

The checks, in the order `CommitVerifier` applies them (see the sync spec's validation list):

0. for an event from a PDS source (`CONSUMER_PDS_SOURCES`), that PDS is the DID's current host
   (`WrongHost`; `firehose_consumer.hosting`);
1. the CAR slice parses, its first root is the event's `commit`, and the commit block decodes as
   a signed v3 commit whose `did` and `rev` equal the event's (`FieldMismatch`);
2. `rev` is not in the future beyond `max_clock_drift` (`FutureRev`);
3. the signature verifies against the `#atproto` key of the DID's current document, resolved
   through the TTL cache; on failure the document is fetched again once (`force_refresh`), in case
   the key was rotated (`BadSignature` if it still fails; `IdentityUnusable` when the DID is not a
   functioning identity: no document, tombstoned, no `#atproto` key or no `#atproto_pds`);
4. Sync 1.1 inversion: undoing the ops on the slice's partial tree gives back `prevData`
   (`InversionFailed`; a missing `prevData` cannot be checked and is refused the same way);
5. the chain: `since` equals the stored rev and `prevData` the stored MST root (`ChainBroken`,
   which is not a rejection but a signal: the repo is marked desynchronized and resynced).

Stale events (rev not newer than the stored rev) are not errors: `is_stale` tells the caller to
skip them, which is what makes replays after a restart harmless.

Errors: `VerificationError` (a `ValueError`) and its subclasses, each with a `reason` label used
for metrics; `ResolutionUnavailable` from the resolver passes through (try again later).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar, Final

from atcore.car import CarError, read_car
from atcore.cid import CID
from atcore.commit import CommitError, SignedCommit
from atcore.crypto import PublicKey
from atcore.identity import DidDocument, DidNotFound, InvalidDidDocument, UnsupportedDidMethod
from atcore.mst import MSTError, invert_commit
from atcore.syntax import InvalidSyntax
from atcore.tid import tid_to_parts
from firehose_consumer.events import CommitEvent, SyncEvent
from firehose_consumer.hosting import DocumentSource, HostGuard

DEFAULT_MAX_CLOCK_DRIFT_S: Final = 300.0


class VerificationError(ValueError):
    reason: ClassVar[str] = "invalid_commit"


class FieldMismatch(VerificationError):
    reason = "field_mismatch"


class FutureRev(VerificationError):
    reason = "future_rev"


class BadSignature(VerificationError):
    reason = "bad_signature"


class IdentityUnusable(VerificationError):
    reason = "identity_unusable"


class WrongHost(VerificationError):
    """From a PDS source that is not the DID's current PDS (`firehose_consumer.hosting`)."""

    reason = "wrong_host"


class InversionFailed(VerificationError):
    reason = "inversion_failed"


class ChainBroken(VerificationError):
    reason = "broken_chain"


@dataclass(frozen=True, slots=True)
class ChainPoint:
    """Where a repo stands: the rev and MST root of the last applied commit."""

    rev: str
    data: CID


@dataclass(frozen=True, slots=True)
class ParsedCommit:
    event: CommitEvent
    commit: SignedCommit
    blocks: dict[CID, bytes]

    @property
    def point(self) -> ChainPoint:
        return ChainPoint(str(self.commit.rev), self.commit.data)


def _signed_commit(
    did: str, rev: str, blocks_bytes: bytes, commit_cid: CID | None
) -> tuple[SignedCommit, dict[CID, bytes], CID]:
    try:
        roots, blocks = read_car(blocks_bytes)
    except CarError as exc:
        raise VerificationError(f"blocks are not a valid CAR: {exc}") from exc
    if not roots or (commit_cid is not None and roots[0] != commit_cid):
        raise FieldMismatch("the CAR's first root is not the event's commit")
    block = blocks.get(roots[0])
    if block is None:
        raise VerificationError("the commit block is missing from the CAR")
    try:
        commit = SignedCommit.decode(block)
    except CommitError as exc:
        raise VerificationError(str(exc)) from exc
    if commit.did != did:
        raise FieldMismatch(f"commit is signed for {commit.did}, the event says {did}")
    if commit.rev != rev:
        raise FieldMismatch(f"commit rev {commit.rev} differs from the event's {rev}")
    return commit, blocks, roots[0]


def parse_commit_event(event: CommitEvent) -> ParsedCommit:
    """Step 1: the signed commit out of the CAR slice, fields checked against the event."""
    commit, blocks, _ = _signed_commit(event.repo, event.rev, event.blocks, event.commit)
    return ParsedCommit(event, commit, blocks)


def parse_sync_event(event: SyncEvent) -> SignedCommit:
    """A `#sync` event's commit (its CAR holds just the commit block)."""
    commit, _, _ = _signed_commit(event.did, event.rev, event.blocks, None)
    return commit


def check_rev_time(rev: str, *, max_drift_s: float, now_us: int | None = None) -> None:
    try:
        timestamp_us, _ = tid_to_parts(rev)
    except InvalidSyntax as exc:  # pragma: no cover - events parse revs already
        raise FieldMismatch(str(exc)) from exc
    now = time.time_ns() // 1000 if now_us is None else now_us
    if timestamp_us > now + int(max_drift_s * 1_000_000):
        raise FutureRev(f"rev {rev} is in the future")


def is_stale(rev: str, stored: ChainPoint | None) -> bool:
    """TIDs sort as strings in time order: a rev not above the stored one is old news."""
    return stored is not None and rev <= stored.rev


def check_inversion(parsed: ParsedCommit) -> None:
    prev_data = parsed.event.prev_data
    if prev_data is None:
        raise InversionFailed("no prevData: the commit cannot be checked by inversion")
    try:
        recomputed = invert_commit(parsed.commit.data, parsed.event.ops, parsed.blocks)
    except MSTError as exc:
        raise InversionFailed(str(exc)) from exc
    if recomputed != prev_data:
        raise InversionFailed(f"inverting the ops gives {recomputed}, not prevData {prev_data}")


def check_chain(event: CommitEvent, stored: ChainPoint | None) -> None:
    """Step 5; a repo seen for the first time has no chain to check."""
    if stored is None:
        return
    if event.since != stored.rev:
        raise ChainBroken(f"since {event.since} but the last applied rev is {stored.rev}")
    if event.prev_data != stored.data:
        raise ChainBroken(f"prevData {event.prev_data} but the stored root is {stored.data}")


async def verify_signature(documents: DocumentSource, did: str, commit: SignedCommit) -> None:
    """Step 3, with one forced refresh of the DID document when the cached one fails."""
    try:
        if _signed_by(await documents.resolve(did), commit):
            return
        key = atproto_key_of(await documents.resolve(did, force_refresh=True))
    except (DidNotFound, InvalidDidDocument, UnsupportedDidMethod) as exc:
        raise IdentityUnusable(f"{did}: {exc}") from exc
    if not commit.verify(key):
        raise BadSignature(f"commit {commit.rev} of {did} is not signed by its #atproto key")


def atproto_key_of(document: DidDocument) -> PublicKey:
    """The signing key of a functioning atproto identity: one with an `#atproto` key *and* a
    PDS (the sync spec: commits of DIDs without either are ignored); `InvalidDidDocument` else.
    """
    document.require_pds_endpoint()
    return document.require_atproto_key()


def _signed_by(document: DidDocument, commit: SignedCommit) -> bool:
    try:
        return commit.verify(atproto_key_of(document))
    except InvalidDidDocument:
        return False  # perhaps a stale copy: the caller looks again


@dataclass(frozen=True, slots=True)
class CommitVerifier:
    """Runs steps 1-4 for a commit; the chain check (5) is the caller's, with its stored state."""

    documents: DocumentSource
    verify_signatures: bool = True
    max_clock_drift_s: float = DEFAULT_MAX_CLOCK_DRIFT_S
    hosts: HostGuard | None = None

    async def check_host(self, did: str, host: str | None) -> None:
        """Step 0: `host` is the event's PDS source's public URL (None for a relay)."""
        if host is None or self.hosts is None:
            return
        try:
            actual = await self.hosts.elsewhere(did, host)
        except (DidNotFound, InvalidDidDocument, UnsupportedDidMethod) as exc:
            raise IdentityUnusable(f"{did}: {exc}") from exc
        if actual is not None:
            raise WrongHost(f"{did} is hosted at {actual}, not at the source {host}")

    async def verify_commit(self, event: CommitEvent, host: str | None = None) -> ParsedCommit:
        await self.check_host(event.repo, host)
        parsed = parse_commit_event(event)
        check_rev_time(event.rev, max_drift_s=self.max_clock_drift_s)
        if self.verify_signatures:
            await verify_signature(self.documents, event.repo, parsed.commit)
        check_inversion(parsed)
        return parsed

    async def verify_sync(self, event: SyncEvent, host: str | None = None) -> SignedCommit:
        await self.check_host(event.did, host)
        commit = parse_sync_event(event)
        check_rev_time(event.rev, max_drift_s=self.max_clock_drift_s)
        if self.verify_signatures:
            await verify_signature(self.documents, event.did, commit)
        return commit

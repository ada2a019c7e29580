"""Turning one verified event into index changes, per repository, in order.

`EventProcessor` is called by the lane of the event's DID (one event of a DID at a time), so it
may read and update that DID's `RepoState` without locks. For each event type:

`#commit`  inactive or desynchronized repo, or a stale rev: skipped. Otherwise verified
           (`verify`), chain-checked against the processed state, and its ops applied:
           check-in creates/updates are decoded and validated (invalid ones are counted and
           their previous version removed), deletes remove, companion-post ops mark the post's
           existence. A broken chain resyncs the repo on the spot (`getRepo`), inside the lane,
           so the DID's later events wait for it - the spec's "in-progress" buffering.
`#sync`    newer than the stored rev: verified; unless it names the root we already have, resync.
`#account` active: show the DID's check-ins again; deactivated/takendown/suspended: hide them;
           deleted: purge them.

From a PDS source (not a relay), `#commit`, `#sync` and `#account` count only when that PDS is
the DID's current host (`firehose_consumer.hosting`): an account that moved away keeps emitting
from its old PDS for a while.
`#identity` forget the cached DID document, so the next commit is checked against a fresh key.

A repo first seen through a commit whose `since` is set has history the index never saw: it is
resynced (when `resync_new_repos`) instead of trusting the partial view.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from atcore.cid import CID
from atcore.identity import ResolutionUnavailable
from atcore.index.schema import STATUS_ACTIVE
from atcore.lexicon import Catalog
from firehose_consumer.changes import EventChanges
from firehose_consumer.events import AccountEvent, CommitEvent, IdentityEvent, SyncEvent
from firehose_consumer.metrics import ConsumerMetrics
from firehose_consumer.records import (
    CHECKIN,
    POST,
    InvalidRecord,
    checkin_row,
    decode_checkin,
    post_uri,
)
from firehose_consumer.resync import AccountUnavailable, RepoFetcher, RepoFetchError
from firehose_consumer.state import RepoState, RepoStates
from firehose_consumer.verify import (
    ChainBroken,
    ChainPoint,
    CommitVerifier,
    ParsedCommit,
    VerificationError,
    WrongHost,
    check_chain,
    is_stale,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

_DELETED: Final = "deleted"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class ProcessorOptions:
    resync_new_repos: bool = True
    resync_retry_s: float = 60.0  # first wait before retrying a failed resync (doubles)
    resync_retry_max_s: float = 3600.0
    resolution_attempts: int = 4  # tries when the DID directory is unreachable
    resolution_backoff_s: float = 0.5
    resync_concurrency: int = 4  # getRepo fetches at once


class EventProcessor:
    def __init__(
        self,
        *,
        states: RepoStates,
        verifier: CommitVerifier,
        fetcher: RepoFetcher | None,
        catalog: Catalog,
        metrics: ConsumerMetrics,
        forget_identity: Callable[[str], None],
        options: ProcessorOptions = ProcessorOptions(),
    ) -> None:
        self.states = states
        self.verifier = verifier
        self.fetcher = fetcher
        self.catalog = catalog
        self.metrics = metrics
        self.forget_identity = forget_identity
        self.options = options
        self._resync_failures: dict[str, int] = {}
        self._fetch_slots = asyncio.Semaphore(options.resync_concurrency)

    # -- commits -----------------------------------------------------------------------------

    async def commit(self, event: CommitEvent, host: str | None = None) -> EventChanges | None:
        """`host`: the public URL of the PDS the event came from (None: from a relay)."""
        state = await self.states.get(event.repo)
        if state is not None and (skip := self._skip_reason(state, event.rev)):
            self.metrics.skipped.labels(skip).inc()
            return None
        try:
            parsed = await self._resolving(lambda: self.verifier.verify_commit(event, host))
        except VerificationError as exc:
            self.metrics.verification_failures.labels(exc.reason).inc()
            log.info("rejected commit %s of %s: %s", event.rev, event.repo, exc)
            return None
        except ResolutionUnavailable as exc:
            log.warning("cannot resolve %s to verify commit %s: %s", event.repo, event.rev, exc)
            return self._desynchronize(state or RepoState(event.repo, None), "resolution")
        if state is None or state.point is None:
            if event.since is not None and self.options.resync_new_repos:
                return await self.resync(state or RepoState(event.repo, None), "new_repo")
            state = state or RepoState(event.repo, None)
        else:
            try:
                check_chain(event, state.point)
            except ChainBroken as exc:
                self.metrics.verification_failures.labels(exc.reason).inc()
                log.info("chain broken for %s: %s", event.repo, exc)
                return await self.resync(state, "broken_chain")
        return self._apply_commit(parsed, state)

    def _skip_reason(self, state: RepoState, rev: str) -> str | None:
        if not state.active:
            return "inactive"
        if state.desynchronized:
            return "desynchronized"
        if is_stale(rev, state.point):
            return "stale"
        return None

    async def _resolving(self, step: Callable[[], Awaitable[T]]) -> T:
        """`step`, tried again with backoff while the DID directory is unreachable."""
        attempt = 1
        while True:
            try:
                return await step()
            except ResolutionUnavailable:
                if attempt >= self.options.resolution_attempts:
                    raise
                await asyncio.sleep(self.options.resolution_backoff_s * 2 ** (attempt - 1))
                attempt += 1

    def _apply_commit(self, parsed: ParsedCommit, state: RepoState) -> EventChanges:
        event = parsed.event
        did, rev = event.repo, event.rev
        changes = EventChanges(did)
        indexed_at = now_ms()
        # Companion posts written by this very commit (the convention: one applyWrites).
        written_posts = {
            f"at://{did}/{op.path}" for op in event.ops
            if op.action != "delete" and op.path.startswith(POST + "/")
        }  # fmt: skip
        for op in event.ops:
            collection, rkey = op.path.split("/", 1)
            if collection == POST:
                changes.post_marks.append((post_uri(did, rkey), op.action != "delete"))
            elif collection == CHECKIN:
                key = (did, CHECKIN, rkey)
                row = None if op.cid is None else self._row(parsed, state, op.cid, rkey, indexed_at)
                if row is None:
                    changes.deletes.append((key, rev))
                else:
                    row["post_exists"] = row["post_uri"] in written_posts
                    changes.upserts.append(row)
        new_state = state.synchronized_at(parsed.point)
        self.states.put(new_state)
        changes.repo = new_state.row()
        return changes

    def _row(
        self, parsed: ParsedCommit, state: RepoState, cid: CID, rkey: str, indexed_at: int
    ) -> dict[str, Any] | None:
        block = parsed.blocks.get(cid)
        did = parsed.event.repo
        try:
            if block is None:
                raise InvalidRecord(f"record block {cid} is not in the commit")
            checkin = decode_checkin(self.catalog, block, did=did, rkey=rkey)
        except InvalidRecord as exc:
            self.metrics.invalid.labels("invalid_record").inc()
            log.info("invalid check-in %s/%s: %s", did, rkey, exc)
            return None
        return checkin_row(
            checkin, did=did, rkey=rkey, cid=str(cid), rev=parsed.event.rev,
            indexed_at=indexed_at, visible=state.active, post_exists=False,
        )  # fmt: skip

    # -- resync ------------------------------------------------------------------------------

    async def resync(self, state: RepoState, reason: str) -> EventChanges:
        """Replace the DID's check-ins with its repository as its PDS serves it now."""
        if self.fetcher is None:
            return self._desynchronize(state, reason)
        try:
            async with self._fetch_slots:
                snapshot = await self.fetcher.fetch(state.did)
        except AccountUnavailable as exc:
            self.metrics.resyncs.labels("unavailable").inc()
            return self.account_status(state, active=False, status=exc.status)
        except RepoFetchError as exc:
            self.metrics.resyncs.labels("failed").inc()
            log.warning("resync of %s (%s) failed: %s", state.did, reason, exc)
            return self._desynchronize(state, reason)
        self.metrics.resyncs.labels("ok").inc()
        self._resync_failures.pop(state.did, None)
        if snapshot.invalid_records:
            self.metrics.invalid.labels("invalid_record").inc(snapshot.invalid_records)
        if state.point is not None and is_stale(snapshot.point.rev, state.point):
            snapshot_point = state.point  # never move a repo backwards
        else:
            snapshot_point = snapshot.point
        new_state = state.synchronized_at(snapshot_point)
        indexed_at = now_ms()
        rows = [
            checkin_row(
                item.checkin,
                did=state.did,
                rkey=item.rkey,
                cid=str(item.cid),
                rev=snapshot.point.rev,
                indexed_at=indexed_at,
                visible=state.active,
                post_exists=item.post_exists,
            )
            for item in snapshot.checkins
        ]
        self.states.put(new_state)
        return EventChanges(
            state.did,
            upserts=rows,
            known_posts=list(snapshot.post_rkeys),
            reset=True,
            repo=new_state.row(),
        )

    def _desynchronize(self, state: RepoState, reason: str) -> EventChanges:
        failures = self._resync_failures.get(state.did, 0) + 1
        self._resync_failures[state.did] = failures
        delay = min(
            self.options.resync_retry_s * 2 ** (failures - 1), self.options.resync_retry_max_s
        )
        new_state = state.desynchronized_until(now_ms() + int(delay * 1000))
        self.states.put(new_state)
        log.info("%s desynchronized (%s); resync in %.0f s", state.did, reason, delay)
        return EventChanges(state.did, repo=new_state.row())

    # -- other events ------------------------------------------------------------------------

    async def sync(self, event: SyncEvent, host: str | None = None) -> EventChanges | None:
        state = await self.states.get(event.did)
        if state is not None and state.point is not None and is_stale(event.rev, state.point):
            self.metrics.skipped.labels("stale").inc()
            return None
        try:
            commit = await self._resolving(lambda: self.verifier.verify_sync(event, host))
        except VerificationError as exc:
            self.metrics.verification_failures.labels(exc.reason).inc()
            return None
        except ResolutionUnavailable:
            return self._desynchronize(state or RepoState(event.did, None), "resolution")
        state = state or RepoState(event.did, None)
        if state.point is not None and state.point.data == commit.data:
            new_state = state.synchronized_at(ChainPoint(str(commit.rev), commit.data))
            self.states.put(new_state)
            return EventChanges(event.did, repo=new_state.row())
        return await self.resync(state, "sync_event")

    async def account(self, event: AccountEvent, host: str | None = None) -> EventChanges | None:
        """A status change; from a PDS source, only if that PDS still hosts the DID.

        A DID that no longer resolves (deleted or tombstoned) or a directory that stays
        unreachable does not block the event: its own host is the one to say so, and hiding or
        purging is the safe side.
        """
        if host is not None and not await self._may_change_status(event.did, host):
            self.metrics.skipped.labels(WrongHost.reason).inc()
            return None
        state = await self.states.get(event.did) or RepoState(event.did, None)
        status = STATUS_ACTIVE if event.active else (event.status or "deactivated")
        return self.account_status(state, active=event.active, status=status)

    def account_status(self, state: RepoState, *, active: bool, status: str) -> EventChanges:
        was_deleted = state.status == _DELETED
        new_state = state.with_status(STATUS_ACTIVE if active else status)
        changes = EventChanges(state.did)
        if status == _DELETED and not active:
            changes.reset = True  # purge
        else:
            changes.visible = active
        if active and (was_deleted or state.point is None):
            # Purged earlier, or never synchronized (its first resync found the account
            # unavailable, say): nothing applied yet would let later commits chain, so the
            # records must be fetched again.
            new_state = new_state.desynchronized_until(now_ms())
        self.states.put(new_state)
        changes.repo = new_state.row()
        return changes

    async def _may_change_status(self, did: str, host: str) -> bool:
        try:
            await self._resolving(lambda: self.verifier.check_host(did, host))
        except WrongHost as exc:
            log.info("ignored #account of %s: %s", did, exc)
            return False
        except (VerificationError, ResolutionUnavailable):
            pass  # no usable identity, or no answer: nothing shows that another host owns it
        return True

    def identity(self, event: IdentityEvent) -> None:
        self.forget_identity(event.did)

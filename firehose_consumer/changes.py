"""What processing one event asks of the index, and how a batch of those is coalesced.

Each processed event yields an `EventChanges`: check-in rows to upsert, keys to delete,
companion-post existence marks, a visibility flip or a purge for an account, a full replacement
(after a resync), and the repo's new state. The writer gathers many into a `Batch`, which keeps,
per DID, only what still matters after the later events (events of one DID arrive in order):

- the last change per check-in key wins (upsert or delete);
- a purge or replacement ("reset") drops that DID's earlier check-in changes and runs first;
- post marks and visibility flips run before the upserts, and are also applied to the rows
  upserted earlier in the batch, so a row ends up as if every event had been written in turn
  (the property test in tests/firehose_consumer/test_queries.py checks exactly that);
- post marks (and a resync's list of posts) also maintain `companion_post`, the posts that
  exist; an upserted check-in whose post was not in its own commit is then linked to it in SQL,
  whichever batch the post arrived in;
- the repo state written is the last one.

That keeps a batch of thousands of events down to a handful of multi-row statements.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CheckinKey = tuple[str, str, str]  # (author_did, collection, rkey)


@dataclass(frozen=True, slots=True)
class RepoStateRow:
    did: str
    rev: str | None
    data_cid: str | None
    status: str
    sync_status: str
    resync_after: int | None

    def values(self, now_ms: int) -> dict[str, Any]:
        return {
            "did": self.did,
            "rev": self.rev,
            "data_cid": self.data_cid,
            "status": self.status,
            "sync_status": self.sync_status,
            "resync_after": self.resync_after,
            "updated_at": now_ms,
        }


@dataclass(slots=True)
class EventChanges:
    """The index changes of one event (all for the same DID)."""

    did: str
    upserts: list[dict[str, Any]] = field(default_factory=list)  # checkin rows
    deletes: list[tuple[CheckinKey, str]] = field(default_factory=list)  # (key, rev)
    post_marks: list[tuple[str, bool]] = field(default_factory=list)  # (post_uri, exists)
    known_posts: list[str] = field(default_factory=list)  # rkeys of every post (a resync's view)
    visible: bool | None = None  # flip every check-in of the DID
    reset: bool = False  # drop every check-in of the DID first (purge, or resync replacement)
    repo: RepoStateRow | None = None

    @property
    def is_empty(self) -> bool:
        return (
            not (
                self.upserts
                or self.deletes
                or self.post_marks
                or self.known_posts
                or self.reset
                or self.repo
            )
            and self.visible is None
        )


@dataclass(slots=True)
class _DidPlan:
    reset: bool = False
    rows: dict[CheckinKey, dict[str, Any] | str] = field(default_factory=dict)  # row or rev
    post_marks: dict[str, bool] = field(default_factory=dict)
    known_posts: set[str] = field(default_factory=set)
    visible: bool | None = None
    repo: RepoStateRow | None = None

    def pending_rows(self) -> list[dict[str, Any]]:
        return [row for row in self.rows.values() if isinstance(row, dict)]


@dataclass(slots=True)
class Batch:
    """Coalesced changes of many events plus the cursor each source reached."""

    plans: dict[str, _DidPlan] = field(default_factory=dict)
    cursors: dict[str, int] = field(default_factory=dict)
    events: int = 0

    def add(self, changes: EventChanges) -> None:
        self.events += 1
        if changes.is_empty:
            return
        plan = self.plans.get(changes.did)
        if plan is None or changes.reset:
            # A reset supersedes the DID's earlier check-in changes, not its repo state.
            earlier = plan
            plan = _DidPlan(reset=changes.reset or (earlier is not None and earlier.reset))
            plan.repo = None if earlier is None else earlier.repo
            self.plans[changes.did] = plan
        for key, rev in changes.deletes:
            plan.rows[key] = rev
        for upsert in changes.upserts:
            upsert_key = (upsert["author_did"], upsert["collection"], upsert["rkey"])
            plan.rows[upsert_key] = _after(plan.rows.get(upsert_key), upsert)
        plan.known_posts.update(changes.known_posts)
        for uri, exists in changes.post_marks:
            plan.post_marks[uri] = exists
            for row in plan.pending_rows():  # rows written earlier in the batch see it too
                if row["post_uri"] == uri:
                    row["post_exists"] = exists
        if changes.visible is not None:
            plan.visible = changes.visible
            for row in plan.pending_rows():
                row["visible"] = changes.visible
        if changes.repo is not None:
            plan.repo = changes.repo

    def set_cursor(self, source: str, seq: int) -> None:
        self.cursors[source] = seq

    @property
    def is_empty(self) -> bool:
        return not self.plans and not self.cursors

    def resets(self) -> list[str]:
        return [did for did, plan in self.plans.items() if plan.reset]

    def upserts(self) -> list[dict[str, Any]]:
        return [
            row for p in self.plans.values() for row in p.rows.values() if isinstance(row, dict)
        ]

    def deletes(self) -> list[tuple[CheckinKey, str]]:
        return [
            (key, rev) for p in self.plans.values() for key, rev in p.rows.items()
            if isinstance(rev, str)
        ]  # fmt: skip

    def post_marks(self) -> list[tuple[str, str, bool]]:
        """(author_did, post_uri, exists)."""
        return [
            (did, uri, exists)
            for did, p in self.plans.items()
            for uri, exists in p.post_marks.items()
        ]

    def companion_posts(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """(author_did, post rkey) pairs of posts that exist, and of posts that are gone.

        A post's last mark in the batch decides; a reset's `known_posts` (written after the
        reset cleared the DID's rows) count as existing unless a later mark removed them.
        """
        present: list[tuple[str, str]] = []
        gone: list[tuple[str, str]] = []
        for did, plan in self.plans.items():
            marked = {uri.rsplit("/", 1)[1]: exists for uri, exists in plan.post_marks.items()}
            present.extend((did, rkey) for rkey in plan.known_posts if rkey not in marked)
            for rkey, exists in marked.items():
                (present if exists else gone).append((did, rkey))
        return present, gone

    def unlinked_upserts(self) -> list[dict[str, Any]]:
        """Upserted rows naming a companion post not known to exist when their event ran."""
        return [
            row for row in self.upserts() if row["post_uri"] is not None and not row["post_exists"]
        ]

    def visibility(self) -> list[tuple[str, bool]]:
        return [(did, p.visible) for did, p in self.plans.items() if p.visible is not None]

    def repo_states(self) -> list[RepoStateRow]:
        return [p.repo for p in self.plans.values() if p.repo is not None]


def _after(earlier: dict[str, Any] | str | None, row: dict[str, Any]) -> dict[str, Any]:
    """The row an upsert leaves after an earlier change of the same key in the batch."""
    if isinstance(earlier, dict) and earlier["post_uri"] == row["post_uri"]:
        # As the upsert would do against the earlier row: same post, existence kept.
        return {**row, "post_exists": earlier["post_exists"] or row["post_exists"]}
    return row

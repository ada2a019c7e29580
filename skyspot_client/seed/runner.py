"""Running a seed: find what exists, make the missing accounts, write the missing check-ins.

Everything goes through the `atproto` SDK against any PDS. Reads are public and come first
(resolveHandle, listRecords), so a re-run that has nothing to do never logs in or writes. Writes
run on a thread pool, one account per task (a repository takes one commit at a time anyway), and
every commit (account creation, profile, check-in) first takes a token from a shared rate limiter
so a public PDS's relay quotas are respected. Transient failures (transport errors, 429, 5xx) are
retried with backoff; a check-in whose applyWrites may have landed before the connection broke is
looked up before it is sent again, so retries never duplicate.

Errors: `SeedError` (a `ValueError`) for a PDS or options the seed cannot work with; SDK errors
that survive the retries pass through.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final, TypeVar

from atproto import Client, models
from atproto_client.exceptions import (
    BadRequestError,
    NetworkError,
    RateLimitExceededError,
    RequestException,
)
from tqdm import tqdm

from atcore import nsids
from atcore.checkin import Precision
from skyspot_client.client import apply_checkin_writes, upload_photo
from skyspot_client.compose import build_checkin_writes, compose_checkin
from skyspot_client.photos import PhotoInput
from skyspot_client.seed.places import CityPicker
from skyspot_client.seed.plan import (
    MAX_CHECKINS,
    PlannedCheckin,
    SeedAccount,
    plan_checkin,
    seed_accounts,
    seeded_index,
)

T = TypeVar("T")
ATTEMPTS: Final = 6
LIST_PAGE: Final = 100


class SeedError(ValueError):
    """The PDS or the options do not allow this seed run."""


@dataclass(frozen=True)
class SeedOptions:
    pds: str
    accounts: int
    checkins: int
    secret: str
    seed: int = 1
    handle_prefix: str = "spot"
    concurrency: int = 8
    rate_limit: float = 0.0  # commits per second over the whole run; 0 means no limit
    photo_ratio: float = 0.6
    days: float = 14.0
    invite_code: str | None = None
    dry_run: bool = False
    progress: bool = True


@dataclass
class SeedReport:
    accounts_created: int = 0
    accounts_existing: int = 0
    accounts_missing: int = 0
    checkins_written: int = 0
    checkins_present: int = 0
    checkins_planned: int = 0
    photos_planned: int = 0
    photos_uploaded: int = 0
    seconds: float = 0.0
    dry_run: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def as_json(self) -> str:
        return json.dumps({k: v for k, v in vars(self).items() if not k.startswith("_")})


class RateLimiter:
    """At most `rate` acquisitions per second across threads (evenly spaced); 0 = unlimited."""

    def __init__(self, rate: float) -> None:
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._next = time.monotonic()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        if not self._interval:
            return
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self._interval
        time.sleep(max(0.0, slot - now))


def run_seed(options: SeedOptions) -> SeedReport:
    if options.accounts < 1 or not 0 <= options.checkins <= MAX_CHECKINS:
        raise SeedError(f"need at least one account and at most {MAX_CHECKINS} check-ins")
    started = time.monotonic()
    report = SeedReport(dry_run=options.dry_run)
    reader = Client(base_url=options.pds)
    try:
        accounts = _accounts(reader, options)
        with ThreadPoolExecutor(max(1, options.concurrency)) as pool:
            found = pool.map(partial(_resolve, reader), accounts)
            dids = dict(zip(accounts, found, strict=True))
            known = [did for did in dids.values() if did is not None]
            present: set[int] = set().union(
                *pool.map(partial(_seeded, reader, options.seed), known)
            )
            report.add(
                accounts_existing=len(known),
                accounts_missing=len(accounts) - len(known),
                checkins_present=len(present),
            )
            todo = _plan(options, present)
            report.add(checkins_planned=len(todo), photos_planned=sum(c.photo_count for c in todo))
            if not options.dry_run:
                _Writer(options, report).run(pool, dids, todo)
    finally:
        reader.request.close()
    report.seconds = round(time.monotonic() - started, 3)
    return report


def _accounts(reader: Client, options: SeedOptions) -> list[SeedAccount]:
    server = reader.com.atproto.server.describe_server()
    domains = list(server.available_user_domains or [])
    if not domains:
        raise SeedError(f"{options.pds} offers no handle domain to create accounts on")
    if server.invite_code_required and not options.invite_code and not options.dry_run:
        raise SeedError(f"{options.pds} requires an invite code (--invite-code)")
    return seed_accounts(
        seed=options.seed,
        count=options.accounts,
        prefix=options.handle_prefix,
        domain=domains[0],
        secret=options.secret,
    )


def _resolve(reader: Client, account: SeedAccount) -> str | None:
    def attempt() -> str | None:
        try:
            params = models.ComAtprotoIdentityResolveHandle.Params(handle=account.handle)
            return str(reader.com.atproto.identity.resolve_handle(params).did)
        except BadRequestError:
            return None

    return _retrying(attempt)


def _seeded(reader: Client, seed: int, did: str) -> set[int]:
    """The check-in numbers this seed already wrote to `did`'s repository."""
    found: set[int] = set()
    cursor = None
    while True:
        params = models.ComAtprotoRepoListRecords.Params(
            repo=did, collection=nsids.SKYSPOT_CHECKIN, limit=LIST_PAGE, cursor=cursor
        )
        page = _retrying(partial(reader.com.atproto.repo.list_records, params))
        for record in page.records:
            index = seeded_index(seed, str(record.uri).rsplit("/", 1)[-1])
            if index is not None:
                found.add(index)
        cursor = page.cursor
        if not cursor or not page.records:
            return found


def _plan(options: SeedOptions, present: set[int]) -> list[PlannedCheckin]:
    if present.issuperset(range(options.checkins)):
        return []  # nothing missing: skip loading the city table
    picker = CityPicker()
    now = dt.datetime.now(dt.UTC)
    return [
        plan_checkin(
            seed=options.seed,
            index=index,
            accounts=options.accounts,
            picker=picker,
            now=now,
            days=options.days,
            photo_ratio=options.photo_ratio,
        )
        for index in range(options.checkins)
        if index not in present
    ]


class _Writer:
    """The write phase: one task per account, sharing the rate limiter, the bar and the report."""

    def __init__(self, options: SeedOptions, report: SeedReport) -> None:
        self.options = options
        self.report = report
        self.limiter = RateLimiter(options.rate_limit)

    def run(
        self,
        pool: ThreadPoolExecutor,
        dids: dict[SeedAccount, str | None],
        todo: list[PlannedCheckin],
    ) -> None:
        by_account: dict[int, list[PlannedCheckin]] = defaultdict(list)
        for planned in todo:
            by_account[planned.account].append(planned)
        progress = self.options.progress and bool(todo)
        with tqdm(total=len(todo), unit="check-in", disable=not progress) as bar:
            jobs = [
                pool.submit(self.seed_account, account, did, by_account[account.index], bar)
                for account, did in dids.items()
                if did is None or by_account[account.index]
            ]
            for job in jobs:
                job.result()

    def seed_account(
        self, account: SeedAccount, did: str | None, planned: list[PlannedCheckin], bar: tqdm[Any]
    ) -> None:
        client = Client(base_url=self.options.pds)
        try:
            if did is None:
                did = self.create_account(client, account)
                self.report.add(accounts_created=1)
            else:
                _retrying(partial(_login, client, account))
            for item in planned:
                self.report.add(photos_uploaded=self.write_checkin(client, did, item))
                self.report.add(checkins_written=1)
                bar.update(1)
        finally:
            client.request.close()

    def create_account(self, client: Client, account: SeedAccount) -> str:
        data = models.ComAtprotoServerCreateAccount.Data(
            handle=account.handle,
            email=account.email,
            password=account.password,
            invite_code=self.options.invite_code,
        )
        self.limiter.acquire()
        created = _retrying(partial(client.com.atproto.server.create_account, data))
        _retrying(partial(_login, client, account))
        profile = {
            "repo": created.did,
            "collection": nsids.BSKY_ACTOR_PROFILE,
            "rkey": "self",
            "record": {"$type": nsids.BSKY_ACTOR_PROFILE, "displayName": account.display_name},
        }
        self.limiter.acquire()
        _retrying(partial(_procedure, client, nsids.REPO_PUT_RECORD, profile))
        return str(created.did)

    def write_checkin(self, client: Client, did: str, item: PlannedCheckin) -> int:
        """Upload the photos and write the check-in with its post; returns the photo count."""
        photos = [
            _retrying(partial(upload_photo, client, PhotoInput(data, alt)))
            for data, alt in item.photos()
        ]
        exact = item.precision is Precision.EXACT
        checkin = compose_checkin(
            lat=item.venue.point.latitude,
            lon=item.venue.point.longitude,
            place=item.place_name,
            text=item.text,
            photos=photos,
            category=item.venue.category if exact else None,
            precision=item.precision,
            address=item.address,
            langs=["en"],
            created_at=item.created_at,
        )
        writes = build_checkin_writes(did, checkin, rkey=item.rkey())
        self.limiter.acquire()
        attempts = 0

        def send() -> None:
            nonlocal attempts
            attempts += 1
            if attempts > 1 and _exists(client, did, writes.rkey):
                return  # an earlier attempt landed; only its answer was lost
            apply_checkin_writes(client, writes)

        _retrying(send)
        return len(photos)


def _login(client: Client, account: SeedAccount) -> None:
    client.login(account.handle, account.password, fetch_bsky_profile=False)


def _exists(client: Client, did: str, rkey: str) -> bool:
    params = models.ComAtprotoRepoGetRecord.Params(
        repo=did, collection=nsids.SKYSPOT_CHECKIN, rkey=rkey
    )
    try:
        client.com.atproto.repo.get_record(params)
    except BadRequestError:
        return False
    return True


def _procedure(client: Client, nsid: str, body: dict[str, Any]) -> Any:
    return client.invoke_procedure(
        nsid, content=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )


def _retrying(call: Callable[[], T]) -> T:
    """Run `call`, retrying transport errors, 429 and 5xx with exponential backoff."""
    for attempt in range(ATTEMPTS):
        try:
            return call()
        except RateLimitExceededError as exc:
            if attempt == ATTEMPTS - 1:
                raise
            time.sleep(min(60.0, exc.retry_after or 2.0**attempt))
        except (NetworkError, RequestException) as exc:
            status = exc.response.status_code if exc.response is not None else None
            if attempt == ATTEMPTS - 1 or (status is not None and status < 500):
                raise
            time.sleep(min(30.0, 0.25 * 2**attempt))
    raise AssertionError("unreachable")  # pragma: no cover

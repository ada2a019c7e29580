"""Fetching a whole repository (`com.atproto.sync.getRepo`) to resynchronize or backfill it.

The repo is fetched from the PDS its DID document names (the authoritative host), streamed as a
CAR with a size cap, its commit verified like a firehose commit (signature against the `#atproto`
key, one forced refresh), and its MST walked for check-in records. Companion-post existence comes
from the same tree (the post path is looked up, no post is decoded), and the record keys of all
its posts are listed, so a check-in written later can find a post that already exists.

HTTP is refused for non-loopback hosts, and loopback only with `allow_http_loopback` (dev/test):
PDS endpoints come from DID documents, i.e. from untrusted input.

Errors (all `RepoFetchError`, a `ValueError`): `transient` is True for failures worth retrying
later (network, timeouts, 5xx, resolution unavailable); `AccountUnavailable` carries the status
(`deactivated`, `takendown`, `suspended`, `deleted`) when the PDS says the repo is not served.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

import aiohttp

from atcore import nsids
from atcore.car import AsyncCarReader, CarError
from atcore.checkin import Checkin
from atcore.cid import CID
from atcore.commit import CommitError, SignedCommit
from atcore.identity import DidResolver, IdentityError, ResolutionUnavailable
from atcore.identity.resolver import is_loopback_host
from atcore.lexicon import Catalog
from atcore.mst import MST, MemoryBlockStore, MSTError
from firehose_consumer.records import CHECKIN, POST, InvalidRecord, decode_checkin
from firehose_consumer.verify import ChainPoint, VerificationError, verify_signature

DEFAULT_MAX_REPO_BYTES: Final = 512 * 1024 * 1024
_GONE: Final = {
    "RepoNotFound": "deleted",
    "RepoDeactivated": "deactivated",
    "RepoTakendown": "takendown",
    "RepoSuspended": "suspended",
}


class RepoFetchError(ValueError):
    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


class AccountUnavailable(RepoFetchError):
    def __init__(self, message: str, status: str) -> None:
        super().__init__(message, transient=False)
        self.status = status


@dataclass(frozen=True, slots=True)
class SnapshotCheckin:
    rkey: str
    cid: CID
    checkin: Checkin
    post_exists: bool


@dataclass(frozen=True, slots=True)
class RepoSnapshot:
    did: str
    point: ChainPoint
    checkins: tuple[SnapshotCheckin, ...]
    invalid_records: int
    post_rkeys: tuple[str, ...] = ()  # every app.bsky.feed.post in the repo


@dataclass(frozen=True, slots=True)
class RepoFetcher:
    session: aiohttp.ClientSession
    resolver: DidResolver
    catalog: Catalog
    verify_signatures: bool = True
    allow_http_loopback: bool = False
    max_bytes: int = DEFAULT_MAX_REPO_BYTES
    timeout_s: float = 120.0

    async def fetch(self, did: str) -> RepoSnapshot:
        endpoint = await self._pds_endpoint(did)
        blocks, root = await self._download(endpoint, did)
        commit = _commit_of(blocks, root, did)
        if self.verify_signatures:
            try:
                await verify_signature(self.resolver, did, commit)
            except VerificationError as exc:
                raise RepoFetchError(f"{did}: {exc}", transient=False) from exc
        return self._walk(did, commit, blocks)

    async def _pds_endpoint(self, did: str) -> str:
        try:
            document = await self.resolver.resolve(did)
        except ResolutionUnavailable as exc:
            raise RepoFetchError(f"{did}: {exc}", transient=True) from exc
        except IdentityError as exc:
            raise RepoFetchError(f"{did}: {exc}", transient=False) from exc
        endpoint = document.pds_endpoint
        if endpoint is None:
            raise RepoFetchError(f"{did}: the DID document names no PDS", transient=False)
        check_endpoint(endpoint, allow_http_loopback=self.allow_http_loopback)
        return endpoint.rstrip("/")

    async def _download(self, endpoint: str, did: str) -> tuple[dict[CID, bytes], CID]:
        url = f"{endpoint}/xrpc/{nsids.SYNC_GET_REPO}"
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        try:
            async with self.session.get(url, params={"did": did}, timeout=timeout) as response:
                if response.status != 200:
                    await _raise_for_reply(response, did)
                reader = AsyncCarReader(_capped(response.content, self.max_bytes, did))
                roots = await reader.read_header()
                blocks = {cid: block async for cid, block in reader}
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RepoFetchError(f"{did}: getRepo failed: {exc!r}", transient=True) from exc
        except CarError as exc:
            raise RepoFetchError(
                f"{did}: getRepo is not a valid CAR: {exc}", transient=False
            ) from exc
        if not roots:
            raise RepoFetchError(f"{did}: the repo CAR has no root", transient=False)
        return blocks, roots[0]

    def _walk(self, did: str, commit: SignedCommit, blocks: dict[CID, bytes]) -> RepoSnapshot:
        try:
            tree = MST.load(MemoryBlockStore(blocks), commit.data)
            entries = list(tree.iter_prefix(CHECKIN + "/"))
            post_rkeys = tuple(path.split("/", 1)[1] for path, _ in tree.iter_prefix(POST + "/"))
        except MSTError as exc:
            raise RepoFetchError(f"{did}: repo tree is invalid: {exc}", transient=False) from exc
        found: list[SnapshotCheckin] = []
        invalid = 0
        for path, cid in entries:
            rkey = path.split("/", 1)[1]
            block = blocks.get(cid)
            try:
                if block is None:
                    raise InvalidRecord(f"record block {cid} missing from the repo")
                checkin = decode_checkin(self.catalog, block, did=did, rkey=rkey)
            except InvalidRecord:
                invalid += 1
                continue
            found.append(SnapshotCheckin(rkey, cid, checkin, _post_exists(tree, checkin)))
        point = ChainPoint(str(commit.rev), commit.data)
        return RepoSnapshot(did, point, tuple(found), invalid, post_rkeys)


def _post_exists(tree: MST, checkin: Checkin) -> bool:
    if checkin.post is None or checkin.post.uri.collection is None or not checkin.post.uri.rkey:
        return False
    path = f"{checkin.post.uri.collection}/{checkin.post.uri.rkey}"
    try:
        return tree.get(path) is not None
    except MSTError:
        return False


def _commit_of(blocks: dict[CID, bytes], root: CID, did: str) -> SignedCommit:
    block = blocks.get(root)
    if block is None:
        raise RepoFetchError(f"{did}: the commit block is missing", transient=False)
    try:
        commit = SignedCommit.decode(block)
    except CommitError as exc:
        raise RepoFetchError(f"{did}: {exc}", transient=False) from exc
    if commit.did != did:
        raise RepoFetchError(f"{did}: the repo's commit is for {commit.did}", transient=False)
    return commit


async def _raise_for_reply(response: aiohttp.ClientResponse, did: str) -> None:
    error = ""
    try:
        body = await response.json(content_type=None)
        error = str(body.get("error", "")) if isinstance(body, dict) else ""
    except (ValueError, aiohttp.ClientError):
        pass
    if error in _GONE:
        raise AccountUnavailable(f"{did}: {error}", _GONE[error])
    transient = response.status >= 500 or response.status == 429
    raise RepoFetchError(f"{did}: getRepo answered {response.status} {error}", transient=transient)


async def _capped(content: aiohttp.StreamReader, max_bytes: int, did: str) -> AsyncIterator[bytes]:
    total = 0
    async for chunk in content.iter_chunked(256 * 1024):
        total += len(chunk)
        if total > max_bytes:
            raise RepoFetchError(f"{did}: repo exceeds {max_bytes} bytes", transient=False)
        yield chunk
        await asyncio.sleep(0)  # a big repo must not starve the socket readers


def check_endpoint(url: str, *, allow_http_loopback: bool) -> None:
    """Only https, or http to a loopback host when allowed (dev/test)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https" and host:
        return
    if parts.scheme == "http" and allow_http_loopback and is_loopback_host(host):
        return
    raise RepoFetchError(f"refusing to fetch from {url!r}", transient=False)

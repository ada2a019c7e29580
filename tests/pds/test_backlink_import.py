"""importRepo rebuilds the repository's backlinks from the imported records (duplicates kept)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from atcore import nsids
from tests.pds.backlink_support import (
    FOLLOW,
    LIKE,
    account_did,
    post_uri,
    record_for,
    stored_backlinks,
)
from tests.pds.migration_support import TwoPds, start_two_pds
from tests.pds.own_did import CAR, migrated_in, post, repo_car
from tests.pds.xrpc_client import Xrpc, bearer


@pytest.fixture(scope="module")
def two_pds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoPds]:
    with start_two_pds(tmp_path_factory.mktemp("backlink-import")) as stacks:
        yield stacks


async def test_import_replaces_the_backlinks(two_pds: TwoPds) -> None:
    async with aiohttp.ClientSession() as http:
        xb = Xrpc(http, two_pds.b)
        own, token = await migrated_in(http, two_pds)

        async def import_records(records: dict[str, dict[str, Any]]) -> None:
            car = repo_car(own.did, own.signing, records)
            reply = await xb.request(
                "POST",
                nsids.xrpc_path(nsids.REPO_IMPORT_REPO),
                data=car,
                headers={**CAR, **bearer(token)},
            )
            assert reply.status == 200, reply.body

        def uri(path: str) -> str:
            return f"at://{own.did}/{path}"

        older = {
            f"{LIKE}/3jzfcijpj2z2a": record_for(LIKE, post_uri(1)),
            f"{LIKE}/3jzfcijpj2z2b": record_for(LIKE, post_uri(1)),  # a duplicate: kept
            f"{FOLLOW}/3jzfcijpj2z2c": record_for(FOLLOW, account_did(1)),
            f"{FOLLOW}/3jzfcijpj2z2d": {"$type": FOLLOW, "subject": "not-a-did"},
            f"{nsids.BSKY_FEED_POST}/3jzfcijpj2z2e": post("no links"),
        }
        await import_records(older)
        path = two_pds.b.settings.sqlite_path
        assert stored_backlinks(path, own.did) == {
            (uri(f"{LIKE}/3jzfcijpj2z2a"), "subject.uri", post_uri(1)),
            (uri(f"{LIKE}/3jzfcijpj2z2b"), "subject.uri", post_uri(1)),
            (uri(f"{FOLLOW}/3jzfcijpj2z2c"), "subject", account_did(1)),
        }
        newer = {
            f"{LIKE}/3jzfcijpj2z2b": record_for(LIKE, post_uri(2)),
            f"{FOLLOW}/3jzfcijpj2z2f": record_for(FOLLOW, account_did(2)),
        }
        await import_records(newer)
        assert stored_backlinks(path, own.did) == {
            (uri(f"{LIKE}/3jzfcijpj2z2b"), "subject.uri", post_uri(2)),
            (uri(f"{FOLLOW}/3jzfcijpj2z2f"), "subject", account_did(2)),
        }

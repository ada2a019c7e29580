"""The entry scripts, run as a user runs them (executables in a subprocess) against loopback.

`checkin` must produce one commit holding both records with the photos embedded; `seed` must
complete 20 accounts / 2,000 check-ins and add nothing when re-run; `publish-feed` must write,
update (keeping createdAt) and delete a feed generator record.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from atcore import nsids
from tests.pds.stack import Stack, account_events, create_account, unique_name
from tests.skyspot_client.support import commit_events, commit_records, jpeg

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def run(
    script: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPTS / script), *args],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, **(env or {})},
        check=False,
    )


def get_json(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def get_record(stack: Stack, did: str, collection: str, rkey: str) -> tuple[int, dict[str, Any]]:
    query = urllib.parse.urlencode({"repo": did, "collection": collection, "rkey": rkey})
    return get_json(f"{stack.xrpc(nsids.REPO_GET_RECORD)}?{query}")


def event_count(stack: Stack, did: str) -> int:
    """Every event the account's repository sequenced (commits, identity, account)."""
    return len(asyncio.run(account_events(stack, did)))


def login_env(stack: Stack, prefix: str) -> tuple[str, dict[str, str]]:
    account = create_account(stack, prefix)
    env = {
        "SKYSPOT_PDS": stack.pds_url,
        "SKYSPOT_IDENTIFIER": account.handle,
        "SKYSPOT_PASSWORD": account.password,
    }
    return account.did, env


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("checkin", ["--lat", "--lon", "--place", "--text", "--photo", "--alt", "--precision"]),
        ("seed", ["--accounts", "--checkins", "--rate-limit", "--dry-run", "--seed"]),
        ("publish-feed", ["--display-name", "--description", "--avatar", "--delete"]),
    ],
)
def test_help(script: str, expected: list[str]) -> None:
    assert os.access(SCRIPTS / script, os.X_OK)
    done = run(script, "--help")
    assert done.returncode == 0, done.stderr
    for option in expected:
        assert option in done.stdout


# -- checkin ------------------------------------------------------------------------------------
def test_checkin_script_writes_one_commit(pds_stack: Stack, tmp_path: Path) -> None:
    did, env = login_env(pds_stack, "cli")
    photo = tmp_path / "view.jpg"
    photo.write_bytes(jpeg(120, 80))
    done = run(
        "checkin",
        "--lat", "38.713909", "--lon", "-9.133476", "--place", "Miradouro da Graça",
        "--text", "Best view", "--photo", str(photo), "--alt", "Rooftops at sunset",
        "--country", "PT", "--locality", "Lisboa", "--lang", "pt", "--json",
        env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    rkey = result["checkin"].rsplit("/", 1)[1]
    assert result["post"] == f"at://{did}/{nsids.BSKY_FEED_POST}/{rkey}"

    last = commit_events(pds_stack, did)[-1]
    assert last["rev"] == result["rev"]
    assert sorted(op["path"] for op in last["ops"]) == [
        f"{nsids.BSKY_FEED_POST}/{rkey}",
        f"{nsids.SKYSPOT_CHECKIN}/{rkey}",
    ]
    records = commit_records(last)
    post = records[f"{nsids.BSKY_FEED_POST}/{rkey}"]
    checkin = records[f"{nsids.SKYSPOT_CHECKIN}/{rkey}"]
    assert post["embed"]["images"] == checkin["photos"]
    assert checkin["photos"][0]["alt"] == "Rooftops at sunset"
    assert checkin["locations"][1] == {
        "$type": nsids.LOCATION_ADDRESS,
        "country": "PT",
        "locality": "Lisboa",
    }
    for collection, cid in (
        (nsids.BSKY_FEED_POST, "post_cid"),
        (nsids.SKYSPOT_CHECKIN, "checkin_cid"),
    ):
        status, got = get_record(pds_stack, did, collection, rkey)
        assert (status, got["cid"]) == (200, result[cid])


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["--lat", "91", "--lon", "0"], 1, "record/locations/0/latitude"),
        (["--lat", "north", "--lon", "0"], 1, "record/locations/0/latitude must be a number"),
        (["--lat", "1", "--lon", "0", "--precision", "city", "--fsq-id", "4b0"], 1, "Foursquare"),
        (["--lat", "1", "--lon", "0", "--alt", "no photo"], 2, "one --alt per --photo"),
        (
            ["--lat", "1", "--lon", "0", "--precision", "city", "--street", "1 Main St"],
            2,
            "--country",
        ),
    ],
)
def test_checkin_script_refuses(
    pds_stack: Stack, args: list[str], status: int, message: str
) -> None:
    did, env = login_env(pds_stack, "clibad")
    before = len(commit_events(pds_stack, did))
    done = run("checkin", "--place", "Somewhere", *args, env=env)
    assert done.returncode == status, done.stderr
    assert message in done.stderr
    assert len(commit_events(pds_stack, did)) == before


def test_checkin_script_refuses_too_many_photos(pds_stack: Stack, tmp_path: Path) -> None:
    _did, env = login_env(pds_stack, "cli5")
    args = []
    for n in range(5):
        path = tmp_path / f"{n}.jpg"
        path.write_bytes(jpeg())
        args += ["--photo", str(path), "--alt", f"photo {n}"]
    done = run("checkin", "--lat", "1", "--lon", "1", "--place", "X", *args, env=env)
    assert done.returncode == 1
    assert "record/photos must have at most 4 photos" in done.stderr


# -- seed ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_seed_2000_checkins_then_rerun_adds_nothing(pds_stack: Stack) -> None:
    prefix = unique_name("s")[:6]
    args = ["--pds", pds_stack.pds_url, "--accounts", "20", "--checkins", "2000"]
    args += ["--handle-prefix", prefix, "--seed", "7", "--json"]
    first = run("seed", *args)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert (report["accounts_created"], report["checkins_written"]) == (20, 2000)
    assert report["photos_uploaded"] > 0

    domain = pds_stack.settings.service_handle_domains[0]
    dids = []
    for n in range(20):
        status, body = get_json(
            f"{pds_stack.xrpc(nsids.IDENTITY_RESOLVE_HANDLE)}?handle={prefix}-7-{n}{domain}"
        )
        assert status == 200, body
        dids.append(body["did"])
    events_before = sum(event_count(pds_stack, did) for did in dids)
    assert _count_checkins(pds_stack, dids) == 2000

    again = run("seed", *args)
    assert again.returncode == 0, again.stderr
    rerun = json.loads(again.stdout)
    assert (rerun["accounts_created"], rerun["checkins_written"]) == (0, 0)
    assert (rerun["accounts_existing"], rerun["checkins_present"]) == (20, 2000)
    assert sum(event_count(pds_stack, did) for did in dids) == events_before

    dry = run("seed", *args[:-1], "--checkins", "2005", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would write 5" in dry.stdout
    assert _count_checkins(pds_stack, dids) == 2000


def _count_checkins(stack: Stack, dids: list[str]) -> int:
    """Check-ins across the accounts; each must have its companion post under the same rkey."""
    total = 0
    for did in dids:
        cursor = ""
        while True:
            query = {"repo": did, "collection": nsids.SKYSPOT_CHECKIN, "limit": "100"}
            if cursor:
                query["cursor"] = cursor
            status, page = get_json(
                f"{stack.xrpc(nsids.REPO_LIST_RECORDS)}?{urllib.parse.urlencode(query)}"
            )
            assert status == 200, page
            for record in page["records"]:
                assert record["value"]["post"]["uri"].endswith(record["uri"].rsplit("/", 1)[1])
            total += len(page["records"])
            cursor = page.get("cursor") or ""
            if not cursor or not page["records"]:
                break
    return total


# -- publish-feed -------------------------------------------------------------------------------
def test_publish_feed_writes_updates_and_deletes(pds_stack: Stack, tmp_path: Path) -> None:
    did, env = login_env(pds_stack, "feed")
    avatar = tmp_path / "avatar.png"
    Image.effect_noise((720, 720), 90).convert("RGB").save(avatar)
    assert avatar.stat().st_size > 1_000_000
    base = ["--rkey", "nearby", "--service-did", "did:web:feeds.example.com"]
    done = run(
        "publish-feed", *base, "--display-name", "Nearby", "--description", "Check-ins near you",
        "--avatar", str(avatar), env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"at://{did}/{nsids.BSKY_FEED_GENERATOR}/nearby" in done.stdout
    status, first = get_record(pds_stack, did, nsids.BSKY_FEED_GENERATOR, "nearby")
    assert status == 200
    value = first["value"]
    assert (value["did"], value["displayName"]) == ("did:web:feeds.example.com", "Nearby")
    assert value["avatar"]["mimeType"] == "image/png"
    assert value["avatar"]["size"] <= 1_000_000

    done = run("publish-feed", "--rkey", "nearby", "--display-name", "Close by", env=env)
    assert done.returncode == 0, done.stderr
    status, second = get_record(pds_stack, did, nsids.BSKY_FEED_GENERATOR, "nearby")
    assert second["value"]["displayName"] == "Close by"
    assert second["value"]["createdAt"] == value["createdAt"]
    assert second["value"]["avatar"] == value["avatar"]
    assert second["value"]["description"] == "Check-ins near you"

    dry = run("publish-feed", "--rkey", "nearby", "--display-name", "X" * 25, env=env)
    assert dry.returncode == 2
    assert "24 graphemes" in dry.stderr

    done = run("publish-feed", "--rkey", "nearby", "--delete", env=env)
    assert done.returncode == 0, done.stderr
    status, gone = get_record(pds_stack, did, nsids.BSKY_FEED_GENERATOR, "nearby")
    assert (status, gone.get("error")) == (400, "RecordNotFound")


def test_publish_feed_refuses_other_avatar_formats(pds_stack: Stack, tmp_path: Path) -> None:
    _did, env = login_env(pds_stack, "feedgif")
    avatar = tmp_path / "avatar.gif"
    out = io.BytesIO()
    Image.new("RGB", (10, 10)).save(out, "GIF")
    avatar.write_bytes(out.getvalue())
    done = run(
        "publish-feed", "--service-did", "did:web:feeds.example.com", "--display-name", "N",
        "--avatar", str(avatar), env=env,
    )  # fmt: skip
    assert done.returncode == 2
    assert "PNG or JPEG" in done.stderr

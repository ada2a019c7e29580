"""The one-machine stack, started exactly as `./scripts/run` starts it (a subprocess, real ports).

A user creates an account, posts check-ins in Lisbon and Tokyo with `scripts/checkin`, and the
check-ins come back from the feed generator's `getFeedSkeleton` after travelling PDS -> firehose
-> consumer -> index. A viewer whose latest check-in is in Tokyo, authenticated with a token its
PDS minted for the feed generator's did:plc, gets Tokyo first. SIGINT (what Ctrl-C sends) to the
script alone stops every service it started. `--demo` seeds and prints a viewer's feed page, a
second stack runs beside it on other ports and another data directory, and restarting that stack
on new ports keeps its identities.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from atcore import nsids
from scripts.stack.http import bearer, get_json, post_json, xrpc_url
from scripts.stack.process import ROOT, RunScript, alive

pytestmark = pytest.mark.slow

SERVICES = ("pds.plc", "pds", "firehose_consumer", "feedgen")
LISBON = ("38.7139", "-9.1335")
TOKYO = ("35.6762", "139.6503")
PASSWORD = "change-me-please"  # a throw-away loopback account


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[RunScript]]:
    """Scripts the test starts; any still running at the end are killed with their groups."""
    scripts: list[RunScript] = []
    yield scripts
    for script in scripts:
        if script.process.poll() is None:
            script.kill()


def create_account(script: RunScript, name: str) -> str:
    body = {"handle": f"{name}.test", "email": f"{name}@example.com", "password": PASSWORD}
    created = post_json(xrpc_url(script.pds_url, nsids.SERVER_CREATE_ACCOUNT), body)
    return str(created["did"])


def checkin(script: RunScript, name: str, where: tuple[str, str], number: int) -> str:
    """`scripts/checkin` as the banner shows it; the companion post's URI."""
    lat, lon = where
    env = {
        **os.environ,
        "SKYSPOT_PDS": script.pds_url,
        "SKYSPOT_IDENTIFIER": f"{name}.test",
        "SKYSPOT_PASSWORD": PASSWORD,
    }
    result = subprocess.run(
        [
            str(ROOT / "scripts" / "checkin"),
            *("--lat", f"{lat}{number:02d}", "--lon", f"{lon}{number:02d}"),
            *("--place", f"Spot {number}", "--text", f"Check-in number {number}"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    found = re.search(r"^post\s+(at://\S+)", result.stdout, re.MULTILINE)
    assert found is not None, result.stdout
    return found.group(1)


def feed_page(script: RunScript, token: str | None = None, limit: int = 100) -> list[Any]:
    params: dict[str, str | int] = {"feed": script.feed_uri, "limit": limit}
    url = xrpc_url(script.feedgen_url, nsids.BSKY_FEED_GET_FEED_SKELETON, params)
    page = get_json(url, headers=bearer(token) if token else None)
    return list(page["feed"])


def wait_for_posts(script: RunScript, posts: set[str], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not posts <= {item["post"] for item in feed_page(script)}:
        assert time.monotonic() < deadline, f"not indexed in {timeout} s: {posts}"
        time.sleep(0.3)


def viewer_token(script: RunScript, name: str) -> str:
    session = post_json(
        xrpc_url(script.pds_url, nsids.SERVER_CREATE_SESSION),
        {"identifier": f"{name}.test", "password": PASSWORD},
    )
    params = {"aud": script.service_did, "lxm": nsids.BSKY_FEED_GET_FEED_SKELETON}
    url = xrpc_url(script.pds_url, nsids.SERVER_GET_SERVICE_AUTH, params)
    return str(get_json(url, headers=bearer(session["accessJwt"]))["token"])


def assert_stops_everything(script: RunScript, signum: signal.Signals, status: int) -> None:
    children = script.descendants()
    modules = sorted(command.split(" -m ")[1].split()[0] for command in children.values())
    assert modules == sorted(SERVICES), children
    assert script.stop(signum) == status, script.output
    still_running = {pid: cmd for pid, cmd in children.items() if alive(pid)}
    assert still_running == {}
    assert not script.group_alive()


def test_run_indexes_checkins_and_serves_them_then_stops_on_ctrl_c(
    tmp_path: Path, started: list[RunScript]
) -> None:
    script = RunScript.start(tmp_path)
    started.append(script)
    service_did = script.service_did
    assert service_did.startswith("did:plc:")

    # The feed generator's identity lives on the local PLC; its feed record on the PDS names it.
    document = get_json(f"{script.plc_url}/{service_did}")
    assert document["service"] == [
        {"id": "#bsky_fg", "type": "BskyFeedGenerator", "serviceEndpoint": script.feedgen_url}
    ]
    publisher, _, rkey = script.feed_uri.removeprefix("at://").split("/")
    params = {"repo": publisher, "collection": nsids.BSKY_FEED_GENERATOR, "rkey": rkey}
    record = get_json(xrpc_url(script.pds_url, nsids.REPO_GET_RECORD, params))["value"]
    assert record["did"] == service_did
    described = get_json(xrpc_url(script.feedgen_url, nsids.BSKY_FEED_DESCRIBE_FEED_GENERATOR))
    assert described["did"] == service_did
    assert script.feed_uri in [feed["uri"] for feed in described["feeds"]]
    assert feed_page(script) == []

    create_account(script, "alice")
    create_account(script, "viewer")
    lisbon = {checkin(script, "alice", LISBON, n) for n in (1, 2)}
    tokyo = {checkin(script, "alice", TOKYO, n) for n in (3, 4)}
    own = checkin(script, "viewer", TOKYO, 5)  # the viewer's latest check-in: the anchor
    wait_for_posts(script, lisbon | tokyo | {own})

    anonymous = [item["post"] for item in feed_page(script)]
    assert anonymous[0] == own  # newest first
    assert set(anonymous[-2:]) == lisbon  # the oldest

    ranked = feed_page(script, viewer_token(script, "viewer"))
    assert {item["post"] for item in ranked[:3]} == tokyo | {own}
    assert {item["post"] for item in ranked[3:]} == lisbon
    bands = [item["feedContext"].split(";")[0] for item in ranked]
    assert bands == ["band=near"] * 3 + ["band=world"] * 2

    with urllib.request.urlopen(
        f"http://127.0.0.1:{script.consumer_port}/metrics", timeout=10
    ) as response:
        assert b"firehose_cursor" in response.read()
    assert (script.data_dir / "index.sqlite").exists()
    assert (script.data_dir / "logs" / "consumer.log").exists()

    assert_stops_everything(script, signal.SIGINT, 130)


def test_demo_prints_a_viewer_page_and_stacks_run_side_by_side(
    tmp_path: Path, started: list[RunScript]
) -> None:
    demo = RunScript.start(
        tmp_path / "demo", "--demo", extra_env={"DEMO_ACCOUNTS": "3", "DEMO_CHECKINS": "9"}
    )
    started.append(demo)
    assert "9 check-ins indexed. Feed page for demo viewer @spot-1-" in demo.output
    page = re.findall(r"^\s+\d+\. .+ \[(band=[^\]]+)\] @(\S+)$", demo.output, re.MULTILINE)
    assert len(page) == 9
    assert page[0][0].startswith("band=near;km=")
    assert {handle for _, handle in page} <= {f"spot-1-{n}.test" for n in range(3)}

    other = RunScript.start(tmp_path / "other")
    started.append(other)
    assert other.service_did != demo.service_did
    assert len(feed_page(demo)) == 9
    assert feed_page(other) == []

    assert_stops_everything(other, signal.SIGTERM, 143)
    assert len(feed_page(demo)) == 9  # stopping one stack leaves the other alone
    assert_stops_everything(demo, signal.SIGTERM, 143)

    # Restarted on the same data with the feed generator on another port: the same DIDs, the
    # #bsky_fg endpoint moved by a signed PLC update, the same feed record.
    again = RunScript.start(tmp_path / "other", same_ports_as=other)
    started.append(again)
    assert (again.service_did, again.feed_uri) == (other.service_did, other.feed_uri)
    assert again.feedgen_port != other.feedgen_port
    document = get_json(f"{again.plc_url}/{again.service_did}")
    assert document["service"][0]["serviceEndpoint"] == again.feedgen_url
    audit = get_json(f"{again.plc_url}/{again.service_did}/log/audit")
    assert len(audit) == 2
    assert_stops_everything(again, signal.SIGINT, 130)

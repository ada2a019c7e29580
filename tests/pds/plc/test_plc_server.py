"""The local PLC directory over HTTP: submission rules, reads, errors, export, interop replay."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from atcore.crypto import Keypair
from atcore.identity.plc import (
    PlcOp,
    PlcOperation,
    create_genesis_op,
    create_tombstone_op,
    create_update_op,
    did_for_genesis,
    op_cid,
    op_to_json,
)
from atcore.identity.plc_parse import format_timestamp, parse_timestamp
from tests.atcore.identity_support import FakeWallClock, load_json, plc_audit_logs
from tests.pds.plc.conftest import PlcClient


def genesis_op(keys: dict[str, Keypair], handle: str = "alice.test") -> PlcOperation:
    return create_genesis_op(
        signer=keys["rotation"],
        rotation_keys=[keys["recovery"].did(), keys["rotation"].did()],
        signing_key=keys["signing"].did(),
        handle=handle,
        pds_endpoint="https://pds.example.com",
    )


async def submit(plc: PlcClient, did: str, op: PlcOp | dict[str, Any]) -> tuple[int, Any]:
    body = op if isinstance(op, dict) else op_to_json(op)
    response = await plc.post(f"/{did}", json=body)
    text = await response.text()
    return response.status, (json.loads(text) if text else None)


async def get_json(plc: PlcClient, path: str) -> tuple[int, Any]:
    response = await plc.get(path)
    return response.status, await response.json(content_type=None)


async def create(plc: PlcClient, keys: dict[str, Keypair]) -> tuple[str, PlcOperation]:
    genesis = genesis_op(keys)
    did = did_for_genesis(genesis)
    assert await submit(plc, did, genesis) == (200, None)
    return did, genesis


# -- the happy path -------------------------------------------------------------------------------
async def test_genesis_then_resolve(
    plc: PlcClient, keys: dict[str, Keypair], clock: FakeWallClock
) -> None:
    did, genesis = await create(plc, keys)
    response = await plc.get(f"/{did}")
    assert response.status == 200
    assert response.content_type == "application/did+ld+json"
    doc = await response.json(content_type=None)
    assert doc["id"] == did
    assert doc["alsoKnownAs"] == ["at://alice.test"]
    assert (
        doc["verificationMethod"][0]["publicKeyMultibase"] == keys["signing"].public_key.multikey()
    )
    assert doc["service"] == [
        {
            "id": "#atproto_pds",
            "type": "AtprotoPersonalDataServer",
            "serviceEndpoint": "https://pds.example.com",
        }
    ]
    assert await get_json(plc, f"/{did}/log") == (200, [op_to_json(genesis)])
    assert await get_json(plc, f"/{did}/log/last") == (200, op_to_json(genesis))
    status, data = await get_json(plc, f"/{did}/data")
    assert status == 200
    assert data["rotationKeys"] == [keys["recovery"].did(), keys["rotation"].did()]
    status, audit = await get_json(plc, f"/{did}/log/audit")
    assert audit == [
        {
            "did": did,
            "operation": op_to_json(genesis),
            "cid": str(op_cid(genesis)),
            "nullified": False,
            "createdAt": format_timestamp(clock.now),
        }
    ]


async def test_update_rotates_key_changes_handle_and_pds(
    plc: PlcClient, keys: dict[str, Keypair], clock: FakeWallClock
) -> None:
    did, genesis = await create(plc, keys)
    clock.advance(timedelta(minutes=5))
    update = create_update_op(
        genesis,
        signer=keys["rotation"],
        signing_key=keys["signing2"].did(),
        handle="alice2.test",
        pds_endpoint="https://pds2.example.com",
    )
    assert await submit(plc, did, update) == (200, None)
    _, doc = await get_json(plc, f"/{did}")
    assert doc["alsoKnownAs"] == ["at://alice2.test"]
    assert (
        doc["verificationMethod"][0]["publicKeyMultibase"] == keys["signing2"].public_key.multikey()
    )
    assert doc["service"][0]["serviceEndpoint"] == "https://pds2.example.com"
    _, audit = await get_json(plc, f"/{did}/log/audit")
    assert [entry["cid"] for entry in audit] == [str(op_cid(genesis)), str(op_cid(update))]
    assert [entry["nullified"] for entry in audit] == [False, False]
    assert parse_timestamp(audit[1]["createdAt"]) - parse_timestamp(audit[0]["createdAt"]) == (
        timedelta(minutes=5)
    )


async def test_duplicate_submission_is_idempotent(plc: PlcClient, keys: dict[str, Keypair]) -> None:
    did, genesis = await create(plc, keys)
    assert await submit(plc, did, genesis) == (200, None)
    _, audit = await get_json(plc, f"/{did}/log/audit")
    assert len(audit) == 1


async def test_tombstone(plc: PlcClient, keys: dict[str, Keypair], clock: FakeWallClock) -> None:
    did, genesis = await create(plc, keys)
    tombstone = create_tombstone_op(genesis, signer=keys["rotation"])
    assert await submit(plc, did, tombstone) == (200, None)
    for path in (f"/{did}", f"/{did}/data"):
        status, body = await get_json(plc, path)
        assert status == 410
        assert "not available" in body["message"]
    status, log = await get_json(plc, f"/{did}/log")
    assert (status, len(log)) == (200, 2)
    clock.advance(timedelta(hours=100))  # past the recovery window: the tombstone is final
    late = create_update_op(genesis, signer=keys["recovery"], handle="back.test")
    status, body = await submit(plc, did, late)
    assert status == 400
    assert "72 hr" in body["message"]


# -- rejected submissions -------------------------------------------------------------------------
async def test_wrong_key_signature(plc: PlcClient, keys: dict[str, Keypair]) -> None:
    did, genesis = await create(plc, keys)
    forged = create_update_op(
        genesis, signer=keys["attacker"], rotation_keys=[keys["attacker"].did()]
    )
    status, body = await submit(plc, did, forged)
    assert status == 400
    assert "signature" in body["message"]


async def test_bad_prev(plc: PlcClient, keys: dict[str, Keypair]) -> None:
    did, _ = await create(plc, keys)
    elsewhere = genesis_op(keys, handle="someone.test")  # a CID this DID has never seen
    update = create_update_op(elsewhere, signer=keys["rotation"], handle="x.test")
    status, body = await submit(plc, did, update)
    assert status == 400
    assert "prev" in body["message"]


async def test_genesis_for_the_wrong_did(plc: PlcClient, keys: dict[str, Keypair]) -> None:
    status, body = await submit(plc, "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa", genesis_op(keys))
    assert status == 400
    assert did_for_genesis(genesis_op(keys)) in body["message"]


async def test_update_for_unknown_did(plc: PlcClient, keys: dict[str, Keypair]) -> None:
    genesis = genesis_op(keys)
    update = create_update_op(genesis, signer=keys["rotation"], handle="x.test")
    status, _ = await submit(plc, did_for_genesis(genesis), update)
    assert status == 400


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        pytest.param(b"{not json", "JSON", id="malformed-json"),
        pytest.param(b"[]", "object", id="array"),
        pytest.param(b"[" * 50_000, "JSON", id="deeply-nested"),
        pytest.param(b'{"type": "plc_operation"}', "missing", id="missing-fields"),
        pytest.param(b'{"type": "plc_tombstone", "prev": 1.5, "sig": "x"}', "float", id="float"),
    ],
)
async def test_malformed_bodies(plc: PlcClient, body: bytes, needle: str) -> None:
    response = await plc.post("/did:plc:aaaaaaaaaaaaaaaaaaaaaaaa", data=body)
    assert response.status == 400
    assert needle in (await response.json())["message"]


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        pytest.param({"extra": True}, "unexpected", id="extra-field"),
        pytest.param({"alsoKnownAs": ["at://" + "a" * 600] * 20}, "too large", id="too-large"),
        pytest.param({"alsoKnownAs": ["at://a.test", "at://a.test"]}, "duplicate", id="dup-aka"),
        pytest.param({"rotationKeys": ["did:key:zNope"]}, "rotation key", id="bad-rotation-key"),
        pytest.param({"verificationMethods": {"atproto": "key"}}, "verificationMethod", id="vm"),
    ],
)
async def test_operations_outside_the_limits(
    plc: PlcClient, keys: dict[str, Keypair], change: dict[str, Any], needle: str
) -> None:
    raw = op_to_json(genesis_op(keys))
    raw.update(change)
    status, body = await submit(plc, "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa", raw)
    assert status == 400
    assert needle in body["message"]


async def test_legacy_create_is_refused(plc: PlcClient) -> None:
    legacy = {
        "type": "create",
        "signingKey": "did:key:zQ3shP5TBe1sQfSttXty15FAEHV1DZgcxRZNxvEWnPfLFwLxJ",
        "recoveryKey": "did:key:zQ3shhCGUqDKjStzuDxPkTxN6ujddP4RkEKJJouJGRRkaLGbg",
        "handle": "dan.bsky.social",
        "service": "https://bsky.social",
        "prev": None,
        "sig": "refused-before-any-signature-check",
    }
    status, body = await submit(plc, "did:plc:yk4dd2qkboz2yv6tpubpc6co", legacy)
    assert status == 400
    assert "legacy" in body["message"]


async def test_oversized_request_body(plc: PlcClient) -> None:
    response = await plc.post("/did:plc:aaaaaaaaaaaaaaaaaaaaaaaa", data=b"x" * (100 * 1024))
    assert response.status == 413
    assert "message" in await response.json()


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/did:plc:aaaaaaaaaaaaaaaaaaaaaaaa", 404),
        ("/did:plc:aaaaaaaaaaaaaaaaaaaaaaaa/log/audit", 404),
        ("/not-a-did", 400),
        ("/did:web:example.com", 400),
        ("/did:plc:aaaaaaaaaaaaaaaaaaaaaaaa/nope", 404),
    ],
)
async def test_read_errors_are_json(plc: PlcClient, path: str, status: int) -> None:
    response = await plc.get(path)
    assert response.status == status
    assert response.content_type == "application/json"
    assert isinstance((await response.json())["message"], str)


# -- recovery forks -------------------------------------------------------------------------------
async def _hijacked(
    plc: PlcClient, keys: dict[str, Keypair], clock: FakeWallClock, signer: str
) -> tuple[str, PlcOperation, PlcOperation]:
    did, genesis = await create(plc, keys)
    clock.advance(timedelta(minutes=1))
    hijack = create_update_op(genesis, signer=keys[signer], rotation_keys=[keys["attacker"].did()])
    assert await submit(plc, did, hijack) == (200, None)
    return did, genesis, hijack


async def test_fork_by_higher_priority_key_within_72h(
    plc: PlcClient, keys: dict[str, Keypair], clock: FakeWallClock
) -> None:
    did, genesis, hijack = await _hijacked(plc, keys, clock, signer="rotation")
    clock.advance(timedelta(hours=71))
    recovery = create_update_op(genesis, signer=keys["recovery"], handle="recovered.test")
    assert await submit(plc, did, recovery) == (200, None)
    _, audit = await get_json(plc, f"/{did}/log/audit")
    assert [(e["cid"], e["nullified"]) for e in audit] == [
        (str(op_cid(genesis)), False),
        (str(op_cid(hijack)), True),
        (str(op_cid(recovery)), False),
    ]
    _, doc = await get_json(plc, f"/{did}")
    assert doc["alsoKnownAs"] == ["at://recovered.test"]
    assert await get_json(plc, f"/{did}/log") == (200, [op_to_json(genesis), op_to_json(recovery)])
    status, _ = await submit(plc, did, hijack)  # a nullified op cannot be resubmitted
    assert status == 400


async def test_fork_by_lower_priority_key_is_rejected(
    plc: PlcClient, keys: dict[str, Keypair], clock: FakeWallClock
) -> None:
    did, genesis, _ = await _hijacked(plc, keys, clock, signer="recovery")
    clock.advance(timedelta(hours=1))
    counter = create_update_op(genesis, signer=keys["rotation"], handle="counter.test")
    status, body = await submit(plc, did, counter)
    assert status == 400
    assert "signature" in body["message"]


async def test_fork_after_72h_is_rejected(
    plc: PlcClient, keys: dict[str, Keypair], clock: FakeWallClock
) -> None:
    did, genesis, _ = await _hijacked(plc, keys, clock, signer="rotation")
    clock.advance(timedelta(hours=72, milliseconds=1))
    recovery = create_update_op(genesis, signer=keys["recovery"], handle="late.test")
    status, body = await submit(plc, did, recovery)
    assert status == 400
    assert "72 hr" in body["message"]


# -- export and health ----------------------------------------------------------------------------
async def test_export_pages_by_sequence(
    plc: PlcClient, keys: dict[str, Keypair], clock: FakeWallClock
) -> None:
    submitted = []
    for handle in ("a.test", "b.test", "c.test"):
        genesis = genesis_op(keys, handle=handle)
        assert await submit(plc, did_for_genesis(genesis), genesis) == (200, None)
        submitted.append(str(op_cid(genesis)))
        clock.advance(timedelta(seconds=1))
    first = await _export(plc, "after=0&count=2")
    assert [(line["type"], line["seq"], line["cid"]) for line in first] == [
        ("sequenced_op", 1, submitted[0]),
        ("sequenced_op", 2, submitted[1]),
    ]
    rest = await _export(plc, f"after={first[-1]['seq']}&count=2")
    assert [line["cid"] for line in rest] == submitted[2:]
    legacy = await _export(plc, "count=2")
    assert [line["cid"] for line in legacy] == submitted[:2]
    assert all(line["nullified"] is False and "seq" not in line for line in legacy)
    after_time = await _export(plc, f"after={legacy[-1]['createdAt']}")
    assert [line["cid"] for line in after_time] == submitted[2:]


async def _export(plc: PlcClient, query: str) -> list[dict[str, Any]]:
    response = await plc.get(f"/export?{query}")
    assert response.status == 200
    assert response.content_type == "application/jsonlines"
    return [json.loads(line) for line in (await response.text()).splitlines()]


@pytest.mark.parametrize("query", ["count=0", "count=-1", "count=x", "after=yesterday"])
async def test_export_rejects_bad_parameters(plc: PlcClient, query: str) -> None:
    response = await plc.get(f"/export?{query}")
    assert response.status == 400


async def test_health(plc: PlcClient) -> None:
    status, body = await get_json(plc, "/_health")
    assert status == 200
    assert "version" in body


# -- interop: replaying the did-method-plc audit logs through HTTP --------------------------------
@pytest.mark.parametrize("path", plc_audit_logs("valid", exclude=("legacy",)))
async def test_valid_interop_log_replays_exactly(
    plc: PlcClient, clock: FakeWallClock, path: Path
) -> None:
    entries = load_json(path)
    for entry in entries:
        clock.now = parse_timestamp(entry["createdAt"])
        assert await submit(plc, entry["did"], entry["operation"]) == (200, None)
    assert await get_json(plc, f"/{entries[0]['did']}/log/audit") == (200, entries)


@pytest.mark.parametrize("path", plc_audit_logs("invalid"))
async def test_invalid_interop_log_fails_on_its_last_op(
    plc: PlcClient, clock: FakeWallClock, path: Path
) -> None:
    entries = load_json(path)
    for entry in entries[:-1]:
        clock.now = parse_timestamp(entry["createdAt"])
        assert await submit(plc, entry["did"], entry["operation"]) == (200, None)
    clock.now = parse_timestamp(entries[-1]["createdAt"])
    status, body = await submit(plc, entries[-1]["did"], entries[-1]["operation"])
    assert status == 400
    assert body["message"]

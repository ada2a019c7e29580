"""atcore.identity did:plc: interop audit logs, signing, DID derivation and chain rules."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atcore import dagcbor
from atcore.crypto import K256Keypair, Keypair, P256Keypair
from atcore.identity import DidNotFound
from atcore.identity.errors import (
    GenesisMismatch,
    InvalidPlcOperation,
    InvalidPlcSignature,
    LateRecovery,
    MisorderedOperation,
    PlcOperationError,
)
from atcore.identity.plc import (
    LegacyCreateOp,
    PlcOperation,
    PlcService,
    PlcTombstone,
    create_genesis_op,
    create_tombstone_op,
    create_update_op,
    decode_sig,
    did_for_genesis,
    document_from_op,
    op_cid,
    op_to_json,
    sign_op,
    unsigned_bytes,
    verify_op_signature,
)
from atcore.identity.plc_log import (
    assure_valid_next_op,
    validate_audit_log,
    validate_operation_log,
)
from atcore.identity.plc_parse import LogEntry, format_timestamp, parse_operation
from atcore.syntax import Did
from tests.atcore.identity_support import load_json, plc_audit_logs

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
KEYPAIR_TYPES: list[type[Keypair]] = [K256Keypair, P256Keypair]

# -- interop fixtures -----------------------------------------------------------------------------
# What each invalid log must fail with (from the reference server's interop test expectations).
INVALID_LOG_ERRORS: dict[str, type[PlcOperationError]] = {
    "log_invalid_nullification_reused_key": InvalidPlcSignature,
    "log_invalid_nullification_too_slow": LateRecovery,
    "log_invalid_sig_b64_newline": InvalidPlcSignature,
    "log_invalid_sig_b64_padding_bits": InvalidPlcSignature,
    "log_invalid_sig_b64_padding_chars": InvalidPlcSignature,
    "log_invalid_sig_der": InvalidPlcSignature,
    "log_invalid_sig_k256_high_s": InvalidPlcSignature,
    "log_invalid_sig_p256_high_s": InvalidPlcSignature,
    "log_invalid_update_nullified": MisorderedOperation,
    "log_invalid_update_tombstoned": MisorderedOperation,
}


def _entries(path: Path) -> list[LogEntry]:
    return [LogEntry.from_json(item) for item in load_json(path)]


@pytest.mark.parametrize("path", plc_audit_logs("valid"))
def test_valid_audit_log_replays(path: Path) -> None:
    entries = _entries(path)
    state = validate_audit_log(entries)
    last_active = [e for e in entries if not e.nullified][-1]
    assert (state is None) == isinstance(last_active.operation, PlcTombstone)
    if state is not None:
        assert state.did == entries[0].did


@pytest.mark.parametrize("path", plc_audit_logs("valid"))
def test_genesis_derives_the_fixture_did(path: Path) -> None:
    entries = _entries(path)
    assert did_for_genesis(entries[0].operation) == entries[0].did


@pytest.mark.parametrize("path", plc_audit_logs("valid"))
def test_every_fixture_cid_matches_our_encoding(path: Path) -> None:
    for raw in load_json(path):
        op = parse_operation(raw["operation"])
        assert str(op_cid(op)) == raw["cid"]
        assert op_to_json(op) == raw["operation"]


@pytest.mark.parametrize("path", plc_audit_logs("valid"))
def test_timestamps_round_trip(path: Path) -> None:
    for raw in load_json(path):
        assert format_timestamp(LogEntry.from_json(raw).created_at) == raw["createdAt"]


@pytest.mark.parametrize("path", plc_audit_logs("valid", exclude=("nullif", "tombstone")))
def test_linear_valid_logs_validate_as_operation_chains(path: Path) -> None:
    entries = _entries(path)
    state = validate_operation_log(entries[0].did, [e.operation for e in entries])
    assert state is not None
    assert state == validate_audit_log(entries)


@pytest.mark.parametrize("path", plc_audit_logs("invalid"))
def test_invalid_audit_log_is_rejected(path: Path) -> None:
    with pytest.raises(INVALID_LOG_ERRORS[path.stem]):
        validate_audit_log(_entries(path))


def test_legacy_create_normalizes_like_the_reference() -> None:
    op = parse_operation(
        {
            "type": "create",
            "signingKey": "did:key:zQ3shP5TBe1sQfSttXty15FAEHV1DZgcxRZNxvEWnPfLFwLxJ",
            "recoveryKey": "did:key:zQ3shhCGUqDKjStzuDxPkTxN6ujddP4RkEKJJouJGRRkaLGbg",
            "handle": "dan.bsky.social",
            "service": "bsky.social",
            "prev": None,
            "sig": "x",
        }
    )
    assert isinstance(op, LegacyCreateOp)
    doc = document_from_op("did:plc:yk4dd2qkboz2yv6tpubpc6co", op)
    assert doc.handle == "dan.bsky.social"
    assert doc.pds_endpoint == "https://bsky.social"
    assert doc.atproto_key is not None
    assert doc.atproto_key.did_key() == op.signing_key


# -- creating, signing, deriving ------------------------------------------------------------------
@pytest.fixture(scope="module")
def keys() -> dict[str, Keypair]:
    return {
        "recovery": K256Keypair.generate(),
        "rotation": P256Keypair.generate(),
        "signing": K256Keypair.generate(),
        "signing2": P256Keypair.generate(),
        "attacker": K256Keypair.generate(),
    }


def _genesis(keys: dict[str, Keypair]) -> PlcOperation:
    return create_genesis_op(
        signer=keys["rotation"],
        rotation_keys=[keys["recovery"].did(), keys["rotation"].did()],
        signing_key=keys["signing"].did(),
        handle="alice.test",
        pds_endpoint="https://pds.example.com",
    )


def test_genesis_did_is_the_truncated_base32_sha256(keys: dict[str, Keypair]) -> None:
    genesis = _genesis(keys)
    digest = hashlib.sha256(dagcbor.encode(op_to_json(genesis))).digest()
    expected = "did:plc:" + base64.b32encode(digest).decode().lower()[:24]
    assert did_for_genesis(genesis) == expected
    assert re.fullmatch(r"did:plc:[a-z2-7]{24}", did_for_genesis(genesis))


def test_signature_covers_the_op_without_sig(keys: dict[str, Keypair]) -> None:
    genesis = _genesis(keys)
    assert genesis.sig is not None
    unsigned = {k: v for k, v in op_to_json(genesis).items() if k != "sig"}
    assert unsigned_bytes(genesis) == dagcbor.encode(unsigned)
    assert keys["rotation"].public_key.verify(unsigned_bytes(genesis), decode_sig(genesis.sig))


def test_genesis_document(keys: dict[str, Keypair]) -> None:
    genesis = _genesis(keys)
    did = did_for_genesis(genesis)
    doc = document_from_op(did, genesis)
    assert doc.id == did
    assert doc.handle == "alice.test"
    assert doc.atproto_key == keys["signing"].public_key
    assert doc.pds_endpoint == "https://pds.example.com"
    rendered = doc.to_json()
    assert rendered["verificationMethod"][0]["id"] == f"{did}#atproto"
    assert rendered["service"][0]["id"] == "#atproto_pds"
    assert "https://w3id.org/security/suites/secp256k1-2019/v1" in rendered["@context"]


def test_update_changes_only_what_was_asked(keys: dict[str, Keypair]) -> None:
    genesis = _genesis(keys)
    update = create_update_op(
        genesis, signer=keys["rotation"], handle="bob.test", signing_key=keys["signing2"].did()
    )
    assert update.prev == str(op_cid(genesis))
    assert update.also_known_as == ("at://bob.test",)
    assert update.verification_methods == {"atproto": keys["signing2"].did()}
    assert update.rotation_keys == genesis.rotation_keys
    assert update.services == genesis.services
    did = did_for_genesis(genesis)
    state = validate_operation_log(did, [genesis, update])
    assert state is not None
    assert state.also_known_as == ("at://bob.test",)


def test_tombstone_ends_the_chain(keys: dict[str, Keypair]) -> None:
    genesis = _genesis(keys)
    did = did_for_genesis(genesis)
    tombstone = create_tombstone_op(genesis, signer=keys["recovery"])
    assert validate_operation_log(did, [genesis, tombstone]) is None
    with pytest.raises(DidNotFound):
        document_from_op(did, tombstone)
    after = create_update_op(genesis, signer=keys["recovery"], handle="x.test")
    after = sign_op(
        PlcOperation(**{**_fields(after), "prev": str(op_cid(tombstone))}), keys["recovery"]
    )
    with pytest.raises(MisorderedOperation):
        validate_operation_log(did, [genesis, tombstone, after])


def _fields(op: PlcOperation) -> dict[str, Any]:
    return {
        "rotation_keys": op.rotation_keys,
        "verification_methods": op.verification_methods,
        "also_known_as": op.also_known_as,
        "services": op.services,
        "prev": op.prev,
    }


def test_chain_rejects_wrong_signer_and_forged_did(keys: dict[str, Keypair]) -> None:
    genesis = _genesis(keys)
    did = did_for_genesis(genesis)
    forged = create_update_op(
        genesis, signer=keys["attacker"], rotation_keys=[keys["attacker"].did()]
    )
    with pytest.raises(InvalidPlcSignature):
        validate_operation_log(did, [genesis, forged])
    with pytest.raises(GenesisMismatch):
        validate_operation_log("did:plc:aaaaaaaaaaaaaaaaaaaaaaaa", [genesis])
    self_signed_by_outsider = sign_op(genesis, keys["attacker"])
    with pytest.raises(InvalidPlcSignature):
        validate_operation_log(did_for_genesis(self_signed_by_outsider), [self_signed_by_outsider])


def test_chain_rejects_a_prev_that_skips(keys: dict[str, Keypair]) -> None:
    genesis = _genesis(keys)
    first = create_update_op(genesis, signer=keys["rotation"], handle="one.test")
    also_from_genesis = create_update_op(genesis, signer=keys["rotation"], handle="two.test")
    with pytest.raises(MisorderedOperation):
        validate_operation_log(did_for_genesis(genesis), [genesis, first, also_from_genesis])


# -- forks and the recovery window ----------------------------------------------------------------
def _entry(did: str, op: PlcOperation, at: datetime) -> LogEntry:
    return LogEntry(did=Did(did), operation=op, cid=op_cid(op), nullified=False, created_at=at)


@pytest.mark.parametrize(
    ("delay", "accepted"),
    [
        (timedelta(hours=1), True),
        (timedelta(hours=72), True),
        (timedelta(hours=72, seconds=1), False),
    ],
)
def test_recovery_window(keys: dict[str, Keypair], delay: timedelta, accepted: bool) -> None:
    genesis = _genesis(keys)
    did = did_for_genesis(genesis)
    hijack = create_update_op(
        genesis, signer=keys["rotation"], rotation_keys=[keys["attacker"].did()]
    )
    history = [_entry(did, genesis, T0), _entry(did, hijack, T0 + timedelta(minutes=1))]
    recovery = create_update_op(genesis, signer=keys["recovery"], handle="recovered.test")
    at = history[1].created_at + delay
    if accepted:
        verdict = assure_valid_next_op(did, history, recovery, at)
        assert verdict.prev == op_cid(genesis)
        assert verdict.nullified == (op_cid(hijack),)
    else:
        with pytest.raises(LateRecovery):
            assure_valid_next_op(did, history, recovery, at)


def test_fork_needs_a_strictly_higher_priority_key(keys: dict[str, Keypair]) -> None:
    genesis = _genesis(keys)
    did = did_for_genesis(genesis)
    by_recovery = create_update_op(genesis, signer=keys["recovery"], handle="a.test")
    history = [_entry(did, genesis, T0), _entry(did, by_recovery, T0 + timedelta(minutes=1))]
    fork_by_rotation = create_update_op(genesis, signer=keys["rotation"], handle="b.test")
    with pytest.raises(InvalidPlcSignature):
        assure_valid_next_op(did, history, fork_by_rotation, T0 + timedelta(hours=1))
    fork_by_same_key = create_update_op(genesis, signer=keys["recovery"], handle="c.test")
    with pytest.raises(InvalidPlcSignature):
        assure_valid_next_op(did, history, fork_by_same_key, T0 + timedelta(hours=1))


def test_recovery_must_come_after_the_latest_op(keys: dict[str, Keypair]) -> None:
    genesis = _genesis(keys)
    did = did_for_genesis(genesis)
    update = create_update_op(genesis, signer=keys["rotation"], handle="a.test")
    history = [_entry(did, genesis, T0), _entry(did, update, T0 + timedelta(hours=1))]
    recovery = create_update_op(genesis, signer=keys["recovery"], handle="b.test")
    with pytest.raises(MisorderedOperation):
        assure_valid_next_op(did, history, recovery, T0 + timedelta(hours=1))


# -- strict parsing and signature encoding --------------------------------------------------------
@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda d: d.pop("prev"), id="missing-prev"),
        pytest.param(lambda d: d.update(extra=1), id="extra-field"),
        pytest.param(lambda d: d.update(rotationKeys="did:key:z"), id="keys-not-list"),
        pytest.param(lambda d: d.update(prev="not-a-cid"), id="prev-not-cid"),
        pytest.param(lambda d: d.update(type="plc_update"), id="unknown-type"),
        pytest.param(lambda d: d.update(services={"x": {"type": "T"}}), id="service-no-endpoint"),
        pytest.param(lambda d: d.update(sig=7), id="sig-not-string"),
        pytest.param(lambda d: d.pop("sig"), id="unsigned"),
    ],
)
def test_parse_rejects_malformed_operations(keys: dict[str, Keypair], mutate: Any) -> None:
    raw = op_to_json(_genesis(keys))
    mutate(raw)
    with pytest.raises(InvalidPlcOperation):
        parse_operation(raw)


@pytest.mark.parametrize("bad", ["abc=", "ab\ncd", "a+b/", "abcde", "AB"])
def test_decode_sig_is_strict(bad: str) -> None:
    with pytest.raises(InvalidPlcSignature):
        decode_sig(bad)


# -- properties -----------------------------------------------------------------------------------
_names = st.text(st.characters(codec="utf-8"), max_size=20)
_services = st.dictionaries(_names, st.builds(PlcService, type=_names, endpoint=_names), max_size=3)


@st.composite
def _operations(draw: st.DrawFn) -> tuple[PlcOperation, Keypair]:
    keypair_type = draw(st.sampled_from(KEYPAIR_TYPES))
    secret = draw(st.integers(min_value=1, max_value=2**255))
    signer = keypair_type.from_private_bytes(secret.to_bytes(32, "big"))
    others = draw(st.lists(st.sampled_from([_FIXED_KEYS[0], _FIXED_KEYS[1]]), max_size=2))
    op = PlcOperation(
        rotation_keys=(*others, signer.did()),
        verification_methods=draw(st.dictionaries(_names, _names, max_size=3)),
        also_known_as=tuple(draw(st.lists(_names, max_size=3))),
        services=draw(_services),
        prev=draw(
            st.none() | st.just("bafyreigcxay6ucqlwowfpu35alyxqtv3c4vsj7gmdtmnidsnqs6nblyarq")
        ),
    )
    return sign_op(op, signer), signer


_FIXED_KEYS = (
    "did:key:zQ3shhCGUqDKjStzuDxPkTxN6ujddP4RkEKJJouJGRRkaLGbg",
    "did:key:zDnaedvvAsDE6H3BDdBejpx9ve2Tz95cymyCAKF66JbyMh1Lt",
)


@given(_operations())
def test_sign_verify_round_trip(case: tuple[PlcOperation, Keypair]) -> None:
    op, signer = case
    assert verify_op_signature(op, op.rotation_keys) == signer.did()
    reparsed = parse_operation(json.loads(json.dumps(op_to_json(op))))
    assert reparsed == op
    assert op_cid(reparsed) == op_cid(op)
    tampered = PlcOperation(
        **{**_fields(op), "also_known_as": (*op.also_known_as, "at://x.test")}, sig=op.sig
    )
    with pytest.raises(InvalidPlcSignature):
        verify_op_signature(tampered, op.rotation_keys)


@given(_operations())
def test_did_derivation_is_stable(case: tuple[PlcOperation, Keypair]) -> None:
    op, _ = case
    if op.prev is not None:
        op = sign_op(PlcOperation(**{**_fields(op), "prev": None}), case[1])
    did = did_for_genesis(op)
    assert re.fullmatch(r"did:plc:[a-z2-7]{24}", did)
    assert did_for_genesis(parse_operation(json.loads(json.dumps(op_to_json(op))))) == did

"""atcore.identity.diddoc: parsing DID documents per the atproto DID spec, and building ours."""

from __future__ import annotations

import json
from typing import Any

import pytest

from atcore.crypto import K256Keypair, P256Keypair, parse_multikey
from atcore.identity import (
    APPVIEW_SERVICE,
    FEED_GENERATOR_SERVICE,
    LABELER_SERVICE,
    PDS_SERVICE,
    DidDocument,
    InvalidDidDocument,
    atproto_account_document,
    build_did_document,
    service_did_document,
)

DID = "did:plc:ewvi7nxzyoun6zhxrhs64oiz"
# The same K-256 key in the legacy and the Multikey encodings (example in the atproto DID spec).
LEGACY_K256 = (
    "zQYEBzXeuTM9UR3rfvNag6L3RNAs5pQZyYPsomTsgQhsxLdEgCrPTLgFna8yqCnxPpNT7DBk6Ym3dgPKNu86vt9GR"
)
MULTIKEY_K256 = "zQ3shXjHeiBuRCKmM36cuYnm7YEMzhGnCmCyW92sRJ9pribSF"


def _doc(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "@context": ["https://www.w3.org/ns/did/v1"],
        "id": DID,
        "alsoKnownAs": ["at://alice.test"],
        "verificationMethod": [
            {
                "id": f"{DID}#atproto",
                "type": "Multikey",
                "controller": DID,
                "publicKeyMultibase": MULTIKEY_K256,
            }
        ],
        "service": [
            {
                "id": "#atproto_pds",
                "type": "AtprotoPersonalDataServer",
                "serviceEndpoint": "https://pds.example.com",
            }
        ],
    }
    doc.update(overrides)
    return doc


def _method(method_id: str, key: str, *, type_: str = "Multikey", controller: str = DID) -> Any:
    return {"id": method_id, "type": type_, "controller": controller, "publicKeyMultibase": key}


def _service(service_id: str, type_: str, endpoint: Any) -> dict[str, Any]:
    return {"id": service_id, "type": type_, "serviceEndpoint": endpoint}


def test_parses_an_atproto_document() -> None:
    doc = DidDocument.parse(json.dumps(_doc()).encode())
    assert doc.id == DID
    assert doc.handle == "alice.test"
    assert doc.atproto_key == parse_multikey(MULTIKEY_K256)
    assert doc.pds_endpoint == "https://pds.example.com"
    assert doc.require_pds_endpoint() == "https://pds.example.com"


def test_legacy_key_form_gives_the_same_key() -> None:
    legacy = _method("#atproto", LEGACY_K256, type_="EcdsaSecp256k1VerificationKey2019")
    doc = DidDocument.from_json(_doc(verificationMethod=[legacy]))
    assert doc.atproto_key == parse_multikey(MULTIKEY_K256)


@pytest.mark.parametrize(
    ("aliases", "handle"),
    [
        (["https://alice.test", "at://alice.test", "at://bob.test"], "alice.test"),
        (["at://not a handle", "at://bob.test"], "bob.test"),
        (["at://bob.test/app.bsky.feed.post/1", "at://carol.test"], "carol.test"),
        (["at://did:plc:ewvi7nxzyoun6zhxrhs64oiz"], None),
        ([], None),
    ],
)
def test_handle_is_the_first_valid_at_uri_alias(aliases: list[str], handle: str | None) -> None:
    assert DidDocument.from_json(_doc(alsoKnownAs=aliases)).handle == handle


def test_signing_key_is_the_first_valid_one_for_this_did() -> None:
    other = P256Keypair.generate().public_key
    methods = [
        _method("#atproto", "zNotBase58!"),
        _method(f"{DID}#atproto", other.multikey(), controller="did:plc:someoneelse00000000000"),
        _method("did:plc:someoneelse00000000000#atproto", other.multikey()),
        _method("#atproto", MULTIKEY_K256),
        _method(f"{DID}#atproto", other.multikey()),
    ]
    doc = DidDocument.from_json(_doc(verificationMethod=methods))
    assert doc.atproto_key == parse_multikey(MULTIKEY_K256)


def test_missing_signing_key() -> None:
    doc = DidDocument.from_json(_doc(verificationMethod=[]))
    assert doc.atproto_key is None
    with pytest.raises(InvalidDidDocument):
        doc.require_atproto_key()


def test_services_by_fragment_and_type() -> None:
    services = [
        _service("#atproto_pds", "SomethingElse", "https://wrong.example.com"),
        _service(f"{DID}#atproto_pds", "AtprotoPersonalDataServer", "https://pds.example.com"),
        _service("#bsky_fg", "BskyFeedGenerator", {"uri": "https://map.example.com"}),
        _service("#bsky_fg", "BskyFeedGenerator", "https://feed.example.com"),
        _service("#bsky_appview", "BskyAppView", "javascript:alert(1)"),
        _service("#atproto_labeler", "AtprotoLabeler", "https://labels.example.com:8443"),
    ]
    doc = DidDocument.from_json(_doc(service=services))
    assert doc.service_endpoint(PDS_SERVICE) == "https://pds.example.com"
    assert doc.service_endpoint(FEED_GENERATOR_SERVICE) == "https://feed.example.com"
    assert doc.service_endpoint(APPVIEW_SERVICE) is None
    assert doc.labeler_endpoint == "https://labels.example.com:8443"


def test_no_pds_service() -> None:
    doc = DidDocument.from_json(_doc(service=[]))
    assert doc.pds_endpoint is None
    with pytest.raises(InvalidDidDocument):
        doc.require_pds_endpoint()


@pytest.mark.parametrize(
    "document",
    [
        pytest.param([], id="not-an-object"),
        pytest.param({"alsoKnownAs": []}, id="no-id"),
        pytest.param(_doc(id="did:plc:"), id="invalid-id"),
        pytest.param(_doc(alsoKnownAs="at://alice.test"), id="aliases-not-a-list"),
        pytest.param(_doc(verificationMethod=[{"id": "#atproto"}]), id="method-without-type"),
        pytest.param(_doc(verificationMethod={"id": "#atproto"}), id="methods-not-a-list"),
        pytest.param(_doc(service=[_service("#x", "X", 42)]), id="endpoint-a-number"),
        pytest.param(_doc(**{"@context": 5}), id="context-a-number"),
    ],
)
def test_rejects_malformed_documents(document: Any) -> None:
    with pytest.raises(InvalidDidDocument):
        DidDocument.from_json(document)


@pytest.mark.parametrize("body", [b"\xff not json", b"[" * 50_000, b"{}"])
def test_rejects_non_documents(body: bytes) -> None:
    with pytest.raises(InvalidDidDocument):
        DidDocument.parse(body)


def test_claims_handle_ignores_case() -> None:
    doc = DidDocument.from_json(_doc(alsoKnownAs=["at://Alice.Test"]))
    assert doc.claims_handle("alice.test")
    assert not doc.claims_handle("bob.test")


def test_account_document_round_trips() -> None:
    key = K256Keypair.generate().public_key
    doc = atproto_account_document(
        DID, handle="alice.test", signing_key=key, pds_endpoint="https://pds.example.com"
    )
    again = DidDocument.from_json(json.loads(json.dumps(doc.to_json())))
    assert again == doc
    assert again.atproto_key == key
    assert again.handle == "alice.test"
    assert again.to_json()["verificationMethod"][0]["id"] == f"{DID}#atproto"
    assert "https://w3id.org/security/suites/secp256k1-2019/v1" in again.context


def test_feed_generator_document() -> None:
    did = "did:web:feed.example.com"
    doc = service_did_document(did, services={FEED_GENERATOR_SERVICE: "https://feed.example.com"})
    assert doc.feed_generator_endpoint == "https://feed.example.com"
    assert doc.atproto_key is None
    assert DidDocument.from_json(doc.to_json()) == doc


def test_labeler_document_with_p256_key() -> None:
    key = P256Keypair.generate().public_key
    doc = build_did_document(
        DID, keys={"atproto_label": key}, services={LABELER_SERVICE: "https://labels.example.com"}
    )
    assert doc.verification_key("atproto_label") == key
    assert "https://w3id.org/security/suites/ecdsa-2019/v1" in doc.context


@pytest.mark.parametrize("endpoint", ["ftp://x.example.com", "https://", "https://u:p@x.example"])
def test_builder_rejects_unusable_endpoints(endpoint: str) -> None:
    with pytest.raises(InvalidDidDocument):
        service_did_document(DID, services={PDS_SERVICE: endpoint})

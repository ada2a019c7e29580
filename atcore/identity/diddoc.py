"""DID documents: parsed from JSON into typed values, and built for the documents we publish.

Parsing follows the atproto DID spec: the document `id` must be a valid DID (callers compare it
with the DID they asked for); the claimed handle is the first `alsoKnownAs` entry that is `at://`
plus a syntactically valid handle; the atproto signing key is the first `verificationMethod` whose
id ends in `#atproto`, whose controller is the document's DID and whose key parses (`Multikey`, or
the legacy `EcdsaSecp256r1VerificationKey2019` / `EcdsaSecp256k1VerificationKey2019` forms); a
service is found by id fragment (relative `#atproto_pds` and fully-qualified `did:...#atproto_pds`
ids are equivalent) and type. Service entries are dropped when their `serviceEndpoint` is a map
(allowed by DID Core, unused by atproto) or not an http(s) URL with a host (unusable, and a
server-side request forgery vector), so every `Service.endpoint` is safe to fetch.

The handle and signing key are worked out once when the document is constructed: documents are
cached and read on hot paths (every firehose commit verifies a signature with the key).

Errors: `InvalidDidDocument` (from `atcore.identity.errors`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from atcore.crypto import CryptoError, K256PublicKey, P256PublicKey, PublicKey, parse_did_key
from atcore.crypto import public_key_from_did_doc_method as _key_from_method
from atcore.identity.errors import InvalidDidDocument
from atcore.syntax import Did, Handle, InvalidSyntax, is_valid_handle, parse_did

DID_CONTEXT: Final = "https://www.w3.org/ns/did/v1"
MULTIKEY_CONTEXT: Final = "https://w3id.org/security/multikey/v1"
P256_SUITE_CONTEXT: Final = "https://w3id.org/security/suites/ecdsa-2019/v1"
K256_SUITE_CONTEXT: Final = "https://w3id.org/security/suites/secp256k1-2019/v1"
MULTIKEY_TYPE: Final = "Multikey"
ATPROTO_KEY_ID: Final = "atproto"
LABELER_KEY_ID: Final = "atproto_label"
AT_URI_PREFIX: Final = "at://"


@dataclass(frozen=True, slots=True)
class ServiceKind:
    """A well-known service entry: its id fragment (without `#`) and its required `type`."""

    fragment: str
    type: str


PDS_SERVICE: Final = ServiceKind("atproto_pds", "AtprotoPersonalDataServer")
FEED_GENERATOR_SERVICE: Final = ServiceKind("bsky_fg", "BskyFeedGenerator")
APPVIEW_SERVICE: Final = ServiceKind("bsky_appview", "BskyAppView")
LABELER_SERVICE: Final = ServiceKind("atproto_labeler", "AtprotoLabeler")


@dataclass(frozen=True, slots=True)
class VerificationMethod:
    """One `verificationMethod` entry; `fragment` is set when the id refers to this document."""

    id: str
    type: str
    controller: str
    public_key_multibase: str | None
    fragment: str | None


@dataclass(frozen=True, slots=True)
class Service:
    """One `service` entry with a string endpoint; `fragment` as for `VerificationMethod`."""

    id: str
    type: str
    endpoint: str
    fragment: str | None


@dataclass(frozen=True)
class DidDocument:
    """A validated DID document. Construct with `from_json`, `parse` or the builders below."""

    id: Did
    also_known_as: tuple[str, ...] = ()
    verification_methods: tuple[VerificationMethod, ...] = ()
    services: tuple[Service, ...] = ()
    context: tuple[str, ...] = (DID_CONTEXT,)
    handle: Handle | None = field(init=False, compare=False)
    """The claimed handle (not yet verified bidirectionally), or None."""
    atproto_key: PublicKey | None = field(init=False, compare=False)
    """The atproto signing key, or None when the document has no usable one."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "handle", _first_handle(self.also_known_as))
        object.__setattr__(self, "atproto_key", self.verification_key(ATPROTO_KEY_ID))

    # -- parsing ----------------------------------------------------------------------------------
    @classmethod
    def parse(cls, data: bytes | str) -> DidDocument:
        """Parse a JSON document body."""
        try:
            value = json.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise InvalidDidDocument(f"DID document is not valid JSON: {exc!r}") from exc
        return cls.from_json(value)

    @classmethod
    def from_json(cls, value: object) -> DidDocument:
        """Validate decoded JSON and build the typed document."""
        if not isinstance(value, dict):
            raise InvalidDidDocument("DID document must be a JSON object")
        did = _parse_id(value.get("id"))
        return cls(
            id=did,
            also_known_as=tuple(_string_list(value, "alsoKnownAs")),
            verification_methods=tuple(
                _parse_method(did, item) for item in _object_list(value, "verificationMethod")
            ),
            services=tuple(
                service
                for item in _object_list(value, "service")
                if (service := _parse_service(did, item)) is not None
            ),
            context=_parse_context(value.get("@context")),
        )

    # -- lookups ----------------------------------------------------------------------------------
    def verification_key(self, fragment: str) -> PublicKey | None:
        """The first parseable key with id `#<fragment>` controlled by this DID, else None."""
        for method in self.verification_methods:
            if method.fragment != fragment or method.controller != self.id:
                continue
            if method.public_key_multibase is None:
                continue
            try:
                return _key_from_method(method.type, method.public_key_multibase)
            except CryptoError:
                continue  # the spec says: use the first *valid* key, ignore the others
        return None

    def require_atproto_key(self) -> PublicKey:
        """The atproto signing key, raising `InvalidDidDocument` when there is none."""
        if self.atproto_key is None:
            raise InvalidDidDocument(f"DID document of {self.id} has no valid #atproto key")
        return self.atproto_key

    def service_endpoint(self, kind: ServiceKind) -> str | None:
        """The endpoint of the first service with the kind's fragment and type, else None."""
        for service in self.services:
            if service.fragment == kind.fragment and service.type == kind.type:
                return service.endpoint
        return None

    @property
    def pds_endpoint(self) -> str | None:
        return self.service_endpoint(PDS_SERVICE)

    @property
    def feed_generator_endpoint(self) -> str | None:
        return self.service_endpoint(FEED_GENERATOR_SERVICE)

    @property
    def appview_endpoint(self) -> str | None:
        return self.service_endpoint(APPVIEW_SERVICE)

    @property
    def labeler_endpoint(self) -> str | None:
        return self.service_endpoint(LABELER_SERVICE)

    def require_pds_endpoint(self) -> str:
        endpoint = self.pds_endpoint
        if endpoint is None:
            raise InvalidDidDocument(f"DID document of {self.id} has no #atproto_pds service")
        return endpoint

    def claims_handle(self, handle: str) -> bool:
        """True when the claimed handle equals `handle` (handles compare case-insensitively)."""
        return self.handle is not None and self.handle.lower() == handle.lower()

    # -- rendering --------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """The document as JSON-ready data (the form `from_json` reads back)."""
        return {
            "@context": list(self.context),
            "id": str(self.id),
            "alsoKnownAs": list(self.also_known_as),
            "verificationMethod": [_method_json(m) for m in self.verification_methods],
            "service": [
                {"id": s.id, "type": s.type, "serviceEndpoint": s.endpoint} for s in self.services
            ],
        }


# -- builders -------------------------------------------------------------------------------------
def build_did_document(
    did: str,
    *,
    also_known_as: Sequence[str] = (),
    keys: Mapping[str, PublicKey | str] | None = None,
    services: Mapping[ServiceKind, str] | None = None,
) -> DidDocument:
    """Build a document with `Multikey` methods (`keys`: fragment -> key or did:key string).

    Key ids are written fully qualified (`<did>#atproto`) and service ids relative
    (`#atproto_pds`), exactly as plc.directory renders documents.
    """
    parsed = _parse_id(did)
    methods = [_multikey_method(parsed, fragment, key) for fragment, key in (keys or {}).items()]
    service_entries = [
        _checked_service(parsed, kind, endpoint) for kind, endpoint in (services or {}).items()
    ]
    return DidDocument(
        id=parsed,
        also_known_as=tuple(also_known_as),
        verification_methods=tuple(methods),
        services=tuple(service_entries),
        context=context_for_keys(keys.values() if keys else ()),
    )


def atproto_account_document(
    did: str, *, handle: str | None, signing_key: PublicKey | str, pds_endpoint: str
) -> DidDocument:
    """The document of an account hosted on a PDS: handle, `#atproto` key, `#atproto_pds`."""
    return build_did_document(
        did,
        also_known_as=[AT_URI_PREFIX + handle] if handle else [],
        keys={ATPROTO_KEY_ID: signing_key},
        services={PDS_SERVICE: pds_endpoint},
    )


def service_did_document(
    did: str, *, services: Mapping[ServiceKind, str], signing_key: PublicKey | str | None = None
) -> DidDocument:
    """A service's own (typically did:web) document, e.g. a feed generator's `#bsky_fg`."""
    keys = {ATPROTO_KEY_ID: signing_key} if signing_key is not None else {}
    return build_did_document(did, keys=keys, services=services)


def context_for_keys(keys: Iterable[PublicKey | str]) -> tuple[str, ...]:
    """The `@context` plc.directory writes: DID core, Multikey, then one suite per curve used."""
    context = [DID_CONTEXT, MULTIKEY_CONTEXT]
    for key in keys:
        suite = _suite_context(key)
        if suite is not None and suite not in context:
            context.append(suite)
    return tuple(context)


def is_valid_endpoint(url: str) -> bool:
    """An http(s) URL with a host and no credentials, query or fragment."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a malformed port
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and "@" not in parts.netloc
        and not parts.query
        and not parts.fragment
    )


# -- helpers --------------------------------------------------------------------------------------
def _suite_context(key: PublicKey | str) -> str | None:
    if isinstance(key, str):
        try:
            key = parse_did_key(key)
        except CryptoError:
            return None  # any did:key is allowed in PLC data; unknown types get no suite
    if isinstance(key, P256PublicKey):
        return P256_SUITE_CONTEXT
    if isinstance(key, K256PublicKey):
        return K256_SUITE_CONTEXT
    return None


def _multikey_method(did: Did, fragment: str, key: PublicKey | str) -> VerificationMethod:
    multibase = key.multikey() if isinstance(key, PublicKey) else key.removeprefix("did:key:")
    return VerificationMethod(
        id=f"{did}#{fragment}",
        type=MULTIKEY_TYPE,
        controller=did,
        public_key_multibase=multibase,
        fragment=fragment,
    )


def _checked_service(did: Did, kind: ServiceKind, endpoint: str) -> Service:
    if not is_valid_endpoint(endpoint):
        raise InvalidDidDocument(f"service endpoint must be an http(s) URL: {endpoint!r}")
    return Service(
        id=f"#{kind.fragment}", type=kind.type, endpoint=endpoint, fragment=kind.fragment
    )


def _first_handle(also_known_as: Iterable[str]) -> Handle | None:
    for alias in also_known_as:
        if alias.startswith(AT_URI_PREFIX) and is_valid_handle(alias[len(AT_URI_PREFIX) :]):
            return Handle(alias[len(AT_URI_PREFIX) :])
    return None


def _parse_id(value: object) -> Did:
    if not isinstance(value, str):
        raise InvalidDidDocument("DID document `id` must be a string")
    try:
        return parse_did(value)
    except InvalidSyntax as exc:
        raise InvalidDidDocument(f"DID document `id` is not a valid DID: {exc}") from exc


def _parse_context(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise InvalidDidDocument("`@context` must be a string or a list of strings")


def _string_list(doc: dict[str, Any], key: str) -> list[str]:
    value = doc.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidDidDocument(f"`{key}` must be a list of strings")
    return value


def _object_list(doc: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = doc.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise InvalidDidDocument(f"`{key}` must be a list of objects")
    return value


def _required_str(item: dict[str, Any], key: str, where: str) -> str:
    value = item.get(key)
    if not isinstance(value, str):
        raise InvalidDidDocument(f"{where} entry needs a string `{key}`")
    return value


def _fragment_of(did: Did, item_id: str) -> str | None:
    """`#frag` and `<did>#frag` both name this document's `frag`; other ids name nothing here."""
    if item_id.startswith("#"):
        return item_id[1:]
    if item_id.startswith(did) and item_id[len(did) : len(did) + 1] == "#":
        return item_id[len(did) + 1 :]
    return None


def _parse_method(did: Did, item: dict[str, Any]) -> VerificationMethod:
    method_id = _required_str(item, "id", "verificationMethod")
    multibase = item.get("publicKeyMultibase")
    if multibase is not None and not isinstance(multibase, str):
        raise InvalidDidDocument("verificationMethod `publicKeyMultibase` must be a string")
    return VerificationMethod(
        id=method_id,
        type=_required_str(item, "type", "verificationMethod"),
        controller=_required_str(item, "controller", "verificationMethod"),
        public_key_multibase=multibase,
        fragment=_fragment_of(did, method_id),
    )


def _parse_service(did: Did, item: dict[str, Any]) -> Service | None:
    service_id = _required_str(item, "id", "service")
    service_type = _required_str(item, "type", "service")
    endpoint = item.get("serviceEndpoint")
    if isinstance(endpoint, dict):
        return None
    if not isinstance(endpoint, str):
        raise InvalidDidDocument("service `serviceEndpoint` must be a string or an object")
    if not is_valid_endpoint(endpoint):
        return None  # unusable (and potentially an SSRF vector): treat as absent
    return Service(
        id=service_id, type=service_type, endpoint=endpoint, fragment=_fragment_of(did, service_id)
    )


def _method_json(method: VerificationMethod) -> dict[str, str]:
    out = {"id": method.id, "type": method.type, "controller": method.controller}
    if method.public_key_multibase is not None:
        out["publicKeyMultibase"] = method.public_key_multibase
    return out

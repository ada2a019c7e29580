"""Parsing did:plc operations and audit-log entries from their JSON wire form.

Operations are parsed exactly: every field present with the right JSON type and no others (the
reference implementation's zod schemas are `.strict()` too). That matters beyond tidiness: the
operation's CID and signature cover its DAG-CBOR, so an extra field would change the hash the
directory stores while our typed value silently dropped it. `prev` must be a canonical CID string.
Signature *encoding* is checked when verifying (`plc.decode_sig`), so a log with a malformed `sig`
still parses and then fails validation with a precise reason.

Errors: `InvalidPlcOperation`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from atcore.cid import CID, CidError
from atcore.identity.errors import InvalidPlcOperation
from atcore.identity.plc import (
    LegacyCreateOp,
    PlcOp,
    PlcOperation,
    PlcService,
    PlcTombstone,
    op_to_json,
    parse_prev,
)
from atcore.syntax import Did, InvalidSyntax

_OPERATION_FIELDS = frozenset(
    ("type", "rotationKeys", "verificationMethods", "alsoKnownAs", "services", "prev")
)
_TOMBSTONE_FIELDS = frozenset(("type", "prev"))
_LEGACY_FIELDS = frozenset(("type", "signingKey", "recoveryKey", "handle", "service", "prev"))


def parse_operation(value: object, *, require_sig: bool = True) -> PlcOp:
    """Parse a decoded JSON operation of any of the three types."""
    if not isinstance(value, dict):
        raise InvalidPlcOperation("operation must be a JSON object")
    op_type = value.get("type")
    if op_type == PlcOperation.type:
        return _parse_regular(value, require_sig)
    if op_type == PlcTombstone.type:
        _check_fields(value, _TOMBSTONE_FIELDS, require_sig)
        prev = _string(value, "prev")
        parse_prev(prev)
        return PlcTombstone(prev=prev, sig=value.get("sig"))
    if op_type == LegacyCreateOp.type:
        _check_fields(value, _LEGACY_FIELDS, require_sig)
        if value["prev"] is not None:
            raise InvalidPlcOperation("a legacy create operation must have prev = null")
        return LegacyCreateOp(
            signing_key=_string(value, "signingKey"),
            recovery_key=_string(value, "recoveryKey"),
            handle=_string(value, "handle"),
            service=_string(value, "service"),
            sig=value.get("sig"),
        )
    raise InvalidPlcOperation(f"unknown operation type {op_type!r}")


def _parse_regular(value: dict[str, Any], require_sig: bool) -> PlcOperation:
    _check_fields(value, _OPERATION_FIELDS, require_sig)
    prev = value["prev"]
    if prev is not None:
        if not isinstance(prev, str):
            raise InvalidPlcOperation("prev must be a CID string or null")
        parse_prev(prev)
    return PlcOperation(
        rotation_keys=tuple(_string_list(value, "rotationKeys")),
        verification_methods=_string_map(value, "verificationMethods"),
        also_known_as=tuple(_string_list(value, "alsoKnownAs")),
        services={name: _service(name, item) for name, item in _map(value, "services").items()},
        prev=prev,
        sig=value.get("sig"),
    )


def _check_fields(value: dict[str, Any], expected: frozenset[str], require_sig: bool) -> None:
    keys = set(value)
    has_sig = "sig" in keys
    keys.discard("sig")
    missing = expected - keys
    if missing:
        raise InvalidPlcOperation(f"operation is missing {', '.join(sorted(missing))}")
    extra = keys - expected
    if extra:
        raise InvalidPlcOperation(f"operation has unexpected fields {', '.join(sorted(extra))}")
    if has_sig and not isinstance(value["sig"], str):
        raise InvalidPlcOperation("sig must be a string")
    if require_sig and not has_sig:
        raise InvalidPlcOperation("operation is not signed (no sig)")


def _string(value: dict[str, Any], key: str) -> str:
    item = value[key]
    if not isinstance(item, str):
        raise InvalidPlcOperation(f"{key} must be a string")
    return item


def _string_list(value: dict[str, Any], key: str) -> list[str]:
    item = value[key]
    if not isinstance(item, list) or not all(isinstance(entry, str) for entry in item):
        raise InvalidPlcOperation(f"{key} must be a list of strings")
    return item


def _map(value: dict[str, Any], key: str) -> dict[str, Any]:
    item = value[key]
    if not isinstance(item, dict):
        raise InvalidPlcOperation(f"{key} must be an object")
    return item


def _string_map(value: dict[str, Any], key: str) -> dict[str, str]:
    item = _map(value, key)
    if not all(isinstance(entry, str) for entry in item.values()):
        raise InvalidPlcOperation(f"{key} values must be strings")
    return dict(item)


def _service(name: str, item: object) -> PlcService:
    if (
        not isinstance(item, dict)
        or set(item) != {"type", "endpoint"}
        or not isinstance(item["type"], str)
        or not isinstance(item["endpoint"], str)
    ):
        raise InvalidPlcOperation(f"service {name!r} must be {{type: string, endpoint: string}}")
    return PlcService(type=item["type"], endpoint=item["endpoint"])


# -- audit-log entries ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LogEntry:
    """One entry of `GET /{did}/log/audit`: an operation as the directory accepted it."""

    did: Did
    operation: PlcOp
    cid: CID
    nullified: bool
    created_at: datetime

    @classmethod
    def from_json(cls, value: object) -> LogEntry:
        if not isinstance(value, dict):
            raise InvalidPlcOperation("audit log entry must be a JSON object")
        did, cid, nullified, created_at = (
            value.get(k) for k in ("did", "cid", "nullified", "createdAt")
        )
        if not isinstance(did, str) or not isinstance(cid, str) or not isinstance(nullified, bool):
            raise InvalidPlcOperation("audit log entry needs did, cid and nullified")
        if not isinstance(created_at, str):
            raise InvalidPlcOperation("audit log entry needs a createdAt timestamp")
        try:
            return cls(
                did=Did(did),
                operation=parse_operation(value.get("operation")),
                cid=CID.parse(cid),
                nullified=nullified,
                created_at=parse_timestamp(created_at),
            )
        except (InvalidSyntax, CidError) as exc:
            raise InvalidPlcOperation(f"malformed audit log entry: {exc}") from exc

    def to_json(self) -> dict[str, Any]:
        return {
            "did": str(self.did),
            "operation": op_to_json(self.operation),
            "cid": str(self.cid),
            "nullified": self.nullified,
            "createdAt": format_timestamp(self.created_at),
        }


def parse_timestamp(text: str) -> datetime:
    """An ISO 8601 timestamp with an explicit offset (`Z` or `+hh:mm`), as UTC."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidPlcOperation(f"invalid timestamp {text!r}") from exc
    if parsed.tzinfo is None:
        raise InvalidPlcOperation(f"timestamp without a timezone: {text!r}")
    return parsed.astimezone(UTC)


def format_timestamp(moment: datetime) -> str:
    """`YYYY-MM-DDTHH:MM:SS.sssZ` (millisecond precision, UTC), as plc.directory writes them."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"

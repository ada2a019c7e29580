"""Turning write requests into prepared writes: the CPU-only, stateless half of a repo write.

A `PreparedWrite` is fully checked and encoded before any lock is taken or any row is read:

* the collection is an NSID and the rkey a record key (a fresh TID from the writer's `TidClock`
  when the client gave none: strictly increasing, so unique within a batch);
* the record is converted from JSON to the data model (no floats, int64 integers, `$link`,
  `$bytes`, blob refs), its `$type` filled in from the collection when missing and refused when
  different, and encoded to at most `MAX_RECORD_BYTES` of DAG-CBOR;
* lexicon validation follows the `validate` flag as the reference PDS does: `False` skips it
  (`validation_status` None), `True` requires a known lexicon and a valid record, unset validates
  known record types (`"valid"`) and lets others through as `"unknown"`;
  Skyspot's own types (`atcore.checkin.ALWAYS_VALIDATED`) are always validated, semantic rules
  included;
* blob references are extracted (legacy `{cid, mimeType}` refs are refused), and so are the
  record's backlinks (`pds.repo.backlinks`), which the record index keeps beside it.

A create may ask to *replace its backlink conflicts* (createRecord does unless `validate` is
false): the writer then deletes the caller's older records of the same collection with the same
backlink in the same commit (`pds.repo.conflicts`).

What depends on the repository's state (does the record exist, do swaps hold, is a put a no-op,
do the blobs exist) is the writer's job.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Final, Literal

from atcore import checkin, dagcbor
from atcore.cid import CID
from atcore.datajson import BlobRef, DataModelError, iter_blob_refs, json_to_data
from atcore.lexicon import Catalog, LexiconNotFound, ValidationError
from atcore.syntax import (
    InvalidSyntax,
    Nsid,
    RecordKey,
    parse_nsid,
    parse_record_key,
)
from atcore.tid import TidClock
from pds.repo.backlinks import Backlink, backlinks_of
from pds.repo.errors import InvalidWrite

Action = Literal["create", "update", "delete"]
ValidationStatus = Literal["valid", "unknown"]

MAX_RECORD_BYTES: Final = 1_000_000


class _NoSwap:
    """Marker: no `swapRecord` was given (distinct from `None`, "the record must not exist")."""

    def __repr__(self) -> str:
        return "NO_SWAP"


NO_SWAP: Final = _NoSwap()
SwapRecord = CID | None | _NoSwap


@dataclass(frozen=True, slots=True)
class PreparedWrite:
    """One checked write. `upsert` is putRecord (create or update; identical → no-op);
    `missing_ok` is deleteRecord (deleting an absent record is a no-op); `replaces_conflicts`
    asks the writer to delete the repo's records of the collection sharing a backlink."""

    action: Action
    did: str
    collection: Nsid
    rkey: RecordKey
    cid: CID | None = None
    block: bytes | None = None
    record: dict[str, Any] | None = None
    blobs: tuple[BlobRef, ...] = ()
    validation_status: ValidationStatus | None = None
    swap_record: SwapRecord = NO_SWAP
    upsert: bool = False
    missing_ok: bool = False
    backlinks: tuple[Backlink, ...] = ()
    replaces_conflicts: bool = False

    @property
    def path(self) -> str:
        return f"{self.collection}/{self.rkey}"

    @property
    def uri(self) -> str:
        return f"at://{self.did}/{self.collection}/{self.rkey}"


class WritePreparer:
    """Prepares writes against a lexicon catalog, drawing rkeys from a TID clock."""

    def __init__(self, catalog: Catalog, clock: TidClock) -> None:
        self.catalog = catalog
        self.clock = clock

    def create(
        self,
        did: str,
        collection: str,
        record: Any,
        *,
        rkey: str | None = None,
        validate: bool | None = None,
        swap_record: SwapRecord = NO_SWAP,
        replace_conflicts: bool = False,
    ) -> PreparedWrite:
        """A new record; `replace_conflicts`: see the module notes."""
        nsid = _collection(collection)
        key = _rkey(rkey) if rkey is not None else RecordKey(self.clock.next_str())
        write = self._record_write(
            "create",
            did,
            nsid,
            key,
            record,
            validate=validate,
            swap_record=swap_record,
            upsert=False,
        )
        if replace_conflicts and write.backlinks:
            return replace(write, replaces_conflicts=True)
        return write

    def update(
        self,
        did: str,
        collection: str,
        rkey: str,
        record: Any,
        *,
        validate: bool | None = None,
        swap_record: SwapRecord = NO_SWAP,
    ) -> PreparedWrite:
        nsid, key = _collection(collection), _rkey(rkey)
        return self._record_write(
            "update",
            did,
            nsid,
            key,
            record,
            validate=validate,
            swap_record=swap_record,
            upsert=False,
        )

    def put(
        self,
        did: str,
        collection: str,
        rkey: str,
        record: Any,
        *,
        validate: bool | None = None,
        swap_record: SwapRecord = NO_SWAP,
    ) -> PreparedWrite:
        """putRecord: create or replace (the writer decides which, or that nothing changes)."""
        nsid, key = _collection(collection), _rkey(rkey)
        return self._record_write(
            "update",
            did,
            nsid,
            key,
            record,
            validate=validate,
            swap_record=swap_record,
            upsert=True,
        )

    def delete(
        self,
        did: str,
        collection: str,
        rkey: str,
        *,
        swap_record: SwapRecord = NO_SWAP,
        missing_ok: bool = False,
    ) -> PreparedWrite:
        nsid, key = _collection(collection), _rkey(rkey)
        return PreparedWrite(
            "delete", did, nsid, key, swap_record=swap_record, missing_ok=missing_ok
        )

    def _record_write(
        self,
        action: Action,
        did: str,
        collection: Nsid,
        rkey: RecordKey,
        record: Any,
        *,
        validate: bool | None,
        swap_record: SwapRecord,
        upsert: bool,
    ) -> PreparedWrite:
        data = _record_data(collection, record)
        status = self._validate(did, collection, rkey, data, validate)
        blobs = _blob_refs(data)
        try:
            block = dagcbor.encode(data)
        except dagcbor.DagCborError as exc:
            raise InvalidWrite(f"Invalid record: {exc}") from None
        if len(block) > MAX_RECORD_BYTES:
            raise InvalidWrite(
                f"Record too large: {len(block)} bytes encoded (max {MAX_RECORD_BYTES})"
            )
        return PreparedWrite(
            action,
            did,
            collection,
            rkey,
            cid=CID.for_dag_cbor(block),
            block=block,
            record=data,
            blobs=blobs,
            validation_status=status,
            swap_record=swap_record,
            upsert=upsert,
            backlinks=backlinks_of(data),
        )

    def _validate(
        self,
        did: str,
        collection: Nsid,
        rkey: RecordKey,
        data: dict[str, Any],
        validate: bool | None,
    ) -> ValidationStatus | None:
        try:
            # Skyspot's own record types: lexicon and semantic rules, whatever `validate` says.
            if checkin.check_record(self.catalog, collection, rkey, data, author=did):
                return "valid"
        except checkin.CheckinError as exc:
            raise InvalidWrite(f"Invalid {collection} record: {exc}") from None
        if validate is False:
            return None
        try:
            self.catalog.validate_record_key(collection, rkey)
        except LexiconNotFound:
            if validate is True:
                raise InvalidWrite(f"Unknown lexicon type: {collection}") from None
            return "unknown"
        except ValidationError as exc:
            raise InvalidWrite(f"Invalid record key for {collection}: {exc.reason}") from None
        try:
            self.catalog.validate_record(collection, data)
        except ValidationError as exc:
            raise InvalidWrite(f"Invalid {collection} record: {exc.message}") from None
        except LexiconNotFound as exc:
            # The record type is known but refers to a definition the catalog lacks.
            raise InvalidWrite(f"Invalid {collection} record: {exc}") from None
        return "valid"


def _collection(value: str) -> Nsid:
    try:
        return parse_nsid(value)
    except InvalidSyntax:
        raise InvalidWrite(f"Invalid collection: {value[:300]!r} is not an NSID") from None


def _rkey(value: str) -> RecordKey:
    try:
        return parse_record_key(value)
    except InvalidSyntax:
        raise InvalidWrite(f"Invalid record key: {value[:600]!r}") from None


def _record_data(collection: Nsid, record: Any) -> dict[str, Any]:
    """JSON → data model, with `$type` filled in from the collection (as the reference does)."""
    if type(record) is not dict:
        raise InvalidWrite("Invalid record: must be an object")
    try:
        data = json_to_data(record)
    except DataModelError as exc:
        raise InvalidWrite(f"Invalid record: {exc}") from None
    record_type = data.get("$type")
    if record_type is None:
        data = {**data, "$type": str(collection)}
    elif record_type != collection:
        raise InvalidWrite(f"Invalid $type: expected {collection}, got {record_type}")
    return data


def _blob_refs(data: dict[str, Any]) -> tuple[BlobRef, ...]:
    refs = tuple(iter_blob_refs(data, include_legacy=True))
    for ref in refs:
        if ref.is_legacy:
            raise InvalidWrite(f"Legacy blobs are not allowed ({ref.ref})")
    return refs

"""The PDS's tables (SQLAlchemy Core), one SQLite database in WAL mode.

Keys are natural (DIDs, CIDs, URIs, token ids, sequence numbers assigned by the sequencer): no
autoincrement. Times are BIGINT epoch milliseconds. Alembic migrations in `pds/db/migrations/`
create exactly these tables; a test checks the migrated schema matches this metadata.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# -- accounts and auth ------------------------------------------------------------------------
account = Table(
    "account",
    metadata,
    Column("did", String, primary_key=True),
    Column("handle", String, nullable=True, unique=True),
    Column("email", String, nullable=True, unique=True),
    Column("password_scrypt", String, nullable=False),
    Column("signing_key", LargeBinary, nullable=False),  # K-256 private key bytes
    Column("created_at", BigInteger, nullable=False),
    Column("email_confirmed_at", BigInteger, nullable=True),
    Column("deactivated_at", BigInteger, nullable=True),
    Column("delete_after", BigInteger, nullable=True),
    Column("takedown_ref", String, nullable=True),
    Column("invites_disabled", Boolean, nullable=False, default=False),
)

app_password = Table(
    "app_password",
    metadata,
    Column("did", String, primary_key=True),
    Column("name", String, primary_key=True),
    Column("password_scrypt", String, nullable=False),
    Column("privileged", Boolean, nullable=False, default=False),
    Column("created_at", BigInteger, nullable=False),
)

refresh_token = Table(
    "refresh_token",
    metadata,
    Column("id", String, primary_key=True),  # the JWT's jti
    Column("did", String, nullable=False, index=True),
    Column("expires_at", BigInteger, nullable=False),
    Column("app_password_name", String, nullable=True),
    Column("next_id", String, nullable=True),  # set once rotated: concurrent refreshes share it
)

invite_code = Table(
    "invite_code",
    metadata,
    Column("code", String, primary_key=True),
    Column("available_uses", Integer, nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("for_account", String, nullable=False),
    Column("created_by", String, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

invite_code_use = Table(
    "invite_code_use",
    metadata,
    Column("code", String, primary_key=True),
    Column("used_by", String, primary_key=True),
    Column("used_at", BigInteger, nullable=False),
)

account_pref = Table(
    "account_pref",
    metadata,
    Column("did", String, primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("name", String, nullable=False),  # the preference object's $type
    Column("value_json", Text, nullable=False),
)

reserved_signing_key = Table(
    "reserved_signing_key",
    metadata,
    Column("key_did", String, primary_key=True),  # the public key as a did:key
    Column("did", String, nullable=True, unique=True),  # the account it was reserved for
    Column("private_key", LargeBinary, nullable=False),  # K-256 private key bytes
    Column("created_at", BigInteger, nullable=False),
    Index(None, "created_at"),
)

email_token = Table(
    "email_token",
    metadata,
    Column("purpose", String, primary_key=True),  # e.g. "reset_password"
    Column("did", String, primary_key=True),  # one live token per (purpose, account)
    Column("token", String, nullable=False),  # canonical form, `XXXXX-XXXXX`
    Column("requested_at", BigInteger, nullable=False),
    UniqueConstraint("purpose", "token"),  # a token names exactly one account
)

# -- repositories -----------------------------------------------------------------------------
repo_root = Table(
    "repo_root",
    metadata,
    Column("did", String, primary_key=True),
    Column("cid", String, nullable=False),
    Column("rev", String, nullable=False),
    Column("indexed_at", BigInteger, nullable=False),
)

repo_block = Table(
    "repo_block",
    metadata,
    Column("did", String, primary_key=True),
    Column("cid", LargeBinary, primary_key=True),  # binary CID
    Column("repo_rev", String, nullable=False),
    Column("size", Integer, nullable=False),
    Column("content", LargeBinary, nullable=False),
    Index(None, "did", "repo_rev"),
)

record = Table(
    "record",
    metadata,
    Column("uri", String, primary_key=True),
    Column("cid", String, nullable=False),
    Column("did", String, nullable=False),
    Column("collection", String, nullable=False),
    Column("rkey", String, nullable=False),
    Column("repo_rev", String, nullable=False),
    Column("indexed_at", BigInteger, nullable=False),
    Column("takedown_ref", String, nullable=True),
    Index(None, "did", "collection", "rkey", unique=True),
    Index(None, "did", "repo_rev"),
)

# The links that make a follow, block, like or repost a duplicate of another (`path` is
# "subject" or "subject.uri", `link_to` the subject DID or AT URI; see `pds.repo.backlinks`).
# In the reference each account has a database of its own; here one holds all of them, so the
# lookup index leads with the account.
backlink = Table(
    "backlink",
    metadata,
    Column("uri", String, primary_key=True),
    Column("path", String, primary_key=True),
    Column("link_to", String, nullable=False),
    Column("did", String, nullable=False),
    Index(None, "did", "path", "link_to"),
)

# -- blobs ------------------------------------------------------------------------------------
blob = Table(
    "blob",
    metadata,
    Column("did", String, primary_key=True),
    Column("cid", String, primary_key=True),
    Column("mime_type", String, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("temp_key", String, nullable=True),  # set while no committed record references it
    Column("created_at", BigInteger, nullable=False),
    Column("takedown_ref", String, nullable=True),
    Index(None, "temp_key"),
)

record_blob = Table(
    "record_blob",
    metadata,
    Column("did", String, primary_key=True),
    Column("blob_cid", String, primary_key=True),
    Column("record_uri", String, primary_key=True),
    Index(None, "record_uri"),
)

# -- the sequencer (firehose events) ----------------------------------------------------------
repo_seq = Table(
    "repo_seq",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("did", String, nullable=False),
    Column("event_type", String, nullable=False),  # commit | sync | identity | account
    Column("event", LargeBinary, nullable=False),  # frame body incl. `seq` and `time`
    Column("invalidated", Boolean, nullable=False, default=False),
    Column("sequenced_at", BigInteger, nullable=False),
    Index(None, "did"),
    Index(None, "sequenced_at"),
)

sequencer_state = Table(
    "sequencer_state",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # always 1
    Column("last_seq", BigInteger, nullable=False),  # never decreases, so seqs are never reused
    # Highest seq deleted by history pruning (0: none): events at or below it are gone, events
    # above it are all still stored (see `pds.db.seq_retention`).
    Column("pruned_through", BigInteger, nullable=False, server_default=text("0")),
)

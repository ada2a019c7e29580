"""backlink: the links of follows, blocks, likes and reposts to their subjects

Revision ID: 0005
Revises: 0004
Create Date: 2027-02-03 10:00:00.000000

createRecord deletes the caller's older records of the same collection that link to the same
subject (`pds.repo.conflicts`); this index is how it finds them. The upgrade backfills it from
the records already stored: each record of the four collections is read from its DAG-CBOR
block and its links derived by the same rules the writer uses (`pds.repo.backlinks`). Records
whose block is missing or does not decode to a map get no backlink, as a malformed link does.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Final

import sqlalchemy as sa
from alembic import op

from atcore import dagcbor
from atcore.cid import CID, CidError
from pds.repo.backlinks import BACKLINK_COLLECTIONS, backlinks_of

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_PAGE: Final = 500
_RECORDS: Final = sa.text(
    "SELECT uri, did, cid FROM record WHERE uri > :after AND collection IN :collections "
    "ORDER BY uri LIMIT :limit"
).bindparams(sa.bindparam("collections", expanding=True))
_BLOCK: Final = sa.text("SELECT content FROM repo_block WHERE did = :did AND cid = :cid")
_INSERT: Final = sa.text(
    "INSERT OR IGNORE INTO backlink (uri, path, link_to, did) VALUES (:uri, :path, :link_to, :did)"
)


def upgrade() -> None:
    op.create_table(
        "backlink",
        sa.Column("uri", sa.String(), nullable=False),
        sa.Column("path", sa.String(), nullable=False),
        sa.Column("link_to", sa.String(), nullable=False),
        sa.Column("did", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("uri", "path", name=op.f("pk_backlink")),
    )
    with op.batch_alter_table("backlink", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_backlink_did_path_link_to"), ["did", "path", "link_to"], unique=False
        )
    connection = op.get_bind()
    for page in _record_pages(connection):
        rows = [row for record in page for row in _backlink_rows(connection, *record)]
        if rows:
            connection.execute(_INSERT, rows)


def downgrade() -> None:
    with op.batch_alter_table("backlink", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_backlink_did_path_link_to"))
    op.drop_table("backlink")


def _record_pages(connection: sa.Connection) -> Iterator[Sequence[tuple[str, str, str]]]:
    """(uri, did, cid) of the stored records of the four collections, a page at a time."""
    after = ""
    collections = sorted(BACKLINK_COLLECTIONS)
    while True:
        params = {"after": after, "collections": collections, "limit": _PAGE}
        page = [(str(u), str(d), str(c)) for u, d, c in connection.execute(_RECORDS, params)]
        if page:
            yield page
        if len(page) < _PAGE:
            return
        after = page[-1][0]


def _backlink_rows(
    connection: sa.Connection, uri: str, did: str, cid_text: str
) -> list[dict[str, Any]]:
    try:
        cid = CID.parse(cid_text)
    except CidError:
        return []
    content = connection.execute(_BLOCK, {"did": did, "cid": cid.cid_bytes}).scalar()
    if content is None:
        return []
    try:
        value = dagcbor.decode(bytes(content))
    except dagcbor.DagCborError:
        return []
    if not isinstance(value, dict):
        return []
    return [
        {"uri": uri, "path": link.path, "link_to": link.link_to, "did": did}
        for link in backlinks_of(value)
    ]

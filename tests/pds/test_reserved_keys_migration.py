"""Alembic revision 0003 (reserved_signing_key) upgrades a 0002 database and downgrades again."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from alembic import command

from pds.db.engine import alembic_config
from tests.pds.migration_checks import upgrade_to_head_and_compare


def test_revision_0003_adds_reserved_signing_keys(tmp_path: Path) -> None:
    path = tmp_path / "pds.sqlite"
    url = f"sqlite:///{path}"
    command.upgrade(alembic_config(url), "0002")
    with closing(sqlite3.connect(path)) as old, old:
        old.execute("INSERT INTO sequencer_state (id, last_seq) VALUES (1, 3)")
    command.upgrade(alembic_config(url), "0003")
    with closing(sqlite3.connect(path)) as db, db:
        db.execute(
            "INSERT INTO reserved_signing_key (key_did, did, private_key, created_at) "
            "VALUES ('did:key:zA', 'did:plc:x', x'01', 5)"
        )
        duplicate_did = (
            "INSERT INTO reserved_signing_key (key_did, did, private_key, created_at) "
            "VALUES ('did:key:zB', 'did:plc:x', x'02', 6)"
        )
        try:
            db.execute(duplicate_did)
        except sqlite3.IntegrityError:
            pass
        else:
            raise AssertionError("two reservations for one DID were accepted")
        assert db.execute("SELECT last_seq FROM sequencer_state").fetchall() == [(3,)]
    upgrade_to_head_and_compare(url)
    command.downgrade(alembic_config(url), "0002")
    with closing(sqlite3.connect(path)) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        assert "reserved_signing_key" not in tables
        assert db.execute("SELECT last_seq FROM sequencer_state").fetchall() == [(3,)]

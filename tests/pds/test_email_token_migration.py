"""Alembic revision 0004 (email_token) upgrades a 0003 database and downgrades again."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from alembic import command

from pds.db.engine import alembic_config
from tests.pds.migration_checks import upgrade_to_head_and_compare

_INSERT = "INSERT INTO email_token (purpose, did, token, requested_at) VALUES (?, ?, ?, ?)"


def test_revision_0004_adds_email_tokens(tmp_path: Path) -> None:
    path = tmp_path / "pds.sqlite"
    url = f"sqlite:///{path}"
    command.upgrade(alembic_config(url), "0003")
    with closing(sqlite3.connect(path)) as old, old:
        old.execute("INSERT INTO sequencer_state (id, last_seq) VALUES (1, 9)")
    command.upgrade(alembic_config(url), "0004")
    with closing(sqlite3.connect(path)) as db, db:
        db.execute(_INSERT, ("reset_password", "did:plc:a", "AAAAA-AAAAA", 1))
        db.execute(_INSERT, ("delete_account", "did:plc:a", "AAAAA-AAAAA", 1))  # other purpose
        db.execute(_INSERT, ("reset_password", "did:plc:b", "BBBBB-BBBBB", 1))
        with pytest.raises(sqlite3.IntegrityError):  # one live code per (purpose, account)
            db.execute(_INSERT, ("reset_password", "did:plc:a", "CCCCC-CCCCC", 2))
        with pytest.raises(sqlite3.IntegrityError):  # a code names one account
            db.execute(_INSERT, ("reset_password", "did:plc:c", "AAAAA-AAAAA", 2))
        assert db.execute("SELECT last_seq FROM sequencer_state").fetchall() == [(9,)]
    upgrade_to_head_and_compare(url)
    command.downgrade(alembic_config(url), "0003")
    with closing(sqlite3.connect(path)) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        assert "email_token" not in tables
        assert "reserved_signing_key" in tables
        assert db.execute("SELECT last_seq FROM sequencer_state").fetchall() == [(9,)]
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [("0003",)]

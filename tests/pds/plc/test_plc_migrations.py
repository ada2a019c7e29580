"""The local PLC directory's schema comes from Alembic, and older directories are adopted."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from atcore.crypto import Keypair
from pds.plc.app import create_app
from pds.plc.settings import PlcSettings
from pds.plc.store import VERSION_TABLE, metadata
from tests.atcore.identity_support import FakeWallClock
from tests.pds.plc.conftest import ClientFactory
from tests.pds.plc.test_plc_server import create, get_json


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def _version(path: Path) -> str:
    with sqlite3.connect(path) as db:
        (version,) = db.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchone()
    return str(version)


async def test_a_new_directory_is_migrated_to_head(
    tmp_path: Path, aiohttp_client: ClientFactory, keys: dict[str, Keypair]
) -> None:
    settings = PlcSettings(data_directory=tmp_path / "plc")
    plc = await aiohttp_client(create_app(settings, clock=FakeWallClock()))
    did, _ = await create(plc, keys)
    assert (await get_json(plc, f"/{did}"))[0] == 200
    database = Path(settings.effective_database_url.split("///", 1)[1])
    assert {"plc_operation", VERSION_TABLE} <= _tables(database)
    assert _version(database) == "0001"
    engine = create_engine(f"sqlite:///{database}")
    with engine.connect() as conn:  # the migrations build exactly the schema the code declares
        differences = compare_metadata(
            MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}), metadata
        )
    engine.dispose()
    assert differences == []


async def test_a_directory_made_before_migrations_is_adopted_with_its_data(
    tmp_path: Path, aiohttp_client: ClientFactory, keys: dict[str, Keypair]
) -> None:
    settings = PlcSettings(data_directory=tmp_path / "plc")
    database = Path(settings.effective_database_url.split("///", 1)[1])
    database.parent.mkdir(parents=True)
    legacy = create_engine(f"sqlite:///{database}")
    metadata.create_all(legacy)  # what the directory did before it had migrations
    legacy.dispose()
    first = await aiohttp_client(create_app(settings, clock=FakeWallClock()))
    did, _ = await create(first, keys)
    await first.close()

    again = await aiohttp_client(create_app(settings, clock=FakeWallClock()))
    status, document = await get_json(again, f"/{did}")
    assert status == 200
    assert document["id"] == did
    assert _version(database) == "0001"

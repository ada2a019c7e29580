"""Settings of the local PLC directory, read from `PLC_*` environment variables.

PLC_HOST            interface to bind (default 127.0.0.1)
PLC_PORT            TCP port (default 2582, the port the reference dev stack uses)
PLC_DATA_DIRECTORY  where the SQLite database lives (default ./data/plc)
PLC_DATABASE_URL    optional SQLAlchemy async URL overriding the SQLite file
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from pds.plc.store import sqlite_url

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 2582
DEFAULT_DATA_DIRECTORY: Final = "./data/plc"
DATABASE_FILE: Final = "plc.sqlite"


class PlcSettingsError(ValueError):
    """An environment variable is malformed."""


@dataclass(frozen=True, slots=True)
class PlcSettings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    data_directory: Path = Path(DEFAULT_DATA_DIRECTORY)
    database_url: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> PlcSettings:
        return cls(
            host=environ.get("PLC_HOST") or DEFAULT_HOST,
            port=_port(environ.get("PLC_PORT")),
            data_directory=Path(environ.get("PLC_DATA_DIRECTORY") or DEFAULT_DATA_DIRECTORY),
            database_url=environ.get("PLC_DATABASE_URL") or None,
        )

    @property
    def effective_database_url(self) -> str:
        """`database_url` if set, else the SQLite file in the data directory."""
        return self.database_url or sqlite_url(str(self.data_directory / DATABASE_FILE))

    @property
    def uses_data_directory(self) -> bool:
        return self.database_url is None


def _port(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_PORT
    if not raw.isdigit() or not 0 <= int(raw) <= 65535:
        raise PlcSettingsError(f"PLC_PORT must be a port number (0-65535), got {raw!r}")
    return int(raw)

"""The running application shares one of each service: every API module uses the context's
lexicon catalog and service proxy rather than loading or opening its own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from atcore.lexicon import Catalog
from pds.api.repo_read import REPO
from pds.app import create_app
from pds.context import CONTEXT
from pds.proxy import ServiceProxy
from pds.settings import PdsSettings


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[web.Application]:
    settings = PdsSettings.from_env({"PDS_DEV_MODE": "true", "PDS_DATA_DIRECTORY": str(tmp_path)})
    application = create_app(settings)
    server = TestServer(application)
    await server.start_server()
    try:
        yield application
    finally:
        await server.close()


async def test_one_catalog_and_one_proxy_for_every_module(app: web.Application) -> None:
    ctx = app[CONTEXT]
    assert isinstance(ctx.catalog, Catalog)
    assert isinstance(ctx.proxy, ServiceProxy)
    assert app[REPO].preparer.catalog is ctx.catalog
    # Nothing of the kind under a module's own application key.
    assert [value for value in app.values() if isinstance(value, Catalog | ServiceProxy)] == []

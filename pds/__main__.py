"""`python -m pds`: settings from the environment, logging once, serve until SIGINT / SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from aiohttp import web

from pds.app import create_app
from pds.settings import PdsSettings, SettingsError

log = logging.getLogger("pds")


async def serve(settings: PdsSettings) -> None:
    runner = web.AppRunner(create_app(settings), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.bind_host, settings.port)
        await site.start()
        log.info(
            "PDS %s listening on %s:%d (public URL %s)",
            settings.service_did,
            settings.bind_host,
            settings.port,
            settings.public_url,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        log.info("PDS shutting down")
    finally:
        await runner.cleanup()


def main() -> None:
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        settings = PdsSettings.from_env()
    except SettingsError as exc:
        sys.exit(f"pds: {exc}")
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()

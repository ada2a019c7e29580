"""`python -m feedgen`: settings from the environment, then serve until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from aiohttp import web

from feedgen.algos import FeedRegistry
from feedgen.app import create_app
from feedgen.settings import FeedgenSettings, SettingsError

log = logging.getLogger("feedgen")


async def serve(settings: FeedgenSettings) -> None:
    runner = web.AppRunner(create_app(settings), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.listen_host, settings.port)
        await site.start()
        log.info(
            "feed generator %s listening on %s:%d (public URL %s)",
            settings.service_did,
            settings.listen_host,
            settings.port,
            settings.public_url,
        )
        for feed in FeedRegistry.from_settings(settings).feeds:
            log.info("serving feed %s", feed.uri)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        log.info("feed generator shutting down")
    finally:
        await runner.cleanup()


def main() -> None:
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        settings = FeedgenSettings.from_env()
    except SettingsError as exc:
        sys.exit(f"feedgen: {exc}")
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()

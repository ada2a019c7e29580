"""`python -m feedgen`: settings from the environment, then serve until SIGINT or SIGTERM.

With `FEEDGEN_WORKERS=N` the first process forks N-1 more before starting any event loop; all
bind the same port with `SO_REUSEPORT` and the kernel spreads connections over them. A signal to
the first process stops the others too.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import signal
import sys

from aiohttp import web

from feedgen.algos import FeedRegistry
from feedgen.app import create_app
from feedgen.settings import FeedgenSettings, SettingsError

log = logging.getLogger("feedgen")
STOP_TIMEOUT_S = 10.0


async def serve(settings: FeedgenSettings, *, announce: bool = True) -> None:
    runner = web.AppRunner(create_app(settings), access_log=None)
    await runner.setup()
    # Everything built so far (modules, the app, its context) lives as long as the process: keep
    # it out of the cyclic collector, whose full collections otherwise walked it all and stalled
    # every request in flight for 30-40 ms about once a second under load.
    gc.freeze()
    try:
        site = web.TCPSite(
            runner, settings.listen_host, settings.port, reuse_port=settings.workers > 1
        )
        await site.start()
        if announce:
            log.info(
                "feed generator %s listening on %s:%d (public URL %s, %d worker(s))",
                settings.service_did,
                settings.listen_host,
                settings.port,
                settings.public_url,
                settings.workers,
            )
            for feed in FeedRegistry.from_settings(settings).feeds:
                log.info("serving feed %s", feed.uri)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        if announce:
            log.info("feed generator shutting down")
    finally:
        await runner.cleanup()


def _worker(settings: FeedgenSettings) -> None:
    asyncio.run(serve(settings, announce=False))


def main() -> None:
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        settings = FeedgenSettings.from_env()
    except SettingsError as exc:
        sys.exit(f"feedgen: {exc}")
    context = multiprocessing.get_context("fork")  # before any loop or thread exists
    workers = [
        context.Process(target=_worker, args=(settings,), daemon=True)
        for _ in range(settings.workers - 1)
    ]
    for process in workers:
        process.start()
    try:
        asyncio.run(serve(settings))
    finally:
        for process in workers:
            if process.pid is not None and process.is_alive():
                os.kill(process.pid, signal.SIGTERM)
        for process in workers:
            process.join(STOP_TIMEOUT_S)


if __name__ == "__main__":
    main()

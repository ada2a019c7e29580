"""`python -m pds.plc`: serve the local PLC directory until SIGINT / SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

from aiohttp import web

from pds.plc.app import create_app
from pds.plc.settings import PlcSettings

log = logging.getLogger("pds.plc")


async def serve(settings: PlcSettings) -> None:
    runner = web.AppRunner(create_app(settings))
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        for address in runner.addresses:
            host, port = address[0], address[1]
            shown = f"[{host}]" if ":" in host else host
            log.info("PLC directory listening on http://%s:%d", shown, port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        log.info("PLC directory shutting down")
    finally:
        await runner.cleanup()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(serve(PlcSettings.from_env(os.environ)))


if __name__ == "__main__":
    main()

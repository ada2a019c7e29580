"""`python -m firehose_consumer [run | backfill HOST]`.

`run` (the default) consumes the sources in `FIREHOSE_SERVICES` until SIGTERM/SIGINT, then
finishes the batch in flight and exits 0; it exits 2 when every source refused our cursor as in
the future (`FutureCursor`: see the logs, nothing was reset).

`backfill HOST` queues every repository of a PDS or relay for a `getRepo` resync and exits; a
running consumer (or the next one started) fetches them. It queues them all whatever
`CONSUMER_PARTITION` says: each partition's consumer takes its own share from the queue.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

import aiohttp

from atcore.index.engine import create_index_engine, migrate
from firehose_consumer.backfill import BackfillError, schedule_backfill
from firehose_consumer.consumer import Consumer
from firehose_consumer.settings import ConsumerSettings, SettingsError, parse_source

log = logging.getLogger("firehose_consumer")


async def run(settings: ConsumerSettings) -> int:
    consumer = Consumer(settings)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, consumer.stop)
    return await consumer.run()


async def backfill(settings: ConsumerSettings, host: str) -> int:
    source = parse_source(host)
    engine = create_index_engine(settings.database_url)
    try:
        await migrate(engine)
        async with aiohttp.ClientSession() as session:
            dids = await schedule_backfill(engine, session, source.http_base)
    except BackfillError as exc:
        log.error("backfill of %s failed: %s", source.http_base, exc)
        return 1
    finally:
        await engine.dispose()
    log.info("queued %d repositories of %s for resync", len(dids), source.http_base)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m firehose_consumer",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("run", help="consume the firehose (default)")
    backfill_parser = commands.add_parser("backfill", help="queue a whole host for resync")
    backfill_parser.add_argument("host", help="PDS or relay URL")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = ConsumerSettings.from_env()
    except SettingsError as exc:
        log.error("%s", exc)
        return 64
    if args.command == "backfill":
        return asyncio.run(backfill(settings, args.host))
    return asyncio.run(run(settings))


if __name__ == "__main__":
    sys.exit(main())

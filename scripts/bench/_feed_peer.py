"""The peer of the feed benchmark: the SDK-based Python feed-generator template's pattern.

The template (a Flask app, one SQL query per request on SQLite, a keyset cursor) serving the same
ranking as ours, written the way that pattern invites: each row's band is a CASE over the cell
columns and the database orders the lot (`ORDER BY band, sort_at DESC, ...`), so every page
scans and sorts every check-in in the window. Anonymous requests on `nearby` get the global
newest-first feed through the `sort_at` index, as ours do.

Run: `python -m scripts.bench._feed_peer` with `PEER_DB` (SQLite path), `PEER_PORT`,
`FEEDGEN_PUBLISHER_DID`, `FEEDGEN_REGION_FEEDS` (`rkey=lat,lon;...`) and `FEEDGEN_FRESHNESS_HOURS`.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from typing import Any, Final

from flask import Flask, jsonify, request

from atcore.index.geo import MICRO, band_disks

_KEYSET: Final = "sort_at DESC, author_did DESC, collection DESC, rkey DESC"


def _region_anchors(raw: str) -> dict[str, tuple[int, int]]:
    anchors = {}
    for entry in filter(None, raw.split(";")):
        rkey, _, coords = entry.partition("=")
        lat, _, lon = coords.partition(",")
        anchors[rkey] = (round(float(lat) * MICRO), round(float(lon) * MICRO))
    return anchors


def create_app() -> Flask:
    app = Flask(__name__)
    database = os.environ["PEER_DB"]
    publisher = os.environ["FEEDGEN_PUBLISHER_DID"]
    window_ms = round(float(os.environ.get("FEEDGEN_FRESHNESS_HOURS", "720")) * 3_600_000)
    anchors = _region_anchors(os.environ.get("FEEDGEN_REGION_FEEDS", ""))
    local = threading.local()

    def connection() -> sqlite3.Connection:
        if not hasattr(local, "db"):
            local.db = sqlite3.connect(database, check_same_thread=False)
        db: sqlite3.Connection = local.db
        return db

    @app.get("/xrpc/_health")
    def health() -> Any:
        return jsonify({"version": "peer"})

    @app.get("/xrpc/app.bsky.feed.getFeedSkeleton")
    def get_feed_skeleton() -> Any:
        feed = request.args.get("feed", "")
        limit = max(1, min(100, int(request.args.get("limit", "50"))))
        prefix = f"at://{publisher}/app.bsky.feed.generator/"
        rkey = feed.removeprefix(prefix)
        if not feed.startswith(prefix) or (rkey != "nearby" and rkey not in anchors):
            return jsonify({"error": "UnknownFeed", "message": "unknown feed"}), 400
        cursor = request.args.get("cursor")
        now = int(cursor.split("::")[0]) if cursor else time.time_ns() // 1_000_000
        anchor = anchors.get(rkey)
        rows = _page(connection(), anchor, now=now, window_ms=window_ms, cursor=cursor, limit=limit)
        body: dict[str, Any] = {"feed": [{"post": row[0]} for row in rows]}
        if len(rows) == limit:
            last = rows[-1]
            body["cursor"] = "::".join(str(part) for part in (now, *last[1:]))
        return jsonify(body)

    return app


def _page(
    db: sqlite3.Connection,
    anchor: tuple[int, int] | None,
    *,
    now: int,
    window_ms: int,
    cursor: str | None,
    limit: int,
) -> list[tuple[Any, ...]]:
    params: list[Any] = []
    band_sql = "0"
    if anchor is not None:
        cases = []
        for index, disk in enumerate(band_disks(*anchor)):
            cells = sorted(disk.cells)
            cases.append(f"WHEN {disk.band.column} IN ({','.join('?' * len(cells))}) THEN {index}")
            params.extend(cells)
        band_sql = f"CASE {' '.join(cases)} ELSE 3 END"
    params.extend([now - window_ms, now])
    after = ""
    if cursor:
        _now, band, sort_at, did, collection, rkey = cursor.split("::")
        after = "WHERE band > ? OR (band = ? AND (sort_at, author_did, collection, rkey) < "
        after += "(?, ?, ?, ?))"
        params.extend([int(band), int(band), int(sort_at), did, collection, rkey])
    sql = (
        "SELECT post_uri, band, sort_at, author_did, collection, rkey FROM ("
        f"SELECT post_uri, sort_at, author_did, collection, rkey, {band_sql} AS band "
        "FROM checkin WHERE visible AND post_exists AND sort_at > ? AND sort_at <= ?"
        f") {after} ORDER BY band, {_KEYSET} LIMIT ?"
    )
    return db.execute(sql, [*params, limit]).fetchall()


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no per-request access log
    create_app().run(host="127.0.0.1", port=int(os.environ["PEER_PORT"]), threaded=True)


if __name__ == "__main__":
    main()

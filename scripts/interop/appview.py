"""The official AppView (`@atproto/bsky`) wired to our PDS and our PLC directory.

The wiring follows `@atproto/dev-env`'s `TestBsky`: a `did:plc` for the AppView with
`#bsky_appview` and `#bsky_notif` services, the AppView's PostgreSQL schema migrated, its data
plane, its API server, and a `RepoSubscription` to our PDS's firehose (`ws://localhost:<port>`),
which replays from cursor 0. Two pieces of `TestBsky` are left out because nothing here uses
them: the bsync subscription (mutes and bookmarks sync) and the moderation service (its DID is a
placeholder, so no labels are applied).

As in dev-env (`mockNetworkUtilities`), handles ending in one of our PDS's handle domains (`.test`
has no DNS) are resolved by asking our PDS's `/.well-known/atproto-did` with the handle as `Host`
header; the AppView still checks the answer against the DID document's `alsoKnownAs`, so a
handle is shown only when both directions agree. Everything else (did:plc over plain http from our
PLC, the PDS endpoint from the DID document, blobs via `com.atproto.sync.getBlob`) is the
AppView's own code, unmodified.

The AppView's DID is computed before our PDS starts (the genesis operation is deterministic for a
key and an endpoint), so the PDS can be configured with it, and submitted once the PLC is up.

Errors: `InteropUnavailable` when the AppView does not come up.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from atcore.crypto import K256Keypair
from atcore.identity.diddoc import APPVIEW_SERVICE
from atcore.identity.plc import (
    PlcOperation,
    PlcService,
    create_genesis_op,
    did_for_genesis,
    op_to_json,
)
from scripts.interop import InteropUnavailable
from scripts.interop.node import NodeInstall
from scripts.stack.http import HttpFailure, get_json, post_json

LAUNCHER_NAME: Final = "skyspot-appview-launcher.mjs"
START_TIMEOUT_S: Final = 180.0
NOTIFICATION_SERVICE: Final = ("bsky_notif", "BskyNotificationService")

LAUNCHER: Final = """\
import http from 'node:http'
import * as bsky from '@atproto/bsky'
import { Secp256k1Keypair } from '@atproto/crypto'

const env = process.env
const port = Number(env.BSKY_PORT)
const dataplanePort = Number(env.BSKY_DATAPLANE_PORT)
const handleDomains = env.PDS_HANDLE_DOMAINS.split(',')

const migrationDb = new bsky.Database({ url: env.BSKY_DB_URL, schema: env.BSKY_DB_SCHEMA })
await migrationDb.migrateToLatestOrThrow()
await migrationDb.close()

const db = new bsky.Database({ url: env.BSKY_DB_URL, schema: env.BSKY_DB_SCHEMA, poolSize: 10 })
// The identity resolvers refuse plain http unless handed a fetch without SSRF protection (what
// dev-env does for loopback); the API server gets the same from disableSsrfProtection below.
const dataplane = await bsky.DataPlaneServer.create(
  db,
  dataplanePort,
  env.PLC_URL,
  globalThis.fetch,
)
const config = new bsky.ServerConfig({
  version: 'interop',
  port,
  didPlcUrl: env.PLC_URL,
  publicUrl: `http://localhost:${port}`,
  serverDid: env.BSKY_DID,
  alternateAudienceDids: [],
  dataplaneUrls: [`http://localhost:${dataplanePort}`],
  dataplaneHttpVersion: '1.1',
  bsyncUrl: 'http://127.0.0.1:9',
  bsyncApiKey: 'unused',
  bsyncHttpVersion: '1.1',
  modServiceDid: 'did:example:invalidMod',
  labelsFromIssuerDids: [],
  bigThreadUris: new Set(),
  maxThreadParents: 50,
  disableSsrfProtection: true,
  searchTagsHide: new Set(),
  searchTagsHideAll: new Set(),
  threadTagsBumpDown: new Set(),
  threadTagsHide: new Set(),
  visibilityTagHide: '',
  visibilityTagRankPrefix: '',
  debugFieldAllowedDids: new Set(),
  draftsLimit: 500,
  adminPasswords: ['interop-admin'],
  etcdHosts: [],
  feedGenSkeletonTimeout: 10000,
  blobCacheLocation: env.BSKY_BLOB_CACHE,
})
const signingKey = await Secp256k1Keypair.import(env.BSKY_SIGNING_KEY_HEX)
const server = bsky.BskyAppView.create({ config, signingKey })

// dev-env's mockNetworkUtilities: .test handles are answered by the PDS's well-known endpoint
// (node:http, because fetch does not let a caller set the Host header).
const wellKnownDid = (handle) =>
  new Promise((resolve) => {
    const url = `${env.PDS_URL}/.well-known/atproto-did`
    const req = http.get(url, { headers: { host: handle } }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk) => (body += chunk))
      res.on('end', () => resolve(res.statusCode === 200 ? body.trim() : undefined))
    })
    req.on('error', () => resolve(undefined))
    req.setTimeout(5000, () => req.destroy())
  })
const resolveViaPds = (resolver) => {
  const original = resolver.handle.resolve.bind(resolver.handle)
  resolver.handle.resolve = async (handle) =>
    handleDomains.some((domain) => handle.endsWith(domain))
      ? wellKnownDid(handle)
      : original(handle)
}
resolveViaPds(server.ctx.idResolver)
resolveViaPds(dataplane.idResolver)

const sub = new bsky.RepoSubscription({
  service: env.REPO_PROVIDER,
  db,
  idResolver: dataplane.idResolver,
})
await server.start()
void sub.start()
console.log(`appview listening on ${port}`)

const stop = async () => {
  await server.destroy()
  await sub.destroy()
  await dataplane.destroy()
  await db.close()
  process.exit(0)
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
"""


@dataclass(frozen=True, slots=True)
class AppViewIdentity:
    did: str
    key_hex: str
    genesis: PlcOperation

    @classmethod
    def create(cls, port: int) -> AppViewIdentity:
        keypair = K256Keypair.generate()
        endpoint = f"http://localhost:{port}"
        genesis = create_genesis_op(
            signer=keypair,
            rotation_keys=[keypair.did()],
            signing_key=keypair.did(),
            handle="bsky.test",
            services={
                APPVIEW_SERVICE.fragment: PlcService(APPVIEW_SERVICE.type, endpoint),
                NOTIFICATION_SERVICE[0]: PlcService(NOTIFICATION_SERVICE[1], endpoint),
            },
        )
        return cls(str(did_for_genesis(genesis)), keypair.private_key_hex(), genesis)

    def register(self, plc_url: str) -> None:
        post_json(f"{plc_url}/{self.did}", op_to_json(self.genesis))


@dataclass(frozen=True, slots=True)
class RunningAppView:
    url: str
    log: Path
    version: str


@contextlib.contextmanager
def running_appview(
    install: NodeInstall,
    identity: AppViewIdentity,
    *,
    port: int,
    dataplane_port: int,
    db_url: str,
    plc_url: str,
    pds_url: str,
    handle_domains: str,
    work_dir: Path,
) -> Iterator[RunningAppView]:
    launcher = install.directory / LAUNCHER_NAME
    launcher.write_text(LAUNCHER)
    cache = work_dir / "blob-cache"
    cache.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "NODE_ENV": "production",
        "LOG_ENABLED": "true",
        "LOG_LEVEL": "warn",
        "BSKY_PORT": str(port),
        "BSKY_DATAPLANE_PORT": str(dataplane_port),
        "BSKY_DB_URL": db_url,
        "BSKY_DB_SCHEMA": "bsky",
        "BSKY_DID": identity.did,
        "BSKY_SIGNING_KEY_HEX": identity.key_hex,
        "BSKY_BLOB_CACHE": str(cache),
        "PLC_URL": plc_url,
        "PDS_URL": pds_url,
        "PDS_HANDLE_DOMAINS": handle_domains,
        "REPO_PROVIDER": pds_url.replace("http://", "ws://"),
    }
    log = work_dir / "appview.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(install.node), str(launcher)],
            cwd=install.directory,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://localhost:{port}"
    try:
        _wait_until_up(process, url, log)
        yield RunningAppView(url, log, install.version_of("@atproto/bsky"))
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def _wait_until_up(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise InteropUnavailable(f"the AppView exited:\n{_tail(log)}")
        try:
            get_json(f"{url}/xrpc/_health", timeout=2)
            return
        except HttpFailure:
            if time.monotonic() > deadline:
                raise InteropUnavailable(f"the AppView did not come up:\n{_tail(log)}") from None
            time.sleep(0.5)


def _tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])

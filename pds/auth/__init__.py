"""Authentication for the PDS.

- `passwords`: scrypt hashes for account and app passwords (the reference's stored format).
- `tokens`: HS256 access/refresh session JWTs and the auth scopes.
- `service_jwt`: minting inter-service JWTs with account keys, verifying incoming ones.
- `verifier`: `AuthVerifier`, turning an `Authorization` header into typed credentials.

Error roots: `tokens.TokenError` and `service_jwt.ServiceJwtError` (both `ValueError`s); the
verifier reports them as XRPC errors (`atcore.xrpc`).
"""

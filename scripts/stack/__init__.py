"""Helpers that `scripts/run` calls while it brings up the one-machine stack.

- `feed_identity`: the feed generator's did:plc on the local PLC and the published feed record;
- `demo`: `scripts/run --demo`: seed demo check-ins and print a feed page for a demo viewer;
- `http`: the small JSON-over-HTTP client they share (stdlib only);
- `process`: `scripts/run` as a subprocess on ephemeral ports (end-to-end tests, load test).

Errors: `StackError` (a `ValueError`, in `http`) and its subclasses; the command-line entry points
print them without a traceback and exit 1.
"""

"""Fixtures for the script tests (shared with tests/skyspot_client, defined in its `support`)."""

from tests.skyspot_client.support import new_user, pds_stack

__all__ = ["new_user", "pds_stack"]

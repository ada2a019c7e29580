"""Fixtures for the skyspot_client tests (defined in `support`, shared with tests/scripts)."""

from tests.skyspot_client.support import new_user, pds_stack

__all__ = ["new_user", "pds_stack"]

"""Suite-wide configuration: Hypothesis profiles and the interop-fixture location."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=50, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

_REPO_ROOT = Path(__file__).resolve().parent.parent


def interop_dir() -> Path:
    """Where the official atproto interop fixtures live (ATPROTO_INTEROP_DIR overrides)."""
    configured = os.environ.get("ATPROTO_INTEROP_DIR")
    if configured:
        return Path(configured)
    return _REPO_ROOT.parent / "shared" / "atproto-interop-tests"


@pytest.fixture(scope="session")
def interop() -> Path:
    path = interop_dir()
    if not path.is_dir():
        pytest.skip(f"atproto interop fixtures not found at {path} (set ATPROTO_INTEROP_DIR)")
    return path

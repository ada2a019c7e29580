"""Suite-wide configuration: Hypothesis profiles and the interop-fixture location."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

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


_INTEROP_NODEIDS = pytest.StashKey[set[str]]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "interop(path): a case taken from an interop fixture file")
    config.stash[_INTEROP_NODEIDS] = set()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    config.stash[_INTEROP_NODEIDS] = {i.nodeid for i in items if i.get_closest_marker("interop")}


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Say how many official interop fixture cases ran, and how they ended."""
    nodeids = config.stash[_INTEROP_NODEIDS]
    if not nodeids:
        return
    counts = {
        outcome: sum(
            1
            for report in terminalreporter.stats.get(outcome, [])
            if getattr(report, "when", "call") == "call" and report.nodeid in nodeids
        )
        for outcome in ("passed", "failed", "skipped")
    }
    skipped_setup = sum(1 for r in terminalreporter.stats.get("skipped", []) if r.nodeid in nodeids)
    terminalreporter.write_line(
        f"atproto interop fixture cases: {len(nodeids)} collected, {counts['passed']} passed, "
        f"{counts['failed']} failed, {max(counts['skipped'], skipped_setup)} skipped"
    )


@pytest.fixture(scope="session")
def interop() -> Path:
    path = interop_dir()
    if not path.is_dir():
        pytest.skip(f"atproto interop fixtures not found at {path} (set ATPROTO_INTEROP_DIR)")
    return path

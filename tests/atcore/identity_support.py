"""Shared helpers for the identity and PLC-directory tests: fixture loading and fake clocks.

The did:plc interop fixtures are the audit logs published by the did-method-plc project
(`interop_tests/audit_log/{valid,invalid}/*.json`, canonical home go-didplc `testdata/`). They are
read from PLC_INTEROP_DIR, or `../shared/did-method-plc/interop_tests` next to the repository;
when absent, each parametrized test becomes one skipped case saying where to put them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

_REPO_ROOT = Path(__file__).resolve().parent.parent.parent


def plc_interop_dir() -> Path:
    configured = os.environ.get("PLC_INTEROP_DIR")
    if configured:
        return Path(configured)
    return _REPO_ROOT.parent / "shared" / "did-method-plc" / "interop_tests"


def plc_audit_logs(kind: str, *, exclude: tuple[str, ...] = ()) -> list[Any]:
    """One pytest param per audit-log fixture of `kind` ("valid" / "invalid"), id = file stem."""
    directory = plc_interop_dir() / "audit_log" / kind
    if not directory.is_dir():
        reason = f"did:plc interop fixtures not found at {directory} (set PLC_INTEROP_DIR)"
        return [pytest.param(None, marks=pytest.mark.skip(reason=reason), id="fixtures-missing")]
    return [
        pytest.param(path, id=path.stem)
        for path in sorted(directory.glob("*.json"))
        if not any(word in path.stem for word in exclude)
    ]


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@dataclass
class FakeMonotonic:
    """A monotonic clock (seconds) that only moves when told to."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class FakeWallClock:
    """A UTC wall clock that only moves when told to (or is set outright)."""

    now: datetime = field(default_factory=lambda: datetime(2025, 1, 1, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta

"""Load the official atproto interop fixtures as pytest parameters, one case per line or object.

When the fixture directory is absent every parametrized test becomes a single skipped case with a
clear reason; in CI it is present (`../shared/atproto-interop-tests`) and nothing is skipped.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import interop_dir


def _missing(relpath: str) -> list[Any]:
    reason = f"interop fixture {relpath} not found under {interop_dir()} (set ATPROTO_INTEROP_DIR)"
    return [pytest.param(None, marks=pytest.mark.skip(reason=reason), id="fixtures-missing")]


def lines(relpath: str) -> list[Any]:
    """Non-empty, non-comment lines of a text fixture, each its own case (id = the line)."""
    path = interop_dir() / relpath
    if not path.is_file():
        return _missing(relpath)
    out = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        if not raw or raw.startswith("#"):
            continue
        out.append(pytest.param(raw, id=repr(raw)[:80], marks=pytest.mark.interop(relpath)))
    return out


def json_cases(relpath: str, id_key: str | None = None) -> list[Any]:
    """Objects of a JSON-array fixture, each its own case."""
    path = interop_dir() / relpath
    if not path.is_file():
        return _missing(relpath)
    cases = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for index, case in enumerate(cases):
        label = str(case.get(id_key, index)) if id_key and isinstance(case, dict) else str(index)
        out.append(
            pytest.param(case, id=f"{index}-{label}"[:80], marks=pytest.mark.interop(relpath))
        )
    return out

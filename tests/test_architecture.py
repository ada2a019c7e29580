"""The one-way architecture: atcore imports no service, and services never import each other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("pds", "firehose_consumer", "feedgen")
PACKAGES = ("atcore", *SERVICES)


def imported_top_level_packages(path: Path) -> set[str]:
    """Top-level package names a module imports (absolute imports only; relative stay inside)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def forbidden_for(package: str) -> set[str]:
    if package == "atcore":
        return set(SERVICES)
    return {other for other in SERVICES if other != package}


def modules_of(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", [p for p in PACKAGES if (ROOT / p).is_dir()])
def test_package_respects_import_rule(package: str) -> None:
    violations = {
        str(path.relative_to(ROOT)): sorted(
            imported_top_level_packages(path) & forbidden_for(package)
        )
        for path in modules_of(package)
    }
    assert {k: v for k, v in violations.items() if v} == {}


def test_checker_detects_a_violation(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text("import os\nfrom pds.app import create_app\nfrom . import sibling\n")
    assert imported_top_level_packages(module) == {"os", "pds"}
    assert "pds" in forbidden_for("atcore")
    assert "pds" in forbidden_for("feedgen")
    assert "pds" not in forbidden_for("pds")

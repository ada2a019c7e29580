"""The README's check-in section is copy-pasteable: each Python block runs against loopback."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from skyspot_client import PostedCheckin
from tests.pds.stack import Stack, create_account
from tests.skyspot_client.support import commit_events, jpeg

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = README.read_text(encoding="utf-8").split("## Posting a check-in from Python", 1)[1]
SECTION = SECTION.split("\n## ", 1)[0]
BLOCKS = re.findall(r"```python\n(.*?)```", SECTION, re.DOTALL)


def test_the_section_has_examples() -> None:
    assert len(BLOCKS) == 2


@pytest.mark.parametrize("block", BLOCKS, ids=["helper", "step-by-step"])
def test_example_runs(pds_stack: Stack, tmp_path: Path, block: str) -> None:
    account = create_account(pds_stack, "readme")
    photo = tmp_path / "view.jpg"
    photo.write_bytes(jpeg(90, 60))
    code = (
        block.replace("https://pds.example.com", pds_stack.pds_url)
        .replace("alice.example.com", account.handle)
        .replace("app-password", account.password)
        .replace('"view.jpg"', repr(str(photo)))
    )
    namespace: dict[str, Any] = {}
    try:
        exec(compile(code, str(README), "exec"), namespace)
    finally:
        if "client" in namespace:
            namespace["client"].request.close()
    posted = namespace["posted"]
    assert isinstance(posted, PostedCheckin)
    assert posted.did == account.did
    last = commit_events(pds_stack, account.did)[-1]
    assert len(last["ops"]) == 2
    assert last["rev"] == posted.rev

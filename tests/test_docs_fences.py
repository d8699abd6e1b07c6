"""Every page's code fences are balanced: an unclosed one turns the rest of the page inside out."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([*ROOT.glob("docs/**/*.md"), ROOT / "README.md"])


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_code_fences_are_balanced(page: Path):
    opened = None
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        fence = re.match(r"\s*(```+|~~~+)", line)
        if not fence:
            continue
        if opened is None:
            opened = (number, fence.group(1))
        elif fence.group(1).startswith(opened[1]) and not line.strip()[len(fence.group(1)):].strip():
            opened = None
    assert opened is None, f"{page.relative_to(ROOT)}:{opened[0]}: a code fence is never closed"

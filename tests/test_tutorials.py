"""Every tutorial's ```python blocks run, in order, from the repository root: the docs cannot drift."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).parent.parent
TUTORIALS = sorted((ROOT / "docs" / "tutorials").glob("*.md"))
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(line of the block's first code line, code) for each ```python block."""
    return [(text[: m.start(1)].count("\n") + 1, m.group(1)) for m in BLOCK.finditer(text)]


def test_the_tutorials_are_there():
    names = {path.stem for path in TUTORIALS}
    assert {"gaussian-blur", "nine-kinds", "custom-weights", "learn-a-kernel"} <= names, names


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_code_runs(path: Path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the tutorials name specs as specs/...
    text = path.read_text()
    blocks = python_blocks(text)
    assert blocks, f"{path.name} has no python blocks"
    namespace: dict = {"__name__": f"tutorial_{path.stem.replace('-', '_')}"}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the tutorials' tensors are tiny: more threads only contend (a training loop ran 15x slower)
    try:
        for line, code in blocks:
            # padded so that a failure's traceback names the markdown file and its line
            exec(compile("\n" * (line - 1) + code, str(path), "exec"), namespace)
    finally:
        torch.set_num_threads(threads)


def test_python_blocks_keep_their_lines():
    text = "intro\n\n```python\nx = 1\n```\n\n```yaml\na: 1\n```\n```python\ny = 2\nz = 3\n```\n"
    assert python_blocks(text) == [(4, "x = 1\n"), (11, "y = 2\nz = 3\n")]

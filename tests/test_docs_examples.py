"""Every example in docs/ runs: whole specs are checked, Python blocks are executed.

- A ```yaml block whose top level has `layers:` is a spec. With `input:` it is a
  whole spec and must pass `convspec.check` (and the JSON Schema), unless the
  line above it says `<!-- invalid -->`: a deliberate mistake, which must fail.
  Without `input:` it shows part of a spec file and must say which, with
  `<!-- excerpt: specs/NAME.yaml -->` above it: each of its layers and block
  templates must be one of that file's, as written there.
- Every ```python block runs, page by page, in order, sharing one namespace per
  page (as a reader would paste them), in a temporary working directory where
  `specs/` is the repository's. A block that must not run says why, with
  `<!-- no-run: REASON -->` above it.
- docs/tutorials/ is run by test_tutorials.py; its YAML excerpts are checked here.
- Pictures are what `convspec draw` makes now: a ```mermaid block says which
  spec it draws with `<!-- draw: specs/NAME.yaml -->`, and docs/images/NAME.svg
  is specs/NAME.yaml drawn.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest
import yaml

import convspec

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
TUTORIALS = DOCS / "tutorials"
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w+-]*)[ \t]*$")
MARKER = re.compile(r"^\s*<!--\s*(?P<kind>invalid|no-run|excerpt|draw)\s*(?::\s*(?P<arg>.*?))?\s*-->\s*$")


@dataclass
class Block:
    page: Path
    line: int  # of the first code line
    lang: str
    code: str
    marker: str | None = None  # invalid, no-run or excerpt
    arg: str = ""

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced code blocks of a page, with the marker comment above each (if any)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        fence = FENCE.match(lines[index])
        if not fence or not fence["lang"]:
            index += 1
            continue
        indent, start = fence["indent"], index
        body = []
        index += 1
        while index < len(lines) and not re.match(rf"^{re.escape(indent)}```\s*$", lines[index]):
            body.append(lines[index][len(indent):] if lines[index].startswith(indent) else lines[index].lstrip())
            index += 1
        above = next((lines[i] for i in range(start - 1, -1, -1) if lines[i].strip()), "")
        marker = MARKER.match(above)
        found.append(
            Block(page, start + 2, fence["lang"], "\n".join(body) + "\n", marker["kind"] if marker else None, (marker["arg"] or "") if marker else "")
        )
        index += 1
    return found


ALL = [block for page in PAGES for block in blocks(page)]
SPEC_BLOCKS = [b for b in ALL if b.lang == "yaml" and isinstance(data := yaml.safe_load(b.code), dict) and "layers" in data]
PYTHON_PAGES = sorted({b.page for b in ALL if b.lang == "python" and TUTORIALS not in b.page.parents})


def test_the_docs_have_examples():
    assert len(SPEC_BLOCKS) >= 5
    assert len(PYTHON_PAGES) >= 3
    names = {page.name for page in PYTHON_PAGES}
    assert {"python-api.md", "index.md", "spec-reference.md"} <= names, names


def test_markers_are_spelled_right():
    """A marker that is misspelt would silently not apply: every comment that looks like one must parse."""
    for page in PAGES:
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            if re.match(r"^\s*<!--\s*(invalid|no-?run|excerpt|draw)", line):
                match = MARKER.match(line)
                assert match, f"{page.relative_to(ROOT)}:{number}: malformed marker {line.strip()!r}"
                if match["kind"] in ("no-run", "excerpt", "draw"):
                    assert match["arg"], f"{page.relative_to(ROOT)}:{number}: {match['kind']} needs a reason or a file"


@pytest.mark.parametrize("block", SPEC_BLOCKS, ids=[b.where for b in SPEC_BLOCKS])
def test_yaml_specs_check(block: Block):
    data = yaml.safe_load(block.code)
    if "input" not in data:
        assert block.marker == "excerpt", f"{block.where}: a spec without `input:` needs <!-- excerpt: specs/NAME.yaml -->"
        source = yaml.safe_load((ROOT / block.arg).read_text(encoding="utf-8"))
        for layer in data["layers"]:  # an excerpt may leave layers out (`# ...`), not change them
            assert layer in source["layers"], f"{block.where}: {layer} is not a layer of {block.arg}"
        for key, value in data.items():
            if key == "blocks":
                for name, template in value.items():
                    assert template == source["blocks"][name], f"{block.where}: template {name!r} differs from {block.arg}'s"
            elif key != "layers":
                assert value == source[key], f"{block.where}: `{key}` differs from {block.arg}"
        return
    if block.marker == "invalid":
        with pytest.raises(convspec.SpecError):
            convspec.check(block.code).raise_for_errors()
        return
    assert block.marker is None, f"{block.where}: {block.marker} marker on a whole valid spec"
    report = convspec.check(block.code)
    assert report.valid, "\n".join(map(str, report.errors))
    schema = json.loads((ROOT / "convspec.schema.json").read_text(encoding="utf-8"))
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(data))
    assert not errors, [e.message[:200] for e in errors[:3]]


@pytest.mark.parametrize("page", PYTHON_PAGES, ids=[str(p.relative_to(DOCS)) for p in PYTHON_PAGES])
def test_python_examples_run(page: Path, tmp_path, monkeypatch):
    (tmp_path / "specs").symlink_to(ROOT / "specs", target_is_directory=True)
    monkeypatch.chdir(tmp_path)  # files the examples write land here; specs/... is the repository's
    namespace: dict = {"__name__": f"docs_{page.stem.replace('-', '_')}"}
    ran = 0
    for block in blocks(page):
        if block.lang != "python":
            continue
        if block.marker == "no-run":  # the reason is on the page; it must still be Python
            compile(block.code, block.where, "exec")
            continue
        assert block.marker is None, f"{block.where}: {block.marker} is not a marker for python blocks"
        # padded, so that a failure's traceback names the page and its line
        exec(compile("\n" * (block.line - 1) + block.code, str(block.page), "exec"), namespace)
        ran += 1
    assert ran, f"{page.name}: every python block is marked no-run"


MERMAID_BLOCKS = [b for b in ALL if b.lang == "mermaid"]
IMAGES = sorted((DOCS / "images").glob("*.svg"))


@pytest.mark.parametrize("block", MERMAID_BLOCKS, ids=[b.where for b in MERMAID_BLOCKS])
def test_mermaid_pictures_are_current(block: Block):
    from convspec.draw import render

    assert block.marker == "draw", f"{block.where}: say which spec this draws, with <!-- draw: specs/NAME.yaml -->"
    expected = render(convspec.check(str(ROOT / block.arg)), "mermaid")
    assert block.code == expected, f"{block.where}: out of date; paste `convspec draw {block.arg} -o - --format mermaid`"


@pytest.mark.parametrize("image", IMAGES, ids=[p.name for p in IMAGES])
def test_svg_pictures_are_current(image: Path):
    from convspec.draw import render

    spec = ROOT / "specs" / f"{image.stem}.yaml"
    assert spec.exists(), f"{image.name}: no spec specs/{image.stem}.yaml to draw it from"
    assert image.read_text(encoding="utf-8") == render(convspec.check(str(spec)), "svg"), (
        f"{image.relative_to(ROOT)} is out of date; redraw it: "
        f"convspec draw specs/{image.stem}.yaml -o {image.relative_to(ROOT)} --force"
    )


def test_block_extraction():
    text = 'intro\n\n<!-- no-run: needs a GPU -->\n```python\nx = 1\n```\n\n- item:\n\n  ```yaml\n  a: 1\n  ```\n'
    page = ROOT / "tests" / "_blocks_probe.md"
    page.write_text(text)
    try:
        found = blocks(page)
    finally:
        page.unlink()
    assert [(b.line, b.lang, b.code, b.marker, b.arg) for b in found] == [
        (5, "python", "x = 1\n", "no-run", "needs a GPU"),
        (11, "yaml", "a: 1\n", None, ""),
    ]

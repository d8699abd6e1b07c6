"""Every console example in the docs is what convspec prints now.

A ```console block whose first line is `$ convspec ...` (or `$ cat ...`) is run,
page by page in order, in a working directory of its own per page where `specs/`
is the repository's, and each command's output must be the lines under it. Inside
a block, `$ cat NAME` followed by text writes that file (the block shows it),
`$ echo $?` prints the last command's exit status, and a line `...` stands for
lines left out of a long output. A ```yaml block with `<!-- file: NAME -->` above
it writes NAME before the page runs. Only what must vary is normalised: seconds (`0.25 s`), onnxruntime's
worst difference (float rounding differs between CPUs), the default memory
budget (half of what this machine has free) and trailing spaces.
A block that cannot be run here says why with `<!-- no-run: REASON -->` above
it (timings of a benchmark, a traceback's paths); those stay few.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_docs_examples import Block, blocks  # noqa: E402  (the docs' one block reader)

from convspec.cli import cli  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PAGES = [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md"]
FILE_MARKER = re.compile(r"^\s*<!--\s*file:\s*(?P<name>[\w.-]+)\s*-->\s*$")
SECONDS = re.compile(r" +\d+\.\d+ s\b")  # a step's time, with the spaces that right-align it
WORST = re.compile(r"(?:worst|at most) [0-9.e+-]+ x max")  # float rounding differs between CPUs and libraries
MACHINE_BUDGET = re.compile(r"over the budget of [0-9.]+ [KMGT]?B \(half the memory available now")
NO_RUN_LIMIT = 12  # a console example that is not run must be an exception
# whole pages whose examples need an environment of their own, and the test that runs them there
PAGES_RUN_ELSEWHERE = {
    "custom-kinds.md": "needs the demo plugin package of tests/plugins/demo installed; tests/test_user_kinds.py checks it",
    "weights.md": "needs torchvision's and timm's checkpoint files, which tests/test_weights.py makes",
}


def console_blocks(page: Path) -> list[Block]:
    return [b for b in blocks(page) if b.lang == "console" and b.code.startswith(("$ convspec", "$ cat "))]


def run_blocks(page: Path) -> list[Block]:
    if page.name in PAGES_RUN_ELSEWHERE:
        return []
    return [b for b in console_blocks(page) if b.marker != "no-run" and _runs_convspec(b)]


def _runs_convspec(block: Block) -> bool:
    commands = [line[2:] for line in block.code.splitlines() if line.startswith("$ ")]
    return any(c.startswith("convspec ") for c in commands) and all(c.startswith(("convspec ", "cat ")) or c == "echo $?" for c in commands)


def spec_files(page: Path) -> dict[str, str]:
    """The files a page's ```yaml blocks stand for: NAME -> text, from `<!-- file: NAME -->` above a block."""
    lines = page.read_text(encoding="utf-8").splitlines()
    files = {}
    for block in blocks(page):
        if block.lang != "yaml":
            continue
        above = next((lines[i] for i in range(block.line - 3, -1, -1) if lines[i].strip()), "")
        marker = FILE_MARKER.match(above)
        if marker:
            files[marker["name"]] = block.code
    return files


def commands(block: Block) -> list[tuple[str, str]]:
    """(command, expected output) pairs of a console block."""
    found: list[tuple[str, list[str]]] = []
    for line in block.code.splitlines():
        if line.startswith("$ "):
            found.append((line[2:], []))
        elif found:
            found[-1][1].append(line)
    return [(command, "\n".join(output)) for command, output in found]


def normalise(text: str) -> str:
    text = SECONDS.sub(" N s", text)
    text = WORST.sub("worst N x max", text)
    text = MACHINE_BUDGET.sub("over the budget of N (half the memory available now", text)
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


def matches(printed: str, expected: str) -> bool:
    """`printed` is `expected`, normalised, where a line `...` in `expected` stands for any lines."""
    parts = [r"(?:[^\n]*\n)*?" if line.strip() == "..." else re.escape(line) + r"\n" for line in normalise(expected).splitlines()]
    return re.fullmatch("".join(parts), normalise(printed) + "\n") is not None


PAGES_WITH_CONSOLE = [page for page in PAGES if run_blocks(page)]


@pytest.mark.parametrize("page", PAGES_WITH_CONSOLE, ids=[str(p.relative_to(ROOT)) for p in PAGES_WITH_CONSOLE])
def test_console_examples_print_what_convspec_prints(page, tmp_path, monkeypatch):
    (tmp_path / "specs").symlink_to(ROOT / "specs")
    for name, text in spec_files(page).items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    status = 0
    for block in run_blocks(page):
        for command, expected in commands(block):
            printed, status = run_command(command, expected, status, tmp_path)
            assert matches(printed, expected), f"{block.where}: `{command}` printed:\n{printed}"


def run_command(command: str, expected: str, status: int, folder: Path) -> tuple[str, int]:
    """What `command` prints in `folder` and its exit status (`cat` writes the file the block shows)."""
    words = shlex.split(command)
    if words[0] == "cat":
        (folder / words[1]).write_text(expected + "\n", encoding="utf-8")
        return expected, status
    if words == ["echo", "$?"]:
        return str(status), status
    result = CliRunner().invoke(cli, words[1:], prog_name="convspec", terminal_width=80)
    return result.output, result.exit_code


def test_few_console_examples_are_not_run():
    skipped = [b for page in PAGES for b in console_blocks(page) if b.marker == "no-run"]
    assert len(skipped) <= NO_RUN_LIMIT, [b.where for b in skipped]
    assert all(b.arg for b in skipped), "a no-run console block says why"
    unmarked = [
        b.where for page in PAGES if page.name not in PAGES_RUN_ELSEWHERE
        for b in console_blocks(page) if b.marker != "no-run" and not _runs_convspec(b)
    ]
    assert not unmarked, f"console blocks that neither run nor say why: {unmarked}"


# ---------------------------------------------------------------- facts the prose states


def test_the_number_of_layer_kinds_in_the_docs_is_the_registry_s():
    from convspec.kinds import registry

    kinds = len(list(registry))
    text = (ROOT / "docs" / "spec-reference.md").read_text(encoding="utf-8")
    assert f"one of the {kinds} below" in text
    assert f"There are {kinds} layer kinds" in (ROOT / "docs" / "index.md").read_text(encoding="utf-8")


def test_every_opset_range_in_the_docs_is_the_code_s():
    from convspec.opsets import MAX_OPSET, MIN_OPSET

    for page in PAGES:
        for low, high in re.findall(r"\b(1\d) (?:to|up to) (2\d)\b", page.read_text(encoding="utf-8")):
            assert (int(low), int(high)) == (MIN_OPSET, MAX_OPSET), f"{page.name}: {low} to {high}"


def test_the_readme_s_one_d_claim_holds():
    import convspec
    from test_schema import MINIMAL  # the smallest valid layer of each kind

    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())  # lines joined
    nine = ["conv", "pointwise", "asymmetric", "dilated", "depthwise", "group", "separable", "transposed", "dynamic"]
    for kind in nine:
        layer = {"type": kind, **MINIMAL[kind]}
        if isinstance(layer.get("kernel_size"), list):
            layer["kernel_size"] = layer["kernel_size"][:1]
        try:
            convspec.check({"input": {"channels": 4, "size": [16]}, "layers": [layer]})
            works = True
        except convspec.SpecError:
            works = False
        assert works == (f"except `{kind}` in 1-D" not in readme), kind

"""`convspec lsp` end to end: a real LSP client (pytest-lsp) drives the server in a subprocess over stdio."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pygls", reason="the lsp extra is not installed")
pytest_lsp = pytest.importorskip("pytest_lsp", reason="pytest-lsp is not installed")

from lsprotocol import types as lsp  # noqa: E402
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities  # noqa: E402

import convspec  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESNET = ROOT / "specs" / "resnet34.yaml"
SERVER = ClientServerConfig(
    server_command=[sys.executable, "-m", "convspec", "lsp", "--debounce", "5"],
    server_env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
)
ASYNC = pytest.mark.asyncio(loop_scope="module")  # one event loop, and one server, for the module's tests
DEBOUNCE_MS = 100  # long enough that changes sent together are surely one burst
WAIT = 60  # seconds: a reply that never comes fails the test instead of hanging the run


@pytest_lsp.fixture(config=SERVER, scope="module")
async def client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(
        lsp.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"), root_uri=ROOT.as_uri(), initialization_options={"debounce": DEBOUNCE_MS}
        )
    )
    yield
    await lsp_client.shutdown_session()


# ---------------------------------------------------------------- the client side


class Doc:
    """An open document in the client: its uri, text and version."""

    def __init__(self, client: LanguageClient, path: Path, text: str):
        self.client, self.uri, self.text, self.version = client, path.as_uri(), text, 1
        self.ident = lsp.TextDocumentIdentifier(uri=self.uri)
        listen(client)  # before the first message, so no reply is missed
        client.text_document_did_open(lsp.DidOpenTextDocumentParams(text_document=lsp.TextDocumentItem(uri=self.uri, language_id="yaml", version=1, text=text)))

    def replace(self, text: str) -> None:
        self.version += 1
        self.text = text
        change = lsp.TextDocumentContentChangeWholeDocument(text=text)
        self.client.text_document_did_change(
            lsp.DidChangeTextDocumentParams(
                text_document=lsp.VersionedTextDocumentIdentifier(uri=self.uri, version=self.version), content_changes=[change]
            )
        )

    def close(self) -> None:
        self.client.text_document_did_close(lsp.DidCloseTextDocumentParams(text_document=self.ident))

    def at(self, needle: str, offset: int = 0, nth: int = 0) -> lsp.Position:
        """The position of the `nth` occurrence of `needle`, plus `offset` characters (UTF-16 units: ASCII here)."""
        index = -1
        for _ in range(nth + 1):
            index = self.text.index(needle, index + 1)
        index += offset
        line = self.text.count("\n", 0, index)
        return lsp.Position(line=line, character=index - (self.text.rfind("\n", 0, index) + 1))

    async def diagnostics(self) -> list[lsp.Diagnostic]:
        """The diagnostics published for this document's current version (waited for, up to WAIT seconds)."""
        received = listen(self.client)
        for _ in range(WAIT * 100):
            for params in reversed(received):
                if params.uri == self.uri and params.version == self.version:
                    return list(params.diagnostics)
            await asyncio.sleep(0.01)
        raise TimeoutError(f"no diagnostics for version {self.version} of {self.uri}")

    def hints_params(self, first: int = 0, last: int = 1000) -> lsp.InlayHintParams:
        return lsp.InlayHintParams(
            text_document=self.ident, range=lsp.Range(start=lsp.Position(line=first, character=0), end=lsp.Position(line=last, character=0))
        )

    async def hover(self, position: lsp.Position) -> str | None:
        found = await self.client.text_document_hover_async(lsp.HoverParams(text_document=self.ident, position=position))
        return None if found is None else found.contents.value

    async def complete(self, position: lsp.Position) -> list[str]:
        found = await self.client.text_document_completion_async(lsp.CompletionParams(text_document=self.ident, position=position))
        return [item.label for item in (found.items if found else [])]


def listen(client: LanguageClient) -> list:
    """Every publishDiagnostics the client has received, in order (a listener armed again after each)."""
    received = getattr(client, "published", None)
    if received is None:
        received = client.published = []

        def arm(params=None) -> None:
            if params is not None:
                received.append(params)
            client.protocol.wait_for_notification(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS, arm)

        arm()
    return received


def problems_of(spec, **options) -> list:
    """What `convspec check` finds: a report's errors, or the problems of the SpecError it raises."""
    try:
        return convspec.check(spec, **options).errors
    except convspec.SpecError as err:
        return err.problems


def _line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n")


SMALL = """\
convspec: 1
name: small
input: {channels: 3, size: [32, 32]}
layers:
  - {name: stem, type: conv, out: 6, kernel: 3, padding: 1, act: relu}
  - {name: g1, type: group, out: 8, kernel: 3, groups: 4}
  - {name: pool, type: pool, op: max, kernel: 2}
  - {name: skip, type: add, from: [pool, pool]}
outputs: [skip]
"""


@pytest.fixture
def tmp_spec(tmp_path):
    def make(name: str = "small.yaml") -> Path:
        return tmp_path / name

    return make


# ---------------------------------------------------------------- diagnostics


@ASYNC
async def test_diagnostics_on_open_at_the_checkers_line_and_column_then_cleared_when_fixed(client, tmp_spec):
    doc = Doc(client, tmp_spec(), SMALL)
    found = await doc.diagnostics()
    expected = problems_of(SMALL)
    assert [d.message.split(": ", 1)[1] for d in found] == [p.message for p in expected]
    (diagnostic,) = found
    problem = expected[0]
    assert (diagnostic.range.start.line, diagnostic.range.start.character) == (problem.location.line - 1, problem.location.column - 1)
    assert diagnostic.severity == lsp.DiagnosticSeverity.Error and diagnostic.source == "convspec"
    assert "groups=4 does not divide" in diagnostic.message and "'g1' (group)" in diagnostic.message
    doc.replace(SMALL.replace("groups: 4", "groups: 2"))
    assert await doc.diagnostics() == []
    doc.replace(SMALL)
    assert len(await doc.diagnostics()) == 1
    received = len(listen(client))
    doc.close()
    for _ in range(WAIT * 100):  # closing clears what was shown
        if any(p.uri == doc.uri and not p.diagnostics for p in listen(client)[received:]):
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("no empty diagnostics after close")


@ASYNC
async def test_changes_in_a_burst_are_checked_once_after_the_debounce(client, tmp_spec):
    doc = Doc(client, tmp_spec(), SMALL)
    await doc.diagnostics()
    received = len(listen(client))
    for groups in (5, 6, 7, 2):  # sent together, as fast typing or a paste sends them
        doc.replace(SMALL.replace("groups: 4", f"groups: {groups}"))
    assert await doc.diagnostics() == []
    assert [p.version for p in listen(client)[received:] if p.uri == doc.uri] == [doc.version]
    status = await client.protocol.send_request_async("convspec/status", None)
    assert status.debounce_ms == DEBOUNCE_MS  # from initializationOptions, over the command line's --debounce
    doc.close()


@ASYNC
async def test_every_error_at_once_including_schema_errors(client, tmp_spec):
    text = SMALL.replace("act: relu", "act: rleu").replace("groups: 4", "groups: 5")
    doc = Doc(client, tmp_spec(), text)
    messages = [d.message for d in await doc.diagnostics()]
    assert any("rleu" in m and "relu" in m for m in messages), messages
    assert any("groups=5" in m for m in messages), messages
    doc.close()


@ASYNC
async def test_export_limits_are_warnings(client, tmp_spec):
    # without input.size the sizes are dynamic, and an adaptive pool to 5x5 cannot be exported exactly
    sized = SMALL.replace("groups: 4", "groups: 2").replace("op: max, kernel: 2}", "op: max, kernel: 2}\n  - {type: adaptive_pool, op: avg, size: 5}")
    expected = problems_of(sized, target="onnx", dynamic_size=True)
    assert expected
    doc = Doc(client, tmp_spec(), sized.replace(", size: [32, 32]}", "}"))
    found = await doc.diagnostics()
    assert [d.severity for d in found] == [lsp.DiagnosticSeverity.Warning] * len(expected)
    assert [d.message.split(": ", 1)[1] for d in found] == [p.message for p in expected]
    doc.close()


@ASYNC
async def test_broken_yaml_mid_typing_is_diagnosed_and_hover_keeps_the_last_report(client, tmp_spec):
    good = SMALL.replace("groups: 4", "groups: 2")
    doc = Doc(client, tmp_spec(), good)
    assert await doc.diagnostics() == []
    broken = good.replace("{name: pool, type: pool, op: max, kernel: 2}", "{name: pool, type: pool, op: max, kernel: 2")
    doc.replace(broken)
    (diagnostic,) = await doc.diagnostics()
    assert diagnostic.message.startswith("YAML syntax error")
    assert diagnostic.range.start.line >= _line_of(broken, "name: pool")
    shown = await doc.hover(doc.at("name: stem"))
    assert shown is not None and "1x6x32x32" in shown
    hints = await client.text_document_inlay_hint_async(doc.hints_params())
    assert "→ 1x6x32x32" in [h.label for h in hints]
    doc.close()


@ASYNC
async def test_yaml_that_is_not_a_spec_gets_no_diagnostics(client, tmp_spec):
    other = Doc(client, tmp_spec("compose.yaml"), "services:\n  web: {image: nginx, ports: [80\n")
    assert await other.hover(lsp.Position(line=1, character=4)) is None
    spec = Doc(client, tmp_spec("after.yaml"), SMALL)
    await spec.diagnostics()  # checked after the other one: had it been published, it would be here by now
    assert other.uri not in client.diagnostics
    other.close()
    spec.close()


@ASYNC
async def test_positions_are_utf16_code_units(client, tmp_spec):
    # the emoji is one character but two UTF-16 code units: the unknown key after it sits one unit further right
    text = SMALL.replace("groups: 4}", 'groups: 2, in_channels: 6}  # 😀').replace(
        "{name: pool, type: pool, op: max, kernel: 2}", '{name: pool, type: pool, op: "😀", kernel: 2, strid: 1}'
    )
    doc = Doc(client, tmp_spec(), text)
    found = {d.message: d for d in await doc.diagnostics()}
    strid = next(d for m, d in found.items() if "strid" in m)
    line = text.split("\n")[strid.range.start.line]
    assert strid.range.start.character == len(line[: line.index("strid")].encode("utf-16-le")) // 2 == line.index("strid") + 1
    doc.close()


# ---------------------------------------------------------------- hover and inlay hints


@pytest.fixture(scope="module")
def resnet_report():
    return convspec.check(RESNET)


@ASYNC
async def test_hover_on_a_layer_shows_its_figures_and_padding(client, resnet_report):
    doc = Doc(client, RESNET, RESNET.read_text(encoding="utf-8"))
    await doc.diagnostics()
    stem = resnet_report.layers[0]
    shown = await doc.hover(doc.at("name: stem", 6))
    assert "**stem** · conv" in shown
    assert f"output: {'x'.join(map(str, stem.output_shape))}" in shown
    assert f"parameters: {stem.params:,} ({stem.trainable_params:,} trainable, 0 frozen)" in shown
    assert f"MACs: {stem.macs:,}" in shown
    assert f"receptive field: {stem.receptive_field[0]}" in shown and f"stride: {stem.stride[0]}" in shown
    assert "padding: [[3, 3], [3, 3]]" in shown
    doc.close()


@ASYNC
async def test_hover_on_a_block_use_shows_the_expanded_layers_totals(client, resnet_report):
    doc = Doc(client, RESNET, RESNET.read_text(encoding="utf-8"))
    await doc.diagnostics()
    layer2 = next(layer for layer in resnet_report.layers if layer.name == "layer2")
    shown = await doc.hover(doc.at("name: layer2", 6))
    assert "(block `stage`)" in shown
    assert f"parameters: {layer2.params:,}" in shown and f"MACs: {layer2.macs:,}" in shown
    leaves = sum(1 for layer in resnet_report.walk() if not layer.children) - sum(
        1 for top in resnet_report.layers if top.name != "layer2" for layer in [top, *_descendants(top)] if not layer.children
    )
    assert f"layers inside: {leaves:,}" in shown
    # a template's layer: every instance listed
    shown = await doc.hover(doc.at("name: conv1", 6))
    assert "16 instances" in shown and "`layer1.0.block.conv1`" in shown
    doc.close()


def _descendants(layer):
    for child in layer.children:
        yield child
        yield from _descendants(child)


@ASYNC
async def test_inlay_hints_give_each_layers_output_shape_at_the_end_of_its_line(client, resnet_report):
    text = RESNET.read_text(encoding="utf-8")
    doc = Doc(client, RESNET, text)
    await doc.diagnostics()
    lines = text.split("\n")
    hints = await client.text_document_inlay_hint_async(doc.hints_params(0, len(lines)))
    by_line = {h.position.line: h for h in hints}
    for layer in resnet_report.layers:
        line = _line_of(text, f"name: {layer.name},")
        assert by_line[line].label == "→ " + "x".join(map(str, layer.output_shape))
        assert by_line[line].position.character == len(lines[line].rstrip())
    doc.close()


@ASYNC
async def test_code_lenses_carry_the_shapes_for_clients_without_inlay_hints(tmp_path):
    config = ClientServerConfig(server_command=SERVER.server_command, server_env=SERVER.server_env)
    plain = await config.start()
    try:
        capabilities = lsp.ClientCapabilities(text_document=lsp.TextDocumentClientCapabilities())
        await plain.initialize_session(lsp.InitializeParams(capabilities=capabilities))
        path = tmp_path / "small.yaml"
        doc = Doc(plain, path, SMALL.replace("groups: 4", "groups: 2"))
        await doc.diagnostics()
        lenses = await plain.text_document_code_lens_async(lsp.CodeLensParams(text_document=doc.ident))
        assert [(lens.range.start.line, lens.command.title) for lens in lenses][:2] == [
            (_line_of(doc.text, "name: stem"), "→ 1x6x32x32"),
            (_line_of(doc.text, "name: g1"), "→ 1x8x30x30"),
        ]
        await plain.shutdown_session()
    finally:
        await plain.stop()


# ---------------------------------------------------------------- completion


@ASYNC
async def test_completion_of_keys_types_values_filters_blocks_and_from_names(client, tmp_spec):
    text = SMALL.replace("groups: 4", "groups: 2") + "blocks:\n  pair: {type: conv, out: 4, kernel: 1}\n"
    doc = Doc(client, tmp_spec(), text)
    await doc.diagnostics()
    # keys valid for the layer's type, less those it has
    keys = await doc.complete(doc.at("kernel: 2}", len("kernel: 2")))
    assert keys == []  # inside a value's word: nothing
    new_key = text.replace("op: max, kernel: 2}", "op: max, kernel: 2, }")
    doc.replace(new_key)
    keys = await doc.complete(doc.at("kernel: 2, }", len("kernel: 2, ")))
    assert {"stride", "padding", "ceil_mode", "from"} <= set(keys) and not {"op", "kernel", "name", "type"} & set(keys)
    # values of a key: activation names, layer types, filter names, block names, from names
    doc.replace(text.replace("act: relu", "act: "))
    assert {"relu", "silu", "hardswish"} <= set(await doc.complete(doc.at("act: ", 5)))
    doc.replace(text.replace("type: group", "type: gr"))
    types = await doc.complete(doc.at("type: gr", 8))
    assert {"conv", "group", "separable", "residual", "use"} <= set(types)
    doc.replace(text.replace("{name: skip, type: add, from: [pool, pool]}", "{name: f, type: fixed, filter: }"))
    assert {"gaussian", "sobel_x", "laplacian"} <= set(await doc.complete(doc.at("filter: ", 8)))
    doc.replace(text.replace("{name: skip, type: add, from: [pool, pool]}", "{name: u, type: use, block: }"))
    assert await doc.complete(doc.at("block: ", 7)) == ["pair"]
    doc.replace(text.replace("from: [pool, pool]", "from: [pool, ]"))
    assert await doc.complete(doc.at("from: [pool, ]", 13)) == ["input", "stem", "g1", "pool"]
    # block style, mid-typing: a half-typed key on its own line
    block = "convspec: 1\ninput: {channels: 3, size: [8, 8]}\nlayers:\n  - type: conv\n    out: 4\n    ker\n"
    doc.replace(block)
    keys = await doc.complete(lsp.Position(line=5, character=7))
    assert "kernel_size" in keys and "kernel" in keys and "out" not in keys and "type" not in keys
    doc.close()


# ---------------------------------------------------------------- navigation and outline


@ASYNC
async def test_definition_and_references_of_from_names_and_block_uses(client, resnet_report):
    text = RESNET.read_text(encoding="utf-8")
    doc = Doc(client, RESNET, text)
    await doc.diagnostics()
    where = await client.text_document_definition_async(
        lsp.DefinitionParams(text_document=doc.ident, position=doc.at("block: stage", 8))
    )
    assert where.range.start == doc.at("stage:")
    uses = await client.text_document_references_async(
        lsp.ReferenceParams(text_document=doc.ident, position=doc.at("stage:"), context=lsp.ReferenceContext(include_declaration=False))
    )
    assert [u.range.start for u in uses] == [doc.at("block: stage", 7, nth=i) for i in range(3)]
    doc.close()
    doc = Doc(client, RESNET.with_name("small.yaml"), SMALL)  # not on disk: the client's text is what counts
    await doc.diagnostics()
    where = await client.text_document_definition_async(lsp.DefinitionParams(text_document=doc.ident, position=doc.at("[pool, pool]", 8)))
    assert where.range.start == doc.at("pool", nth=0)
    assert where.range.end == doc.at("pool", 4, nth=0)
    refs = await client.text_document_references_async(
        lsp.ReferenceParams(text_document=doc.ident, position=doc.at("name: pool", 6), context=lsp.ReferenceContext(include_declaration=True))
    )
    assert [r.range.start for r in refs] == [doc.at("pool", nth=0), doc.at("[pool", 1), doc.at("pool]", 0)]
    refs = await client.text_document_references_async(
        lsp.ReferenceParams(text_document=doc.ident, position=doc.at("name: skip", 6), context=lsp.ReferenceContext(include_declaration=False))
    )
    assert [r.range.start for r in refs] == [doc.at("[skip]", 1)]
    doc.close()


@ASYNC
async def test_document_symbols_are_the_layer_tree(client, resnet_report):
    doc = Doc(client, RESNET, RESNET.read_text(encoding="utf-8"))
    await doc.diagnostics()
    symbols = await client.text_document_document_symbol_async(lsp.DocumentSymbolParams(text_document=doc.ident))
    names = [s.name for s in symbols]
    assert names == ["input", "blocks.basic", "blocks.stage", *[layer.name for layer in resnet_report.layers]]
    basic = symbols[1]
    assert [c.name for c in basic.children] == ["conv1", "conv2"] and basic.kind == lsp.SymbolKind.Class
    layer1 = symbols[names.index("layer1")]
    assert [c.name for c in layer1.children] == ["block"] and "→ 1x64x56x56" in layer1.detail
    doc.close()


# ---------------------------------------------------------------- the process


@ASYNC
async def test_the_server_never_imports_torch(client):
    doc = Doc(client, RESNET, RESNET.read_text(encoding="utf-8"))
    await doc.diagnostics()
    await doc.hover(doc.at("name: stem", 6))
    await doc.complete(doc.at("act: relu", 5))
    status = await client.protocol.send_request_async("convspec/status", None)
    assert status.torch_imported is False  # pygls hands an unknown method's result back as an object
    doc.close()


def test_without_pygls_the_command_says_what_to_install():
    code = "import sys; sys.modules['pygls'] = None; from convspec.cli import main; main(['lsp'])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 2
    assert "pip install 'convspec[lsp]'" in done.stderr and "Traceback" not in done.stderr


@ASYNC
async def test_the_docs_picture_is_the_servers_current_replies(client):
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import _editor_picture as picture
    finally:
        sys.path.remove(str(ROOT / "docs"))
    text = picture.EXAMPLE.read_text(encoding="utf-8")
    doc = Doc(client, picture.EXAMPLE, text)
    diagnostics = await doc.diagnostics()
    drawn = picture.render(text, diagnostics, await picture.replies(client, doc.uri, text))
    assert drawn == picture.PICTURE.read_text(encoding="utf-8"), "docs/editor-demo/editor.svg is out of date: python docs/_editor_picture.py"
    doc.close()


BASE = """\
convspec: 1
input: {channels: 3, size: [32, 32]}
layers:
  - {name: stem, type: conv, out: 6, kernel: 3, padding: 1}
  - {name: g1, type: group, out: 8, kernel: 3, groups: 4}
  - {name: head, type: global_pool, op: avg}
"""
CHILD = """\
convspec: 1
extends: base.yaml
layers:
  - {name: stem, out: 10}
  - {after: stem, name: blur, type: fixed, filter: gaussian, kernel: 3, padding: 1}
"""


@ASYNC
async def test_extends_resolves_beside_the_file_and_a_bases_errors_go_to_the_base(client, tmp_path):
    (tmp_path / "base.yaml").write_text(BASE, encoding="utf-8")
    (tmp_path / "child.yaml").write_text(CHILD, encoding="utf-8")  # for convspec.check; the server reads the client's text
    base_uri = (tmp_path / "base.yaml").as_uri()
    doc = Doc(client, tmp_path / "child.yaml", CHILD)
    assert await doc.diagnostics() == []  # nothing wrong in the child's own text
    expected = problems_of(tmp_path / "child.yaml")  # groups=4 and the child's 10 channels: a base line
    assert expected[0].location.file.endswith("base.yaml")
    for _ in range(WAIT * 100):
        published = [p for p in listen(client) if p.uri == base_uri]
        if published:
            break
        await asyncio.sleep(0.01)
    (diagnostic,) = published[-1].diagnostics
    assert diagnostic.message.endswith(expected[0].message)
    assert (diagnostic.range.start.line, diagnostic.range.start.character) == (expected[0].location.line - 1, expected[0].location.column - 1)
    shown = await doc.hover(doc.at("name: stem", 6))
    assert "output: 1x10x32x32" in shown
    received = len(listen(client))
    doc.replace(CHILD.replace("out: 10", "out: 12"))  # fixed in the child: the base's diagnostic is cleared
    assert await doc.diagnostics() == []
    assert [list(p.diagnostics) for p in listen(client)[received:] if p.uri == base_uri] == [[]]
    doc.close()

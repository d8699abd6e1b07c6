"""`convspec lsp`: a Language Server (LSP 3.17) over stdio, on pygls, for editors showing a spec's checks as it is typed.

On open and on every change (debounced), a spec is checked as `convspec check` checks it
and every problem is published as a diagnostic at its line and column; layers that
`convspec export` would refuse are warnings. Hover shows a layer's figures, inlay hints
(code lenses for clients without them) its output shape, and completion, definition,
references and the outline read the text's structure. YAML that is not a spec (no
`convspec:` key, no schema line naming convspec's schema, not `*.convspec.yaml`) gets
no diagnostics. Mid-typing YAML that does not parse is diagnosed at its syntax error,
and hover and hints keep the last report that could be made.

Positions: convspec's are 1-based lines and columns in characters (`Location`),
`lsp_analysis`'s 0-based in characters; the client's are 0-based in UTF-16 code
units unless it negotiated another encoding. `_to_client` and `_from_client` are the
one place they are converted. torch is never imported here.
"""

from __future__ import annotations

import asyncio
import re
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path
from pygls.workspace import TextDocument
from pygls.workspace.position_codec import PositionCodec

from ._version import __version__
from .errors import Problem
from .lsp_analysis import Analysis, Point, Span, SpanIndex, analyse, index_spans, is_spec_document, problem_file, problem_start
from .lsp_features import Suggestion, completions, definition, hover, inlay_hints, outline, references

DEFAULT_DEBOUNCE = 0.010  # seconds of quiet after a change before the check runs: one check per burst of changes
STATUS_REQUEST = "convspec/status"  # a custom request: what the server process has loaded (tests assert no torch)


@dataclass
class DocumentState:
    """What the server keeps of one open document."""

    spec: bool = False
    good: Analysis | None = None  # the last analysis that had a report: hover and hints read it while the text is broken
    spans: tuple[str, SpanIndex] | None = None  # the current text's index, made on demand
    pending: asyncio.Task | None = None
    published: set[str] = field(default_factory=set)  # uris given diagnostics for this document (a base spec's too)


class SpecServer(LanguageServer):
    """The convspec language server: one `DocumentState` per open document, no state shared beyond it."""

    def __init__(self, debounce: float = DEFAULT_DEBOUNCE):
        super().__init__("convspec", __version__, text_document_sync_kind=lsp.TextDocumentSyncKind.Incremental)
        self.debounce = debounce
        self.documents: dict[str, DocumentState] = {}
        self._schema: dict | None = None

    @property
    def schema(self) -> dict:
        """The format's JSON Schema (keys, descriptions, enumerations), made on the first completion."""
        if self._schema is None:
            from .schema_json import json_schema

            self._schema = json_schema()
        return self._schema

    # ------------------------------------------------------------ checking

    def schedule(self, uri: str, delay: float) -> None:
        """Check `uri` after `delay` seconds of quiet; a change before then starts the wait again."""
        state = self.documents.setdefault(uri, DocumentState())
        if state.pending is not None and not state.pending.done():
            state.pending.cancel()
        state.pending = asyncio.get_running_loop().create_task(self._check_later(uri, delay))

    async def _check_later(self, uri: str, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        try:
            self.check(uri)
        except Exception:  # a bug in convspec: into the editor's log, and the server goes on serving
            message = f"convspec lsp: checking {uri} failed (a bug in convspec):\n{traceback.format_exc()}"
            self.window_log_message(lsp.LogMessageParams(type=lsp.MessageType.Error, message=message))

    def check(self, uri: str) -> None:
        """Check the document's current text and publish its diagnostics (none for YAML that is not a spec)."""
        state = self.documents.get(uri)
        if state is None:
            return
        document = self.workspace.get_text_document(uri)
        text = document.source
        path = document.path or uri
        state.spec = is_spec_document(text, path)
        if not state.spec:
            self._publish(state, document, {})
            return
        analysis = analyse(text, path)
        state.spans = (text, analysis.spans)
        if analysis.report is not None:
            state.good = analysis
        by_file: dict[str, list[lsp.Diagnostic]] = {}
        for problems, severity in ((analysis.errors, lsp.DiagnosticSeverity.Error), (analysis.warnings, lsp.DiagnosticSeverity.Warning)):
            for problem in problems:
                file = problem_file(problem, path)
                lines = document.lines if file == path else _file_lines(file)
                spans = analysis.spans if file == path else None
                by_file.setdefault(file, []).append(_diagnostic(problem, severity, lines, spans, document.position_codec))
        self._publish(state, document, by_file)

    def _publish(self, state: DocumentState, document: TextDocument, by_file: dict[str, list[lsp.Diagnostic]]) -> None:
        path = document.path or document.uri
        uris = {(document.uri if file == path else from_fs_path(file) or file): diagnostics for file, diagnostics in by_file.items()}
        uris.setdefault(document.uri, [])
        for uri in state.published - set(uris):  # fixed, or no longer a spec: clear
            uris[uri] = []
        for uri, diagnostics in uris.items():
            if not diagnostics and uri not in state.published and not (state.spec and uri == document.uri):
                continue  # nothing was shown there: nothing to clear (no messages for YAML that is not a spec)
            version = document.version if uri == document.uri else None
            self.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics, version=version))
        state.published = {uri for uri, diagnostics in uris.items() if diagnostics}

    def current(self, uri: str) -> tuple[TextDocument, DocumentState, SpanIndex] | None:
        """The document, its state and the index of its current text; None for YAML that is not a spec."""
        state = self.documents.get(uri)
        if state is None:
            return None
        document = self.workspace.get_text_document(uri)
        text = document.source
        if not state.spec and not is_spec_document(text, document.path):
            return None
        if state.spans is None or state.spans[0] != text:
            state.spans = (text, index_spans(text))
        return document, state, state.spans[1]


def _file_lines(path: str) -> list[str]:
    try:
        return Path(path).read_text(encoding="utf-8").splitlines(True)
    except (OSError, UnicodeDecodeError):
        return []


# ---------------------------------------------------------------- positions, converted here only


def _to_client(lines: list[str], point: Point, codec: PositionCodec) -> lsp.Position:
    """A 0-based (line, character) point -> the client's Position (UTF-16 code units by default)."""
    if point[0] >= len(lines):
        return lsp.Position(line=point[0], character=0)
    return codec.position_to_client_units(lines, lsp.Position(line=point[0], character=point[1]))


def _range(lines: list[str], span: Span, codec: PositionCodec) -> lsp.Range:
    return lsp.Range(start=_to_client(lines, span.start, codec), end=_to_client(lines, span.end, codec))


def _from_client(document: TextDocument, position: lsp.Position) -> Point:
    converted = document.position_codec.position_from_client_units(document.lines, lsp.Position(line=position.line, character=position.character))
    return converted.line, converted.character


_TOKEN = re.compile(r"[^\s,:\[\]{}#]*")


def _diagnostic(problem: Problem, severity: lsp.DiagnosticSeverity, lines: list[str], spans: SpanIndex | None, codec: PositionCodec) -> lsp.Diagnostic:
    """A located problem as a diagnostic spanning the key or value it points at (or the word there)."""
    start = problem_start(problem)
    end = start
    if spans is not None:
        end = next((s.end for s in (*spans.keys.values(), *spans.values.values()) if s.start == start and s.end[0] == start[0]), start)
    if end == start and start[0] < len(lines):
        end = (start[0], start[1] + len(_TOKEN.match(lines[start[0]].rstrip("\r\n"), start[1]).group(0)))
    message = f"{problem.layer}: {problem.message}" if problem.layer else problem.message
    return lsp.Diagnostic(range=_range(lines, Span(start, end), codec), message=message, severity=severity, source="convspec")


# ---------------------------------------------------------------- the server


_SUGGESTION_KINDS = {
    "key": lsp.CompletionItemKind.Property,
    "type": lsp.CompletionItemKind.Class,
    "value": lsp.CompletionItemKind.EnumMember,
    "layer": lsp.CompletionItemKind.Reference,
    "block": lsp.CompletionItemKind.Module,
}
_OUTLINE_KINDS = {
    "layer": lsp.SymbolKind.Function,
    "container": lsp.SymbolKind.Module,
    "block": lsp.SymbolKind.Class,
    "input": lsp.SymbolKind.Variable,
}


def _answer(ls: SpecServer, uri: str, empty: Any, answer: Callable[[TextDocument, DocumentState, SpanIndex], Any]) -> Any:
    """`answer(document, state, spans)` for a request on `uri`; `empty` for YAML that is not a spec (or not open)."""
    found = ls.current(uri)
    if found is None:
        return empty
    return answer(*found)


def _register_document_sync(server: SpecServer) -> None:
    """Initialisation options, and open, change and close: each opened or changed text is checked (debounced)."""

    @server.feature(lsp.INITIALIZE)
    def initialize(ls: SpecServer, params: lsp.InitializeParams) -> None:
        options = params.initialization_options
        if isinstance(options, dict) and isinstance(options.get("debounce"), (int, float)) and options["debounce"] >= 0:
            ls.debounce = options["debounce"] / 1000  # given in milliseconds, as editors' settings are

    @server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
    async def did_open(ls: SpecServer, params: lsp.DidOpenTextDocumentParams) -> None:
        ls.documents[params.text_document.uri] = DocumentState()
        ls.schedule(params.text_document.uri, 0)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
    async def did_change(ls: SpecServer, params: lsp.DidChangeTextDocumentParams) -> None:
        ls.schedule(params.text_document.uri, ls.debounce)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: SpecServer, params: lsp.DidCloseTextDocumentParams) -> None:
        state = ls.documents.pop(params.text_document.uri, None)
        if state is None:
            return
        if state.pending is not None:
            state.pending.cancel()
        for uri in state.published:
            ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=uri, diagnostics=[]))


def _hints(ls: SpecServer, uri: str, first: int, last: int) -> list[tuple[lsp.Position, str]]:
    """The output shapes shown on lines `first` to `last` (0-based), at the client's positions."""

    def shapes(document: TextDocument, state: DocumentState, spans: SpanIndex) -> list[tuple[lsp.Position, str]]:
        lines = [line.rstrip("\r\n") for line in document.lines]
        found = inlay_hints(spans, state.good, lines, first, last)
        return [(_to_client(document.lines, point, document.position_codec), label) for point, label in found]

    return _answer(ls, uri, [], shapes)


def _register_figures(server: SpecServer) -> None:
    """Hover (a layer's figures), and its output shapes as inlay hints, or code lenses for clients without them."""

    @server.feature(lsp.TEXT_DOCUMENT_HOVER)
    def on_hover(ls: SpecServer, params: lsp.HoverParams) -> lsp.Hover | None:
        def shown(document: TextDocument, state: DocumentState, spans: SpanIndex) -> lsp.Hover | None:
            found = hover(spans, state.good, _from_client(document, params.position))
            if found is None:
                return None
            text, span = found
            content = lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value=text)
            return lsp.Hover(contents=content, range=_range(document.lines, span, document.position_codec))

        return _answer(ls, params.text_document.uri, None, shown)

    @server.feature(lsp.TEXT_DOCUMENT_INLAY_HINT, lsp.InlayHintOptions(resolve_provider=False))
    def on_inlay_hint(ls: SpecServer, params: lsp.InlayHintParams) -> list[lsp.InlayHint]:
        found = _hints(ls, params.text_document.uri, params.range.start.line, params.range.end.line)
        return [lsp.InlayHint(position=position, label=label, kind=lsp.InlayHintKind.Type, padding_left=True) for position, label in found]

    @server.feature(lsp.TEXT_DOCUMENT_CODE_LENS, lsp.CodeLensOptions(resolve_provider=False))
    def on_code_lens(ls: SpecServer, params: lsp.CodeLensParams) -> list[lsp.CodeLens]:
        # the same shapes, for clients that cannot show inlay hints
        capabilities = ls.client_capabilities.text_document
        if capabilities is not None and capabilities.inlay_hint is not None:
            return []
        found = _hints(ls, params.text_document.uri, 0, sys.maxsize)
        return [
            lsp.CodeLens(range=lsp.Range(start=lsp.Position(line=p.line, character=0), end=p), command=lsp.Command(title=label, command=""))
            for p, label in found
        ]


def _register_navigation(server: SpecServer) -> None:
    """The outline of layers and blocks, and definition and references of a layer's name."""

    @server.feature(lsp.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    def on_symbols(ls: SpecServer, params: lsp.DocumentSymbolParams) -> list[lsp.DocumentSymbol]:
        def symbols(document: TextDocument, state: DocumentState, spans: SpanIndex) -> list[lsp.DocumentSymbol]:
            def symbol(entry) -> lsp.DocumentSymbol:
                return lsp.DocumentSymbol(
                    name=entry.name, detail=entry.detail, kind=_OUTLINE_KINDS[entry.kind],
                    range=_range(document.lines, entry.span, document.position_codec),
                    selection_range=_range(document.lines, entry.selection, document.position_codec),
                    children=[symbol(child) for child in entry.children],
                )  # fmt: skip

            return [symbol(entry) for entry in outline(spans, state.good)]

        return _answer(ls, params.text_document.uri, [], symbols)

    @server.feature(lsp.TEXT_DOCUMENT_DEFINITION)
    def on_definition(ls: SpecServer, params: lsp.DefinitionParams) -> lsp.Location | None:
        def defined(document: TextDocument, state: DocumentState, spans: SpanIndex) -> lsp.Location | None:
            span = definition(spans, _from_client(document, params.position))
            return None if span is None else lsp.Location(uri=document.uri, range=_range(document.lines, span, document.position_codec))

        return _answer(ls, params.text_document.uri, None, defined)

    @server.feature(lsp.TEXT_DOCUMENT_REFERENCES)
    def on_references(ls: SpecServer, params: lsp.ReferenceParams) -> list[lsp.Location]:
        def used(document: TextDocument, state: DocumentState, spans: SpanIndex) -> list[lsp.Location]:
            found = references(spans, _from_client(document, params.position), params.context.include_declaration)
            return [lsp.Location(uri=document.uri, range=_range(document.lines, s, document.position_codec)) for s in found]

        return _answer(ls, params.text_document.uri, [], used)


def _register_completion(server: SpecServer) -> None:
    """Completion of keys, types, values, layer names and block names, from the format's JSON Schema."""

    @server.feature(lsp.TEXT_DOCUMENT_COMPLETION, lsp.CompletionOptions(trigger_characters=[":", " ", "[", ","]))
    def on_completion(ls: SpecServer, params: lsp.CompletionParams) -> lsp.CompletionList | None:
        def suggested(document: TextDocument, state: DocumentState, spans: SpanIndex) -> lsp.CompletionList:
            def item(s: Suggestion) -> lsp.CompletionItem:
                edit = lsp.TextEdit(range=_range(document.lines, s.replace, document.position_codec), new_text=s.insert)
                return lsp.CompletionItem(label=s.label, kind=_SUGGESTION_KINDS[s.kind], detail=s.detail or None, text_edit=edit)

            found = completions(document.source, _from_client(document, params.position), ls.schema)
            return lsp.CompletionList(is_incomplete=False, items=[item(s) for s in found])

        return _answer(ls, params.text_document.uri, None, suggested)


def make_server(debounce: float = DEFAULT_DEBOUNCE) -> SpecServer:
    """A convspec language server with every feature registered; `start_io()` runs it on stdin/stdout."""
    server = SpecServer(debounce)
    _register_document_sync(server)
    _register_figures(server)
    _register_navigation(server)
    _register_completion(server)

    @server.feature(STATUS_REQUEST)
    def status(ls: SpecServer, params: Any) -> dict:
        return {"torch_imported": "torch" in sys.modules, "documents": len(ls.documents), "debounce_ms": ls.debounce * 1000}

    return server


def serve(debounce: float = DEFAULT_DEBOUNCE) -> None:
    """Run the language server on stdin/stdout until the client says exit."""
    make_server(debounce).start_io()

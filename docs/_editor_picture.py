"""The picture on docs/editor.md, drawn from `convspec lsp`'s real replies to docs/editor-demo/example.yaml.

No editor runs here, so the picture is not a screenshot: a client asks the server for the
file's diagnostics, its inlay hints and the hover on one layer, and this script draws the
text with those replies where an editor would show them. tests/test_lsp.py asks the running
server again and checks the picture is current. Regenerate it with

    python docs/_editor_picture.py
"""

from __future__ import annotations

import asyncio
import os
import sys
from html import escape
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "docs" / "editor-demo" / "example.yaml"
PICTURE = ROOT / "docs" / "editor-demo" / "editor.svg"
HOVER_ON = "name: stem"  # the hover is asked on this layer's name

CHAR_W, LINE_H, LEFT, TOP = 7.8, 19, 44, 52
FONT = "font-family='DejaVu Sans Mono, Menlo, Consolas, monospace' font-size='13'"


async def replies(client, uri: str, text: str) -> dict:
    """Diagnostics, inlay hints and the hover on `HOVER_ON`, asked of a server through an initialized pygls client.

    The document must be open at version 1 and checked (its diagnostics received) already;
    `diagnostics` is what the server published for it.
    """
    from lsprotocol import types as lsp

    ident = lsp.TextDocumentIdentifier(uri=uri)
    lines = text.split("\n")
    whole = lsp.Range(start=lsp.Position(line=0, character=0), end=lsp.Position(line=len(lines), character=0))
    hints = await client.text_document_inlay_hint_async(lsp.InlayHintParams(text_document=ident, range=whole))
    line = next(i for i, l in enumerate(lines) if HOVER_ON in l)
    position = lsp.Position(line=line, character=lines[line].index(HOVER_ON) + len("name: ") + 1)
    shown = await client.text_document_hover_async(lsp.HoverParams(text_document=ident, position=position))
    return {
        "hints": [(h.position.line, h.position.character, h.label) for h in hints],
        "hover": (line, shown.contents.value),
    }


def render(text: str, diagnostics: list, found: dict) -> str:
    """The SVG: the text, squiggles and messages of `diagnostics`, inlay hints at line ends, the hover box."""
    lines = text.rstrip("\n").split("\n")
    hover_line, hover_text = found["hover"]
    hover_rows = [row.replace("**", "").replace("`", "") for row in hover_text.split("\n") if row.strip()]
    widest = max((len(line) for line in lines), default=0)
    hint_end = max((c + len(label) + 2 for _, c, label in found["hints"]), default=0)
    messages = [f"{d.range.start.line + 1}:{d.range.start.character + 1} {d.message}" for d in diagnostics]
    width = int(LEFT + CHAR_W * max(widest, hint_end, *(len(m) - 4 for m in messages), 110) + 24)
    box_top = TOP + (hover_line + 1) * LINE_H + 4
    box_bottom = box_top + LINE_H * len(hover_rows) + 12
    messages_top = max(TOP + (len(lines) + 1) * LINE_H, box_bottom) + 28  # the problems panel, below text and hover
    height = int(messages_top + 24 * len(diagnostics) + 12)
    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' viewBox='0 0 {width} {height}'>",
        f"<rect width='{width}' height='{height}' fill='#1e1e2e'/>",
        f"<text x='12' y='22' fill='#a6adc8' {FONT}>Drawn from the replies of `convspec lsp` to {EXAMPLE.relative_to(ROOT)} "
        "(diagnostics, inlay hints, one hover); not a screenshot</text>",
    ]
    for index, line in enumerate(lines):
        y = TOP + (index + 1) * LINE_H
        out.append(f"<text x='8' y='{y}' fill='#585b70' {FONT}>{index + 1:>3}</text>")
        colour = "#6c7086" if line.lstrip().startswith("#") else "#cdd6f4"
        out.append(f"<text x='{LEFT}' y='{y}' fill='{colour}' {FONT} xml:space='preserve'>{escape(line)}</text>")
    for line, character, label in found["hints"]:
        x, y = LEFT + CHAR_W * (character + 1), TOP + (line + 1) * LINE_H
        out.append(f"<text x='{x:.1f}' y='{y}' fill='#7f849c' {FONT} font-style='italic'>{escape(label)}</text>")
    for number, diagnostic in enumerate(diagnostics):
        start, end = diagnostic.range.start, diagnostic.range.end
        y = TOP + (start.line + 1) * LINE_H + 4
        x0, x1 = LEFT + CHAR_W * start.character, LEFT + CHAR_W * max(end.character, start.character + 1)
        wave = " ".join(f"L{x0 + i * 3:.1f},{y + (2 if i % 2 else 0)}" for i in range(int((x1 - x0) / 3) + 1))
        colour = "#f38ba8" if diagnostic.severity == 1 else "#f9e2af"
        out.append(f"<path d='M{x0:.1f},{y} {wave}' stroke='{colour}' fill='none' stroke-width='1.2'/>")
        out.append(f"<text x='12' y='{messages_top + 24 * number}' fill='{colour}' {FONT}>{escape(messages[number])}</text>")
    box_w = CHAR_W * max(len(r) for r in hover_rows) + 20
    hover_x = LEFT + CHAR_W * 20
    out.append(
        f"<rect x='{hover_x}' y='{box_top}' width='{box_w:.1f}' height='{box_bottom - box_top}' rx='4' "
        "fill='#313244' stroke='#89b4fa' fill-opacity='0.97'/>"
    )
    for index, row in enumerate(hover_rows):
        out.append(f"<text x='{hover_x + 10}' y='{box_top + 18 + index * LINE_H}' fill='#cdd6f4' {FONT}>{escape(row)}</text>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


async def _main() -> None:
    from lsprotocol import types as lsp
    from pygls.lsp.client import LanguageClient

    text = EXAMPLE.read_text(encoding="utf-8")
    client = LanguageClient("convspec-docs", "1")
    published: asyncio.Future = asyncio.get_running_loop().create_future()

    @client.feature(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def on_diagnostics(params: lsp.PublishDiagnosticsParams) -> None:
        if not published.done():
            published.set_result(list(params.diagnostics))

    await client.start_io(sys.executable, "-m", "convspec", "lsp", env={**os.environ, "PYTHONPATH": str(ROOT)})
    capabilities = lsp.ClientCapabilities(text_document=lsp.TextDocumentClientCapabilities(inlay_hint=lsp.InlayHintClientCapabilities()))
    await client.initialize_async(lsp.InitializeParams(capabilities=capabilities))
    client.initialized(lsp.InitializedParams())
    uri = EXAMPLE.as_uri()
    client.text_document_did_open(lsp.DidOpenTextDocumentParams(text_document=lsp.TextDocumentItem(uri=uri, language_id="yaml", version=1, text=text)))
    diagnostics = await asyncio.wait_for(published, 60)
    found = await replies(client, uri, text)
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    PICTURE.write_text(render(text, diagnostics, found), encoding="utf-8")
    print(f"wrote {PICTURE.relative_to(ROOT)}")


if __name__ == "__main__":
    asyncio.run(_main())

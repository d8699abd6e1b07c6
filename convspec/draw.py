"""Diagrams of a network, from the checker's report alone: an SVG picture or a Mermaid flowchart.

No torch, no layout engine, no system binary. The diagram is a tree of framed
groups (`block`, `residual`, `repeat` and its copies, a residual's `shortcut`)
holding layer boxes. Every group has an entry port (a dot on its top edge) and
an exit port (on its bottom edge): wiring from outside a group goes to its entry
port, which fans out to the layers inside that read the group's input, and the
group's last layer leads to its exit port. So every drawn edge joins two items
of one list, and each list is laid out on its own:

- layering: each item one row below the lowest item it reads (longest path);
- ordering: row by row, each item near the mean x of what it reads, kept apart;
- edges between neighbouring rows are curves; longer ones (skips) run down
  lanes to the right of the list, shorter spans nearer, so they nest.

Drawn edges, per list: one per `from` name of each layer (the default chain
included), one from the list's last layer to its group's exit port; in a
`residual`, the main path's last layer and the shortcut (or, for the identity,
the entry port) each lead to the add, and the add to the exit port; a `repeat`
chains its entry port, its copies and its exit port. A copy of one layer is no
group of its own: the layer is drawn in its place, labelled with the copy.
At the top level, `input` is a node and each output gets an output node.

Long networks (more than COLLAPSE_FROM boxes) draw each run of identical
consecutive repeat copies once, with a "×N" badge. A long top-level chain is
wrapped into columns (direction "TB") or laid out left to right ("LR"). A port
no edge branches at draws no dot. Boxes say what a layer computes
(`draw_labels`: "3x3/2 · bn · relu") and its shape without the batch. A report
with errors is drawn too: the layers its problems name in red, the problems
listed below.

Modules: `draw_model` (the tree from a report), `draw_labels` (the words),
`draw_layout` (sizes, positions, routes), this one (SVG and Mermaid).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

from .draw_layout import (
    DETAIL_SIZE, LEGEND_ROW, LINE_H, MARGIN, PROBLEM_LINE, PORT_R, TITLE_OFFSET, _SYMBOL_W, _legend_rows, _text_width, layout,
)  # fmt: skip
from .draw_model import COLLAPSE_FROM, Diagram, Edge, Group, Node, copy_runs, count_boxes, is_frozen, tree
from .kinds import PLAIN_COLOURS, registry
from .report import Report

FORMATS = ("svg", "mermaid")
DIRECTIONS = ("TB", "LR")
ERROR_STROKE, ERROR_FILL = "#cf222e", "#ffebe9"  # a layer the checker found wrong
FONT = "ui-sans-serif, system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif"

_PLAIN = PLAIN_COLOURS  # the input, outputs and ports


def _colours(kind: str) -> tuple[str, str]:
    """(fill, stroke) of a layer box: as its kind declares (`kinds.py`)."""
    declared = registry.get(kind)
    return declared.colours if declared is not None else _PLAIN


_FRAMES: dict[str, tuple[str, str, str]] = {  # kind: (stroke, fill, dash)
    "block": ("#8d99a6", "#fbfcfd", ""),
    "residual": ("#8a5cc2", "#fcfaff", ""),
    "shortcut": ("#8a5cc2", "#fcfaff", "4 3"),
    "repeat": ("#4a76c9", "#fafcff", ""),
    "copy": ("#9fb3d9", "#ffffff", "4 3"),
}


def diagram(report: Report, collapse: bool | None = None, direction: str = "TB") -> Diagram:
    """The report as a laid-out diagram (sizes in px).

    `collapse`: None draws identical repeat copies once beyond COLLAPSE_FROM boxes. `direction`:
    "TB" wraps a long top-level chain into columns whose height over width is near 1; "LR" lays
    the top level out left to right. A report with errors (`trace.load_for_drawing`) is drawn with
    the layers its problems name in red and the problems listed below the picture.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}; use one of: {', '.join(DIRECTIONS)}")
    result = tree(report, collapse, direction)
    layout(result)
    return result


# ---------------------------------------------------------------- SVG


def _f(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _path(edge: Edge) -> str:
    points = edge.points
    if edge.curved:  # straight segments, then a curve for the last one
        (x1, y1), (x2, y2) = points[-2:]
        bend = max((y2 - y1) / 2, 8)
        lead = "".join(f" L{_f(x)},{_f(y)}" for x, y in points[1:-1])
        return (
            f"M{_f(points[0][0])},{_f(points[0][1])}{lead} "
            f"C{_f(x1)},{_f(y1 + bend)} {_f(x2)},{_f(y2 - bend)} {_f(x2)},{_f(y2)}"
        )
    return _rounded(points, 6)


def _rounded(points: list[tuple[float, float]], radius: float) -> str:
    """An orthogonal polyline with rounded corners."""
    parts = [f"M{_f(points[0][0])},{_f(points[0][1])}"]
    for (x0, y0), (x1, y1), (x2, y2) in zip(points, points[1:], points[2:]):
        d1 = abs(x1 - x0) + abs(y1 - y0)
        d2 = abs(x2 - x1) + abs(y2 - y1)
        r = min(radius, d1 / 2, d2 / 2)
        if r <= 0.5:
            parts.append(f"L{_f(x1)},{_f(y1)}")
            continue
        ax = x1 - (x1 - x0) / d1 * r if d1 else x1
        ay = y1 - (y1 - y0) / d1 * r if d1 else y1
        bx = x1 + (x2 - x1) / d2 * r if d2 else x1
        by = y1 + (y2 - y1) / d2 * r if d2 else y1
        parts.append(f"L{_f(ax)},{_f(ay)} Q{_f(x1)},{_f(y1)} {_f(bx)},{_f(by)}")
    parts.append(f"L{_f(points[-1][0])},{_f(points[-1][1])}")
    return " ".join(parts)


def _attr(**values: str) -> str:
    return " ".join(f"{key.replace('_', '-')}={quoteattr(str(value))}" for key, value in values.items() if value != "")


_STYLE = """
.header { font-size: 16px; font-weight: 700; fill: #1f2328; }
.subheader { font-size: 11px; fill: #57606a; }
.node text { fill: #1f2328; }
.node .title { font-size: 12px; font-weight: 600; }
.node .detail { font-size: 11px; fill: #57606a; }
.node .operation { font-size: 11px; fill: #1f2328; }
.problems text { font-size: 11px; fill: #cf222e; }
.problems .heading { font-weight: 700; }
.frame .title { font-size: 11px; font-weight: 600; fill: #57606a; }
.badge text, .node .badge { font-size: 11px; font-weight: 700; fill: #ffffff; }
.edge { fill: none; stroke: #6e7781; stroke-width: 1.3; }
.edge-label { font-size: 10px; fill: #8a5cc2; }
.legend text { font-size: 11px; fill: #57606a; }
"""


def _lock(x: float, y: float) -> str:
    """A padlock glyph, 10x12, top-left at (x, y)."""
    return (
        f'<g class="lock" transform="translate({_f(x)},{_f(y)})">'
        '<path d="M2.5,5.5 V3.5 a2.5,2.5 0 0 1 5,0 V5.5" fill="none" stroke="#3d434a" stroke-width="1.4"/>'
        '<rect x="0.5" y="5.5" width="9" height="6.5" rx="1.2" fill="#3d434a"/></g>'
    )


def _svg_node(node: Node) -> list[str]:
    if node.is_port:
        if node.hidden:  # no edge branches here: the line passes through, no dot (the id stays, for the edges' ends)
            return [f'<circle class="port hidden" id="{node.id}" cx="{_f(node.x + PORT_R)}" cy="{_f(node.y + PORT_R)}" r="0" fill="none"/>']
        cx, cy = node.x + PORT_R, node.y + PORT_R
        return [f'<circle class="port" id="{node.id}" cx="{_f(cx)}" cy="{_f(cy)}" r="{PORT_R}" fill="#6e7781"/>']
    classes = ["node", node.kind] + (["frozen"] if node.frozen else []) + (["error"] if node.error else [])
    data = _attr(id=node.id, data_name=node.name, data_path=node.path, data_type=node.type)
    out = [f'<g class="{" ".join(classes)}" {data}>']
    if node.tooltip:
        out.append(f"<title>{escape(node.tooltip)}</title>")
    fill, stroke = _colours(node.type)
    radius = 6
    if node.kind in ("input", "output"):
        fill, stroke, radius = "#ffffff", "#1f2328", node.h / 2
    elif node.kind == "add":
        fill, stroke = _colours("add")
        radius = node.h / 2
    x, y, w, h = node.x, node.y, node.w, node.h
    width = "1.6" if node.kind in ("input", "output") else "1.2"
    if node.error:
        fill, stroke, width = ERROR_FILL, ERROR_STROKE, "2.4"
    out.append(f'<rect x="{_f(x)}" y="{_f(y)}" width="{_f(w)}" height="{_f(h)}" rx="{_f(radius)}" fill="{fill}" stroke="{stroke}" stroke-width="{width}"/>')
    if node.frozen:
        out.append(f'<rect x="{_f(x)}" y="{_f(y)}" width="{_f(w)}" height="{_f(h)}" rx="{radius}" fill="url(#hatch)"/>')
        out.append(_lock(x + w - 16, y + 5))
    centre = x + w / 2 - (8 if node.frozen else 0) - (_text_width(node.badge, DETAIL_SIZE, True) / 2 + 7 if node.badge else 0)
    if node.detail:
        out.append(f'<text class="title" x="{_f(centre)}" y="{_f(y + 16)}" text-anchor="middle">{escape(node.title)}</text>')
        lines = [("operation", node.operation)] if node.operation else []
        for number, (kind, text) in enumerate([*lines, ("detail", node.detail)]):
            out.append(f'<text class="{kind}" x="{_f(centre)}" y="{_f(y + 30 + number * LINE_H)}" text-anchor="middle">{escape(text)}</text>')
    else:
        weight = ' font-weight="700"' if node.kind in ("input", "output") else ""
        out.append(f'<text class="title" x="{_f(centre)}" y="{_f(y + h / 2 + 4)}" text-anchor="middle"{weight}>{escape(node.title)}</text>')
    if node.badge:
        out.extend(_badge(node.badge, x + w - 6, y + h / 2 - 8))
    out.append("</g>")
    return out


def _badge(text: str, right: float, top: float) -> list[str]:
    width = _text_width(text, DETAIL_SIZE, bold=True) + 10
    return [
        f'<g class="badge"><rect x="{_f(right - width)}" y="{_f(top)}" width="{_f(width)}" height="16" rx="8" fill="#4a76c9"/>',
        f'<text x="{_f(right - width / 2)}" y="{_f(top + 12)}" text-anchor="middle">{escape(text)}</text></g>',
    ]


def _svg_frame(group: Group) -> list[str]:
    stroke, fill, dash = _FRAMES[group.kind]
    width = "1.2"
    if group.error:
        stroke, width = ERROR_STROKE, "2.4"
    dashed = f' stroke-dasharray="{dash}"' if dash else ""
    kind = group.kind + (" error" if group.error else "")
    out = [f'<g class="frame {kind}" {_attr(id=group.id, data_path=group.path)}>']
    out.append(
        f'<rect x="{_f(group.x)}" y="{_f(group.y)}" width="{_f(group.w)}" height="{_f(group.h)}" rx="8" '
        f'fill="{fill}" stroke="{stroke}" stroke-width="{width}"{dashed}/>'
    )
    out.append(f'<text class="title" x="{_f(group.x + group._axis + TITLE_OFFSET)}" y="{_f(group.y + 16)}">{escape(group.title)}</text>')
    if group.badge:
        out.extend(_badge(group.badge, group.x + group.w - 6, group.y + 5))
    out.append("</g>")
    return out


def _legend(result: Diagram, top: float) -> list[str]:
    out = ['<g class="legend">']
    for number, row in enumerate(_legend_rows(result, result.width - 2 * MARGIN)):
        x, y = float(MARGIN), top + number * LEGEND_ROW
        for kind, text in row:
            if kind == "frozen":
                out.append(f'<rect x="{_f(x)}" y="{_f(y)}" width="26" height="16" rx="3" fill="#f4f4f4" stroke="#8a8a8a"/>')
                out.append(f'<rect x="{_f(x)}" y="{_f(y)}" width="26" height="16" rx="3" fill="url(#hatch)"/>')
                out.append(_lock(x + 8, y + 2))
            elif kind == "add":
                fill, stroke = _colours("add")
                out.append(f'<rect x="{_f(x)}" y="{_f(y)}" width="26" height="16" rx="8" fill="{fill}" stroke="{stroke}"/>')
                out.append(f'<text x="{_f(x + 13)}" y="{_f(y + 12)}" text-anchor="middle">⊕</text>')
            elif kind == "port":
                out.append(f'<circle cx="{_f(x + 5)}" cy="{_f(y + 8)}" r="{PORT_R}" fill="#6e7781"/>')
            elif kind == "lane":
                out.append(
                    f'<path d="M{_f(x)},{_f(y + 2)} H{_f(x + 10)} V{_f(y + 14)} H{_f(x + 22)}" fill="none" stroke="#6e7781" '
                    'stroke-width="1.3" marker-end="url(#arrow)"/>'
                )
            elif kind == "badge":
                out.extend(_badge("×N", x + 26, y))
            elif kind == "error":
                out.append(f'<rect x="{_f(x)}" y="{_f(y)}" width="26" height="16" rx="3" fill="{ERROR_FILL}" stroke="{ERROR_STROKE}" stroke-width="2"/>')
            x += _SYMBOL_W[kind]
            out.append(f'<text x="{_f(x)}" y="{_f(y + 12)}">{escape(text)}</text>')
            x += _text_width(text, DETAIL_SIZE) + 22
    out.append("</g>")
    return out


def _problems(result: Diagram) -> list[str]:
    """The checker's findings under the picture, one per paragraph, wrapped to its width."""
    if not result.problems:
        return []
    y = result.problems_top + PROBLEM_LINE
    count = len(result.problems)
    out = ['<g class="problems">', f'<text class="heading" x="{MARGIN}" y="{_f(y)}">{count} problem{"s" if count != 1 else ""}:</text>']
    for lines in result.problem_lines:
        for number, line in enumerate(lines):
            y += PROBLEM_LINE
            x = MARGIN + (12 if number else 0)  # a wrapped line indented under its first
            out.append(f'<text x="{x}" y="{_f(y)}">{escape(line)}</text>')
    out.append("</g>")
    return out


def to_svg(result: Diagram) -> str:
    """The diagram as a standalone SVG document."""
    width, height = result.width, result.height
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_f(width)} {_f(height)}" width="{_f(width)}" '
        f'height="{_f(height)}" font-family={quoteattr(FONT)} font-size="12">',
        f"<title>{escape(result.title)}</title>",
        f"<desc>{escape(result.subtitle)}</desc>",
        "<defs>",
        '<marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto">'
        '<path d="M0,1 L10,5 L0,9 z" fill="#6e7781"/></marker>',
        '<pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
        '<line x1="0" y1="0" x2="0" y2="6" stroke="#3d434a" stroke-width="1.4" stroke-opacity="0.28"/></pattern>',
        f"<style>{_STYLE}</style>",
        "</defs>",
        f'<rect width="{_f(width)}" height="{_f(height)}" fill="#ffffff"/>',
        f'<text class="header" x="{MARGIN}" y="{MARGIN + 14}">{escape(result.title)}</text>',
        f'<text class="subheader" x="{MARGIN}" y="{MARGIN + 32}">{escape(result.subtitle)}</text>',
        '<g class="frames">',
    ]
    for group in result.groups():
        out.extend(_svg_frame(group))
    out.append("</g>")
    out.append('<g class="edges">')
    for edge in result.edges():
        arrow = "" if edge.to_port else ' marker-end="url(#arrow)"'  # a line into a port's dot needs no head
        out.append(f'<path class="edge" {_attr(data_from=edge.src, data_to=edge.dst)} d="{_path(edge)}"{arrow}/>')
        if edge.label:
            x, y = edge.points[0]
            out.append(f'<text class="edge-label" x="{_f(x + 3)}" y="{_f(y + 10)}">.{escape(edge.label)}</text>')
    out.append("</g>")
    out.append('<g class="nodes">')
    for node in result.nodes():
        out.extend(_svg_node(node))
    out.append("</g>")
    out.extend(_legend(result, result.legend_top))
    out.extend(_problems(result))
    out.append("</svg>")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- Mermaid


def _mermaid_text(text: str) -> str:
    """Text inside a quoted Mermaid label: quotes and markup as entity codes."""
    return text.replace("#", "#35;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


@dataclass
class _MermaidClasses:
    """The node ids each Mermaid class styles, gathered while the nodes are written."""

    frozen: list[str] = field(default_factory=list)
    ports: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The `classDef` and `class` lines, ports in lines of at most 40 ids."""
        out = [
            "  classDef frozen fill:#eeeeee,stroke:#3d434a,stroke-dasharray:3 3",
            "  classDef port fill:#6e7781,stroke:#6e7781,color:#6e7781",
        ]
        if self.frozen:
            out.append(f"  class {','.join(self.frozen)} frozen")
        if self.wrong:
            out.append(f"  classDef error fill:{ERROR_FILL},stroke:{ERROR_STROKE},stroke-width:3px")
            out.append(f"  class {','.join(self.wrong)} error")
        for start in range(0, len(self.ports), 40):  # keep lines short
            out.append(f"  class {','.join(self.ports[start:start + 40])} port")
        return out


def _mermaid_node(node: Node, indent: str, classes: _MermaidClasses) -> str:
    """One node's line: a port as a small circle, input and output as stadiums, an add as a circle, a layer as a box."""
    if node.is_port:
        classes.ports.append(node.id)
        return f'{indent}{node.id}((" "))'
    title = _mermaid_text(node.title)
    if node.badge:
        title += f" {_mermaid_text(node.badge)}"
    if node.frozen:
        classes.frozen.append(node.id)
        title = "🔒 " + title
    if node.error:
        classes.wrong.append(node.id)
    lines = [node.operation] if node.operation else []
    label = f"<b>{title}</b>" + "".join(f"<br/>{_mermaid_text(line)}" for line in [*lines, node.detail] if line)
    if node.kind in ("input", "output"):
        return f'{indent}{node.id}(["{label}"])'
    if node.kind == "add":
        return f'{indent}{node.id}(("{label}"))'
    return f'{indent}{node.id}["{label}"]'


def _mermaid_items(group: Group, depth: int, classes: _MermaidClasses) -> list[str]:
    """The lines of a group's items, an inner group as a subgraph holding its ports and items (recursively)."""
    indent = "  " * depth
    out = []
    for item in group.items:
        if not isinstance(item, Group):
            out.append(_mermaid_node(item, indent, classes))
            continue
        title = _mermaid_text(item.title + (f" {item.badge}" if item.badge else ""))
        out.append(f'{indent}subgraph {item.id}["{title}"]')
        out.append(f"{indent}  direction TB")
        out.append(_mermaid_node(item.in_port, indent + "  ", classes))
        out.extend(_mermaid_items(item, depth + 1, classes))
        out.append(_mermaid_node(item.out_port, indent + "  ", classes))
        out.append(f"{indent}end")
        if item.error:
            out.append(f"{indent}style {item.id} stroke:{ERROR_STROKE},stroke-width:3px")
    return out


def to_mermaid(result: Diagram) -> str:
    """The diagram as a Mermaid flowchart (`TD`, or `LR` for direction LR): the same nodes, labels, groups
    (subgraphs) and edges as the SVG; the layers with problems in red, the problems as comments at the top."""
    out = [f"%% {_mermaid_text(result.title)}: {_mermaid_text(result.subtitle)}"]
    out.extend(f"%% {_mermaid_text(problem)}" for problem in result.problems)
    out.append("flowchart LR" if result.direction == "LR" else "flowchart TD")
    classes = _MermaidClasses()
    out.extend(_mermaid_items(result.root, 1, classes))
    for edge in result.edges():
        label = f'|"{_mermaid_text("." + edge.label)}"|' if edge.label else ""
        out.append(f"  {edge.src} -->{label} {edge.dst}")
    out.extend(classes.lines())
    return "\n".join(out) + "\n"

# ---------------------------------------------------------------- entry points


def render(report: Report, fmt: str = "svg", collapse: bool | None = None, direction: str = "TB") -> str:
    """A valid report as an SVG document or a Mermaid flowchart (SpecError for a report with errors)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown diagram format {fmt!r}; use one of: {', '.join(FORMATS)}")
    report.raise_for_errors()
    result = diagram(report, collapse, direction)
    return to_svg(result) if fmt == "svg" else to_mermaid(result)


__all__ = [
    "COLLAPSE_FROM", "DIRECTIONS", "FORMATS", "Diagram", "Edge", "Group", "Node", "copy_runs", "count_boxes", "diagram", "is_frozen",
    "render", "to_mermaid", "to_svg",
]  # fmt: skip

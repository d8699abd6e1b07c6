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
consecutive repeat copies once, with a "×N" badge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from .kinds import PLAIN_COLOURS, registry
from .plans import FixedPlan
from .geometry import format_shape as _shape
from .shapes import LayerReport, Report

COLLAPSE_FROM = 40  # boxes (layers and residual adds); beyond this, identical repeat copies are drawn once
FORMATS = ("svg", "mermaid")

IN, OUT = -1, -2  # a group's entry and exit ports, as item indices in its own list

# geometry, in px
FONT = "ui-sans-serif, system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif"
TITLE_SIZE, DETAIL_SIZE, FRAME_SIZE = 12, 11, 11
NODE_H, PILL_H = 38, 28
NODE_PAD, MIN_NODE_W = 10, 96
H_GAP, V_GAP = 18, 26  # between items of a row, between rows
FRAME_PAD, FRAME_TOP, FRAME_BOTTOM = 10, 22, 8  # inside a frame: sides, title band, below the last row
LANE_GAP = 12  # between skip lanes
TITLE_OFFSET = 10  # a frame's title, right of its entry port
PORT_R = 3.5
MARGIN = 16

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


# ---------------------------------------------------------------- the diagram


@dataclass
class Node:
    """A box: a layer, the input, an output, a residual's add, or a group's port."""

    id: str
    kind: str  # "layer", "input", "output", "add" or "port"
    title: str = ""
    detail: str = ""
    name: str = ""  # the layer's name
    path: str = ""  # its module path, e.g. layer1.0.block.conv1
    type: str = ""
    frozen: bool = False
    badge: str = ""
    tooltip: str = ""
    # layout: top-left corner and size
    x: float = 0.0
    y: float = 0.0
    w: float = 0.0
    h: float = 0.0

    @property
    def is_port(self) -> bool:
        return self.kind == "port"


@dataclass
class Edge:
    src: str  # node or port id
    dst: str
    label: str = ""  # a split's part
    points: list[tuple[float, float]] = field(default_factory=list)
    curved: bool = True
    to_port: bool = False


@dataclass
class _Link:
    """An edge as its list sees it: which items it joins (IN / OUT for the group's ports)."""

    edge: Edge
    a: int
    b: int


@dataclass
class Group:
    """A framed group of items (or the whole diagram, unframed)."""

    id: str
    kind: str  # "root", "block", "residual", "shortcut", "repeat" or "copy"
    title: str = ""
    path: str = ""
    badge: str = ""
    items: list[Node | Group] = field(default_factory=list)
    links: list[_Link] = field(default_factory=list)
    sinks: set[int] = field(default_factory=set)  # items drawn on the last row (the outputs)
    in_port: Node | None = None
    out_port: Node | None = None
    x: float = 0.0
    y: float = 0.0
    w: float = 0.0
    h: float = 0.0
    _rows: list[list[int]] = field(default_factory=list)
    _row_top: list[float] = field(default_factory=list)
    _row_bottom: list[float] = field(default_factory=list)
    _axis: float = 0.0
    _content_right: float = 0.0
    _lanes: int = 0

    def link(self, a: int, b: int, src: str, dst: str, label: str = "") -> None:
        self.links.append(_Link(Edge(src, dst, label), a, b))


@dataclass
class Diagram:
    """The network as groups, nodes and edges, laid out."""

    title: str
    subtitle: str
    root: Group
    collapsed: bool
    width: float = 0.0
    height: float = 0.0
    legend_top: float = 0.0

    def groups(self) -> list[Group]:
        """Every framed group, outer ones first."""
        found, stack = [], [self.root]
        while stack:
            group = stack.pop(0)
            if group is not self.root:
                found.append(group)
            stack.extend(item for item in group.items if isinstance(item, Group))
        return found

    def nodes(self) -> list[Node]:
        """Every node (ports included), in drawing order."""
        found: list[Node] = []

        def visit(group: Group) -> None:
            if group.in_port:
                found.append(group.in_port)
            for item in group.items:
                visit(item) if isinstance(item, Group) else found.append(item)
            if group.out_port:
                found.append(group.out_port)

        visit(self.root)
        return found

    def edges(self) -> list[Edge]:
        found: list[Edge] = []

        def visit(group: Group) -> None:
            found.extend(link.edge for link in group.links)
            for item in group.items:
                if isinstance(item, Group):
                    visit(item)

        visit(self.root)
        return found

    def layers(self) -> list[Node]:
        return [n for n in self.nodes() if n.kind == "layer"]


# ---------------------------------------------------------------- from the report


def is_frozen(report: LayerReport) -> bool:
    """A layer whose weights training does not change: some parameters frozen, or a fixed filter kept fixed."""
    if report.trainable_params < report.params:
        return True
    return isinstance(report.plan, FixedPlan) and not report.plan.trainable


def _is_group(report: LayerReport) -> bool:
    return report.type in ("block", "residual", "repeat")


def count_boxes(layers: list[LayerReport]) -> int:
    """Boxes of the full drawing: one per layer (a split is one; its parts are not) and one per residual's add."""
    return sum(count_boxes(r.children) + (r.type == "residual") if _is_group(r) else 1 for r in layers)


def _signature(report: LayerReport) -> tuple:
    return (
        report.type, report.name, tuple(report.sources), tuple(map(tuple, report.input_shapes)), report.output_shape,
        report.params, report.trainable_params, tuple(_signature(c) for c in report.children),
    )


def copy_runs(copies: list[LayerReport], collapse: bool) -> list[list[LayerReport]]:
    """Consecutive identical copies of a repeat, grouped (each copy alone without `collapse`)."""
    runs: list[list[LayerReport]] = []
    for copy in copies:
        if collapse and runs and _signature(runs[-1][0])[2:] == _signature(copy)[2:]:  # all but the name
            runs[-1].append(copy)
        else:
            runs.append([copy])
    return runs


def _tooltip(report: LayerReport, path: str) -> str:
    lines = [f"{path} ({report.type})", f"output {_shape(report.output_shape)}"]
    if report.params:
        trainable = "" if report.trainable_params == report.params else f", {report.trainable_params:,} trainable"
        lines.append(f"{report.params:,} parameters{trainable}")
    if report.macs:
        lines.append(f"{report.macs:,} MACs")
    return "\n".join(lines)


def _detail(report: LayerReport) -> str:
    shape = _shape(report.output_shape)
    ins = {s[1] for s in report.input_shapes if len(s) > 1}
    out = report.output_shape[1] if report.output_shape is not None and len(report.output_shape) > 1 else None
    if len(ins) == 1 and out is not None:
        (inp,) = ins
        if inp != out:  # the channels a layer changes: 3→64
            return f"{'?' if inp is None else inp}→{out} · {shape}"
    return shape


class _Builder:
    def __init__(self, collapse: bool):
        self.collapse = collapse
        self.count = 0

    def new_id(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def group(self, kind: str, title: str, path: str) -> Group:
        gid = self.new_id("g")
        return Group(gid, kind, title, path, in_port=Node(f"{gid}_in", "port"), out_port=Node(f"{gid}_out", "port"))

    def wire_list(
        self, group: Group, layers: list[LayerReport], prefix: str, entry: tuple[int, str]
    ) -> tuple[tuple[int, str], dict[str, tuple[int, str]]]:
        """Add the layers of one list to `group`, linked along `from`: (the list's output, every name's output)."""
        produced: dict[str, tuple[int, str]] = {"input": entry}
        last = entry
        for report in layers:
            index = len(group.items)
            item, inlet, outlet = self.item(report, prefix)
            group.items.append(item)
            for source in report.sources:
                if source in produced:
                    a, src = produced[source]
                    group.link(a, index, src, inlet)
                else:  # a split's part, NAME.i: an edge from the split, labelled with the part
                    base, _, part = source.partition(".")
                    a, src = produced[base]
                    group.link(a, index, src, inlet, part)
            produced[report.name] = last = (index, outlet)
        return last, produced

    def close(self, group: Group, last: tuple[int, str]) -> None:
        group.link(last[0], OUT, last[1], group.out_port.id)

    def item(self, report: LayerReport, prefix: str, label: str = "", badge: str = "") -> tuple[Node | Group, str, str]:
        """One layer as an item: (item, the endpoint its inputs go to, the endpoint its output comes from)."""
        path = prefix + report.name
        lead = f"{label} " if label else ""
        if report.type == "block":
            group = self.group("block", f"{lead}{report.name} · block", path)
            self.close(group, self.wire_list(group, report.children, path + ".", (IN, group.in_port.id))[0])
        elif report.type == "residual":
            group = self.residual(report, path, lead)
        elif report.type == "repeat":
            group = self.repeat(report, path, lead)
        else:
            node = Node(
                self.new_id("n"), "layer", f"{report.name} · {report.type}", _detail(report), report.name, path,
                report.type, is_frozen(report), badge, _tooltip(report, path),
            )
            if label:
                node.title = f"{label} {node.title}"
            return node, node.id, node.id
        group.badge = badge
        return group, group.in_port.id, group.out_port.id

    def residual(self, report: LayerReport, path: str, lead: str) -> Group:
        group = self.group("residual", f"{lead}{report.name} · residual", path)
        main = [c for c in report.children if c.role != "shortcut"]
        shortcut = next((c for c in report.children if c.role == "shortcut"), None)
        last, _ = self.wire_list(group, main, path + ".", (IN, group.in_port.id))
        act = report.plan.act.fn if report.plan is not None and report.plan.act else None
        drop = report.plan.drop_path if report.plan is not None else 0.0  # stochastic depth on the main path
        add = Node(
            self.new_id("n"), "add", "⊕ add" + (f" · drop_path {drop:g}" if drop else "") + (f" · {act}" if act else ""),
            _shape(report.output_shape),
            tooltip=f"{path}: " + (f"main path (dropped per sample with p={drop:g} in training)" if drop else "main path")
            + " + shortcut" + (f", then {act}" if act else ""),
        )
        if shortcut is not None:
            inner = self.group("shortcut", "shortcut", path + ".shortcut")
            self.close(inner, self.wire_list(inner, shortcut.children, path + ".shortcut.", (IN, inner.in_port.id))[0])
            index = len(group.items)
            group.items.append(inner)
            group.link(IN, index, group.in_port.id, inner.in_port.id)
            short_from: tuple[int, str] = (index, inner.out_port.id)
        else:
            short_from = (IN, group.in_port.id)  # the identity: the skip edge itself
        add_index = len(group.items)
        group.items.append(add)
        group.link(last[0], add_index, last[1], add.id)
        group.link(short_from[0], add_index, short_from[1], add.id)
        group.link(add_index, OUT, add.id, group.out_port.id)
        return group

    def repeat(self, report: LayerReport, path: str, lead: str) -> Group:
        times = len(report.children)
        group = self.group("repeat", f"{lead}{report.name} · repeat ×{times}", path)
        previous: tuple[int, str] = (IN, group.in_port.id)
        for run in copy_runs(report.children, self.collapse):
            first = run[0]
            span = first.name if len(run) == 1 else f"{first.name}–{run[-1].name}"
            label, badge = f"[{span}]", (f"×{len(run)}" if len(run) > 1 else "")
            copy_path = f"{path}.{first.name}"
            if len(first.children) == 1:  # a copy of one layer: that layer stands for the copy
                item, inlet, outlet = self.item(first.children[0], copy_path + ".", label, badge)
            else:
                item = self.group("copy", f"{report.name} {label}", copy_path)
                item.badge = badge
                self.close(item, self.wire_list(item, first.children, copy_path + ".", (IN, item.in_port.id))[0])
                inlet, outlet = item.in_port.id, item.out_port.id
            index = len(group.items)
            group.items.append(item)
            group.link(previous[0], index, previous[1], inlet)
            previous = (index, outlet)
        self.close(group, previous)
        return group


def diagram(report: Report, collapse: bool | None = None) -> Diagram:
    """The report as a laid-out diagram. `collapse`: None draws identical repeat copies once beyond COLLAPSE_FROM boxes."""
    if collapse is None:
        collapse = count_boxes(report.layers) > COLLAPSE_FROM
    builder = _Builder(collapse)
    root = Group("root", "root")
    source = Node("n_input", "input", f"input · {_shape(report.input_shape)}", tooltip=f"input {_shape(report.input_shape)}")
    root.items.append(source)
    _, produced = builder.wire_list(root, report.layers, "", (0, source.id))
    for number, (name, shape) in enumerate(report.outputs.items()):
        node = Node(f"n_output{number}", "output", f"output · {name} · {_shape(shape)}", name=name, tooltip=f"output {name} {_shape(shape)}")
        index = len(root.items)
        root.items.append(node)
        root.sinks.add(index)
        a, src = produced[name]
        root.link(a, index, src, node.id)
    spec = report.spec
    frozen = report.total_params - report.trainable_params
    subtitle = (
        f"input {_shape(report.input_shape)} · {report.total_params:,} parameters"
        + (f" ({frozen:,} frozen)" if frozen else "")
        + f" · {report.total_macs:,} MACs"
    )
    title = spec.name or (Path(spec.source.file).stem if not str(spec.source.file).startswith("<") else "network")
    result = Diagram(title, subtitle, root, collapse)
    _layout(result)
    return result


# ---------------------------------------------------------------- layout


def _text_width(text: str, size: float, bold: bool = False) -> float:
    return len(text) * size * (0.64 if bold else 0.58)


def _measure_node(node: Node) -> None:
    if node.is_port:
        node.w = node.h = 2 * PORT_R
        return
    width = max(_text_width(node.title, TITLE_SIZE, bold=True), _text_width(node.detail, DETAIL_SIZE))
    if node.badge:
        width += _text_width(node.badge, DETAIL_SIZE, bold=True) + 14
    if node.frozen:
        width += 16  # the lock
    node.w = max(MIN_NODE_W if node.kind == "layer" else 60, round(width + 2 * NODE_PAD))
    node.h = NODE_H if node.detail else PILL_H


def _rows(group: Group) -> list[int]:
    """Longest-path layering of a group's items; the sinks on a row of their own at the bottom."""
    preds: dict[int, list[int]] = {i: [] for i in range(len(group.items))}
    for link in group.links:
        if link.a >= 0 and link.b >= 0:
            preds[link.b].append(link.a)
    layer = [0] * len(group.items)
    for index in range(len(group.items)):  # items come after everything they read
        if index not in group.sinks:
            layer[index] = max((layer[p] + 1 for p in preds[index]), default=0)
    if group.sinks:
        bottom = max((layer[i] for i in range(len(group.items)) if i not in group.sinks), default=-1) + 1
        for index in group.sinks:
            layer[index] = bottom
    return layer


def _anchor(item: Node | Group) -> float:
    """The x (relative to the item's left) where edges meet it: a group's ports, a node's centre."""
    return item._axis if isinstance(item, Group) else item.w / 2


def _measure_group(group: Group) -> None:
    """Sizes, rows and relative positions of a group's items (recursively); positions relative to the group."""
    for item in group.items:
        _measure_group(item) if isinstance(item, Group) else _measure_node(item)
    if group.in_port:
        _measure_node(group.in_port)
        _measure_node(group.out_port)
    layer = _rows(group)
    count = max(layer, default=-1) + 1
    rows: list[list[int]] = [[] for _ in range(count)]
    for index, row in enumerate(layer):
        rows[row].append(index)
    preds: dict[int, list[int]] = {i: [] for i in range(len(group.items))}
    for link in group.links:
        if link.b >= 0:
            preds[link.b].append(link.a)
    centre: dict[int, float] = {}  # anchor x per item, around an axis at 0
    for row in rows:
        wanted = {}
        for index in row:
            xs = [0.0 if p == IN else centre[p] for p in preds[index] if p == IN or p in centre]
            wanted[index] = sum(xs) / len(xs) if xs else 0.0
        # items reached only by skips go right, where the skip lanes run; otherwise the list order among equals
        skipped = {i: bool(preds[i]) and all(p == IN or layer[i] - layer[p] > 1 for p in preds[i]) and layer[i] > 0 for i in row}
        row.sort(key=lambda i: (skipped[i], wanted[i]))
        if len(row) > 1 and all(not preds[i] or preds[i] == [IN] for i in row):
            # a fan-out from one source: spread around it
            total = sum(group.items[i].w for i in row) + H_GAP * (len(row) - 1)
            left = -total / 2
            for index in row:
                item = group.items[index]
                centre[index] = left + _anchor(item)
                left += item.w + H_GAP
            continue
        placed_right = None
        shifts = []
        for index in row:
            item = group.items[index]
            x = wanted[index]
            if placed_right is not None:
                x = max(x, placed_right + H_GAP + _anchor(item))
            centre[index] = x
            placed_right = x - _anchor(item) + item.w
            shifts.append(x - wanted[index])
        mean = sum(shifts) / len(shifts) if shifts else 0.0
        for index in row:
            centre[index] -= mean  # balance the pushes: a pair under one source sits either side of it
    left = min((centre[i] - _anchor(group.items[i]) for i in centre), default=0.0)
    right = max((centre[i] - _anchor(group.items[i]) + group.items[i].w for i in centre), default=0.0)
    framed = group.kind != "root"
    pad = FRAME_PAD if framed else 0.0
    top = FRAME_TOP + V_GAP * 0.75 if framed else 0.0
    left = min(left, -PORT_R)
    right = max(right, PORT_R)
    # the rows
    y = top
    group._row_top, group._row_bottom = [], []
    for row in rows:
        height = max((group.items[i].h for i in row), default=0.0)
        group._row_top.append(y)
        group._row_bottom.append(y + height)
        for index in row:
            item = group.items[index]
            item.x = pad + (centre[index] - _anchor(item)) - left
            item.y = y
        y += height + V_GAP
    content_bottom = group._row_bottom[-1] if rows else top
    group._rows = rows
    group._axis = pad - left
    group._content_right = pad + right - left
    layer_of = {i: r for r, row in enumerate(rows) for i in row}
    long_links = [link for link in group.links if _span(link, layer_of, count) > 1]
    group._lanes = len(long_links)
    width = group._content_right + (group._lanes * LANE_GAP + (LANE_GAP / 2 if group._lanes else 0)) + pad
    if framed:  # the title sits right of the entry port, whose edges run straight down the axis
        title = group._axis + TITLE_OFFSET + _text_width(group.title, FRAME_SIZE, bold=True) + FRAME_PAD
        if group.badge:
            title += _text_width(group.badge, FRAME_SIZE, bold=True) + 18
        width = max(width, title)
    group.w = width
    group.h = content_bottom + (FRAME_BOTTOM + V_GAP * 0.5 if framed else 0.0)


def _span(link: _Link, layer_of: dict[int, int], count: int) -> int:
    a = -1 if link.a == IN else layer_of[link.a]
    b = count if link.b == OUT else layer_of[link.b]
    return b - a


def _place(group: Group, x: float, y: float) -> None:
    """Make positions absolute and route the group's edges."""
    group.x, group.y = x, y
    for item in group.items:
        item.x += x
        item.y += y
        if isinstance(item, Group):
            _place(item, item.x, item.y)
    if group.in_port:
        group.in_port.x, group.in_port.y = x + group._axis - PORT_R, y - PORT_R
        group.out_port.x, group.out_port.y = x + group._axis - PORT_R, y + group.h - PORT_R
    _route(group)


def _route(group: Group) -> None:
    rows = group._rows
    count = len(rows)
    layer_of = {i: r for r, row in enumerate(rows) for i in row}
    long_links = sorted(
        (link for link in group.links if _span(link, layer_of, count) > 1), key=lambda link: _span(link, layer_of, count)
    )
    lane_of = {id(link): number for number, link in enumerate(long_links)}
    lane_x0 = group.x + group._content_right + LANE_GAP / 2
    # several edges into one box meet its top side side by side, in the order they come from
    arrivals: dict[int, list[_Link]] = {}
    for link in group.links:
        if link.b >= 0 and isinstance(group.items[link.b], Node):
            arrivals.setdefault(link.b, []).append(link)
    end_x: dict[int, float] = {}
    for index, links in arrivals.items():
        if len(links) < 2:
            continue
        target = group.items[index]

        def comes_from(link: _Link) -> float:
            if id(link) in lane_of:
                return float("inf")
            source = group.in_port if link.a == IN else group.items[link.a]
            return source.x + (PORT_R if link.a == IN else _anchor(source))

        links.sort(key=comes_from)
        step = min(16.0, (target.w - 24) / (len(links) - 1))
        for number, link in enumerate(links):
            end_x[id(link)] = target.x + target.w / 2 + (number - (len(links) - 1) / 2) * step
    # a split's parts leave its bottom side side by side, ordered by where they go (skips, on the right, last)
    departures: dict[int, list[_Link]] = {}
    for link in group.links:
        if link.a >= 0 and link.edge.label:
            departures.setdefault(link.a, []).append(link)
    start_x: dict[int, float] = {}
    for index, links in departures.items():
        if len(links) < 2:
            continue
        source = group.items[index]

        def goes_to(link: _Link) -> tuple[float, str]:
            if id(link) in lane_of or link.b == OUT:
                return float("inf"), link.edge.label
            target = group.items[link.b]
            return target.x + _anchor(target), link.edge.label

        links.sort(key=goes_to)
        step = min(22.0, (source.w - 24) / (len(links) - 1))
        for number, link in enumerate(links):
            start_x[id(link)] = source.x + source.w / 2 + (number - (len(links) - 1) / 2) * step
    for link in group.links:
        a = group.in_port if link.a == IN else group.items[link.a]
        b = group.out_port if link.b == OUT else group.items[link.b]
        if link.a == IN:
            start = (a.x + PORT_R, a.y + PORT_R)
        else:
            start = (start_x.get(id(link), a.x + _anchor(a)), a.y + a.h)
        if link.b == OUT:
            end = (b.x + PORT_R, b.y + PORT_R)
        else:
            end = (end_x.get(id(link), b.x + _anchor(b)), b.y)
        edge = link.edge
        edge.to_port = link.b == OUT or isinstance(b, Group)
        if id(link) not in lane_of:
            edge.curved = True
            if link.a == IN:  # straight down past the frame's title, then the curve
                edge.points = [start, (start[0], group.y + FRAME_TOP), end]
            else:
                edge.points = [start, end]
            continue
        lane = lane_of[id(link)]
        x_lane = lane_x0 + LANE_GAP * (lane + 1)
        nudge = (lane % 3) * 3  # edges that share a gap do not share a line
        if link.a == IN:
            y_out = group.y + group._row_top[0] - V_GAP * 0.3 + nudge
        else:
            y_out = group.y + group._row_bottom[layer_of[link.a]] + V_GAP * 0.35 + nudge
        if link.b == OUT:
            y_in = group.y + group._row_bottom[-1] + V_GAP * 0.35 + nudge
        else:
            y_in = group.y + group._row_top[layer_of[link.b]] - V_GAP * 0.55 + nudge
        edge.points = [start, (start[0], y_out), (x_lane, y_out), (x_lane, y_in), (end[0], y_in), end]
        edge.curved = False


def _layout(result: Diagram) -> None:
    root = result.root
    _measure_group(root)
    header = 44
    title_w = max(_text_width(result.title, 16, bold=True), _text_width(result.subtitle, DETAIL_SIZE)) + 2 * MARGIN
    result.width = round(max(root.w + 2 * MARGIN, title_w, 480))
    _place(root, (result.width - root.w) / 2, MARGIN + header)  # centred under the header
    result.legend_top = MARGIN + header + root.h + 24
    rows = len(_legend_rows(result, result.width - 2 * MARGIN))
    result.height = round(result.legend_top + rows * LEGEND_ROW + MARGIN)


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
        cx, cy = node.x + PORT_R, node.y + PORT_R
        return [f'<circle class="port" id="{node.id}" cx="{_f(cx)}" cy="{_f(cy)}" r="{PORT_R}" fill="#6e7781"/>']
    classes = ["node", node.kind] + (["frozen"] if node.frozen else [])
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
    out.append(f'<rect x="{_f(x)}" y="{_f(y)}" width="{_f(w)}" height="{_f(h)}" rx="{_f(radius)}" fill="{fill}" stroke="{stroke}" stroke-width="{width}"/>')
    if node.frozen:
        out.append(f'<rect x="{_f(x)}" y="{_f(y)}" width="{_f(w)}" height="{_f(h)}" rx="{radius}" fill="url(#hatch)"/>')
        out.append(_lock(x + w - 16, y + 5))
    centre = x + w / 2 - (8 if node.frozen else 0) - (_text_width(node.badge, DETAIL_SIZE, True) / 2 + 7 if node.badge else 0)
    if node.detail:
        out.append(f'<text class="title" x="{_f(centre)}" y="{_f(y + 16)}" text-anchor="middle">{escape(node.title)}</text>')
        out.append(f'<text class="detail" x="{_f(centre)}" y="{_f(y + 30)}" text-anchor="middle">{escape(node.detail)}</text>')
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
    dashed = f' stroke-dasharray="{dash}"' if dash else ""
    out = [f'<g class="frame {group.kind}" {_attr(id=group.id, data_path=group.path)}>']
    out.append(
        f'<rect x="{_f(group.x)}" y="{_f(group.y)}" width="{_f(group.w)}" height="{_f(group.h)}" rx="8" '
        f'fill="{fill}" stroke="{stroke}" stroke-width="1.2"{dashed}/>'
    )
    out.append(f'<text class="title" x="{_f(group.x + group._axis + TITLE_OFFSET)}" y="{_f(group.y + 16)}">{escape(group.title)}</text>')
    if group.badge:
        out.extend(_badge(group.badge, group.x + group.w - 6, group.y + 5))
    out.append("</g>")
    return out


LEGEND_ROW = 22


def _legend_entries(result: Diagram) -> list[tuple[str, str]]:
    """(symbol, text) for what this diagram shows."""
    entries: list[tuple[str, str]] = []
    if any(n.frozen for n in result.layers()):
        entries.append(("frozen", "frozen: not trained (fixed filter or trainable: false)"))
    groups = result.groups()
    if any(g.kind == "residual" for g in groups):
        entries.append(("add", "residual: main path + shortcut, added"))
    if groups:
        entries.append(("port", "group entry / exit"))
    if any(not edge.curved for edge in result.edges()):
        entries.append(("lane", "skip connection"))
    if any(g.badge for g in groups) or any(n.badge for n in result.layers()):
        entries.append(("badge", "identical repeat copies, drawn once"))
    return entries


_SYMBOL_W = {"frozen": 32, "add": 32, "port": 14, "lane": 30, "badge": 32}


def _legend_rows(result: Diagram, width: float) -> list[list[tuple[str, str]]]:
    rows: list[list[tuple[str, str]]] = [[]]
    used = 0.0
    for kind, text in _legend_entries(result):
        need = _SYMBOL_W[kind] + _text_width(text, DETAIL_SIZE) + 22
        if rows[-1] and used + need > width:
            rows.append([])
            used = 0.0
        rows[-1].append((kind, text))
        used += need
    return [row for row in rows if row]


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
            x += _SYMBOL_W[kind]
            out.append(f'<text x="{_f(x)}" y="{_f(y + 12)}">{escape(text)}</text>')
            x += _text_width(text, DETAIL_SIZE) + 22
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
    out.append("</svg>")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- Mermaid


def _mermaid_text(text: str) -> str:
    """Text inside a quoted Mermaid label: quotes and markup as entity codes."""
    return text.replace("#", "#35;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def to_mermaid(result: Diagram) -> str:
    """The diagram as a Mermaid `flowchart TD`: the same nodes, groups (subgraphs) and edges as the SVG."""
    out = [f"%% {_mermaid_text(result.title)}: {_mermaid_text(result.subtitle)}", "flowchart TD"]
    frozen: list[str] = []
    ports: list[str] = []

    def node_line(node: Node, indent: str) -> str:
        if node.is_port:
            ports.append(node.id)
            return f'{indent}{node.id}((" "))'
        title = _mermaid_text(node.title)
        if node.badge:
            title += f" {_mermaid_text(node.badge)}"
        if node.frozen:
            frozen.append(node.id)
            title = "🔒 " + title
        label = f"<b>{title}</b>" + (f"<br/>{_mermaid_text(node.detail)}" if node.detail else "")
        if node.kind in ("input", "output"):
            return f'{indent}{node.id}(["{label}"])'
        if node.kind == "add":
            return f'{indent}{node.id}(("{label}"))'
        return f'{indent}{node.id}["{label}"]'

    def visit(group: Group, depth: int) -> None:
        indent = "  " * depth
        for item in group.items:
            if isinstance(item, Group):
                title = _mermaid_text(item.title + (f" {item.badge}" if item.badge else ""))
                out.append(f'{indent}subgraph {item.id}["{title}"]')
                out.append(f"{indent}  direction TB")
                out.append(node_line(item.in_port, indent + "  "))
                visit(item, depth + 1)
                out.append(node_line(item.out_port, indent + "  "))
                out.append(f"{indent}end")
            else:
                out.append(node_line(item, indent))

    visit(result.root, 1)
    for edge in result.edges():
        label = f'|"{_mermaid_text("." + edge.label)}"|' if edge.label else ""
        out.append(f"  {edge.src} -->{label} {edge.dst}")
    out.append("  classDef frozen fill:#eeeeee,stroke:#3d434a,stroke-dasharray:3 3")
    out.append("  classDef port fill:#6e7781,stroke:#6e7781,color:#6e7781")
    if frozen:
        out.append(f"  class {','.join(frozen)} frozen")
    if ports:
        for start in range(0, len(ports), 40):  # keep lines short
            out.append(f"  class {','.join(ports[start:start + 40])} port")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- entry points


def render(report: Report, fmt: str = "svg", collapse: bool | None = None) -> str:
    """A valid report as an SVG document or a Mermaid flowchart."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown diagram format {fmt!r}; use one of: {', '.join(FORMATS)}")
    report.raise_for_errors()
    result = diagram(report, collapse)
    return to_svg(result) if fmt == "svg" else to_mermaid(result)

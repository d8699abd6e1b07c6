"""The diagram of a network as a tree, from the checker's report alone: groups, boxes, edges and their labels.

No torch. `tree` makes the tree; `draw_layout.layout` places it; `draw.to_svg` and
`draw.to_mermaid` write it. See `draw.py` for what is drawn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .draw_labels import layer_path, operation, sample_shape as _shape
from .plans import FixedPlan
from .report import LayerReport, Report

COLLAPSE_FROM = 40  # boxes (layers and residual adds); beyond this, identical repeat copies are drawn once

IN, OUT = -1, -2  # a group's entry and exit ports, as item indices in its own list


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
    operation: str = ""  # what it computes: "3x3/2 · bn · relu" (`draw_labels.operation`)
    error: bool = False  # a layer the checker found wrong
    hidden: bool = False  # a port no edge branches at: its edges pass straight through, no dot
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
    connector: bool = False  # from one column of the root to the next


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
    error: bool = False  # a group the checker found wrong
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
    _lane_base: dict[int, float] = field(default_factory=dict)  # row -> right edge of its column's content (the root's columns)
    _column_of_row: dict[int, int] = field(default_factory=dict)
    _column_right: list[float] = field(default_factory=list)  # each column's right edge, lanes included
    _connectors: list[_Link] = field(default_factory=list)  # links from one column to the next

    def link(self, a: int, b: int, src: str, dst: str, label: str = "") -> None:
        self.links.append(_Link(Edge(src, dst, label), a, b))


@dataclass
class Diagram:
    """The network as groups, nodes and edges, laid out."""

    title: str
    subtitle: str
    root: Group
    collapsed: bool
    problems: list[str] = field(default_factory=list)  # the checker's findings, one line each, for an invalid spec
    direction: str = "TB"  # "TB": top to bottom, long chains wrapped into columns; "LR": the top level left to right
    columns: list[list[int]] = field(default_factory=list)  # root rows per column, once laid out
    width: float = 0.0
    height: float = 0.0
    legend_top: float = 0.0
    problems_top: float = 0.0
    problem_lines: list[list[str]] = field(default_factory=list)  # each problem wrapped to the width

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
    def __init__(self, collapse: bool, templates: dict[tuple, str], wrong: set[tuple]):
        self.collapse = collapse
        self.templates = templates  # data path -> the block template written there (`use`)
        self.wrong = wrong  # data paths of layers with problems
        self.count = 0

    def kind_text(self, report: LayerReport, kind: str) -> str:
        """'residual', or 'basic (residual)' for a layer made from the block template `basic`."""
        template = self.templates.get(tuple(report.path)) if report.role == "layer" else None
        return f"{template} ({kind})" if template else kind

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
                elif source.partition(".")[0] in produced:  # a split's part, NAME.i: an edge from the split, labelled
                    base, _, part = source.partition(".")
                    a, src = produced[base]
                    group.link(a, index, src, inlet, part)
                # else: a name an invalid spec reads but never makes; its problem is listed
            produced[report.name] = last = (index, outlet)
        return last, produced

    def close(self, group: Group, last: tuple[int, str]) -> None:
        group.link(last[0], OUT, last[1], group.out_port.id)

    def item(self, report: LayerReport, prefix: str, label: str = "", badge: str = "") -> tuple[Node | Group, str, str]:
        """One layer as an item: (item, the endpoint its inputs go to, the endpoint its output comes from)."""
        path = prefix + report.name
        lead = f"{label} " if label else ""
        if report.type == "block":
            group = self.group("block", f"{lead}{report.name} · {self.kind_text(report, 'block')}", path)
            self.close(group, self.wire_list(group, report.children, path + ".", (IN, group.in_port.id))[0])
        elif report.type == "residual":
            group = self.residual(report, path, lead)
        elif report.type == "repeat":
            group = self.repeat(report, path, lead)
        else:
            node = Node(
                self.new_id("n"), "layer", f"{report.name} · {self.kind_text(report, report.type)}", _detail(report), report.name,
                path, report.type, is_frozen(report), badge, _tooltip(report, path), operation(report),
                error=tuple(report.path) in self.wrong,
            )
            if label:
                node.title = f"{label} {node.title}"
            return node, node.id, node.id
        group.badge = badge
        group.error = tuple(report.path) in self.wrong and report.role == "layer"
        return group, group.in_port.id, group.out_port.id

    def residual(self, report: LayerReport, path: str, lead: str) -> Group:
        group = self.group("residual", f"{lead}{report.name} · {self.kind_text(report, 'residual')}", path)
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
        group = self.group("repeat", f"{lead}{report.name} · {self.kind_text(report, f'repeat ×{times}')}", path)
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



def tree(report: Report, collapse: bool | None = None, direction: str = "TB") -> Diagram:
    """The report as a tree of groups and boxes, not yet placed (`draw_layout.layout` places it).

    `collapse`: None draws identical repeat copies once beyond COLLAPSE_FROM boxes. A report
    with errors (the partial report of an invalid spec) is drawn too: the layers its problems
    name are marked, and the problems listed.
    """
    if collapse is None:
        collapse = count_boxes(report.layers) > COLLAPSE_FROM
    spec = report.spec
    wrong = {path for path in (layer_path(p.layer) for p in report.errors) if path is not None}
    builder = _Builder(collapse, dict(getattr(spec.source, "templates", {}) or {}), wrong)
    root = Group("root", "root")
    source = Node("n_input", "input", f"input · {_shape(report.input_shape)}", tooltip=f"input {_shape(report.input_shape)}")
    root.items.append(source)
    _, produced = builder.wire_list(root, report.layers, "", (0, source.id))
    for number, (name, shape) in enumerate(report.outputs.items()):
        if name not in produced:  # an output an invalid spec names but does not make
            continue
        node = Node(f"n_output{number}", "output", f"output · {name} · {_shape(shape)}", name=name, tooltip=f"output {name} {_shape(shape)}")
        index = len(root.items)
        root.items.append(node)
        root.sinks.add(index)
        a, src = produced[name]
        root.link(a, index, src, node.id)
    frozen = report.total_params - report.trainable_params
    batch = report.input_shape[0] if report.input_shape else 1
    axes = {3: "C×L", 4: "C×H×W", 5: "C×D×H×W"}.get(len(report.input_shape or ()), "C×…")
    subtitle = (
        f"batch {batch} · shapes {axes} · {report.total_params:,} parameters"
        + (f" ({frozen:,} frozen)" if frozen else "")
        + f" · {report.total_macs:,} MACs"
    )
    problems = [str(problem) for problem in report.errors]
    if problems:
        subtitle = f"invalid: {len(problems)} problem{'s' if len(problems) != 1 else ''} · " + subtitle
    title = spec.name or (Path(spec.source.file).stem if not str(spec.source.file).startswith("<") else "network")
    return Diagram(title, subtitle, root, collapse, problems, direction)

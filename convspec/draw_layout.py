"""Where everything of a diagram goes: sizes, rows, positions, edge routes. No torch, no layout engine.

Each list is laid out on its own, inner lists first:

- layering: each item one row below the lowest item it reads (longest path);
- ordering: row by row, each item near the mean x of what it reads, kept apart;
- edges between neighbouring rows are curves; longer ones (skips) run down
  lanes to the right of the list, shorter spans nearer, so they nest.
"""

from __future__ import annotations

from .draw_model import IN, OUT, Diagram, Group, Node, _Link

# geometry, in px
TITLE_SIZE, DETAIL_SIZE, FRAME_SIZE = 12, 11, 11
NODE_H, PILL_H = 38, 28
NODE_PAD, MIN_NODE_W = 10, 96
H_GAP, V_GAP = 18, 26  # between items of a row, between rows
FRAME_PAD, FRAME_TOP, FRAME_BOTTOM = 10, 22, 8  # inside a frame: sides, title band, below the last row
LANE_GAP = 12  # between skip lanes
TITLE_OFFSET = 10  # a frame's title, right of its entry port
PORT_R = 3.5
MARGIN = 16


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


def layout(result: Diagram) -> None:
    """Sizes and positions of every item of `result`, its edges' routes, and its width and height (px)."""
    root = result.root
    _measure_group(root)
    header = 44
    title_w = max(_text_width(result.title, 16, bold=True), _text_width(result.subtitle, DETAIL_SIZE)) + 2 * MARGIN
    result.width = round(max(root.w + 2 * MARGIN, title_w, 480))
    _place(root, (result.width - root.w) / 2, MARGIN + header)  # centred under the header
    result.legend_top = MARGIN + header + root.h + 24
    rows = len(_legend_rows(result, result.width - 2 * MARGIN))
    result.height = round(result.legend_top + rows * LEGEND_ROW + MARGIN)



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


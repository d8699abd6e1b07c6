"""Where everything of a diagram goes: sizes, rows, positions, edge routes. No torch, no layout engine.

Each list is laid out on its own, inner lists first:

- layering: each item one row below the lowest item it reads (longest path);
- ordering: row by row, each item near the mean x of what it reads, kept apart;
- edges between neighbouring rows are curves; longer ones (skips) run down
  lanes to the right of the list, shorter spans nearer, so they nest.
"""

from __future__ import annotations

import math

from .draw_model import IN, OUT, Diagram, Group, Node, _Link

Point = tuple[float, float]  # (x, y) in px

# geometry, in px
TITLE_SIZE, DETAIL_SIZE, FRAME_SIZE = 12, 11, 11
NODE_H, PILL_H = 38, 28
LINE_H = 14  # one more line of detail in a box
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
    width = max(
        _text_width(node.title, TITLE_SIZE, bold=True), _text_width(node.detail, DETAIL_SIZE), _text_width(node.operation, DETAIL_SIZE)
    )
    if node.badge:
        width += _text_width(node.badge, DETAIL_SIZE, bold=True) + 14
    if node.frozen:
        width += 16  # the lock
    node.w = max(MIN_NODE_W if node.kind == "layer" else 60, round(width + 2 * NODE_PAD))
    node.h = (NODE_H + LINE_H if node.operation else NODE_H) if node.detail else PILL_H


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


def _measure_items(group: Group) -> None:
    """Sizes of a group's items (inner groups measured whole, recursively) and of its ports."""
    for item in group.items:
        _measure_group(item) if isinstance(item, Group) else _measure_node(item)
    if group.in_port:
        _measure_node(group.in_port)
        _measure_node(group.out_port)


def _place_row(group: Group, row: list[int], wanted: dict[int, float], fan_out: bool, centre: dict[int, float]) -> None:
    """Anchor x of each item of `row` (in order) into `centre`: each near its `wanted` x, none overlapping.

    A fan-out from one source is spread evenly around it; otherwise items are pushed right
    as far as their left neighbour needs, and the row is then moved back by the mean push.
    """
    items = [group.items[index] for index in row]
    if fan_out:
        left = -(sum(item.w for item in items) + H_GAP * (len(row) - 1)) / 2
        for index, item in zip(row, items):
            centre[index] = left + _anchor(item)
            left += item.w + H_GAP
        return
    placed_right = None
    shifts = []
    for index, item in zip(row, items):
        x = wanted[index]
        if placed_right is not None:
            x = max(x, placed_right + H_GAP + _anchor(item))
        centre[index] = x
        placed_right = x - _anchor(item) + item.w
        shifts.append(x - wanted[index])
    mean = sum(shifts) / len(shifts) if shifts else 0.0
    for index in row:
        centre[index] -= mean  # balance the pushes: a pair under one source sits either side of it


def _centres(group: Group, rows: list[list[int]], layer: list[int]) -> dict[int, float]:
    """Each item's anchor x around an axis at 0, row by row, near the mean x of what it reads; sorts `rows` in place."""
    preds: dict[int, list[int]] = {i: [] for i in range(len(group.items))}
    for link in group.links:
        if link.b >= 0:
            preds[link.b].append(link.a)
    centre: dict[int, float] = {}
    for row in rows:
        wanted = {}
        for index in row:
            xs = [0.0 if p == IN else centre[p] for p in preds[index] if p == IN or p in centre]
            wanted[index] = sum(xs) / len(xs) if xs else 0.0
        # items reached only by skips go right, where the skip lanes run; otherwise the list order among equals
        skipped = {i: bool(preds[i]) and all(p == IN or layer[i] - layer[p] > 1 for p in preds[i]) and layer[i] > 0 for i in row}
        row.sort(key=lambda i: (skipped[i], wanted[i]))
        fan_out = len(row) > 1 and all(not preds[i] or preds[i] == [IN] for i in row)
        _place_row(group, row, wanted, fan_out, centre)
    return centre


def _stack_rows(group: Group, rows: list[list[int]], centre: dict[int, float], pad: float, left: float, top: float) -> None:
    """Item positions relative to the group, rows stacked down from `top`, the leftmost item's left edge at `pad`."""
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


def _frame_width(group: Group, content_width: float) -> float:
    """A frame wide enough for its content and for its title, which sits right of the entry port."""
    title = group._axis + TITLE_OFFSET + _text_width(group.title, FRAME_SIZE, bold=True) + FRAME_PAD
    if group.badge:
        title += _text_width(group.badge, FRAME_SIZE, bold=True) + 18
    return max(content_width, title)


def _measure_group(group: Group) -> None:
    """Sizes, rows and relative positions of a group's items (recursively); positions relative to the group."""
    _measure_items(group)
    layer = _rows(group)
    count = max(layer, default=-1) + 1
    rows: list[list[int]] = [[] for _ in range(count)]
    for index, row in enumerate(layer):
        rows[row].append(index)
    centre = _centres(group, rows, layer)
    left = min((centre[i] - _anchor(group.items[i]) for i in centre), default=0.0)
    right = max((centre[i] - _anchor(group.items[i]) + group.items[i].w for i in centre), default=0.0)
    framed = group.kind != "root"
    pad = FRAME_PAD if framed else 0.0
    top = FRAME_TOP + V_GAP * 0.75 if framed else 0.0
    left = min(left, -PORT_R)
    right = max(right, PORT_R)
    _stack_rows(group, rows, centre, pad, left, top)
    content_bottom = group._row_bottom[-1] if rows else top
    group._rows = rows
    group._axis = pad - left
    group._content_right = pad + right - left
    layer_of = _layer_of(rows)
    group._lanes = sum(1 for link in group.links if _span(link, layer_of, count) > 1)
    width = group._content_right + _lanes_width(group._lanes) + pad
    group.w = _frame_width(group, width) if framed else width  # the entry port's edges run straight down the axis
    group.h = content_bottom + (FRAME_BOTTOM + V_GAP * 0.5 if framed else 0.0)


def _layer_of(rows: list[list[int]]) -> dict[int, int]:
    """The row of each item index, from the rows' lists of indices."""
    return {i: r for r, row in enumerate(rows) for i in row}


def _lanes_width(lanes: int) -> float:
    """The width (px) right of a list's content taken by `lanes` skip lanes."""
    return lanes * LANE_GAP + LANE_GAP / 2 if lanes else 0.0


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


def _row_of(index: int, layer_of: dict[int, int]) -> int:
    return -1 if index == IN else layer_of[index]


def _lanes(group: Group, layer_of: dict[int, int]) -> dict[int, int]:
    """The lane of each skip (by the link's id), shorter spans nearer the list; each of the root's columns has its own lanes."""
    count = len(group._rows)
    long_links = sorted(
        (link for link in group.links if _span(link, layer_of, count) > 1), key=lambda link: _span(link, layer_of, count)
    )
    lane_of: dict[int, int] = {}
    lanes_used: dict[int, int] = {}  # per column
    for link in long_links:
        column = group._column_of_row.get(_row_of(link.a, layer_of), 0)
        lane_of[id(link)] = lanes_used.get(column, 0)
        lanes_used[column] = lane_of[id(link)] + 1
    return lane_of


def _side_by_side(item: Node, links: list[_Link], max_step: float) -> dict[int, float]:
    """The x of each of `links` (by id) on one side of `item`, in their order, centred and at most `max_step` apart."""
    step = min(max_step, (item.w - 24) / (len(links) - 1))
    return {id(link): item.x + item.w / 2 + (number - (len(links) - 1) / 2) * step for number, link in enumerate(links)}


def _arrival_x(group: Group, lane_of: dict[int, int]) -> dict[int, float]:
    """Where edges end when several enter one box: its top side, side by side, in the order they come from."""
    arrivals: dict[int, list[_Link]] = {}
    for link in group.links:
        if link.b >= 0 and isinstance(group.items[link.b], Node):
            arrivals.setdefault(link.b, []).append(link)

    def comes_from(link: _Link) -> float:
        if id(link) in lane_of:
            return float("inf")
        source = group.in_port if link.a == IN else group.items[link.a]
        return source.x + (PORT_R if link.a == IN else _anchor(source))

    end_x: dict[int, float] = {}
    for index, links in arrivals.items():
        if len(links) >= 2:
            end_x.update(_side_by_side(group.items[index], sorted(links, key=comes_from), 16.0))
    return end_x


def _departure_x(group: Group, lane_of: dict[int, int]) -> dict[int, float]:
    """Where a split's parts start: its bottom side, side by side, ordered by where they go (skips, on the right, last)."""
    departures: dict[int, list[_Link]] = {}
    for link in group.links:
        if link.a >= 0 and link.edge.label:
            departures.setdefault(link.a, []).append(link)

    def goes_to(link: _Link) -> tuple[float, str]:
        if id(link) in lane_of or link.b == OUT:
            return float("inf"), link.edge.label
        target = group.items[link.b]
        return target.x + _anchor(target), link.edge.label

    start_x: dict[int, float] = {}
    for index, links in departures.items():
        if len(links) >= 2:
            start_x.update(_side_by_side(group.items[index], sorted(links, key=goes_to), 22.0))
    return start_x


def _lane_points(group: Group, link: _Link, start: Point, end: Point, lane: int, layer_of: dict[int, int]) -> list[Point]:
    """A skip's route: down out of its source's row, right to its lane, down the lane, left above its target's row, in."""
    x_lane = group.x + group._lane_base.get(_row_of(link.a, layer_of), group._content_right) + LANE_GAP / 2 + LANE_GAP * (lane + 1)
    nudge = (lane % 3) * 3  # edges that share a gap do not share a line
    if link.a == IN:
        y_out = group.y + group._row_top[0] - V_GAP * 0.3 + nudge
    else:
        y_out = group.y + group._row_bottom[layer_of[link.a]] + V_GAP * 0.35 + nudge
    if link.b == OUT:
        y_in = group.y + group._row_bottom[-1] + V_GAP * 0.35 + nudge
    else:
        y_in = group.y + group._row_top[layer_of[link.b]] - V_GAP * 0.55 + nudge
    return [start, (start[0], y_out), (x_lane, y_out), (x_lane, y_in), (end[0], y_in), end]


def _route(group: Group) -> None:
    """Every edge of a group's list: curves between neighbouring rows, skips down their lanes (absolute px)."""
    layer_of = _layer_of(group._rows)
    lane_of = _lanes(group, layer_of)
    end_x = _arrival_x(group, lane_of)
    start_x = _departure_x(group, lane_of)
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
        edge.curved = id(link) not in lane_of
        if not edge.curved:
            edge.points = _lane_points(group, link, start, end, lane_of[id(link)], layer_of)
        elif link.a == IN:  # straight down past the frame's title, then the curve
            edge.points = [start, (start[0], group.y + FRAME_TOP), end]
        else:
            edge.points = [start, end]


COLUMN_GAP = 40  # between the root's columns, where the connectors run
TARGET_RATIO = 1.0  # height over width a wrapped diagram aims at
CONNECTOR_SPACE = V_GAP  # above and below the columns, for the connectors' horizontal runs
PROBLEM_LINE = 15


MAX_COLUMNS = 16  # tried for "TB": more would be a strip across instead of down


def _pack(heights: list[float], allowed: list[bool], limit: float) -> list[list[int]] | None:
    """Rows in as few columns of at most `limit` as the allowed cuts permit, or None if a run of rows
    that cannot be cut is taller. Greedy: each column is cut at the last allowed place that keeps it
    within `limit`, which never needs more columns than any other choice (an exchange argument)."""
    columns: list[list[int]] = []
    start = 0
    while start < len(heights):
        used, cut = 0.0, None
        for row in range(start, len(heights)):
            used += heights[row]
            if used > limit + 1e-6:
                break
            if row == len(heights) - 1 or allowed[row]:
                cut = row
        if cut is None:
            return None
        columns.append(list(range(start, cut + 1)))
        start = cut + 1
    return columns


def _column_plan(root: Group, count: int, allowed: list[bool]) -> list[list[int]]:
    """Rows of the root in at most `count` columns, the tallest as short as it can be (within a pixel),
    cut only where `allowed`: the linear partition problem, by bisection on the tallest column's height."""
    heights = [root._row_bottom[r] - root._row_top[r] + V_GAP for r in range(len(root._rows))]
    low, high = max(heights), sum(heights)
    best = _pack(heights, allowed, high)
    while high - low > 1.0:
        middle = (low + high) / 2
        packed = _pack(heights, allowed, middle)
        if packed is not None and len(packed) <= count:
            best, high = packed, middle
        else:
            low = middle
    return best


def _column_extent(root: Group, rows: list[int], lanes: int) -> tuple[float, float, float]:
    """(left, right, height) of a column's items, relative to the root; right includes its skip lanes."""
    items = [root.items[i] for r in rows for i in root._rows[r]]
    left = min(item.x for item in items)
    right = max(item.x + item.w for item in items)
    if lanes:
        right += lanes * LANE_GAP + LANE_GAP / 2
    height = root._row_bottom[rows[-1]] - root._row_top[rows[0]]
    return left, right, height


def _allowed_cuts(root: Group, layer_of: dict[int, int]) -> list[bool]:
    """For each gap between two rows of the root: may a column end there (one edge crosses it, joining neighbouring rows)?"""
    count = len(root._rows)
    allowed = []
    for cut in range(count - 1):
        crossing = [l for l in root.links if layer_of[l.a] <= cut < layer_of[l.b]]
        allowed.append(len(crossing) == 1 and _span(crossing[0], layer_of, count) == 1)
    allowed[0] = allowed[-1] = False  # the input starts a column, the outputs end one: never a column of their own
    return allowed


class _Columns:
    """The root's rows cut into columns: each column's extent, and the width and height of them side by side."""

    def __init__(self, root: Group, layer_of: dict[int, int], long_links: list[_Link], columns: list[list[int]]):
        self.columns = columns
        self.lanes = [sum(1 for l in long_links if layer_of[l.a] in set(column)) for column in columns]
        self.extents = [_column_extent(root, column, lanes) for column, lanes in zip(columns, self.lanes)]
        self.width = sum(right - left for left, right, _ in self.extents) + COLUMN_GAP * (len(columns) - 1)
        self.height = max(h for _, _, h in self.extents)


def _choose_columns(result: Diagram, layer_of: dict[int, int], long_links: list[_Link]) -> _Columns:
    """The columns to draw: for "LR" cut wherever allowed; for "TB" the count (up to MAX_COLUMNS) whose
    height over width is nearest TARGET_RATIO."""
    root = result.root
    count = len(root._rows)
    allowed = _allowed_cuts(root, layer_of)
    if result.direction == "LR":
        return _Columns(root, layer_of, long_links, _column_plan(root, count, allowed))
    best, best_score = None, None
    for wanted in range(1, min(count, MAX_COLUMNS) + 1):
        columns = _Columns(root, layer_of, long_links, _column_plan(root, wanted, allowed))
        score = abs(math.log(max(columns.height, 1.0) / max(columns.width, 1.0) / TARGET_RATIO))
        if best_score is None or score < best_score - 1e-9:
            best, best_score = columns, score
    return best


def _move_into_columns(root: Group, chosen: _Columns) -> None:
    """Shift each column's rows right of the previous column and up to the top; note each row's column and lane base."""
    top0 = root._row_top[0]
    x = 0.0
    for number, (column, (left, right, _), lanes) in enumerate(zip(chosen.columns, chosen.extents, chosen.lanes)):
        dx = x - left
        dy = CONNECTOR_SPACE - (root._row_top[column[0]] - top0)
        for row in column:
            for index in root._rows[row]:
                root.items[index].x += dx
                root.items[index].y += dy
            root._row_top[row] += dy
            root._row_bottom[row] += dy
            root._column_of_row[row] = number
            root._lane_base[row] = x + (right - left) - _lanes_width(lanes)
        root._column_right.append(x + right - left)
        x += right - left + COLUMN_GAP


def _wrap_columns(result: Diagram) -> None:
    """Lay the root's rows out in columns, left to right: a long chain wrapped so the picture's ratio is sane.

    A cut goes only between two rows joined by one edge between neighbouring rows (no skip crosses
    it); that edge becomes a connector, routed down, across the gap and into the next column's top.
    "TB" picks the number of columns whose height over width is nearest TARGET_RATIO; "LR" cuts
    wherever it may, so the top level reads left to right.
    """
    root = result.root
    if len(root._rows) < 2:
        return
    layer_of = _layer_of(root._rows)
    long_links = [l for l in root.links if _span(l, layer_of, len(root._rows)) > 1]
    chosen = _choose_columns(result, layer_of, long_links)
    if len(chosen.columns) < 2:
        return
    _move_into_columns(root, chosen)
    root._connectors = [l for l in root.links if root._column_of_row[layer_of[l.a]] != root._column_of_row[layer_of[l.b]]]
    root._content_right = chosen.width
    root.w = chosen.width
    root.h = chosen.height + 2 * CONNECTOR_SPACE
    result.columns = chosen.columns


def _route_connectors(root: Group) -> None:
    """Edges from a column's last row to the next column's first: down, across the gap, up, across, down."""
    row_of = _layer_of(root._rows)
    for link in root._connectors:
        a, b = root.items[link.a], root.items[link.b]
        start = (a.x + _anchor(a), a.y + a.h)
        end = (b.x + _anchor(b), b.y)
        gap_x = root.x + root._column_right[root._column_of_row[row_of[link.a]]] + COLUMN_GAP / 2
        below = start[1] + CONNECTOR_SPACE / 2  # a column's last row: nothing below it
        above = root.y + CONNECTOR_SPACE / 2
        link.edge.points = [start, (start[0], below), (gap_x, below), (gap_x, above), (end[0], above), end]
        link.edge.curved = False
        link.edge.connector = True
        link.edge.to_port = isinstance(b, Group)


def _hide_plain_ports(group: Group) -> None:
    """A port no edge branches at draws no dot (its lines meet there and pass on): dots never stack."""
    if group.in_port is not None:
        group.in_port.hidden = sum(1 for link in group.links if link.a == IN) == 1
        group.out_port.hidden = sum(1 for link in group.links if link.b == OUT) == 1
    for item in group.items:
        if isinstance(item, Group):
            _hide_plain_ports(item)


def wrap_text(text: str, width: float, size: float = DETAIL_SIZE) -> list[str]:
    """`text` in lines of at most `width` px (estimated as `_text_width` does), broken at spaces."""
    lines, line = [], ""
    for word in text.split(" "):
        candidate = f"{line} {word}" if line else word
        if line and _text_width(candidate, size) > width:
            lines.append(line)
            line = word
        else:
            line = candidate
    return [*lines, line] if line else lines


def layout(result: Diagram) -> None:
    """Sizes and positions of every item of `result`, its edges' routes, and its width and height (px)."""
    root = result.root
    _measure_group(root)
    _wrap_columns(result)
    _hide_plain_ports(root)
    header = 44
    title_w = max(_text_width(result.title, 16, bold=True), _text_width(result.subtitle, DETAIL_SIZE)) + 2 * MARGIN
    result.width = round(max(root.w + 2 * MARGIN, title_w, 480))
    _place(root, (result.width - root.w) / 2, MARGIN + header)  # centred under the header
    _route_connectors(root)
    result.legend_top = MARGIN + header + root.h + 24
    rows = len(_legend_rows(result, result.width - 2 * MARGIN))
    result.problems_top = result.legend_top + rows * LEGEND_ROW + (8 if rows else 0)
    result.problem_lines = []
    for problem in result.problems:
        result.problem_lines.append(wrap_text(problem, result.width - 2 * MARGIN - 12))
    listed = sum(len(lines) for lines in result.problem_lines) + (1 if result.problems else 0)
    result.height = round(result.problems_top + listed * PROBLEM_LINE + MARGIN)


LEGEND_ROW = 22


def _legend_entries(result: Diagram) -> list[tuple[str, str]]:
    """(symbol, text) for what this diagram shows."""
    entries: list[tuple[str, str]] = []
    if any(n.error for n in result.layers()) or any(g.error for g in result.groups()):
        entries.append(("error", "a layer with a problem (listed below)"))
    if any(n.frozen for n in result.layers()):
        entries.append(("frozen", "frozen: not trained (fixed filter or trainable: false)"))
    groups = result.groups()
    if any(g.kind == "residual" for g in groups):
        entries.append(("add", "residual: main path + shortcut, added"))
    if any(n.is_port and not n.hidden for n in result.nodes()):
        entries.append(("port", "edges part or meet at a group's entry / exit"))
    if any(not edge.curved and not edge.connector for edge in result.edges()):
        entries.append(("lane", "skip connection"))
    if any(g.badge for g in groups) or any(n.badge for n in result.layers()):
        entries.append(("badge", "identical repeat copies, drawn once"))
    return entries


_SYMBOL_W = {"error": 32, "frozen": 32, "add": 32, "port": 14, "lane": 30, "badge": 32}


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


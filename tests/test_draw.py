"""`convspec draw` and convspec.draw: every spec as valid SVG and Mermaid, checked against the report.

The expected layers, edges and frozen marks are computed here from the checker's
report, independently of the drawing code, by the rules the module's docstring
states: one edge per `from` name, one from each nested list's last layer to its
group's exit, the residual's add, a repeat's chain of copies, one per output.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

import convspec
from convspec.cli import cli
from convspec.draw import diagram, render, to_mermaid, to_svg
from convspec.report import LayerReport, Report

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.yaml"))
SVG = "{http://www.w3.org/2000/svg}"
GROUP_KINDS = ("block", "residual", "repeat")

FROZEN_SPEC = """
name: frozen_demo
input: {channels: 3, size: [32, 32]}
layers:
  - {name: blur, type: fixed, filter: gaussian, kernel_size: 3, sigma: 1.0, padding: 1}
  - {name: learnt, type: fixed, filter: sobel_x, padding: 1, trainable: true}
  - {name: stem, type: conv, out_channels: 8, kernel_size: 3, padding: 1, trainable: false}
  - name: body
    type: residual
    layers:
      - {name: frozen_inner, type: conv, out_channels: 8, kernel_size: 3, padding: 1, norm: batch, trainable: false}
      - {name: free_inner, type: conv, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: head, type: conv, out_channels: 4, kernel_size: 1}
"""

SPLIT_SPEC = """
input: {channels: 8, size: [8, 8]}
layers:
  - {name: halves, type: split, parts: 2}
  - {name: a, type: pointwise, out: 4, from: halves.1}
  - {name: cat, type: concat, from: [halves.0, a]}
  - {name: again, type: repeat, times: 3, layers: [{type: pointwise, out: 8}]}
"""


# ---------------------------------------------------------------- the report, read independently


def leaf_paths(layers: list[LayerReport], prefix: str = "") -> list[tuple[str, LayerReport]]:
    """(module path, report) of every layer drawn as a box: not groups, not a split's parts."""
    found = []
    for layer in layers:
        path = prefix + layer.name
        if layer.type in GROUP_KINDS:
            found.extend(leaf_paths(layer.children, path + "."))
        elif layer.type != "part":
            found.append((path, layer))
    return found


def frozen(layer: LayerReport) -> bool:
    if layer.params > layer.trainable_params:
        return True
    return layer.type == "fixed" and not layer.layer.trainable


def is_shortcut(layer: LayerReport) -> bool:
    return layer.name == "shortcut" and layer.layer is None


def title_of(report: Report, layer: LayerReport) -> str:
    """How a box or frame is titled: 'conv1 · conv', or 'block · basic (residual' for an instance of the block template `basic`."""
    template = report.spec.source.templates.get(tuple(layer.path)) if layer.role == "layer" else None
    return f"{layer.name} · {template} ({layer.type}" if template else f"{layer.name} · {layer.type}"


def shape_of(layer: LayerReport) -> tuple:
    return (
        layer.name, layer.type, tuple(layer.sources), layer.output_shape, layer.params, layer.trainable_params,
        tuple(shape_of(c) for c in layer.children),
    )


def drawn_copies(repeat: LayerReport, collapse: bool) -> list[LayerReport]:
    """The copies of a repeat that are drawn: with collapse, one per run of identical neighbours."""
    kept: list[LayerReport] = []
    for copy in repeat.children:
        same = (
            kept and collapse
            and kept[-1].input_shapes == copy.input_shapes
            and shape_of(kept[-1])[1:] == shape_of(copy)[1:]
            and all(shape_of(a) == shape_of(b) for a, b in zip(kept[-1].children, copy.children))
        )
        if not same:
            kept.append(copy)
    return kept


def expected_edges(report: Report, collapse: bool) -> int:
    def scope(layers: list[LayerReport], nested: bool) -> int:
        # one edge per `from` name, plus, in a group, the last layer to the group's exit
        return sum(len(layer.sources) for layer in layers) + int(nested) + sum(inner(layer) for layer in layers)

    def inner(layer: LayerReport) -> int:
        if layer.type == "block":
            return scope(layer.children, True)
        if layer.type == "residual":
            main = [c for c in layer.children if not is_shortcut(c)]
            shortcut = [c for c in layer.children if is_shortcut(c)]
            count = scope(main, True) + 1  # main path -> add, add -> exit
            if shortcut:  # entry -> shortcut, its list, shortcut -> add
                return count + 2 + scope(shortcut[0].children, True)
            return count + 1  # the identity: entry -> add
        if layer.type == "repeat":
            copies = drawn_copies(layer, collapse)
            count = len(copies) + 1  # entry -> copy 0 -> ... -> exit
            for copy in copies:
                count += inner(copy.children[0]) if len(copy.children) == 1 else scope(copy.children, True)
            return count
        return 0

    return scope(report.layers, False) + len(report.outputs)


# ---------------------------------------------------------------- reading the outputs


def svg_tree(text: str) -> ET.Element:
    root = ET.fromstring(text.encode("utf-8"))  # raises on invalid XML
    assert root.tag == f"{SVG}svg"
    return root


def classes(element: ET.Element) -> set[str]:
    return set(element.get("class", "").split())


def svg_nodes(root: ET.Element) -> list[ET.Element]:
    return [g for g in root.iter(f"{SVG}g") if "node" in classes(g)]


def svg_edges(root: ET.Element) -> list[ET.Element]:
    return [p for p in root.iter(f"{SVG}path") if "edge" in classes(p)]


def svg_text(root: ET.Element) -> str:
    return "\n".join("".join(t.itertext()) for t in root.iter(f"{SVG}text"))


def box(element: ET.Element) -> tuple[float, float, float, float]:
    rect = element.find(f"{SVG}rect")
    x, y = float(rect.get("x")), float(rect.get("y"))
    return x, y, x + float(rect.get("width")), y + float(rect.get("height"))


MERMAID_RESERVED = {"end", "graph", "subgraph", "flowchart", "style", "class", "classDef", "click", "linkStyle", "direction", "default"}
M_ID = r"[A-Za-z_][A-Za-z0-9_]*"
M_NODE = re.compile(rf'^(?P<id>{M_ID})(\["[^"]*"\]|\(\["[^"]*"\]\)|\(\("[^"]*"\)\))$')
M_EDGE = re.compile(rf'^(?P<a>{M_ID}) -->(\|"[^"]*"\|)? (?P<b>{M_ID})$')
M_SUBGRAPH = re.compile(rf'^subgraph (?P<id>{M_ID})\["[^"]*"\]$')
M_CLASS = re.compile(rf"^class (?P<ids>{M_ID}(,{M_ID})*) (?P<cls>{M_ID})$")


def parse_mermaid(text: str) -> dict:
    """Check the Mermaid flowchart's syntax line by line; return its nodes, subgraphs, edges and classes."""
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("%%")]
    assert lines[0] == "flowchart TD", lines[0]
    nodes: dict[str, str] = {}
    subgraphs: list[str] = []
    edges: list[tuple[str, str]] = []
    classed: dict[str, set[str]] = {}
    depth = 0
    for line in lines[1:]:
        if m := M_SUBGRAPH.match(line):
            subgraphs.append(m["id"])
            depth += 1
        elif line == "end":
            depth -= 1
            assert depth >= 0, "an `end` without its subgraph"
        elif line == "direction TB":
            assert depth > 0
        elif m := M_EDGE.match(line):
            assert m["a"] in nodes and m["b"] in nodes, line
            edges.append((m["a"], m["b"]))
        elif m := M_NODE.match(line):
            assert m["id"] not in nodes, f"{m['id']} defined twice"
            nodes[m["id"]] = line
        elif m := M_CLASS.match(line):
            classed.setdefault(m["cls"], set()).update(m["ids"].split(","))
        elif line.startswith("classDef "):
            pass
        else:
            raise AssertionError(f"not a Mermaid flowchart line: {line!r}")
    assert depth == 0, "unclosed subgraph"
    ids = set(nodes) | set(subgraphs)
    assert len(ids) == len(nodes) + len(subgraphs), "an id is used twice"
    assert not ids & MERMAID_RESERVED
    for name, members in classed.items():
        assert members <= set(nodes), name
    return {"nodes": nodes, "subgraphs": subgraphs, "edges": edges, "classes": classed}


# ---------------------------------------------------------------- every spec


@pytest.fixture(scope="module", params=SPECS, ids=[p.stem for p in SPECS])
def drawn(request):
    report = convspec.check(str(request.param))
    return report, diagram(report, collapse=False), diagram(report)


def test_specs_exist():
    assert len(SPECS) >= 10


def test_svg_is_valid_and_complete(drawn):
    report, full, _ = drawn
    root = svg_tree(to_svg(full))
    x, y, width, height = map(float, root.get("viewBox").split())
    assert (x, y) == (0, 0) and width > 0 and height > 0
    nodes = svg_nodes(root)
    layers = [g for g in nodes if "layer" in classes(g)]
    expected = leaf_paths(report.layers)
    assert Counter(g.get("data-path") for g in layers) == Counter(path for path, _ in expected)
    text = svg_text(root)
    for path, layer in expected:
        assert title_of(report, layer) in text, path
    for layer in report.walk():
        if layer.type in GROUP_KINDS and layer.layer is not None:  # not a repeat's copy or a shortcut
            assert title_of(report, layer) in text, layer.name
    assert text.count("input · ") == 1
    assert len([g for g in nodes if "output" in classes(g)]) == len(report.outputs)
    for name in report.outputs:
        assert f"output · {name} · " in text


def test_svg_edges_equal_the_wiring(drawn):
    report, full, _ = drawn
    root = svg_tree(to_svg(full))
    edges = svg_edges(root)
    assert len(edges) == expected_edges(report, collapse=False)
    ids = {e.get("id") for e in root.iter() if e.get("id")}
    for edge in edges:
        assert edge.get("data-from") in ids and edge.get("data-to") in ids
        assert edge.get("d").startswith("M")


def test_frozen_marks_exactly_the_frozen_layers(drawn):
    report, full, _ = drawn
    root = svg_tree(to_svg(full))
    marked = Counter(g.get("data-path") for g in svg_nodes(root) if "frozen" in classes(g))
    assert marked == Counter(path for path, layer in leaf_paths(report.layers) if frozen(layer))
    for g in svg_nodes(root):
        locks = [e for e in g.iter(f"{SVG}g") if "lock" in classes(e)]
        assert len(locks) == ("frozen" in classes(g))
    legend = next(g for g in root.iter(f"{SVG}g") if "legend" in classes(g))
    assert ("frozen" in "".join(legend.itertext())) == bool(marked)


def test_mermaid_has_the_same_nodes_and_edges(drawn):
    report, full, _ = drawn
    chart = parse_mermaid(to_mermaid(full))
    root = svg_tree(to_svg(full))
    assert len(chart["edges"]) == len(svg_edges(root)) == expected_edges(report, collapse=False)
    assert sorted(chart["edges"]) == sorted((e.get("data-from"), e.get("data-to")) for e in svg_edges(root))
    node_ids = {g.get("id") for g in svg_nodes(root)}
    port_ids = {c.get("id") for c in root.iter(f"{SVG}circle") if "port" in classes(c)}
    assert set(chart["nodes"]) == node_ids | port_ids
    frames = [g for g in root.iter(f"{SVG}g") if "frame" in classes(g)]
    assert sorted(chart["subgraphs"]) == sorted(g.get("id") for g in frames)
    frozen_ids = {g.get("id") for g in svg_nodes(root) if "frozen" in classes(g)}
    assert chart["classes"].get("frozen", set()) == frozen_ids
    for path, layer in leaf_paths(report.layers):
        assert title_of(report, layer) in to_mermaid(full), path


def test_layout_boxes_do_not_overlap_and_frames_nest(drawn):
    report, full, auto = drawn
    for picture in (full, auto):
        root = svg_tree(to_svg(picture))
        boxes = [box(g) for g in svg_nodes(root)]
        for i, a in enumerate(boxes):
            for b in boxes[i + 1 :]:
                assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)
        frames = [(g.get("data-path"), box(g)) for g in root.iter(f"{SVG}g") if "frame" in classes(g)]
        for i, (_, a) in enumerate(frames):
            for _, b in frames[i + 1 :]:
                disjoint = a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]
                inside = lambda p, q: q[0] <= p[0] and q[1] <= p[1] and p[2] <= q[2] and p[3] <= q[3]  # noqa: E731
                assert disjoint or inside(a, b) or inside(b, a), (a, b)
        for g in svg_nodes(root):
            path = g.get("data-path") or ""
            for frame_path, frame in frames:
                if path.startswith(frame_path + "."):
                    x0, y0, x1, y1 = box(g)
                    assert frame[0] <= x0 and frame[1] <= y0 and x1 <= frame[2] and y1 <= frame[3], (path, frame_path)
        _, _, width, height = map(float, root.get("viewBox").split())
        assert all(b[2] <= width and b[3] <= height for b in boxes)


def test_font_sizes_are_readable(drawn):
    _, _, auto = drawn
    text = to_svg(auto)
    sizes = [float(s) for s in re.findall(r'font-size(?:="|:\s*)([\d.]+)', text)]
    assert sizes and min(sizes) >= 10


# ---------------------------------------------------------------- long networks


@pytest.mark.parametrize("name", ["resnet34", "shufflenet_v2_x1_0", "resnext50_32x4d"])
def test_long_networks_draw_identical_copies_once(name):
    report = convspec.check(str(ROOT / "specs" / f"{name}.yaml"))
    full, auto = diagram(report, collapse=False), diagram(report)
    assert auto.collapsed and not full.collapsed
    root = svg_tree(to_svg(auto))
    layers = [g for g in svg_nodes(root) if "layer" in classes(g)]
    assert len(layers) <= 50 and len(layers) < len(full.layers()) / 1.5
    assert len(svg_edges(root)) == expected_edges(report, collapse=True)
    assert len(parse_mermaid(to_mermaid(auto))["edges"]) == expected_edges(report, collapse=True)
    text = svg_text(root)
    assert re.search(r"×\d", text), "no ×N badge"
    drawn_names = {layer.name for _, layer in leaf_paths(report.layers)}
    for layer_name in drawn_names:
        assert f"{layer_name} · " in text, layer_name
    _, _, width, height = map(float, root.get("viewBox").split())
    assert height < 4000 and width < 4000  # about a page per stage, not a scroll of 60 blocks


def test_resnet34_badges_count_the_copies():
    report = convspec.check(str(ROOT / "specs" / "resnet34.yaml"))
    text = to_svg(diagram(report))
    # layer1: 3 identical blocks; layer2..4 open with a downsampling block, then 3, 5 and 2 identical ones
    assert "[0–2] block · basic (residual)" in text and "[1–3] block · basic (residual)" in text
    assert "[1–5] block · basic (residual)" in text
    assert sorted(re.findall(r">×(\d+)<", text)) == ["2", "3", "3", "5"]


def test_small_networks_are_drawn_in_full():
    report = convspec.check(str(ROOT / "specs" / "resnet_small.yaml"))
    assert not diagram(report).collapsed


# ---------------------------------------------------------------- details


def test_frozen_layers_are_marked_and_explained():
    report = convspec.check(FROZEN_SPEC)
    root = svg_tree(render(report, "svg"))
    marked = {g.get("data-path") for g in svg_nodes(root) if "frozen" in classes(g)}
    assert marked == {"blur", "stem", "body.frozen_inner"}
    assert "frozen: not trained" in svg_text(root)
    assert any(p.get("fill") == "url(#hatch)" for p in root.iter(f"{SVG}rect"))
    chart = parse_mermaid(render(report, "mermaid"))
    assert {chart["nodes"][i].split("[")[0] for i in chart["classes"]["frozen"]} == chart["classes"]["frozen"]
    assert len(chart["classes"]["frozen"]) == 3
    assert sum("🔒" in line for line in chart["nodes"].values()) == 3


def test_identity_residual_is_a_group_with_its_add_and_skip():
    report = convspec.check(FROZEN_SPEC)
    picture = diagram(report)
    residual = next(g for g in picture.groups() if g.kind == "residual")
    assert residual.title == "body · residual"
    adds = [i for i in residual.items if getattr(i, "kind", "") == "add"]
    assert len(adds) == 1
    into_add = [link for link in residual.links if link.edge.dst == adds[0].id]
    assert {link.edge.src for link in into_add} == {residual.in_port.id, residual.items[1].id}  # skip + main path
    assert any(not link.edge.curved for link in into_add), "the skip runs in a lane beside the main path"


def test_split_parts_label_their_edges():
    report = convspec.check(SPLIT_SPEC)
    root = svg_tree(render(report, "svg"))
    labels = sorted("".join(t.itertext()) for t in root.iter(f"{SVG}text") if "edge-label" in classes(t))
    assert labels == [".0", ".1"]
    chart = render(report, "mermaid")
    assert '-->|".0"|' in chart and '-->|".1"|' in chart
    assert len(svg_edges(root)) == expected_edges(report, collapse=False)


def test_text_is_escaped():
    spec = 'name: "a <b> & \\"c\\" #1"\ninput: {channels: 1, size: [4, 4]}\nlayers:\n  - {type: conv, out: 2, kernel: 3}\n'
    report = convspec.check(spec)
    root = svg_tree(render(report, "svg"))
    assert root.find(f"{SVG}title").text == 'a <b> & "c" #1'
    chart = render(report, "mermaid")
    parse_mermaid(chart)
    assert "<b> &" not in chart.splitlines()[0]


def test_unknown_sizes_draw_as_question_marks(tmp_path):
    spec = "input: {channels: 3}\nlayers:\n  - {name: c, type: conv, out: 4, kernel: 3}\n"
    from convspec.trace import load_and_check

    report = load_and_check(spec, require_size=False)
    assert "3→4 · 4x?x?" in svg_text(svg_tree(render(report, "svg")))  # the batch is said once, in the subtitle


def test_render_refuses_an_invalid_report_and_a_wrong_format():
    from convspec.trace import load_and_check

    report = load_and_check("input: {channels: 6, size: [8, 8]}\nlayers:\n  - {type: group, out: 8, kernel: 3, groups: 4}\n")
    with pytest.raises(convspec.SpecError):
        render(report)
    with pytest.raises(ValueError, match="mermaid"):
        render(convspec.check(str(ROOT / "specs" / "small_cnn.yaml")), "png")


def test_drawing_never_imports_torch():
    code = (
        "import sys, convspec\n"
        "from convspec.draw import render\n"
        "render(convspec.check('specs/resnet34.yaml'))\n"
        "render(convspec.check('specs/resnet34.yaml'), 'mermaid')\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------- the command


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


SMALL = ROOT / "specs" / "small_cnn.yaml"
BAD_SPEC = "input: {channels: 6, size: [8, 8]}\nlayers:\n  - {type: group, out: 8, kernel: 3, groups: 4}\n"


def test_draw_writes_svg(tmp_path):
    out = tmp_path / "net.svg"
    result = run("draw", SMALL, "-o", out)
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and str(out) in result.output
    svg_tree(out.read_text())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.svg"]


def test_draw_mermaid_by_option_or_suffix(tmp_path):
    result = run("draw", SMALL, "-o", tmp_path / "a.txt", "--format", "mermaid")
    assert result.exit_code == 0, result.output
    parse_mermaid((tmp_path / "a.txt").read_text())
    result = run("draw", SMALL, "-o", tmp_path / "b.mmd")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "b.mmd").read_text() == (tmp_path / "a.txt").read_text()
    result = run("draw", SMALL, "-o", tmp_path / "c.mmd", "--format", "svg")
    svg_tree((tmp_path / "c.mmd").read_text())


def test_draw_to_stdout():
    result = run("draw", SMALL, "-o", "-", "--format", "mermaid")
    assert result.exit_code == 0
    parse_mermaid(result.stdout)


def test_draw_refuses_to_overwrite_without_force(tmp_path):
    out = tmp_path / "net.svg"
    out.write_text("mine")
    result = run("draw", SMALL, "-o", out)
    assert result.exit_code == 2
    assert "--force" in result.output and "Traceback" not in result.output
    assert out.read_text() == "mine"
    result = run("draw", SMALL, "-o", out, "--force")
    assert result.exit_code == 0
    svg_tree(out.read_text())


def test_draw_collapse_options(tmp_path):
    spec = ROOT / "specs" / "resnet34.yaml"
    run("draw", spec, "-o", tmp_path / "auto.svg")
    run("draw", spec, "-o", tmp_path / "full.svg", "--no-collapse")
    run("draw", SMALL, "-o", tmp_path / "small.svg", "--collapse")
    auto, full = (svg_tree((tmp_path / n).read_text()) for n in ("auto.svg", "full.svg"))
    assert len(svg_nodes(auto)) < len(svg_nodes(full))
    assert len([g for g in svg_nodes(full) if "layer" in classes(g)]) == len(leaf_paths(convspec.check(str(spec)).layers))


def test_draw_invalid_spec_exits_1_and_writes_the_picture_with_its_problems(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text(BAD_SPEC)
    result = run("draw", spec, "-o", tmp_path / "bad.svg")
    assert result.exit_code == 1
    assert "groups=4 does not divide" in result.output and "1 problem marked" in result.output
    root = svg_tree((tmp_path / "bad.svg").read_text())
    assert "groups=4 does not divide" in svg_text(root)
    assert any("error" in classes(g) for g in svg_nodes(root))


def test_draw_spec_that_cannot_be_traced_exits_1_and_writes_nothing(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("input: {channels: 3, size: [8, 8]\nlayers: [")  # not YAML: nothing to draw
    result = run("draw", spec, "-o", tmp_path / "bad.svg")
    assert result.exit_code == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]


def test_draw_usage_and_io_errors_exit_2(tmp_path):
    assert run("draw", tmp_path / "missing.yaml", "-o", tmp_path / "x.svg").exit_code == 2
    assert run("draw", SMALL, "-o", tmp_path / "no" / "dir" / "x.svg").exit_code == 2
    assert run("draw", SMALL).exit_code == 2  # -o is required
    assert run("draw", SMALL, "-o", tmp_path / "x.svg", "--format", "png").exit_code == 2
    assert run("draw", SMALL, "-o", tmp_path / "x.svg", "--input", "1x3").exit_code == 2
    assert not list(tmp_path.iterdir())


def test_draw_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    out = tmp_path / "net.svg"

    def failing_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    result = run("draw", SMALL, "-o", out)
    assert result.exit_code == 2
    assert "No space left on device" in result.output
    assert not list(tmp_path.iterdir()), "a temporary or partial file was left"


def test_draw_failure_keeps_the_old_file(tmp_path, monkeypatch):
    out = tmp_path / "net.svg"
    out.write_text("old picture")

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("convspec.draw.to_svg", broken)
    result = run("draw", SMALL, "-o", out, "--force")
    assert result.exit_code == 3
    assert out.read_text() == "old picture"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.svg"]


def test_draw_help_lists_the_options():
    result = run("draw", "--help")
    assert result.exit_code == 0
    for option in ("--format", "--force", "--collapse", "-o"):
        assert option in result.output


def test_draw_never_writes_over_the_spec(tmp_path):
    spec = tmp_path / "net.yaml"
    spec.write_text(SMALL.read_text())
    result = run("draw", spec, "-o", spec, "--force")
    assert result.exit_code == 2
    assert "is the spec itself" in result.output
    assert spec.read_text() == SMALL.read_text()

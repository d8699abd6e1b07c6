"""What the diagram says about each layer, how it is laid out, and an invalid spec drawn.

Labels are computed here from the spec's own numbers; the layout is read back
from the diagram's positions (px), not from pixels.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convspec
from convspec.draw import diagram, to_mermaid, to_svg
from convspec.draw_labels import layer_path, operation, sample_shape
from convspec.draw_layout import PORT_R
from convspec.trace import load_for_drawing

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.yaml"))
NORMS = {"batch": "bn", "instance": "in", "layer": "ln"}


def spec_path(name: str) -> str:
    return str(ROOT / "specs" / f"{name}.yaml")


def boxes(picture):
    """(x0, y0, x1, y1) of every box that is drawn (not the ports)."""
    return [(n.x, n.y, n.x + n.w, n.y + n.h, n) for n in picture.nodes() if not n.is_port]


# ---------------------------------------------------------------- labels


@settings(max_examples=60, deadline=None)
@given(
    kernel=st.integers(1, 7),
    stride=st.integers(1, 3),
    dilation=st.integers(1, 2),
    norm=st.sampled_from([None, "batch", "instance", "layer"]),
    act=st.sampled_from([None, "relu", "silu", "hardswish"]),
)
def test_a_conv_box_says_kernel_stride_norm_and_act(kernel, stride, dilation, norm, act):
    layer = {"type": "conv", "out": 8, "kernel": kernel, "stride": stride, "dilation": dilation, "padding": "same"}
    if norm:
        layer["norm"] = norm
    if act:
        layer["act"] = act
    report = convspec.check({"input": {"channels": 4, "size": [16, 16]}, "layers": [layer]})
    (node,) = diagram(report).layers()
    expected = f"{kernel}x{kernel}" + (f"/{stride}" if stride > 1 else "") + (f" d{dilation}" if dilation > 1 else "")
    expected = " · ".join([expected] + ([NORMS[norm]] if norm else []) + ([act] if act else []))
    assert node.operation == expected
    size = math.ceil(16 / stride)
    assert node.detail == f"4→8 · 8x{size}x{size}"  # channels changed, then the shape without the batch
    assert expected in to_svg(diagram(report)) and expected in to_mermaid(diagram(report))


def test_resnet34_boxes_say_what_each_layer_does():
    report = convspec.check(spec_path("resnet34"))
    picture = diagram(report)
    by_path = {n.path: n for n in picture.layers()}
    assert by_path["stem"].operation == "7x7/2 · bn · relu"
    assert by_path["maxpool"].operation == "max 3x3/2"
    assert by_path["avgpool"].operation == "avg"
    downsample = next(n for n in picture.layers() if n.name == "downsample")
    assert downsample.operation == "1x1/2 · bn"
    text = to_svg(picture)
    # template instances are named after their template
    assert "layer2 · stage (repeat ×4)" in text and "[0] block · basic (residual)" in text
    assert "layer1 · repeat ×3" in text  # written out in the spec, no template
    # the batch is said once, in the subtitle, never in a shape
    assert "batch 1 · shapes C×H×W" in picture.subtitle
    assert "input · 3x224x224" in text and "64x112x112" in text
    assert not re.search(r">[^<]*\b1x\d+x\d+x\d+", text)


def test_labels_of_other_kinds():
    report = convspec.check(spec_path("nine_kinds"))
    ops = {n.name: n.operation for n in diagram(report).layers()}
    assert ops["dilated"].endswith("d2") and ops["group"].endswith("g4")
    assert ops["separable"].startswith("3x3 dw → 1x1")
    assert "experts" in ops["dynamic"]
    assert ops["transposed"].startswith("4x4/2")
    assert sample_shape((1, 64, 7, 7)) == "64x7x7" and sample_shape(None) == "?" and sample_shape((2, 10)) == "10"
    assert layer_path("layers[2].first[0] 'block' (residual)") == ("layers", 2, "first", 0)
    assert layer_path(None) is None and layer_path("input") is None


def test_every_layer_of_every_spec_has_a_label_function_that_does_not_fail():
    for path in SPECS:
        report = convspec.check(str(path))
        for layer in report.walk():
            assert isinstance(operation(layer), str)


# ---------------------------------------------------------------- layout


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_connectors_and_lanes_cross_no_box_and_dots_do_not_stack(path):
    report = convspec.check(str(path))
    for direction in ("TB", "LR"):
        picture = diagram(report, direction=direction)
        drawn = boxes(picture)
        for edge in picture.edges():
            if edge.curved:
                continue
            ends = {edge.src, edge.dst}
            for (x0, y0), (x1, y1) in zip(edge.points, edge.points[1:]):
                for bx0, by0, bx1, by1, node in drawn:
                    if node.id in ends:
                        continue
                    # an orthogonal segment and a box share no interior point
                    inside_x = min(x0, x1) < bx1 - 0.5 and max(x0, x1) > bx0 + 0.5
                    inside_y = min(y0, y1) < by1 - 0.5 and max(y0, y1) > by0 + 0.5
                    assert not (inside_x and inside_y), (path.stem, direction, edge.src, edge.dst, node.title)
        dots = [(n.x, n.y) for n in picture.nodes() if n.is_port and not n.hidden]
        for i, (x0, y0) in enumerate(dots):
            for x1, y1 in dots[i + 1 :]:
                assert math.hypot(x1 - x0, y1 - y0) >= 4 * PORT_R, (path.stem, direction, (x0, y0))
        assert picture.width > 0 and picture.height > 0


def test_resnet34_is_a_page_not_a_strip():
    report = convspec.check(spec_path("resnet34"))
    tall = diagram(report)
    assert 0.5 <= tall.height / tall.width <= 2.0, (tall.width, tall.height)
    assert len(tall.columns) >= 2
    wide = diagram(report, direction="LR")
    assert wide.width > wide.height and len(wide.columns) > len(tall.columns)
    assert to_mermaid(wide).splitlines()[1] == "flowchart LR"
    assert "flowchart TD" in to_mermaid(tall)
    with pytest.raises(ValueError, match="LR"):
        diagram(report, direction="up")


def test_a_short_network_stays_one_column_with_its_ports_hidden():
    spec = {"input": {"channels": 3, "size": [8, 8]}, "layers": [
        {"type": "block", "layers": [{"type": "conv", "out": 4, "kernel": 3}]},
        {"type": "residual", "layers": [{"type": "conv", "out": 4, "kernel": 3, "padding": 1}]},
    ]}  # fmt: skip
    picture = diagram(convspec.check(spec))
    block = next(g for g in picture.groups() if g.kind == "block")
    residual = next(g for g in picture.groups() if g.kind == "residual")
    assert block.in_port.hidden and block.out_port.hidden  # one edge in, one out: no dot
    assert not residual.in_port.hidden  # the input parts there: main path and skip
    svg = to_svg(picture)
    assert f'id="{block.in_port.id}"' in svg  # the edges still end at it


# ---------------------------------------------------------------- an invalid spec


BAD = """name: bad
input: {channels: 3, size: [32, 32]}
layers:
  - {type: conv, out: 16, kernel: 3, padding: 1}
  - {name: g1, type: group, out: 30, kernel: 3, groups: 4}
  - name: body
    type: residual
    layers:
      - {type: conv, out: 30, kernel: 3, padding: 1, act: rleu}
  - {type: flatten}
  - {type: linear, out: 10}
"""


def test_an_invalid_spec_is_drawn_with_its_wrong_layers_red_and_its_problems_listed():
    report = load_for_drawing(BAD)
    assert len(report.errors) == 2
    picture = diagram(report)
    wrong = {n.name for n in picture.layers() if n.error}
    assert wrong == {"g1", "conv_0"} and {n.path for n in picture.layers() if n.error} == {"g1", "body.conv_0"}
    assert not any(g.error for g in picture.groups())
    svg = to_svg(picture)
    assert svg.count('class="node layer error"') == 2 and "#cf222e" in svg
    assert "2 problems:" in svg and "groups=4 does not divide" in svg and "did you mean" in svg
    assert picture.subtitle.startswith("invalid: 2 problems")
    mermaid = to_mermaid(picture)
    ids = {n.id for n in picture.layers() if n.error}
    assert f"class {','.join(sorted(ids, key=lambda i: int(i[1:])))} error" in mermaid
    assert "%% " in mermaid and "groups=4 does not divide" in mermaid.split("flowchart")[0]
    # the listed problems lie inside the picture, below everything else
    assert picture.height >= picture.problems_top + 3 * 15


def test_a_spec_nothing_can_be_traced_from_still_raises():
    with pytest.raises(convspec.SpecError):
        load_for_drawing("input: {channels: 0, size: [8, 8]}\nlayers: [{type: conv, out: 4, kernel: 3}]\n")


# ---------------------------------------------------------------- a real renderer reads the pictures


@pytest.mark.parametrize("name", ["resnet34", "mobilenet_v2", "nine_kinds"])
def test_a_renderer_draws_the_svg_at_its_stated_size(name):
    cairosvg = pytest.importorskip("cairosvg", reason="cairosvg renders the SVG to PNG")
    import io
    import struct

    picture = diagram(convspec.check(spec_path(name)))
    png = cairosvg.svg2png(bytestring=to_svg(picture).encode("utf-8"))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", io.BytesIO(png).getvalue()[16:24])  # the IHDR chunk
    assert (width, height) == (round(picture.width), round(picture.height))

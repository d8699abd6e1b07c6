"""The language server's analysis and features as plain functions: every spec's layers found, mid-typing text never a crash."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import convspec
from convspec.lsp_analysis import analyse, index_spans, is_spec_document
from convspec.lsp_features import completions, definition, hover, inlay_hints, outline, references

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.yaml"))
RESNET_TEXT = (ROOT / "specs" / "resnet34.yaml").read_text(encoding="utf-8")
SCHEMA = convspec.json_schema()
RESNET_GOOD = analyse(RESNET_TEXT, "resnet34.yaml")


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_every_top_level_layer_of_every_spec_has_its_node_and_figures(path):
    text = path.read_text(encoding="utf-8")
    assert is_spec_document(text, str(path))
    analysis = analyse(text, str(path))
    report = convspec.check(path) if convspec.load(path).input.size else None
    assert analysis.errors == []
    assert analysis.report is not None
    top = {node: figures[0].report for node, figures in analysis.layers.items() if len(node) == 2 and node[0] == "layers"}
    positions = analysis.report.spec.source.value_positions
    here = [layer for layer in analysis.report.layers if len(positions[layer.path]) == 2]  # not inherited through `extends`
    assert here and [layer.name for layer in top.values()] == [layer.name for layer in here]
    if report is not None:
        shapes = {layer.name: layer.output_shape for layer in report.layers}
        assert [layer.output_shape for layer in top.values()] == [shapes[layer.name] for layer in here]


def test_what_is_a_spec():
    assert is_spec_document("# yaml-language-server: $schema=../convspec.schema.json\ninput: {}\n")
    assert is_spec_document("convspec: 1\n")
    assert is_spec_document("input: {}\n", "/x/net.convspec.yaml")
    assert not is_spec_document("services:\n  web: {image: nginx}\n", "/x/compose.yaml")
    assert not is_spec_document("# yaml-language-server: $schema=https://json.schemastore.org/github-workflow.json\non: push\n")
    assert not is_spec_document("layers:\n  convspec: 1\n")  # a nested key is not the format's version


def test_a_syntax_error_keeps_the_index_of_what_came_before():
    text = "convspec: 1\ninput: {channels: 3, size: [8, 8]}\nlayers:\n  - {name: a, type: conv, out: 4, kernel: 3\n  - {type: act}\n"
    spans = index_spans(text)
    assert not spans.complete
    assert spans.scalars[("input", "channels")] == "3" and ("layers",) in spans.values
    analysis = analyse(text, "t.yaml")
    (problem,) = analysis.errors
    assert problem.message.startswith("YAML syntax error") and analysis.report is None


def _lines(text: str) -> list[str]:
    return text.split("\n")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cut=st.integers(0, len(RESNET_TEXT)), insert=st.text(alphabet=" -:{}[],\n\tabc1$#'\"😀", max_size=6), data=st.data())
def test_mid_typing_text_never_crashes_a_feature(cut, insert, data):
    """Any prefix of a spec with a few typed characters: analysis, hover, hints, outline, completion and navigation answer."""
    text = RESNET_TEXT[:cut] + insert + RESNET_TEXT[cut:][: data.draw(st.integers(0, 200))]
    good = RESNET_GOOD
    now = analyse(text, "resnet34.yaml")
    spans = index_spans(text)
    lines = _lines(text)
    line = data.draw(st.integers(0, len(lines) - 1))
    point = (line, data.draw(st.integers(0, len(lines[line]))))
    for last in (now if now.report is not None else None, good):
        hover(spans, last, point)
        inlay_hints(spans, last, lines, 0, len(lines))
        outline(spans, last)
    completions(text, point, SCHEMA)
    definition(spans, point)
    references(spans, point)
    for problem in now.errors:
        assert problem.location.line is None or 1 <= problem.location.line <= len(lines) + 1


def test_figures_follow_the_layer_by_name_not_by_a_stale_position():
    good = analyse(RESNET_TEXT, "resnet34.yaml")
    renamed = RESNET_TEXT.replace("{name: stem,", "{name: stem2,")
    spans = index_spans(renamed)
    stem_line = _lines(renamed).index(next(l for l in _lines(renamed) if "name: stem2" in l))
    assert hover(spans, good, (stem_line, 8)) is None  # another layer now: no figures of the old one
    assert hover(index_spans(RESNET_TEXT), good, (stem_line, 8)) is not None


def test_completion_in_with_offers_the_templates_parameters_and_norm_values():
    text = RESNET_TEXT.replace("{name: layer2, type: use, block: stage, with: {out: 128, blocks: 4}}", "{name: layer2, type: use, block: stage, with: {out: 128, }}")
    line = next(i for i, l in enumerate(_lines(text)) if "name: layer2" in l)
    column = _lines(text)[line].index("out: 128, ") + len("out: 128, ")
    assert [s.label for s in completions(text, (line, column), SCHEMA)] == ["blocks", "stride"]
    text = RESNET_TEXT.replace("norm: batch, act: relu}", "norm: , act: relu}", 1)
    line = next(i for i, l in enumerate(_lines(text)) if "norm: , " in l)
    labels = [s.label for s in completions(text, (line, _lines(text)[line].index("norm: ") + 6), SCHEMA)]
    assert labels == ["batch", "instance", "group", "layer"]


def test_a_block_use_in_a_repeat_lists_its_copies():
    good = analyse(RESNET_TEXT, "resnet34.yaml")
    line = next(i for i, l in enumerate(_lines(RESNET_TEXT)) if "name: layer1" in l)
    column = _lines(RESNET_TEXT)[line].index("name: block")
    text, _ = hover(good.spans, good, (line, column + 2))
    title = text.split("\n")[0]
    assert "(block `basic`)" in title and "3 instances" in title
    assert "`layer1.0.block`" in text and "`layer1.2.block`" in text


@pytest.mark.parametrize(
    "text",
    [
        "[\n" + RESNET_TEXT,  # a sequence at the top
        "? [a, b]\n: 1\n? {c: d}\n: 2\n" + RESNET_TEXT,  # complex keys: nothing under them has a spec's path
        RESNET_TEXT.replace("{name: stem,", "{? [x]: 1, name: stem,"),
    ],
    ids=["top-level-sequence", "complex-keys", "complex-key-in-a-layer"],
)
def test_odd_yaml_shapes_answer_without_a_crash(text):
    spans = index_spans(text)
    assert not any(path[:1] == ("?",) for table in (spans.values, spans.keys, spans.kinds, spans.scalars) for path in table)
    lines = _lines(text)
    for line in [*range(8), *range(8, len(lines), 5)]:  # the odd lines at the top, then a sample
        for column in range(0, len(lines[line]) + 1, 11):
            point = (line, column)
            hover(spans, RESNET_GOOD, point)
            completions(text, point, SCHEMA)
            definition(spans, point)
            references(spans, point)
    inlay_hints(spans, RESNET_GOOD, lines, 0, len(lines))
    outline(spans, RESNET_GOOD)

"""The `split` layer: channels cut into parts, read by later layers as `from: NAME.0`, `NAME.1`, ..."""

from __future__ import annotations

import jsonschema
import pytest
import torch

import convspec
from convspec import builder, shapes
from convspec.kinds import registry
from convspec.schema import LAYER_MODELS
from convspec.schema_json import json_schema
from support import assert_report_matches_model, printed_problems


def spec(size: str, *layers: str, channels: int = 6) -> str:
    return f"input: {{channels: {channels}, size: {size}}}\nlayers:\n" + "".join(f"  - {layer}\n" for layer in layers)


HALVES = (
    "{name: halves, type: split, parts: 2}",
    "{name: branch, type: conv, out: 3, kernel: 3, padding: 1, from: halves.1}",
    "{name: cat, type: concat, from: [halves.0, branch]}",
)


# ---------------------------------------------------------------- shapes and modules


@pytest.mark.parametrize("size", ["[16]", "[8, 8]", "[4, 8, 8]"], ids=["1d", "2d", "3d"])
def test_equal_parts_in_every_dimensionality(size):
    text = spec(size, *HALVES)
    report = convspec.check(text)
    assert report.valid, report.errors
    spatial = tuple(int(s) for s in size.strip("[]").split(","))
    split = report.layers[0]
    assert split.output_shape == (1, 6, *spatial)  # the split passes its input on
    assert [(c.name, c.type, c.output_shape) for c in split.children] == [
        ("0", "part", (1, 3, *spatial)),
        ("1", "part", (1, 3, *spatial)),
    ]
    assert (split.params, split.macs) == (0, 0)
    assert report.outputs == {"cat": (1, 6, *spatial)}
    model = convspec.build(text, seed=0).eval()
    assert_report_matches_model(report, model)  # the parts are the real submodules halves.0 and halves.1
    x = torch.randn(1, 6, *spatial)
    with torch.no_grad():
        out = model(x)
        first, second = torch.chunk(x, 2, dim=1)
        torch.testing.assert_close(out[:, :3], first)
        torch.testing.assert_close(out[:, 3:], model.branch(second))


def test_sizes_make_unequal_parts_in_order():
    text = spec("[8, 8]", "{name: s, type: split, sizes: [1, 2, 3]}", "{name: c, type: concat, from: [s.2, s.0]}")
    report = convspec.check(text)
    assert [c.output_shape[1] for c in report.layers[0].children] == [1, 2, 3]
    assert report.outputs == {"c": (1, 4, 8, 8)}
    model = convspec.build(text)
    x = torch.randn(2, 6, 8, 8)
    torch.testing.assert_close(model(x), torch.cat([x[:, 3:], x[:, :1]], dim=1))
    assert model.s.sizes == (1, 2, 3)


def test_split_of_flat_features():
    text = spec("[4, 4]", "{type: flatten}", "{name: f, type: split, parts: 3}", "{type: linear, out: 2, from: f.2}", channels=3)
    report = convspec.check(text)
    assert report.valid, report.errors
    assert [c.output_shape for c in report.layers[1].children] == [(1, 16)] * 3
    assert report.outputs == {"linear_2": (1, 2)}
    assert convspec.build(text)(torch.randn(5, 3, 4, 4)).shape == (5, 2)


def test_receptive_field_and_stride_pass_through():
    text = spec("[16, 16]", "{type: conv, out: 6, kernel: 3, stride: 2}", "{name: s, type: split, parts: 2}", "{type: identity, from: s.1}")
    report = convspec.check(text)
    part = report.layers[1].children[1]
    assert part.receptive_field == report.layers[0].receptive_field and part.stride == report.layers[0].stride


def test_a_part_can_be_read_by_several_layers_and_a_split_inside_a_residual():
    text = spec(
        "[8, 8]",
        "{type: residual, layers: [{name: s, type: split, parts: 2}, {name: a, type: conv, out: 3, kernel: 1, from: s.0}, "
        "{name: b, type: conv, out: 3, kernel: 1, from: s.0}, {type: concat, from: [a, b]}]}",
    )
    report = convspec.check(text)
    assert report.valid, report.errors
    model = convspec.build(text, seed=1)
    assert_report_matches_model(report, model)


def test_registries_hold_split():
    assert "split" in LAYER_MODELS and registry["split"].parts is not None


def test_json_schema_knows_split():
    validator = jsonschema.Draft202012Validator(json_schema())
    doc = {"input": {"channels": 4, "size": [8, 8]}, "layers": [{"type": "split", "parts": 2}, {"type": "identity", "from": "split_0.1"}]}
    assert validator.is_valid(doc)
    assert validator.is_valid({**doc, "layers": [{"type": "split", "sizes": [1, 3]}, doc["layers"][1]]})
    assert not validator.is_valid({**doc, "layers": [{"type": "split", "parts": 2, "bogus": 1}]})
    assert not validator.is_valid({**doc, "layers": [{"type": "split", "sizes": [4]}]})  # one part is no split


# ---------------------------------------------------------------- errors, at their lines

HEAD = "input:\n  channels: 6\n  size: [8, 8]\nlayers:\n"  # lines 1-4; the first layer is on line 5


def problems(tmp_path, *lines: str) -> list[str]:
    path = tmp_path / "bad.yaml"
    path.write_text(HEAD + "".join(f"{line}\n" for line in lines))
    return printed_problems(path)


@pytest.mark.parametrize(
    "lines, expected",
    [
        (
            ["  - {name: s, type: split, parts: 4}", "  - {type: identity, from: s.0}"],
            "bad.yaml:5:28: layers[0] 's' (split): parts=4 does not divide the 6 channels (divisors: 1, 2, 3, 6)",
        ),
        (
            ["  - {name: s, type: split, sizes: [2, 3]}", "  - {type: identity, from: s.0}"],
            "bad.yaml:5:28: layers[0] 's' (split): the sizes [2, 3] add up to 5, but the input has 6 channels; they must add up to 6",
        ),
        (
            ["  - {name: s, type: split, parts: 2, sizes: [3, 3]}", "  - {type: identity, from: s.0}"],
            "bad.yaml:5:38: layers[0] 's' (split): give `parts` or `sizes`, not both",
        ),
        (
            ["  - {name: s, type: split}", "  - {type: identity, from: s.0}"],
            "bad.yaml:5:5: layers[0] 's' (split): `split` needs `parts` (equal parts) or `sizes` (channels of each part)",
        ),
        (
            ["  - {name: s, type: split, parts: 1}", "  - {type: identity, from: s.0}"],
            "bad.yaml:5:28: layers[0] 's' (split): `parts` must be >= 2 (one part is the input itself)",
        ),
        (
            ["  - {name: s, type: split, parts: 2}", "  - {type: conv, out: 4, kernel: 1}"],
            "bad.yaml:6:5: layers[1] 'conv_1' (conv): the layer before is the split 's'; say which part this layer reads, "
            "with `from:` one of s.0, s.1",
        ),
        (
            ["  - {name: s, type: split, parts: 2}", "  - {type: conv, out: 4, kernel: 1, from: s}"],
            "bad.yaml:6:37: layers[1] 'conv_1' (conv): 's': the split 's' has 2 parts: s.0, s.1",
        ),
        (
            ["  - {name: s, type: split, parts: 2}", "  - {type: conv, out: 4, kernel: 1, from: s.2}"],
            "bad.yaml:6:37: layers[1] 'conv_1' (conv): 's.2': the split 's' has 2 parts: s.0, s.1",
        ),
        (
            ["  - {name: c, type: conv, out: 4, kernel: 1}", "  - {type: identity, from: c.0}"],
            "bad.yaml:6:22: layers[1] 'identity_1' (identity): 'c.0': 'c' is not a split, so it has no parts; use `from: c`",
        ),
        (
            ["  - {type: identity, from: s.0}", "  - {name: s, type: split, parts: 2}", "  - {type: identity, from: s.1}"],
            "bad.yaml:5:22: layers[0] 'identity_0' (identity): 's.0' comes at or after this layer; "
            "`from` can only name earlier layers (or 'input')",
        ),
        (
            ["  - {type: conv, out: 4, kernel: 1}", "  - {name: s, type: split, parts: 2}"],
            "bad.yaml:6:5: layers[1] 's' (split): a split cannot end a list: its parts must be read by later layers (`from: s.0`, ...)",
        ),
    ],
    ids=[
        "parts_do_not_divide", "sizes_do_not_add_up", "parts_and_sizes", "neither", "one_part", "implicit_previous",
        "whole_split", "part_out_of_range", "not_a_split", "later_part", "split_ends_the_list",
    ],
)  # fmt: skip
def test_bad_splits_are_reported_at_their_key(tmp_path, lines, expected):
    found = problems(tmp_path, *lines)
    assert found == [expected], found


def test_outputs_cannot_name_a_split(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(HEAD + "  - {name: s, type: split, parts: 2}\n  - {name: a, type: identity, from: s.0}\noutputs: [s, a]\n")
    with pytest.raises(convspec.SpecError) as refused:
        convspec.check(path)
    assert [str(p).replace(str(path), "bad.yaml") for p in refused.value.problems] == [
        "bad.yaml:7:11: `outputs` names the split 's'; name a layer that reads its parts"
    ]

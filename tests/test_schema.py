"""Behaviour of convspec.schema: loading, aliases, strict numbers, errors for people, the JSON Schema.

The integer fields under test are derived from the pydantic models'
annotations, so a new layer kind or key is covered without editing this file.
"""

from __future__ import annotations

import copy
import json
import math
import typing
from pathlib import Path

import jsonschema
import pytest
import yaml

import convspec
from convspec import schema_values as S
from convspec.errors import InputError, SpecError
from convspec.loading import load, parse_spec
from convspec.schema import LAYER_MODELS, Spec
from convspec.schema_json import json_schema
from support import MINIMAL  # tests/ is on sys.path (conftest.py)

ROOT = Path(__file__).resolve().parent.parent
SPEC_FILES = sorted((ROOT / "specs").glob("*.yaml"))

RAW_PYDANTIC = ("Input should be", "validation error", "[type=", "pydantic", "For further information")

# A valid layer of every kind, as small as the kind allows (its required keys).

HEAD = "input:\n  channels: 4\n  size: [8, 8]\nlayers:\n"


def _problems(spec) -> list:
    with pytest.raises(SpecError) as info:
        load(spec)
    text = str(info.value)
    for raw in RAW_PYDANTIC:
        assert raw not in text, text
    assert "Traceback" not in text
    return info.value.problems


def _layer_yaml(kind: str, fields: dict, name: str = "target", indent: str = "  ") -> tuple[str, dict[str, int]]:
    """A block-style layer item; also the line offset (0-based, within the item) of each key."""
    lines = [f"{indent}- name: {name}", f"{indent}  type: {kind}"]
    offsets = {}
    for key, value in fields.items():
        offsets[key] = len(lines)
        lines.append(f"{indent}  {key}: {json.dumps(value)}")
    return "\n".join(lines) + "\n", offsets


# ---------------------------------------------------------------- load()


def test_every_minimal_layer_is_valid():
    """The fixtures below rely on these being valid on their own."""
    assert set(MINIMAL) == set(LAYER_MODELS)
    for kind, fields in MINIMAL.items():
        spec = load({"input": {"channels": 4, "size": [8, 8]}, "layers": [{"type": kind, **fields}]})
        assert spec.layers[0].type == kind


def test_load_path_str_and_path(tmp_path):
    text = HEAD + "  - {type: conv, out: 4, kernel: 3}\n"
    path = tmp_path / "my_net.yaml"
    path.write_text(text)
    for arg in (path, str(path)):
        spec = load(arg)
        assert isinstance(spec, Spec)
        assert spec.name == "my_net"
        assert spec.layers[0].out_channels == 4
        assert spec.source.file == str(path)
        assert spec.source.locate(("layers", 0, "kernel")).line == 5


def test_load_yml_suffix_and_explicit_name_wins(tmp_path):
    path = tmp_path / "other.yml"
    path.write_text("name: chosen\n" + HEAD + "  - {type: flatten}\n")
    assert load(path).name == "chosen"
    assert load(str(path)).name == "chosen"


def test_load_yaml_text():
    spec = load(HEAD + "  - {type: conv, out: 4, kernel: 3}\n")
    assert spec.layers[0].kernel_size == 3
    assert spec.name is None  # no file: no stem to default to
    assert spec.source.file == "<string>"


def test_load_dict_and_spec():
    data = {"input": {"channels": 3, "size": [8, 8]}, "layers": [{"type": "conv", "out": 4, "kernel": 3}]}
    before = copy.deepcopy(data)
    spec = load(data)
    assert spec.layers[0].out_channels == 4
    assert data == before, "load must not modify the caller's dict"
    assert load(spec) is spec


def test_load_missing_path_is_input_error(tmp_path):
    with pytest.raises(InputError) as info:
        load(str(tmp_path / "nope.yaml"))
    assert info.value.exit_code == 2
    with pytest.raises(InputError):
        load(tmp_path / "nope.yaml")


def test_load_rejects_other_types():
    with pytest.raises(TypeError):
        load(42)


def test_parse_spec_rejects_non_mapping():
    with pytest.raises(SpecError, match="mapping"):
        parse_spec([1, 2])


def test_spec_files_all_load():
    assert SPEC_FILES, "no specs/*.yaml found"
    for path in SPEC_FILES:
        spec = load(path)
        assert spec.name  # from the file or its stem


# ---------------------------------------------------------------- aliases


@pytest.mark.parametrize(
    "kind, short, long, value",
    [
        ("conv", "out", "out_channels", 8),
        ("conv", "kernel", "kernel_size", [3, 1]),
        ("group", "out", "out_channels", 8),
        ("transposed", "kernel", "kernel_size", 2),
        ("depthwise", "out", "out_channels", 8),
        ("pool", "kernel", "kernel_size", 2),
        ("linear", "out", "out_features", 7),
        ("fixed", "kernel", "kernel_size", 5),
    ],
)
def test_alias_works_like_the_long_name(kind, short, long, value):
    fields = {k: v for k, v in MINIMAL[kind].items() if k != long}
    spec_short = load({"input": {"channels": 4, "size": [8, 8]}, "layers": [{"type": kind, **fields, short: value}]})
    spec_long = load({"input": {"channels": 4, "size": [8, 8]}, "layers": [{"type": kind, **fields, long: value}]})
    assert getattr(spec_short.layers[0], long) == value
    assert spec_short.layers[0] == spec_long.layers[0]


@pytest.mark.parametrize(
    "kind, short, long",
    [("conv", "out", "out_channels"), ("conv", "kernel", "kernel_size"), ("linear", "out", "out_features"), ("pool", "kernel", "kernel_size")],
)
@pytest.mark.parametrize("alias_last", [True, False])
def test_both_spellings_is_an_error_at_the_alias_key(kind, short, long, alias_last):
    fields = dict(MINIMAL[kind])
    value = fields.get(long, 3)
    fields.pop(long, None)
    pairs = [(long, value), (short, value)] if alias_last else [(short, value), (long, value)]
    for k, v in pairs:
        fields[k] = v
    text, offsets = _layer_yaml(kind, fields)
    problems = _problems(HEAD + text)
    assert len(problems) == 1, [str(p) for p in problems]
    p = problems[0]
    assert f"`{short}`" in p.message and f"`{long}`" in p.message
    assert p.location.line == 5 + offsets[short]
    assert p.location.column == 5
    assert p.layer and p.layer.startswith("layers[0] 'target'")


def test_alias_on_a_kind_without_that_key_is_unknown():
    problems = _problems(HEAD + "  - {type: flatten, out: 3}\n")
    assert len(problems) == 1
    assert "unknown key 'out'" in problems[0].message


@pytest.mark.parametrize("short, long", [("out", "out_channels"), ("kernel", "kernel_size")])
def test_bad_value_under_an_alias_points_at_the_alias_key(short, long):
    fields = {"out": 4, "kernel": 3}
    fields[short] = 1.5
    text, offsets = _layer_yaml("conv", fields)
    problems = _problems(HEAD + text)
    assert len(problems) == 1, [str(p) for p in problems]
    p = problems[0]
    assert f"`{short}`" in p.message or f"`{long}`" in p.message
    assert (p.location.line, p.location.column) == (5 + offsets[short], 5), str(p)


# ---------------------------------------------------------------- strict numbers

_INT_TYPES = [
    # (annotation, minimum, takes a per-dim list)
    (S.PosInt, 1, False),
    (S.NonNegInt, 0, False),
    (S.IntOrList, 1, True),
    (S.NonNegIntOrList, 0, True),
    (S.Padding, 0, True),
]


def _int_fields() -> list[tuple[str, str, int, bool, bool]]:
    """(kind, key, minimum, optional, takes_list) for every integer field of every layer kind, from the annotations."""
    found = []
    for kind, model in LAYER_MODELS.items():
        hints = typing.get_type_hints(model, include_extras=True)
        for attr, field in model.model_fields.items():
            annotation, optional = hints[attr], False
            if typing.get_origin(annotation) is typing.Union and type(None) in typing.get_args(annotation):
                rest = [a for a in typing.get_args(annotation) if a is not type(None)]
                if len(rest) == 1:
                    annotation, optional = rest[0], True
            for int_type, minimum, takes_list in _INT_TYPES:
                if annotation == int_type:
                    found.append((kind, field.alias or attr, minimum, optional, takes_list))
    return found


INT_FIELDS = _int_fields()
BAD_VALUES = [0, -1, 1.5, 3.0, True, "3", None, 2**40]


def _bad_cases():
    for kind, key, minimum, optional, takes_list in INT_FIELDS:
        for value in BAD_VALUES:
            if minimum == 0 and value == 0 and not isinstance(value, bool):
                continue  # 0 is fine where >= 0 is required
            if value is None and optional:
                continue  # null means "not given" for an optional key
            yield pytest.param(kind, key, value, id=f"{kind}.{key}={value!r}")
        if takes_list:  # a bad entry inside a per-dim list
            yield pytest.param(kind, key, [2, 1.5], id=f"{kind}.{key}=[2, 1.5]")
            yield pytest.param(kind, key, [2, True], id=f"{kind}.{key}=[2, true]")


def test_int_fields_derivation_finds_the_known_ones():
    keys = {(k, f) for k, f, *_ in INT_FIELDS}
    for expected in [
        ("conv", "out_channels"),
        ("conv", "kernel_size"),
        ("conv", "stride"),
        ("conv", "dilation"),
        ("conv", "groups"),
        ("conv", "padding"),
        ("conv", "in_channels"),
        ("depthwise", "multiplier"),
        ("transposed", "output_padding"),
        ("dynamic", "experts"),
        ("dynamic", "reduction"),
        ("pool", "padding"),
        ("adaptive_pool", "size"),
        ("shuffle", "groups"),
        ("linear", "out_features"),
        ("repeat", "times"),
    ]:
        assert expected in keys, expected
    # every kind with a required integer key has it listed
    assert {k for k, _ in keys} >= {"conv", "pointwise", "fixed", "norm", "pool", "upsample", "linear", "repeat"}


@pytest.mark.parametrize("kind, key, value", list(_bad_cases()))
def test_strict_integer_fields(kind, key, value):
    fields = dict(MINIMAL[kind])
    fields[key] = value
    text, offsets = _layer_yaml(kind, fields)
    with pytest.raises(SpecError) as info:
        load(HEAD + text)
    message_all = str(info.value)
    for raw in RAW_PYDANTIC:
        assert raw not in message_all, message_all
    problems = info.value.problems
    assert len(problems) == 1, [str(p) for p in problems]
    p = problems[0]
    assert f"`{key}`" in p.message, p.message
    assert p.layer is not None and p.layer.startswith(f"layers[0] 'target' ({kind})"), p.layer
    assert (p.location.line, p.location.column) == (5 + offsets[key], 5), str(p)


@pytest.mark.parametrize(
    "fields, key",
    [
        ({"channels": 0, "size": [8, 8]}, "channels"),
        ({"channels": 1.5, "size": [8, 8]}, "channels"),
        ({"channels": True, "size": [8, 8]}, "channels"),
        ({"channels": "3", "size": [8, 8]}, "channels"),
        ({"channels": 3, "size": [8, 1.5]}, "size"),
        ({"channels": 3, "size": [8, 0]}, "size"),
        ({"channels": 3, "size": [8, True]}, "size"),
        ({"channels": 3, "size": [8, 8], "batch": 3.0}, "batch"),
        ({"channels": 3, "size": [8, 8], "batch": 2**40}, "batch"),
    ],
)
def test_strict_integer_input_fields(fields, key):
    problems = _problems({"input": fields, "layers": [{"type": "flatten"}]})
    assert len(problems) == 1, [str(p) for p in problems]
    message = problems[0].message
    assert f"`{key}`" in message or f"`{key}[" in message, message  # `size[1]` names the entry


# ---------------------------------------------------------------- NaN and infinity


@pytest.mark.parametrize("bad", [".nan", ".inf", "-.inf", ".NaN", ".Inf"])
def test_nan_inf_in_fixed_filter(bad):
    problems = _problems(HEAD + f"  - type: fixed\n    filter: [[1, 0], [0, {bad}]]\n")
    assert len(problems) == 1
    message = problems[0].message
    assert "NaN" in message or "infinity" in message or "finite" in message
    assert "`filter`" in message
    assert problems[0].location.line == 6


@pytest.mark.parametrize("bad", [".nan", ".inf", "-.inf"])
def test_nan_inf_in_init_array(bad):
    text = HEAD + f"  - type: conv\n    out: 1\n    kernel: 1\n    init:\n      weight: [[[[{bad}]]]]\n"
    problems = _problems(text)
    assert len(problems) == 1
    message = problems[0].message
    assert "NaN" in message or "infinity" in message or "finite" in message
    assert problems[0].location.line == 9
    assert problems[0].layer.startswith("layers[0] 'conv_0' (conv)")


@pytest.mark.parametrize(
    "layer, key",
    [
        ("{type: fixed, filter: gaussian, kernel_size: 3, sigma: .nan}", "sigma"),
        ("{type: dropout, p: .nan}", "p"),
        ("{type: dynamic, out: 4, kernel: 3, temperature: .inf}", "temperature"),
        ("{type: act, fn: leaky_relu, negative_slope: .nan}", "negative_slope"),
        ("{type: upsample, scale: .inf}", "scale"),
        ("{type: conv, out: 1, kernel: 1, init: {weight: {constant: .nan}}}", "weight"),
        ("{type: conv, out: 1, kernel: 1, init: {bias: {uniform: [0, .inf]}}}", "bias"),
    ],
)
def test_nan_inf_in_other_number_fields(layer, key):
    problems = _problems(HEAD + f"  - {layer}\n")
    assert len(problems) == 1
    assert f"`{key}`" in problems[0].message
    assert "finite" in problems[0].message or "NaN" in problems[0].message


# ---------------------------------------------------------------- unknown keys and types


def test_unknown_key_did_you_mean():
    problems = _problems(HEAD + "  - type: conv\n    out: 4\n    kernel: 3\n    strid: 2\n")
    assert len(problems) == 1
    p = problems[0]
    assert "unknown key 'strid'" in p.message and "did you mean 'stride'" in p.message
    assert (p.location.line, p.location.column) == (8, 5)


@pytest.mark.parametrize("kind", sorted(LAYER_MODELS))
def test_unknown_key_in_every_kind_names_that_key(kind):
    fields = {**MINIMAL[kind], "bogus_key": 1}
    text, offsets = _layer_yaml(kind, fields)
    problems = _problems(HEAD + text)
    assert len(problems) == 1, [str(p) for p in problems]
    p = problems[0]
    assert "unknown key 'bogus_key'" in p.message, p.message
    assert (p.location.line, p.location.column) == (5 + offsets["bogus_key"], 5), str(p)
    assert p.layer.startswith(f"layers[0] 'target' ({kind})")


def test_unknown_key_at_top_level_and_in_input():
    problems = _problems("input:\n  channels: 3\n  sise: [8, 8]\nlayerz: []\nlayers:\n  - {type: flatten}\n")
    messages = [p.message for p in problems]
    assert any("'sise'" in m and "did you mean 'size'" in m for m in messages), messages
    assert any("'layerz'" in m and "did you mean 'layers'" in m for m in messages), messages
    assert len(problems) == 2


def test_unknown_key_without_a_close_match_lists_valid_keys():
    problems = _problems(HEAD + "  - {type: flatten, zzzzzz: 1}\n")
    assert "unknown key 'zzzzzz'" in problems[0].message
    assert "name" in problems[0].message and "from" in problems[0].message


def test_unknown_type_did_you_mean():
    problems = _problems(HEAD + "  - type: convv\n    out: 4\n    kernel: 3\n")
    assert len(problems) == 1
    p = problems[0]
    assert "unknown layer type 'convv'" in p.message and "did you mean 'conv'" in p.message
    assert p.location.line == 5


def test_unknown_type_without_a_close_match_lists_kinds():
    problems = _problems(HEAD + "  - {type: zzzz}\n")
    assert "'zzzz'" in problems[0].message
    for kind in ("conv", "separable", "fixed"):
        assert kind in problems[0].message


def test_missing_type():
    problems = _problems(HEAD + "  - {type: flatten}\n  - {out: 4, kernel: 3}\n")
    assert len(problems) == 1
    p = problems[0]
    assert "`type`" in p.message and "missing" in p.message
    assert p.location.line == 6
    assert p.layer and p.layer.startswith("layers[1]")


@pytest.mark.parametrize("value", ["3", "[conv]", "{a: 1}", "null", "true"])
def test_type_that_is_not_a_string(value):
    problems = _problems(HEAD + f"  - {{type: {value}}}\n")
    assert len(problems) == 1
    assert "type" in problems[0].message


def test_missing_required_key_names_it():
    problems = _problems(HEAD + "  - {type: conv, kernel: 3}\n")
    assert len(problems) == 1
    assert "`out_channels`" in problems[0].message
    assert problems[0].location.line == 5


def test_missing_input_and_layers():
    problems = _problems("name: x\n")
    messages = " ".join(p.message for p in problems)
    assert "`input`" in messages and "`layers`" in messages


# ---------------------------------------------------------------- all errors at once


def test_five_independent_errors_in_five_layers():
    text = (
        HEAD
        + "  - {type: conv, out: 4, kernel: 3}\n"  # 5: fine
        + "  - {type: conv, out: 4, kernel: 3, strid: 2}\n"  # 6: unknown key
        + "  - {type: convv, out: 4, kernel: 3}\n"  # 7: unknown type
        + "  - {type: flatten}\n"  # 8: fine
        + "  - type: group\n"  # 9
        + "    out: 4\n"  # 10
        + "    kernel: 3\n"  # 11
        + "    groups: 1.5\n"  # 12: not an integer
        + "  - {type: act, fn: relux}\n"  # 13: unknown activation
        + "  - {type: pool, kernel: 2, ceil_mode: 'yes'}\n"  # 14: not a bool
    )
    problems = _problems(text)
    assert len(problems) == 5, [str(p) for p in problems]
    lines = [p.location.line for p in problems]
    assert lines == sorted(lines)
    assert lines == [6, 7, 12, 13, 14]
    assert [p.layer.split(" ")[0] for p in problems] == ["layers[1]", "layers[2]", "layers[4]", "layers[5]", "layers[6]"]


def test_errors_sorted_by_line_across_sections():
    # `layers` comes first in the text, `input` after: the report follows the text
    text = "layers:\n  - {type: conv, out: 0, kernel: 3}\n  - {type: flatten, x: 1}\ninput:\n  channels: 0\n"
    problems = _problems(text)
    assert [p.location.line for p in problems] == [2, 3, 5]


def test_errors_in_nested_layers_are_all_reported():
    text = (
        HEAD
        + "  - type: residual\n"
        + "    layers:\n"
        + "      - {type: conv, out: 4, kernel: 0}\n"
        + "    shortcut:\n"
        + "      - {type: pointwise, out: -1}\n"
        + "  - type: repeat\n"
        + "    times: 2\n"
        + "    layers:\n"
        + "      - {type: block, layers: [{type: act, fn: rleu}]}\n"
    )
    problems = _problems(text)
    assert [p.location.line for p in problems] == [7, 9, 13]
    assert problems[0].layer.startswith("layers[0].layers[0]")
    assert problems[1].layer.startswith("layers[0].shortcut[0]")
    assert problems[2].layer.startswith("layers[1].layers[0].layers[0]")
    assert "did you mean 'relu'" in problems[2].message


# ---------------------------------------------------------------- layer names


@pytest.mark.parametrize("name", ["a", "conv1", "Stem", "layer1_0", "x_", "A9_b"])
def test_valid_layer_names(name):
    spec = load({"input": {"channels": 3}, "layers": [{"type": "flatten", "name": name}]})
    assert spec.layers[0].name == name


@pytest.mark.parametrize("name", ["1abc", "_x", "a-b", "a.b", "a b", "", "conv/1", "ä", "x!"])
def test_invalid_layer_names(name):
    problems = _problems({"input": {"channels": 3}, "layers": [{"type": "flatten", "name": name}]})
    assert len(problems) == 1
    assert "`name`" in problems[0].message
    assert "letter" in problems[0].message


def test_input_is_a_reserved_name():
    problems = _problems(HEAD + "  - {type: flatten}\n  - {type: identity, name: input}\n")
    assert len(problems) == 1
    p = problems[0]
    assert "reserved" in p.message
    assert p.location.line == 6
    assert p.layer.startswith("layers[1]")


def test_names_checked_inside_nested_lists():
    problems = _problems(HEAD + "  - type: block\n    layers:\n      - {type: identity, name: 9lives}\n")
    assert len(problems) == 1
    assert problems[0].location.line == 7


@pytest.mark.parametrize("value", ["5", "true", "[a]"])
def test_layer_name_must_be_a_string(value):
    problems = _problems(HEAD + f"  - {{type: flatten, name: {value}}}\n")
    assert len(problems) == 1
    assert "`name`" in problems[0].message


# ---------------------------------------------------------------- JSON Schema


@pytest.fixture(scope="module")
def schema():
    return json_schema()


@pytest.fixture(scope="module")
def validator(schema):
    return jsonschema.Draft202012Validator(schema)


def test_json_schema_is_valid_draft_2020_12(schema):
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    json.dumps(schema)  # serialisable


def test_json_schema_is_the_public_one(schema):
    assert convspec.json_schema() == schema


@pytest.mark.parametrize("path", SPEC_FILES, ids=[p.name for p in SPEC_FILES])
def test_json_schema_accepts_every_example_spec(validator, path):
    data = yaml.safe_load(path.read_text())
    errors = [e.message for e in validator.iter_errors(data)]
    assert not errors, errors


def _doc(layer: dict) -> dict:
    return {"input": {"channels": 3, "size": [8, 8]}, "layers": [layer]}


def test_json_schema_accepts_aliases(validator):
    assert validator.is_valid(_doc({"type": "conv", "out": 4, "kernel": 3}))
    assert validator.is_valid(_doc({"type": "linear", "out": 10}))
    assert validator.is_valid(_doc({"type": "pool", "kernel": 2}))


def test_json_schema_accepts_every_minimal_layer(validator):
    for kind, fields in MINIMAL.items():
        doc = _doc({"type": kind, **fields})
        errors = [e.message for e in validator.iter_errors(doc)]
        assert not errors, (kind, errors)


def test_json_schema_rejects_unknown_key_and_type(validator):
    assert not validator.is_valid(_doc({"type": "conv", "out": 4, "kernel": 3, "strid": 2}))
    assert not validator.is_valid(_doc({"type": "convv", "out": 4, "kernel": 3}))
    assert not validator.is_valid(_doc({"out": 4, "kernel": 3}))
    assert not validator.is_valid({"input": {"channels": 3}, "layers": [{"type": "flatten"}], "extra": 1})


def test_json_schema_rejects_what_the_loader_rejects(validator):
    assert not validator.is_valid(_doc({"type": "conv", "kernel": 3}))  # no out_channels
    assert not validator.is_valid(_doc({"type": "conv", "out": 4}))  # no kernel_size
    assert not validator.is_valid(_doc({"type": "conv", "out_channels": 4}))
    assert not validator.is_valid(_doc({"type": "linear"}))  # no out_features
    assert not validator.is_valid(_doc({"type": "conv", "out": 0, "kernel": 3}))
    assert not validator.is_valid(_doc({"type": "conv", "out": 4, "kernel": 3, "groups": 1.5}))
    assert not validator.is_valid(_doc({"type": "conv", "out": 4, "kernel": 3, "act": "relux"}))


def test_json_schema_has_every_layer_kind(schema):
    text = json.dumps(schema)
    mapping = schema["$defs"]["Spec"]["properties"]["layers"]["items"].get("discriminator", {}).get("mapping", {})
    for kind in LAYER_MODELS:
        assert f'"{kind}"' in text, kind
        if mapping:
            assert kind in mapping, kind


def _defs_by_kind(schema) -> dict[str, dict]:
    out = {}
    for definition in schema["$defs"].values():
        kind = definition.get("properties", {}).get("type", {})
        const = kind.get("const") or (kind.get("enum") or [None])[0]
        if const is not None:
            out[const] = definition
    return out


def test_json_schema_keeps_the_models_descriptions(schema):
    defs = _defs_by_kind(schema)
    assert set(defs) == set(LAYER_MODELS)
    for kind, model in LAYER_MODELS.items():
        props = defs[kind]["properties"]
        for attr, field in model.model_fields.items():
            key = field.alias or attr
            assert key in props, (kind, key)
            if field.description:
                assert props[key].get("description") == field.description, (kind, key)


CONV_SHARED = ["out_channels", "kernel_size", "stride", "dilation", "padding", "padding_mode", "groups", "bias", "norm", "act", "init", "trainable"]


@pytest.mark.parametrize("kind", S.CONV_KINDS)
def test_json_schema_describes_the_conv_shared_keys(schema, kind):
    props = _defs_by_kind(schema)[kind]["properties"]
    undescribed = [key for key in CONV_SHARED if key in props and not props[key].get("description")]
    assert not undescribed, f"{kind}: no description for {undescribed}"
    for short, long in [("out", "out_channels"), ("kernel", "kernel_size")]:
        if long in props:
            assert short in props and props[short].get("description"), (kind, short)


# ---------------------------------------------------------------- registries


def test_every_layer_kind_has_a_shape_rule_and_a_builder():
    from convspec.kinds import registry

    assert set(LAYER_MODELS) == set(registry)
    for kind in registry.values():
        assert callable(kind.rule) and callable(kind.resolve_builder()), kind.name


def test_every_conv_kind_is_a_layer_kind():
    assert set(S.CONV_KINDS) <= set(LAYER_MODELS)
    # the nine convolutions of the format contract
    assert set(S.CONV_KINDS) == {
        "conv", "pointwise", "asymmetric", "dilated", "depthwise", "group", "separable", "transposed", "dynamic",
    }  # fmt: skip


def test_math_is_finite_sanity():
    # guards the NaN tests: YAML's .nan really is NaN
    assert math.isnan(yaml.safe_load("a: .nan")["a"])

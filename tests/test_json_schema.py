"""The JSON Schema as an editor's validator uses it: one error, naming the key, for one mistake."""

from __future__ import annotations

import json

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convspec
from convspec.kernels import NAMED_FILTERS
from convspec.schema import LAYER_MODELS
from support import MINIMAL  # tests/ is on sys.path (conftest.py)

# the smallest valid layer of each kind (tests/test_schema.py's table, repeated so this file stands alone)


@pytest.fixture(scope="module")
def validator():
    return jsonschema.Draft202012Validator(convspec.json_schema())


def _doc(layer: dict, channels: int = 4) -> dict:
    return {"input": {"channels": channels, "size": [16, 16]}, "layers": [layer]}


def _keys(kind: str) -> list[str]:
    return [field.alias or name for name, field in LAYER_MODELS[kind].model_fields.items()]


def test_the_table_covers_every_kind():
    assert set(MINIMAL) == set(LAYER_MODELS)


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(sorted(MINIMAL)), data=st.data())
def test_a_typo_of_an_optional_key_is_one_error_naming_it(validator, kind, data):
    optional = [k for k in _keys(kind) if k not in MINIMAL[kind] and k != "type"]
    key = data.draw(st.sampled_from(optional))
    at = data.draw(st.integers(0, len(key) - 1))
    letter = data.draw(st.sampled_from("qxz"))
    typo = key[:at] + letter + key[at + 1 :]
    valid = set(_keys(kind)) | {"out", "kernel"}
    if typo in valid or typo == key:
        return
    errors = list(validator.iter_errors(_doc({"type": kind, **MINIMAL[kind], typo: 1})))
    assert len(errors) == 1, [e.message for e in errors]
    assert repr(typo) in errors[0].message and list(errors[0].absolute_path) == ["layers", 0]


def test_a_typo_deep_in_a_residual_is_found_where_it_is(validator):
    doc = _doc({"type": "residual", "layers": [{"type": "conv", "out": 4, "kernel": 3, "paddin": 1}]})
    (error,) = validator.iter_errors(doc)
    assert "'paddin' was unexpected" in error.message and list(error.absolute_path) == ["layers", 0, "layers", 0]


def test_a_missing_required_key_is_named(validator):
    (error,) = validator.iter_errors(_doc({"type": "linear"}))
    assert error.message == "'out_features' is a required property"
    errors = list(validator.iter_errors(_doc({"type": "conv", "out": 4, "kernel_sise": 3})))
    assert sorted(e.message for e in errors) == ["'kernel_size' is a required property", "Additional properties are not allowed ('kernel_sise' was unexpected)"]


def test_an_unknown_type_is_one_error_listing_the_kinds(validator):
    (error,) = validator.iter_errors(_doc({"type": "conv2d", "out": 4, "kernel": 3}))
    assert list(error.absolute_path) == ["layers", 0, "type"]
    assert all(repr(kind) in error.message for kind in LAYER_MODELS)


def test_the_named_filters_are_listed_with_their_keys(validator):
    (error,) = validator.iter_errors(_doc({"type": "fixed", "filter": "sobel"}))
    assert list(error.absolute_path) == ["layers", 0, "filter"]
    assert all(repr(name) in error.message for name in NAMED_FILTERS)
    (error,) = validator.iter_errors(_doc({"type": "conv", "out": 4, "kernel": 3, "init": {"weight": {"filter": "sobel"}}}))
    assert list(error.absolute_path) == ["layers", 0, "init", "weight", "filter"]
    text = json.dumps(convspec.json_schema())
    assert "gaussian (1D/2D/3D): Gaussian blur" in text and "sobel_x (2D): 3x3 Sobel" in text


FILTER_KEYS = [{}, {"kernel_size": 3}, {"kernel": [3, 3]}, {"kernel_size": 4}, {"sigma": 1.0}, {"kernel_size": 5, "sigma": 1.5}]


@pytest.mark.parametrize("name", list(NAMED_FILTERS))
@pytest.mark.parametrize("keys", FILTER_KEYS, ids=lambda keys: "+".join(keys) or "none")
def test_the_schema_takes_a_filter_s_keys_as_the_checker_does(validator, name, keys):
    layer = {"type": "fixed", "filter": name, **keys}
    schema_ok = validator.is_valid(_doc(layer))
    try:
        convspec.check(_doc(layer))
        checker_ok = True
    except convspec.SpecError:
        checker_ok = False
    assert schema_ok == checker_ok, (layer, [e.message for e in validator.iter_errors(_doc(layer))])


def test_every_union_of_kinds_selects_by_type_and_repeated_keys_are_written_once():
    from convspec.editor_schema import SHARED_FROM_BYTES, _canonical, shareable_definitions

    schema = convspec.json_schema()
    text = json.dumps(schema)
    assert '"discriminator"' not in text and '"oneOf"' not in text
    assert schema["$defs"]["Spec"]["properties"]["layers"]["items"] == {"$ref": "#/$defs/Layer"}
    inline: dict[str, int] = {}
    for definition in shareable_definitions(schema):
        for value in definition["properties"].values():
            if isinstance(value, dict) and "$ref" not in value and len(_canonical(value)) >= SHARED_FROM_BYTES:
                inline[_canonical(value)] = inline.get(_canonical(value), 0) + 1
    assert all(count == 1 for count in inline.values())  # a key schema used twice is a shared $ref
    for name in schema["$defs"]["keys"]["$defs"]:
        assert text.count(f'"#/$defs/keys/$defs/{name}"') >= 2, name

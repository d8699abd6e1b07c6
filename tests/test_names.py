"""Layer names: one rule, and every name it accepts checks, builds and exports."""

from __future__ import annotations

import keyword

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import convspec
from convspec.export import export_onnx
from convspec.layer_names import MODULE_ATTRIBUTES, layer_name_problem


def conv_named(name: str) -> dict:
    return {"type": "conv", "out": 2, "kernel_size": 1, "name": name}


@pytest.mark.parametrize("name", sorted(set(keyword.kwlist)))
def test_python_keywords_are_refused_with_a_located_reason(name):
    spec = f"input: {{channels: 1, size: [4, 4]}}\nlayers:\n  - {{type: conv, out: 2, kernel_size: 1, name: '{name}'}}\n"
    with pytest.raises(convspec.SpecError) as refused:
        convspec.check(spec)
    assert "Python keyword" in str(refused.value) and "<string>:3:" in str(refused.value)


@pytest.mark.parametrize("name", ["a\n", "a ", "\na", "a-b", "1a", "_a", "é", "a\u0660"])
def test_names_that_are_not_plain_identifiers_are_refused(name):
    with pytest.raises(convspec.SpecError):
        convspec.check({"input": {"channels": 1, "size": [4, 4]}, "layers": [conv_named(name)]})


identifiers = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,12}", fullmatch=True)


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(names=st.lists(identifiers, min_size=1, max_size=6, unique=True))
def test_every_name_the_checker_accepts_builds_and_exports(names, tmp_path_factory):
    names = [name for name in names if layer_name_problem(name) is None]
    if not names:
        return
    spec = {"input": {"channels": 1, "size": [4, 4]}, "layers": [conv_named(name) for name in names]}
    model = convspec.build(spec)
    assert [child for child, _ in model.named_children()] == names
    result = export_onnx(model, spec, tmp_path_factory.mktemp("names") / "m.onnx")
    assert all(check.ok for check in result.checks)


def test_the_rule_refuses_exactly_keywords_reserved_words_and_non_identifiers():
    assert layer_name_problem("conv1") is None
    assert layer_name_problem("match") is None  # a soft keyword is a valid attribute name
    assert all(layer_name_problem(word) for word in keyword.kwlist)
    assert all(layer_name_problem(word) for word in MODULE_ATTRIBUTES | {"input"})


def test_an_output_listed_twice_is_a_located_error():
    spec = (
        "input: {channels: 1, size: [8, 8]}\nlayers:\n  - {type: conv, out: 2, kernel_size: 3, name: a}\n"
        "  - {type: conv, out: 2, kernel_size: 3, name: b}\noutputs: [a, a, b]\n"
    )
    with pytest.raises(convspec.SpecError) as refused:
        convspec.check(spec)
    assert [str(problem) for problem in refused.value.problems] == ["<string>:5:14: `outputs` lists 'a' twice; list each layer once"]
    assert refused.value.report.errors == refused.value.problems  # the traced report comes with the error


def test_an_empty_from_is_an_error_not_the_previous_layer():
    spec = "input: {channels: 1, size: [8, 8]}\nlayers:\n  - {type: conv, out: 2, kernel_size: 3}\n  - {type: add, from: []}\n"
    with pytest.raises(convspec.SpecError) as refused:
        convspec.check(spec)
    assert "<string>:4:" in str(refused.value) and "`from: []` names no input" in str(refused.value)

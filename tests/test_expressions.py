"""Expressions in spec values (`$out * 2`, `$(64 * width)`): what they compute, what they refuse, where errors point."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convspec
from convspec.expressions import MAX_CHARS, ExpressionError, evaluate, is_expression, parse

HEAD = "input: {channels: 3, size: [16, 16]}\n"


def value(text: str, params=None, factors=None):
    return evaluate(parse(text), params or {}, factors or {})


def test_arithmetic_and_functions():
    assert value("$out * 2", {"out": 16}) == 32
    assert value("$out / 2", {"out": 16}) == 8 and isinstance(value("$out / 2", {"out": 16}), int)
    assert value("$out // 3 + $out % 3", {"out": 16}) == 6
    assert value("$(-(2 - 5))") == 3
    assert value("${out}*2", {"out": 5}) == 10
    assert value("$(min(3, 1, 2) + max(4, 5) + round(2.5) + round(3.5))") == 1 + 5 + 2 + 4
    assert value("$(make_divisible(100 * width, channel_divisor))", factors={"width": 0.25, "channel_divisor": 8}) == 32
    assert value("$p * 0.5", {"p": 3}) == 1.5


@settings(max_examples=100, deadline=None)
@given(a=st.integers(-10**6, 10**6), b=st.integers(1, 10**4))
def test_integer_arithmetic_matches_python(a, b):
    params = {"a": a, "b": b}
    assert value("$a + $b * 3 - $a // $b + $a % $b", params) == a + b * 3 - a // b + a % b
    assert value("$(max($a, $b) - min($a, $b))", params) == max(a, b) - min(a, b)


@pytest.mark.parametrize(
    "text, what",
    [
        ("$out.real", "attribute access"),
        ("$out[0]", "subscripts"),
        ("$out < 2", "comparisons"),
        ("$out if 1 else 2", "`if` expressions"),
        ("$(lambda: 1)", "lambdas"),
        ("$(2 ** 8)", "operator Pow"),
        ("$(__import__('os'))", "only min, max, round, make_divisible can be called"),
        ("$(open(1))", "only min, max, round, make_divisible"),
        ("$('text')", "only numbers"),
        ("$(True + 1)", "only numbers"),
        ("$(x + 1)", "unknown name 'x'"),
        ("$(min(*[1]))", "min() takes plain values"),
        ("$out & 1", "operator BitAnd"),
    ],
)
def test_forbidden_constructs(text, what):
    with pytest.raises(ExpressionError, match=re.escape(what)):
        value(text, {"out": 4})


def test_bounded_size():
    with pytest.raises(ExpressionError, match=f"at most {MAX_CHARS}"):
        parse("$(" + "+".join(["1"] * 120) + ")")
    with pytest.raises(ExpressionError, match="out of range"):
        value("$(99999999 * 99999999 * 99999999)")
    with pytest.raises(ExpressionError, match="division by zero"):
        value("$out // 0", {"out": 3})


def test_only_strings_with_a_dollar_that_are_not_one_placeholder():
    assert is_expression("$out * 2") and is_expression("$(1)")
    assert not is_expression("$out") and not is_expression("${out}") and not is_expression("relu") and not is_expression(3)


def test_template_expressions_in_a_spec():
    text = HEAD + """\
blocks:
  cbs:
    params: {out: required, kernel: 3}
    type: conv
    out: $out * 2
    kernel: $kernel
    padding: $kernel // 2
layers:
  - {name: a, type: use, block: cbs, with: {out: 8, kernel: 5}}
  - {name: b, type: use, block: cbs, with: {out: $(8 * width)}}
  - {name: c, type: use, block: cbs, with: {out: "$(make_divisible(20, channel_divisor) // 2)", kernel: 1}}
"""
    report = convspec.check(text)
    assert report.valid, report.errors
    layers = {layer.name: layer for layer in report.layers}
    assert layers["a"].output_shape == (1, 16, 16, 16)
    assert layers["b"].output_shape == (1, 16, 16, 16)
    assert layers["c"].output_shape == (1, 24, 16, 16)
    assert convspec.load(text).layers[0].padding == 2


def test_bad_expression_is_located_at_its_line_and_column():
    text = HEAD + """\
blocks:
  cbs:
    params: {out: required}
    type: conv
    out: $out * * 2
    kernel: 3
layers:
  - {type: use, block: cbs, with: {out: 8}}
"""
    with pytest.raises(convspec.SpecError) as err:
        convspec.check(text)
    (problem,) = err.value.problems
    assert (problem.location.line, problem.location.column) == (6, 10)
    assert "'$out * * 2': not an expression" in problem.message and "character 8" in problem.message


def test_unknown_parameter_in_an_expression_has_a_hint():
    text = HEAD + """\
blocks:
  cbs: {params: {out: required}, type: conv, out: $outt + 1, kernel: 3}
layers:
  - {type: use, block: cbs, with: {out: 8}}
"""
    with pytest.raises(convspec.SpecError, match=r"\$outt in '\$outt \+ 1' is not a parameter .*did you mean 'out'"):
        convspec.check(text)


def test_a_parameter_that_is_not_a_number_is_located_at_the_expression():
    text = HEAD + """\
blocks:
  cbs: {params: {out: required}, type: conv, out: $out * 2, kernel: 3}
layers:
  - {type: use, block: cbs, with: {out: wide}}
"""
    with pytest.raises(convspec.SpecError) as err:
        convspec.check(text)
    (problem,) = err.value.problems
    assert problem.location.line == 3 and "$out is 'wide', not a number" in problem.message


def test_an_expression_outside_templates_and_with_is_an_error():
    with pytest.raises(convspec.SpecError, match="expressions work in a template in `blocks:` and in the `with:` values"):
        convspec.check(HEAD + "layers:\n  - {type: conv, out: $(2 * 8), kernel: 3}\n")
    with pytest.raises(convspec.SpecError, match="parameters only exist inside a template"):
        convspec.check(HEAD + "blocks: {b: {params: {n: 1}, type: conv, out: $n, kernel: 1}}\nlayers:\n  - {type: use, block: b, with: {n: $n * 2}}\n")


def test_expressions_see_the_chosen_scale():
    text = HEAD + """\
scales: {half: {width: 0.5}}
blocks: {b: {params: {n: 1}, type: conv, out: $n, kernel: 1, keep_width: true}}
layers:
  - {name: c, type: use, block: b, with: {n: $(64 * width)}}
"""
    assert convspec.check(text).layers[0].output_shape[1] == 64
    assert convspec.check(text, scale="half").layers[0].output_shape[1] == 32

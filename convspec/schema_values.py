"""The spec format's values: strict validators, the names each enumeration takes, and their JSON Schema.

Integer fields refuse booleans and floats (YAML's `yes` is not a channel count), per-dimension
fields take an int or a list, and every float is one float32 holds. A validator raises
`value_error`, which `schema_errors` turns into a located problem.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, Union

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from .errors import did_you_mean as _did_you_mean
from .errors import quote
from .geometry import PAD_MODES
from .limits import FLOAT32_MAX, INT_LIMIT, float32_problem

ACTIVATIONS = (
    "relu", "relu6", "leaky_relu", "silu", "gelu", "sigmoid", "tanh", "hardswish", "mish", "hardsigmoid", "hardtanh",
)  # fmt: skip
# `padding` words: PyTorch's `same` and `valid`, and ONNX's auto_pad `same_upper` / `same_lower` (TensorFlow's "SAME")
PADDING_WORDS = ("same", "valid", "same_upper", "same_lower")
NORMS = ("batch", "instance", "group", "layer")
PADDING_MODES = tuple(PAD_MODES)  # zeros, reflect, replicate, circular
MEMORY_FORMATS = ("contiguous", "channels_last")
UPSAMPLE_MODES = ("nearest", "linear", "bilinear", "bicubic", "trilinear")
INIT_NAMES = (
    "default",
    "zeros",
    "ones",
    "kaiming_normal",
    "kaiming_uniform",
    "xavier_normal",
    "xavier_uniform",
    "orthogonal",
)
# the layer types of the conv family
CONV_KINDS = ("conv", "pointwise", "asymmetric", "dilated", "depthwise", "group", "separable", "transposed", "dynamic")

# ---------------------------------------------------------------- value types


def value_error(message: str, **ctx: Any) -> PydanticCustomError:
    """The error a validator raises: pydantic reports it under the type `convspec`, with `message` as its text."""
    return PydanticCustomError("convspec", message, ctx)


def describe_value(value: Any) -> str:
    """`value` as a message names it: a quoted string, `null`, `a list`, or `true (a YAML boolean)`."""
    if isinstance(value, bool):
        return f"{str(value).lower()} (a YAML boolean)"
    if isinstance(value, str):
        return quote(value)
    if value is None:
        return "null"
    if isinstance(value, (list, dict)):
        return f"a {'list' if isinstance(value, list) else 'mapping'}"
    return repr(value)


def _int(value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer() and math.isfinite(value):
            raise value_error(f"must be a whole number written without a decimal point, not {value!r}")
        kind = "a positive integer" if minimum == 1 else "an integer >= 0"
        raise value_error(f"must be {kind}, not {describe_value(value)}")
    if value < minimum:
        raise value_error(f"must be {'>= 1' if minimum == 1 else '>= 0'}, not {value}")
    if value > INT_LIMIT:
        raise value_error(f"is too large ({value:,}); at most {INT_LIMIT:,}")
    return value


def _int_or_list(value: Any, minimum: int) -> int | list[int]:
    if isinstance(value, list):
        if not value:
            raise value_error("must not be an empty list")
        if len(value) > 3:
            raise value_error(f"has {len(value)} entries; at most 3 (one per spatial dim)")
        try:
            return [_int(v, minimum) for v in value]
        except PydanticCustomError as err:
            raise value_error(f"every entry {err.message()}") from None
    return _int(value, minimum)


def float32_number(value: Any) -> float:
    """Every float of the format: a finite number that float32 holds (`limits.float32_problem`)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise value_error(f"must be a number, not {describe_value(value)}")
    problem = float32_problem(value)
    if problem:
        raise value_error(problem)
    return float(value)


def _positive_number(value: Any) -> float:
    number = float32_number(value)
    if number <= 0:
        raise value_error(f"must be > 0, not {value}")
    return number


def _number_or_list(value: Any) -> float | list[float]:
    if isinstance(value, list):
        if not value or len(value) > 3:
            raise value_error("must be a number or a list of 1 to 3 numbers")
        return [_positive_number(v) for v in value]
    return _positive_number(value)


_PADDING_FORMS = "an integer, a per-dim list, [before, after] pairs per dim, 'same', 'valid', 'same_upper' or 'same_lower'"


def _padding(value: Any) -> int | list[int] | list[list[int]] | str:
    if isinstance(value, str):
        if value in PADDING_WORDS:
            return value
        tensorflow = {"SAME": "same_upper", "VALID": "valid"}  # TensorFlow/Keras spell them upper-case
        hint = f" (TensorFlow's {value} is {tensorflow[value]!r})" if value in tensorflow else _did_you_mean(value, PADDING_WORDS)
        raise value_error(f"must be {_PADDING_FORMS}, not {quote(value)}{hint}")
    if isinstance(value, list) and any(isinstance(v, list) for v in value):
        return _padding_pairs(value)
    return _int_or_list(value, 0)


def _padding_pairs(value: list) -> list[list[int]]:
    """Explicit per-side padding: one [before, after] pair per spatial dim (an int entry pads both sides alike)."""
    if len(value) > 3:
        raise value_error(f"has {len(value)} entries; at most 3 (one [before, after] pair per spatial dim)")
    pairs = []
    for index, entry in enumerate(value):
        if isinstance(entry, list):
            if len(entry) != 2:
                raise value_error(f"entry {index} is {entry}; a per-side entry is one [before, after] pair of integers >= 0")
            try:
                pairs.append([_int(v, 0) for v in entry])
            except PydanticCustomError as err:
                raise value_error(f"entry {index}: every value {err.message()}") from None
        else:
            try:
                side = _int(entry, 0)
            except PydanticCustomError as err:
                raise value_error(f"entry {index} {err.message()}") from None
            pairs.append([side, side])
    return pairs


def _strict_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise value_error(f"must be true or false, not {describe_value(value)}")
    return value


def _int_schema(minimum: int) -> dict:
    return {"type": "integer", "minimum": minimum, "maximum": INT_LIMIT}


PosInt = Annotated[int, PlainValidator(lambda v: _int(v, 1)), WithJsonSchema(_int_schema(1))]
NonNegInt = Annotated[int, PlainValidator(lambda v: _int(v, 0)), WithJsonSchema(_int_schema(0))]
IntOrList = Annotated[
    Union[int, list[int]],
    PlainValidator(lambda v: _int_or_list(v, 1)),
    WithJsonSchema(
        {"anyOf": [_int_schema(1), {"type": "array", "items": _int_schema(1), "minItems": 1, "maxItems": 3}]}
    ),
]
NonNegIntOrList = Annotated[
    Union[int, list[int]],
    PlainValidator(lambda v: _int_or_list(v, 0)),
    WithJsonSchema(
        {"anyOf": [_int_schema(0), {"type": "array", "items": _int_schema(0), "minItems": 1, "maxItems": 3}]}
    ),
]
_PAIR_SCHEMA = {"type": "array", "items": _int_schema(0), "minItems": 2, "maxItems": 2, "description": "[before, after]"}
Padding = Annotated[
    Union[int, list[int], list[list[int]], str],
    PlainValidator(_padding),
    WithJsonSchema(
        {
            "anyOf": [
                _int_schema(0),
                {"type": "array", "items": _int_schema(0), "minItems": 1, "maxItems": 3},
                {"type": "array", "items": {"anyOf": [_int_schema(0), _PAIR_SCHEMA]}, "minItems": 1, "maxItems": 3},
                {"enum": list(PADDING_WORDS)},
            ]
        }
    ),
]
PositiveFloat = Annotated[float, PlainValidator(_positive_number), WithJsonSchema({"type": "number", "exclusiveMinimum": 0})]
FloatOrList = Annotated[
    Union[float, list[float]],
    PlainValidator(_number_or_list),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0},
                {"type": "array", "items": {"type": "number", "exclusiveMinimum": 0}, "minItems": 1, "maxItems": 3},
            ]
        }
    ),
]
Bool = Annotated[bool, PlainValidator(_strict_bool), WithJsonSchema({"type": "boolean"})]
Number = Annotated[float, PlainValidator(float32_number), WithJsonSchema({"type": "number"})]


def _fraction(value: Any, closed: bool) -> float:
    number = float32_number(value)
    if not (0 <= number <= 1 if closed else 0 <= number < 1):
        raise value_error(f"must be in [0, 1{']' if closed else ')'}, not {value}")
    return number


# BatchNorm's momentum (PyTorch's convention: the weight of the new batch statistic), in [0, 1]
Momentum = Annotated[float, PlainValidator(lambda v: _fraction(v, True)), WithJsonSchema({"type": "number", "minimum": 0, "maximum": 1})]
# a probability of dropping, in [0, 1)
DropProbability = Annotated[
    float, PlainValidator(lambda v: _fraction(v, False)), WithJsonSchema({"type": "number", "minimum": 0, "exclusiveMaximum": 1})
]


# Other names for the same functions (timm's, Keras', papers'): the hint gives convspec's.
ACTIVATION_SYNONYMS = {
    "swish": "silu", "lrelu": "leaky_relu", "leaky": "leaky_relu", "hswish": "hardswish", "h_swish": "hardswish",
    "hard_swish": "hardswish", "hsigmoid": "hardsigmoid", "h_sigmoid": "hardsigmoid", "hard_sigmoid": "hardsigmoid",
}  # fmt: skip


def _enum(name: str, choices: tuple[str, ...], synonyms: dict[str, str] | None = None):
    def check(value: Any) -> str:
        if isinstance(value, str) and value in choices:
            return value
        hint = _did_you_mean(value, choices) if isinstance(value, str) else ""
        if isinstance(value, str) and synonyms and value.lower() in synonyms:
            hint = f" (convspec calls it {synonyms[value.lower()]!r})"
        raise value_error(f"{describe_value(value)} is not a known {name}{hint}; choose one of: {', '.join(choices)}")

    return Annotated[str, PlainValidator(check), WithJsonSchema({"enum": list(choices)})]


ActName = _enum("activation", ACTIVATIONS, ACTIVATION_SYNONYMS)
NormName = _enum("norm", NORMS)
PaddingMode = _enum("padding_mode", PADDING_MODES)
PoolOp = _enum("pool op", ("max", "avg"))
UpsampleMode = _enum("upsample mode", UPSAMPLE_MODES)
MemoryFormat = _enum("memory_format", MEMORY_FORMATS)


def _nested_numbers(value: Any, where: str = "") -> list:
    """A non-empty rectangular nested list of finite numbers (any depth)."""
    if not isinstance(value, list) or not value:
        raise value_error(f"entry{where} must be a non-empty list")
    if all(isinstance(v, list) for v in value):
        rows = [_nested_numbers(v, f"{where}[{i}]") for i, v in enumerate(value)]
        shapes = {_shape(r) for r in rows}
        if len(shapes) > 1:
            raise value_error(f"entry{where or ' (top level)'} is ragged: its rows have different lengths or depths")
        return rows
    numbers = []
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise value_error(f"entry{where}[{i}] is {describe_value(v)}, not a number")
        problem = float32_problem(v)  # entries become float32 weights
        if problem:
            raise value_error(f"entry{where}[{i}] {problem}")
        numbers.append(float(v))
    return numbers


def _shape(nested: Any) -> tuple[int, ...]:
    shape = []
    while isinstance(nested, list):
        shape.append(len(nested))
        nested = nested[0] if nested else None
    return tuple(shape)


# ---------------------------------------------------------------- init


@dataclass(frozen=True)
class Init:
    """A parsed weight or bias initialiser."""

    kind: str  # an INIT_NAMES entry, or constant / uniform / normal / filter / array
    args: tuple = ()
    array: list | None = None  # nested lists for kind == "array"
    filter: dict | None = None  # {name, kernel_size, sigma} for kind == "filter"


NORMAL_REACH = 10  # draws of torch's normal_ stay within 10 std of the mean (beyond is a 1e-23 chance)

_INIT_FORMS = (
    "one of " + ", ".join(INIT_NAMES) + "; {constant: v}; {uniform: [a, b]}; {normal: [mean, std]}; "
    "{filter: NAME, kernel_size: K, sigma: S}; or a literal array of the weight's shape"
)


def _init(value: Any) -> Init:
    if isinstance(value, str):
        if value in INIT_NAMES:
            return Init(value)
        raise value_error(f"{quote(value)} is not a known initialiser{_did_you_mean(value, INIT_NAMES)}; use {_INIT_FORMS}")
    if isinstance(value, list):
        return Init("array", array=_nested_numbers(value))
    if isinstance(value, dict):
        if "filter" in value:
            unknown = set(value) - {"filter", "kernel_size", "sigma"}
            if unknown:
                raise value_error(f"unknown key {quote(sorted(unknown, key=str)[0])} in a filter initialiser; keys: filter, kernel_size, sigma")
            if not isinstance(value["filter"], str):
                raise value_error("`filter` must be a filter name")
            return Init("filter", filter=dict(value))
        if len(value) != 1:
            raise value_error(f"an initialiser mapping has exactly one key; use {_INIT_FORMS}")
        (kind, arg), = value.items()
        if kind == "constant":
            return Init("constant", (float32_number(arg),))
        if kind in ("uniform", "normal"):
            if not isinstance(arg, list) or len(arg) != 2:
                raise value_error(f"{kind} takes a list of two numbers, e.g. {{{kind}: [0, 1]}}")
            a, b = float32_number(arg[0]), float32_number(arg[1])
            if kind == "uniform" and a > b:
                raise value_error(f"uniform bounds must be [low, high] with low <= high, not [{a}, {b}]")
            if kind == "uniform" and b - a > FLOAT32_MAX:  # torch's own limit: the width must be a float32 too
                raise value_error(f"uniform bounds [{a:g}, {b:g}] are too far apart for float32: high - low must be at most {FLOAT32_MAX:.4g}")
            if kind == "normal" and b < 0:
                raise value_error(f"normal std must be >= 0, not {b}")
            if kind == "normal" and abs(a) + NORMAL_REACH * b > FLOAT32_MAX:
                raise value_error(
                    f"normal [{a:g}, {b:g}] would draw values beyond float32 (|mean| + {NORMAL_REACH} std must be at most "
                    f"{FLOAT32_MAX:.4g}); use a smaller mean or std"
                )
            return Init(kind, (a, b))
        raise value_error(f"unknown initialiser {quote(kind)}{_did_you_mean(str(kind), ('constant', 'uniform', 'normal', 'filter'))}; use {_INIT_FORMS}")
    raise value_error(f"an initialiser is {_INIT_FORMS}; not {describe_value(value)}")


_INIT_JSON = {
    "anyOf": [
        {"enum": list(INIT_NAMES)},
        {"type": "object", "properties": {"constant": {"type": "number"}}, "required": ["constant"], "additionalProperties": False},
        {"type": "object", "properties": {"uniform": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}}, "required": ["uniform"], "additionalProperties": False},
        {"type": "object", "properties": {"normal": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}}, "required": ["normal"], "additionalProperties": False},
        {"type": "object", "properties": {"filter": {"type": "string"}, "kernel_size": {}, "sigma": {}}, "required": ["filter"], "additionalProperties": False},
        {"type": "array"},
    ],
    "description": "How to initialise: " + _INIT_FORMS,
}
def _init_data(init: Init) -> Any:
    """An Init as the spec writes it, so that a Spec's `model_dump` reads back as the same Spec."""
    if init.kind == "array":
        return init.array
    if init.kind == "filter":
        return dict(init.filter or {})
    if init.kind == "constant":
        return {"constant": init.args[0]}
    if init.kind in ("uniform", "normal"):
        return {init.kind: list(init.args)}
    return init.kind


InitValue = Annotated[Init, PlainValidator(_init), PlainSerializer(_init_data), WithJsonSchema(_INIT_JSON)]


def _filter_value(value: Any) -> str | list:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return _nested_numbers(value)
    raise value_error(f"must be a filter name or a literal matrix (nested lists of numbers), not {describe_value(value)}")


FilterValue = Annotated[
    Union[str, list],
    PlainValidator(_filter_value),
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "array"}], "description": "a named filter or a literal matrix"}),
]


"""The spec format as pydantic models: one discriminated union of layer kinds on `type`.

Every model forbids unknown keys. Integer fields refuse booleans and floats
(YAML's `yes` is not a channel count), and per-dimension fields take an int
or a list. Rules that need the input's shape (groups dividing channels, list
lengths matching the number of spatial dims) belong to `shapes`, which sees
the whole graph; this module checks what one layer can know on its own.

`parse_spec` turns pydantic's errors into located `Problem`s with hints, so a
user never sees pydantic's raw error text.
"""

from __future__ import annotations

import difflib
import keyword
import math
import re
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import (
    GetCoreSchemaHandler,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    PrivateAttr,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError, PydanticSerializationError, core_schema

from .errors import InputError, Location, Problem, SpecError, first_line, in_order, quote
from .errors import did_you_mean as _did_you_mean
from .geometry import PAD_MODES
from .limits import FLOAT32_MAX, INT_LIMIT, float32_problem
from .python_data import read_python
from .source import Source, layer_label
from .template_schema import template_json_schema
from .templates import expand as expand_templates

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

# Short spellings users may write for PyTorch's names; giving both is an error.
KEY_ALIASES = {"out": ("out_channels", "out_features"), "kernel": ("kernel_size",)}


# ---------------------------------------------------------------- value types


def _fail(message: str, **ctx: Any) -> PydanticCustomError:
    return PydanticCustomError("convspec", message, ctx)


def _describe(value: Any) -> str:
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
            raise _fail(f"must be a whole number written without a decimal point, not {value!r}")
        kind = "a positive integer" if minimum == 1 else "an integer >= 0"
        raise _fail(f"must be {kind}, not {_describe(value)}")
    if value < minimum:
        raise _fail(f"must be {'>= 1' if minimum == 1 else '>= 0'}, not {value}")
    if value > INT_LIMIT:
        raise _fail(f"is too large ({value:,}); at most {INT_LIMIT:,}")
    return value


def _int_or_list(value: Any, minimum: int) -> int | list[int]:
    if isinstance(value, list):
        if not value:
            raise _fail("must not be an empty list")
        if len(value) > 3:
            raise _fail(f"has {len(value)} entries; at most 3 (one per spatial dim)")
        try:
            return [_int(v, minimum) for v in value]
        except PydanticCustomError as err:
            raise _fail(f"every entry {err.message()}") from None
    return _int(value, minimum)


def _number(value: Any) -> float:
    """Every float of the format: a finite number that float32 holds (`limits.float32_problem`)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(f"must be a number, not {_describe(value)}")
    problem = float32_problem(value)
    if problem:
        raise _fail(problem)
    return float(value)


def _positive_number(value: Any) -> float:
    number = _number(value)
    if number <= 0:
        raise _fail(f"must be > 0, not {value}")
    return number


def _number_or_list(value: Any) -> float | list[float]:
    if isinstance(value, list):
        if not value or len(value) > 3:
            raise _fail("must be a number or a list of 1 to 3 numbers")
        return [_positive_number(v) for v in value]
    return _positive_number(value)


_PADDING_FORMS = "an integer, a per-dim list, [before, after] pairs per dim, 'same', 'valid', 'same_upper' or 'same_lower'"


def _padding(value: Any) -> int | list[int] | list[list[int]] | str:
    if isinstance(value, str):
        if value in PADDING_WORDS:
            return value
        tensorflow = {"SAME": "same_upper", "VALID": "valid"}  # TensorFlow/Keras spell them upper-case
        hint = f" (TensorFlow's {value} is {tensorflow[value]!r})" if value in tensorflow else _did_you_mean(value, PADDING_WORDS)
        raise _fail(f"must be {_PADDING_FORMS}, not {quote(value)}{hint}")
    if isinstance(value, list) and any(isinstance(v, list) for v in value):
        return _padding_pairs(value)
    return _int_or_list(value, 0)


def _padding_pairs(value: list) -> list[list[int]]:
    """Explicit per-side padding: one [before, after] pair per spatial dim (an int entry pads both sides alike)."""
    if len(value) > 3:
        raise _fail(f"has {len(value)} entries; at most 3 (one [before, after] pair per spatial dim)")
    pairs = []
    for index, entry in enumerate(value):
        if isinstance(entry, list):
            if len(entry) != 2:
                raise _fail(f"entry {index} is {entry}; a per-side entry is one [before, after] pair of integers >= 0")
            try:
                pairs.append([_int(v, 0) for v in entry])
            except PydanticCustomError as err:
                raise _fail(f"entry {index}: every value {err.message()}") from None
        else:
            try:
                side = _int(entry, 0)
            except PydanticCustomError as err:
                raise _fail(f"entry {index} {err.message()}") from None
            pairs.append([side, side])
    return pairs


def _strict_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _fail(f"must be true or false, not {_describe(value)}")
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


def _fraction(value: Any, closed: bool) -> float:
    number = _number(value)
    if not (0 <= number <= 1 if closed else 0 <= number < 1):
        raise _fail(f"must be in [0, 1{']' if closed else ')'}, not {value}")
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
        raise _fail(f"{_describe(value)} is not a known {name}{hint}; choose one of: {', '.join(choices)}")

    return Annotated[str, PlainValidator(check), WithJsonSchema({"enum": list(choices)})]


ActName = _enum("activation", ACTIVATIONS, ACTIVATION_SYNONYMS)
NormName = _enum("norm", NORMS)
PaddingMode = _enum("padding_mode", PADDING_MODES)
PoolOp = _enum("pool op", ("max", "avg"))
UpsampleMode = _enum("upsample mode", UPSAMPLE_MODES)


def _nested_numbers(value: Any, where: str = "") -> list:
    """A non-empty rectangular nested list of finite numbers (any depth)."""
    if not isinstance(value, list) or not value:
        raise _fail(f"entry{where} must be a non-empty list")
    if all(isinstance(v, list) for v in value):
        rows = [_nested_numbers(v, f"{where}[{i}]") for i, v in enumerate(value)]
        shapes = {_shape(r) for r in rows}
        if len(shapes) > 1:
            raise _fail(f"entry{where or ' (top level)'} is ragged: its rows have different lengths or depths")
        return rows
    numbers = []
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _fail(f"entry{where}[{i}] is {_describe(v)}, not a number")
        problem = float32_problem(v)  # entries become float32 weights
        if problem:
            raise _fail(f"entry{where}[{i}] {problem}")
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
        raise _fail(f"{quote(value)} is not a known initialiser{_did_you_mean(value, INIT_NAMES)}; use {_INIT_FORMS}")
    if isinstance(value, list):
        return Init("array", array=_nested_numbers(value))
    if isinstance(value, dict):
        if "filter" in value:
            unknown = set(value) - {"filter", "kernel_size", "sigma"}
            if unknown:
                raise _fail(f"unknown key {quote(sorted(unknown, key=str)[0])} in a filter initialiser; keys: filter, kernel_size, sigma")
            if not isinstance(value["filter"], str):
                raise _fail("`filter` must be a filter name")
            return Init("filter", filter=dict(value))
        if len(value) != 1:
            raise _fail(f"an initialiser mapping has exactly one key; use {_INIT_FORMS}")
        (kind, arg), = value.items()
        if kind == "constant":
            return Init("constant", (_number(arg),))
        if kind in ("uniform", "normal"):
            if not isinstance(arg, list) or len(arg) != 2:
                raise _fail(f"{kind} takes a list of two numbers, e.g. {{{kind}: [0, 1]}}")
            a, b = _number(arg[0]), _number(arg[1])
            if kind == "uniform" and a > b:
                raise _fail(f"uniform bounds must be [low, high] with low <= high, not [{a}, {b}]")
            if kind == "uniform" and b - a > FLOAT32_MAX:  # torch's own limit: the width must be a float32 too
                raise _fail(f"uniform bounds [{a:g}, {b:g}] are too far apart for float32: high - low must be at most {FLOAT32_MAX:.4g}")
            if kind == "normal" and b < 0:
                raise _fail(f"normal std must be >= 0, not {b}")
            if kind == "normal" and abs(a) + NORMAL_REACH * b > FLOAT32_MAX:
                raise _fail(
                    f"normal [{a:g}, {b:g}] would draw values beyond float32 (|mean| + {NORMAL_REACH} std must be at most "
                    f"{FLOAT32_MAX:.4g}); use a smaller mean or std"
                )
            return Init(kind, (a, b))
        raise _fail(f"unknown initialiser {quote(kind)}{_did_you_mean(str(kind), ('constant', 'uniform', 'normal', 'filter'))}; use {_INIT_FORMS}")
    raise _fail(f"an initialiser is {_INIT_FORMS}; not {_describe(value)}")


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
    raise _fail(f"must be a filter name or a literal matrix (nested lists of numbers), not {_describe(value)}")


FilterValue = Annotated[
    Union[str, list],
    PlainValidator(_filter_value),
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "array"}], "description": "a named filter or a literal matrix"}),
]


# ---------------------------------------------------------------- models


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=False, validate_default=False)


class InitSpec(_Model):
    """Initial values for a layer's weight and bias."""

    weight: InitValue | None = Field(None, description="initialiser for the weight")
    bias: InitValue | None = Field(None, description="initialiser for the bias")


NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_]*")  # used with fullmatch: `$` would let "a\n" through

# Attributes of torch.nn.Module: a child of that name cannot be added (a test keeps this list complete).
MODULE_ATTRIBUTES = frozenset(
    """T_destination add_module apply bfloat16 buffers call_super_init children compile cpu cuda double
    dump_patches eval extra_repr float forward get_buffer get_extra_state get_parameter get_submodule half ipu
    load_state_dict modules mtia named_buffers named_children named_modules named_parameters parameters
    register_backward_hook register_buffer register_forward_hook register_forward_pre_hook
    register_full_backward_hook register_full_backward_pre_hook register_load_state_dict_post_hook
    register_load_state_dict_pre_hook register_module register_parameter register_state_dict_post_hook
    register_state_dict_pre_hook requires_grad_ set_extra_state set_submodule share_memory state_dict to
    to_empty train training type xpu zero_grad""".split()
)


def layer_name_problem(name: str) -> str | None:
    """Why `name` cannot name a layer (a child module, a state_dict prefix, an ONNX node scope), or None.

    The rule, once: a Python identifier of ASCII letters, digits and underscores starting with a
    letter, not a Python keyword (torch's exporter writes names into generated Python code), not
    `input` (the list's own input) and not an attribute of nn.Module.
    """
    if not NAME_PATTERN.fullmatch(name):
        return f"{quote(name)} is not a valid layer name: use letters, digits and underscores, starting with a letter"
    if keyword.iskeyword(name):
        return f"{name!r} is a Python keyword, which cannot name a module attribute; choose another name (e.g. {name}_)"
    if name == "input":
        return "'input' is reserved: it names the list's own input"
    if name in MODULE_ATTRIBUTES:
        return f"{name!r} is reserved: it is a method or attribute of torch.nn.Module; choose another name"
    return None


class LayerBase(_Model):
    """Keys every layer has."""

    # why a key this kind does not have is not needed, or what to write instead (its own cases)
    key_hints: ClassVar[dict[str, str]] = {}

    name: str | None = Field(None, description="child module name and state_dict prefix; default <type>_<index>")
    from_: str | list[str] | None = Field(
        None, alias="from", description="earlier layer(s) in the same list (or `input`) that feed this one; default the previous layer"
    )

    @field_validator("from_")
    @classmethod
    def _from_names_something(cls, value: str | list[str] | None) -> str | list[str] | None:
        if value == []:
            raise _fail("`from: []` names no input; omit `from` to read the previous layer, or name the layers to read")
        return value

    @field_validator("name")
    @classmethod
    def _name_is_identifier(cls, value: str | None) -> str | None:
        problem = layer_name_problem(value) if value is not None else None
        if problem:
            raise _fail(problem)
        return value

    @model_validator(mode="before")
    @classmethod
    def _resolve_aliases(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        fields = cls.model_fields
        for short, longs in KEY_ALIASES.items():
            target = next((name for name in longs if name in fields), None)
            if short in data and target is not None:
                if target in data:
                    raise PydanticCustomError(
                        "alias_conflict",
                        "both `{short}` and `{long}` are given; they are the same key, keep one",
                        {"short": short, "long": target},
                    )
                data = {(target if k == short else k): v for k, v in data.items()}
        return data

    @property
    def sources(self) -> list[str] | None:
        """The `from` names as a list, or None for the previous layer."""
        if self.from_ is None:
            return None
        return [self.from_] if isinstance(self.from_, str) else list(self.from_)


OUT_CHANNELS = "output channels (alias `out`)"
KERNEL_SIZE = "int or per-dim list (alias `kernel`)"
GROUPS = "channel groups; divides in and out channels"


class ConvCommon(LayerBase):
    """Keys shared by the convolution kinds."""

    in_channels: PosInt | None = Field(None, description="input channels; inferred, checked if given")
    stride: IntOrList = Field(1, description="int or per-dim list")
    padding: Padding = Field(
        0,
        description="int, per-dim list, [before, after] pairs per dim, 'valid' (= 0), 'same' (out = ceil(in / stride), "
        "PyTorch's split) or 'same_upper' / 'same_lower' (ONNX's auto_pad, TensorFlow's SAME: the odd pixel at the end / start)",
    )
    dilation: IntOrList = Field(1, description="int or per-dim list")
    padding_mode: PaddingMode = Field("zeros", description="zeros, reflect, replicate or circular")
    bias: Bool | None = Field(None, description="default: true, but false when `norm` is set")
    norm: NormName | None = Field(None, description="norm after the convolution: batch, instance, group, layer")
    norm_groups: PosInt | None = Field(None, description="groups for `norm: group`")
    eps: PositiveFloat | None = Field(None, description="the norm's eps; default the spec's `batch_norm.eps` for batch norm, else PyTorch's 1e-5")
    momentum: Momentum | None = Field(None, description="BatchNorm's momentum; default the spec's `batch_norm.momentum`, else PyTorch's 0.1")
    act: ActName | None = Field(None, description="activation after the norm")
    init: InitSpec | None = Field(None, description="initial weight and bias")
    trainable: Bool = Field(True, description="false freezes the layer's parameters")
    keep_width: Bool = Field(False, description="true: a `--scale` preset leaves this layer's out_channels as written")

    @model_validator(mode="after")
    def _norm_groups_needs_group_norm(self):
        if self.norm_groups is not None and self.norm != "group":
            raise PydanticCustomError("convspec_key", "`norm_groups` is only used with `norm: group`", {"key": "norm_groups"})
        if self.norm == "group" and self.norm_groups is None:
            raise PydanticCustomError("convspec_key", "`norm: group` needs `norm_groups` (how many channel groups)", {"key": "norm"})
        _check_norm_settings(self.norm, self.eps, self.momentum)
        return self


def _check_norm_settings(norm: str | None, eps: float | None, momentum: float | None) -> None:
    """`eps` needs a norm; `momentum` needs a batch norm (the only one here that keeps running statistics)."""
    if eps is not None and norm is None:
        raise PydanticCustomError("convspec_key", "`eps` is only used with a `norm`", {"key": "eps"})
    if momentum is not None and norm != "batch":
        raise PydanticCustomError(
            "convspec_key", "`momentum` is only used with batch norm (the running statistics' update)", {"key": "momentum"}
        )


class ConvLayer(ConvCommon):
    """Standard convolution (nn.ConvNd)."""

    type: Literal["conv"]
    out_channels: PosInt = Field(description=OUT_CHANNELS)
    kernel_size: IntOrList = Field(description=KERNEL_SIZE)
    groups: PosInt = Field(1, description=GROUPS)


class PointwiseLayer(ConvCommon):
    """1x1 convolution: mixes channels at each position."""

    type: Literal["pointwise"]
    out_channels: PosInt = Field(description=OUT_CHANNELS)
    kernel_size: IntOrList = Field(1, description="always 1; may be omitted")
    groups: PosInt = Field(1, description=GROUPS)

    @field_validator("kernel_size")
    @classmethod
    def _is_one(cls, value):
        if any(k != 1 for k in (value if isinstance(value, list) else [value])):
            raise _fail(f"a pointwise convolution has kernel_size 1, not {value}; use `type: conv` for larger kernels")
        return value


class AsymmetricLayer(ConvCommon):
    """Convolution with a non-square kernel such as [3, 1] or [1, 5]."""

    type: Literal["asymmetric"]
    out_channels: PosInt = Field(description=OUT_CHANNELS)
    kernel_size: IntOrList = Field(description="a per-dim list with unequal entries, e.g. [3, 1]")
    groups: PosInt = Field(1, description=GROUPS)

    @field_validator("kernel_size")
    @classmethod
    def _unequal(cls, value):
        if not isinstance(value, list) or len(set(value)) < 2:
            raise _fail(f"an asymmetric kernel is a list with unequal entries such as [3, 1], not {value}; use `type: conv` for a square kernel")
        return value


class DilatedLayer(ConvCommon):
    """Convolution with holes: dilation >= 2 widens the receptive field."""

    type: Literal["dilated"]
    out_channels: PosInt = Field(description=OUT_CHANNELS)
    kernel_size: IntOrList = Field(description=KERNEL_SIZE)
    dilation: IntOrList = Field(description="required, >= 2 in at least one dim")
    groups: PosInt = Field(1, description=GROUPS)

    @field_validator("dilation")
    @classmethod
    def _at_least_two(cls, value):
        if max(value if isinstance(value, list) else [value]) < 2:
            raise _fail(f"a dilated convolution needs dilation >= 2, not {value}; use `type: conv` for dilation 1")
        return value


class DepthwiseLayer(ConvCommon):
    """One filter per input channel (groups = in_channels); out = in x multiplier."""

    key_hints: ClassVar[dict[str, str]] = {
        "groups": "a depthwise conv's groups are its input channels; for more output channels set `multiplier` "
        "(out = in x multiplier), or use `type: group` for a grouped conv",
    }

    type: Literal["depthwise"]
    kernel_size: IntOrList = Field(description=KERNEL_SIZE)
    multiplier: PosInt = Field(1, description="filters per input channel")
    out_channels: PosInt | None = Field(None, description="if given, must equal in_channels x multiplier")


class GroupLayer(ConvCommon):
    """Grouped convolution: channels split into `groups` independent convolutions."""

    type: Literal["group"]
    out_channels: PosInt = Field(description=OUT_CHANNELS)
    kernel_size: IntOrList = Field(description=KERNEL_SIZE)
    groups: PosInt = Field(description="required, >= 2; divides in and out channels")

    @field_validator("groups")
    @classmethod
    def _at_least_two(cls, value):
        if value < 2:
            raise _fail(f"a group convolution needs groups >= 2, not {value}; use `type: conv` for groups 1")
        return value


class StageSpec(_Model):
    """Norm, activation and bias of the depthwise stage of a separable convolution."""

    norm: NormName | None = None
    norm_groups: PosInt | None = None
    eps: PositiveFloat | None = Field(None, description="the norm's eps")
    momentum: Momentum | None = Field(None, description="BatchNorm's momentum")
    act: ActName | None = None
    bias: Bool | None = Field(None, description="default: true, but false when `norm` is set")

    @model_validator(mode="after")
    def _norm_groups(self):
        if self.norm == "group" and self.norm_groups is None:
            raise PydanticCustomError("convspec_key", "`norm: group` needs `norm_groups`", {"key": "norm"})
        _check_norm_settings(self.norm, self.eps, self.momentum)
        return self


class SeparableLayer(ConvCommon):
    """Depthwise-separable: a depthwise conv, then a pointwise conv (norm/act apply after the pointwise)."""

    key_hints: ClassVar[dict[str, str]] = {
        "groups": "a separable conv's depthwise stage has one group per input channel and its pointwise stage is dense; "
        "for a grouped conv use `type: group`",
    }

    type: Literal["separable"]
    out_channels: PosInt = Field(description=OUT_CHANNELS)
    kernel_size: IntOrList = Field(description=KERNEL_SIZE)
    multiplier: PosInt = Field(1, description="depthwise filters per input channel")
    depthwise: StageSpec | None = Field(None, description="norm / act / bias of the inner depthwise stage")


class TransposedLayer(ConvCommon):
    """Transposed convolution (upsampling)."""

    type: Literal["transposed"]
    out_channels: PosInt = Field(description=OUT_CHANNELS)
    kernel_size: IntOrList = Field(description=KERNEL_SIZE)
    groups: PosInt = Field(1, description=GROUPS)
    output_padding: NonNegIntOrList = Field(0, description="extra size on one side; < stride or dilation per dim")


class DynamicLayer(ConvCommon):
    """Dynamic convolution (CondConv): K expert kernels mixed per sample by softmax attention."""

    type: Literal["dynamic"]
    out_channels: PosInt = Field(description=OUT_CHANNELS)
    kernel_size: IntOrList = Field(description=KERNEL_SIZE)
    groups: PosInt = Field(1, description=GROUPS)
    experts: PosInt = Field(4, description="number of expert kernels K")
    reduction: PosInt = Field(4, description="attention MLP width = in_channels // reduction")
    temperature: PositiveFloat = Field(1.0, description="softmax temperature of the attention")


class FixedLayer(LayerBase):
    """A convolution whose kernel is known in advance: a named filter or a literal matrix."""

    type: Literal["fixed"]
    filter: FilterValue = Field(description="a named filter (see `convspec filters`) or a literal matrix")
    kernel_size: IntOrList | None = Field(None, description="for named filters that take one")
    sigma: FloatOrList | None = Field(None, description="for gaussian")
    normalize: Bool = Field(False, description="scale the kernel to sum 1")
    per_channel: Bool = Field(True, description="true: the kernel on each channel alone (depthwise); false: a full conv")
    out_channels: PosInt | None = Field(None, description="with per_channel false; default = in_channels")
    in_channels: PosInt | None = None
    stride: IntOrList = 1
    padding: Padding = 0
    dilation: IntOrList = 1
    padding_mode: PaddingMode = "zeros"
    trainable: Bool = Field(False, description="true makes the kernel a trainable parameter")


class NormLayer(LayerBase):
    """A normalisation layer."""

    type: Literal["norm"]
    kind: NormName = Field(description="batch, instance, group or layer")
    groups: PosInt | None = Field(None, description="for kind: group")
    eps: PositiveFloat | None = Field(None, description="default the spec's `batch_norm.eps` for batch norm, else PyTorch's 1e-5")
    momentum: Momentum | None = Field(None, description="for kind: batch; default the spec's `batch_norm.momentum`, else 0.1")

    @model_validator(mode="after")
    def _groups(self):
        if self.kind == "group" and self.groups is None:
            raise PydanticCustomError("convspec_key", "`kind: group` needs `groups`", {"key": "kind"})
        if self.kind != "group" and self.groups is not None:
            raise PydanticCustomError("convspec_key", "`groups` is only used with `kind: group`", {"key": "groups"})
        _check_norm_settings(self.kind, self.eps, self.momentum)
        return self


class ActLayer(LayerBase):
    """An activation function."""

    type: Literal["act"]
    fn: ActName
    negative_slope: Annotated[float, PlainValidator(_number), WithJsonSchema({"type": "number"})] | None = Field(
        None, description="for leaky_relu; default 0.01"
    )

    @model_validator(mode="after")
    def _slope_only_for_leaky(self):
        if self.negative_slope is not None and self.fn != "leaky_relu":
            raise PydanticCustomError("convspec_key", "`negative_slope` is only used with `fn: leaky_relu`", {"key": "negative_slope"})
        return self


class PoolLayer(LayerBase):
    """Max or average pooling."""

    type: Literal["pool"]
    op: PoolOp = "max"
    kernel_size: IntOrList = Field(description="window size: int or per-dim list")
    stride: IntOrList | None = Field(None, description="default = kernel_size")
    padding: NonNegIntOrList = 0
    ceil_mode: Bool = False


class AdaptivePoolLayer(LayerBase):
    """Pooling to a fixed output size."""

    type: Literal["adaptive_pool"]
    op: PoolOp = "avg"
    size: IntOrList


class GlobalPoolLayer(LayerBase):
    """Pooling over all positions: spatial size 1."""

    type: Literal["global_pool"]
    op: PoolOp = "avg"


class UpsampleLayer(LayerBase):
    """Resize by a scale factor or to a size."""

    type: Literal["upsample"]
    scale: FloatOrList | None = None
    size: IntOrList | None = None
    mode: UpsampleMode = "nearest"
    align_corners: Bool | None = Field(None, description="for linear modes; PyTorch's default (false) when omitted")

    @model_validator(mode="after")
    def _scale_or_size(self):
        if (self.scale is None) == (self.size is None):
            raise PydanticCustomError("convspec", "give exactly one of `scale` and `size`", {})
        if self.align_corners is not None and self.mode == "nearest":
            raise PydanticCustomError("convspec_key", "`align_corners` is only used with linear modes", {"key": "align_corners"})
        return self


class ShuffleLayer(LayerBase):
    """Channel shuffle (ShuffleNet)."""

    type: Literal["shuffle"]
    groups: PosInt


class SplitLayer(LayerBase):
    """Split the channels into parts, read by later layers as `from: NAME.0`, `NAME.1`, ..."""

    type: Literal["split"]
    parts: PosInt | None = Field(None, description="equal parts; must divide the channels (torch.chunk)")
    sizes: list[PosInt] | None = Field(None, min_length=2, description="channels of each part; must add up to the channels (torch.split)")

    @model_validator(mode="after")
    def _parts_or_sizes(self):
        if self.parts is None and self.sizes is None:
            raise PydanticCustomError("convspec", "`split` needs `parts` (equal parts) or `sizes` (channels of each part)", {})
        if self.parts is not None and self.sizes is not None:
            raise PydanticCustomError("convspec_key", "give `parts` or `sizes`, not both", {"key": "sizes"})
        if self.parts is not None and self.parts < 2:
            raise PydanticCustomError("convspec_key", "`parts` must be >= 2 (one part is the input itself)", {"key": "parts"})
        return self


class DropoutLayer(LayerBase):
    """Dropout."""

    type: Literal["dropout"]
    p: Annotated[float, PlainValidator(_number), WithJsonSchema({"type": "number", "minimum": 0, "exclusiveMaximum": 1})] = 0.5

    @field_validator("p")
    @classmethod
    def _probability(cls, value):
        if not 0 <= value < 1:
            raise _fail(f"must be in [0, 1), not {value}")
        return value


class FlattenLayer(LayerBase):
    """Flatten channels and positions into features."""

    type: Literal["flatten"]


class LinearLayer(LayerBase):
    """Fully connected layer on flat input."""

    type: Literal["linear"]
    out_features: PosInt = Field(description="output features (alias `out`)")
    in_features: PosInt | None = Field(None, description="inferred; checked if given")
    bias: Bool = True
    init: InitSpec | None = None
    trainable: Bool = True


class IdentityLayer(LayerBase):
    """Passes its input through."""

    type: Literal["identity"]


class JoinLayerBase(LayerBase):
    """A layer that joins two or more `from` inputs (add, mul, concat)."""

    @model_validator(mode="after")
    def _needs_two(self):
        if not self.sources or len(self.sources) < 2:
            raise PydanticCustomError("convspec", f"`{self.type}` needs `from` with two or more layer names", {})
        return self


class AddLayer(JoinLayerBase):
    """Element-wise sum of two or more inputs of equal shape."""

    type: Literal["add"]
    act: ActName | None = None


class MulLayer(JoinLayerBase):
    """Element-wise product of two or more inputs, broadcasting over size-1 dims (a gate of C x 1 x 1 times a map)."""

    type: Literal["mul"]


class ConcatLayer(JoinLayerBase):
    """Concatenation along channels."""

    type: Literal["concat"]


# The layer models by `type`: the kind registry's (`kinds.py`) view for validation, filled as kinds register.
LAYER_MODELS: dict[str, type[LayerBase]] = {}


class AnyLayer:
    """A layer of any registered kind: pydantic's union of the registry's models, discriminated on `type`."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        models = tuple(LAYER_MODELS.values())
        if not models:  # while this module loads, before any kind is registered; `rebuild_layer_models` redoes it
            return core_schema.any_schema()
        if len(models) == 1:
            return handler.generate_schema(models[0])
        return handler.generate_schema(Annotated[Union[models], Field(discriminator="type")])


def rebuild_layer_models(containers: list[type[_Model]]) -> None:
    """Regenerate the validators of the models that hold layer lists (and Spec), after kinds changed.

    Their cached schemas are dropped first, so that each is regenerated with the others'
    new schemas (nested containers), not from their old ones.
    """
    models = [*containers, Spec]
    for model in models:
        if "__pydantic_core_schema__" in model.__dict__:
            delattr(model, "__pydantic_core_schema__")
    for model in models:
        model.model_rebuild(force=True)


LayerList = Annotated[list[AnyLayer], Field(min_length=1)]


class ResidualLayer(LayerBase):
    """act(layers(x) + shortcut(x))."""

    type: Literal["residual"]
    layers: LayerList
    keep_width: Bool = Field(False, description="true: a `--scale` preset leaves the widths of every layer inside as written")
    shortcut: list[AnyLayer] | None = Field(None, description="default identity")
    act: ActName | None = None
    drop_path: DropProbability = Field(
        0.0, description="stochastic depth: in training, the probability of dropping a sample's residual branch (identity in eval)"
    )


class RepeatLayer(LayerBase):
    """`times` copies of `layers`, each with its own weights."""

    type: Literal["repeat"]
    times: PosInt
    keep_width: Bool = Field(False, description="true: a `--scale` preset leaves the widths of every layer inside as written")
    keep_depth: Bool = Field(False, description="true: a `--scale` preset leaves `times` as written")
    layers: LayerList
    first: list[AnyLayer] | None = Field(
        None, min_length=1, description="the layers of copy 0 when it differs from the others (a downsampling block); default `layers`"
    )


class BlockLayer(LayerBase):
    """A named group of layers (one child module)."""

    type: Literal["block"]
    layers: LayerList
    keep_width: Bool = Field(False, description="true: a `--scale` preset leaves the widths of every layer inside as written")


CONV_KINDS = ("conv", "pointwise", "asymmetric", "dilated", "depthwise", "group", "separable", "transposed", "dynamic")


class InputSpec(_Model):
    """The network's input."""

    channels: PosInt = Field(description="input channels")
    size: list[PosInt] | None = Field(
        None, min_length=1, max_length=3, description="spatial size; its length picks 1D / 2D / 3D; omit for a dynamic size"
    )
    dims: Literal[1, 2, 3] | None = Field(None, description="spatial dims when `size` is omitted (default 2)")
    batch: PosInt = Field(1, description="batch used for reports")

    @model_validator(mode="after")
    def _dims_agree(self):
        if self.size is not None and self.dims is not None and len(self.size) != self.dims:
            raise PydanticCustomError(
                "convspec_key", "`dims` is {dims} but `size` has {n} entries", {"key": "dims", "dims": self.dims, "n": len(self.size)}
            )
        return self

    @property
    def spatial_dims(self) -> int:
        if self.size is not None:
            return len(self.size)
        return self.dims or 2


class BatchNormDefaults(_Model):
    """Spec-wide BatchNorm settings, for every batch norm that does not set its own."""

    eps: PositiveFloat = Field(1e-5, description="added to the variance; PyTorch's default 1e-5 (TensorFlow / Keras, Ultralytics: 1e-3)")
    momentum: Momentum = Field(0.1, description="weight of the new batch statistic; PyTorch's default 0.1 (TensorFlow's 0.99 decay is 0.01)")


class ScalePreset(_Model):
    """One size of a scalable spec (Ultralytics' rule): out = make_divisible(min(c, max_channels) * width, channel_divisor)."""

    width: PositiveFloat = Field(1.0, description="multiplies the output channels of conv-family layers")
    depth: PositiveFloat = Field(1.0, description="multiplies `repeat.times` above 1: max(round(times * depth), 1)")
    max_channels: PosInt | None = Field(None, description="channels are capped here before the width applies; default no cap")


class Spec(_Model):
    """A convspec network."""

    convspec: Literal[1] = Field(1, description="format version")
    name: str | None = Field(None, description="default: the file stem")
    input: InputSpec
    layers: LayerList
    outputs: str | list[str] | None = Field(None, description="layer name(s) returned; default the last layer")
    memory_format: _enum("memory_format", MEMORY_FORMATS) = Field(
        "contiguous", description="the layout the built model computes in; channels_last suits depthwise-heavy nets on CPU"
    )
    blocks: dict[str, Any] | None = Field(
        None, description="named block templates (a layer with `params`), placed with `{type: use, block: NAME, with: {...}}`"
    )
    batch_norm: BatchNormDefaults | None = Field(
        None, description="`eps` and `momentum` for every batch norm that does not set its own"
    )
    scales: dict[Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")], ScalePreset] | None = Field(
        None, description="named sizes of the network, chosen with `--scale NAME` (`scale=` in Python)"
    )
    channel_divisor: PosInt = Field(8, description="a scaled channel count is rounded up to a multiple of this")
    extends: str | None = Field(
        None, description="a base spec (path relative to this file) that this one is merged onto, layers by name"
    )

    _source: Source = PrivateAttr(default_factory=Source)
    # Layers that failed validation, stood in for by placeholders so the rest can still be shape-checked.
    _broken_layers: frozenset = PrivateAttr(default_factory=frozenset)
    # Of those, the ones traced without their wrong keys: path -> "exact" or "spatial" (sizes unknown).
    _repaired_layers: dict = PrivateAttr(default_factory=dict)
    # Names the schema refused (a keyword, say): already reported, so `from` or `outputs` naming one is quiet.
    _rejected_names: frozenset = PrivateAttr(default_factory=frozenset)
    # The `--scale` preset applied when loading, and each rewritten value's request (`scaling.Scaling`).
    _scaling: Any = PrivateAttr(default=None)

    @field_validator("outputs")
    @classmethod
    def _outputs_name_something(cls, value: str | list[str] | None) -> str | list[str] | None:
        if value == []:
            raise _fail("`outputs: []` names no output; omit `outputs` to return the last layer, or name the layers to return")
        return value

    @property
    def source(self) -> Source:
        return self._source

    @property
    def output_names(self) -> list[str] | None:
        if self.outputs is None:
            return None
        return [self.outputs] if isinstance(self.outputs, str) else list(self.outputs)

    @property
    def dims(self) -> int:
        return self.input.spatial_dims


# ---------------------------------------------------------------- errors for people


def _data_path(data: Any, loc: tuple, fields: set[str]) -> tuple:
    """Map pydantic's error location onto the data: drop union tags and type names it inserts."""
    path: list = []
    node = data
    previous = None
    for part in loc:
        if isinstance(previous, int) and isinstance(node, dict) and node.get("type") == part:
            previous = part  # the discriminated union's tag right after a list index: not a key
            continue
        previous = part
        if isinstance(node, dict) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, dict) and part == "from_" and "from" in node:
            path.append("from")
            node = node["from"]
        elif isinstance(node, dict) and any(part in longs and short in node for short, longs in KEY_ALIASES.items()):
            short = next(short for short, longs in KEY_ALIASES.items() if part in longs and short in node)
            path.append(short)  # the user wrote the short alias: point at it
            node = node[short]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and part in fields:
            path.append(part)  # a missing key: point at its mapping, name the key
            node = None
        # else: a union tag such as 'conv' or 'list[int]': not part of the data
    return tuple(path)


def _all_field_names() -> set[str]:
    names = {"from"}
    for model in (*LAYER_MODELS.values(), InputSpec, Spec, InitSpec, StageSpec, BatchNormDefaults):
        names.update(f.alias or n for n, f in model.model_fields.items())
    return names


def _model_at(data: Any, path: tuple) -> type[_Model] | None:
    """The model class that validates the mapping at `path`, for did-you-mean hints."""
    if not path:
        return Spec
    parent = data
    for part in path[:-1]:
        parent = parent[part] if isinstance(parent, (dict, list)) else None
    node = parent[path[-1]] if isinstance(parent, (dict, list)) else None
    if isinstance(node, dict) and isinstance(node.get("type"), str) and node["type"] in LAYER_MODELS:
        return LAYER_MODELS[node["type"]]
    key = path[-1]
    return {"input": InputSpec, "init": InitSpec, "depthwise": StageSpec, "batch_norm": BatchNormDefaults}.get(key) if isinstance(key, str) else None


def _keys_of(model: type[_Model]) -> list[str]:
    keys = [f.alias or n for n, f in model.model_fields.items()]
    keys += [short for short, longs in KEY_ALIASES.items() if any(name in keys for name in longs)]
    return keys


# Other libraries' names (PyTorch's, then Keras') for convspec's keys: an unknown key found here is
# answered with the key this kind has, or with why it is not needed.
FOREIGN_KEYS: dict[str, tuple[str, ...]] = {
    "scale_factor": ("scale",), "filters": ("out_channels",), "num_filters": ("out_channels",), "units": ("out_features",),
    "strides": ("stride",), "dilation_rate": ("dilation",), "pool_size": ("kernel_size",), "use_bias": ("bias",),
    "activation": ("act", "fn"), "rate": ("p",), "num_groups": ("norm_groups", "groups"), "kernel_initializer": ("init",),
    "depth_multiplier": ("multiplier",), "output_size": ("size",), "upscale_factor": ("scale",), "chunks": ("parts",),
    "split_size_or_sections": ("sizes",), "dim": ("parts", "sizes"),
}  # fmt: skip
INFERRED_KEYS = frozenset({"num_features", "num_channels", "in_features", "in_channels", "input_shape", "normalized_shape"})


def _unknown_key_hint(key: str, model: type[_Model]) -> str:
    """' (...)' or '; ...' explaining an unknown key from its meaning elsewhere, or ''."""
    own = getattr(model, "key_hints", {}).get(key)
    if own:
        return f"; {own}"
    fields = _keys_of(model)
    target = next((name for name in FOREIGN_KEYS.get(key, ()) if name in fields), None)
    if target:
        return f" (convspec calls it `{target}`)"
    if key in INFERRED_KEYS:
        return "; convspec infers it from the layer's input: drop it"
    return _did_you_mean(key, fields)


def _problem_from_error(error: dict, data: Any, source: Source, path: tuple) -> Problem:
    """A located problem for one pydantic error, whose place in the data (`_data_path`) is `path`."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    _, label = layer_label(data, path)
    key = path[-1] if path and isinstance(path[-1], str) else None
    if key is None and len(path) >= 2 and isinstance(path[-1], int) and isinstance(path[-2], str):
        key = f"{path[-2]}[{path[-1]}]"  # an entry of a list such as input.size

    if kind == "extra_forbidden":
        model = _model_at(data, path[:-1])
        hint = _unknown_key_hint(str(key), model) if model else ""
        if model and not hint:
            hint = f"; valid keys: {', '.join(sorted(k for k in _keys_of(model) if k != 'type'))}"
        return Problem(f"unknown key {quote(key)}{hint}", source.locate(path), label)
    if kind == "missing":
        return Problem(f"missing required key `{key}`", source.locate(path[:-1]), label)
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tag = ctx.get("tag")
        if kind == "union_tag_not_found":
            return Problem("missing required key `type` (the layer kind)", source.locate(path), label)
        hint = _did_you_mean(str(tag), LAYER_MODELS) if isinstance(tag, str) else ""
        if not hint:
            hint = f"; kinds: {', '.join(LAYER_MODELS)}"
        if not isinstance(tag, str):
            return Problem(f"`type` must be a layer kind (a string), not {_describe(tag)}{hint}", source.locate(path + ("type",)), label)
        return Problem(f"unknown layer type {quote(tag)}{hint}", source.locate(path + ("type",)), label)
    if kind == "alias_conflict":
        return Problem(error["msg"], source.locate(path + (ctx["short"],)), label)
    if kind == "string_pattern_mismatch" and path[:1] == ("scales",) and len(path) == 2:
        message = f"{quote(path[1])} is not a valid scale name: use letters, digits and underscores, starting with a letter"
        return Problem(message, source.locate(path), label)
    if kind == "convspec_key":
        return Problem(error["msg"], source.locate(path + (ctx["key"],)), label)
    if kind == "literal_error":
        expected = ctx.get("expected", "")
        return Problem(f"`{key}` must be {expected}, not {_describe(error.get('input'))}", source.locate(path), label)
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        what = f"`{key}`" if key else "this"
        return Problem(f"{what} must be a mapping (key: value), not {_describe(error.get('input'))}", source.locate(path), label)
    if kind == "list_type":
        what = f"`{key}`" if key else "this"
        return Problem(f"{what} must be a list, not {_describe(error.get('input'))}", source.locate(path), label)
    if kind == "too_short":
        return Problem(f"`{key}` must not be empty", source.locate(path), label)
    if kind == "too_long":
        return Problem(f"`{key}` has too many entries ({ctx.get('actual_length')}); at most {ctx.get('max_length')}", source.locate(path), label)
    message = error["msg"]
    if kind == "string_type":
        message = f"must be a string, not {_describe(error.get('input'))}"
    if key and not message.startswith("`"):
        # fragments ("must be ...") read on from the key; whole sentences get a colon
        joiner = " " if message.startswith(("must ", "is ", "has ", "every ", "entry")) else ": "
        message = f"`{key}`{joiner}{message}"
    return Problem(message, source.locate(path), label)


def parse_spec(
    data: Any, source: Source | None = None, file: str = "<dict>", *, scale: str | None = None, overrides: Any = None
) -> Spec:
    """Validate a spec's data against the format. Raises SpecError listing every problem.

    `data` with its `source` is what `source.parse_yaml` or `source.read_python` read; without
    one it is Python data, read here by `read_python` (named `file` in messages), so every
    spec passes the same limits of depth, nodes, cycles and types, whatever it was made from.

    On the way: `extends` is merged (`compose.py`), `overrides` (``{"stem.out_channels": 48}``
    or ``["stem.out_channels=48"]``, as `--set`) are applied (`overrides.py`), block templates
    are expanded, and the preset `scale` of `scales:` is applied (`scaling.py`). Raises
    InputError for an unknown scale or a malformed override.
    """
    from .compose import compose
    from .overrides import apply_overrides
    from .scaling import choose_factors, expression_factors, scale_data

    if source is None:
        data, source = read_python(data, file)
    source.data = data
    if not isinstance(data, dict):
        raise SpecError([Problem(f"a spec must be a mapping, not {_describe(data)}", source.locate(()))])
    source.derived = "extends" in data or bool(overrides) or scale is not None
    data = source.data = compose(data, source)
    if overrides:
        data = source.data = apply_overrides(data, source, overrides)
    factors = choose_factors(data, scale, source.file)
    # `use` layers become their templates' layers first; everything after sees ordinary layers
    expansion = expand_templates(data, source, expression_factors(data, factors))
    data = source.data = expansion.data
    scaling = None
    if factors is not None:
        data, scaling = scale_data(data, factors)
        source.data = data
    from .plugins import find_kinds  # lazily (it reads the kind registry): installed plugins, for types convspec lacks

    find_kinds(data, source)
    problems: list[Problem] = list(expansion.problems)
    broken: set[tuple] = set(expansion.broken)
    wrong_keys: dict[tuple, set] = {path: {None} for path in broken}  # None: the layer as a whole
    try:
        spec = Spec.model_validate(data)
    except ValidationError as err:
        seen = set(problems)  # a set: a spec of thousands of mistakes is still checked in linear time
        fields = _all_field_names()  # once, not per error
        for error in err.errors(include_url=False):
            path = _data_path(data, tuple(error["loc"]), fields)
            problem = _problem_from_error(error, data, source, path)
            if problem not in seen:
                seen.add(problem)
                problems.append(problem)
            layer_path = layer_label(data, path)[0]
            broken.add(layer_path)
            key = path[len(layer_path)] if len(path) > len(layer_path) else None
            wrong_keys.setdefault(layer_path, set()).add(key if error["type"] != "missing" else None)
    if problems:
        problems = in_order(_drop_missing_explained_by_typos(problems))
        failure = SpecError(problems)
        failure.partial = _partial_spec(data, broken, source, wrong_keys)
        if failure.partial is not None:
            failure.partial._scaling = scaling
        raise failure from None
    spec._source = source
    spec._scaling = scaling
    return spec


def _drop_missing_explained_by_typos(problems: list[Problem]) -> list[Problem]:
    """`out_chanels: 8` is one mistake: keep "unknown key ... did you mean 'out_channels'?", drop "missing out_channels"."""
    suggested = {
        (p.layer, match.group(1) or match.group(2))
        for p in problems
        if (match := re.search(r"did you mean '(\w+)'\?|convspec calls it `(\w+)`", p.message)) and p.message.startswith("unknown key")
    }
    suggested |= {(layer, full) for layer, key in suggested for full in KEY_ALIASES.get(key, ())}  # `outt` -> `out`
    return [
        p
        for p in problems
        if not (
            (match := re.fullmatch(r"missing required key `(\w+)`", p.message))
            and (p.layer, match.group(1)) in suggested
        )
    ]


# Keys that never change a layer's output shape: a layer whose only mistakes are in these (or in
# keys it does not have, typos) is traced without them, so its shape checks and everything after
# it still run.
SHAPE_NEUTRAL_KEYS = frozenset(
    "act align_corners bias depthwise experts fn in_channels in_features init kind mode name "
    "negative_slope norm norm_groups normalize op p padding_mode reduction temperature trainable".split()
)
# Keys that decide a layer's channels or its inputs: without them nothing after it can be assumed.
CHANNEL_KEYS = frozenset("out_channels out_features multiplier per_channel sizes parts layers first times shortcut from type".split())


def _partial_spec(data: dict, broken: set[tuple], source: Source, wrong_keys: dict[tuple, set]) -> Spec | None:
    """The spec with each invalid layer repaired or stood in for, so the rest can still be checked.

    A layer whose mistakes are only in keys that leave its channels alone is traced without those
    keys (its output is exact when they were shape-neutral; otherwise its spatial sizes are
    treated as unknown); any other invalid layer becomes an identity placeholder whose output is
    unknown. None when a problem lies outside the layers (in `input`, say).
    """
    if () in broken:
        return None
    outermost = {p for p in broken if not any(p[: i] in broken for i in range(1, len(p)))}
    repaired: dict[tuple, str] = {}
    rejected: set[str] = set()
    lenient = _replace_layers(data, (), outermost, wrong_keys, repaired, rejected)
    try:
        spec = Spec.model_validate(lenient)
    except ValidationError:
        return None
    spec._source = source
    spec._broken_layers = frozenset(outermost)
    spec._repaired_layers = dict(repaired)
    spec._rejected_names = frozenset(rejected)
    return spec


def _layer_model(node: Any) -> type[LayerBase] | None:
    if isinstance(node, dict) and isinstance(node.get("type"), str):
        return LAYER_MODELS.get(node["type"])
    return None


def _repair(node: Any, keys: set) -> tuple[dict, str] | None:
    """`node` without its wrong `keys`, and "exact" or "spatial" (what of its output can be trusted), or None."""
    model = _layer_model(node)
    if model is None or None in keys:
        return None
    fields = list(model.model_fields)

    def meant(key: Any) -> str | None:
        """The field `key` stands for: itself, through an alias, or (an unknown key) the one it misspells."""
        names = (*KEY_ALIASES.get(key, (key,)), *FOREIGN_KEYS.get(key, ())) if isinstance(key, str) else ()
        known = next((n for n in names if n in model.model_fields), None)
        if known is not None:
            return known
        close = difflib.get_close_matches(str(key), fields + list(KEY_ALIASES), n=1)
        return meant(close[0]) if close and close[0] != key else None  # None: intent unknown

    intents = {meant(key) for key in keys}
    if intents & CHANNEL_KEYS:
        return None
    repaired = {k: v for k, v in node.items() if k not in keys}
    try:
        model.model_validate(repaired)
    except ValidationError:
        return None
    return repaired, "exact" if None not in intents and intents <= SHAPE_NEUTRAL_KEYS else "spatial"


def _replace_layers(
    node: Any, path: tuple, broken: set[tuple], wrong_keys: dict[tuple, set], repaired: dict[tuple, str], rejected: set[str]
) -> Any:
    if path in broken:
        fixed = _repair(node, wrong_keys.get(path, {None}))
        name = node.get("name") if isinstance(node, dict) else None
        if fixed is not None and isinstance(name, str) and "name" not in fixed[0]:
            rejected.add(name)
        if fixed is not None:
            repaired[path] = fixed[1]
            return fixed[0]
        name = node.get("name") if isinstance(node, dict) else None
        if isinstance(name, str) and layer_name_problem(name) is not None:
            rejected.add(name)  # reported; a `from` or `outputs` naming it is not a second mistake
        kind = node.get("type") if isinstance(node, dict) else None
        if name is None and isinstance(kind, str) and NAME_PATTERN.fullmatch(kind):
            name = f"{kind}_{path[-1]}"  # the default name the layer would have had, so `from` still finds it
        valid_name = isinstance(name, str) and layer_name_problem(name) is None
        return {"type": "identity", **({"name": name} if valid_name else {})}
    if isinstance(node, dict):
        return {k: _replace_layers(v, path + (k,), broken, wrong_keys, repaired, rejected) for k, v in node.items()}
    if isinstance(node, list):
        return [_replace_layers(v, path + (i,), broken, wrong_keys, repaired, rejected) for i, v in enumerate(node)]
    return node


def json_schema() -> dict:
    """The JSON Schema of the format, for editors (yaml-language-server) and validators.

    Includes the registered kinds and those of installed plugins (entry points `convspec.kinds`);
    raises `plugins.PluginError` naming a plugin that cannot be used.
    """
    from .plugins import discover_or_fail

    discover_or_fail()
    schema = Spec.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "convspec spec"
    # The short aliases are accepted by the loader; tell editors about them too.
    for definition in schema.get("$defs", {}).values():
        props = definition.get("properties", {})
        for short, longs in KEY_ALIASES.items():
            for long in longs:
                if long in props and short not in props:
                    alias = dict(props[long])
                    alias["description"] = f"alias of `{long}`"
                    props[short] = alias
                    required = definition.get("required", [])
                    if long in required:
                        # either spelling satisfies the requirement (one anyOf per required key)
                        required.remove(long)
                        definition.setdefault("allOf", []).append({"anyOf": [{"required": [long]}, {"required": [short]}]})
    template_json_schema(schema)  # `blocks:` templates and `use` layers, expanded before validation
    from .compose import extends_json_schema
    from .editor_schema import for_editors

    # a spec with `extends` holds only changes to its base; then unions selected by `type`, filters named, repeated schemas shared
    return for_editors(extends_json_schema(schema))


def load(spec: Any, *, scale: str | None = None, overrides: Any = None) -> Spec:
    """A validated Spec from a path, YAML text, a dict, or a Spec.

    A Spec that `load` made is returned as is; one built in Python (`Spec(...)`,
    `Spec.model_validate`, `Spec.model_construct`) is validated again from its plain
    data, as a dict would be. `scale` picks a preset of the spec's `scales:`;
    `overrides` sets values as `--set` does (a mapping ``{"stem.out_channels": 48}`` or a
    list of ``"KEY=VALUE"`` texts). Raises SpecError listing every problem, or InputError
    when a file cannot be read, the scale is unknown or an override is malformed.
    """
    return _load(spec, scale, overrides)


def _load(spec: Any, scale: str | None = None, overrides: Any = None) -> Spec:
    from pathlib import Path

    from .source import looks_like_yaml_text, parse_yaml, read_spec_file

    options = {"scale": scale, "overrides": overrides}
    if isinstance(spec, Spec):
        if spec.source.data is not None:  # made by parse_spec: validated, with its positions
            if scale is not None or overrides:
                raise InputError("this Spec is already loaded; give scale= and overrides= with its path, YAML text or dict")
            return spec
        return parse_spec(_spec_data(spec), file="<Spec>", **options)
    if isinstance(spec, Path) or (isinstance(spec, str) and not looks_like_yaml_text(spec)):
        data, source = read_spec_file(spec)
        parsed = parse_spec(data, source, **options)
        if parsed.name is None:
            parsed.name = Path(spec).stem
        return parsed
    if isinstance(spec, str):
        data, source = parse_yaml(spec, "<string>")
        return parse_spec(data, source, **options)
    if isinstance(spec, dict):
        return parse_spec(spec, file="<dict>", **options)
    raise TypeError(f"convspec.load takes a path, YAML text, a dict or a Spec, not {type(spec).__name__}")


def _spec_data(spec: Spec) -> Any:
    """A Spec's keys and values as plain data (what it would be written as), or SpecError."""
    try:
        return spec.model_dump(by_alias=True, exclude_unset=True, warnings=False)
    except (ValueError, TypeError, RecursionError, PydanticSerializationError) as err:
        message = f"this Spec cannot be read back as data ({first_line(err)}); build it from a dict or YAML text"
        raise SpecError([Problem(message, Location("<Spec>"))]) from None

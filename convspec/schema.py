"""The spec format as pydantic models: one discriminated union of layer kinds on `type`.

Every model forbids unknown keys; its fields take the strict value types of `schema_values`.
Rules that need the input's shape (groups dividing channels, list lengths matching the number
of spatial dims) belong to the shape rules (`shapes_*`), which see the whole graph; this module
checks what one layer can know on its own. `loading.parse_spec` validates data against `Spec` and
`schema_errors` turns pydantic's errors into located `Problem`s with hints, so a user never
sees pydantic's raw error text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler, PlainValidator, PrivateAttr, WithJsonSchema
from pydantic import field_validator, model_validator
from pydantic_core import PydanticCustomError, core_schema

from .layer_names import layer_name_problem
from .schema_values import ActName, Bool, DropProbability, FilterValue, FloatOrList, InitValue, IntOrList, MemoryFormat
from .schema_values import Momentum, NonNegIntOrList, NormName, Number, Padding, PaddingMode, PoolOp, PosInt, PositiveFloat
from .schema_values import UpsampleMode, float32_number, value_error
from .source import Source


# Short spellings users may write for PyTorch's names; giving both is an error.
KEY_ALIASES = {"out": ("out_channels", "out_features"), "kernel": ("kernel_size",)}

# ---------------------------------------------------------------- models


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=False, validate_default=False)


class InitSpec(_Model):
    """Initial values for a layer's weight and bias."""

    weight: InitValue | None = Field(None, description="initialiser for the weight")
    bias: InitValue | None = Field(None, description="initialiser for the bias")


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
            raise value_error("`from: []` names no input; omit `from` to read the previous layer, or name the layers to read")
        return value

    @field_validator("name")
    @classmethod
    def _name_is_identifier(cls, value: str | None) -> str | None:
        problem = layer_name_problem(value) if value is not None else None
        if problem:
            raise value_error(problem)
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

    # The other conv kinds with these keys subclass this model and redeclare `type` (and any key
    # they change); pydantic keeps an inherited field's place, so every kind lists its keys in one order.
    type: Literal["conv"]
    out_channels: PosInt = Field(description=OUT_CHANNELS)
    kernel_size: IntOrList = Field(description=KERNEL_SIZE)
    groups: PosInt = Field(1, description=GROUPS)


def _per_dim(value: int | list[int]) -> list[int]:
    return value if isinstance(value, list) else [value]


def _conv_rule(key: str, holds: Callable[[Any], bool], message: str) -> Any:
    """The one rule a conv variant adds to conv's keys: a validator of `key` raising `message` (`{value}` filled in) unless `holds`."""

    def check(cls, value):
        if not holds(value):
            raise value_error(message.format(value=value))
        return value

    return field_validator(key)(classmethod(check))


class PointwiseLayer(ConvLayer):
    """1x1 convolution: mixes channels at each position."""

    type: Literal["pointwise"]
    kernel_size: IntOrList = Field(1, description="always 1; may be omitted")
    _kernel_is_one = _conv_rule(
        "kernel_size",
        lambda kernel: all(k == 1 for k in _per_dim(kernel)),
        "a pointwise convolution has kernel_size 1, not {value}; use `type: conv` for larger kernels",
    )


class AsymmetricLayer(ConvLayer):
    """Convolution with a non-square kernel such as [3, 1] or [1, 5]."""

    type: Literal["asymmetric"]
    kernel_size: IntOrList = Field(description="a per-dim list with unequal entries, e.g. [3, 1]")
    _kernel_unequal = _conv_rule(
        "kernel_size",
        lambda kernel: isinstance(kernel, list) and len(set(kernel)) >= 2,
        "an asymmetric kernel is a list with unequal entries such as [3, 1], not {value}; use `type: conv` for a square kernel",
    )


class DilatedLayer(ConvLayer):
    """Convolution with holes: dilation >= 2 widens the receptive field."""

    type: Literal["dilated"]
    dilation: IntOrList = Field(description="required, >= 2 in at least one dim")
    _dilation_at_least_two = _conv_rule(
        "dilation",
        lambda dilation: max(_per_dim(dilation)) >= 2,
        "a dilated convolution needs dilation >= 2, not {value}; use `type: conv` for dilation 1",
    )


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


class GroupLayer(ConvLayer):
    """Grouped convolution: channels split into `groups` independent convolutions."""

    type: Literal["group"]
    groups: PosInt = Field(description="required, >= 2; divides in and out channels")
    _groups_at_least_two = _conv_rule(
        "groups", lambda groups: groups >= 2, "a group convolution needs groups >= 2, not {value}; use `type: conv` for groups 1"
    )


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


class TransposedLayer(ConvLayer):
    """Transposed convolution (upsampling)."""

    type: Literal["transposed"]
    output_padding: NonNegIntOrList = Field(0, description="extra size on one side; < stride or dilation per dim")


class DynamicLayer(ConvLayer):
    """Dynamic convolution (CondConv): K expert kernels mixed per sample by softmax attention."""

    type: Literal["dynamic"]
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
    negative_slope: Number | None = Field(
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
    p: Annotated[float, PlainValidator(float32_number), WithJsonSchema({"type": "number", "minimum": 0, "exclusiveMaximum": 1})] = 0.5

    @field_validator("p")
    @classmethod
    def _probability(cls, value):
        if not 0 <= value < 1:
            raise value_error(f"must be in [0, 1), not {value}")
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
    memory_format: MemoryFormat = Field(
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
            raise value_error("`outputs: []` names no output; omit `outputs` to return the last layer, or name the layers to return")
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



def __getattr__(name: str) -> Any:
    """`convspec.schema.load`, as documented, from its home in `loading` (imported on first use: it imports this module)."""
    if name == "load":
        from .loading import load

        return load
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""ONNX files into specs: `convspec import MODEL.onnx -o SPEC.yaml [--weights OUT]`.

The graph is read node by node, in its (topological) order, and each node becomes a layer or
joins the one before it: a Conv and the BatchNormalization and activation that alone read its
output become one `conv` layer with `norm` and `act`, as convspec writes them; an Add followed
by its activation one `add` with `act`. Tensors read by more than the next layer are wired with
`from`. Names come from the module paths the exporters leave (the weight's initializer name,
torch's `name_scopes` metadata, TorchScript's `/layer1/conv1/Conv` node names), made valid
layer names; else `<type>_<index>`. Shapes come from ONNX shape inference.

The import is proved, not trusted: the spec is checked, its parameter count must equal the
file's (the elements of the weights its layers read), and the model built from it with the
imported weights must give onnxruntime's outputs on the original file, within the
verification tolerance of `verify.py`. A file convspec exported carries its spec in its
metadata (`convspec.spec`): that text is given back exactly.

A graph that computes shapes at run time (TorchScript writes a ZeroPad2d's padding as Shape,
ConstantOfShape, Concat, ... nodes) is read again after onnxslim folds those constants, when
onnxslim is installed. Operators: Conv (-> conv, pointwise, depthwise, group), ConvTranspose, BatchNormalization,
Relu, Clip (relu6, hardtanh), Sigmoid (and Sigmoid-Mul: silu), Tanh, HardSwish, HardSigmoid,
LeakyRelu, Gelu, MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool, ReduceMean /
ReduceMax over the spatial axes, Add, Mul, Concat, Flatten, Reshape to (N, features), Gemm,
MatMul (+ Add), Resize, Pad (into the next conv or pool), Identity, Dropout. Any other
operator is refused, naming the node and its type (UnsupportedModelError, exit status 1).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import onnx

from .errors import Location, Problem
from .onnx_blocks import group_residuals
from .onnx_walk import GraphWalk, UnsupportedModelError, as_text, attribute_values, one_or_list

SUPPORTED_OPS = (
    "AveragePool", "BatchNormalization", "Clip", "Concat", "Constant", "Conv", "ConvTranspose", "Dropout", "Flatten",
    "Gelu", "Gemm", "GlobalAveragePool", "GlobalMaxPool", "HardSigmoid", "HardSwish", "Identity", "LeakyRelu", "MatMul",
    "MaxPool", "Mul", "Pad", "ReduceMax", "ReduceMean", "Relu", "Reshape", "Resize", "Sigmoid", "Tanh", "Add",
)  # fmt: skip
SIMPLE_ACTS = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "HardSwish": "hardswish", "Gelu": "gelu"}
CONV_TYPES = ("conv", "pointwise", "depthwise", "group", "transposed")


class _Reader(GraphWalk):
    """The operators of a graph read, in order, as spec layers."""

    def read(self) -> dict:
        """Every node, in order, handed to its operator's `op_` method; the spec data."""
        nodes = list(self.graph.node)
        for index, node in enumerate(nodes):
            if node.op_type == "Constant" or id(node) in self.skip:
                continue
            handler = getattr(self, f"op_{node.op_type}", None)
            if handler is None:
                raise self.refuse(node, f"the operator {node.op_type} has no spec layer; supported: {', '.join(SUPPORTED_OPS)}")
            handler(node, nodes[index + 1:])
        return self.spec()

    def spec(self) -> dict:
        shape = self.shapes.get(self.input) or []
        data: dict[str, Any] = {"convspec": 1}
        inputs: dict[str, Any] = {"channels": shape[1] if len(shape) > 1 else None}
        spatial = shape[2:]
        if spatial and all(isinstance(d, int) and d > 0 for d in spatial):
            inputs["size"] = list(spatial)
        data["input"] = inputs
        data["layers"] = self.layers
        outputs = []
        for out in self.graph.output:
            if out.name not in self.values or self.values[out.name].layer == "input":
                raise UnsupportedModelError([Problem(f"the graph output {out.name!r} is not made by a layer", Location(self.origin))])
            outputs.append(self.values[out.name].layer)
        group_residuals(self.layers, self.weights, outputs)
        names = {self.layers[-1]["name"]: self.layers[-1]["name"]}
        outputs = [names.get(o, o) for o in outputs]
        if outputs != [self.layers[-1]["name"]]:
            data["outputs"] = outputs
        return data

    # ---------------------------------------------------------------- convolutions

    def _padding(self, node: onnx.NodeProto, attrs: dict, dims: int, extra: list[int] | None) -> Any:
        auto = as_text(attrs.get("auto_pad", "NOTSET"))
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            if extra:
                raise self.refuse(node, "a Pad before a conv with auto_pad")
            return auto.lower()
        pads = list(attrs.get("pads", [0] * (2 * dims))) if auto in ("NOTSET", "") else [0] * (2 * dims)
        if extra:
            pads = [a + b for a, b in zip(pads, extra)]
        before, after = pads[:dims], pads[dims:]
        if before == after:
            return one_or_list(before)
        return [[b, a] for b, a in zip(before, after)]

    def _input_and_pad(self, node: onnx.NodeProto, dims: int) -> tuple[str, list[int] | None]:
        source = node.input[0]
        if source in self.pads:
            source, pads = self.pads.pop(source)
            return source, pads
        return source, None

    def op_Pad(self, node: onnx.NodeProto, rest: list) -> None:
        attrs = attribute_values(node)
        mode = as_text(attrs.get("mode", "constant"))
        pads = self.const(node, 1, "pads")
        value = self.const(node, 2, "constant value")
        if mode != "constant" or (value is not None and float(np.asarray(value).reshape(-1)[0]) != 0.0) or len(node.input) > 3 and node.input[3]:
            raise self.refuse(node, "only zero padding of the spatial dims goes into a spec (a conv's or pool's padding)")
        pads = [int(p) for p in pads.reshape(-1)]
        rank = len(pads) // 2
        if any(pads[:2]) or any(pads[rank:rank + 2]) or min(pads) < 0:
            raise self.refuse(node, "pads the batch or channel dims, or crops")
        spatial = pads[2:rank] + pads[rank + 2:]
        if self.consumers[node.output[0]] != 1:
            raise self.refuse(node, "its output is read by several nodes; a Pad must feed one conv or pool")
        self.value(node, node.input[0])
        self.pads[node.output[0]] = (node.input[0], spatial)

    def op_Conv(self, node: onnx.NodeProto, rest: list) -> None:
        attrs = attribute_values(node)
        w = self.const(node, 1, "weight")
        b = self.const(node, 2, "bias")
        dims = w.ndim - 2
        source, extra = self._input_and_pad(node, dims)
        self.value(node, source)
        in_channels = self.channels(source)
        groups = int(attrs.get("group", 1))
        kernel = [int(k) for k in w.shape[2:]]
        out = int(w.shape[0])
        name = self.name_for(node, "conv", node.input[1])
        layer: dict[str, Any] = {"name": name}
        if groups == 1:
            point = all(k == 1 for k in kernel)
            layer["type"] = "pointwise" if point else "conv"
            layer["out_channels"] = out
            if not point:
                layer["kernel_size"] = one_or_list(kernel)
        elif in_channels is not None and groups == in_channels and out % in_channels == 0:
            layer["type"] = "depthwise"
            layer["kernel_size"] = one_or_list(kernel)
            if out != in_channels:
                layer["multiplier"] = out // in_channels
        else:
            layer.update(type="group", out_channels=out, kernel_size=one_or_list(kernel), groups=groups)
        strides = [int(s) for s in attrs.get("strides", [1] * dims)]
        dilations = [int(d) for d in attrs.get("dilations", [1] * dims)]
        padding = self._padding(node, attrs, dims, extra)
        if any(s != 1 for s in strides):
            layer["stride"] = one_or_list(strides)
        if padding != 0:
            if layer["type"] == "pointwise" and padding != 0:
                layer["type"], layer["kernel_size"] = "conv", one_or_list(kernel)
            layer["padding"] = padding
        if any(d != 1 for d in dilations):
            layer["dilation"] = one_or_list(dilations)
        self.add_conv(node, layer, source, w, b)

    def add_conv(self, node: onnx.NodeProto, layer: dict[str, Any], source: str, w: Any, b: Any) -> None:
        """A conv-like layer and its weights (`NAME.conv.weight`, `NAME.conv.bias` unless it has none)."""
        if b is None:
            layer["bias"] = False
        self.add_layer(node, layer, [source], node.output[0])
        self.weight(f"{layer['name']}.conv.weight", w)
        if b is not None:
            self.weight(f"{layer['name']}.conv.bias", b)

    def op_ConvTranspose(self, node: onnx.NodeProto, rest: list) -> None:
        attrs = attribute_values(node)
        w = self.const(node, 1, "weight")
        b = self.const(node, 2, "bias")
        dims = w.ndim - 2
        source = node.input[0]
        self.value(node, source)
        if "output_shape" in attrs or as_text(attrs.get("auto_pad", "NOTSET")) not in ("NOTSET", ""):
            raise self.refuse(node, "output_shape and auto_pad have no spec form; export with explicit pads")
        groups = int(attrs.get("group", 1))
        pads = [int(p) for p in attrs.get("pads", [0] * (2 * dims))]
        if pads[:dims] != pads[dims:]:
            raise self.refuse(node, "unequal pads on a transposed conv")
        name = self.name_for(node, "transposed", node.input[1])
        layer: dict[str, Any] = {"name": name, "type": "transposed", "out_channels": int(w.shape[1]) * groups,
                                 "kernel_size": one_or_list([int(k) for k in w.shape[2:]])}  # fmt: skip
        for key, attr, default in (("stride", "strides", 1), ("dilation", "dilations", 1), ("output_padding", "output_padding", 0)):
            values = [int(v) for v in attrs.get(attr, [default] * dims)]
            if any(v != default for v in values):
                layer[key] = one_or_list(values)
        if any(pads[:dims]):
            layer["padding"] = one_or_list(pads[:dims])
        if groups != 1:
            layer["groups"] = groups
        self.add_conv(node, layer, source, w, b)

    def op_BatchNormalization(self, node: onnx.NodeProto, rest: list) -> None:
        attrs = attribute_values(node)
        if len(node.output) > 1 and any(node.output[1:]):
            raise self.refuse(node, "training-mode BatchNormalization (running statistics as outputs)")
        scale, bias, mean, var = (self.const(node, i, what) for i, what in ((1, "scale"), (2, "bias"), (3, "mean"), (4, "variance")))
        eps = float(attrs.get("epsilon", 1e-5))
        momentum = round(1.0 - float(attrs.get("momentum", 0.9)), 6)  # ONNX keeps the old value's share; PyTorch the new one's
        source = node.input[0]
        self.value(node, source)
        settings = {k: v for k, v in (("eps", eps), ("momentum", momentum)) if not math.isclose(v, {"eps": 1e-5, "momentum": 0.1}[k], rel_tol=1e-6)}
        conv = self.fusable(source, CONV_TYPES, ("norm", "act"))
        if conv is not None:
            if conv.pop("bias", True) is True:  # a conv with norm has no bias unless asked
                conv["bias"] = True
            conv["norm"] = "batch"
            conv.update(settings)
            prefix = f"{conv['name']}.norm"
            self.alias(node.output[0], source)
        else:
            name = self.name_for(node, "norm", node.input[1])
            self.add_layer(node, {"name": name, "type": "norm", "kind": "batch", **settings}, [source], node.output[0])
            prefix = name
        self.weight(f"{prefix}.weight", scale)
        self.weight(f"{prefix}.bias", bias)
        self.weight(f"{prefix}.running_mean", mean, parameter=False)
        self.weight(f"{prefix}.running_var", var, parameter=False)
        self.weight(f"{prefix}.num_batches_tracked", np.array(0, dtype=np.int64), parameter=False)

    # ---------------------------------------------------------------- activations

    def _act(self, node: onnx.NodeProto, fn: str, extra: dict | None = None) -> None:
        source = node.input[0]
        self.value(node, source)
        target = None if extra else self.fusable(source, (*CONV_TYPES, "add"), ("act",))
        if target is not None:
            target["act"] = fn
            self.alias(node.output[0], source)
            return
        name = self.name_for(node, "act")
        self.add_layer(node, {"name": name, "type": "act", "fn": fn, **(extra or {})}, [source], node.output[0])

    def op_Relu(self, node: onnx.NodeProto, rest: list) -> None:
        self._act(node, "relu")

    def op_Tanh(self, node: onnx.NodeProto, rest: list) -> None:
        self._act(node, "tanh")

    def op_HardSwish(self, node: onnx.NodeProto, rest: list) -> None:
        self._act(node, "hardswish")

    def op_Gelu(self, node: onnx.NodeProto, rest: list) -> None:
        if as_text(attribute_values(node).get("approximate", "none")) != "none":
            raise self.refuse(node, "the tanh approximation of GELU")
        self._act(node, "gelu")

    def op_HardSigmoid(self, node: onnx.NodeProto, rest: list) -> None:
        attrs = attribute_values(node)
        if not (math.isclose(attrs.get("alpha", 0.2), 1 / 6, rel_tol=1e-5) and math.isclose(attrs.get("beta", 0.5), 0.5)):
            raise self.refuse(node, "HardSigmoid other than PyTorch's (alpha 1/6, beta 0.5)")
        self._act(node, "hardsigmoid")

    def op_LeakyRelu(self, node: onnx.NodeProto, rest: list) -> None:
        slope = float(attribute_values(node).get("alpha", 0.01))
        self._act(node, "leaky_relu", None if math.isclose(slope, 0.01) else {"negative_slope": slope})

    def op_Clip(self, node: onnx.NodeProto, rest: list) -> None:
        attrs = attribute_values(node)
        low = self.const(node, 1, "minimum")
        high = self.const(node, 2, "maximum")
        low = float(low) if low is not None else attrs.get("min")
        high = float(high) if high is not None else attrs.get("max")
        if low == 0.0 and high == 6.0:
            self._act(node, "relu6")
        elif low == -1.0 and high == 1.0:
            self._act(node, "hardtanh")
        else:
            raise self.refuse(node, f"Clip to [{low}, {high}]: only [0, 6] (relu6) and [-1, 1] (hardtanh) are activations")

    def op_Sigmoid(self, node: onnx.NodeProto, rest: list) -> None:
        # x * sigmoid(x), as exporters write SiLU
        out = node.output[0]
        follower = next((n for n in rest if out in n.input), None)
        if (follower is not None and follower.op_type == "Mul" and self.consumers[out] == 1
                and set(follower.input) == {out, node.input[0]}):  # fmt: skip
            self.skip.add(id(follower))
            fake = onnx.helper.make_node("Sigmoid", [node.input[0]], [follower.output[0]], name=node.name)
            fake.metadata_props.extend(node.metadata_props)
            self.consumers[node.input[0]] -= 1  # the Mul's read of x is the same activation
            self._act(fake, "silu")
            return
        self._act(node, "sigmoid")

    # ---------------------------------------------------------------- pools, reshapes

    def _pool(self, node: onnx.NodeProto, op: str) -> None:
        attrs = attribute_values(node)
        kernel = [int(k) for k in attrs["kernel_shape"]]
        dims = len(kernel)
        source, extra = self._input_and_pad(node, dims)
        self.value(node, source)
        if any(int(d) != 1 for d in attrs.get("dilations", [1] * dims)):
            raise self.refuse(node, "a dilated pool")
        padding = self._padding(node, attrs, dims, extra)
        if isinstance(padding, (str, list)) and not (isinstance(padding, list) and all(isinstance(p, int) for p in padding)):
            raise self.refuse(node, "unequal or input-dependent pool padding")
        if op == "avg" and padding != 0 and not (attrs.get("count_include_pad", 0) or extra):
            raise self.refuse(node, "an average pool that leaves its padding out of the count (count_include_pad=0)")
        layer = {"name": self.name_for(node, "pool"), "type": "pool", "op": op, "kernel_size": one_or_list(kernel),
                 "stride": one_or_list([int(s) for s in attrs.get("strides", [1] * dims)])}  # fmt: skip
        if padding != 0:
            layer["padding"] = padding
        if attrs.get("ceil_mode", 0):
            layer["ceil_mode"] = True
        self.add_layer(node, layer, [source], node.output[0])

    def op_MaxPool(self, node: onnx.NodeProto, rest: list) -> None:
        if len(node.output) > 1 and node.output[1]:
            raise self.refuse(node, "MaxPool's indices output")
        self._pool(node, "max")

    def op_AveragePool(self, node: onnx.NodeProto, rest: list) -> None:
        self._pool(node, "avg")

    def _global(self, node: onnx.NodeProto, op: str) -> None:
        self.value(node, node.input[0])
        self.add_layer(node, {"name": self.name_for(node, "global_pool"), "type": "global_pool", "op": op}, [node.input[0]], node.output[0])

    def op_GlobalAveragePool(self, node: onnx.NodeProto, rest: list) -> None:
        self._global(node, "avg")

    def op_GlobalMaxPool(self, node: onnx.NodeProto, rest: list) -> None:
        self._global(node, "max")

    def _reduce(self, node: onnx.NodeProto, op: str) -> None:
        attrs = attribute_values(node)
        axes = attrs.get("axes")
        if axes is None and len(node.input) > 1:
            axes = self.const(node, 1, "axes").reshape(-1).tolist()
        rank = len(self.shapes.get(node.input[0]) or [])
        spatial = set(range(2, rank))
        if not axes or {a % rank for a in axes} != spatial or not attrs.get("keepdims", 1):
            raise self.refuse(node, "a reduction other than over every spatial dim with keepdims (a global pool)")
        self._global(node, op)

    def op_ReduceMean(self, node: onnx.NodeProto, rest: list) -> None:
        self._reduce(node, "avg")

    def op_ReduceMax(self, node: onnx.NodeProto, rest: list) -> None:
        self._reduce(node, "max")

    def _flatten(self, node: onnx.NodeProto) -> None:
        self.value(node, node.input[0])
        self.add_layer(node, {"name": self.name_for(node, "flatten"), "type": "flatten"}, [node.input[0]], node.output[0])

    def op_Flatten(self, node: onnx.NodeProto, rest: list) -> None:
        if int(attribute_values(node).get("axis", 1)) != 1:
            raise self.refuse(node, "Flatten at an axis other than 1")
        self._flatten(node)

    def op_Reshape(self, node: onnx.NodeProto, rest: list) -> None:
        before, after = self.shapes.get(node.input[0]), self.shapes.get(node.output[0])
        if not before or not after or len(after) != 2 or None in before[1:] or after[1] != math.prod(before[1:]):
            raise self.refuse(node, "a Reshape other than to (batch, features), which is a flatten")
        self._flatten(node)

    def op_Identity(self, node: onnx.NodeProto, rest: list) -> None:
        if node.input[0] in self.constants:  # TorchScript copies a shared initializer this way
            self.constants[node.output[0]] = self.constants[node.input[0]]
            return
        self.value(node, node.input[0])
        self.alias(node.output[0], node.input[0])

    op_Dropout = op_Identity

    # ---------------------------------------------------------------- linear

    def _linear(self, node: onnx.NodeProto, source: str, weight: np.ndarray, bias: np.ndarray | None, output: str, weight_name: str) -> None:
        self.value(node, source)
        name = self.name_for(node, "linear", weight_name)
        layer: dict[str, Any] = {"name": name, "type": "linear", "out_features": int(weight.shape[0])}
        if bias is None:
            layer["bias"] = False
        self.add_layer(node, layer, [source], output)
        self.weight(f"{name}.weight", weight)
        if bias is not None:
            self.weight(f"{name}.bias", bias.reshape(-1))

    def op_Gemm(self, node: onnx.NodeProto, rest: list) -> None:
        attrs = attribute_values(node)
        if attrs.get("transA", 0) or float(attrs.get("alpha", 1.0)) != 1.0 or float(attrs.get("beta", 1.0)) != 1.0:
            raise self.refuse(node, "Gemm with transA, alpha or beta; a linear layer is x @ W.T + b")
        w = self.const(node, 1, "weight")
        w = w if attrs.get("transB", 0) else w.T
        self._linear(node, node.input[0], w, self.const(node, 2, "bias"), node.output[0], node.input[1])

    def op_MatMul(self, node: onnx.NodeProto, rest: list) -> None:
        w = self.const(node, 1, "weight")
        if w.ndim != 2:
            raise self.refuse(node, "MatMul with a weight that is not a matrix")
        out = node.output[0]
        follower = next((n for n in rest if out in n.input), None)
        bias = None
        output = out
        if follower is not None and follower.op_type == "Add" and self.consumers[out] == 1:
            other = [i for i in follower.input if i != out]
            if len(other) == 1 and other[0] in self.constants and self.constants[other[0]].size == w.shape[1]:
                bias, output = self.constants[other[0]], follower.output[0]
                self.skip.add(id(follower))
        self._linear(node, node.input[0], np.ascontiguousarray(w.T), bias, output, node.input[1])

    # ---------------------------------------------------------------- joins, resize

    def _join(self, node: onnx.NodeProto, kind: str) -> None:
        if any(name in self.constants for name in node.input):
            raise self.refuse(node, f"{node.op_type} with a constant; a spec's `{kind}` joins layers' outputs")
        for name in node.input:
            self.value(node, name)
        layer = {"name": self.name_for(node, kind), "type": kind}
        self.add_layer(node, layer, list(node.input), node.output[0])

    def op_Add(self, node: onnx.NodeProto, rest: list) -> None:
        self._join(node, "add")

    def op_Mul(self, node: onnx.NodeProto, rest: list) -> None:
        self._join(node, "mul")

    def op_Concat(self, node: onnx.NodeProto, rest: list) -> None:
        rank = len(self.shapes.get(node.output[0]) or [])
        if int(attribute_values(node).get("axis", 1)) % max(rank, 1) != 1:
            raise self.refuse(node, "Concat along an axis other than the channels")
        self._join(node, "concat")

    def op_Resize(self, node: onnx.NodeProto, rest: list) -> None:
        attrs = attribute_values(node)
        mode = as_text(attrs.get("mode", "nearest"))
        transform = as_text(attrs.get("coordinate_transformation_mode", "half_pixel"))
        source = node.input[0]
        self.value(node, source)
        before, after = self.shapes.get(source) or [], self.shapes.get(node.output[0]) or []
        dims = len(before) - 2
        layer: dict[str, Any] = {"name": self.name_for(node, "upsample"), "type": "upsample"}
        if mode == "nearest":
            if transform != "asymmetric" or as_text(attrs.get("nearest_mode", "round_prefer_floor")) != "floor":
                raise self.refuse(node, "nearest Resize other than PyTorch's (asymmetric, floor)")
            layer["mode"] = "nearest"
        elif mode == "linear" and dims in (1, 2, 3):
            if transform not in ("half_pixel", "pytorch_half_pixel", "align_corners"):
                raise self.refuse(node, f"linear Resize with coordinate_transformation_mode {transform}")
            layer["mode"] = {1: "linear", 2: "bilinear", 3: "trilinear"}[dims]
            if transform == "align_corners":
                layer["align_corners"] = True
        else:
            raise self.refuse(node, f"Resize mode {mode}")
        scales = self.constants.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if scales is not None and scales.size:
            factors = [float(s) for s in scales.reshape(-1)[2:]]
            layer["scale"] = one_or_list([int(f) if f.is_integer() else f for f in factors])
        elif len(after) == len(before) and None not in after[2:]:
            layer["size"] = one_or_list([int(d) for d in after[2:]])
        else:
            raise self.refuse(node, "Resize without constant scales or a known output size")
        self.add_layer(node, layer, [source], node.output[0])


def _folded(proto: onnx.ModelProto) -> onnx.ModelProto | None:
    """The graph with its constant subgraphs folded by onnxslim (when installed and it changes anything), else None."""
    try:
        import onnxslim
    except ImportError:
        return None
    try:
        folded = onnxslim.slim(onnx.ModelProto.FromString(proto.SerializeToString()), no_shape_infer=False)
    except Exception:  # onnxslim refusing a graph leaves the first reading's refusal to stand
        return None
    if folded is None or len(folded.graph.node) == len(proto.graph.node):
        return None
    return folded


def read_graph(proto: onnx.ModelProto, origin: str) -> tuple[dict, dict[str, np.ndarray], int]:
    """The graph as (spec data, weights under the spec's keys, the file's parameter count); not yet proved.

    UnsupportedModelError naming the first node no spec layer expresses.
    """
    try:
        reader = _Reader(proto, origin)
        data = reader.read()
    except UnsupportedModelError:
        folded = _folded(proto)  # sizes computed in the graph (TorchScript's padding) folded to constants
        if folded is None:
            raise
        reader = _Reader(folded, origin)
        data = reader.read()
    return data, reader.weights, reader.file_params


__all__ = ["SUPPORTED_OPS", "read_graph"]

"""A float32 ONNX model converted: simplified by onnxslim, to float16 by onnxconverter-common, to int8 by onnxruntime's quantization."""

from __future__ import annotations

import re
from pathlib import Path

import onnx

from .calibration import Calibration
from .edge_shapes import infer_shapes
from .errors import ExportError, InputError, first_line


def simplify_model(proto: onnx.ModelProto) -> onnx.ModelProto:
    """onnxslim's simplification (constant folding, dead and duplicate nodes removed, fusions); ExportError if it fails."""
    try:
        import onnxslim
    except ImportError:
        raise InputError("--simplify needs onnxslim (pip install 'convspec[deploy]')") from None
    try:
        return onnxslim.slim(proto)
    except Exception as err:
        raise ExportError(f"onnxslim could not simplify the model: {first_line(err, 300)}") from None


FP16_RETRIES = 16  # nodes kept in float32 one by one, at most, before giving up
_NAMED_NODE = re.compile(r"node name: ([^)\s]+)\)|of node \(([^)\s]+)\)")


def to_fp16(proto: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """Weights and compute in float16, input and outputs kept float32; and the nodes kept in float32 to get there.

    onnxconverter-common's `convert_float_to_float16` with `keep_io_types`, then two repairs
    for what it gets wrong: a graph output that other nodes also read hands those nodes the
    float32 copy (they are given the float16 value); and a node whose types ONNX shape
    inference or onnxruntime then reject (a ConstantOfShape feeding a Scan's float32 state,
    ...) is kept in float32 (`node_block_list`) and the conversion run again.
    """
    try:
        from onnxconverter_common import float16
    except ImportError:
        raise InputError("--precision fp16 needs onnxconverter-common (pip install 'convspec[deploy]')") from None
    import onnxruntime as ort

    from .verify import session_options

    kept: list[str] = []
    for _ in range(FP16_RETRIES):
        try:
            converted = float16.convert_float_to_float16(proto, keep_io_types=True, node_block_list=kept or None)
        except Exception as err:
            raise ExportError(f"onnxconverter-common could not convert the model to float16: {first_line(err, 300)}") from None
        read_float16_outputs(converted)
        try:
            infer_shapes(converted, check_type=True, strict_mode=True)
            ort.InferenceSession(converted.SerializeToString(), session_options(), providers=["CPUExecutionProvider"])
            return converted, kept
        except Exception as err:
            found = _NAMED_NODE.search(str(err))
            node = next((g for g in found.groups() if g), None) if found else None
            if node is None or node in kept:
                raise ExportError(f"the float16 model is not valid: {first_line(err, 300)}") from None
            kept.append(node)
    raise ExportError(f"the float16 model is still not valid with {FP16_RETRIES} nodes kept in float32 ({', '.join(kept[:5])}, ...)")


def read_float16_outputs(proto: onnx.ModelProto) -> None:
    """Nodes that read a graph output the converter cast back to float32 read the float16 value before the cast instead."""
    returned = {output.name for output in proto.graph.output}
    casts = {node.output[0]: node.input[0] for node in proto.graph.node
             if node.op_type == "Cast" and node.output[0] in returned
             and any(a.name == "to" and a.i == onnx.TensorProto.FLOAT for a in node.attribute)}
    for node in proto.graph.node:
        if node.op_type == "Cast" and node.output and node.output[0] in casts:
            continue
        for index, name in enumerate(node.input):
            if name in casts:
                node.input[index] = casts[name]


class CalibrationReader:
    """onnxruntime's CalibrationDataReader protocol over calibration samples, one per call."""

    def __init__(self, input_name: str, calibration: Calibration):
        self.input_name, self.samples = input_name, iter(calibration.samples)

    def __iter__(self):  # the QDQ loss debugger iterates where the quantizer calls get_next
        return iter({self.input_name: sample} for sample in self.samples)

    def get_next(self) -> dict | None:
        sample = next(self.samples, None)
        return None if sample is None else {self.input_name: sample}


def to_int8(source: Path, target: Path, calibration: Calibration | None, staging: Path) -> None:
    """Quantize the float model at `source` into `target`: static QDQ (U8S8, per channel) on `calibration`, or dynamic without it."""
    from onnxruntime.quantization import QuantFormat, QuantType, quant_pre_process, quantize_dynamic, quantize_static

    prepared = staging / "prepared.onnx"
    try:
        try:
            quant_pre_process(str(source), str(prepared))
        except Exception:  # its symbolic shape inference fails on some graphs (a Mul of broadcast shapes): ONNX's alone then
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        if calibration is None:
            quantize_dynamic(str(prepared), str(target), per_channel=True, weight_type=QuantType.QInt8)
        else:
            quantize_static(
                str(prepared), str(target), CalibrationReader("input", calibration), quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            )
    except ExportError:
        raise
    except Exception as err:
        raise ExportError(f"onnxruntime's quantization failed: {type(err).__name__}: {first_line(err, 300)}") from None


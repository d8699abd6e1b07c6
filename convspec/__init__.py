"""convspec: define convolutional networks in YAML; get a checked PyTorch module and a verified ONNX file.

The public API:

    spec = convspec.load("specs/small_cnn.yaml")   # validated Spec
    report = convspec.check(spec)                   # shapes, params, MACs, receptive fields
    model = convspec.build(spec)                    # torch.nn.Module
    convspec.export_onnx(model, spec, "net.onnx")   # verified ONNX
    convspec.verify_onnx("net.onnx", spec)          # re-verify a file (one another tool changed, say)
    convspec.resolve("specs/yolo_backbone.yaml", scale="n")  # the final spec as YAML text
    state, table = convspec.map_weights(spec, torchvision_state_dict)  # foreign weights onto the spec
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import BudgetError, ConvspecError, ExportError, InputError, Problem, SpecError
from .resolved import resolve
from .loading import load
from .report import Report
from .schema import Spec
from .schema_json import json_schema
from .trace import check
from .plugins import Figures, LayerError, UserKind, register_kind
from .schema import LayerBase

if TYPE_CHECKING:  # torch is imported only when a model is built
    from .builder import build
    from .checkpoint import load_checkpoint, save_checkpoint
    from .export import export_onnx
    from .verify import verify_onnx
    from .importer import import_onnx
    from .weights import map_weights

__all__ = [
    "__version__",
    "load",
    "check",
    "resolve",
    "build",
    "export_onnx",
    "verify_onnx",
    "map_weights",
    "import_onnx",
    "save_checkpoint",
    "load_checkpoint",
    "json_schema",
    "Spec",
    "Report",
    "Problem",
    "ConvspecError",
    "SpecError",
    "BudgetError",
    "InputError",
    "ExportError",
    "register_kind",
    "UserKind",
    "Figures",
    "LayerError",
    "LayerBase",
]

_LAZY = {
    "build": "builder", "save_checkpoint": "checkpoint", "load_checkpoint": "checkpoint", "export_onnx": "export",
    "verify_onnx": "verify", "map_weights": "weights", "import_onnx": "importer",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    # `convspec check` must not pay for importing torch: these load it on first use.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'convspec' has no attribute {name!r}")

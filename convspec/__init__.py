"""convspec: define convolutional networks in YAML; get a checked PyTorch module and a verified ONNX file.

The public API:

    spec = convspec.load("specs/small_cnn.yaml")   # validated Spec
    report = convspec.check(spec)                   # shapes, params, MACs, receptive fields
    model = convspec.build(spec)                    # torch.nn.Module
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import BudgetError, ConvspecError, ExportError, InputError, Problem, SpecError
from .schema import Spec, json_schema, load
from .shapes import Report, check

if TYPE_CHECKING:  # torch is imported only when a model is built
    from .builder import build, load_checkpoint, save_checkpoint

__all__ = [
    "__version__",
    "load",
    "check",
    "build",
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
]

_LAZY = {"build", "save_checkpoint", "load_checkpoint"}


def __getattr__(name: str) -> Any:
    # `convspec check` must not pay for importing torch; the builder loads it on first use.
    if name in _LAZY:
        from . import builder as _builder_module

        return getattr(_builder_module, name)
    raise AttributeError(f"module 'convspec' has no attribute {name!r}")

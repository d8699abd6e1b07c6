"""Weights that are not finite (NaN, inf), named: a model holding them cannot be verified."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import nn

from .errors import ExportError


def non_finite_tensors(named: Iterable[tuple[str, Any]]) -> list[str]:
    """'NAME (N of M values NaN)' for each tensor or array that holds NaN or inf."""
    found = []
    for name, value in named:
        array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
        if not np.issubdtype(array.dtype, np.floating):
            continue
        bad = ~np.isfinite(array)
        if bad.any():
            kind = "NaN" if np.isnan(array).any() else "inf"
            found.append(f"{name} ({int(bad.sum())} of {array.size} values {kind})")
    return found


def refuse_non_finite_weights(model: nn.Module) -> None:
    """ExportError naming each parameter or buffer that holds NaN or inf: such a model cannot be verified."""
    bad = non_finite_tensors([*model.named_parameters(), *model.named_buffers()])
    if bad:
        raise ExportError(
            f"the model's weights are not finite: {', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}; "
            "its outputs cannot be compared (load or train weights without NaN or inf)"
        )


def non_finite_reference(model: nn.Module, name: str, shape: tuple, value: torch.Tensor) -> ExportError:
    """The error for PyTorch's own output `name` holding NaN or inf at input `shape`: the weights named, or overflow."""
    kind = "NaN" if torch.isnan(value).any() else "inf"
    bad = non_finite_tensors([*model.named_parameters(), *model.named_buffers()])
    where = f"PyTorch's own output {name!r} at input {list(shape)} holds {kind}: "
    if bad:
        return ExportError(where + f"the model's weights are not finite: {', '.join(bad[:5])}")
    return ExportError(where + "the weights are finite, so values overflow float32 inside the network (look at the weights' scale)")

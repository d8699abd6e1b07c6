"""Weights and checkpoints in and out: every read and write of a state_dict is here.

- `save_checkpoint` / `load_checkpoint`: the spec's text and the model's state_dict in one
  file (`convspec build -o`), written atomically, read back with `weights_only=True`, so
  loading never runs code from the file.
- `load_weights_file`: a bare state_dict or a checkpoint, into a built model (`--weights`).
- `load_weights`: `load_state_dict` with every missing, unexpected or mis-shaped key listed.

Checkpoints of format 1 (before conv layers became containers) had a conv's weight at
`NAME.weight`; it is now at `NAME.conv.weight`. Such keys are translated on load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ._version import __version__
from .errors import InputError, Location, Problem, first_line
from .fileio import atomic_write
from .schema import Spec, load

CHECKPOINT_FORMAT = "convspec-checkpoint/2"
READABLE_FORMATS = ("convspec-checkpoint/1", CHECKPOINT_FORMAT)


def spec_text(spec: Spec) -> str:
    """The spec as YAML text: its original text where it came from one."""
    if spec.source.text is not None:
        return spec.source.text
    import yaml

    data = spec.source.data if spec.source.data is not None else spec.model_dump(by_alias=True, exclude_none=True, warnings=False)
    return yaml.safe_dump(data, sort_keys=False)


def save_checkpoint(
    model: nn.Module, spec: Any, path: str | Path, *, force: bool = False, input_shape: tuple[int, ...] | None = None
) -> Path:
    """Save the spec's text and the model's state_dict together, atomically (with the input shape built for, if any)."""
    parsed = load(spec)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "convspec_version": __version__,
        "spec_name": parsed.name,
        "input_shape": list(input_shape) if input_shape else None,  # needed again to rebuild a spec without input.size
        "spec_text": spec_text(parsed),
        "state_dict": model.state_dict(),
    }
    return atomic_write(path, lambda f: torch.save(payload, f), force=force)


def _torch_load(path: Path, what: str) -> Any:
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a bad or unsafe file
        raise InputError(f"{path}: {what} ({type(err).__name__}: {first_line(err, 200)})") from None


def read_checkpoint(path: str | Path) -> dict:
    """A checkpoint's contents, loaded with weights_only=True (no arbitrary objects unpickled)."""
    path = Path(path)
    payload = _torch_load(path, "not a readable convspec checkpoint")
    if not isinstance(payload, dict) or payload.get("format") not in READABLE_FORMATS:
        raise InputError(f"{path}: not a convspec checkpoint (made by `convspec build -o`); for a bare state_dict use --weights")
    return payload


def load_checkpoint(path: str | Path) -> nn.Module:
    """Rebuild the model saved by `save_checkpoint` / `convspec build -o`, with its weights."""
    from .builder import build

    payload = read_checkpoint(path)
    spec = load(payload["spec_text"])
    if spec.name is None:
        spec.name = payload.get("spec_name")
    shape = payload.get("input_shape")
    model = build(spec, input_shape=tuple(shape) if shape else None)
    load_weights(model, payload["state_dict"], str(path))
    return model


def load_weights_file(model: nn.Module, path: str | Path) -> None:
    """Load a bare state_dict or a `convspec build -o` checkpoint into `model` (weights_only: no objects unpickled)."""
    path = Path(path)
    payload = _torch_load(
        path,
        "cannot load weights safely; give a state_dict of tensors saved with torch.save, or a checkpoint from `convspec build -o`",
    )
    if isinstance(payload, dict) and "state_dict" in payload and "format" in payload:
        payload = read_checkpoint(path)["state_dict"]
    if not isinstance(payload, dict) or not all(isinstance(v, torch.Tensor) for v in payload.values()):
        raise InputError(f"{path}: not a state_dict (a mapping of names to tensors)")
    load_weights(model, payload, str(path))


def translate_keys(state_dict: dict, own_keys: set[str]) -> dict:
    """Keys of format-1 checkpoints, where a conv layer's tensors sat at the layer itself, moved under its `conv` child.

    `NAME.weight` becomes `NAME.conv.weight` (and a dynamic conv's `NAME.attention.2.weight`
    `NAME.conv.attention.2.weight`) only when the model lacks the key and has exactly one such
    moved key, so current state_dicts pass through unchanged.
    """
    translated = {}
    for key, value in state_dict.items():
        if key not in own_keys:
            parts = key.split(".")
            moved = [".".join([*parts[:i], "conv", *parts[i:]]) for i in range(1, len(parts))]
            found = [k for k in moved if k in own_keys and k not in state_dict]
            if len(found) == 1:
                key = found[0]
        translated[key] = value
    return translated


def load_weights(model: nn.Module, state_dict: dict, origin: str) -> None:
    """load_state_dict with a report of every missing, unexpected or mis-shaped key (InputError)."""
    own = model.state_dict()
    state_dict = translate_keys(state_dict, set(own))
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [
        f"{k}: file {list(state_dict[k].shape)}, spec {list(own[k].shape)}"
        for k in own
        if k in state_dict and hasattr(state_dict[k], "shape") and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or mismatched:
        lines = []
        if missing:
            lines.append(f"missing keys ({len(missing)}): {', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}")
        if unexpected:
            lines.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected[:10])}{' ...' if len(unexpected) > 10 else ''}")
        if mismatched:
            lines.append(f"shape mismatches ({len(mismatched)}): {'; '.join(mismatched[:10])}")
        raise InputError([Problem(f"the weights do not fit the spec: {line}", Location(origin)) for line in lines])
    model.load_state_dict(state_dict)


__all__ = [
    "CHECKPOINT_FORMAT", "load_checkpoint", "load_weights", "load_weights_file", "read_checkpoint", "save_checkpoint",
    "spec_text", "translate_keys",
]  # fmt: skip

"""Weights and checkpoints in and out: every read and write of a state_dict is here.

- `save_checkpoint` / `load_checkpoint`: the spec's text and the model's state_dict in one
  file (`convspec build -o`), written atomically, read back with `weights_only=True`, so
  loading never runs code from the file. A checkpoint is data: each entry is checked for
  its type, and the embedded spec is parsed as text, never opened as a path.
- `load_weights_file`: a bare state_dict or a checkpoint, into a built model (`--weights`).
- `read_safetensors` / `save_safetensors`: `.safetensors` files (tensors only, nothing to unpickle).
- `load_weights`: `load_state_dict` with every missing, unexpected or mis-shaped key listed.

Checkpoints of format 1 (before conv layers became containers) had a conv's weight at
`NAME.weight`; it is now at `NAME.conv.weight`. Such keys are translated on load.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ._version import __version__
from .errors import InputError, Location, Problem, SpecError, first_line
from .fileio import atomic_write, check_readable, check_writable
from .limits import flag_argument, path_argument
from .loading import load, parse_spec
from .schema import Spec
from .source import MAX_FILE_BYTES, parse_yaml
from .trace import parse_input_shape

CHECKPOINT_FORMAT = "convspec-checkpoint/2"
READABLE_FORMATS = ("convspec-checkpoint/1", CHECKPOINT_FORMAT)


def spec_text(spec: Spec) -> str:
    """The spec as YAML text: its original text where it came from one and that text is the whole
    spec; the resolved spec (`convspec resolve`'s) where a base was merged, `--set` or a scale applied."""
    if spec.source.derived:
        from .resolved import resolved_yaml

        return resolved_yaml(spec)
    if spec.source.text is not None:
        return spec.source.text
    import yaml

    data = spec.source.data if spec.source.data is not None else spec.model_dump(by_alias=True, exclude_none=True, warnings=False)
    return yaml.safe_dump(data, sort_keys=False)


def save_checkpoint(
    model: nn.Module, spec: Any, path: str | Path, *, force: bool = False, input_shape: tuple[int, ...] | str | None = None
) -> Path:
    """Save the spec's text and the model's state_dict together, atomically (with the input shape built for, if any).

    `input_shape` is NCHW-like, (1, 3, 64, 64) or "1x3x64x64". InputError for an argument of the
    wrong type or range, or a path that cannot be written, before anything is written.
    """
    if not isinstance(model, nn.Module):
        raise InputError(f"model must be the torch.nn.Module built from the spec, not {type(model).__name__}")
    path = check_writable(path_argument("path", path), flag_argument("force", force))
    shape = parse_input_shape(input_shape) if input_shape is not None else None
    parsed = load(spec)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "convspec_version": __version__,
        "spec_name": parsed.name,
        "input_shape": list(shape) if shape else None,  # needed again to rebuild a spec without input.size
        "spec_text": spec_text(parsed),
        "state_dict": model.state_dict(),
    }
    return atomic_write(path, lambda f: torch.save(payload, f), force=force)


def _torch_load(path: Path, what: str) -> Any:
    """The file's contents, unpickled with `weights_only=True`: tensors and plain containers, never code."""
    check_readable(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a bad or unsafe file
        raise InputError(f"{path}: {what} ({type(err).__name__}: {first_line(err, 200)})") from None


def _problem(path: Path, message: str) -> InputError:
    return InputError([Problem(message, Location(str(path)))])


def read_checkpoint(path: str | Path) -> dict:
    """A checkpoint's contents, loaded with weights_only=True (no arbitrary objects unpickled) and checked as data.

    Every entry must be what `save_checkpoint` writes: `format` a known format, `spec_text` the
    spec's YAML text (never a path: it is not read as one), `spec_name` a str or None, `input_shape`
    None or a valid shape, `state_dict` a mapping of str names to tensors. InputError otherwise.
    """
    path = path_argument("path", path)
    return _checked(_torch_load(path, "not a readable convspec checkpoint"), path)


def _checked(payload: Any, path: Path) -> dict:
    if not isinstance(payload, dict) or not isinstance(payload.get("format"), str) or payload["format"] not in READABLE_FORMATS:
        raise _problem(path, "not a convspec checkpoint (made by `convspec build -o`); for a bare state_dict use --weights")
    missing = [key for key in ("spec_text", "state_dict") if key not in payload]
    if missing:
        raise _problem(path, f"the checkpoint lacks {' and '.join(f'`{k}`' for k in missing)}; save it again with `convspec build -o`")
    text = payload["spec_text"]
    if not isinstance(text, str):
        raise _problem(path, f"the checkpoint's `spec_text` must be the spec's YAML text, not {type(text).__name__}")
    if len(text) > MAX_FILE_BYTES:
        raise _problem(path, f"the checkpoint's `spec_text` is over {MAX_FILE_BYTES:,} characters, the most a spec may be")
    name = payload.get("spec_name")
    if name is not None and not isinstance(name, str):
        raise _problem(path, f"the checkpoint's `spec_name` must be a str or None, not {type(name).__name__}")
    shape = payload.get("input_shape")
    if shape is not None:
        try:
            parse_input_shape(shape)
        except InputError as err:
            raise _problem(path, f"the checkpoint's `input_shape`: {err}") from None
    check_state_dict(payload["state_dict"], str(path))
    return payload


def embedded_spec(payload: dict, origin: str) -> Spec:
    """The spec of a checkpoint, parsed from its text alone: the text is never taken for a path to read.

    An invalid embedded spec is a bad file, so its problems (located in the text) raise InputError.
    """
    try:
        data, source = parse_yaml(payload["spec_text"], f"{origin} (spec_text)")
        spec = parse_spec(data, source)
    except SpecError as err:
        raise InputError([Problem(f"the checkpoint's spec is invalid: {p.message}", p.location, p.layer) for p in err.problems]) from None
    if spec.name is None:
        spec.name = payload.get("spec_name")
    return spec


def load_checkpoint(path: str | Path) -> nn.Module:
    """Rebuild the model saved by `save_checkpoint` / `convspec build -o`, with its weights.

    The file is data: read with `weights_only=True`, its spec parsed from the embedded text
    (never read from a path it names), its state_dict checked key by key. InputError for a
    file that is missing, unreadable, not a checkpoint or malformed, and for weights that do
    not fit the spec (every missing, unexpected or mis-shaped key listed); BudgetError when
    the network is over the default memory budget.
    """
    from .builder import build_from_report
    from .trace import check_spec

    payload = read_checkpoint(path)
    origin = str(path)
    spec = embedded_spec(payload, origin)
    shape = payload.get("input_shape")
    try:
        report = check_spec(spec, tuple(shape) if shape else None, require_size=False)
        report.raise_for_errors()
    except InputError as err:  # the saved input shape does not fit the saved spec
        raise InputError([Problem(f"the checkpoint's input_shape does not fit its spec: {p.message}", Location(origin)) for p in err.problems]) from None
    except SpecError as err:
        raise InputError([Problem(f"the checkpoint's spec is invalid: {p.message}", p.location, p.layer) for p in err.problems]) from None
    model = build_from_report(report)
    load_weights(model, payload["state_dict"], origin)
    return model


SAFETENSORS_SUFFIX = ".safetensors"


def _safetensors() -> Any:
    try:
        import safetensors.torch
    except ImportError:
        raise InputError("reading or writing .safetensors needs the safetensors package: pip install 'convspec[weights]'") from None
    return safetensors.torch


def read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a `.safetensors` file (a format that holds only tensors and string metadata: nothing runs)."""
    path = check_readable(path_argument("path", path))
    load_file = _safetensors().load_file
    try:
        return dict(load_file(str(path), device="cpu"))
    except Exception as err:  # safetensors raises its own error types for a malformed header
        raise InputError(f"{path}: not a readable .safetensors file ({type(err).__name__}: {first_line(err, 200)})") from None


def save_safetensors(state_dict: Mapping[str, torch.Tensor], path: str | Path, *, force: bool = False, metadata: dict[str, str] | None = None) -> Path:
    """Write a state_dict as `.safetensors`, atomically (each tensor made contiguous: the format stores no strides)."""
    path = check_writable(path_argument("path", path), flag_argument("force", force))
    data = _safetensors().save({k: v.detach().contiguous() for k, v in state_dict.items()}, metadata=metadata)
    return atomic_write(path, lambda f: f.write(data), force=force)


def read_tensors_file(path: str | Path) -> Any:
    """What a weights file holds: a `.safetensors` file's tensors, or a torch.save file's contents (weights_only=True)."""
    path = path_argument("path", path)
    if path.suffix.lower() == SAFETENSORS_SUFFIX:
        return read_safetensors(path)
    return _torch_load(
        path,
        "cannot load weights safely; give a state_dict of tensors saved with torch.save, a .safetensors file, "
        "or a checkpoint from `convspec build -o`",
    )


def load_weights_file(model: nn.Module, path: str | Path) -> None:
    """Load a bare state_dict, a `.safetensors` file or a `convspec build -o` checkpoint into `model` (no objects unpickled)."""
    if not isinstance(model, nn.Module):
        raise InputError(f"model must be a torch.nn.Module, not {type(model).__name__}")
    path = path_argument("path", path)
    payload = read_tensors_file(path)
    if isinstance(payload, dict) and "state_dict" in payload and "format" in payload:
        payload = _checked(payload, path)["state_dict"]
    load_weights(model, payload, str(path))


def check_state_dict(state_dict: Any, origin: str) -> None:
    """InputError unless `state_dict` is a mapping of str names to plain CPU tensors (strided, not meta)."""
    if not isinstance(state_dict, Mapping):
        raise InputError([Problem(f"not a state_dict (a mapping of names to tensors) but a {type(state_dict).__name__}", Location(origin))])
    bad_names = [repr(k)[:40] for k in state_dict if not isinstance(k, str)]
    if bad_names:
        raise InputError([Problem(f"not a state_dict: its keys must be names (str); these are not: {', '.join(bad_names[:10])}", Location(origin))])
    bad = [
        f"{k} ({type(v).__name__})" if not isinstance(v, torch.Tensor) else f"{k} ({v.layout}, {v.device})"
        for k, v in state_dict.items()
        if not isinstance(v, torch.Tensor) or v.layout != torch.strided or v.device.type != "cpu"
    ]
    if bad:
        more = " ..." if len(bad) > 10 else ""
        raise InputError([Problem(f"not a state_dict of dense CPU tensors; these entries are not: {', '.join(bad[:10])}{more}", Location(origin))])


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


def _kind(dtype: torch.dtype) -> str:
    if dtype == torch.bool:
        return "bool"
    if dtype.is_complex:
        return "complex"
    return "floating" if dtype.is_floating_point else "integer"


def load_weights(model: nn.Module, state_dict: dict, origin: str) -> None:
    """load_state_dict with a report of every missing, unexpected, mis-shaped or mis-typed key (InputError).

    A tensor fits when its shape equals the model's and its dtype is of the same kind (a float
    weight takes any floating dtype, an integer counter any integer dtype), as copying converts it.
    """
    check_state_dict(state_dict, origin)
    own = model.state_dict()
    state_dict = translate_keys(state_dict, set(own))
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [
        f"{k}: file {list(state_dict[k].shape)}, spec {list(own[k].shape)}"
        for k in own
        if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    mistyped = [
        f"{k}: file {state_dict[k].dtype}, spec {own[k].dtype}"
        for k in own
        if k in state_dict and _kind(state_dict[k].dtype) != _kind(own[k].dtype)
    ]
    if missing or unexpected or mismatched or mistyped:
        lines = []
        if missing:
            lines.append(f"missing keys ({len(missing)}): {', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}")
        if unexpected:
            lines.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected[:10])}{' ...' if len(unexpected) > 10 else ''}")
        if mismatched:
            lines.append(f"shape mismatches ({len(mismatched)}): {'; '.join(mismatched[:10])}")
        if mistyped:
            lines.append(f"dtype mismatches ({len(mistyped)}): {'; '.join(mistyped[:10])}")
        raise InputError([Problem(f"the weights do not fit the spec: {line}", Location(origin)) for line in lines])
    model.load_state_dict(state_dict)


__all__ = [
    "CHECKPOINT_FORMAT", "check_state_dict", "embedded_spec", "load_checkpoint", "load_weights", "load_weights_file",
    "read_checkpoint", "read_safetensors", "read_tensors_file", "save_checkpoint", "save_safetensors", "spec_text",
    "translate_keys",
]  # fmt: skip

"""`convspec import`: an ONNX file as a spec and its weights, proved against onnxruntime before anything is written.

`import_onnx` reads the file (`onnx_import.py` turns the graph into layers), checks the spec,
compares its parameter count with the file's, builds the model with the imported weights and
runs it beside onnxruntime on the original file (`verify.run_parity`, the export's criterion:
max|diff| <= atol + rtol * max|onnxruntime| per output). `save_import` writes the spec (YAML)
and the weights (`.safetensors` or a convspec checkpoint), each atomically.

A file exported by convspec carries its spec's text (`convspec.spec`, with its SHA-256): that
text is given back exactly; its weights are rebuilt from the seed the file records, or taken
from initializers of the same names; where neither can give them (an export of other weights
with BatchNorm folded into the convs), `from_graph=True` imports the graph itself instead.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from .errors import ExportError, InputError, Location, Problem
from .fileio import atomic_write_text, check_writable
from .limits import flag_argument, number_argument, path_argument
from .layer_names import layer_name_problem
from .onnx_import import read_graph
from .onnx_walk import UnsupportedModelError


@dataclass
class ImportResult:
    """A proved import: the spec's YAML text, its weights (spec keys, in the model's order) and the parity checks."""

    spec_text: str
    state_dict: dict[str, torch.Tensor] | None
    params: int
    embedded: bool
    checks: list = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class ImportedModel:
    """A spec read from an ONNX graph, not yet proved: its YAML text, its data, its weights (spec keys -> numpy arrays)."""

    spec_text: str
    spec_data: dict
    weights: dict[str, np.ndarray]
    file_params: int


def read_onnx_file(path: str | Path) -> onnx.ModelProto:
    """The ModelProto of `path` (InputError for a missing or unreadable file)."""
    from .verify import _read_model

    return _read_model(Path(path))


def embedded_spec_text(proto: onnx.ModelProto) -> str | None:
    """The spec a convspec export stored in the file's metadata (`convspec.spec`), if any."""
    return next((p.value for p in proto.metadata_props if p.key == "convspec.spec"), None)


def graph_to_spec(proto: onnx.ModelProto, origin: str, name: str | None = None) -> ImportedModel:
    """The graph as spec text, data and weights (not proved: see `import_onnx`). UnsupportedModelError for an unknown operator."""
    data, weights, file_params = read_graph(proto, origin)
    if name and layer_name_problem(name) is None:
        data = {"convspec": 1, "name": name, **{k: v for k, v in data.items() if k != "convspec"}}
    return ImportedModel(spec_to_yaml(data, origin), data, weights, file_params)


def spec_to_yaml(data: dict, origin: str) -> str:
    """Spec data as YAML: one flow-style line per layer, as the bundled specs are written."""
    import yaml

    def flow(value: Any) -> str:
        return yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10**6).strip()

    lines = [f"# imported from {Path(origin).name} by convspec import", f"convspec: {data.get('convspec', 1)}"]
    if data.get("name"):
        lines.append(f"name: {data['name']}")
    lines.append(f"input: {flow(data['input'])}")
    lines.append("layers:")
    lines += [f"  - {flow(layer)}" for layer in data["layers"]]
    if "outputs" in data:
        lines.append(f"outputs: {flow(data['outputs'])}")
    return "\n".join(lines) + "\n"


def _spec_name(path: Path) -> str | None:
    name = re.sub(r"\W", "_", path.stem)
    return name if layer_name_problem(name) is None else None


def _parity(path: Path, model: nn.Module, report, proto, rtol: float, atol: float) -> list:
    """onnxruntime on the file against the built model, at the report's input and, when the batch is free, at batch 2."""
    from .example_inputs import example_shape, spatial_variants
    from .verify import ort_session, run_parity

    session = ort_session(path)
    inputs = session.get_inputs()
    base = tuple(report.input_shape)
    shapes = [base]
    if any(not isinstance(d, int) for d in base):  # sizes free in the file: the export's example size, and two others
        base = example_shape(report.spec, None)
        shapes = [base, *spatial_variants(report.spec, base)]
    if not isinstance(inputs[0].shape[0], int):  # a free batch: another one too
        shapes.append((3 if base[0] == 2 else 2, *base[1:]))
    outputs = list(zip(report.outputs, [o.name for o in proto.graph.output]))  # both in the spec's order of outputs
    model.eval()
    return run_parity(session, model, shapes, inputs[0].name, outputs, rtol, atol)


def _built(report, state: dict[str, torch.Tensor] | None, seed: int | None, origin: str) -> nn.Module:
    from .builder import build_from_report
    from .checkpoint import load_weights

    model = build_from_report(report, seed=seed if seed is not None else 0)
    if state is not None:
        load_weights(model, state, origin)
    return model


def _embedded(path: Path, proto, text: str, rtol: float, atol: float) -> ImportResult:
    from .loading import parse_spec
    from .source import parse_yaml
    from .trace import check_spec

    props = {p.key: p.value for p in proto.metadata_props}
    digest = props.get("convspec.spec_sha256")
    if digest and hashlib.sha256(text.encode("utf-8")).hexdigest() != digest:
        raise InputError([Problem("the embedded spec does not match its recorded SHA-256; the file was changed: use --from-graph", Location(str(path)))])
    data, source = parse_yaml(text, f"{path} (convspec.spec)")
    spec = parse_spec(data, source)
    report = check_spec(spec, None, require_size=False)
    report.raise_for_errors()
    seed = props.get("convspec.seed")
    if seed not in (None, ""):
        model = _built(report, None, int(seed), str(path))
        notes = [f"weights rebuilt from the seed the file records ({seed})"]
    else:
        initializers = {i.name: i for i in proto.graph.initializer}
        from onnx import numpy_helper

        model = _built(report, None, 0, str(path))
        own = model.state_dict()
        missing = [k for k in own if k not in initializers and not k.endswith("num_batches_tracked")]
        if missing:
            raise UnsupportedModelError([Problem(
                f"the file's weights cannot be given back under its embedded spec ({len(missing)} tensors, e.g. {missing[0]}, "
                "were folded into others on export); import the graph itself with --from-graph", Location(str(path)))])  # fmt: skip
        state = {k: torch.from_numpy(numpy_helper.to_array(initializers[k]).copy()) if k in initializers else v for k, v in own.items()}
        model.load_state_dict(state)
        notes = ["weights from the initializers of the same names"]
    checks = _parity(path, model, report, proto, rtol, atol)
    return ImportResult(text, dict(model.state_dict()), report.total_params, True, checks, notes)


def import_onnx(path: str | Path, *, from_graph: bool = False, rtol: float | None = None, atol: float | None = None) -> ImportResult:
    """The ONNX file at `path` as a spec and weights, proved equal to the file (see the module's doc).

    Raises UnsupportedModelError (exit status 1) naming the first node no spec layer expresses,
    ExportError (exit status 1) when the spec's parameter count or outputs differ from the file's,
    InputError for a missing or unreadable file. `from_graph` ignores a spec the file embeds.
    """
    from .trace import check_spec
    from .verify import ATOL, RTOL

    path = path_argument("path", path)
    from_graph = flag_argument("from_graph", from_graph)
    rtol = RTOL if rtol is None else number_argument("rtol", rtol, 0, 1)
    atol = ATOL if atol is None else number_argument("atol", atol, 0, 1)
    proto = read_onnx_file(path)
    text = None if from_graph else embedded_spec_text(proto)
    if text is not None:
        return _embedded(path, proto, text, rtol, atol)
    imported = graph_to_spec(proto, str(path), name=_spec_name(path))
    from .loading import parse_spec
    from .source import parse_yaml

    data, source = parse_yaml(imported.spec_text, f"{path.stem}.yaml (imported)")
    report = check_spec(parse_spec(data, source), None, require_size=False)
    report.raise_for_errors()
    if report.total_params != imported.file_params:
        raise ExportError([Problem(f"the imported spec has {report.total_params:,} parameters, the file {imported.file_params:,}", Location(str(path)))])
    state = {k: torch.from_numpy(np.array(v)) for k, v in imported.weights.items()}
    model = _built(report, state, 0, str(path))
    checks = _parity(path, model, report, proto, rtol, atol)
    return ImportResult(imported.spec_text, dict(model.state_dict()), report.total_params, False, checks)


def save_import(result: ImportResult, spec_path: str | Path, weights_path: str | Path | None = None, *, force: bool = False) -> list[Path]:
    """Write the spec (YAML) and, if asked, the weights (`.safetensors`, else a convspec checkpoint), atomically."""
    from .checkpoint import save_checkpoint, save_safetensors

    spec_path = check_writable(path_argument("spec_path", spec_path), force)
    if weights_path is not None:
        weights_path = check_writable(path_argument("weights_path", weights_path), force)
    written = [atomic_write_text(spec_path, result.spec_text, force=force)]
    if weights_path is not None:
        if weights_path.suffix.lower() == ".safetensors":
            written.append(save_safetensors(result.state_dict, weights_path, force=force, metadata={"spec": spec_path.name}))
        else:
            from .builder import build

            model = build(result.spec_text, seed=0)
            model.load_state_dict(result.state_dict)
            written.append(save_checkpoint(model, result.spec_text, weights_path, force=force))
    return written


__all__ = [
    "ImportResult", "ImportedModel", "UnsupportedModelError", "embedded_spec_text", "graph_to_spec", "import_onnx",
    "read_onnx_file", "save_import", "spec_to_yaml",
]  # fmt: skip

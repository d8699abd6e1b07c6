"""What `check` found: one `LayerReport` per layer (shape, parameters, MACs, receptive field, plan) and the spec's `Report`.

The shape rules (`shapes.py` and its family modules) fill these in; the builder, the
exporter, the budget, the views and the language server read them. No torch import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from .errors import Problem, SpecError
from .schema import LayerBase, Spec


def _figure(value: int | Fraction | None) -> int | float | None:
    if value is None:
        return None
    return int(value) if value.denominator == 1 else round(float(value), 6)


@dataclass
class LayerReport:
    """One layer as the checker sees it."""

    name: str
    type: str
    path: tuple  # data path of the layer, e.g. ("layers", 3)
    layer: LayerBase | None
    sources: list[str] = field(default_factory=list)
    input_shapes: list[tuple] = field(default_factory=list)
    output_shape: tuple | None = None
    params: int = 0
    trainable_params: int = 0
    macs: int = 0
    receptive_field: tuple = ()
    stride: tuple = ()
    children: list["LayerReport"] = field(default_factory=list)
    plan: Any = None  # the frozen plan (`plans.py`) the kind's builder reads; None where the layer failed
    role: str = "layer"  # "layer"; or what a container made: "shortcut" (a residual's), "copy" (a repeat's), "part" (a split's)
    requested: dict[str, int] | None = None  # what the spec asked where a `--scale` preset changed it: {"out_channels": 64}

    def to_dict(self) -> dict:
        from .plugins import kind_package  # torch-free; a kind from outside convspec says which package declared it

        scaled = {"requested": dict(self.requested)} if self.requested else {}
        package = kind_package(self.type)
        return {
            "name": self.name,
            "type": self.type,
            "output_shape": list(self.output_shape) if self.output_shape is not None else None,
            "params": self.params,
            "trainable_params": self.trainable_params,
            "macs": self.macs,
            "receptive_field": [_figure(v) for v in self.receptive_field],
            "stride": [_figure(v) for v in self.stride],
            "children": [child.to_dict() for child in self.children],
            **scaled,
            **({"package": package} if package is not None else {}),
        }


@dataclass
class Report:
    """What `check` found: per-layer figures, totals and every error."""

    spec: Spec
    input_shape: tuple
    layers: list[LayerReport]
    outputs: dict[str, tuple | None]
    errors: list[Problem]

    @property
    def valid(self) -> bool:
        return not self.errors

    @property
    def total_params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def trainable_params(self) -> int:
        return sum(layer.trainable_params for layer in self.layers)

    @property
    def total_macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    def raise_for_errors(self) -> None:
        if self.errors:
            raise SpecError(self.errors)

    def table(self, depth: int | None = None, *, flops: bool = False, train: str | None = None) -> str:
        """The table `convspec check` prints, as text without a final newline (`report_view.table_text`: `depth`, `flops`, `train`)."""
        from .report_view import table_text

        return table_text(self, depth, flops=flops, train=train).rstrip("\n")

    def to_json(self, *, flops: bool = False) -> str:
        """The JSON `convspec check --format json` prints (with `flops`, as `--flops` adds)."""
        from .report_view import to_json_text

        return to_json_text(self, flops)

    def __str__(self) -> str:
        return self.table() if self.valid else "\n".join(map(str, self.errors))

    def __repr__(self) -> str:  # the dataclass's own would print every layer's plan
        state = "valid" if self.valid else f"{len(self.errors)} problem{'s' if len(self.errors) != 1 else ''}"
        name = self.spec.name or self.spec.source.file
        return f"<Report {name}: {len(self.layers)} layers, {self.total_params:,} parameters, {self.total_macs:,} MACs, {state}>"

    def walk(self):
        """Every layer report, depth first."""
        stack = list(reversed(self.layers))
        while stack:
            layer = stack.pop()
            yield layer
            stack.extend(reversed(layer.children))

    def to_dict(self) -> dict:
        return {
            "spec": self.spec.source.file,
            "name": self.spec.name,
            "valid": self.valid,
            "input_shape": list(self.input_shape),
            "layers": [layer.to_dict() for layer in self.layers],
            "outputs": {k: (list(v) if v is not None else None) for k, v in self.outputs.items()},
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "total_macs": self.total_macs,
            "errors": [p.to_dict() for p in self.errors],
        }

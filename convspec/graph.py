"""Wiring modules: a list of named layers with `from` edges, and the joins between them.

A `Graph` holds its layers as children under the spec's names, so the printed
module, the state_dict keys and the ONNX node names all say what the spec says.
"""

from collections.abc import Sequence

import torch
from torch import nn


def _reference(source: str) -> tuple[str, int | None]:
    """'halves.1' -> ('halves', 1): part 1 of a split; a plain name -> (name, None). Names hold no dots."""
    name, _, part = source.partition(".")
    return name, int(part) if part else None


class Graph(nn.Module):
    """Runs named children in order; each reads the outputs named in its `from` (or the previous one).

    A `from` entry NAME.i reads part i of a split: the output of its child `i` on the split's output.
    """

    def __init__(self, nodes: Sequence[tuple[str, nn.Module, Sequence[str]]], outputs: Sequence[str] | None = None):
        super().__init__()
        for name, module, _ in nodes:
            if hasattr(self, name) and name not in self._modules:
                raise ValueError(f"layer name {name!r} clashes with an attribute of torch.nn.Module")
            self.add_module(name, module)
        self._wiring = [(name, tuple(sources)) for name, _, sources in nodes]
        self._reads = [tuple(_reference(s) for s in sources) for _, sources in self._wiring]
        self._outputs = tuple(outputs) if outputs else (nodes[-1][0],)
        previous = ["input"] + [name for name, _, _ in nodes[:-1]]
        # A plain chain (each layer reads the one before) runs without a dict of intermediate values.
        self._is_chain = len(self._outputs) == 1 and self._outputs[0] == nodes[-1][0] and all(
            sources == (prev,) for (_, sources), prev in zip(self._wiring, previous)
        )
        # Drop each intermediate value after its last reader, so memory stays as for a chain.
        last_reader: dict[str, int] = {}
        for index, reads in enumerate(self._reads):
            for source, _ in reads:
                last_reader[source] = index
        self._release = [
            tuple(s for s in {source for source, _ in reads} if last_reader[s] == index and s not in self._outputs)
            for index, reads in enumerate(self._reads)
        ]

    def __prepare_scriptable__(self) -> nn.Module:
        """What `torch.jit.script(model)` compiles: the FX trace of this graph.

        TorchScript cannot look children up by name at run time as `forward` does; the FX trace is
        the same computation with the same children and state_dict keys, written out as straight-line
        code. torch.jit.script calls this hook before compiling. A `dynamic` conv cannot be traced
        (its per-sample loop depends on the batch), so a model holding one cannot be scripted.
        """
        return torch.fx.symbolic_trace(self)

    def forward(self, x: torch.Tensor):
        if self._is_chain:
            for name, _ in self._wiring:
                x = self._modules[name](x)
            return x
        values: dict[str, torch.Tensor] = {"input": x}
        for (name, _), reads, release in zip(self._wiring, self._reads, self._release):
            values[name] = self._modules[name](
                *(values[s] if part is None else self._modules[s].part(values[s], part) for s, part in reads)
            )
            for source in release:
                del values[source]
        if len(self._outputs) == 1:
            return values[self._outputs[0]]
        return tuple(values[name] for name in self._outputs)


class Network(Graph):
    """The top-level graph: the model `convspec.build` returns. Optionally computes in channels_last."""

    def __init__(self, nodes, outputs=None, memory_format: torch.memory_format | None = None):
        super().__init__(nodes, outputs)
        self._memory_format = memory_format

    def forward(self, x: torch.Tensor):
        if self._memory_format is not None:
            x = x.contiguous(memory_format=self._memory_format)  # the first conv then runs in that layout
        return super().forward(x)


class Residual(Graph):
    """act(drop_path(layers(x)) + shortcut(x)); the main-path layers are direct children, the shortcut one child."""

    def __init__(self, nodes, shortcut: nn.Module | None, act: nn.Module | None, drop_path: nn.Module | None = None):
        super().__init__(nodes)
        self.shortcut = shortcut
        self._act = act  # underscored: user layer names cannot start with "_", so no clash
        self._drop_path = drop_path  # stochastic depth on the main path, before the sum (torchvision's MBConv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        main = super().forward(x)
        if self._drop_path is not None:
            main = self._drop_path(main)
        out = main + (self.shortcut(x) if self.shortcut is not None else x)
        return self._act(out) if self._act is not None else out


class Add(nn.Module):
    """Element-wise sum of its inputs, then an optional activation."""

    def __init__(self, act: nn.Module | None = None):
        super().__init__()
        self.act = act

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        out = inputs[0]
        for x in inputs[1:]:
            out = out + x
        return self.act(out) if self.act is not None else out


class Mul(nn.Module):
    """Element-wise product of its inputs, broadcasting size-1 dims: (B, C, 1, 1) x (B, C, H, W) -> (B, C, H, W)."""

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        out = inputs[0]
        for x in inputs[1:]:
            out = out * x
        return out


class Concat(nn.Module):
    """Concatenation along channels (dim 1)."""

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return torch.cat(inputs, dim=1)

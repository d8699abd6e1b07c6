"""Errors for people: every problem knows where it is and, where it can, what would be right.

A `Problem` is one thing wrong with a spec, located at `file:line:col` and
attributed to a layer. A `ConvspecError` carries one or more problems, so a
spec's mistakes are all reported at once instead of one per run.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Location:
    """Where something is in a spec's source text (1-based line and column)."""

    file: str | None = None
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        parts = [self.file or "<spec>"]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)


class LayerRef(str):
    """A layer as errors name it: reads as ``layers[3] 'g1' (group)``, and keeps the parts apart."""

    path: str  # "layers[3]" or "layers[2].layers[0]"
    name: str | None
    kind: str | None

    def __new__(cls, path: str, name: str | None = None, kind: str | None = None) -> "LayerRef":
        text = path + (f" {name!r}" if name else "") + (f" ({kind})" if kind else "")
        ref = super().__new__(cls, text)
        ref.path, ref.name, ref.kind = path, name, kind
        return ref


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a spec."""

    message: str
    location: Location = field(default_factory=Location)
    layer: str | None = None  # a LayerRef, e.g. "layers[3] 'g1' (group)"

    def __str__(self) -> str:
        parts = [str(self.location)] if self.location.file or self.location.line else []
        if self.layer:
            parts.append(self.layer)
        parts.append(self.message)
        return ": ".join(parts)

    def to_dict(self) -> dict:
        return {
            "file": self.location.file,
            "line": self.location.line,
            "column": self.location.column,
            "layer": getattr(self.layer, "path", self.layer),  # "layers[3]", as the JSON contract shows
            "name": getattr(self.layer, "name", None),
            "type": getattr(self.layer, "kind", None),
            "message": self.message,
        }


class ConvspecError(Exception):
    """Base of every error convspec raises on purpose. Never shown as a traceback."""

    exit_code = 1

    def __init__(self, problems: list[Problem] | str):
        if isinstance(problems, str):
            problems = [Problem(problems)]
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class SpecError(ConvspecError):
    """The spec is invalid: bad YAML, bad keys or values, or shapes that do not fit."""

    partial = None  # for schema errors: the spec with invalid layers stubbed out, to shape-check the rest


class BudgetError(SpecError):
    """The spec is valid but would need more memory than allowed to build or run."""


class InputError(ConvspecError):
    """A file cannot be read or written, or a command-line argument is wrong (exit status 2)."""

    exit_code = 2


class ExportError(ConvspecError):
    """ONNX export or its verification failed."""


def first_line(err: BaseException, limit: int = 300) -> str:
    """An exception's first non-empty line (or its type name), for messages that quote a library's error."""
    for line in str(err).splitlines():
        if line.strip():
            return line.strip()[:limit]
    return type(err).__name__


"""Python data (a dict, or a `Spec` built in Python, as data) read as a spec's plain data, under the limits of YAML text."""

from __future__ import annotations

import numbers
import operator
from typing import Any

from .errors import Location, Problem, SpecError, quote, shorten
from .source import MAX_DEPTH, MAX_NODES, Path_, Source, layer_label


def _path_text(path: Path_) -> str:
    """('layers', 0, 'init') -> 'layers[0].init' (long paths and keys cut)."""
    parts = [f"[{p}]" if isinstance(p, int) else f".{shorten(str(p), 40)}" for p in path]
    if len(parts) > 12:
        parts = parts[:6] + [f"...({len(parts) - 10} more)..."] + parts[-4:]
    return "".join(parts).lstrip(".") or "the top level"


class _Copier:
    """Python data -> plain data (dicts, lists, str, int, float, bool, None), under YAML text's limits."""

    def __init__(self, file: str):
        self.file = file
        self.nodes = 0
        self.problems: list[tuple[Path_, str]] = []
        self._open: set[int] = set()  # ids of the containers on the current path: a cycle comes back to one

    def _fail(self, message: str) -> SpecError:
        return SpecError([Problem(message, Location(self.file))])

    def copy(self, value: Any, path: Path_, depth: int) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self._fail(
                f"the data has more than {MAX_NODES:,} nodes (an object reached twice counts twice); a spec is far smaller than that"
            )
        if depth > MAX_DEPTH:
            raise self._fail(f"the data is nested too deeply (more than {MAX_DEPTH} levels, at {_path_text(path)})")
        kind = type(value)
        if value is None or kind is str or kind is int or kind is float or kind is bool:
            return value
        if isinstance(value, (dict, list, tuple)):
            if id(value) in self._open:
                raise self._fail(f"the data contains itself (a cycle: {_path_text(path)} is one of its own ancestors)")
            self._open.add(id(value))
            try:
                if isinstance(value, dict):
                    return self._mapping(value, path, depth)
                return [self.copy(item, path + (i,), depth + 1) for i, item in enumerate(value)]
            finally:
                self._open.discard(id(value))
        if isinstance(value, str):
            return str.__str__(value)  # a str subclass (an enum's value) as plain text
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return operator.index(value)  # numpy's integers
        if isinstance(value, numbers.Real):
            return float(value)
        what = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
        message = f"{_path_text(path)} is a {what}, which a spec cannot hold: it holds mappings, lists, strings, numbers, booleans and null"
        self.problems.append((path, message))
        return None

    def _mapping(self, value: dict, path: Path_, depth: int) -> dict:
        result = {}
        for key, item in value.items():
            if not isinstance(key, str):
                self.problems.append((path, f"{_path_text(path)} has the key {quote(key)}; keys are names (strings)"))
                continue
            key = str.__str__(key)
            result[key] = self.copy(item, path + (key,), depth + 1)
        return result


def read_python(data: Any, file: str = "<dict>") -> tuple[Any, Source]:
    """Python data (as `yaml.safe_load` gives, or built by hand) as plain data and its `Source`.

    The limits of YAML text hold: at most `MAX_DEPTH` levels of nesting and `MAX_NODES`
    nodes (a shared object counting each time it is reached), no cycles, and only
    mappings with string keys, lists (or tuples), strings, numbers (numpy's too),
    booleans and null. The data is copied, so a later change to the caller's object
    changes nothing. Raises SpecError; problems have no line, so each names its path.
    """
    copier = _Copier(file)
    try:
        plain = copier.copy(data, (), 0)
    except RecursionError:  # a container whose own methods recurse
        raise copier._fail(f"the data is nested too deeply (more than {MAX_DEPTH} levels)") from None
    if copier.problems:
        raise SpecError([Problem(message, Location(file), layer_label(plain, path)[1]) for path, message in copier.problems])
    return plain, Source(file=file, data=plain)

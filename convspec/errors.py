"""Errors for people: every problem knows where it is and, where it can, what would be right.

A `Problem` is one thing wrong with a spec, located at `file:line:col` and
attributed to a layer. A `ConvspecError` carries one or more problems, so a
spec's mistakes are all reported at once instead of one per run.
"""

from __future__ import annotations

import difflib
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
        # a name or kind from the spec may be any length (and aliased into every layer): shown cut
        name = shorten(name, NAME_CHARS) if name else name
        kind = shorten(kind, NAME_CHARS) if kind else kind
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


def in_order(problems: list[Problem]) -> list[Problem]:
    """Problems by position, one per mistake: the same message at the same place for several layers
    (a block template's line, used three times) is reported once, with how many more layers it hits."""
    grouped: dict[tuple, list[Problem]] = {}
    for problem in problems:
        key = (problem.message, problem.location) if problem.location.line else (id(problem),)
        grouped.setdefault(key, []).append(problem)
    merged = []
    for same in grouped.values():
        first = same[0]
        more = len({p.layer for p in same}) - 1
        if more:
            first = Problem(f"{first.message} (and {more} more {'layer' if more == 1 else 'layers'} from the same line)", first.location, first.layer)
        merged.append(first)
    return sorted(merged, key=lambda p: (p.location.line or 0, p.location.column or 0))


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
    report = None  # for shape errors found by `convspec.check`: the traced (invalid) Report


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



# ---------------------------------------------------------------- hints, bounded
#
# A message never grows with the spec: a value from the spec is quoted in a few dozen
# characters, a list of names shows a few of them, and "did you mean" looks at a few
# candidates however many names there are. (A spec of thousands of mistakes must still
# be reported in seconds, and an aliased megabyte string must not be copied into each.)

QUOTED_CHARS = 60  # a quoted value is cut here
NAME_CHARS = 100  # a layer's name or kind in a problem's label is cut here
LISTED_NAMES = 8  # a list of names shows this many


def quote(value: object, limit: int = QUOTED_CHARS) -> str:
    """`repr(value)`, cut to about `limit` characters, with the full length said when cut."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}... ({len(value):,} characters)"
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}..."


def shorten(text: str, limit: int = QUOTED_CHARS) -> str:
    """`text` as it is, or cut to `limit` characters and '...' (a name shown unquoted)."""
    return text if len(text) <= limit else f"{text[:limit]}..."


def listing(names, limit: int = LISTED_NAMES, last: bool = False) -> str:
    """'a, b, c'; past `limit` names, the first (or, with `last`, the last) few and how many in all."""
    names = list(names)
    if len(names) <= limit:
        return ", ".join(names)
    if last:
        return f"..., {', '.join(names[-limit:])} ({len(names):,} in all)"
    return f"{', '.join(names[:limit])}, ... ({len(names):,} in all)"


class CloseNames:
    """A growing set of names that answers "did you mean?" in time independent of its size.

    Up to `SCAN` names, difflib compares the word with each of them, as
    `difflib.get_close_matches` does. Past that, candidates come from an index of
    each name with one character deleted (the deletion neighbourhood of SymSpell,
    Garbe 2012): a name and the word share a key when they are one edit apart, and
    many at two; only those candidates are ranked by difflib's ratio. A key shared
    by many names says little and is skipped, so a look-up costs time in the word's
    length alone. Before any of that, case, `_` and `-` are ignored, so PyTorch's
    class names find their keys ('LeakyReLU' -> 'leaky_relu', 'ReLU6' -> 'relu6').
    """

    SCAN = 64  # up to this many names, compare with all
    KEY_CHARS = 64  # longer names are indexed whole only
    KEY_NAMES = 16  # a key shared by more names is not used to find candidates

    def __init__(self, names=()):
        self._names: list[str] = []
        self._folded: dict[str, str] = {}  # folded spelling -> the name (the last of those that fold alike)
        self._index: dict[str, list[str]] | None = None
        self.update(names)

    def __len__(self) -> int:
        return len(self._names)

    def update(self, names) -> None:
        for name in names:
            self.add(name)

    def add(self, name: str) -> None:
        self._names.append(name)
        self._folded[_fold(name)] = name
        if self._index is not None:
            self._insert(name)
        elif len(self._names) > self.SCAN:
            self._index = {}
            for known in self._names:
                self._insert(known)

    @classmethod
    def _keys(cls, word: str) -> set[str]:
        word = word.lower()
        if len(word) > cls.KEY_CHARS:
            return {word}
        return {word, *(word[:i] + word[i + 1 :] for i in range(len(word)))}

    def _insert(self, name: str) -> None:
        assert self._index is not None
        for key in self._keys(name):
            bucket = self._index.setdefault(key, [])
            if len(bucket) <= self.KEY_NAMES:  # one past the limit marks the key as too common
                bucket.append(name)

    def close(self, word: str, n: int = 1) -> list[str]:
        """Up to `n` names close to `word` (difflib's ratio >= 0.6), best first."""
        if len(word) > 2 * self.KEY_CHARS:
            return []  # no name is meant by a paragraph, and comparing with one costs its length
        if self._index is None:
            pool = self._names
        else:
            pool = {
                name
                for key in self._keys(word)
                if len(bucket := self._index.get(key, ())) <= self.KEY_NAMES
                for name in bucket
            }
        return difflib.get_close_matches(word, pool, n=n, cutoff=0.6)

    def did_you_mean(self, word: str) -> str:
        """' (did you mean X?)' for the closest name to `word`, or ''."""
        same = self._folded.get(_fold(word))
        if same is not None and same != word:
            return f" (did you mean {quote(same)}?)"
        close = self.close(word)
        return f" (did you mean {quote(close[0])}?)" if close else ""


def _fold(word: str) -> str:
    return word.lower().replace("_", "").replace("-", "")


def did_you_mean(word: str, choices) -> str:
    """' (did you mean X?)' for the closest of `choices` to `word`, or ''."""
    if not isinstance(word, str):
        return ""
    return (choices if isinstance(choices, CloseNames) else CloseNames(choices)).did_you_mean(word)

"""Arithmetic in a spec's values: `out: $out * 2`, `padding: $kernel // 2`, `$(64 * width)`. No torch.

An expression is a string holding a `$` that is not one whole placeholder (a
whole `$out` is substituted as it is, whatever its value). In it:

- `$name` (or `${name}`) is a parameter of the enclosing block template;
- `width`, `depth`, `max_channels` and `channel_divisor` are the chosen scale's
  factors (1, 1, no cap and the spec's divisor when no scale is chosen);
- numbers, `+ - * / // %`, unary `-`, parentheses, and the functions `min`,
  `max`, `round` and `make_divisible(x, divisor)` (Ultralytics' rounding up to
  a multiple);
- `$(...)` marks an expression that names no parameter, e.g. `$(64 * width)`.

Nothing else is accepted: no attribute access, subscripts, comparisons, other
calls, keywords or powers. The text is parsed with Python's `ast` and every node
is checked against that list before anything is evaluated; its length, node
count and every intermediate value are bounded. A whole-number result is an int
(`$out / 2` gives 32, not 32.0).
"""

from __future__ import annotations

import ast
import math
import operator
import re
from dataclasses import dataclass
from typing import Any

from .scaling import make_divisible

FACTOR_NAMES = ("width", "depth", "max_channels", "channel_divisor")
FUNCTIONS = {"min": min, "max": max, "round": round, "make_divisible": make_divisible}
MAX_CHARS = 200  # an expression is a short formula
MAX_NODES = 64
MAX_VALUE = 2**53  # beyond this no size is meant, and floats stop being exact
_OPERATORS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
}  # fmt: skip
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}
_SIGIL = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)|\$(?=\()")
_WHAT = {
    ast.Attribute: "attribute access", ast.Subscript: "subscripts", ast.Compare: "comparisons", ast.BoolOp: "`and` / `or`",
    ast.Lambda: "lambdas", ast.IfExp: "`if` expressions", ast.List: "lists", ast.Tuple: "tuples", ast.Dict: "mappings",
    ast.Set: "sets", ast.JoinedStr: "f-strings", ast.NamedExpr: "`:=`", ast.Starred: "`*` unpacking",
}  # fmt: skip


class ExpressionError(Exception):
    """A bad expression: what is wrong, and the 1-based character of the text it is at (or None)."""

    def __init__(self, message: str, offset: int | None = None):
        super().__init__(message)
        self.message, self.offset = message, offset

    def __str__(self) -> str:
        return self.message + (f" (at character {self.offset})" if self.offset else "")


@dataclass(frozen=True)
class Expression:
    """A checked expression: its text, its Python form, and the parameters it names."""

    text: str
    tree: ast.Expression
    params: frozenset[str]


def is_expression(value: Any) -> bool:
    """A string with a `$` that is not one whole `$name` / `${name}` placeholder."""
    return isinstance(value, str) and "$" in value and not re.fullmatch(r"\$(?:[A-Za-z_]\w*|\{[A-Za-z_]\w*\})", value)


def parse(text: str) -> Expression:
    """Check `text` against the grammar above. Raises ExpressionError saying what and where."""
    if len(text) > MAX_CHARS:
        raise ExpressionError(f"the expression is {len(text):,} characters long; at most {MAX_CHARS}")
    if not text.isascii():
        raise ExpressionError("an expression is written in ASCII", next(i for i, c in enumerate(text) if not c.isascii()) + 1)
    # `$name` -> `_name`, `${name}` -> `_name  `, `$(` -> ` (`: the same length, so columns stay the text's
    params: set[str] = set()

    def plain(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if name is None:
            return " "
        params.add(name)
        return "_" + name + " " * (len(match.group(0)) - len(name) - 1)

    for match in _SIGIL.finditer(text):
        before = text[match.start() - 1] if match.start() else " "
        after = text[match.end()] if match.end() < len(text) else " "
        if before.isalnum() or before in "_$" or (match.group(2) and (after.isalnum() or after == "_")):
            raise ExpressionError(
                "a placeholder is a whole value, a parameter's name after `$` such as $out, or a term of an expression "
                "($out * 2); it cannot be part of a string", match.start() + 1,
            )
    python = _SIGIL.sub(plain, text)
    if "$" in python:
        raise ExpressionError("a `$` must start a parameter ($out, ${out}) or `$(`", python.index("$") + 1)
    try:
        # in parentheses, so leading spaces parse; a node's col_offset is then its 1-based character in `text`
        tree = ast.parse(f"({python})", mode="eval")
    except SyntaxError as err:
        offset = min(max((err.offset or 1) - 1, 1), len(text))
        raise ExpressionError(f"not an expression: {err.msg}", offset) from None
    count = 0
    for node in ast.walk(tree):
        count += 1
        if count > MAX_NODES:
            raise ExpressionError(f"the expression has more than {MAX_NODES} parts; split the arithmetic")
        _allowed(node, text)
    return Expression(text, tree, frozenset(params))


def _allowed(node: ast.AST, text: str) -> None:
    offset = getattr(node, "col_offset", None)
    if isinstance(node, (ast.Expression, ast.Load, ast.operator, ast.unaryop)):
        if isinstance(node, ast.operator) and type(node) not in _OPERATORS:
            raise ExpressionError(f"the operator {type(node).__name__} is not allowed; use + - * / // %")
        if isinstance(node, ast.unaryop) and type(node) not in _UNARY:
            raise ExpressionError(f"the operator {type(node).__name__} is not allowed; use + - * / // %")
        return
    if isinstance(node, (ast.BinOp, ast.UnaryOp)):
        return
    if isinstance(node, ast.Constant):
        if type(node.value) not in (int, float):
            raise ExpressionError(f"only numbers are allowed as values, not {node.value!r:.40}", offset)
        return
    if isinstance(node, ast.Name):
        is_param = text[offset - 1] == "$"
        if not is_param and node.id not in FACTOR_NAMES and node.id not in FUNCTIONS:
            raise ExpressionError(
                f"unknown name {node.id!r}: a parameter is written ${node.id}; the scale's factors are {', '.join(FACTOR_NAMES)}",
                offset,
            )
        return
    if isinstance(node, ast.Call):
        name = node.func.id if isinstance(node.func, ast.Name) and text[node.func.col_offset - 1] != "$" else None
        if name not in FUNCTIONS:
            raise ExpressionError(f"only {', '.join(FUNCTIONS)} can be called", offset)
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            raise ExpressionError(f"{name}() takes plain values in order (no names, no `*`)", offset)
        return
    what = _WHAT.get(type(node), type(node).__name__)
    raise ExpressionError(f"{what} not allowed in an expression; use numbers, + - * / // %, min, max, round, make_divisible", offset)


def evaluate(expression: Expression, params: dict[str, Any], factors: dict[str, float | int]) -> int | float:
    """The value of a parsed expression, parameters and factors given. Raises ExpressionError."""
    missing = sorted(expression.params - params.keys())
    if missing:
        raise ExpressionError(f"${missing[0]} is not a parameter here")
    for name in expression.params:
        value = params[name]
        if not _number(value):
            raise ExpressionError(f"${name} is {value!r:.40}, not a number")
    values = {"_" + name: params[name] for name in expression.params} | dict(factors)
    result = _eval(expression.tree.body, values)
    if isinstance(result, float) and result.is_integer():
        return int(result)
    return result


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _checked(value: Any) -> int | float:
    if not _number(value) or abs(value) > MAX_VALUE:
        raise ExpressionError(f"a value of the expression is out of range (beyond {MAX_VALUE:.3g})")
    return value


def _eval(node: ast.AST, values: dict[str, Any]) -> int | float:
    if isinstance(node, ast.Constant):
        return _checked(node.value)
    if isinstance(node, ast.Name):
        return _checked(values[node.id])
    if isinstance(node, ast.UnaryOp):
        return _checked(_UNARY[type(node.op)](_eval(node.operand, values)))
    if isinstance(node, ast.BinOp):
        left, right = _eval(node.left, values), _eval(node.right, values)
        if isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Mod)) and right == 0:
            raise ExpressionError("division by zero", node.right.col_offset)
        return _checked(_OPERATORS[type(node.op)](left, right))
    assert isinstance(node, ast.Call)
    name = node.func.id
    args = [_eval(arg, values) for arg in node.args]
    if name in ("min", "max") and not args:
        raise ExpressionError(f"{name}() needs at least one value")
    if name == "round" and len(args) != 1:
        raise ExpressionError("round() takes one value (it rounds to a whole number, half to even as Python does)")
    if name == "make_divisible":
        if len(args) != 2 or not (isinstance(args[1], int) and args[1] > 0):
            raise ExpressionError("make_divisible(x, divisor) takes a number and a whole divisor above 0")
    return _checked(FUNCTIONS[name](*args))

"""The ranges of the numbers convspec takes, decided once for the spec, the Python API and the command line. No torch.

- Integers that become sizes, channels or ONNX attributes: 0 or 1 up to `INT_LIMIT`
  (ONNX stores them as int32).
- Floats: every float a spec gives becomes a float32 weight or parameter in the
  module, or a float32 attribute in the ONNX file, so each must be a finite number
  that float32 holds: at most `FLOAT32_MAX` in size, and 0 or at least
  `FLOAT32_TINY` (float32's smallest normal number; smaller values turn into 0 or
  lose their precision). `float32_problem` is that rule.
- Seeds: 0 to `SEED_MAX`, the range of torch's generator (a uint64).

The `*_argument` functions check the Python API's arguments (and so the CLI's, which
call it) and raise `InputError` saying what would be right.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from .errors import InputError

INT_LIMIT = 2**31 - 1  # larger values overflow ONNX int32 attributes and no real layer needs them
FLOAT32_MAX = 3.4028234663852886e38  # numpy.finfo(numpy.float32).max
FLOAT32_TINY = 1.1754943508222875e-38  # numpy.finfo(numpy.float32).tiny, the smallest normal float32
SEED_MAX = 2**64 - 1  # torch.Generator.manual_seed takes a uint64 (negative seeds alias large ones)


def describe_number(value: int | float) -> str:
    """A number as messages show it: an integer of hundreds of digits by its length."""
    if isinstance(value, int) and abs(value) >= 10**20:
        if value.bit_length() > 13_000:  # str() refuses more than 4,300 digits
            return "an integer of more than 4,000 digits"
        return f"an integer of {len(str(abs(value)))} digits"
    if isinstance(value, float):
        return f"{value:g}"
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def float32_problem(value: int | float) -> str | None:
    """Why the real number `value` cannot be a float32 weight or parameter, or None when it can.

    The reason reads after its subject ("`sigma` is nan: ..."). Python ints compare
    with the limits exactly, so an integer of any size is judged without overflow.
    """
    if not isinstance(value, int):
        try:
            number = float(value)
        except OverflowError:  # a Fraction or Decimal beyond float64
            return _too_large(value)
        if math.isnan(number) or (math.isinf(number) and value == number):
            return f"is {value}: NaN/inf not allowed; give a finite number"
        if math.isinf(number):  # a Decimal beyond float64 rounds to inf
            return _too_large(value)
        value = number
    if abs(value) > FLOAT32_MAX:
        return _too_large(value)
    if value != 0 and abs(value) < FLOAT32_TINY:
        return f"is {describe_number(value)}, too small for float32 (a nonzero value needs at least {FLOAT32_TINY:.4g} in size, or it becomes 0)"
    return None


def _too_large(value: Any) -> str:
    return (
        f"is {describe_number(value)}, too large for float32 (at most {FLOAT32_MAX:.4g} in size; weights and parameters are float32)"
    )


# ---------------------------------------------------------------- API arguments


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def exact_int(value: Any) -> int | None:
    """`value` as an int when it is an integer type (int, numpy's, torch.Size's entries), else None.

    Booleans are not numbers here (`True` for a size is a mistake), nor are floats, even whole ones.
    """
    if isinstance(value, bool) or type(value).__name__ == "bool_":  # numpy.bool_ has __index__ too
        return None
    if isinstance(value, int):
        return int(value)
    try:
        return value.__index__()
    except (AttributeError, TypeError):
        return None


def whole_text(digits: str) -> int:
    """The int written in `digits` (ASCII digits, spaces around); 10**4000 for more than 4,000 digits.

    Python refuses to convert over 4,300 digits (ValueError); any such number is out of every range here.
    """
    digits = digits.strip()
    return int(digits) if len(digits) <= 4000 else 10**4000


def whole_argument(name: str, value: Any, minimum: int, maximum: int) -> int:
    """An integer argument (not a bool, not a float) within [minimum, maximum]."""
    whole = exact_int(value)
    if whole is None:
        raise InputError(f"{name} must be a whole number from {minimum:,} to {maximum:,}, not {_shown(value)}")
    value = whole
    if not minimum <= value <= maximum:
        raise InputError(f"{name} must be from {minimum:,} to {maximum:,}, not {describe_number(value)}")
    return value


def flag_argument(name: str, value: Any) -> bool:
    """True or False, nothing else (a string "false" is truthy)."""
    if not isinstance(value, bool):
        raise InputError(f"{name} must be True or False, not {_shown(value)}")
    return value


def number_argument(name: str, value: Any, minimum: float, maximum: float = math.inf, *, above: bool = False) -> float:
    """A finite real number >= minimum (> minimum with `above`) and <= maximum."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{name} must be a number, not {_shown(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"{name} must be a finite number, not {value}")
    low = "above" if above else "at least"
    if (value <= minimum if above else value < minimum) or value > maximum:
        high = f" and at most {maximum:g}" if math.isfinite(maximum) else ""
        raise InputError(f"{name} must be {low} {minimum:g}{high}, not {describe_number(value)}")
    return float(value)


def choice_argument(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """One of `choices` (strings), nothing else."""
    if not isinstance(value, str) or value not in choices:
        raise InputError(f"{name} must be one of {', '.join(repr(c) for c in choices)}, not {_shown(value)}")
    return value


def path_argument(name: str, value: Any) -> Path:
    """A file path: a str or an os.PathLike, not empty."""
    if isinstance(value, bool) or not isinstance(value, (str, os.PathLike)) or not str(value) or "\0" in str(value):
        raise InputError(f"{name} must be a file path (a str or a pathlib.Path), not {_shown(value)}")
    return Path(value)


def seed_argument(value: Any) -> int | None:
    """None, or an integer seed from 0 to SEED_MAX."""
    if value is None:
        return None
    return whole_argument("seed", value, 0, SEED_MAX)


MAX_BATCHES = 16  # batch sizes in one run


def batches_argument(value: Any) -> tuple[int, ...]:
    """The batch sizes to time: text such as "1,8" (`--batch`) or a sequence of ints, each 1 to 2**31 - 1."""
    if isinstance(value, str):
        parts = value.split(",")
        if not all(part.strip().isascii() and part.strip().isdigit() for part in parts):
            raise InputError(f"batch sizes {value!r:.60} are not a comma-separated list of whole numbers like 1,8")
        value = [whole_text(part) for part in parts]
    if not isinstance(value, (list, tuple)) or not 1 <= len(value) <= MAX_BATCHES:
        raise InputError(f"batches must be 1 to {MAX_BATCHES} batch sizes, such as (1, 8), not {value!r:.60}")
    batches = []
    for batch in value:
        whole = exact_int(batch)
        if whole is None or not 1 <= whole <= INT_LIMIT:
            shown = _shown(batch) if whole is None else describe_number(whole)
            raise InputError(f"every batch size must be a whole number from 1 to {INT_LIMIT:,}, not {shown}")
        batches.append(whole)
    return tuple(batches)


__all__ = [
    "FLOAT32_MAX", "FLOAT32_TINY", "INT_LIMIT", "MAX_BATCHES", "SEED_MAX", "batches_argument", "choice_argument",
    "describe_number", "exact_int", "flag_argument", "float32_problem", "number_argument", "path_argument",
    "seed_argument", "whole_argument", "whole_text",
]  # fmt: skip

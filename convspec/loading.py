"""Loading a spec: data from any reader, through `extends`, `--set`, templates and scaling, validated into a `Spec`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from pydantic_core import PydanticSerializationError

from .errors import InputError, Location, Problem, SpecError, first_line, in_order
from .partial_spec import partial_spec
from .schema import Spec
from .schema_errors import drop_missing_explained_by_typos, validation_problems
from .schema_values import describe_value
from .python_data import read_python
from .source import Source, looks_like_yaml_text, parse_yaml, read_spec_file
from .templates import Expansion
from .templates import expand as expand_templates

if TYPE_CHECKING:
    from .scaling import Scaling


def parse_spec(
    data: Any, source: Source | None = None, file: str = "<dict>", *, scale: str | None = None, overrides: Any = None
) -> Spec:
    """Validate a spec's data against the format. Raises SpecError listing every problem.

    `data` with its `source` is what `source.parse_yaml` or `python_data.read_python` read; without
    one it is Python data, read here by `read_python` (named `file` in messages), so every
    spec passes the same limits of depth, nodes, cycles and types, whatever it was made from.

    On the way: `extends` is merged (`compose.py`), `overrides` (``{"stem.out_channels": 48}``
    or ``["stem.out_channels=48"]``, as `--set`) are applied (`overrides.py`), block templates
    are expanded, and the preset `scale` of `scales:` is applied (`scaling.py`). Raises
    InputError for an unknown scale or a malformed override.
    """
    if source is None:
        data, source = read_python(data, file)
    source.data = data
    if not isinstance(data, dict):
        raise SpecError([Problem(f"a spec must be a mapping, not {describe_value(data)}", source.locate(()))])
    data, expansion, scaling = _final_data(data, source, scale, overrides)
    problems: list[Problem] = list(expansion.problems)
    wrong_keys: dict[tuple, set] = {path: {None} for path in expansion.broken}  # None: the layer as a whole
    try:
        spec = Spec.model_validate(data)
    except ValidationError as err:
        problems += validation_problems(err, data, source, wrong_keys, known=set(problems))
    if problems:
        failure = SpecError(in_order(drop_missing_explained_by_typos(problems)))
        failure.partial = partial_spec(data, wrong_keys, source)
        if failure.partial is not None:
            failure.partial._scaling = scaling
        raise failure from None
    spec._source = source
    spec._scaling = scaling
    return spec


def _final_data(data: dict, source: Source, scale: str | None, overrides: Any) -> tuple[dict, Expansion, Scaling | None]:
    """The data to validate, the template expansion (its problems and broken layers) and the scaling applied.

    Each step rewrites `source.data` as it goes, so positions and later steps see its result.
    """
    from .compose import compose
    from .overrides import apply_overrides
    from .plugins import find_kinds  # lazily (it reads the kind registry): installed plugins, for types convspec lacks
    from .scaling import choose_factors, expression_factors, scale_data

    source.derived = "extends" in data or bool(overrides) or scale is not None
    data = source.data = compose(data, source)
    if overrides:
        data = source.data = apply_overrides(data, source, overrides)
    factors = choose_factors(data, scale, source.file)
    # `use` layers become their templates' layers first; everything after sees ordinary layers
    expansion = expand_templates(data, source, expression_factors(data, factors))
    data = source.data = expansion.data
    scaling = None
    if factors is not None:
        data, scaling = scale_data(data, factors)
        source.data = data
    find_kinds(data, source)
    return data, expansion, scaling


def load(spec: Any, *, scale: str | None = None, overrides: Any = None) -> Spec:
    """A validated Spec from a path, YAML text, a dict, or a Spec.

    A Spec that `load` made is returned as is; one built in Python (`Spec(...)`,
    `Spec.model_validate`, `Spec.model_construct`) is validated again from its plain
    data, as a dict would be. `scale` picks a preset of the spec's `scales:`;
    `overrides` sets values as `--set` does (a mapping ``{"stem.out_channels": 48}`` or a
    list of ``"KEY=VALUE"`` texts). Raises SpecError listing every problem, or InputError
    when a file cannot be read, the scale is unknown or an override is malformed.
    """
    return _load(spec, scale, overrides)


def _load(spec: Any, scale: str | None = None, overrides: Any = None) -> Spec:
    options = {"scale": scale, "overrides": overrides}
    if isinstance(spec, Spec):
        if spec.source.data is not None:  # made by parse_spec: validated, with its positions
            if scale is not None or overrides:
                raise InputError("this Spec is already loaded; give scale= and overrides= with its path, YAML text or dict")
            return spec
        return parse_spec(_spec_data(spec), file="<Spec>", **options)
    if isinstance(spec, Path) or (isinstance(spec, str) and not looks_like_yaml_text(spec)):
        data, source = read_spec_file(spec)
        parsed = parse_spec(data, source, **options)
        if parsed.name is None:
            parsed.name = Path(spec).stem
        return parsed
    if isinstance(spec, str):
        data, source = parse_yaml(spec, "<string>")
        return parse_spec(data, source, **options)
    if isinstance(spec, dict):
        return parse_spec(spec, file="<dict>", **options)
    raise TypeError(f"convspec.load takes a path, YAML text, a dict or a Spec, not {type(spec).__name__}")


def _spec_data(spec: Spec) -> Any:
    """A Spec's keys and values as plain data (what it would be written as), or SpecError."""
    try:
        return spec.model_dump(by_alias=True, exclude_unset=True, warnings=False)
    except (ValueError, TypeError, RecursionError, PydanticSerializationError) as err:
        message = f"this Spec cannot be read back as data ({first_line(err)}); build it from a dict or YAML text"
        raise SpecError([Problem(message, Location("<Spec>"))]) from None
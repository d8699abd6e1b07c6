"""The spec format's modules: where the documented names answer, the conv variants' one rule each, no torch."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convspec
import convspec.schema as S
from convspec.errors import SpecError

VARIANTS = (S.PointwiseLayer, S.AsymmetricLayer, S.DilatedLayer, S.GroupLayer, S.TransposedLayer, S.DynamicLayer)


def test_schema_load_is_the_documented_load():
    from convspec.schema import load

    assert load is convspec.load
    with pytest.raises(AttributeError, match="no attribute 'parse_spec_'"):
        S.parse_spec_  # noqa: B018


@pytest.mark.parametrize("model", VARIANTS, ids=lambda m: m.__name__)
def test_conv_variants_list_conv_keys_in_conv_order(model):
    """A variant redeclares `type` and the keys it changes; every key keeps conv's place, its own keys follow."""
    conv_keys = list(S.ConvLayer.model_fields)
    keys = list(model.model_fields)
    assert keys[: len(conv_keys)] == conv_keys
    assert model.model_fields["type"].annotation != S.ConvLayer.model_fields["type"].annotation


def _accepts(layer: dict) -> bool:
    try:
        convspec.load({"input": {"channels": 8, "size": [16, 16]}, "layers": [layer]})
    except SpecError:
        return False
    return True


per_dim = st.one_of(st.integers(1, 4), st.lists(st.integers(1, 4), min_size=2, max_size=2))


@settings(max_examples=25, deadline=None)
@given(kernel=per_dim, dilation=per_dim, groups=st.sampled_from([1, 2, 4]))
def test_each_variant_refuses_exactly_what_its_rule_forbids(kernel, dilation, groups):
    """Where conv accepts a layer, a variant accepts it exactly when its one rule holds."""
    per = kernel if isinstance(kernel, list) else [kernel]
    dil = dilation if isinstance(dilation, list) else [dilation]
    layer = {"out_channels": 8, "kernel_size": kernel, "dilation": dilation, "groups": groups}
    if not _accepts({"type": "conv", **layer}):
        return
    assert _accepts({"type": "pointwise", **layer}) == all(k == 1 for k in per)
    assert _accepts({"type": "asymmetric", **layer}) == (isinstance(kernel, list) and len(set(kernel)) >= 2)
    assert _accepts({"type": "dilated", **layer}) == (max(dil) >= 2)
    assert _accepts({"type": "group", **layer}) == (groups >= 2)


def test_the_format_modules_import_no_torch():
    modules = "schema schema_values layer_names schema_errors partial_spec loading schema_json"
    code = (
        f"import importlib, sys\nfor name in {modules.split()!r}: importlib.import_module('convspec.' + name)\n"
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr

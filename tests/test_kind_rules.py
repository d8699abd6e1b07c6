"""Every kind's rule says what its module does: convspec.testing on built-in kinds, on the demo plugin's, and on wrong ones.

Each case draws a few configurations and input shapes with hypothesis, then checks, builds and runs
a one-layer spec and compares output shape, parameters and MACs (FlopCounterMode) with the rule's.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

import pytest
from hypothesis import strategies as st
from torch import nn

import convspec
from convspec.kinds import registry
from convspec.testing import assert_rule_matches_module, compare_one, feature_maps, probe_spec

PLUGINS = Path(__file__).resolve().parent / "plugins"

small = st.integers
BUILTIN_CASES = {
    "conv": st.fixed_dictionaries({
        "out_channels": small(1, 8), "kernel_size": small(1, 4), "stride": small(1, 3), "dilation": small(1, 2),
        "padding": st.sampled_from([0, 1, "same", "same_upper"]), "groups": st.sampled_from([1, 2]),
        "norm": st.sampled_from([None, "batch"]), "bias": st.booleans(), "trainable": st.booleans(),
    }),
    "separable": st.fixed_dictionaries({"out_channels": small(1, 8), "kernel_size": small(1, 4), "stride": small(1, 2), "padding": small(0, 1)}),
    "transposed": st.fixed_dictionaries({"out_channels": small(1, 6), "kernel_size": small(1, 4), "stride": small(1, 3), "padding": small(0, 1)}),
    "pool": st.fixed_dictionaries({"op": st.sampled_from(["max", "avg"]), "kernel_size": small(1, 3), "stride": small(1, 3), "ceil_mode": st.booleans()}),
    "fixed": st.fixed_dictionaries({"filter": st.sampled_from(["gaussian", "box"]), "kernel_size": st.sampled_from([3, 5]), "per_channel": st.booleans()}),
    "shuffle": st.fixed_dictionaries({"groups": small(1, 4)}),
    "upsample": st.fixed_dictionaries({"scale": small(1, 3), "mode": st.sampled_from(["nearest", "bilinear"])}),
}


@pytest.mark.parametrize("kind", sorted(BUILTIN_CASES))
def test_builtin_rules_match_their_modules(kind, one_thread):
    assert_rule_matches_module(kind, BUILTIN_CASES[kind], feature_maps(2, channels=(1, 8), size=(1, 12)), max_examples=12)


@pytest.fixture()
def demo(monkeypatch):
    with registry.isolated():
        monkeypatch.syspath_prepend(str(PLUGINS / "demo"))
        yield __import__("convspec_demo_kinds")
    sys.modules.pop("convspec_demo_kinds", None)


def test_the_demo_plugins_rules_match_their_modules(demo, one_thread):
    cbam, pixel_shuffle = demo.KINDS
    configs = st.fixed_dictionaries({"reduction": small(1, 8), "kernel_size": st.sampled_from([1, 3, 5, 7])})
    assert_rule_matches_module(cbam, configs, feature_maps(2, size=(1, 12)), max_examples=15)
    assert_rule_matches_module(pixel_shuffle, st.fixed_dictionaries({"upscale_factor": small(1, 3)}), feature_maps(2, channels=(1, 36)), max_examples=15)


class CountLayer(convspec.LayerBase):
    type: Literal["miscount"]
    out_channels: int = 4


def _miscounting_rule(layer, inputs):
    batch, channels, *spatial = inputs[0]
    # forgets the bias: one parameter per output channel too few
    return convspec.Figures((batch, layer.out_channels, *spatial), params=channels * layer.out_channels, macs=0)


def test_a_rule_that_miscounts_is_caught_with_the_case_that_shows_it():
    kind = convspec.UserKind(CountLayer, _miscounting_rule, lambda layer, inputs: nn.Conv2d(inputs[0][1], layer.out_channels, 1))
    with pytest.raises(AssertionError) as caught:
        assert_rule_matches_module(kind, inputs=st.just((1, 3, 2, 2)), max_examples=5)
    text = str(caught.value)
    # the build itself compares the parameter counts (the figures are known then), before the helper's MACs
    assert "kind 'miscount'" in text and "the rule counts 12 parameters (12 trainable) but the module holds 16" in text
    assert "miscount" not in registry  # registered for the test only


def test_a_module_whose_shape_differs_is_caught(monkeypatch):
    with registry.isolated():
        monkeypatch.syspath_prepend(str(PLUGINS / "faulty"))
        faulty = __import__("convspec_faulty_kinds")
        with pytest.raises(AssertionError, match="the rule says \\[1, 1, 2, 2\\] but the module returns \\[1, 1, 1, 1\\]"):
            assert_rule_matches_module(faulty.KINDS[1], inputs=st.just((1, 1, 2, 2)), max_examples=5)


def test_a_refused_configuration_is_skipped_not_failed():
    assert probe_spec("shuffle", {"groups": 3}, (1, 4, 2, 2))["layers"][0] == {"type": "shuffle", "name": "probe", "groups": 3}
    assert compare_one("shuffle", {"groups": 3}, (1, 4, 2, 2)) is False  # 3 does not divide 4: an invalid spec
    assert compare_one("shuffle", {"groups": 2}, (1, 4, 2, 2)) is True

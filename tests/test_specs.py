"""Every spec in specs/ is checked, built and run, and the checker's figures equal the module's."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import convspec
from support import assert_report_matches_model

SPECS = sorted((Path(__file__).parent.parent / "specs").glob("*.yaml"))
# Above this many MACs per sample (the ImageNet-sized architectures), the forward pass at another batch
# is left out to keep the suite fast: the checker's shapes at that batch are still checked.
BIG_MACS = 100_000_000


pytestmark = pytest.mark.usefixtures("one_thread")  # the fixture lives in conftest.py


def test_there_are_example_specs():
    assert len(SPECS) >= 10


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_spec_checks_builds_and_runs(path):
    report = convspec.check(path)
    assert report.valid, report.errors
    model = convspec.build(path, seed=0).eval()
    assert_report_matches_model(report, model)
    with torch.no_grad():
        out = model(torch.randn(report.input_shape))
    outs = out if isinstance(out, tuple) else (out,)
    assert [tuple(t.shape) for t in outs] == list(report.outputs.values())
    assert all(torch.isfinite(t).all() for t in outs)
    assert report.total_params == sum(p.numel() for p in model.parameters())
    assert report.trainable_params == sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_spec_runs_at_another_batch(path):
    report = convspec.check(path)
    shape = (3, *report.input_shape[1:])
    other = convspec.check(path, input_shape=shape)
    assert all(s[0] == 3 for s in other.outputs.values())
    batch = report.input_shape[0]
    assert other.total_macs * batch == 3 * report.total_macs  # every counted cost is per sample
    if report.total_macs / batch > BIG_MACS:
        return  # built and run at batch 1 above
    model = convspec.build(path).eval()
    with torch.no_grad():
        out = model(torch.randn(shape))
    outs = out if isinstance(out, tuple) else (out,)
    assert [tuple(t.shape) for t in outs] == list(other.outputs.values())

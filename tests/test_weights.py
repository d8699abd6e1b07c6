"""`convspec weights` and `convspec.map_weights`: foreign state_dicts onto specs, by order and shapes.

The references in `torchvision_models.py` have torchvision's module trees, key names and
registration order; their weights mapped onto the bundled specs must give the same outputs.
"""

from __future__ import annotations

from collections import OrderedDict
from functools import partial
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torchvision_models import REFERENCES, randomise_batchnorm, resnet34

import convspec
from convspec.cli import cli
from convspec.errors import InputError
from convspec.weights import WeightsError, adapt_conv_in_channels, map_weights, source_state_dict

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"

SMALL = """
name: small
input: {channels: 3, size: [16, 16]}
layers:
  - {name: stem, type: conv, out: 8, kernel: 3, padding: 1, norm: batch, act: relu}
  - {name: body, type: conv, out: 8, kernel: 3, padding: 1, norm: batch, act: relu}
  - {name: gap, type: global_pool, op: avg}
  - {name: flat, type: flatten}
  - {name: fc, type: linear, out: 5}
"""


class SmallReference(nn.Module):
    """SMALL written by hand, with other key names: what a training script would save."""

    def __init__(self, in_chans: int = 3, num_classes: int = 5):
        super().__init__()
        self.conv_a = nn.Conv2d(in_chans, 8, 3, padding=1, bias=False)
        self.bn_a = nn.BatchNorm2d(8)
        self.conv_b = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn_b = nn.BatchNorm2d(8)
        self.head = nn.Linear(8, num_classes)

    def forward(self, x):
        x = torch.relu(self.bn_b(self.conv_b(torch.relu(self.bn_a(self.conv_a(x))))))
        return self.head(x.mean((2, 3)))


def reference(make, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = make().eval()
    randomise_batchnorm(model, torch.Generator().manual_seed(seed + 1))
    return model


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


# ---------------------------------------------------------------- torchvision's architectures


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_torchvision_weights_give_torchvisions_outputs(name, one_thread):
    ref = reference(REFERENCES[name])
    state, table = map_weights(SPECS / f"{name}.yaml", ref.state_dict())
    assert table.complete and table.mapped == len(ref.state_dict()) == len(table.rows)
    assert [row.source for row in table.rows] == list(ref.state_dict())  # torchvision's order, every buffer included
    model = convspec.build(SPECS / f"{name}.yaml", seed=1).eval()
    model.load_state_dict(state)
    for row in table.rows:  # running statistics and counters too
        assert torch.equal(model.state_dict()[row.target], ref.state_dict()[row.source]), row
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected, got = ref(x), model(x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_a_state_dict_sorted_by_name_is_put_back_in_registration_order(name):
    ref = REFERENCES[name]()
    by_name = dict(sorted(ref.state_dict().items()))  # what a .safetensors file gives back
    _, table = map_weights(SPECS / f"{name}.yaml", by_name, registration_order=False)
    assert table.complete and [row.source for row in table.rows] == list(ref.state_dict())


def test_order_is_recovered_with_other_input_channels_and_classes():
    ref = reference(partial(SmallReference, in_chans=1, num_classes=7))
    spec = SMALL.replace("channels: 3", "channels: 4")
    by_name = dict(sorted(ref.state_dict().items()))
    state, table = map_weights(spec, by_name, registration_order=False, adapt_input_conv=True, reset_classifier=True)
    assert [row.source for row in table.rows] == list(ref.state_dict()) and table.complete
    assert state["stem.conv.weight"].shape == (8, 4, 3, 3)


def test_another_architecture_is_refused_naming_the_first_mismatch():
    source = REFERENCES["mobilenet_v2"]().state_dict()
    with pytest.raises(WeightsError) as caught:
        map_weights(SPECS / "resnet34.yaml", source)
    first = caught.value.problems[0].message
    assert first == "first mismatch, tensor 1 in order: features.0.0.weight [32, 3, 3, 3] against the spec's stem.conv.weight [64, 3, 7, 7]"
    assert caught.value.exit_code == 1


def test_order_decides_and_a_tensor_out_of_order_is_ambiguous():
    state = SmallReference().state_dict()
    moved = OrderedDict([("head.weight", state["head.weight"])] + [(k, v) for k, v in state.items() if k != "head.weight"])
    with pytest.raises(WeightsError) as caught:
        map_weights(SMALL, moved)
    text = str(caught.value)
    assert "ambiguous: 1 tensor(s)" in text and "head.weight ~ fc.weight" in text


def test_a_small_network_maps_and_computes_the_same():
    ref = reference(SmallReference)
    state, table = map_weights(SMALL, ref.state_dict())
    assert [(r.source, r.target) for r in table.rows][:2] == [("conv_a.weight", "stem.conv.weight"), ("bn_a.weight", "stem.norm.weight")]
    model = convspec.build(SMALL).eval()
    model.load_state_dict(state)
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x))


# ---------------------------------------------------------------- timm's options


def test_adapt_input_conv_and_reset_classifier():
    ref = reference(SmallReference)
    spec = SMALL.replace("channels: 3", "channels: 1").replace("out: 5}", "out: 7}")
    with pytest.raises(WeightsError) as caught:
        map_weights(spec, ref.state_dict())
    assert "--adapt-input-conv" in str(caught.value)
    state, table = map_weights(spec, ref.state_dict(), adapt_input_conv=True, reset_classifier=True, seed=3)
    how = {row.target: row.how for row in table.rows}
    assert how["stem.conv.weight"] == "adapted" and how["fc.weight"] == how["fc.bias"] == "reset"
    assert table.mapped == len(table.rows) - 2 and table.complete
    torch.testing.assert_close(state["stem.conv.weight"], ref.conv_a.weight.sum(1, keepdim=True))
    fresh = convspec.build(spec, seed=3).state_dict()  # the classifier is the spec's own initial one
    assert torch.equal(state["fc.weight"], fresh["fc.weight"]) and torch.equal(state["fc.bias"], fresh["fc.bias"])
    # a grey image through the adapted stem is the RGB image of three equal channels through the original
    model = convspec.build(spec).eval()
    model.load_state_dict(state)
    grey = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model.stem(grey), nn.Sequential(ref.conv_a, ref.bn_a, nn.ReLU())(grey.expand(-1, 3, -1, -1)))


@settings(max_examples=40, deadline=None)
@given(
    out=st.integers(1, 4), source=st.integers(1, 4), target=st.integers(1, 9), kernel=st.lists(st.integers(1, 3), min_size=1, max_size=3),
    seed=st.integers(0, 2**32 - 1),
)
def test_adapted_conv_keeps_the_response_to_an_even_input(out, source, target, kernel, seed):
    weight = torch.randn(out, source, *kernel, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    adapted = adapt_conv_in_channels(weight, target)
    assert adapted.shape == (out, target, *kernel) and adapted.dtype == weight.dtype
    if target == 1 or target % source == 0:  # timm's rule keeps sum over channels exactly in these cases
        torch.testing.assert_close(adapted.sum(1), weight.sum(1))


def test_partial_keeps_initial_weights_and_lists_what_is_missing():
    ref = reference(SmallReference)
    source = {k: v for k, v in ref.state_dict().items() if not k.startswith("head.")}
    with pytest.raises(WeightsError) as caught:
        map_weights(SMALL, source)
    assert "missing for the spec (2): fc.weight [5, 8], fc.bias [5]" in str(caught.value)
    state, table = map_weights(SMALL, source, partial=True, seed=5)
    assert not table.complete and table.unmatched_target == [("fc.weight", (5, 8)), ("fc.bias", (5,))]
    assert [r.how for r in table.rows if r.target.startswith("fc.")] == ["initial", "initial"]
    assert torch.equal(state["fc.weight"], convspec.build(SMALL, seed=5).state_dict()["fc.weight"])


# ---------------------------------------------------------------- what a file may hold


def test_checkpoint_dicts_and_wrapper_prefixes_are_unwrapped():
    state = SmallReference().state_dict()
    wrapped = {"epoch": 3, "optimizer": {"lr": 0.1}, "state_dict": {f"module.{k}": v for k, v in state.items()}}
    assert list(source_state_dict(wrapped, "x.pt")) == list(state)
    with pytest.raises(InputError, match="no state_dict found"):
        source_state_dict({"epoch": 3}, "x.pt")
    with pytest.raises(InputError, match="dense CPU tensors"):
        map_weights(SMALL, {"a": 1})


def test_half_precision_source_is_cast_to_the_spec_dtype():
    ref = SmallReference().half()
    state, _ = map_weights(SMALL, ref.state_dict())
    assert state["stem.conv.weight"].dtype == torch.float32
    assert state["stem.norm.num_batches_tracked"].dtype == torch.int64


# ---------------------------------------------------------------- the command


@pytest.fixture
def small_files(tmp_path):
    spec = tmp_path / "small.yaml"
    spec.write_text(SMALL)
    ref = reference(SmallReference)
    source = tmp_path / "trained.pth"
    torch.save({"epoch": 1, "model_state_dict": ref.state_dict()}, source)
    return spec, source, ref


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_cli_writes_weights_that_build_and_bench_take(small_files, tmp_path, suffix):
    spec, source, ref = small_files
    out = tmp_path / f"mapped{suffix}"
    result = run("weights", spec, "--from", source, "-o", out)
    assert result.exit_code == 0, result.output
    assert ["conv_a.weight", "->", "stem.conv.weight", "8x3x3x3"] in [line.split() for line in result.output.splitlines()]
    assert f"mapped 14/14 tensors from {source}" in result.output
    model = convspec.build(spec, weights=out).eval()
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x))
    built = run("build", spec, "--weights", out)
    assert built.exit_code == 0, built.output
    again = run("weights", spec, "--from", source, "-o", out)
    assert again.exit_code == 2 and "--force" in again.output


def test_cli_exit_1_writes_nothing_and_partial_writes(small_files, tmp_path):
    spec, _, ref = small_files
    source = tmp_path / "headless.safetensors"
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in ref.state_dict().items() if not k.startswith("head.")}, source)
    out = tmp_path / "out.safetensors"
    result = run("weights", spec, "--from", source, "-o", out)
    assert result.exit_code == 1 and not out.exists()
    assert "missing for the spec (2): fc.weight [5, 8], fc.bias [5]" in result.output and "Traceback" not in result.output
    kept = run("weights", spec, "--from", source, "-o", out, "--partial", "--quiet")
    assert kept.exit_code == 0 and out.exists()
    assert "mapped 12/14 tensors" in kept.output and "missing for the spec (2)" in kept.output


def test_cli_usage_and_unreadable_files_exit_2(small_files, tmp_path):
    spec, source, _ = small_files
    assert run("weights", spec, "-o", tmp_path / "o.safetensors").exit_code == 2  # --from is required
    missing = run("weights", spec, "--from", tmp_path / "nope.pt", "-o", tmp_path / "o.safetensors")
    assert missing.exit_code == 2 and "Traceback" not in missing.output
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    bad = run("weights", spec, "--from", junk, "-o", tmp_path / "o.safetensors")
    assert bad.exit_code == 2 and "not a readable .safetensors file" in bad.output
    assert not (tmp_path / "o.safetensors").exists()


def test_a_pickle_with_code_is_refused(small_files, tmp_path):
    spec, _, _ = small_files
    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": SmallReference().state_dict(), "hook": nn.ReLU()}, evil)  # a module object: code to unpickle
    result = run("weights", spec, "--from", evil, "-o", tmp_path / "o.safetensors")
    assert result.exit_code == 2 and "cannot load weights safely" in result.output


def test_bench_takes_weights(small_files, tmp_path, one_thread):
    from convspec.bench import bench

    spec, source, _ = small_files
    out = tmp_path / "mapped.safetensors"
    assert run("weights", spec, "--from", source, "-o", out).exit_code == 0
    result = bench(spec, batches=(1,), rounds=1, block_seconds=0.001, weights=out)
    assert result.timings
    with pytest.raises(InputError):
        bench(spec, batches=(1,), rounds=1, block_seconds=0.001, weights=tmp_path / "nope.safetensors")


def test_resnet34_through_the_command(tmp_path, one_thread):
    ref = reference(resnet34)
    source = tmp_path / "resnet34.pth"
    torch.save(ref.state_dict(), source)
    out = tmp_path / "resnet34.safetensors"
    result = run("weights", SPECS / "resnet34.yaml", "--from", source, "-o", out)
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.output.splitlines()]
    assert ["layer2.0.downsample.1.running_var", "->", "layer2.0.block.shortcut.downsample.norm.running_var", "128"] in rows
    model = convspec.build(SPECS / "resnet34.yaml", weights=out).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), rtol=1e-5, atol=1e-5)


def test_cli_set_gives_timms_in_chans_and_num_classes(small_files, tmp_path):
    spec, source, ref = small_files
    out = tmp_path / "grey7.safetensors"
    args = ["weights", spec, "--from", source, "-o", out, "--set", "input.channels=1", "--set", "fc.out_features=7"]
    assert run(*args).exit_code == 1 and not out.exists()
    result = run(*args, "--adapt-input-conv", "--reset-classifier")
    assert result.exit_code == 0, result.output
    assert "(adapted from 8x3x3x3)" in result.output and "(reset)" in result.output
    from safetensors.torch import load_file

    state = load_file(str(out))
    assert state["stem.conv.weight"].shape == (8, 1, 3, 3) and state["fc.weight"].shape == (7, 8)
    torch.testing.assert_close(state["stem.conv.weight"], ref.conv_a.weight.sum(1, keepdim=True))


def test_a_state_dict_without_batchnorm_counters_maps_exactly():
    # checkpoints older than BatchNorm's num_batches_tracked lack it; load_state_dict takes them, so does the mapping
    model = convspec.build("specs/resnet_small.yaml", seed=3).eval()
    source = {"net." + k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    mapped, table = convspec.map_weights("specs/resnet_small.yaml", source)
    rebuilt = convspec.build("specs/resnet_small.yaml", seed=0).eval()
    rebuilt.load_state_dict(mapped)
    assert list(mapped) == list(rebuilt.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), rebuilt(x))
    assert all(row.how == "initial" for row in table.rows if row.target.endswith("num_batches_tracked"))


def _small_cnn_state(order):
    model = convspec.build("specs/small_cnn.yaml", seed=1)
    state = model.state_dict()
    return {f"m.{key}": state[key] for key in order}


def test_partial_never_writes_a_mapping_whose_order_is_in_doubt():
    # conv2's tensors before conv1's: conv1's fit the spec by name and shape, out of order
    order = ["conv2.conv.weight", "conv2.conv.bias", "conv1.conv.weight", "conv1.conv.bias", "fc.weight", "fc.bias"]
    with pytest.raises(convspec.ConvspecError, match="--partial writes only a mapping whose order is certain"):
        convspec.map_weights("specs/small_cnn.yaml", _small_cnn_state(order), partial=True)


def test_partial_with_nothing_in_common_writes_nothing():
    unrelated = {"a.weight": torch.zeros(7, 5), "b.weight": torch.zeros(2, 2, 5, 5)}
    with pytest.raises(convspec.ConvspecError, match="no tensor of the source maps onto the spec"):
        convspec.map_weights("specs/small_cnn.yaml", unrelated, partial=True)

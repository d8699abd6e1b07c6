"""Built modules scale out the PyTorch way: DistributedDataParallel and torch.compile.

- DDP: two processes (gloo, on 127.0.0.1) each take half of a batch; after one
  backward pass their averaged gradients equal one process's gradients on the
  whole batch. The networks have no BatchNorm, whose batch statistics would
  differ between a half batch and the whole one.
- torch.compile: the compiled module gives the eager module's outputs.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import convspec

ROOT = Path(__file__).resolve().parent.parent
WORLD = 2
BATCH = 8  # per process

# wiring that DDP must see through: a residual, a concat of two branches, a repeat
GRAPH_SPEC = """
name: graph_no_bn
input: {channels: 3, size: [16, 16]}
layers:
  - {name: stem, type: conv, out: 8, kernel: 3, padding: 1, act: relu}
  - name: res
    type: residual
    act: relu
    layers:
      - {type: conv, out: 8, kernel: 3, padding: 1, act: relu}
      - {type: conv, out: 8, kernel: 3, padding: 1}
  - {name: left, type: pointwise, out: 4, from: res}
  - {name: right, type: separable, out: 4, kernel: 3, padding: 1, from: res}
  - {name: cat, type: concat, from: [left, right]}
  - {name: more, type: repeat, times: 2, layers: [{type: depthwise, kernel: 3, padding: 1, act: relu}]}
  - {name: pool, type: global_pool}
  - {name: flat, type: flatten}
  - {name: fc, type: linear, out: 5}
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def batch(spec: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The same whole batch in every process: inputs and regression targets."""
    report = convspec.check(spec)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn((WORLD * BATCH, *report.input_shape[1:]), generator=generator)
    out_shape = next(iter(report.outputs.values()))
    y = torch.randn((WORLD * BATCH, *out_shape[1:]), generator=generator)
    return x, y


def _worker(rank: int, spec: str, port: int, folder: str) -> None:
    torch.set_num_threads(1)
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        model = torch.nn.parallel.DistributedDataParallel(convspec.build(spec, seed=0))
        x, y = batch(spec)
        mine = slice(rank * BATCH, (rank + 1) * BATCH)
        loss = torch.nn.functional.mse_loss(model(x[mine]), y[mine])
        loss.backward()  # DDP averages the gradients over the processes here
        grads = {name: p.grad.detach().clone() for name, p in model.module.named_parameters()}
        torch.save(grads, Path(folder) / f"grads{rank}.pt")
        dist.barrier()  # gloo aborts a process that tears down while its peer still talks to it
    finally:
        dist.destroy_process_group()
    # the results are saved; skip the interpreter's teardown, where gloo's threads now and then abort
    # the process ("terminate called without an active exception") after the work is done
    os._exit(0)


@pytest.mark.parametrize("spec", [str(ROOT / "specs" / "small_cnn.yaml"), GRAPH_SPEC], ids=["small_cnn", "graph"])
def test_ddp_gradients_equal_one_process_on_the_whole_batch(spec, tmp_path):
    mp.spawn(_worker, args=(spec, free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    reference = convspec.build(spec, seed=0)
    x, y = batch(spec)
    torch.nn.functional.mse_loss(reference(x), y).backward()
    expected = {name: p.grad for name, p in reference.named_parameters()}
    assert expected and all(g is not None for g in expected.values())
    for rank in range(WORLD):
        got = torch.load(tmp_path / f"grads{rank}.pt", weights_only=True)
        assert list(got) == list(expected)
        for name, grad in expected.items():
            assert torch.allclose(got[name], grad, atol=1e-5), (rank, name, (got[name] - grad).abs().max())


@pytest.mark.parametrize("name", ["small_cnn", "nine_kinds"])
def test_torch_compile_equals_eager(name):
    """torch.compile with its default backend (inductor, which compiles C++ with the system's compiler)."""
    model = convspec.build(str(ROOT / "specs" / f"{name}.yaml"), seed=0).eval()
    report = convspec.check(str(ROOT / "specs" / f"{name}.yaml"))
    x = torch.randn((2, *report.input_shape[1:]), generator=torch.Generator().manual_seed(0))
    compiled = torch.compile(model)
    try:
        with torch.no_grad():
            eager, fast = model(x), compiled(x)
    finally:
        torch._dynamo.reset()  # no compiled code or guards left behind for other tests
    assert fast.shape == eager.shape
    assert torch.allclose(fast, eager, atol=1e-5), (fast - eager).abs().max()

"""Output files: nothing lost, nothing half-written, nothing replaced without --force.

Every write is staged in a private folder beside its destination and published without
replacing (unless forced); a killed run leaves nothing that looks like a result, and the
next write into that folder removes what it left. Weights from a size on go to an ONNX
external-data file written beside the model, whatever the current directory holds.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import onnx
import pytest

import convspec
from convspec import fileio
from convspec.export import export_onnx
from convspec.fileio import STAGING_MARK, publish, remove_stale_staging, staging
from support import ort_run  # tests/ is on sys.path (conftest.py)

ROOT = Path(__file__).resolve().parent.parent
SMALL = str(ROOT / "specs" / "small_cnn.yaml")
TINY_WEIGHTS = """
name: tiny_weights
input: {channels: 1, size: [8, 8]}
layers:
  - {name: conv, type: conv, out: 2, kernel: 3, padding: same}
"""


def _staging_folders(directory: Path) -> list[Path]:
    return [p for p in directory.iterdir() if STAGING_MARK in p.name]


# ---------------------------------------------------------------- publishing


def test_of_two_writers_without_force_exactly_one_wins(tmp_path):
    destination = tmp_path / "out.bin"
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def writer(i: int) -> None:
        staged = tmp_path / f"staged{i}"
        staged.write_bytes(f"writer {i}".encode())
        barrier.wait()
        try:
            publish(staged, destination, force=False)
            outcomes.append(f"writer {i}")
        except convspec.InputError as err:
            assert "already exists" in str(err)
            outcomes.append("refused")

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [o for o in outcomes if o != "refused"]
    assert len(winners) == 1
    assert destination.read_text() == winners[0]


def test_publish_gives_the_usual_mode_of_a_new_file(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    with staging(tmp_path / "out.bin") as folder:
        staged = folder / "partial"
        staged.write_bytes(b"x")
        os.chmod(staged, 0o600)
        publish(staged, tmp_path / "out.bin", force=False)
    assert (tmp_path / "out.bin").stat().st_mode & 0o777 == 0o666 & ~umask
    assert os.listdir(tmp_path) == ["out.bin"]


def test_an_export_does_not_replace_a_file_that_appeared_while_it_ran(tmp_path):
    out = tmp_path / "m.onnx"

    def meanwhile(step) -> None:
        if step.name == "verify":
            out.write_bytes(b"the other run's file")

    with pytest.raises(convspec.InputError, match="written while this command ran"):
        export_onnx(None, SMALL, out, on_step=meanwhile)
    assert out.read_bytes() == b"the other run's file"
    assert os.listdir(tmp_path) == ["m.onnx"]


def test_the_data_file_of_a_losing_export_is_taken_back(tmp_path):
    out = tmp_path / "m.onnx"

    def meanwhile(step) -> None:
        if step.name == "verify":
            out.write_bytes(b"the other run's file")

    with pytest.raises(convspec.InputError, match="written while this command ran"):
        export_onnx(None, SMALL, out, on_step=meanwhile, external_data_threshold=1)
    assert sorted(os.listdir(tmp_path)) == ["m.onnx"]
    assert out.read_bytes() == b"the other run's file"


# ---------------------------------------------------------------- links and special destinations


@pytest.mark.parametrize("command", ["build", "export"])
def test_a_dangling_symlink_is_not_replaced_without_force(command, tmp_path):
    from click.testing import CliRunner

    from convspec.cli import cli

    link = tmp_path / "out.bin"
    link.symlink_to(tmp_path / "missing-target")
    result = CliRunner().invoke(cli, [command, SMALL, "-o", str(link)])
    assert result.exit_code == 2, result.output
    assert "symbolic link" in result.output and "--force" in result.output
    assert link.is_symlink() and not link.exists()
    forced = CliRunner().invoke(cli, [command, SMALL, "-o", str(link), "--force"])
    assert forced.exit_code == 0, forced.output
    assert link.is_file() and not link.is_symlink()
    assert not (tmp_path / "missing-target").exists()  # the link is replaced, nothing is written through it


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs Linux's /proc")
def test_export_into_proc_is_an_io_error_before_any_work(capfd):
    steps = []
    with pytest.raises(convspec.InputError, match="/proc"):
        export_onnx(None, SMALL, "/proc/net.onnx", on_step=steps.append)
    assert steps == []


def test_a_disk_too_full_for_the_weights_is_refused_before_the_work(tmp_path, monkeypatch):
    monkeypatch.setattr(fileio.shutil, "disk_usage", lambda path: type("usage", (), {"free": 1000})())
    steps = []
    with pytest.raises(convspec.InputError, match=r"needs about .* MB, and only 0\.0 MB are free"):
        export_onnx(None, SMALL, tmp_path / "m.onnx", on_step=steps.append)
    assert steps == [] and os.listdir(tmp_path) == []


def test_a_disk_that_fills_during_the_write_is_an_io_error_and_keeps_the_old_file(tmp_path, monkeypatch):
    from convspec import export as export_module

    def full(staged, destination, force):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(export_module, "publish", full)
    out = tmp_path / "m.onnx"
    out.write_bytes(b"precious")
    with pytest.raises(convspec.InputError, match="No space left on device"):
        export_onnx(None, SMALL, out, force=True)
    assert out.read_bytes() == b"precious"
    assert os.listdir(tmp_path) == ["m.onnx"]


# ---------------------------------------------------------------- external data


def test_external_data_ignores_a_same_named_file_in_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.onnx.data").write_bytes(b"unrelated")
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "m.onnx"
    export_onnx(None, SMALL, out, external_data_threshold=1)
    assert sorted(os.listdir(tmp_path / "out")) == ["m.onnx", "m.onnx.data"]
    assert (tmp_path / "m.onnx.data").read_bytes() == b"unrelated"
    umask = os.umask(0o022)
    os.umask(umask)
    assert {(tmp_path / "out" / n).stat().st_mode & 0o777 for n in ("m.onnx", "m.onnx.data")} == {0o666 & ~umask}
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    assert ort_run(out, x)[0].shape == (2, 10)


def test_external_data_with_only_small_tensors_writes_one_file(tmp_path):
    out = tmp_path / "m.onnx"
    export_onnx(None, TINY_WEIGHTS, out, external_data_threshold=1)
    assert os.listdir(tmp_path) == ["m.onnx"]
    assert not any(onnx.external_data_helper.uses_external_data(t) for t in onnx.load(str(out)).graph.initializer)


@pytest.mark.parametrize("opset", [14, 17, 18, 21])
def test_external_data_files_verify_at_every_opset(tmp_path, opset):
    out = tmp_path / "m.onnx"
    export_onnx(None, SMALL, out, external_data_threshold=1, opset=opset)
    assert sorted(os.listdir(tmp_path)) == ["m.onnx", "m.onnx.data"]
    model = onnx.load(str(out), load_external_data=False)
    assert model.opset_import[0].version == opset
    large = [t for t in model.graph.initializer if 4 * int(np.prod(t.dims)) >= 1024]
    assert large and all(onnx.external_data_helper.uses_external_data(t) for t in large)
    result = convspec.verify_onnx(out, SMALL)  # raises when the file does not verify
    assert result.checks and all(check.ok for check in result.checks)


def test_an_existing_data_file_is_refused_before_the_work_without_force(tmp_path):
    out = tmp_path / "m.onnx"
    (tmp_path / "m.onnx.data").write_bytes(b"precious")
    steps = []
    with pytest.raises(convspec.InputError, match=r"m\.onnx\.data: already exists"):
        export_onnx(None, SMALL, out, external_data_threshold=1, on_step=steps.append)
    assert steps == [] and (tmp_path / "m.onnx.data").read_bytes() == b"precious"


@pytest.mark.skipif(os.environ.get("CONVSPEC_LARGE_EXPORT") != "1", reason="a 2.3 GB export: set CONVSPEC_LARGE_EXPORT=1")
def test_a_model_past_two_gigabytes_exports_and_verifies(tmp_path):
    # four 12,000 x 12,000 1x1 convs: 576,000,000 floats, 2.3 GB, past protobuf's 2 GB message limit
    spec = """
name: wide
input: {channels: 12000, size: [2, 2]}
layers:
  - {name: mix, type: repeat, times: 4, layers: [{name: pw, type: pointwise, out: 12000, bias: false, act: relu}]}
"""
    out = tmp_path / "wide.onnx"
    result = export_onnx(None, spec, out)
    assert sorted(os.listdir(tmp_path)) == ["wide.onnx", "wide.onnx.data"]
    assert (tmp_path / "wide.onnx.data").stat().st_size >= 2_304_000_000
    assert all(check.ok for check in result.checks)


# ---------------------------------------------------------------- killed runs


def test_staging_left_by_a_killed_run_is_removed_by_the_next_write(tmp_path):
    with staging(tmp_path / "other.onnx") as live:  # a live run's folder: its lock is held
        (live / "model.unverified").write_bytes(b"y")
        stale = tmp_path / f".m.onnx{STAGING_MARK}dead"
        stale.mkdir()
        (stale / "lock").write_bytes(b"")  # its process is gone: nobody holds the lock
        (stale / "model.unverified").write_bytes(b"x" * 100)
        assert remove_stale_staging(tmp_path) == [stale]
        assert (live / "model.unverified").exists()
    assert _staging_folders(tmp_path) == []


def test_a_just_made_staging_folder_without_its_lock_yet_is_left_alone(tmp_path):
    young = tmp_path / f".m.onnx{STAGING_MARK}young"
    young.mkdir()
    assert remove_stale_staging(tmp_path) == []
    old = time.time() - 3600
    os.utime(young, (old, old))
    assert remove_stale_staging(tmp_path) == [young]


def _start_export(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    out = tmp_path / "net.onnx"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "convspec", "export", str(ROOT / "specs" / "resnet_small.yaml"), "-o", str(out)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 240
    while not _staging_folders(tmp_path):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the export ended before its staging folder appeared: {process.communicate()}")
        time.sleep(0.05)
    time.sleep(0.5)  # into the export's work
    return process, out


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_during_an_export_leaves_nothing_behind(tmp_path):
    process, out = _start_export(tmp_path)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=240)
    assert process.returncode == 128 + signal.SIGTERM
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigkill_leaves_nothing_that_looks_like_a_result_and_the_next_run_cleans_up(tmp_path):
    process, out = _start_export(tmp_path)
    process.kill()
    process.communicate(timeout=60)
    assert not out.exists()
    left = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert not [p for p in left if p.suffix in (".onnx", ".data") or p.name == out.name], left
    export_onnx(None, SMALL, tmp_path / "next.onnx")
    assert os.listdir(tmp_path) == ["next.onnx"]

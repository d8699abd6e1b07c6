"""The inputs an int8 model is calibrated on, and its accuracy measured on: a folder of samples, or draws.

A calibration folder holds `.npy` files (one sample, C x spatial, or a batch,
N x C x spatial, float; cast to float32) and image files (`.png`, `.jpg`, `.jpeg`,
`.bmp`, `.webp`: read with Pillow, converted to RGB for 3 channels or to grey for 1,
resized to the spec's input size with bilinear filtering, scaled to [0, 1]; any other
preprocessing, such as ImageNet's mean and std, belongs in `.npy` files). Files are
read in name order, so the set, and its hash, does not depend on the file system.
Without a folder, inputs are drawn from a standard normal at the spec's input shape
(seeded), which says how the graph computes, not how accurate it is on real data.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError, first_line

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
DRAWN_SAMPLES = 32  # enough for MinMax ranges of a random-weight network; a real set should be a few hundred
MAX_SAMPLES = 4096  # calibration holds every activation range in memory; more adds little


@dataclass(frozen=True)
class Calibration:
    """Calibration inputs: `samples`, each of shape (1, C, *spatial) float32; where they came from; their hash.

    `sha256` is over the samples' shapes and float32 bytes in order, so the same data gives
    the same hash whatever the files were called. `drawn` is true for random draws.
    """

    samples: tuple[np.ndarray, ...]
    source: str
    sha256: str
    drawn: bool

    @property
    def count(self) -> int:
        return len(self.samples)

    def batches(self, sizes: tuple[int, ...] = (1, 3, 8)) -> list[np.ndarray]:
        """The samples stacked into batches (NCHW) of the given sizes in turn, the last size repeating."""
        out, start, turn = [], 0, 0
        while start < len(self.samples):
            size = sizes[min(turn, len(sizes) - 1)]
            out.append(np.concatenate(self.samples[start : start + size]))
            start, turn = start + size, turn + 1
        return out


def _hash(samples: list[np.ndarray]) -> str:
    digest = hashlib.sha256()
    for sample in samples:
        digest.update(repr(sample.shape).encode())
        digest.update(np.ascontiguousarray(sample, dtype=np.float32).tobytes())
    return digest.hexdigest()


def drawn_calibration(sample_shape: tuple[int, ...], count: int = DRAWN_SAMPLES, seed: int = 0) -> Calibration:
    """`count` inputs of `sample_shape` (1, C, *spatial) from a standard normal, seeded."""
    generator = np.random.default_rng(seed)
    samples = [generator.standard_normal(sample_shape).astype(np.float32) for _ in range(count)]
    return Calibration(tuple(samples), f"{count} inputs drawn from a standard normal (seed {seed})", _hash(samples), True)


def _read_image(path: Path, channels: int, spatial: tuple[int, ...]) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError:
        raise InputError(f"{path}: reading images needs Pillow (pip install 'convspec[deploy]'), or give .npy files") from None
    if len(spatial) != 2 or channels not in (1, 3):
        raise InputError(f"{path}: images calibrate 2-D inputs of 1 or 3 channels; this spec takes {channels} x {spatial}: give .npy files")
    try:
        with Image.open(path) as image:
            image = image.convert("RGB" if channels == 3 else "L").resize((spatial[1], spatial[0]), Image.Resampling.BILINEAR)
            array = np.asarray(image, dtype=np.float32) / 255.0
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: not a readable image ({first_line(err, 200)})") from None
    array = array[None] if channels == 1 else array.transpose(2, 0, 1)  # HWC -> CHW
    return array[None]


def _read_npy(path: Path, sample_shape: tuple[int, ...]) -> list[np.ndarray]:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise InputError(f"{path}: not a readable .npy array ({first_line(err, 200)})") from None
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise InputError(f"{path}: holds {array.dtype} values; calibration takes numbers")
    rank, given = len(sample_shape), "x".join(map(str, array.shape))
    if array.ndim == rank - 1:
        array = array[None]
    wanted = "x".join("N" if d is None else str(d) for d in (None, *sample_shape[1:]))
    if array.ndim != rank or any(want is not None and got != want for got, want in zip(array.shape[1:], sample_shape[1:])):
        raise InputError(f"{path}: shape {given} does not fit the input {wanted} (or one sample of it)")
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise InputError(f"{path}: holds NaN or inf")
    return [array[i : i + 1] for i in range(array.shape[0])]


def load_calibration(directory: str | Path, sample_shape: tuple[int, ...]) -> Calibration:
    """The samples of a calibration folder, each (1, C, *spatial) float32, for an input of `sample_shape`.

    `sample_shape` is (1, C, *spatial); a spatial size of None (a dynamic-size spec) takes the
    first file's size, and every other file must match it. Raises InputError (not a folder,
    no usable file, a file of the wrong shape or type), naming the file.
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise InputError(f"--calibration {folder}: not a folder (give a folder of .npy or image files)")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in (".npy", *IMAGE_SUFFIXES))
    if not files:
        raise InputError(f"--calibration {folder}: holds no .npy or image ({', '.join(IMAGE_SUFFIXES)}) files")
    samples: list[np.ndarray] = []
    shape = tuple(sample_shape)
    for path in files:
        if path.suffix.lower() == ".npy":
            read = _read_npy(path, shape)
        else:
            if None in shape[2:]:
                raise InputError(f"{path}: images need the spec's input.size to be resized to; give .npy files or input.size")
            read = [_read_image(path, shape[1], shape[2:])]
        if None in shape[2:]:
            shape = read[0].shape  # a dynamic-size spec: the first sample fixes the size of the rest
        samples += read
        if len(samples) >= MAX_SAMPLES:
            samples = samples[:MAX_SAMPLES]
            break
    return Calibration(tuple(samples), f"{folder} ({len(samples)} samples from {len(files)} files)", _hash(samples), False)


__all__ = ["Calibration", "DRAWN_SAMPLES", "drawn_calibration", "load_calibration"]

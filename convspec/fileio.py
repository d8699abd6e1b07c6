"""Atomic file output: a failed write leaves nothing behind and never damages an existing file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from .errors import InputError


def check_writable(path: str | Path, force: bool, protect: str | Path | None = None) -> Path:
    """Refuse, before any work is done: replacing a file without `force`, writing over `protect`
    (the spec being read), a device or other special file, or into a missing directory or one
    that cannot be written (tried with a temporary file, which is how the write goes too:
    permission bits alone do not tell, for root or on a read-only file system)."""
    if isinstance(path, bool) or not isinstance(path, (str, os.PathLike)) or not str(path) or "\0" in str(path):
        raise InputError(f"the output must be a file path (a str or a pathlib.Path), not {path!r:.60}")
    path = Path(path)
    try:
        return _check_writable(path, force, protect)
    except OSError as err:  # a name too long, a loop of links, ...: what the system says, as an I/O error
        raise InputError(f"{str(path)[:200]}: cannot write: {err.strerror or err}") from None


def _check_writable(path: Path, force: bool, protect: str | Path | None) -> Path:
    if path.is_dir():
        raise InputError(f"{path}: is a directory; give a file name")
    if protect is not None and path.exists() and Path(protect).exists() and path.resolve() == Path(protect).resolve():
        raise InputError(f"{path}: is the spec itself; convspec never writes over a spec, give another output name")
    if path.exists() and not path.is_file():
        raise InputError(f"{path}: not a regular file; give a file name to write")
    if path.exists() and not force:
        raise InputError(f"{path}: already exists; pass --force to replace it")
    if not path.parent.exists():
        raise InputError(f"{path.parent}: no such directory")
    if not path.parent.is_dir():
        raise InputError(f"{path.parent}: not a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise InputError(f"{path}: cannot write into {path.parent}: {err.strerror or err}") from None
    os.close(fd)
    os.unlink(probe)
    return path


def check_readable(path: str | Path) -> Path:
    """Refuse, before any work is done, an input file that is missing or not a regular file
    (a directory, or a device or FIFO whose read may never end)."""
    if isinstance(path, bool) or not isinstance(path, (str, os.PathLike)) or not str(path) or "\0" in str(path):
        raise InputError(f"the input must be a file path (a str or a pathlib.Path), not {path!r:.60}")
    path = Path(path)
    try:
        if not path.exists():
            raise InputError(f"{path}: no such file")
        if not path.is_file():
            raise InputError(f"{path}: not a regular file")
    except OSError as err:  # a name too long, a loop of links, ...
        raise InputError(f"{str(path)[:200]}: cannot read: {err.strerror or err}") from None
    return path


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object], *, force: bool = False) -> Path:
    """Write through `write(file)` into a temporary file beside `path`, then rename it into place."""
    path = check_writable(path, force)
    try:
        fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise InputError(f"{path}: cannot write: {err.strerror or err}") from None
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temp_name, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode of a new file
        os.replace(temp_name, path)
    except BaseException as err:
        with _quiet():
            os.unlink(temp_name)
        if isinstance(err, OSError):
            raise InputError(f"{path}: cannot write: {err.strerror or err}") from None
        raise
    return path


def _umask() -> int:
    """The process's umask, read without changing it (Linux's /proc/self/status; else 0o022, the usual one)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def atomic_write_text(path: str | Path, text: str, *, force: bool = False) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")), force=force)


class _quiet:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return True

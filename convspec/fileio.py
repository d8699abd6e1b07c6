"""Atomic file output: a failed write leaves nothing behind and never damages an existing file.

Every write goes through a private staging folder beside its destination (`staging`): the
file is written and checked there, then published (`publish`). Without `force` publishing
never replaces a file, even one another process wrote meanwhile (a hard link, or an
exclusive create where the file system has no links), so of two writers exactly one wins.
A staging folder holds a lock while its process lives; one whose lock is free was left by a
killed process and is removed by the next write into that folder. Nothing in it is named
like a result.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

try:  # POSIX: a staging folder's lock lives as long as its process (the kernel drops it on kill)
    import fcntl
except ImportError:  # pragma: no cover - Windows: no stale-staging cleanup
    fcntl = None

from .errors import InputError


API_FORCE = "force=True"  # how a Python caller asks to replace a file; the CLI passes "--force"


def check_writable(path: str | Path, force: bool, protect: str | Path | None = None, *, force_hint: str = API_FORCE) -> Path:
    """Refuse, before any work is done: replacing a file without `force`, writing over `protect`
    (the spec being read), a device or other special file, or into a missing directory or one
    that cannot be written (tried with a temporary file, which is how the write goes too:
    permission bits alone do not tell, for root or on a read-only file system).

    The refusal to replace a file tells the caller to pass `force_hint` (`force=True` in
    Python; the CLI passes `--force`). Raises InputError."""
    if isinstance(path, bool) or not isinstance(path, (str, os.PathLike)) or not str(path) or "\0" in str(path):
        raise InputError(f"the output must be a file path (a str or a pathlib.Path), not {path!r:.60}")
    path = Path(path)
    try:
        return _check_writable(path, force, protect, force_hint)
    except OSError as err:  # a name too long, a loop of links, ...: what the system says, as an I/O error
        raise InputError(f"{str(path)[:200]}: cannot write: {err.strerror or err}") from None


def _check_writable(path: Path, force: bool, protect: str | Path | None, force_hint: str) -> Path:
    if path.is_dir():
        raise InputError(f"{path}: is a directory; give a file name")
    if protect is not None and path.exists() and Path(protect).exists() and path.resolve() == Path(protect).resolve():
        raise InputError(f"{path}: is the spec itself; convspec never writes over a spec, give another output name")
    if path.is_symlink() and not path.exists() and not force:  # a dangling link is a name in use all the same
        raise InputError(f"{path}: is a symbolic link to {os.readlink(path)!r}, which is missing; pass {force_hint} to replace the link")
    if path.exists() and not path.is_file():
        raise InputError(f"{path}: not a regular file; give a file name to write")
    if path.exists() and not force:
        raise InputError(f"{path}: already exists; pass {force_hint} to replace it")
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


STAGING_MARK = ".convspec-staging-"  # in the name of every staging folder: `.NAME.convspec-staging-XXXX`
_LOCK = "lock"
_YOUNG = 60.0  # seconds: a staging folder without its lock yet may be one another process is making


@contextlib.contextmanager
def staging(destination: Path) -> Iterator[Path]:
    """A new private folder beside `destination`, locked while this process lives; removed on exit.

    Staging folders left by killed processes beside `destination` are removed first. Raises
    InputError when the folder cannot be made (a read-only or full file system).
    """
    remove_stale_staging(destination.parent)
    try:
        folder = Path(tempfile.mkdtemp(prefix=f".{destination.name}{STAGING_MARK}", dir=destination.parent))
    except OSError as err:
        raise InputError(f"{destination}: cannot write into {destination.parent}: {err.strerror or err}") from None
    lock = _take_lock(folder, create=True)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if lock is not None:
            os.close(lock)


def remove_stale_staging(directory: Path) -> list[Path]:
    """Remove the staging folders in `directory` whose process is gone (their lock is free); return them."""
    if fcntl is None:
        return []
    removed = []
    try:
        candidates = [entry for entry in directory.iterdir() if STAGING_MARK in entry.name and entry.name.startswith(".")]
    except OSError:
        return []
    for folder in candidates:
        try:
            if not folder.is_dir() or folder.is_symlink():
                continue
            if not (folder / _LOCK).exists() and time.time() - folder.stat().st_mtime < _YOUNG:
                continue  # just made: its process may not have locked it yet
            lock = _take_lock(folder, create=False)
        except OSError:
            continue
        if lock is None and (folder / _LOCK).exists():
            continue  # held: a live process is writing there
        shutil.rmtree(folder, ignore_errors=True)
        if lock is not None:
            os.close(lock)
        removed.append(folder)
    return removed


def _take_lock(folder: Path, create: bool) -> int | None:
    """An exclusive lock on `folder`'s lock file, as an open descriptor; None where it is held or missing."""
    if fcntl is None:
        return None
    try:
        fd = os.open(folder / _LOCK, os.O_RDWR | (os.O_CREAT if create else 0), 0o600)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def publish(staged: Path, destination: Path, force: bool, force_hint: str = f"--force ({API_FORCE} from Python)") -> None:
    """Move the finished file `staged` to `destination`, with the usual mode of a new file.

    With `force` an existing file is replaced (atomically). Without it the name is taken only
    if free at this instant (a hard link, or an exclusive create where links are not
    supported): a file that appeared since the command started is kept, and InputError says so.
    """
    os.chmod(staged, 0o666 & ~_umask())  # files made in a private folder start as 0600
    if force:
        os.replace(staged, destination)
        return
    try:
        os.link(staged, destination)
    except FileExistsError:
        raise InputError(f"{destination}: already exists (written while this command ran); pass {force_hint} to replace it") from None
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        _claim(destination, force_hint)  # no hard links on this file system: claim the name, then move onto the claim
        os.replace(staged, destination)
        return
    os.unlink(staged)


def _claim(destination: Path, force_hint: str) -> None:
    try:
        os.close(os.open(destination, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        raise InputError(f"{destination}: already exists (written while this command ran); pass {force_hint} to replace it") from None


def check_free_space(directory: Path, needed: int, what: str) -> None:
    """Refuse, before the work, to write about `needed` bytes where fewer are free (InputError)."""
    try:
        free = shutil.disk_usage(directory).free
    except OSError:
        return  # the write itself will say
    if free < needed:
        raise InputError(f"{directory}: {what} needs about {needed / 1e6:,.1f} MB, and only {free / 1e6:,.1f} MB are free")


def atomic_write(
    path: str | Path, write: Callable[[BinaryIO], object], *, force: bool = False, force_hint: str = API_FORCE
) -> Path:
    """Write through `write(file)` in a staging folder beside `path`, then publish it there (`publish`)."""
    path = check_writable(path, force, force_hint=force_hint)
    try:
        with staging(path) as folder:
            partial = folder / "partial"
            with open(partial, "wb") as file:
                write(file)
                file.flush()
                os.fsync(file.fileno())
            publish(partial, path, force, force_hint)
    except OSError as err:
        raise InputError(f"{path}: cannot write: {err.strerror or err}") from None
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


def atomic_write_text(path: str | Path, text: str, *, force: bool = False, force_hint: str = API_FORCE) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")), force=force, force_hint=force_hint)

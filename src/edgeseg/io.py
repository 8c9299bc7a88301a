"""Atomic file writes: outputs appear whole or not at all, and what a killed run left half-made is cleared.

Temporary names carry the writing process's id, so a later run can tell a dead process's leftovers
(kill -9 allows no clean-up) from a live writer's work in progress. A folder that a process writes for a
long time (a training run, a labelled dataset) is held by one process at a time (:func:`folder_lock`).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from edgeseg.errors import EdgesegError

_UMASK = os.umask(0)
os.umask(_UMASK)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale(folder: str | Path, prefix: str, suffix: str = "") -> list[Path]:
    """Remove the temporary files and folders this module names ``{prefix}{pid}.{tag}{suffix}`` or
    ``{prefix}{pid}-{tag}`` in ``folder`` whose process is gone; return them."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)[.-]\w+" + re.escape(suffix) + "$")
    removed = []
    for path in Path(folder).glob(f"{prefix}*{suffix}"):
        match = pattern.match(path.name)
        if match and int(match[1]) != os.getpid() and not _alive(int(match[1])):
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def valid_utf8(path: str | Path) -> bool:
    """Whether a file name is valid UTF-8: Linux allows any bytes, and some native libraries (OpenCV's
    writers, onnxruntime) crash or refuse on names that are not."""
    try:
        str(path).encode()
        return True
    except UnicodeEncodeError:
        return False


def temp_prefix(path: str | Path) -> str:
    """Prefix of this process's temporary files beside ``path``: hidden, named after it and the pid."""
    return f".{Path(path).stem}.{os.getpid()}."


@contextmanager
def temporary_directory(kind: str) -> Iterator[Path]:
    """A scratch folder in the system temp dir (``edgeseg-{kind}-{pid}-...``), after removing dead runs' ones."""
    remove_stale(tempfile.gettempdir(), f"edgeseg-{kind}-")
    with tempfile.TemporaryDirectory(prefix=f"edgeseg-{kind}-{os.getpid()}-") as tmp:
        yield Path(tmp)


def check_writable_dir(folder: str | Path) -> Path:
    """Check, before any long work, that ``folder`` can be created if missing and written in.

    Leaves nothing behind: it writes a temporary file in the folder, or in its nearest existing parent.
    Raises OSError with a message that names the folder and what is wrong.
    """
    folder = Path(folder)
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        raise NotADirectoryError(f"{existing} is a file, not a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".edgeseg-check-"):
            pass
    except OSError as exc:
        raise OSError(f"cannot write to {folder}: {exc.strerror or exc}") from None
    return folder


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file a normal mode
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


class FolderInUse(EdgesegError, FileExistsError):
    """Another process writes into the same folder."""


@contextmanager
def folder_lock(folder: str | Path, work: str) -> Iterator[None]:
    """Hold ``folder`` for this process's ``work`` ("training"): a second process is refused at once, naming
    the first's pid. The lock (``.FOLDER.lock`` beside the folder, which may not exist yet) is the kernel's, so a
    process killed with -9 leaves no stale lock behind."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    path = folder.parent / f".{folder.name}.lock"
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            raise FolderInUse(f"{folder} is in use by another {work} (pid {holder}); wait for it to end, or choose "
                              "another --out") from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        try:
            yield
        finally:
            path.unlink(missing_ok=True)

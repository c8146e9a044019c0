"""Writing files atomically, cleaning up after crashed writers, copies and content hashes — **no torch**.

Every file the project writes goes through `atomic_writer` (or `atomic_write` for bytes in memory), all but the
append-only metrics log, a run's lock file (training/lock.py: the lock belongs to the file, which a rename replaces)
and scratch files inside temporary folders: readers see the old file or the new one, never part of one. A writer
killed mid-write leaves its hidden temp file behind; `remove_stale_temps` deletes such leftovers and is called when
the process that owns a folder starts.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
from collections.abc import Container, Iterator
from pathlib import Path
from typing import BinaryIO

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

# `.{target name}.{12 hex digits}.tmp`: hidden, and never a name the project reads as data.
TEMP_NAME = re.compile(r"\.(?P<target>.+)\.[0-9a-f]{12}\.tmp")


@contextlib.contextmanager
def atomic_writer(path: Path) -> Iterator[BinaryIO]:
    """Yield a binary handle whose bytes replace `path` all at once when the block ends without an exception.

    The data goes to a temp file in `path`'s folder (so the rename is atomic), is flushed and fsynced, renamed
    over `path`, and the folder is fsynced: after a power cut `path` holds the old or the new bytes. The file gets
    the permissions of any new file (0o666 less the umask: 0644 under umask 022). On any exception, Ctrl-C
    included, the temp file is removed and `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = _create_temp(path)
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
            if fcntl is not None:  # renamed while still locked, so remove_stale_temps cannot take it first
                os.replace(tmp, path)
        if fcntl is None:  # Windows renames only closed files
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data` atomically (see `atomic_writer`)."""
    with atomic_writer(path) as handle:
        handle.write(data)


def atomic_copy(source: Path, target: Path) -> None:
    """Copy `source` to `target` atomically (see `atomic_writer`)."""
    with open(source, "rb") as src, atomic_writer(target) as out:
        shutil.copyfileobj(src, out, 1 << 20)


def remove_stale_temps(
    folder: Path, pattern: re.Pattern[str] = TEMP_NAME, *, targets: Container[str] | None = None
) -> list[Path]:
    """Delete the temp files that killed writers left in `folder` (not its sub-folders); returns those deleted.

    Call it when the process that owns `folder` starts (a training run its run folder, `translate apply` its output
    folders). Only files whose name full-matches `pattern` (default: `atomic_writer`'s temps) are candidates; with
    `targets`, only temps of those target names (the pattern's `target` group). A temp that a live writer still
    has open is kept: the writer holds an flock on it (POSIX), and Windows refuses to delete an open file.
    """
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return []
    removed = []
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None or (targets is not None and match["target"] not in targets):
            continue
        if entry.is_file(follow_symlinks=False) and _remove_unless_held(Path(entry.path)):
            removed.append(Path(entry.path))
    return removed


def sha256_file(path: Path) -> str:
    """The file's sha256 (hex), read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _create_temp(path: Path) -> tuple[BinaryIO, Path]:
    """A new temp file beside `path`, open for writing and locked against `remove_stale_temps`."""
    while True:
        tmp = path.with_name(f".{path.name}.{os.urandom(6).hex()}.tmp")
        # Mode 0o666 lets the kernel apply the umask (and any default ACL) as for any new file, with no need to
        # read the umask; mkstemp would make it 0600.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        handle = os.fdopen(fd, "wb")
        _lock(fd, wait=True)
        if os.path.lexists(tmp):
            return handle, tmp
        # remove_stale_temps deleted it between its creation and the lock: this write would be lost, so start over.
        handle.close()


def _remove_unless_held(path: Path) -> bool:
    try:
        if fcntl is None:
            path.unlink()  # fails while a writer has the file open
            return True
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            if not _lock(fd, wait=False):
                return False
            path.unlink()  # under the lock: a writer that locks after this sees its temp gone and starts over
            return True
        finally:
            os.close(fd)
    except OSError:  # gone meanwhile (its writer finished), or not ours to delete
        return False


def _lock(fd: int, *, wait: bool) -> bool:
    """An exclusive flock on `fd`; False when another open file holds one (only without `wait`)."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:  # a file system without locks (some network and FUSE mounts): the folder's owner alone decides
        pass
    return True


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not possible on every platform (e.g. Windows), where it is skipped.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)

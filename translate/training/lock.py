"""One trainer per run folder: an exclusive OS lock on `RUN/.lock` for as long as training runs — no torch.

The lock is the operating system's (`flock` on POSIX, `msvcrt.locking` on Windows), not the file's existence: the
OS drops it when its process ends however it ends (kill -9 and power cuts included), so a `.lock` file that a dead
trainer left behind is simply taken over. The file's content, the holder's PID, host and start time, only serves
to name the holder in the error that the next trainer gets.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from translate.errors import RunLockedError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt

LOCK_NAME = ".lock"
# Windows locks are mandatory: another process cannot read a locked byte. One byte far past the holder's record is
# locked instead, so the next trainer can still read who holds it (locking past the end of a file is allowed).
_WINDOWS_LOCK_OFFSET = 1 << 20


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold `run_dir`'s lock for the block (creating the folder); RunLockedError at once if another process has it.

    On exit, however the block ends, the lock file is removed and so is the folder when the lock made it and nothing
    else was written into it (a `--resume` of a mistyped name leaves nothing behind).
    """
    run_dir = Path(run_dir)
    # The folders the lock creates, deepest first (OUT/NAME, and OUT itself when new): removed again if left empty.
    created = [folder for folder in (run_dir, *run_dir.parents) if not folder.exists()]
    path = run_dir / LOCK_NAME
    fd = _acquire(path, run_dir)
    try:
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": datetime.now().astimezone().isoformat(sep=" ", timespec="seconds"),
        }
        # Written in place, not through files.atomic_writer: a rename would put a new, unlocked file at the path.
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, (json.dumps(record) + "\n").encode())
        yield
    finally:
        _release(fd, path)
        for folder in created:
            try:
                folder.rmdir()
            except OSError:  # not empty: the run wrote into it (and so into every folder above it)
                break


def _acquire(path: Path, run_dir: Path) -> int:
    """An open, locked descriptor of the file at `path`."""
    while True:
        path.parent.mkdir(parents=True, exist_ok=True)  # again on each try: a holder may remove the folder it made
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o666)
        except FileNotFoundError:
            continue
        try:
            if not _try_lock(fd):
                raise RunLockedError(_busy_message(run_dir, _read_holder(fd)))
            # The previous holder removes the file just before it lets go, so the file locked here may be one that
            # no longer has a name, and another trainer could lock a new one at the path: then start over.
            if _same_file(fd, path):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def _try_lock(fd: int) -> bool:
    """Lock `fd` without waiting; False when another process holds the lock."""
    if fcntl is None:
        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:  # a file system without locks (some network and FUSE mounts): nothing to guard the folder with
        pass
    return True


def _release(fd: int, path: Path) -> None:
    if fcntl is None:
        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        with contextlib.suppress(OSError):
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        os.close(fd)
        # Windows deletes only files that nobody has open; if the next trainer has opened it, it now holds it.
        with contextlib.suppress(OSError):
            path.unlink()
        return
    path.unlink(missing_ok=True)  # while still locked: a trainer that locks the old file next sees it gone
    os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino)


def _read_holder(fd: int) -> dict[str, Any] | None:
    """The holder's record, or None while it has not written it yet (it writes right after locking)."""
    os.lseek(fd, 0, os.SEEK_SET)
    try:
        record = json.loads(os.read(fd, 4096).decode())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _busy_message(run_dir: Path, holder: dict[str, Any] | None) -> str:
    if holder is None:
        who = "another process"
    else:
        who = f"process {holder.get('pid', '?')} on host {holder.get('host', '?')} (since {holder.get('since', '?')})"
    return f"{run_dir} is being trained by {who}; wait for it, or pick another --name"

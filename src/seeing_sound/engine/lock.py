"""One run per output root: an advisory, re-entrant lock on ``ROOT/_stages/.lock``.

Two processes writing the same shards would delete each other's scratch folders; the second
run must stop at once with one clear line instead. The lock is ``fcntl.flock`` on a lock file
(released by the kernel when the holder dies, so a killed run never leaves a stale lock) and
re-entrant within one process, so a command that runs several stages on one root (``sonify``)
can hold it across all of them while each :func:`~seeing_sound.engine.run_stage` takes it too.

Shard slices (``shard_slice=(I, N)``) may run at the same time, one per machine or process:
a slice holds ``.lock`` *shared* and its own ``.lock.slice-I-of-N`` exclusively, so slices
coexist, the same slice twice is refused, and a whole run (which holds ``.lock`` exclusively)
and slices exclude each other wherever ``flock`` is seen by all of them (one host; NFSv4,
where Linux maps ``flock`` to NFS byte-range locks). Every attempt is non-blocking, so no
combination can deadlock; on a file system whose locks are host-local, slices on other
hosts are simply not seen (the shard layout still keeps them apart; see docs/scale.md).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from seeing_sound.errors import SeeingSoundError

LOCK_REL = "_stages/.lock"


class OutputLockedError(SeeingSoundError):
    """Another process holds the output root."""


_held: dict[str, list] = {}  # resolved root -> [fd, depth]
_guard = threading.Lock()


def check_output_root(root: Path) -> None:
    """Refuse an output root that is a file or sits under a file (one line, no raw errno)."""
    for p in (root, *root.parents):
        if p.exists():
            if not p.is_dir():
                where = "is a file" if p == root else f"is under {p}, which is a file"
                raise SeeingSoundError(f"output folder {root} {where}; pick another output folder")
            return


@contextlib.contextmanager
def output_lock(root: str | os.PathLike, shard_slice: tuple[int, int] | None = None) -> Iterator[Path]:
    """Hold the lock on ``root`` for the ``with`` block (creates ``root`` if needed).

    Without ``shard_slice`` the lock is exclusive. With ``shard_slice=(I, N)`` it is the
    slice's lock: other slices may run beside it, a whole run or the same slice may not.
    Raises :class:`OutputLockedError` naming the holder's PID if another process has it.
    Nested use in one process (any thread) only counts depth.
    """
    root = Path(root)
    check_output_root(root)
    path = root / LOCK_REL
    path.parent.mkdir(parents=True, exist_ok=True)
    key = str(path.resolve()) + ("" if shard_slice is None else f"#slice-{shard_slice[0]}-of-{shard_slice[1]}")
    with _guard:
        entry = _held.get(key)
        if entry is not None and entry[2] == os.getpid():
            entry[1] += 1
        else:
            if shard_slice is None:
                fds = [_acquire(path, root)]
            else:
                fds = [_acquire(path, root, shared=True)]
                try:
                    fds.append(_acquire(path.with_name(f".lock.slice-{shard_slice[0]}-of-{shard_slice[1]}"), root))
                except BaseException:
                    os.close(fds[0])
                    raise
            entry = _held[key] = [fds, 1, os.getpid()]
    try:
        yield root
    finally:
        with _guard:
            entry[1] -= 1
            if entry[1] == 0:
                _held.pop(key, None)
                for fd in entry[0]:
                    os.close(fd)  # releases the flock


def _acquire(path: Path, root: Path, *, shared: bool = False) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        import fcntl
    except ImportError:  # no flock (Windows): runs are not guarded against each other
        return fd
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        finally:
            os.close(fd)
        if shared:
            what = f"another seeing-sound run (PID {holder})"
        elif path.name == ".lock":
            what = f"another seeing-sound run or its shard slices (PID {holder})"
        else:
            what = f"another run of the same shard slice (PID {holder})"
        raise OutputLockedError(
            f"{root} is in use by {what}; wait for it to finish or pick another output folder"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    if not shared:  # a shared holder leaves the exclusive holder's PID alone
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd

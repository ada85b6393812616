"""Worker processes of the local engine: how they start, die with their parent, and are torn down."""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import signal
import sys
import threading
import time


def mp_context():
    """fork where it is safe (Linux, torch not loaded: starts in ms), else spawn.

    A forked child of a process that already runs torch's thread pools can deadlock,
    so model stages (which import torch) get fresh spawned interpreters.
    """
    if sys.platform.startswith("linux") and "torch" not in sys.modules:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def worker_init(parent_pid: int) -> None:
    """Worker set-up: die with the parent, leave Ctrl-C to the parent.

    A worker blocked on its task pipe never notices that the parent was SIGKILLed (it holds the
    pipe's other end itself), so it would wait forever holding its memory. On Linux the kernel
    kills it (PR_SET_PDEATHSIG); everywhere a daemon thread watches the parent's PID as well.
    SIGINT is ignored here: the parent tears the pool down, and shards without a done-marker
    are simply redone by the next run.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # no libc prctl: the watcher below still works
            pass
    if os.getppid() != parent_pid:  # the parent died before this line
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="parent-watch", daemon=True).start()


def _watch_parent(parent_pid: int, interval_s: float = 0.5) -> None:
    while True:
        time.sleep(interval_s)
        if os.getppid() != parent_pid:
            os._exit(1)


def tear_down(ex: cf.Executor, futures, own: bool) -> None:
    """Stop at once: drop queued shards and, for our own pool, kill the running workers.

    A killed shard left no done-marker, so the next run redoes exactly it; finished shards stay done.
    """
    for fut in futures:
        fut.cancel()
    if not own:
        return
    procs = list((getattr(ex, "_processes", None) or {}).values()) if isinstance(ex, cf.ProcessPoolExecutor) else []
    for p in procs:
        p.kill()
    ex.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        p.join(timeout=2)

"""One writer at a time: the workspace lock every command and task that changes the workspace
holds while it runs.

The lock is `flock` on `.run/workspace.lock` in the workspace, so the operating system releases
it when its holder exits or is killed: a crash never leaves a stale lock. The holder writes who
it is (command, pid, host, since) into the file, which is what a waiting writer reports. Readers
(`catalog`, `model list|show`, `serve`, the Airflow view) never take it: every file a writer
changes is replaced by a rename, so a reader sees the old state or the new one.

Taking the lock also removes what killed writers left behind: temporary files (`.<name>.*.tmp`)
that never got renamed into place and the staging folders of an interrupted restore.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from powerops.core.config import Params
from powerops.core.errors import BusyError

log = logging.getLogger(__name__)

LOCK_FILE = "workspace.lock"  # in the workspace's .run/ folder
_POLL_SECONDS = 0.2
# Folders whose files only writers (holders of the lock) create: a temporary file there while
# the lock is free was left by a writer that died. Not the prediction log: `serve` writes it.
_WRITER_FOLDERS = (
    "raw",
    "validation",
    "quarantine",
    "dataset",
    "test_set",
    "training",
    "forecasts",
    "monitor_reports",
    "catalog",
    "registry",
)


class WorkspaceBusyError(BusyError):
    """Another writer held the workspace lock for longer than `state.lock_wait_seconds`."""


# Re-entrant within a thread: an Airflow task run in-process by `dag.test()` may call a stage
# that is also a CLI command; the outer holder keeps the lock.
_held = threading.local()


def lock_path(params: Params) -> Path:
    return params.run_dir / LOCK_FILE


def holder(params: Params) -> str:
    """Who holds (or last held) the lock, in words; read without taking it."""
    try:
        info = json.loads(lock_path(params).read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "another process"
    return (
        f"`{info.get('command', '?')}` (pid {info.get('pid', '?')} on {info.get('host', '?')}, "
        f"since {info.get('since', '?')})"
    )


@contextmanager
def workspace_lock(params: Params, command: str, wait: float | None = None) -> Iterator[None]:
    """Hold the workspace's exclusive lock for the block; wait up to `wait` seconds (default
    `state.lock_wait_seconds`) for another writer, then raise `WorkspaceBusyError`."""
    depth = getattr(_held, "depth", {})
    _held.depth = depth
    key = str(lock_path(params).resolve())
    if depth.get(key):
        depth[key] += 1
        try:
            yield
        finally:
            depth[key] -= 1
        return
    handle = _acquire(params, command, params.state.lock_wait_seconds if wait is None else wait)
    depth[key] = 1
    try:
        remove_leftovers(params)
        yield
    finally:
        depth[key] = 0
        handle.truncate(0)
        handle.close()  # closing the descriptor releases the lock


def _acquire(params: Params, command: str, wait: float) -> IO[str]:
    path = lock_path(params)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Held open for as long as the lock is; "a+" never truncates the holder's record.
    handle = open(path, "a+")  # noqa: SIM115
    deadline = time.monotonic() + wait
    announced = False
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                who = holder(params)
                handle.close()
                raise WorkspaceBusyError(
                    f"workspace {params.root} is busy: {who} is changing it; waited {wait:.0f} s "
                    "(state.lock_wait_seconds). Try again when it has finished"
                ) from None
            if not announced:
                log.warning("waiting for the workspace lock: %s holds it", holder(params))
                announced = True
            time.sleep(_POLL_SECONDS)
    record = {
        "command": command,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    handle.truncate(0)
    handle.write(json.dumps(record))
    handle.flush()
    return handle


def remove_leftovers(params: Params) -> list[Path]:
    """Delete the temporary files and restore staging folders killed writers left behind.

    Only safe while holding the lock: then no live writer owns any of them.
    """
    removed = []
    for key in _WRITER_FOLDERS:
        folder = params.resolve(getattr(params.paths, key))
        if not folder.parent.is_dir():
            continue
        for path in folder.rglob(".*.tmp") if folder.is_dir() else ():
            path.unlink(missing_ok=True)
            removed.append(path)
        for suffix in (".restore", ".old"):
            staging = folder.with_name(f".{folder.name}{suffix}")
            if staging.exists():
                shutil.rmtree(staging)
                removed.append(staging)
    if removed:
        log.info("removed %d file(s) left by an interrupted writer", len(removed))
    return removed

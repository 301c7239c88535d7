"""The cluster profile's shared state: what one Airflow task leaves for the next, on any host.

In the embedded profile every task runs in one workspace and reads what the task before it
wrote there. In the cluster profile (`state.shared: true`) each Celery worker has a workspace
of its own, as it would on another host, and no disk is shared. So a task:

1. **pulls**: brings each shared folder of its workspace to the *head*, the newest state
   recorded on the default DVC remote, restoring from DVC whatever differs;
2. runs the same stage code as ever;
3. **pushes**: snapshots the shared folders into DVC, pushes what changed, and records the
   next head. A task that fails pushes nothing, so its half-written files never leave its
   workspace, and the next pull there replaces them.

A head is one small JSON file per generation in `powerops-state/` at the remote's root
(`00000001.json`, ...), naming one DVC directory snapshot per folder. Files are never
replaced: the next generation is a new file, and the history stays readable. A task that finds
the head moved while it ran (another writer, which the Airflow pool `powerops_workspace`
should prevent for tasks, but not for commands) refuses to record its state and fails, so a
retry starts from the new head. Two writers that both find the head unmoved race to create
the same next file, which is a compare-and-set (`dvcstore.create_remote_file`): one wins, the
other fails the same way.

The dataset's working copy (`paths.dataset`) is not in the head: every dataset version is a DVC
snapshot already, which the catalog names and `publish` and training restore by hash. MLflow
holds the models (the tracking server, in the cluster profile); XCom carries only references.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from powerops.core.config import Params
from powerops.core.errors import PowerOpsError
from powerops.data import dvcstore

log = logging.getLogger(__name__)

HEAD_FOLDER = "powerops-state"
# The folders (keys of `paths`) a task may leave for a later task: raw batches, verdicts,
# quarantine, the catalog, the pinned test set, the trainings' steps, the alias log, and
# power_score's forecasts and power_monitor's reports (its SLI events feed the error budget).
SHARED = (
    "raw",
    "validation",
    "quarantine",
    "catalog",
    "test_set",
    "training",
    "registry",
    "forecasts",
    "monitor_reports",
)


class SharedStateError(PowerOpsError):
    """The shared state could not be read or recorded, or moved under a running task."""


@dataclass(frozen=True)
class Head:
    """One generation of the shared state: a DVC directory snapshot per shared folder."""

    generation: int = 0
    snapshots: dict[str, str] = field(default_factory=dict)  # folder key -> `<md5>.dir`
    at: str = ""
    by: str = ""


def _name(generation: int) -> str:
    return f"{generation:08d}.json"


def head(params: Params) -> Head:
    """The newest recorded state (generation 0 with no snapshots before the first push)."""
    found_file = dvcstore.newest_remote_file(params.root, HEAD_FOLDER)
    if found_file is None:
        return Head()
    newest, data = found_file
    try:
        found = Head(**json.loads(data))
    except (TypeError, ValueError) as exc:
        raise SharedStateError(
            f"{HEAD_FOLDER}/{newest} on the DVC remote is unreadable: {exc}"
        ) from None
    if _name(found.generation) != newest:
        raise SharedStateError(f"{HEAD_FOLDER}/{newest} records generation {found.generation}")
    return found


def _directory(params: Params, key: str) -> Path:
    return params.resolve(getattr(params.paths, key))


def _local(params: Params) -> dict[str, str]:
    """This workspace's shared folders as DVC snapshots; an empty or absent folder has none."""
    snapshots = {}
    for key in SHARED:
        directory = _directory(params, key)
        if directory.is_dir() and any(path.is_file() for path in directory.rglob("*")):
            snapshots[key] = dvcstore.snapshot(params.root, directory)
    return snapshots


def pull(params: Params) -> Head:
    """Bring the shared folders to the head; return it. Before any push this changes nothing."""
    current = head(params)
    if current.generation == 0:
        return current
    local = _local(params)
    for key in SHARED:
        wanted, held = current.snapshots.get(key), local.get(key)
        if wanted == held:
            continue
        directory = _directory(params, key)
        if wanted is None:
            shutil.rmtree(directory)
        else:
            dvcstore.restore(params.root, wanted, directory)
        log.info("%s: %s -> %s (generation %d)", key, held, wanted, current.generation)
    return current


def push(params: Params, base: Head, by: str) -> Head:
    """Record this workspace's shared folders as the next head, if they changed since `base`."""
    local = _local(params)
    if local == base.snapshots:
        return base
    for key, snapshot in local.items():
        if base.snapshots.get(key) != snapshot:
            dvcstore.push(params.root, snapshot)
    moved = head(params)
    if moved.generation != base.generation:
        raise SharedStateError(
            f"the shared state moved from generation {base.generation} to {moved.generation} "
            f"({moved.by}, {moved.at}) while this task ran; its changes are not recorded. "
            "Tasks that change the workspace must share the `powerops_workspace` pool"
        )
    new = Head(base.generation + 1, local, datetime.now(UTC).isoformat(timespec="seconds"), by)
    data = json.dumps(asdict(new), indent=2, sort_keys=True).encode()
    if not dvcstore.create_remote_file(params.root, HEAD_FOLDER, _name(new.generation), data):
        raise SharedStateError(
            f"generation {new.generation} was recorded by another writer meanwhile; "
            "this task's changes are not recorded"
        )
    changed = sorted(key for key in SHARED if local.get(key) != base.snapshots.get(key))
    log.info("shared state generation %d by %s: %s changed", new.generation, by, changed)
    return new


@contextmanager
def synced(
    params: Params, by: str, keep: tuple[type[BaseException], ...] = ()
) -> Iterator[Head | None]:
    """Run a task's body between a pull and a push; outside the cluster profile, do neither.

    A body that raises pushes nothing, unless the error is one of `keep`: errors that leave
    deliberate state behind (a failed validation's verdict and quarantine) push it, then raise.
    """
    if not params.state.shared:
        yield None
        return
    started = time.perf_counter()
    base = pull(params)
    pulled = time.perf_counter()
    log.info("shared state: pulled generation %d in %.2f s", base.generation, pulled - started)
    try:
        yield base
    except keep:
        _push_timed(params, base, by)
        raise
    _push_timed(params, base, by)


def _push_timed(params: Params, base: Head, by: str) -> None:
    started = time.perf_counter()
    new = push(params, base, by)
    log.info(
        "shared state: %s generation %d in %.2f s",
        "pushed" if new.generation != base.generation else "unchanged at",
        new.generation,
        time.perf_counter() - started,
    )

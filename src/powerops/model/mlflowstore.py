"""The MLflow store at the edge: one client per configuration, failures in words, and an
embedded store that moves with its workspace.

Two rules live here. A store that cannot be asked (a server that refuses connections, a store
folder that is a file or read-only, a database MLflow cannot open) is an error, never an empty
registry: `unavailable` turns whatever MLflow raised into one `RegistryUnavailableError` line.
And the embedded store (`paths.mlflow`, SQLite plus artifacts) records absolute artifact paths,
so a workspace copied or moved with `cp -a` or `mv` would read and write the original's files:
`client` rebases those paths onto the workspace it runs in before MLflow opens the store.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import urllib.parse
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from powerops.core import logs
from powerops.core.config import Params
from powerops.core.errors import PowerOpsError

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

DB_FILE = "mlflow.db"
ARTIFACTS = "artifacts"
# Stores this process found at their own place: (database, artifacts folder).
_placed: set[tuple[Path, Path]] = set()


class RegistryError(PowerOpsError):
    """A model version or alias is missing, or a registry action is refused."""


class RegistryUnavailableError(RegistryError):
    """MLflow could not be asked: unreachable, missing, unreadable or unwritable."""


def where(params: Params) -> str:
    """The tracking URI as it can be shown: without credentials."""
    parts = urllib.parse.urlsplit(params.tracking_uri)
    if not (parts.password or parts.username):
        return params.tracking_uri
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def embedded(params: Params) -> bool:
    """True for the default store: SQLite and artifacts in the workspace's `paths.mlflow`."""
    return not params.mlflow.tracking_uri


def client(params: Params) -> MlflowClient:
    """An MLflow client for the configured tracking URI (SQLite in the workspace by default)."""
    # No usage data leaves this machine.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    if embedded(params):
        _prepare_embedded(params)
    import mlflow
    from mlflow.tracking import MlflowClient

    logs.quiet()  # MLflow gave its loggers a stderr handler of its own when imported
    mlflow.set_tracking_uri(params.tracking_uri)
    return MlflowClient(tracking_uri=params.tracking_uri)


def artifact_location(params: Params) -> str | None:
    """Where a new experiment keeps its artifacts: inside the embedded store, else the server's
    choice."""
    if not embedded(params):
        return None
    return (params.mlflow_dir / ARTIFACTS).resolve().as_uri()


@contextmanager
def asking(params: Params, doing: str) -> Iterator[None]:
    """Turn a failure to talk to MLflow inside the block into one `RegistryUnavailableError`
    line; other errors (ours, or a bug) pass through unchanged."""
    try:
        yield
    except Exception as exc:
        if _is_store_failure(exc):
            raise unavailable(params, doing, exc) from exc
        raise


def _is_store_failure(exc: Exception) -> bool:
    """MLflow's own errors, the database's, the HTTP client's and the file system's."""
    from mlflow.exceptions import MlflowException

    if isinstance(exc, RegistryError):
        return False
    module = type(exc).__module__.split(".")[0]
    return isinstance(exc, MlflowException | OSError) or module in {
        "sqlalchemy",
        "sqlite3",
        "requests",
        "urllib3",
    }


def unavailable(params: Params, doing: str, exc: BaseException) -> RegistryUnavailableError:
    """The one-line error for an MLflow store that failed to answer."""
    cause = str(getattr(exc, "message", None) or exc).strip().splitlines()
    text = cause[0] if cause else type(exc).__name__
    if len(text) > 300:
        text = text[:297] + "..."
    hint = (
        f"check that {params.mlflow_dir} is a writable folder (paths.mlflow)"
        if embedded(params)
        else "check that the server at mlflow.tracking_uri is up and reachable"
    )
    return RegistryUnavailableError(
        f"MLflow at {where(params)} could not {doing}: {type(exc).__name__}: {text}; {hint}"
    )


def check_folder(params: Params) -> None:
    """The embedded store's folder, if it exists, must be a folder."""
    folder = params.mlflow_dir
    if folder.exists() and not folder.is_dir():
        raise RegistryUnavailableError(
            f"the embedded MLflow store {folder} is a file, not a folder (paths.mlflow): "
            "move it away or point paths.mlflow elsewhere"
        )


def _prepare_embedded(params: Params) -> None:
    """Check the store folder, and rebase a store that was copied or moved with its workspace."""
    check_folder(params)
    folder = params.mlflow_dir
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise unavailable(params, "create its folder", exc) from None
    database = folder / DB_FILE
    if database.is_file():
        rebase(params)


def rebase(params: Params) -> int:
    """Point an embedded store's recorded paths at this workspace; return the rows changed.

    MLflow stores absolute paths (experiments, runs, logged models, model versions, dataset
    sources). A copy or a move of the workspace keeps the old ones, so later runs would write
    into, and read from, the original. The old location is the one our experiment records.
    """
    database = params.mlflow_dir / DB_FILE
    new = (params.mlflow_dir / ARTIFACTS).resolve()
    if (database, new) in _placed:
        return 0
    try:
        with closing(sqlite3.connect(database, timeout=30)) as connection, connection:
            old = _recorded_artifacts(connection, params.mlflow.experiment)
            if old is None:  # no experiment yet: no path recorded
                return 0
            before, after = _moved_root(params, old.parent, new.parent)
            changed = _replace_prefix(connection, before, after) if old != new else 0
    except sqlite3.Error as exc:
        raise unavailable(params, "open its database", exc) from None
    _placed.add((database, new))  # checked once per process, then trusted
    if changed:
        log.warning("MLflow store moved from %s to %s: %d paths rebased", before, after, changed)
    return changed


def _moved_root(params: Params, old_store: Path, new_store: Path) -> tuple[str, str]:
    """The workspace's old and new roots when the store lies inside it (so dataset sources
    move too), else the store's own old and new folders."""
    root = params.root.resolve()
    if new_store.is_relative_to(root):
        inside = new_store.relative_to(root)
        if old_store.parts[-len(inside.parts) :] == inside.parts:
            return str(old_store.parents[len(inside.parts) - 1]), str(root)
    return str(old_store), str(new_store)


def _recorded_artifacts(connection: sqlite3.Connection, experiment: str) -> Path | None:
    try:
        row = connection.execute(
            "SELECT artifact_location FROM experiments WHERE name = ?", (experiment,)
        ).fetchone()
    except sqlite3.OperationalError:  # no tables yet: MLflow creates them on first use
        return None
    if row is None or not str(row[0]).startswith("file://"):
        return None
    return Path(urllib.parse.unquote(urllib.parse.urlsplit(row[0]).path))


# Every column in which MLflow 3's SQL store keeps a local path or a file URI.
_PATH_COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("logged_models", "artifact_location"),
    ("model_versions", "source"),
    ("model_versions", "storage_location"),
    ("datasets", "dataset_source"),
)


def _replace_prefix(connection: sqlite3.Connection, old: str, new: str) -> int:
    """Replace `old` by `new` at the start of every recorded path (plain, or in a file URI or
    a JSON source), in one transaction."""
    pairs = [(f"file://{old}/", f"file://{new}/"), (f"{old}/", f"{new}/")]
    pairs.append((json.dumps({"uri": old})[:-2] + "/", json.dumps({"uri": new})[:-2] + "/"))
    changed = 0
    # Table and column names come from _PATH_COLUMNS above, never from input.
    for table, column in _PATH_COLUMNS:
        for before, after in pairs:
            cursor = connection.execute(
                f"UPDATE {table} SET {column} = ? || substr({column}, ?) "
                f"WHERE substr({column}, 1, ?) = ?",
                (after, len(before) + 1, len(before), before),
            )
            changed += cursor.rowcount
    return changed

"""MLflow at the edge: runs, the model registry, aliases, the alias audit log and lineage.

Aliases, not stages: `champion` is the model that serves, `previous` the one it replaced.
MLflow keeps no history of alias moves, so every move is also appended to
`registry/alias_audit.jsonl`: when, which alias, from which version to which, why, by whom.
"""

from __future__ import annotations

import getpass
import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from powerops.config import Params

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.tracking import MlflowClient

CHAMPION = "champion"
PREVIOUS = "previous"
AUDIT_FILE = "alias_audit.jsonl"


class RegistryError(RuntimeError):
    """A model version or alias is missing, or a registry action is refused."""


def client(params: Params) -> MlflowClient:
    """An MLflow client for the configured tracking URI (SQLite in the workspace by default)."""
    # No usage data leaves this machine.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    import mlflow
    from mlflow.tracking import MlflowClient

    if params.tracking_uri.startswith("sqlite:///"):
        Path(params.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(
            parents=True, exist_ok=True
        )
    mlflow.set_tracking_uri(params.tracking_uri)
    return MlflowClient(tracking_uri=params.tracking_uri)


def experiment_id(params: Params) -> str:
    """The experiment's id, created with artifacts inside the workspace if it is new."""
    mlflow_client = client(params)
    found = mlflow_client.get_experiment_by_name(params.mlflow.experiment)
    if found is not None:
        return str(found.experiment_id)
    location = None
    if not params.mlflow.tracking_uri:
        location = (params.resolve(params.paths.mlflow) / "artifacts").resolve().as_uri()
    return str(
        mlflow_client.create_experiment(params.mlflow.experiment, artifact_location=location)
    )


@dataclass(frozen=True)
class AliasMove:
    """One line of the alias audit log."""

    at: str
    model: str
    alias: str
    from_version: str | None
    to_version: str | None
    reason: str
    by: str


def audit_path(params: Params) -> Path:
    return params.registry_dir / AUDIT_FILE


def audit_log(params: Params) -> list[AliasMove]:
    path = audit_path(params)
    if not path.is_file():
        return []
    return [AliasMove(**json.loads(line)) for line in path.read_text().splitlines() if line]


def _append_audit(params: Params, move: AliasMove) -> None:
    path = audit_path(params)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(asdict(move)) + "\n")


def alias_version(params: Params, alias: str) -> ModelVersion | None:
    """The model version holding `alias`, or None if the alias is unset."""
    from mlflow.exceptions import MlflowException

    try:
        return client(params).get_model_version_by_alias(params.mlflow.model_name, alias)
    except MlflowException:
        return None


def move_alias(params: Params, alias: str, version: str, reason: str, by: str) -> None:
    """Point `alias` at `version` and record the move in the audit log."""
    current = alias_version(params, alias)
    client(params).set_registered_model_alias(params.mlflow.model_name, alias, version)
    _append_audit(
        params,
        AliasMove(
            at=datetime.now(UTC).isoformat(timespec="seconds"),
            model=params.mlflow.model_name,
            alias=alias,
            from_version=str(current.version) if current else None,
            to_version=str(version),
            reason=reason,
            by=by,
        ),
    )


def promote(params: Params, version: str, reason: str, by: str) -> None:
    """Make `version` the champion; the champion it replaces becomes `previous`."""
    current = alias_version(params, CHAMPION)
    if current is not None and str(current.version) != version:
        move_alias(params, PREVIOUS, str(current.version), f"replaced by version {version}", by)
    move_alias(params, CHAMPION, version, reason, by)


def rollback(
    params: Params,
    reason: str,
    to_version: str | None,
    current_test_hash: str,
    force: bool = False,
    by: str | None = None,
) -> tuple[str, str]:
    """Move `champion` back (default: to `previous`); return (from, to) versions. `by` is who
    asked, for the audit log (default: the operating-system user).

    Refused when the target was scored under another pinned test set, unless forced: its
    scores are not comparable with the current champion's.
    """
    champion = alias_version(params, CHAMPION)
    if champion is None:
        raise RegistryError(f"model {params.mlflow.model_name} has no champion to roll back")
    if to_version is None:
        previous = alias_version(params, PREVIOUS)
        if previous is None:
            raise RegistryError("no `previous` alias: name the version with --to VERSION")
        to_version = str(previous.version)
    if to_version == str(champion.version):
        raise RegistryError(f"version {to_version} is already the champion")
    target = get_version(params, to_version)
    target_hash = target.tags.get("test_set_hash", "")
    if target_hash != current_test_hash and not force:
        raise RegistryError(
            f"version {to_version} was scored on test set {target_hash[:12] or '(none)'}, the "
            f"current pinned test set is {current_test_hash[:12]}: scores are not comparable; "
            "use --force to roll back anyway"
        )
    by = by or getpass.getuser()
    move_alias(params, PREVIOUS, str(champion.version), f"rolled back: {reason}", by)
    move_alias(params, CHAMPION, to_version, f"rollback: {reason}", by)
    return str(champion.version), to_version


def get_version(params: Params, version: str) -> ModelVersion:
    from mlflow.exceptions import MlflowException

    try:
        return client(params).get_model_version(params.mlflow.model_name, version)
    except MlflowException:
        raise RegistryError(f"model {params.mlflow.model_name} has no version {version}") from None


def versions(params: Params) -> list[ModelVersion]:
    """Every registered version of the model, oldest first."""
    from mlflow.exceptions import MlflowException

    try:
        found = client(params).search_model_versions(f"name = '{params.mlflow.model_name}'")
    except MlflowException:
        return []
    return sorted(found, key=lambda v: int(v.version))


def aliases(params: Params) -> dict[str, list[str]]:
    """Model version -> the aliases it holds."""
    from mlflow.exceptions import MlflowException

    try:
        model = client(params).get_registered_model(params.mlflow.model_name)
    except MlflowException:
        return {}
    held: dict[str, list[str]] = {}
    for alias, version in model.aliases.items():
        held.setdefault(str(version), []).append(alias)
    return held


def run_details(params: Params, run_id: str) -> dict[str, Any]:
    run = client(params).get_run(run_id)
    return {"params": run.data.params, "metrics": run.data.metrics, "tags": run.data.tags}

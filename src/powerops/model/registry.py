"""The model registry: versions, the `champion` and `previous` aliases, their history.

Aliases, not stages: `champion` is the model that serves, `previous` the one it replaced.
Moving them is a two-step change in MLflow (two aliases) plus a line per move in the
human-readable audit log `registry/alias_audit.jsonl`, and a process can die between any two
of those steps. So every alias change is first journaled in MLflow itself, as a tag of the
registered model (`powerops.alias_change.<number>`: what moves, why, by whom, when), then
applied, then marked done. The next writer finishes a change that is not done (`recover`),
and the audit log is rewritten from the journal whenever it lacks a line: after a crash at any
point, one rerun gives the aliases and audit lines an uninterrupted run gives. The journal
lives beside the aliases, so this holds when the workspace is on another host too.

Only "this model or alias does not exist" means none: a store that cannot be asked raises
`RegistryUnavailableError` (powerops.model.mlflowstore), and a champion the audit log names but the
registry lacks is an error, not an empty registry.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from powerops.core.config import Params
from powerops.core.faults import crash_point
from powerops.core.storage import atomic_write_text
from powerops.model import mlflowstore
from powerops.model.mlflowstore import DB_FILE, embedded, where
from powerops.model.mlflowstore import RegistryError as RegistryError
from powerops.model.mlflowstore import RegistryUnavailableError as RegistryUnavailableError
from powerops.model.mlflowstore import asking as asking

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion, RegisteredModel
    from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

CHAMPION = "champion"
PREVIOUS = "previous"
AUDIT_FILE = "alias_audit.jsonl"
CHANGE_TAG = "powerops.alias_change."
_NOT_FOUND = "RESOURCE_DOES_NOT_EXIST"


class ChampionMovedError(RegistryError):
    """A rollback was asked for against a champion that is no longer the champion."""


def client(params: Params) -> MlflowClient:
    """An MLflow client (powerops.model.mlflowstore.client), refusing to start a new embedded store
    where the audit log shows there was one: a deleted store is an error, not an empty one."""
    database = params.mlflow_dir / DB_FILE
    if embedded(params):
        mlflowstore.check_folder(params)
    if embedded(params) and not database.exists():
        moves = audit_log(params)
        if moves:
            raise RegistryUnavailableError(
                f"the embedded MLflow store {database} is missing, but {audit_path(params)} "
                f"records {len(moves)} alias move(s): the store was deleted or moved. Restore "
                f"{params.mlflow_dir} from a backup, or move {audit_path(params)} away to "
                "start a new registry on purpose"
            )
    return mlflowstore.client(params)


def experiment_id(params: Params) -> str:
    """The experiment's id, created with artifacts inside the workspace if it is new."""
    from powerops.model.mlflowstore import artifact_location

    mlflow_client = client(params)
    with asking(params, f"find or create experiment {params.mlflow.experiment!r}"):
        found = mlflow_client.get_experiment_by_name(params.mlflow.experiment)
        if found is not None:
            return str(found.experiment_id)
        # The classic ML kind ("Model training" in MLflow 3's UI), not GenAI; the values are
        # mlflow/server/js's ExperimentKind (the Python package has no constant for them).
        return str(
            mlflow_client.create_experiment(
                params.mlflow.experiment,
                artifact_location=artifact_location(params),
                tags={"mlflow.experimentKind": "custom_model_development"},
            )
        )


# --- the audit log ------------------------------------------------------------------------


@dataclass(frozen=True)
class AliasMove:
    """One line of the alias audit log; `change` numbers the journaled change it belongs to
    (None for lines written before the journal existed)."""

    at: str
    model: str
    alias: str
    from_version: str | None
    to_version: str | None
    reason: str
    by: str
    change: int | None = None


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


# --- the journal of alias changes ------------------------------------------------------------


@dataclass(frozen=True)
class Move:
    alias: str
    from_version: str | None
    to_version: str
    reason: str


@dataclass(frozen=True)
class AliasChange:
    """One journaled alias change: its moves happen together or are finished by the next run."""

    number: int
    kind: str  # "promote" | "rollback"
    at: str
    by: str
    moves: tuple[Move, ...] = field(default_factory=tuple)
    done: bool = False

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> AliasChange:
        data = json.loads(text)
        return cls(**data | {"moves": tuple(Move(**move) for move in data["moves"])})

    def audit_lines(self, model: str) -> list[AliasMove]:
        return [
            AliasMove(
                self.at,
                model,
                m.alias,
                m.from_version,
                m.to_version,
                m.reason,
                self.by,
                self.number,
            )
            for m in self.moves
        ]


def _model(params: Params) -> RegisteredModel | None:
    """The registered model, or None if it does not exist (any other failure raises)."""
    from mlflow.exceptions import MlflowException

    mlflow_client = client(params)
    with asking(params, f"read registered model {params.mlflow.model_name!r}"):
        try:
            return mlflow_client.get_registered_model(params.mlflow.model_name)
        except MlflowException as exc:
            if exc.error_code == _NOT_FOUND:
                return None
            raise


def changes(params: Params, model: RegisteredModel | None = None) -> list[AliasChange]:
    """Every journaled alias change, oldest first."""
    model = model if model is not None else _model(params)
    if model is None:
        return []
    found = [
        AliasChange.from_json(value)
        for key, value in (model.tags or {}).items()
        if key.startswith(CHANGE_TAG)
    ]
    return sorted(found, key=lambda change: change.number)


def _journal(params: Params, change: AliasChange) -> None:
    mlflow_client = client(params)
    with asking(params, f"journal alias change {change.number}"):
        mlflow_client.set_registered_model_tag(
            params.mlflow.model_name, f"{CHANGE_TAG}{change.number:06d}", change.to_json()
        )


def _apply(params: Params, change: AliasChange) -> None:
    """Move every alias the change names (those already moved stay), write its audit lines,
    then mark it done. Running this again after a crash anywhere in it finishes it."""
    mlflow_client = client(params)
    for index, move in enumerate(change.moves):
        if index:
            crash_point("alias.between_moves")
        model = _model(params)
        held = model.aliases.get(move.alias) if model is not None else None
        if str(held) != move.to_version:
            with asking(params, f"move alias {move.alias!r} to version {move.to_version}"):
                mlflow_client.set_registered_model_alias(
                    params.mlflow.model_name, move.alias, move.to_version
                )
    crash_point("alias.before_audit")
    sync_audit(params)
    crash_point("alias.before_done")
    _journal(params, replace(change, done=True))


def recover(params: Params) -> AliasChange | None:
    """Finish an alias change a crash interrupted, and restore audit lines a lost workspace
    never kept; return the change finished, if one was."""
    journal = changes(params)
    if journal and not journal[-1].done:
        unfinished = journal[-1]
        _apply(params, unfinished)
        log.warning(
            "finished alias change %d (%s: %s), which a crash had interrupted",
            unfinished.number,
            unfinished.kind,
            ", ".join(f"{m.alias} -> version {m.to_version}" for m in unfinished.moves),
        )
        return unfinished
    sync_audit(params, journal)
    return None


def sync_audit(params: Params, journal: list[AliasChange] | None = None) -> None:
    """Make the audit log hold every journaled move, in order, after the lines written before
    the journal existed; refuse a log that names changes the registry does not hold."""
    journal = changes(params) if journal is None else journal
    current = audit_log(params)
    known = {change.number for change in journal}
    strange = sorted({m.change for m in current if m.change is not None} - known)
    if strange:
        raise RegistryError(
            f"{audit_path(params)} records alias change(s) {strange} that the registry at "
            f"{where(params)} does not hold: the MLflow store was replaced or restored from an "
            "older backup. Restore the store that goes with this workspace"
        )
    model = params.mlflow.model_name
    wanted = [m for m in current if m.change is None]
    wanted += [line for change in journal for line in change.audit_lines(model)]
    if wanted != current:
        audit_path(params).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(audit_path(params), "".join(json.dumps(asdict(m)) + "\n" for m in wanted))


def change_aliases(params: Params, kind: str, moves: list[Move], by: str) -> AliasChange:
    """Journal an alias change, then apply it (see the module's docstring)."""
    journal = changes(params)
    number = (journal[-1].number + 1) if journal else 1
    at = datetime.now(UTC).isoformat(timespec="seconds")
    change = AliasChange(number, kind, at, by, tuple(moves))
    _journal(params, change)
    crash_point("alias.after_journal")
    _apply(params, change)
    return replace(change, done=True)


def promoted_versions(params: Params, journal: list[AliasChange] | None = None) -> set[str]:
    """The versions whose promotion by the gate happened (journaled, or in the audit log from
    before the journal existed)."""
    journal = changes(params) if journal is None else journal
    promoted = {c.moves[-1].to_version for c in journal if c.kind == "promote"}
    promoted |= {
        str(move.to_version)
        for move in audit_log(params)
        if move.change is None and move.alias == CHAMPION
    }
    return promoted


# --- reading aliases -------------------------------------------------------------------------


def alias_version(params: Params, alias: str) -> ModelVersion | None:
    """The model version holding `alias`; None only if the model or the alias does not exist.

    A registry without a champion while the audit log names one is an error (a deleted or
    replaced store), not "no champion".
    """
    model = _model(params)
    held = model.aliases.get(alias) if model is not None else None
    if held is None:
        if alias == CHAMPION:
            _check_not_lost(params)
        return None
    return get_version(params, str(held))


def _check_not_lost(params: Params) -> None:
    named = next((m for m in reversed(audit_log(params)) if m.alias == CHAMPION), None)
    if named is None or named.to_version is None:
        return
    store = f"{params.mlflow_dir}" if embedded(params) else where(params)
    raise RegistryError(
        f"{audit_path(params)} says version {named.to_version} of "
        f"{params.mlflow.model_name} became champion at {named.at}, but the registry at "
        f"{store} holds no champion: the MLflow store was deleted or replaced. Restore it "
        f"from a backup, or move {audit_path(params)} away to start a new registry on purpose"
    )


def aliases(params: Params) -> dict[str, list[str]]:
    """Model version -> the aliases it holds."""
    model = _model(params)
    held: dict[str, list[str]] = {}
    for alias, version in (model.aliases if model is not None else {}).items():
        held.setdefault(str(version), []).append(alias)
    return held


# --- changing aliases ------------------------------------------------------------------------


def promote(params: Params, version: str, reason: str, by: str) -> AliasChange:
    """Make `version` the champion; the champion it replaces becomes `previous`."""
    recover(params)
    model = _model(params)
    held = model.aliases if model is not None else {}
    champion = str(held[CHAMPION]) if CHAMPION in held else None
    previous = str(held[PREVIOUS]) if PREVIOUS in held else None
    moves = []
    if champion is not None and champion != version:
        moves.append(Move(PREVIOUS, previous, champion, f"replaced by version {version}"))
    moves.append(Move(CHAMPION, champion, version, reason))
    return change_aliases(params, "promote", moves, by)


def rollback(
    params: Params,
    reason: str,
    to_version: str | None,
    current_test_hash: str,
    force: bool = False,
    by: str | None = None,
    expected_champion: str | None = None,
) -> tuple[str, str]:
    """Move `champion` back (default: to `previous`); return (from, to) versions. `by` is who
    asked, for the audit log (default: the operating-system user).

    Refused when the target was scored under another pinned test set, unless forced: its
    scores are not comparable with the current champion's. Refused too when
    `expected_champion` is given and the champion is another version: whoever asked decided
    on a state that has changed since (a second click on the same button, say).
    """
    import getpass

    finished = recover(params)
    if (
        finished is not None
        and finished.kind == "rollback"
        and to_version in (None, finished.moves[-1].to_version)
        and expected_champion in (None, finished.moves[-1].from_version)
    ):
        # A rollback a crash interrupted, now finished: asking again (a rerun, a new trigger
        # after the failed one) means that rollback, not a second one that would undo it.
        log.warning("the rollback asked for is the one just finished; not rolling back again")
        return str(finished.moves[-1].from_version), finished.moves[-1].to_version
    champion, previous, to_version = _rollback_target(params, to_version, expected_champion)
    target_hash = get_version(params, to_version).tags.get("test_set_hash", "")
    if not current_test_hash and not force:
        raise RegistryError(
            f"no pinned test set in {params.test_set_dir} to check version {to_version}'s "
            "scores against (was it deleted?): restore it, or use --force to roll back anyway"
        )
    if target_hash != current_test_hash and not force:
        raise RegistryError(
            f"version {to_version} was scored on test set {target_hash[:12] or '(none)'}, the "
            f"current pinned test set is {current_test_hash[:12]}: scores are not comparable; "
            "use --force to roll back anyway"
        )
    moves = [
        Move(PREVIOUS, previous, champion, f"rolled back: {reason}"),
        Move(CHAMPION, champion, to_version, f"rollback: {reason}"),
    ]
    change_aliases(params, "rollback", moves, by or getpass.getuser())
    return champion, to_version


def _rollback_target(
    params: Params, to_version: str | None, expected_champion: str | None
) -> tuple[str, str | None, str]:
    """(champion, previous, target) of a rollback, or the reason it cannot happen."""
    champion = alias_version(params, CHAMPION)
    if champion is None:
        raise RegistryError(f"model {params.mlflow.model_name} has no champion to roll back")
    if expected_champion is not None and str(champion.version) != expected_champion:
        last = next((m for m in reversed(audit_log(params)) if m.alias == CHAMPION), None)
        since = f" ({last.at[:19]} by {last.by}: {last.reason})" if last else ""
        raise ChampionMovedError(
            f"the champion is version {champion.version}, not version {expected_champion} as "
            f"the rollback expected: it moved since{since}; nothing was changed"
        )
    previous = alias_version(params, PREVIOUS)
    if to_version is None:
        if previous is None:
            raise RegistryError("no `previous` alias: name the version with --to VERSION")
        to_version = str(previous.version)
    if to_version == str(champion.version):
        raise RegistryError(f"version {to_version} is already the champion")
    return str(champion.version), str(previous.version) if previous else None, to_version


# --- versions and runs -----------------------------------------------------------------------


def get_version(params: Params, version: str) -> ModelVersion:
    from mlflow.exceptions import MlflowException

    mlflow_client = client(params)
    with asking(params, f"read version {version} of {params.mlflow.model_name!r}"):
        try:
            return mlflow_client.get_model_version(params.mlflow.model_name, version)
        except MlflowException as exc:
            if exc.error_code != _NOT_FOUND:
                raise
    raise RegistryError(f"model {params.mlflow.model_name} has no version {version}")


def versions(params: Params) -> list[ModelVersion]:
    """Every registered version of the model, oldest first."""
    mlflow_client = client(params)
    with asking(params, f"list the versions of {params.mlflow.model_name!r}"):
        found = mlflow_client.search_model_versions(f"name = '{params.mlflow.model_name}'")
    return sorted(found, key=lambda v: int(v.version))


def run_details(params: Params, run_id: str) -> dict[str, Any]:
    mlflow_client = client(params)
    with asking(params, f"read run {run_id}"):
        run = mlflow_client.get_run(run_id)
    return {"params": run.data.params, "metrics": run.data.metrics, "tags": run.data.tags}


def running_runs(params: Params) -> Iterator[Any]:
    """The runs of the experiment still marked RUNNING (none if the experiment is new)."""
    mlflow_client = client(params)
    with asking(params, "search running runs"):
        found = mlflow_client.get_experiment_by_name(params.mlflow.experiment)
        if found is None:
            return iter(())
        runs = mlflow_client.search_runs(
            [found.experiment_id], filter_string="attributes.status = 'RUNNING'"
        )
    return iter(runs)


def end_run(params: Params, run_id: str, status: str) -> None:
    mlflow_client = client(params)
    with asking(params, f"end run {run_id} as {status}"):
        mlflow_client.set_terminated(run_id, status)

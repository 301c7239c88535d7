"""Workspaces for fault injection: built once per session, copied for every crash.

A copy is a whole workspace (its DVC cache and remote, its MLflow store), which works on its
own files wherever it lies (powerops.model.mlflowstore.rebase), so each crash starts from the same
state in milliseconds instead of a fresh pipeline run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from powerops.core.config import Params, load_params
from powerops.core.faults import CRASH_ENV
from powerops.core.months import parse_month
from powerops.data import stages
from powerops.data.catalog import Catalog
from powerops.model import registry, training
from tests.conftest import (
    file_hashes,
    make_training_workspace,
    make_workspace,
    minute_readings,
    run,
)

# Every command of these tests acts as this user, so audit lines compare equal.
ACTOR = {"POWEROPS_ACTOR": "fault-test"}


def powerops(workspace: Path, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return run(["powerops", *args], workspace, env=ACTOR | kwargs.pop("env", {}), **kwargs)


def crash(workspace: Path, point: str, *args: str) -> None:
    """Run a command that SIGKILLs itself at the crash point `point` (powerops.core.faults)."""
    killed = powerops(workspace, *args, env={CRASH_ENV: point}, check=False)
    assert killed.returncode == -9, (
        f"{point}: `powerops {' '.join(args)}` never reached the crash point "
        f"(exit {killed.returncode})\n{killed.stderr[-2000:]}"
    )


def copy(workspace: Path, dest: Path) -> Path:
    shutil.copytree(workspace, dest, symlinks=True)
    return dest


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, real_source_csv: Path) -> Path:
    """Four real months: data v1..v3 published and trained (model v1 is the champion), v4
    published and not trained yet. `powerops train` here registers and promotes model v2."""
    workspace = make_training_workspace(
        tmp_path_factory.mktemp("faults") / "trained", real_source_csv
    )
    # Built in this process (the crashes run the CLI): one import of the stack, not five.
    params = params_of(workspace)
    stages.ingest(params)
    stages.validate(params)
    stages.publish(params, [parse_month(m) for m in ("2006-12", "2007-01", "2007-02")])
    training.train(params, by=ACTOR["POWEROPS_ACTOR"])
    stages.publish(params)
    return workspace


@pytest.fixture(scope="session")
def pending(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 synthetic months ingested and validated, none published: what `publish` races on."""
    root = tmp_path_factory.mktemp("faults-pending")
    source = root / "source.parquet"
    minute_readings("2008-01-01", "2009-01-01", noise=True).to_parquet(source, index=False)
    workspace = make_workspace(
        root / "pending",
        source,
        start="2008-01",
        through="2008-12",
        validation={"collection_start": None, "collection_end": None},
    )
    stages.ingest(params_of(workspace))
    stages.validate(params_of(workspace))
    return workspace


def params_of(workspace: Path) -> Params:
    return load_params(workspace / "params.yaml")


def registry_state(workspace: Path) -> dict[str, Any]:
    """What an uninterrupted training or rollback leaves in the registry: versions with their
    tags, aliases, the alias-change journal, the audit log (all but the times), and runs."""
    params = params_of(workspace)
    versions = registry.versions(params)
    keep = ("data_version", "gate", "gate_reasons", "test_wape", "job", "trained_by")
    mlflow = registry.client(params)
    running = list(registry.running_runs(params))
    return {
        "versions": [(v.version, {k: v.tags.get(k) for k in keep}) for v in versions],
        "run of each version": [mlflow.get_run(v.run_id).info.status for v in versions],
        "runs still RUNNING": [run.info.run_id for run in running],
        "aliases": registry.aliases(params),
        "journal": [(c.number, c.kind, c.by, c.moves, c.done) for c in registry.changes(params)],
        "audit": [
            (m.change, m.alias, m.from_version, m.to_version, m.reason, m.by)
            for m in registry.audit_log(params)
        ],
    }


def data_state(workspace: Path) -> dict[str, Any]:
    """What publishing leaves: catalog versions (all but creation times), the working copy,
    and no temporary file anywhere in the data."""
    params = params_of(workspace)
    catalog = Catalog(params.catalog_dir)
    record = catalog.load(params.dataset.name) if catalog.exists(params.dataset.name) else None
    versions = [
        json.dumps(v.model_dump(exclude={"created_at"}), sort_keys=True)
        for v in (record.versions if record else [])
    ]
    return {
        "versions": versions,
        "dataset": file_hashes(params.dataset_dir),
        "temporary files": sorted(str(p) for p in (workspace / "data").rglob(".*.tmp")),
    }

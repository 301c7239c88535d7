"""Airflow and `dvc repro` run the same stage code: the same months give the same bytes.

Workspace A runs `power_ingest` through `airflow dags test` (a real Airflow run on SQLite,
tasks in their own processes); workspace B runs `dvc repro`. Both ingest 2006-12 and 2007-01
of the real data; their raw batches, dataset versions and DVC hashes must be identical.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from powerops.catalog import Catalog
from powerops.config import load_params
from tests.conftest import make_workspace, run


def airflow(args: list[str], workspace: Path, home: Path) -> str:
    """An Airflow CLI command against a throwaway AIRFLOW_HOME and the workspace's DAGs."""
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(workspace / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "POWEROPS_WORKSPACE": str(workspace),
    }
    return run(["airflow", *args], workspace, env=env).stdout


def test_airflow_and_dvc_repro_build_identical_versions(
    real_source_csv: Path, tmp_path: Path
) -> None:
    by_airflow = make_workspace(tmp_path / "airflow", real_source_csv, through="2007-01")
    by_dvc = make_workspace(tmp_path / "dvc", real_source_csv, through="2007-01")
    home = tmp_path / "airflow_home"

    airflow(["db", "migrate"], by_airflow, home)
    airflow(["pools", "set", "powerops_workspace", "1", "DVC allows one writer"], by_airflow, home)
    # A run's month is its data interval: the logical date 2007-01-01 covers December 2006.
    for logical_date in ("2007-01-01", "2007-02-01"):
        airflow(["dags", "test", "power_ingest", logical_date], by_airflow, home)
    run(["dvc", "repro"], by_dvc)

    records = [
        Catalog(load_params(ws / "params.yaml").catalog_dir).load("household_power")
        for ws in (by_airflow, by_dvc)
    ]
    assert [v.added.month for v in records[0].versions] == ["2006-12", "2007-01"]
    for a, b in zip(records[0].versions, records[1].versions, strict=True):
        assert (a.content_hash, a.dvc_md5, a.added.sha256, a.rows) == (
            b.content_hash,
            b.dvc_md5,
            b.added.sha256,
            b.rows,
        )
    lock = yaml.safe_load((by_dvc / "dvc.lock").read_text())
    dataset = next(o for o in lock["stages"]["publish"]["outs"] if o["path"] == "data/dataset")
    assert dataset["md5"] == records[0].versions[-1].dvc_md5

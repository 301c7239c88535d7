"""The model-operations page from the files the pipeline writes (the Airflow plugin serves it;
tests/dags/test_stack_rest.py opens it in a browser inside Airflow, on real data)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi import Request

from powerops.core.config import Params, load_params
from powerops.model import registry
from powerops.monitor import alerting, monitoring
from powerops.ops import opsview
from tests.conftest import REPO


@pytest.fixture
def params(tmp_path: Path) -> Params:
    return load_params(REPO / "params.yaml").model_copy(update={"root": tmp_path})


def slo(name: str, budget: float | None, firing: bool = False) -> dict[str, object]:
    burn = {"severity": "critical", "threshold": 3.5, "long_days": 7, "short_days": 2}
    return {
        "name": name,
        "indicator": "live_wape",
        "description": f"{name} objective",
        "objective": 0.8,
        "threshold": 0.7,
        "sli": 0.75,
        "events": 20,
        "bad": 5,
        "budget_remaining": budget,
        "burn": [
            burn | {"rule": "fast_burn", "long_burn": 4.0, "short_burn": 5.0, "firing": firing}
        ],
    }


def drift_column(name: str, psi: float, wasserstein: float, drifted: bool) -> dict[str, object]:
    return {
        "column": name,
        "group": "target",
        "psi": psi,
        "wasserstein": wasserstein,
        "drifted": drifted,
        "reference_rows": 100,
        "current_rows": 100,
        "reference_mean": 1.0,
        "current_mean": 1.5,
    }


def a_report(**sections: object) -> dict[str, object]:
    """A complete monitoring report (a valid MonitorReport) with `sections` replaced."""
    report: dict[str, object] = {
        "date": "2008-09-01",
        "window": {"start": "2008-08-02T00:00:00", "end": "2008-09-01T00:00:00"},
        "champion": {
            "version": "1",
            "data_version": "3",
            "test_wape": "0.4400",
            "training_end": "2007-12-31T23:00:00",
            "age_days": 245.0,
        },
        "data": {
            "hours": 720,
            "latest_reading": "2008-08-31T23:59:00",
            "age_days": 0.0,
            "quarantined": [],
        },
        "drift": {
            "seasons": [7, 8, 9],
            "note": None,
            "columns": [],
            "drifted": [],
            "feature_share": 0.5,
            "distributions": {},
        },
        "outliers": {"hours": 720, "outliers": 7, "rate": 0.01, "training_rate": 0.01},
        "schema": {"issues": []},
        "log": {},
        "live": {
            "days": [],
            "out_of_sample_after": "2007-12-31T23:00:00",
            "wape": None,
            "naive_wape": None,
            "benefit_kwh": 0.0,
            "benefit_money": 0.0,
            "currency": "EUR",
        },
        "batch_forecasts": [],
        "slos": [],
        "alerts": {"firing": [], "raised": [], "resolved": []},
    }
    return report | sections


def test_an_empty_workspace_says_what_is_missing(params: Params) -> None:
    page = opsview.render(opsview.gather(params), params)
    assert "Champion: <b>none yet</b>" in page
    assert "No monitoring report yet: power_monitor has not run." in page
    assert "No model version yet." in page and "No alias moved yet." in page


def test_the_page_shows_slos_alerts_aliases_and_plots_and_escapes_text(params: Params) -> None:
    latest = params.monitor_reports_dir / monitoring.LATEST
    latest.mkdir(parents=True)
    live = {"wape": 0.925, "naive_wape": 0.811, "benefit_kwh": -22.0, "benefit_money": -5.5}
    report = a_report(
        date="2008-09-01",
        window={"start": "2008-08-02T00:00:00", "end": "2008-09-01T00:00:00"},
        slos=[slo("forecast_accuracy", -2e-16, firing=True), slo("input_schema", 0.5)],
        live=a_report()["live"] | live,
        drift=a_report()["drift"]
        | {"columns": [drift_column("load_kw", 1.2, 0.71, True)], "drifted": ["load_kw"]},
    )
    (latest / "report.json").write_text(json.dumps(report))
    plot = "<svg id=live-plot></svg>"
    (latest / monitoring.FIGURES_FILE).write_text(json.dumps({"live_error": plot}))
    alert = {"severity": "critical", "since": "2008-09-01", "summary": "budget burning"}
    state = params.monitor_reports_dir / alerting.ALERT_STATE_FILE
    state.write_text(json.dumps({"slo:forecast_accuracy:fast_burn": alert}))
    trained_by = "airflow:power_train/scheduled__2008-09-01T00:00:00+00:00"
    for move in (
        registry.AliasMove("t1", "m", "champion", None, "1", "gate passed", "airflow"),
        registry.AliasMove("t2", "m", "champion", "1", "2", "gate passed", trained_by),
        registry.AliasMove("t3", "m", "champion", "2", "1", "<script>alert(1)</script>", "ui"),
    ):
        registry._append_audit(params, move)

    for version, wape in (("1", 0.49), ("2", 0.44)):
        job = params.training_dir / f"v000{int(version) + 2}-abc"
        job.mkdir(parents=True)
        record = {
            "build_table": {"data_version": str(int(version) + 2), "test_set_hash": "f" * 64},
            "evaluate": {"metrics": {"test_wape": wape, "test_seasonal_naive_wape": 0.56}},
            "gate": {"promote": True},
            "register": {"model_version": version, "run_id": f"run{version}"},
        }
        (job / "job.json").write_text(json.dumps(record))

    page = opsview.render(opsview.gather(params), params)
    mlflow = f"http://127.0.0.1:{params.stack.mlflow_port}"
    model = f"{mlflow}/#/models/{params.mlflow.model_name}/versions"
    # The last champion move is the rollback to v1; it links to the version in MLflow.
    classic = "?workflowType=machine_learning"  # not MLflow's GenAI overview
    assert f'Champion: <b><a href="{model}/1{classic}" target=_blank>v1</a></b>' in page
    assert f'<a href="{mlflow}/#/runs/run2{classic}" target=_blank>run</a>' in page
    # The move power_train made links to its run in Airflow's UI; the person's does not.
    run = "/dags/power_train/runs/scheduled__2008-09-01T00%3A00%3A00%2B00%3A00"
    assert f'<a href="{run}" target=_top>{trained_by}</a>' in page
    assert "<span class=muted>ui</span>" in page
    assert '<input type=hidden name=expected_champion value="1">' in page
    assert "forecast_accuracy" in page and "input_schema" in page
    assert ">0%<" in page and "-0%" not in page  # an exhausted budget, not a negative zero
    assert "5.00 (2 d) / 4.00 (7 d), alert at 3.5x <b class=bad>firing</b>" in page
    assert "slo:forecast_accuracy:fast_burn" in page and "budget burning" in page
    assert plot in page  # the monitor run's plot, inlined as it was drawn
    assert "-22.0 kWh = -5.50 EUR" in page and "live WAPE 0.925 against 0.811" in page
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert '<option value="2">v2</option>' in page  # a rollback target other than the champion
    assert "All versions were scored on the same pinned test set." in page
    assert ">v2</a></td><td>v4</td><td><code>ffffffffffff</code></td><td>0.440</td>" in page


def test_the_app_serves_the_page_behind_the_given_guard(params: Params) -> None:
    from fastapi import Depends, HTTPException
    from fastapi.testclient import TestClient

    def logged_in(request: Request) -> None:  # stands in for Airflow's login in the plugin
        if request.headers.get("authorization") != "Bearer ok":
            raise HTTPException(401, "Not authenticated")

    client = TestClient(opsview.create_app(params, [Depends(logged_in)]))
    assert client.get("/").status_code == 401
    answer = client.get("/", headers={"authorization": "Bearer ok"})
    assert answer.status_code == 200 and "powerops model operations" in answer.text


def test_task_failures_stay_open_until_the_task_succeeds(params: Params) -> None:
    from powerops.core import alerts

    def event(status: str, run: str) -> alerts.Alert:
        details = {"dag_id": "power_rollback", "task_id": "rollback", "run_id": run}
        summary = f"power_rollback.rollback {status} (run {run})"
        return alerts.Alert(
            "airflow/power_rollback/rollback", "critical", "airflow", summary, details, status
        )

    alerts.emit(event("firing", "manual__1"), params)
    page = opsview.render(opsview.gather(params), params)
    assert "airflow/power_rollback/rollback" in page and "No alert is open." not in page
    failed = '<a href="/dags/power_rollback/runs/manual__1/tasks/rollback" target=_top>'
    assert failed + "the failed run</a>" in page
    alerts.emit(event("resolved", "manual__2"), params)
    page = opsview.render(opsview.gather(params), params)
    assert "No alert is open." in page


def test_reports_and_data_docs_are_served_and_linked_and_nothing_else(params: Params) -> None:
    from fastapi.testclient import TestClient

    from powerops.data.catalog import Catalog, DatasetRecord, VersionRecord

    docs = params.resolve(params.validation.data_docs or "")
    page = docs / "validations" / "raw_batch" / "2007-01.html"
    page.parent.mkdir(parents=True)
    page.write_text("<html>data docs of 2007-01</html>")
    batch = {"month": "2007-01", "file": "2007-01.parquet", "sha256": "0", "raw_sha256": "0"}
    check = {"success": True, "evaluated": 38, "data_docs": str(page.relative_to(params.root))}
    version = VersionRecord(
        version=1,
        content_hash="c" * 64,
        dvc_md5="d",
        parent=None,
        added=batch | {"rows": 1},
        first_month="2007-01",
        last_month="2007-01",
        month_count=1,
        rows=1,
        created_at="t",
        validation=check,
        created_by="airflow:power_ingest/manual__3",
    )
    Catalog(params.catalog_dir).save(
        DatasetRecord(name=params.dataset.name, description="d", owner="o", versions=[version])
    )
    day = params.monitor_reports_dir / "2007-02-01"
    day.mkdir(parents=True)
    (day / "report.html").write_text("<html>the report of 2007-02-01</html>")
    history = {"2007-02-01": {"champion": "1", "alerts": [], "by": "airflow:power_monitor/m__4"}}
    (params.monitor_reports_dir / monitoring.HISTORY_FILE).write_text(json.dumps(history))
    (params.root / "secret.txt").write_text("not for the browser")

    html = opsview.render(opsview.gather(params), params)
    links = [
        "data-docs/validations/raw_batch/2007-01.html",
        "/dags/power_ingest/runs/manual__3",
        "reports/2007-02-01/report.html",
        "/dags/power_monitor/runs/m__4",
    ]
    for link in links:
        assert f'<a href="{link}"' in html, link
    client = TestClient(opsview.create_app(params))
    assert "data docs of 2007-01" in client.get(f"/{links[0]}").text
    assert "the report of 2007-02-01" in client.get(f"/{links[2]}").text
    for escape in ("/reports/../../secret.txt", "/reports/%2e%2e/%2e%2e/secret.txt"):
        assert client.get(escape).status_code == 404, escape
    assert client.get("/data-docs/nothing.html").status_code == 404

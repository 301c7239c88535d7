"""`make demo`: replay the configured months through the Airflow DAGs, then summarise.

For each month, runs `power_ingest`, then `power_monitor` and `power_train` (which the dataset
Asset schedules) with `dag.test()`: real Airflow DAG runs and task instances in an embedded
SQLite metadata database, with every task executed in this one process, so powerops and its
libraries are imported once instead of once per task (the scheduler would start a process per
task). Nothing to install, no server. The database is the one `make up` serves
(`.run/airflow`), so the UI shows the demo's runs, and the alias history's run ids open there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    from powerops.core import logs
    from powerops.core.config import load_params
    from powerops.ops import stack

    params = load_params(ROOT / "params.yaml")
    running = stack.status(params)
    if running is not None:
        # Its scheduler would run the DAGs the demo's Asset events trigger, beside the demo.
        print(
            f"the stack is running ({running.airflow_url}): `make down` first, or trigger the "
            "DAGs from the UI",
            file=sys.stderr,
        )
        return 1
    home = stack.airflow_home(params)
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "POWEROPS_WORKSPACE": str(ROOT),
        }
    )
    airflow = str(Path(sys.executable).parent / "airflow")
    started = time.perf_counter()
    print("preparing the embedded Airflow metadata database ...", flush=True)
    for command in (
        ["db", "migrate"],
        ["pools", "set", "powerops_workspace", "1", "DVC allows one writer"],
        ["dags", "reserialize"],
    ):
        subprocess.run([airflow, *command], check=True, capture_output=True)
    sys.path.insert(0, str(ROOT / "dags"))
    from airflow.dag_processing.dagbag import DagBag

    logs.quiet()  # again: importing Airflow put its own warning filters before ours
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    months = params.ingest.months
    for number, month in enumerate(months, 1):
        # A run's month is its data interval, which ends at the run's logical date. Each new
        # version first goes to power_monitor (the champion that forecast the month is judged
        # on it), then to power_train, as the Asset event schedules both under the scheduler.
        logical_date = month.end.replace(tzinfo=UTC)
        states = [
            outcome(bag.dags["power_ingest"].test(logical_date=logical_date)),
            outcome(bag.dags["power_monitor"].test(logical_date=logical_date)),
            outcome(bag.dags["power_train"].test()),
        ]
        print(
            f"[{number:>2}/{len(months)}] {month}: power_ingest {states[0]}, power_monitor "
            f"{states[1]}, power_train {states[2]} ({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
    # The next day's hourly forecast by the champion, as power_score makes it every morning.
    score = bag.dags["power_score"].test(logical_date=months[-1].end.replace(tzinfo=UTC))
    print(f"power_score: {outcome(score)} ({time.perf_counter() - started:.0f} s)", flush=True)
    # The walk-forward backtest of the configured model over the last months (power_backtest).
    walk = bag.dags["power_backtest"].test()
    print(f"power_backtest: {outcome(walk)} ({time.perf_counter() - started:.0f} s)", flush=True)
    summary(params, time.perf_counter() - started)
    return 0


def outcome(run: Any) -> str:
    """The run's state, `skipped` if all its tasks skipped; an error if it ran no task (a run
    outside the DAG's start and end dates creates none and still reports success)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        states = {
            str(state)
            for (state,) in session.query(TaskInstance.state).filter(
                TaskInstance.dag_id == run.dag_id, TaskInstance.run_id == run.run_id
            )
        }
    if not states:
        raise SystemExit(f"{run.dag_id} run {run.run_id} ran no task: check its dates")
    return "skipped" if states == {"skipped"} else str(run.state)


def summary(params: Any, seconds: float) -> None:
    """What the replay left behind, in one screen."""
    from powerops.core import alerts
    from powerops.data.catalog import Catalog
    from powerops.data.quarantine import Quarantine
    from powerops.model import registry, testset
    from powerops.monitor import alerting

    record = Catalog(params.catalog_dir).load(params.dataset.name)
    latest = record.latest
    print(f"\n== powerops demo through Airflow: {seconds / 60:.1f} min ==")
    print(
        f"dataset {record.name}: {len(record.versions)} versions"
        + (
            f", latest v{latest.version} {latest.first_month}..{latest.last_month}, "
            f"{latest.rows:,} rows, content {latest.content_hash[:12]}"
            if latest
            else ""
        )
    )
    manifest = testset.load_manifest(params)
    versions = registry.versions(params)
    held = registry.aliases(params)
    hashes = {v.tags.get("test_set_hash") for v in versions}
    print(
        f"pinned test set: {manifest.sha256[:12] if manifest else 'not pinned yet'}; "
        f"model versions scored on {len(hashes)} test-set hash(es)"
    )
    for version in versions:
        aliases = ", ".join(held.get(str(version.version), []))
        print(
            f"  model v{version.version}: data v{version.tags.get('data_version')}, "
            f"test WAPE {version.tags.get('test_wape')}, {version.tags.get('gate')}"
            + (f"  [{aliases}]" if aliases else "")
        )
    quarantine = Quarantine(params.quarantine_dir)
    held_batches = [
        f"{m} ({r.status})" for m in quarantine.months() if (r := quarantine.load(m)) is not None
    ]
    print(f"quarantined batches: {', '.join(held_batches) or 'none'}")
    events = [
        e for e in alerts.read_log(params.resolve(params.alerts.log)) if e["status"] == "firing"
    ]
    raised: dict[str, list[str]] = {}
    for event in events:
        if event["source"] == alerting.SOURCE:
            raised.setdefault(event["details"]["date"], []).append(event["key"])
    print(
        "monitoring alerts raised: "
        + ("; ".join(f"{day}: {', '.join(keys)}" for day, keys in sorted(raised.items())) or "none")
    )
    forecasts = sorted(params.forecasts_dir.glob("*/*.parquet"))
    if forecasts:
        print(f"next-day forecast: {forecasts[-1]}")
    walked = params.backtest_dir / "scores.json"
    if walked.is_file():
        scores = json.loads(walked.read_text())
        print(
            f"backtest: {scores['skipped']}"
            if "skipped" in scores
            else f"backtest {scores['start'][:10]}..{scores['end'][:10]} ({scores['refits']} "
            f"fits): RMSE {scores['ratio_to_seasonal_naive']['rmse']:.3f} x seasonal naive, "
            f"in {walked.parent}"
        )
    latest = params.monitor_reports_dir / "latest" / "report.html"
    if latest.is_file():
        print(f"monitoring report (opens from disk): {latest}")
    print(
        f"reports: Data Docs {params.resolve(params.validation.data_docs or 'reports')}/index.html,"
        f" alerts {params.resolve(params.alerts.log)}, alias audit {registry.audit_path(params)}"
    )
    print(
        f"more: powerops catalog show {params.dataset.name} | powerops model show VERSION | make up"
    )


if __name__ == "__main__":
    raise SystemExit(main())

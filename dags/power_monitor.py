"""
### power_monitor

Daily at 06:00 UTC, and after every new dataset version (the dataset's Asset).
Watches the champion and the data flowing in over the last `monitor.window_days` days:

- **drift** of the model's history features, the target and the predictions, judged by effect
  size (PSI and normalised Wasserstein) against the same season of the champion's training data;
- **outliers** (the IsolationForest stored with the model), **schema skew** against the
  training signature, **feature skew** and **latency** from the prediction log;
- **live error** of the champion's day-ahead forecasts on days it never trained on, and the
  **benefit** against the seasonal-naive baseline in kWh and money;
- every **SLO** in params.yaml: error budget left and multi-window burn rates. Alerts go
  through the alerting interface, deduplicated, and resolve when the condition clears.

**On the data's clock.** A run judges the `date` param if given, else the day after the latest
data (as `powerops monitor` does), never the wall clock: replayed months end in 2008. A run
that is not manual (the schedule, an Asset event) skips when that day is already judged for
the current champion: no new data, no new point in any history.

Reports: `reports/monitor/<date>/report.html` (self-contained) and `report.json`, the latest
at `reports/monitor/latest/`. Runs with no champion yet skip. Same code as `powerops monitor`.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, task

from _powerops import (
    CALLBACKS,
    DATASET,
    DEFAULT_ARGS,
    WORKSPACE_POOL,
    replay_months,
    workspace,
)

# From the first month of data, so a run for any month of it (a replay) has its task.
FIRST_MONTH, _ = replay_months()


@dag(
    dag_id="power_monitor",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 6 * * *", timezone="UTC"), assets=DATASET
    ),
    start_date=FIRST_MONTH,
    catchup=False,
    max_active_runs=1,
    description="Daily 06:00 UTC and on each new dataset version: drift, SLOs, live error",
    doc_md=__doc__,
    tags=["powerops", "monitoring"],
    default_args=DEFAULT_ARGS | CALLBACKS,
    params={
        "date": Param(
            None,
            type=["null", "string"],
            format="date",
            description=(
                "Monitor as of this date (YYYY-MM-DD); empty: the day after the latest data."
            ),
        ),
    },
)
def power_monitor() -> None:
    @task(pool=WORKSPACE_POOL)
    def monitor(**context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from powerops.core.months import parse_day
        from powerops.data.datasets import day_after_latest
        from powerops.model import registry
        from powerops.monitor import monitoring

        chosen = context["params"].get("date")
        with workspace(context) as config:
            if registry.alias_version(config, registry.CHAMPION) is None:
                raise AirflowSkipException("no champion yet: nothing to monitor")
            today = parse_day(chosen) if chosen else day_after_latest(config)
            run_type = context["dag_run"].run_type  # an enum in the task SDK
            manual = getattr(run_type, "value", run_type) == "manual"
            if not chosen and not manual and (old := monitoring.already_judged(config, today)):
                raise AirflowSkipException(old)
            by = f"airflow:power_monitor/{context['run_id']}"
            report = monitoring.monitor(config, today, by=by)
        for line in monitoring.summary_lines(report):
            print(line)
        return {
            "date": report.date,
            "drifted": report.drift.drifted,
            "firing": report.alerts.firing,
            "report": f"{config.monitor_reports_dir}/{report.date}/report.html",
        }

    monitor()


power_monitor()

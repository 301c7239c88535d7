"""
### power_ingest

Monthly. Takes one calendar month of the source feed through the data gate:

1. **ingest**: write the month as an immutable raw batch (`powerops ingest --month`);
2. **validate**: run the Great Expectations suite `raw_batch`; a failing batch goes to
   quarantine, an alert is emitted and the run fails without retrying;
3. **publish**: make the batch the next dataset version (DVC snapshot and push, catalog),
   which updates the Asset `household_power` and so schedules `power_train`.

The month is the run's data interval. With catchup, a backfill replays the source's months.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import CronDataIntervalTimetable, dag, task

from _powerops import DATASET, DEFAULT_ARGS, WORKSPACE_POOL, PowerOpsAlertNotifier, params


def _month(context: dict[str, Any]) -> Any:
    from powerops.months import Month

    start = context["data_interval_start"]
    return Month(start.year, start.month)


@dag(
    dag_id="power_ingest",
    # Each run covers one calendar month and starts once the month is over.
    schedule=CronDataIntervalTimetable("0 0 1 * *", timezone="UTC"),
    start_date=datetime(2006, 12, 1),
    end_date=datetime(2010, 11, 30),
    catchup=True,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["powerops", "data"],
    default_args=DEFAULT_ARGS | {"on_failure_callback": PowerOpsAlertNotifier()},
)
def power_ingest() -> None:
    @task(pool=WORKSPACE_POOL)
    def ingest(**context: Any) -> dict[str, Any]:
        from powerops import stages

        result = stages.ingest(params(), [_month(context)])[0]
        return {"month": result.month, "sha256": result.sha256, "rows": result.rows}

    @task(pool=WORKSPACE_POOL, retries=0)
    def validate(batch: dict[str, Any], **context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from powerops import stages

        try:
            reports = stages.validate(params(), [_month(context)])
        except stages.ValidationFailedError as exc:
            raise AirflowFailException(str(exc)) from None
        return batch | {"validated": [report.summary()["suite"] for report in reports]}

    @task(pool=WORKSPACE_POOL, outlets=[DATASET])
    def publish(batch: dict[str, Any], **context: Any) -> dict[str, Any]:
        from powerops import stages

        versions = stages.publish(params(), [_month(context)])
        return batch | {"versions": [v.version for v in versions]}

    publish(validate(ingest()))


power_ingest()

"""
### power_ingest

Monthly. Takes one calendar month of the source feed through the data gate:

1. **ingest**: write the month as an immutable raw batch (`powerops ingest --month`);
2. **validate**: run the Great Expectations suite `raw_batch`; a failing batch goes to
   quarantine, an alert is emitted and the run fails without retrying;
3. **publish**: make the batch the next dataset version (DVC snapshot and push, catalog),
   which updates the Asset `household_power` and so schedules `power_train`.

The month is the run's data interval. The DAG starts with `ingest.start` and ends with
`ingest.through` from params.yaml, so unpausing it makes the scheduler catch up on the months
`dvc repro` ingests, one run at a time. A run for a month outside that range (the one interval
catchup schedules past the end, or a manual run) skips, saying why. In the cluster profile
(`state.shared`) each task pulls the shared state from the DVC remote first and pushes what it
wrote, so the next step may run on another worker (docs/deploy.md).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import CronDataIntervalTimetable, dag, task

from _powerops import (
    DATASET,
    DEFAULT_ARGS,
    WORKSPACE_POOL,
    PowerOpsAlertNotifier,
    replay_months,
    workspace,
)

FIRST_MONTH, AFTER_LAST_MONTH = replay_months()


def _month(context: dict[str, Any]) -> Any:
    from powerops.core.months import Month

    start = context["data_interval_start"]
    return Month(start.year, start.month)


@dag(
    dag_id="power_ingest",
    # Each run covers one calendar month and starts once the month is over.
    schedule=CronDataIntervalTimetable("0 0 1 * *", timezone="UTC"),
    start_date=FIRST_MONTH,
    end_date=AFTER_LAST_MONTH,
    catchup=True,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["powerops", "data"],
    default_args=DEFAULT_ARGS | {"on_failure_callback": PowerOpsAlertNotifier()},
)
def power_ingest() -> None:
    @task(pool=WORKSPACE_POOL)
    def ingest(**context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from powerops.data import stages

        month = _month(context)
        with workspace(context) as config:
            if month not in config.ingest.months:
                # The end date is the end of `ingest.through`, so catchup schedules one interval
                # past it; that run, and a manual run for any month outside the range, skip.
                raise AirflowSkipException(
                    f"{month} is outside ingest.start..through "
                    f"({config.ingest.start}..{config.ingest.through}) in params.yaml"
                )
            result = stages.ingest(config, [month])[0]
        return {"month": result.month, "sha256": result.sha256, "rows": result.rows}

    @task(pool=WORKSPACE_POOL, retries=0)
    def validate(batch: dict[str, Any], **context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from powerops.data import stages

        try:
            # A failed batch's verdict and quarantine are state too: they are pushed (cluster
            # profile) before the task fails. The dataset is unchanged.
            with workspace(context, keep=(stages.ValidationFailedError,)) as config:
                reports = stages.validate(config, [_month(context)])
        except stages.ValidationFailedError as exc:
            raise AirflowFailException(str(exc)) from None
        return batch | {"validated": [report.summary()["suite"] for report in reports]}

    @task(pool=WORKSPACE_POOL, outlets=[DATASET])
    def publish(batch: dict[str, Any], **context: Any) -> dict[str, Any]:
        from powerops.data import stages

        with workspace(context) as config:
            versions = stages.publish(config, [_month(context)])
        return batch | {"versions": [v.version for v in versions]}

    publish(validate(ingest()))


power_ingest()

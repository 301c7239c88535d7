"""
### power_ingest

Monthly. Takes one calendar month of the source feed through the data gate:

1. **ingest**: write the month as an immutable raw batch (`powerops ingest --month`);
2. **validate**: run the Great Expectations suite `raw_batch`; a failing batch goes to
   quarantine, an alert is emitted and the run fails without retrying;
3. **publish**: make the batch the next dataset version (DVC snapshot and push, catalog),
   which updates the dataset's Asset and so schedules `power_train` and
   `power_monitor`. A month that is already a version publishes nothing and skips: no Asset
   event, so a replay or a rerun triggers no training (unless the try that made the version
   died before its event was recorded).

**A month in quarantine holds back the later ones**, as in `dvc repro`: their publish fails
(no retry) naming the month to decide. Decide it (`powerops quarantine revalidate` after a fix,
or `powerops quarantine reject`), then clear the held-back runs, oldest first. A rejected month
is the only gap a version may have, and training refuses a version with a gap in words.

**Which month.** Trigger with `month` (YYYY-MM) and an empty logical date to take that month
(a logical date after `ingest.through` is past the DAG's end date, and Airflow creates no task
for it); without `month`, the month is the run's data interval. A month outside
`ingest.start..through` in params.yaml skips, saying why (so does the one interval catchup
schedules past the end).

**What unpausing does.** The DAG starts with `ingest.start` and ends with `ingest.through`, so
unpausing it (also by "unpause on trigger") makes the scheduler catch up on every one of those
months first, one run at a time. Months already published cost a run each and change nothing:
their publish skips and tells nobody. A paused DAG runs no run, not even a triggered one; to
take one month without the catchup, use `powerops ingest/validate/publish --month YYYY-MM`
(the same code).

In the cluster profile (`state.shared`) each task pulls the shared state from the DVC remote
first and pushes what it wrote, so the next step may run on another worker (docs/deploy.md).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import CronDataIntervalTimetable, Param, dag, task

from _powerops import (
    CALLBACKS,
    DATASET,
    DEFAULT_ARGS,
    WORKSPACE_POOL,
    replay_months,
    workspace,
)

FIRST_MONTH, AFTER_LAST_MONTH = replay_months()


def _month(context: dict[str, Any]) -> Any:
    """The `month` param if the trigger gave one, else the run's data interval."""
    from powerops.core.months import Month, parse_month

    if chosen := context["params"].get("month"):
        return parse_month(chosen)
    start = context.get("data_interval_start")
    if start is None:  # a manual run without a logical date has no interval
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException("no month: trigger with the `month` param (YYYY-MM)")
    return Month(start.year, start.month)


@dag(
    dag_id="power_ingest",
    # Each run covers one calendar month and starts once the month is over.
    schedule=CronDataIntervalTimetable("0 0 1 * *", timezone="UTC"),
    start_date=FIRST_MONTH,
    end_date=AFTER_LAST_MONTH,
    catchup=True,
    max_active_runs=1,
    description="Take one month of meter readings through validation into a dataset version",
    doc_md=__doc__,
    tags=["powerops", "data"],
    default_args=DEFAULT_ARGS | CALLBACKS,
    params={
        "month": Param(
            None,
            type=["null", "string"],
            pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$",
            title="Month",
            description=(
                "The month to ingest, YYYY-MM, within ingest.start..through of params.yaml; "
                "empty: the run's data interval."
            ),
        ),
    },
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

    # The Asset is an inlet too, only so the task can read which news it told already.
    @task(pool=WORKSPACE_POOL, inlets=[DATASET], outlets=[DATASET])
    def publish(batch: dict[str, Any], **context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        from powerops.data import stages

        month = _month(context)
        by = f"airflow:power_ingest/{context['run_id']}"
        with workspace(context) as config:
            try:
                news = stages.publish(config, [month], by=by)
            except stages.HeldBackError as exc:  # a data decision, not a transient fault
                raise AirflowFailException(str(exc)) from None
            if not news and (mine := stages.published_by(config, month, by)):
                # This run made the version in an earlier try. If that try died before Airflow
                # recorded its Asset event, the news is still to be told; a rerun after the
                # event (a cleared task) is old news.
                told = context["inlet_events"][DATASET].after(mine.created_at)
                if not any(event.source_run_id == context["run_id"] for event in told):
                    news = [mine]
        if not news:
            # Skipped, so Airflow emits no Asset event: nothing downstream runs for old news.
            raise AirflowSkipException(f"{month} is already in the dataset: nothing new")
        print(f"published {month} as dataset version {news[-1].version}")
        return batch | {"versions": [v.version for v in news]}

    publish(validate(ingest()))


power_ingest()

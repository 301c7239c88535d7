"""
### power_score

Daily at 05:00 UTC. Forecasts the block that holds the next day (its `forecast.horizon`
periods: the day's hours by default) with the champion (`models:/...@champion`, the same
Pipeline `powerops serve` uses) and writes them as a versioned output,
`data/forecasts/<origin day>/model-v<version>.parquet`, plus one record in the prediction
log, so that `power_monitor` scores them once the actuals arrive. A block already forecast by
the same model version is left as it is. When the data ends before the run's date (a replay
of old months), the block of the day after the latest reading is forecast. Skips while there
is no champion. Same code as `powerops score`.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import CronTriggerTimetable, dag, task

from _powerops import CALLBACKS, DEFAULT_ARGS, WORKSPACE_POOL, replay_months, workspace

FIRST_MONTH, _ = replay_months()


@dag(
    dag_id="power_score",
    schedule=CronTriggerTimetable("0 5 * * *", timezone="UTC"),
    start_date=FIRST_MONTH,
    catchup=False,
    max_active_runs=1,
    description="Forecast the next day's hours with the champion, daily 05:00 UTC",
    doc_md=__doc__,
    tags=["powerops", "serving"],
    default_args=DEFAULT_ARGS | CALLBACKS,
)
def power_score() -> None:
    @task(pool=WORKSPACE_POOL)
    def score(**context: Any) -> dict[str, Any]:
        from datetime import timedelta

        from airflow.sdk.exceptions import AirflowSkipException

        from powerops.model import registry
        from powerops.serve import scoring

        with workspace(context) as config:
            if registry.alias_version(config, registry.CHAMPION) is None:
                raise AirflowSkipException("no champion yet: nothing to forecast with")
            when = context.get("logical_date") or context["dag_run"].run_after
            return scoring.summary(scoring.score(config, when.date() + timedelta(days=1)))

    score()


power_score()

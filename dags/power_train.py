"""
### power_train

Runs whenever `power_ingest` publishes a new version of the `household_power` Asset.

**train** trains, evaluates, gates and registers a model on every dataset version the cadence
asks for (`powerops train`): the modelling table is checked by the `training_table` suite, the
model is scored with both baselines on the pinned test set and backtested, the run and model
version go to MLflow, and the `champion` alias moves only if the gate passes. Declining to
promote is a successful run.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import dag, task

from _powerops import DATASET, DEFAULT_ARGS, WORKSPACE_POOL, PowerOpsAlertNotifier, params


@dag(
    dag_id="power_train",
    schedule=[DATASET],
    start_date=datetime(2006, 12, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["powerops", "model"],
    default_args=DEFAULT_ARGS | {"on_failure_callback": PowerOpsAlertNotifier()},
)
def power_train() -> None:
    @task(pool=WORKSPACE_POOL)
    def train() -> list[dict[str, Any]]:
        from powerops import training

        results = training.train(params(), by="airflow:power_train")
        return [training.summary(result) for result in results]

    train()


power_train()

"""
### power_train

Runs whenever `power_ingest` publishes a new version of the dataset's Asset, and
trains every dataset version the cadence asks for (`train.first_version`, `train.every`, and
always the newest), the same steps `powerops train` and `dvc repro` run:

1. **build_table**: pick the trainings; build each modelling table and check it with the
   `training_table` suite; pin the test set if there is none yet;
2. **fit**: fit the Pipeline on every row except the pinned test weeks and what could read them;
3. **evaluate**: score the model and both baselines on the pinned test set, and backtest it;
4. **gate**: the promotion rules, against the champion each model would replace;
5. **register**: log the run and model to MLflow, register the version, and move `champion`
   only if the gate passed. Declining to promote is a successful run.

Each training keeps its table, model and step records in `data/training/<job>/`; XCom carries
only job references, hashes and headline metrics. Any task can be cleared and run again: it
rewrites the same files, and nothing is registered or promoted twice. In the cluster profile
(`state.shared`) each task pulls the shared state from the DVC remote first and pushes what it
wrote, so the next step may run on another worker (docs/deploy.md).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import dag, task

from _powerops import CALLBACKS, DATASET, DEFAULT_ARGS, WORKSPACE_POOL, workspace


def _jobs(refs: list[dict[str, Any]]) -> list[Any]:
    from powerops.model.training import Job

    return [Job.from_ref(ref) for ref in refs]


@dag(
    dag_id="power_train",
    schedule=[DATASET],
    start_date=datetime(2006, 12, 1),
    catchup=False,
    max_active_runs=1,
    description="Train on the newest dataset version, gate against the champion, register",
    doc_md=__doc__,
    tags=["powerops", "model"],
    default_args=DEFAULT_ARGS | CALLBACKS,
)
def power_train() -> None:
    @task(pool=WORKSPACE_POOL)
    def build_table(**context: Any) -> list[dict[str, Any]]:
        from airflow.sdk.exceptions import AirflowFailException

        from powerops.model import training

        with workspace(context) as config:
            try:
                return training.build_table(config, training.plan(config))
            except training.TableCheckError as exc:  # bad data: a retry would fail the same
                raise AirflowFailException(str(exc)) from None

    @task(pool=WORKSPACE_POOL)
    def fit(jobs: list[dict[str, Any]], **context: Any) -> list[dict[str, Any]]:
        from powerops.model import training

        with workspace(context) as config:
            return training.fit(config, _jobs(jobs))

    @task(pool=WORKSPACE_POOL)
    def evaluate(jobs: list[dict[str, Any]], **context: Any) -> list[dict[str, Any]]:
        from powerops.model import training

        with workspace(context) as config:
            return training.evaluate(config, _jobs(jobs))

    @task(pool=WORKSPACE_POOL)
    def gate(jobs: list[dict[str, Any]], **context: Any) -> list[dict[str, Any]]:
        from powerops.model import training

        with workspace(context) as config:
            return training.gate(config, _jobs(jobs))

    @task(pool=WORKSPACE_POOL)
    def register(jobs: list[dict[str, Any]], **context: Any) -> list[dict[str, Any]]:
        from powerops.model import training

        by = f"airflow:power_train/{context['run_id']}"
        with workspace(context) as config:
            results = training.register(config, _jobs(jobs), by=by)
        return [training.summary(result) for result in results]

    register(gate(evaluate(fit(build_table()))))


power_train()

"""
### power_backtest

Manual. A walk-forward evaluation of the configured model over a fixed period: every forecast
origin from `start` to `end` is forecast by a model fitted only on data before it, refitted
every `refit_every` origins (0: never). The model and every baseline are scored per horizon
step and overall; the scores go to `reports/backtest/` and to an MLflow run of their own
(tag `kind=backtest`). The same code as `powerops backtest` and `dvc repro backtest`; the
trigger form's values override `backtest` in params.yaml for this run only.

Created unpaused: a manual DAG that starts paused queues a run nobody sees move.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param, dag, task

from _powerops import MANUAL, WORKSPACE_POOL, workspace

DAY = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


@dag(
    dag_id="power_backtest",
    description="Walk-forward backtest of the configured model over a fixed period",
    doc_md=__doc__,
    tags=["powerops", "model"],
    **MANUAL,
    params={
        "start": Param(None, type=["null", "string"], pattern=DAY, description="First origin."),
        "end": Param(None, type=["null", "string"], pattern=DAY, description="Last origin."),
        "refit_every": Param(
            None,
            type=["null", "integer"],
            minimum=0,
            description="Origins between refits (1: every origin, 0: never); empty: params.yaml.",
        ),
    },
)
def power_backtest() -> None:
    @task(pool=WORKSPACE_POOL)
    def backtest(**context: Any) -> dict[str, Any]:
        from powerops.model import backtest as walk

        with workspace(context) as config:
            result = walk.run(walk.overridden(config, **context["params"]), by="airflow")
        if isinstance(result, str):  # too little data for the default period yet
            print(result)
            return {"skipped": result}
        print(walk.summary(result))
        return {"start": result.start, "end": result.end, "ratio": result.ratios()}

    backtest()


power_backtest()

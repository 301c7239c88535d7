"""
### power_rollback

Manual. Moves the `champion` alias back to the previous champion, or to the version given,
and records who, when and why in the alias audit log. A version scored on another pinned
test set is refused unless `force` is set.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import Param, dag, task

from _powerops import DEFAULT_ARGS, WORKSPACE_POOL, PowerOpsAlertNotifier, workspace


@dag(
    dag_id="power_rollback",
    schedule=None,
    start_date=datetime(2006, 12, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["powerops", "model"],
    default_args=DEFAULT_ARGS | {"retries": 0, "on_failure_callback": PowerOpsAlertNotifier()},
    params={
        "to_version": Param(
            None,
            type=["null", "string"],
            pattern=r"^[0-9]+$",
            description="Model version to roll back to; empty means the `previous` alias.",
        ),
        "reason": Param(
            "",
            type="string",
            minLength=5,
            description="Why, for the alias audit log (required).",
        ),
        "force": Param(
            False,
            type="boolean",
            description="Allow a version scored on another pinned test set.",
        ),
    },
)
def power_rollback() -> None:
    @task(pool=WORKSPACE_POOL)
    def rollback(**context: Any) -> dict[str, str]:
        from powerops.model import registry, testset

        chosen = context["params"]
        user = getattr(context["dag_run"], "triggering_user_name", None) or "unknown"
        with workspace(context) as config:
            manifest = testset.load_manifest(config)
            old, new = registry.rollback(
                config,
                f"{chosen['reason']} (airflow run {context['run_id']})",
                chosen["to_version"],
                manifest.sha256 if manifest else "",
                force=bool(chosen["force"]),
                # The Airflow user who triggered the run (the trigger form, the REST API or the
                # model-operations view), for the alias audit log.
                by=f"airflow:{user}",
            )
        return {"from": old, "to": new}

    rollback()


power_rollback()

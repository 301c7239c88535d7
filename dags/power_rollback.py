"""
### power_rollback

Manual. Moves the `champion` alias back to the previous champion, or to the version given,
and records who, when and why in the alias audit log. A version scored on another pinned
test set is refused unless `force` is set. With `expected_champion` (the model-operations view
always sends the champion it showed), the run is refused when the champion is another version:
a second click, or a rollback someone else made meanwhile, changes nothing.

Created unpaused: a manual DAG that starts paused queues a run nobody sees move.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param, dag, task

from _powerops import MANUAL, WORKSPACE_POOL, workspace


@dag(
    dag_id="power_rollback",
    description="Move the champion alias back to the previous (or a named) model version",
    doc_md=__doc__,
    tags=["powerops", "model"],
    **MANUAL,
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
        "expected_champion": Param(
            None,
            type=["null", "string"],
            pattern=r"^[0-9]+$",
            description="Refuse unless this version is still the champion; empty: no check.",
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
        from airflow.sdk.exceptions import AirflowFailException

        from powerops.model import registry, testset

        chosen = context["params"]
        user = getattr(context["dag_run"], "triggering_user_name", None) or "unknown"
        try:
            with workspace(context) as config:
                manifest = testset.load_manifest(config)
                old, new = registry.rollback(
                    config,
                    f"{chosen['reason']} (airflow run {context['run_id']})",
                    chosen["to_version"],
                    manifest.sha256 if manifest else "",
                    force=bool(chosen["force"]),
                    # Who triggered it (trigger form, REST API or the view) and which run, for
                    # the alias audit log and the view's link to the run.
                    by=f"airflow:{user} via power_rollback/{context['run_id']}",
                    expected_champion=chosen.get("expected_champion"),
                )
        except registry.RegistryUnavailableError:
            raise  # the registry could not be asked: an outage, not a refusal
        except registry.RegistryError as exc:
            # A refusal: one clear line, and retrying would not change the answer.
            raise AirflowFailException(str(exc)) from None
        print(f"champion rolled back from version {old} to version {new}")
        return {"from": old, "to": new}

    rollback()


power_rollback()

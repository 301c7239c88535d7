"""Shared pieces of the powerops DAGs: where the workspace is, retries, the failure notifier.

Only the standard library and airflow.sdk are imported here; powerops itself is imported
inside task callables, so parsing a DAG file stays fast.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import Asset, BaseNotifier

# The repository the DAGs run in: params.yaml, dvc.yaml and the data live there.
WORKSPACE = Path(os.environ.get("POWEROPS_WORKSPACE", Path(__file__).resolve().parents[1]))
# Tasks that change the workspace run one at a time: DVC's lock allows one writer, and in the
# cluster profile the shared state has one head (powerops.ops.shared).
WORKSPACE_POOL = "powerops_workspace"


def raw_params() -> Any:
    """params.yaml as PyYAML reads it, unvalidated: what parsing a DAG may read and stay
    fast (the tasks validate the whole file with `params()`)."""
    import yaml

    return yaml.safe_load((WORKSPACE / "params.yaml").read_text())


# Published by power_ingest, scheduling power_train: one definition, so the two cannot drift.
DATASET = Asset(f"powerops://datasets/{raw_params()['dataset']['name']}")

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "powerops",
    # Transient faults (MLflow unreachable, a locked DVC repository) get retried with backoff;
    # data-quality failures raise AirflowFailException and are never retried.
    "retries": 2,
    "retry_delay": timedelta(seconds=20),
    # The multiplier (Airflow 3.3's API; True still means 2.0): try n waits 20 * 2^(n-1) s
    # to twice that, with a deterministic jitter.
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=5),
}


def replay_months() -> tuple[datetime, datetime]:
    """When power_ingest starts and ends: the first instant of `ingest.start` and the end of
    `ingest.through` in params.yaml (the first instant after it). Catchup replays exactly those
    months; a manual run for a month, whose logical date is the month's end, stays in range.
    Read with PyYAML alone, so parsing the DAG stays fast."""
    ingest = raw_params()["ingest"]
    first, last = (datetime.strptime(str(ingest[key]), "%Y-%m") for key in ("start", "through"))
    after = datetime(last.year + last.month // 12, last.month % 12 + 1, 1)
    return first, after


def params() -> Any:
    """The workspace's validated params.yaml."""
    from powerops.core.config import load_params

    return load_params(WORKSPACE / "params.yaml")


@contextmanager
def workspace(context: Any, keep: tuple[type[BaseException], ...] = ()) -> Iterator[Any]:
    """The validated params for a task's body, which runs inside the workspace lock
    (powerops.ops.lock). In the cluster profile (`state.shared`) the workspace is first brought to
    the shared state, and what the body changed is pushed after it returns; a body that raises
    pushes nothing, unless the error is in `keep` (powerops.ops.shared.synced)."""
    import socket

    from powerops.ops import shared
    from powerops.ops.lock import workspace_lock

    config = params()
    ti = context["ti"]
    by = (
        f"{ti.dag_id}.{ti.task_id} {context['run_id']} try {ti.try_number} "
        f"on {os.environ.get('POWEROPS_WORKER', socket.gethostname())}"
    )
    # The pool keeps Airflow's own tasks to one at a time; the lock also keeps out a CLI
    # command or `dvc repro` working on the same workspace.
    with workspace_lock(config, f"airflow {by}"), shared.synced(config, by, keep):
        yield config


def _task_alert(context: Any, status: str, summary: str, **details: Any) -> Any:
    """The alert about this task instance: key `airflow/<dag>/<task>`, the run in its details."""
    from powerops.core import alerts

    ti = context["ti"]
    return alerts.Alert(
        key=alerts.task_key(ti.dag_id, ti.task_id),
        severity="critical",
        source="airflow",
        summary=f"{ti.dag_id}.{ti.task_id} {summary} (run {context['run_id']})",
        details={"dag_id": ti.dag_id, "task_id": ti.task_id, "run_id": context["run_id"]} | details,
        status=status,
    )


class PowerOpsAlertNotifier(BaseNotifier):
    """Sends a task failure through powerops' one alerting interface (JSONL log + webhook)."""

    def notify(self, context: Any) -> None:
        from powerops.core import alerts

        exception = str(context.get("exception", ""))[:2000]
        try_number = context["ti"].try_number
        alert = _task_alert(context, "firing", "failed", exception=exception, try_number=try_number)
        alerts.emit(alert, params())


class PowerOpsResolveNotifier(BaseNotifier):
    """Resolves a task's open failure alert when the task next succeeds (in any run)."""

    def notify(self, context: Any) -> None:
        from powerops.core import alerts

        alert = _task_alert(context, "resolved", "succeeded")
        config = params()
        if alert.key in alerts.open_alerts(config, alert.key):
            alerts.emit(alert, config)


# Every task: a failure alerts, the next success resolves it (the view lists the open ones).
CALLBACKS: dict[str, Any] = {
    "on_failure_callback": PowerOpsAlertNotifier(),
    "on_success_callback": PowerOpsResolveNotifier(),
}

# A DAG a person triggers (rollback, backtest): no schedule, one run at a time, a retry would
# not change a refusal, and created unpaused (a manual DAG that starts paused queues a run
# nobody sees move).
MANUAL: dict[str, Any] = {
    "schedule": None,
    "start_date": datetime(2006, 12, 1),
    "catchup": False,
    "max_active_runs": 1,
    "is_paused_upon_creation": False,
    "default_args": DEFAULT_ARGS | CALLBACKS | {"retries": 0},
}

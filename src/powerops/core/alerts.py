"""The one alerting interface: every alert is appended to a JSONL log and, if configured,
POSTed as JSON to a webhook. A webhook that is down never breaks the pipeline; the log line
records whether delivery worked."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from powerops.core.config import AlertsConfig, Params

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Alert:
    """One alert event. `key` identifies the condition, so repeats can be deduplicated."""

    key: str
    severity: str  # "critical" | "warning" | "info"
    source: str
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    status: str = "firing"  # "firing" | "resolved"
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


def emit(alert: Alert, params: Params) -> dict[str, Any]:
    """Record the alert in the JSONL log and deliver it to the webhook; return the log record."""
    config: AlertsConfig = params.alerts
    record: dict[str, Any] = asdict(alert)
    if config.webhook_url:
        record["webhook"] = _post(config.webhook_url, asdict(alert), config.webhook_timeout_s)
    path = params.resolve(config.log)
    path.parent.mkdir(parents=True, exist_ok=True)
    # One short line per event: an append of that size is atomic on a local file system.
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, default=str) + "\n")
    log.warning("ALERT [%s] %s: %s", alert.severity, alert.key, alert.summary)
    return record


def read_log(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# Airflow task failures: `airflow/<dag>/<task>`, raised by the DAGs' failure callback and
# resolved by their success callback (dags/_powerops.py).
TASK_PREFIX = "airflow/"


def task_key(dag_id: str, task_id: str) -> str:
    return f"{TASK_PREFIX}{dag_id}/{task_id}"


def open_alerts(params: Params, prefix: str) -> dict[str, dict[str, Any]]:
    """The alerts whose key starts with `prefix` and whose latest event in the log fires."""
    latest = {
        event["key"]: event
        for event in read_log(params.resolve(params.alerts.log))
        if event["key"].startswith(prefix)
    }
    return {key: event for key, event in latest.items() if event["status"] == "firing"}


def _post(url: str, payload: dict[str, Any], timeout: float) -> str:
    request = urllib.request.Request(
        url,
        data=json.dumps(payload, default=str).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return f"delivered ({response.status})"
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        log.warning("alert webhook %s failed: %s", url, exc)
        return f"failed: {exc}"

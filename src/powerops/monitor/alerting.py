"""Monitoring's alerts: which conditions hold in a report, raised when they start and resolved
when they stop (deduplicated through `alert_state.json`), through `powerops.core.alerts`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from powerops.core import alerts
from powerops.core.config import Params
from powerops.core.storage import atomic_write_text
from powerops.monitor.events import load_json
from powerops.monitor.result import AlertChanges, Drift, DriftColumn, MonitorReport

SOURCE = "powerops.monitor"
ALERT_STATE_FILE = "alert_state.json"


@dataclass(frozen=True)
class Condition:
    severity: str
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


def conditions(report: MonitorReport) -> dict[str, Condition]:
    """Every alert condition that holds in the report, by alert key."""
    found: dict[str, Condition] = {}
    for slo in report.slos:
        for rule in slo.burn:
            if rule.firing and rule.long_burn is not None and rule.short_burn is not None:
                found[f"slo:{slo.name}:{rule.rule}"] = Condition(
                    rule.severity,
                    f"{slo.name} burns its error budget {rule.long_burn:.1f}x over "
                    f"{rule.long_days} d and {rule.short_burn:.1f}x over {rule.short_days} d "
                    f"(rule {rule.rule}: >= {rule.threshold}x)",
                    {"budget_remaining": slo.budget_remaining, "sli": slo.sli},
                )
    for key, (drifted, why) in drift_alerts(report.drift).items():
        details = {c.column: {"psi": c.psi, "wasserstein": c.wasserstein} for c in drifted}
        found[key] = Condition("warning", why, details)
    skew_rows = sum(day.feature_skew.bad for day in report.log.values())
    if skew_rows:
        found["feature_skew"] = Condition(
            "critical",
            f"{skew_rows} served rows had features that training would compute differently",
        )
    return found


def drift_alerts(section: Drift) -> dict[str, tuple[list[DriftColumn], str]]:
    """The drift alerts and their drifted columns.

    * `drift:data`: the load drifted, or at least `feature_share` of the history features did.
      The features all derive from the load, so a real change moves most of them; one alone
      (a weekly peak) moves from one year to the next and is shown, not alerted on.
    * `drift:prediction`: the forecasts drifted.
    """
    features = [c for c in section.columns if c.group == "features"]
    moved = [c for c in features if c.drifted]
    target = [c for c in section.columns if c.group == "target" and c.drifted]
    prediction = [c for c in section.columns if c.group == "prediction" and c.drifted]
    found: dict[str, tuple[list[DriftColumn], str]] = {}
    share = len(moved) / len(features) if features else 0.0
    if target or share >= section.feature_share:
        drifted = target + moved
        found["drift:data"] = (
            drifted,
            "the data drifted against the same season of the champion's training data: "
            + ", ".join(c.column for c in drifted),
        )
    if prediction:
        found["drift:prediction"] = (
            prediction,
            "the forecasts drifted against the champion's forecasts on its training data",
        )
    return found


def raise_and_resolve(params: Params, report: MonitorReport) -> AlertChanges:
    """Raise the conditions that started, resolve those that stopped; record which fire."""
    path = params.monitor_reports_dir / ALERT_STATE_FILE
    state: dict[str, Any] = load_json(path, {})
    now = conditions(report)
    raised, resolved = [], []
    for key, condition in now.items():
        if key not in state:
            _emit(
                params,
                key,
                condition.severity,
                report.date,
                condition.summary,
                condition.details | {"date": report.date},
            )
            state[key] = {
                "since": report.date,
                "severity": condition.severity,
                "summary": condition.summary,
                "details": condition.details,
            }
            raised.append(key)
    for key in sorted(set(state) - set(now)):
        details = {"date": report.date, "since": state[key]["since"]}
        summary = f"resolved: {state[key]['summary']}"
        _emit(params, key, state[key]["severity"], report.date, summary, details, "resolved")
        del state[key]
        resolved.append(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(state, indent=2, sort_keys=True))
    return AlertChanges(firing=sorted(state), raised=raised, resolved=resolved)


def _emit(
    params: Params,
    key: str,
    severity: str,
    day: str,
    summary: str,
    details: dict[str, Any],
    status: str = "firing",
) -> None:
    alerts.emit(
        alerts.Alert(
            key=key,
            severity=severity,
            source=SOURCE,
            summary=f"{day}: {summary}",
            details=details,
            status=status,
        ),
        params,
    )

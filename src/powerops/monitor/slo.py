"""Service level objectives from recorded SLI events: the error budget left and the
multi-window burn rates (the SRE workbook, chapter 5) of every SLO in `monitor.slos`."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from powerops.core.config import Params, SloConfig
from powerops.monitor.result import Burn, SloStatus

# SLIs recorded as counts per day: (events section, SLI key, key of the event count).
COUNTED_SLIS = {
    "outlier_rate": [("data_days", "outliers", "rows")],
    "schema_skew": [("data_days", "schema", "rows"), ("log_days", "schema", "events")],
    "latency": [("log_days", "latency", "events")],
}


def slo_events(slo: SloConfig, events: dict[str, Any], first: date, last: date) -> tuple[int, int]:
    """(events, bad) of one SLI over the days first..last inclusive."""
    total = bad = 0

    def days(section: str) -> list[dict[str, Any]]:
        return [v for k, v in events[section].items() if first <= date.fromisoformat(k) <= last]

    if slo.indicator == "live_wape":
        assert slo.threshold is not None
        for day in days("data_days"):
            live = day.get("live")
            if live and live["wape"] is not None:
                total += 1
                bad += live["wape"] > slo.threshold
    elif slo.indicator == "freshness":
        for run in days("runs"):
            total += 1
            bad += run["age_days"] is None or run["age_days"] > (slo.threshold or 0)
    else:
        for section, sli, events_key in COUNTED_SLIS[slo.indicator]:
            for day in days(section):
                total += day[sli][events_key]
                bad += day[sli]["bad"]
    return total, int(bad)


def evaluate_slos(
    params: Params, events: dict[str, Any], data_end: date, today: date
) -> list[SloStatus]:
    """Each SLO over its window: SLI, budget left, burn rates, and which burn-rate rules fire
    (both their windows burning at least that fast). Data SLIs count days before `data_end`;
    the freshness SLI counts monitor runs up to `today`."""
    return [_status(params, slo, events, data_end, today) for slo in params.monitor.slos]


def _status(
    params: Params, slo: SloConfig, events: dict[str, Any], data_end: date, today: date
) -> SloStatus:
    config = params.monitor
    allowed = 1.0 - slo.objective
    until = today if slo.indicator == "freshness" else data_end - timedelta(days=1)

    def burn(days: int) -> float | None:
        n, b = slo_events(slo, events, until - timedelta(days=days - 1), until)
        return None if n == 0 else (b / n) / allowed

    total, bad = slo_events(slo, events, until - timedelta(days=config.slo_window_days - 1), until)
    rules = []
    for rule in config.burn_rules:
        long, short = burn(rule.long_days), burn(rule.short_days)
        rules.append(
            Burn(
                rule=rule.name,
                severity=rule.severity,
                threshold=rule.burn_rate,
                long_days=rule.long_days,
                short_days=rule.short_days,
                long_burn=long,
                short_burn=short,
                firing=long is not None
                and short is not None
                and min(long, short) >= rule.burn_rate,
            )
        )
    return SloStatus(
        name=slo.name,
        indicator=slo.indicator,
        description=slo.description,
        objective=slo.objective,
        threshold=slo.threshold,
        events=total,
        bad=bad,
        sli=None if total == 0 else 1.0 - bad / total,
        budget_remaining=None if total == 0 else 1.0 - (bad / total) / allowed,
        burn=rules,
    )


def format_budget(budget: float) -> str:
    """The error budget left as a percentage: "0%" for float noise such as -2e-16, "-12%" for
    an overspent budget, never "-0%" (an overspend under half a percent keeps one digit)."""
    budget = round(budget, 9) + 0.0  # 1 - (bad/total)/allowed leaves ~1e-16; + 0.0 drops -0.0
    text = f"{budget:.0%}"
    return f"{budget * 100:.1g}%" if text == "-0%" else text

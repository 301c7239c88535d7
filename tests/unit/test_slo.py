"""Error budgets and multi-window burn rates from recorded SLI events."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from powerops.core.config import Params, load_params
from powerops.monitor.result import SloStatus
from powerops.monitor.slo import evaluate_slos
from tests.conftest import REPO


@pytest.fixture(scope="module")
def repo_params() -> Params:
    """The shipped SLOs and burn-rate rules."""
    return load_params(REPO / "params.yaml")


def events(wapes: dict[date, float], ages: dict[date, float] | None = None) -> dict[str, Any]:
    days = {
        str(day): {
            "live": {"wape": wape},
            "outliers": {"rows": 24, "bad": 0},
            "schema": {"rows": 24, "bad": 0},
        }
        for day, wape in wapes.items()
    }
    runs = {str(day): {"age_days": age} for day, age in (ages or {}).items()}
    return {"data_days": days, "log_days": {}, "runs": runs}


def slo(report: list[SloStatus], name: str) -> dict[str, Any]:
    return next(s for s in report if s.name == name).model_dump()


def rules(entry: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["rule"]: r for r in entry["burn"]}


START = date(2008, 3, 1)


def test_a_good_month_leaves_the_budget_and_fires_nothing(repo_params: Params) -> None:
    # 30 days, 3 of them bad (> 0.7): 10% bad against a 20% budget.
    wapes = {START + timedelta(days=i): (0.9 if i in (3, 10, 20) else 0.4) for i in range(30)}
    result = evaluate_slos(repo_params, events(wapes), START + timedelta(days=30), START)
    accuracy = slo(result, "forecast_accuracy")
    assert (accuracy["events"], accuracy["bad"]) == (30, 3)
    assert accuracy["sli"] == 0.9
    assert abs(accuracy["budget_remaining"] - 0.5) < 1e-9
    assert not any(r["firing"] for r in accuracy["burn"])


def test_a_bad_week_fires_both_rules_and_a_good_recent_window_resolves_them(
    repo_params: Params,
) -> None:
    wapes = {START + timedelta(days=i): (0.4 if i < 16 else 1.2) for i in range(30)}
    end = START + timedelta(days=30)
    accuracy = slo(evaluate_slos(repo_params, events(wapes), end, START), "forecast_accuracy")
    burn = rules(accuracy)
    assert burn["fast_burn"]["firing"] and burn["fast_burn"]["long_burn"] == pytest.approx(5.0)
    assert burn["slow_burn"]["firing"]
    assert accuracy["budget_remaining"] < 0
    # Two good days after it: the long windows still burn, the short ones do not.
    wapes |= {end: 0.3, end + timedelta(days=1): 0.3, end + timedelta(days=2): 0.3}
    later = end + timedelta(days=3)
    accuracy = slo(evaluate_slos(repo_params, events(wapes), later, START), "forecast_accuracy")
    burn = rules(accuracy)
    assert burn["slow_burn"]["long_burn"] >= 2.5 and burn["slow_burn"]["short_burn"] == 0
    assert not burn["fast_burn"]["firing"] and not burn["slow_burn"]["firing"]


def test_a_short_burst_does_not_page(repo_params: Params) -> None:
    wapes = {START + timedelta(days=i): (1.5 if i >= 28 else 0.4) for i in range(30)}
    result = evaluate_slos(repo_params, events(wapes), START + timedelta(days=30), START)
    burn = rules(slo(result, "forecast_accuracy"))
    assert (
        burn["fast_burn"]["short_burn"] == pytest.approx(5.0)
        and burn["fast_burn"]["long_burn"] < 3.5
    )
    assert not burn["fast_burn"]["firing"]


def test_no_events_means_no_verdict(repo_params: Params) -> None:
    result = evaluate_slos(repo_params, events({}), START, START)
    for entry in result:
        assert entry.sli is None and entry.budget_remaining is None
        assert not any(r.firing for r in entry.burn)


def test_freshness_counts_monitor_runs_up_to_the_run_date(repo_params: Params) -> None:
    today = date(2026, 11, 28)
    ages = {today - timedelta(days=i): 6000.0 for i in range(3)}
    result = evaluate_slos(repo_params, events({}, ages), date(2008, 12, 1), today)
    freshness = slo(result, "data_freshness")
    assert (freshness["events"], freshness["bad"]) == (3, 3)
    assert rules(freshness)["fast_burn"]["firing"]

"""How reports print numbers: the error budget left, missing burn rates, the gate's reasons,
and the kind of the MLflow experiment the UI opens."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from powerops.core.config import load_params
from powerops.model import registry
from powerops.model.forecasting import Evaluation
from powerops.model.training import gate_verdict
from powerops.monitor import monitoring, report
from powerops.monitor.result import Burn, SloStatus
from powerops.monitor.slo import format_budget
from tests.conftest import REPO

PARAMS = load_params(REPO / "params.yaml")
# An SLO of 90% with 1 bad event in 10 has spent exactly its budget; floats say -2.2e-16.
SPENT = 1.0 - (1 / 10) / (1 - 0.9)


def slo(budget: float | None, long_burn: float | None = None) -> SloStatus:
    burn = Burn(
        rule="fast",
        severity="page",
        threshold=14.4,
        long_days=3,
        short_days=1,
        long_burn=long_burn,
        short_burn=None,
        firing=False,
    )
    return SloStatus(
        name="forecast_accuracy",
        indicator="wape",
        description="d",
        objective=0.9,
        threshold=0.3,
        events=10,
        bad=1,
        sli=0.9,
        budget_remaining=budget,
        burn=[burn],
    )


@pytest.mark.parametrize(
    ("budget", "text"),
    [(SPENT, "0%"), (-0.0, "0%"), (0.5, "50%"), (-0.12, "-12%"), (-0.004, "-0.4%"), (1.0, "100%")],
)
def test_budget_left_is_never_minus_zero(budget: float, text: str) -> None:
    assert SPENT < 0  # the float noise this is about
    assert format_budget(budget) == text


def test_summary_and_html_report_print_a_spent_budget_as_zero() -> None:
    line = monitoring._slo_line(slo(SPENT))
    assert "budget left 0%" in line and "-0%" not in line
    assert "budget left -12%" in monitoring._slo_line(slo(-0.12))
    table = report._slo_table(SimpleNamespace(slos=[slo(SPENT)]))  # type: ignore[arg-type]
    assert "<td class=ok>0%</td>" in table
    assert "<td class=bad>-12%</td>" in report._slo_table(SimpleNamespace(slos=[slo(-0.12)]))  # type: ignore[arg-type]


def test_a_missing_burn_rate_prints_without_its_unit() -> None:
    table = report._slo_table(SimpleNamespace(slos=[slo(0.5, long_burn=2.0)]))  # type: ignore[arg-type]
    assert "2.00x / 3 d" in table
    assert "n/a</span> / 1 d" in table
    assert "n/a</span>x" not in table


def scores(wape: float) -> Evaluation:
    naive = {"wape": 0.6, "mae": 0.6, "rmse": 0.6}
    return Evaluation(
        {"wape": wape, "mae": wape, "rmse": wape},
        {"seasonal_naive": naive, "persistence": naive},
        100,
    )


def test_gate_reason_shows_the_digits_that_decide() -> None:
    gate = PARAMS.gate.model_copy(update={"significance": None})  # the point rule alone
    params = PARAMS.model_copy(update={"gate": gate})
    ok, reasons = gate_verdict(params, scores(0.43810), scores(0.43807))
    assert not ok
    assert reasons[2] == "FAIL: wape 0.43810 vs champion 0.43807 (+0.00003, must be < 0.43807)"
    ok, reasons = gate_verdict(params, scores(0.43807), scores(0.43810))
    assert ok and reasons[2].startswith("pass: wape 0.43807 vs champion 0.43810 (-0.00003")


def test_the_experiment_is_created_as_classic_ml(tmp_path: Path) -> None:
    params = PARAMS.model_copy(update={"root": tmp_path})  # a real, empty embedded store
    experiment = registry.client(params).get_experiment(registry.experiment_id(params))
    # MLflow 3's UI: "custom_model_development" is "Model training", not the GenAI overview
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"

"""The promotion gate and the training cadence, as pure functions."""

from pathlib import Path

import pytest
import yaml

from powerops.core.config import ConfigError, load_params, parse_params
from powerops.data.catalog import BatchRef, DatasetRecord, VersionRecord
from powerops.model.forecasting import Evaluation
from powerops.model.training import config_hash, due_versions, gate_verdict

REPO = Path(__file__).resolve().parents[2]
PARAMS = load_params(REPO / "params.yaml")


def scores(wape: float, naive: float = 0.60, persistence: float = 0.70) -> Evaluation:
    return Evaluation(
        model={"wape": wape, "mae": wape, "rmse": wape},
        baselines={
            "seasonal_naive": {"wape": naive, "mae": naive, "rmse": naive},
            "persistence": {"wape": persistence, "mae": persistence, "rmse": persistence},
        },
        rows=100,
    )


# The point rules alone: tests/unit/test_significance.py covers the paired test.
POINT = PARAMS.model_copy(update={"gate": PARAMS.gate.model_copy(update={"significance": None})})


def test_gate_needs_margin_over_the_best_baseline_budget_and_champion() -> None:
    assert gate_verdict(POINT, scores(0.44), None)[0]
    ok, reasons = gate_verdict(POINT, scores(0.58), None)  # within 5% of seasonal naive
    assert not ok
    assert reasons[0] == (
        "FAIL: wape 0.5800 vs best baseline seasonal naive 0.6000 (-0.0200, must be <= 0.5700)"
    )
    ok, reasons = gate_verdict(POINT, scores(0.52, naive=0.90), None)  # beats naive, over budget
    assert not ok and reasons[1].startswith("FAIL: wape 0.5200 within the error budget")
    assert gate_verdict(POINT, scores(0.43), scores(0.44))[0]
    ok, reasons = gate_verdict(POINT, scores(0.44), scores(0.44))  # a tie keeps the champion
    assert not ok and reasons[2].startswith("FAIL: wape 0.4400 vs champion")


def test_the_best_configured_baseline_sets_the_bar() -> None:
    # 2010-like: persistence (0.50) beats seasonal naive (0.60); 0.50 clears naive, not persistence.
    ok, reasons = gate_verdict(POINT, scores(0.50, naive=0.60, persistence=0.50), None)
    assert not ok and reasons[0].startswith("FAIL: wape 0.5000 vs best baseline persistence 0.5")
    assert gate_verdict(POINT, scores(0.47, naive=0.60, persistence=0.50), None)[0]
    # With seasonal naive alone configured, persistence no longer counts.
    naive_only = POINT.model_copy(
        update={"gate": POINT.gate.model_copy(update={"baselines": ("seasonal_naive",)})}
    )
    ok, reasons = gate_verdict(naive_only, scores(0.50, naive=0.60, persistence=0.50), None)
    assert ok and reasons[0].startswith("pass: wape 0.5000 vs best baseline seasonal naive")
    # A configured baseline that was not scored fails the rule instead of being skipped.
    year_ago = POINT.model_copy(
        update={"gate": POINT.gate.model_copy(update={"baselines": ("year_ago", "persistence")})}
    )
    ok, reasons = gate_verdict(year_ago, scores(0.30), None)
    assert not ok and "['year_ago'] were not scored" in reasons[0]


def record(latest: int) -> DatasetRecord:
    def version(number: int) -> VersionRecord:
        batch = BatchRef(month="2007-01", file="f", sha256="s", raw_sha256="s", rows=1)
        return VersionRecord(
            version=number,
            content_hash="c",
            dvc_md5="d",
            parent=None,
            added=batch,
            first_month="2006-12",
            last_month="2007-01",
            month_count=number,
            rows=1,
            created_at="t",
        )

    return DatasetRecord(
        name="d", description="", owner="", versions=[version(n) for n in range(1, latest + 1)]
    )


def test_cadence_replays_history_then_trains_each_new_version() -> None:
    fingerprint = config_hash(PARAMS)
    assert due_versions(record(12), PARAMS, set()) == []  # first year incomplete
    assert due_versions(record(24), PARAMS, set()) == [13, 16, 19, 22, 24]
    trained = {(v, fingerprint) for v in (13, 16, 19, 22, 24)}
    assert due_versions(record(24), PARAMS, trained) == []
    assert due_versions(record(25), PARAMS, trained) == [25]


def test_a_new_configuration_trains_one_challenger_on_the_latest_version() -> None:
    trained = {(v, config_hash(PARAMS)) for v in (13, 16, 19, 22, 24)}
    crippled = PARAMS.model_copy(
        update={"train": PARAMS.train.model_copy(update={"estimator_params": {"max_iter": 1}})}
    )
    assert config_hash(crippled) != config_hash(PARAMS)
    assert due_versions(record(24), crippled, trained) == [24]


def test_training_caps_openmp_threads_at_the_configured_number() -> None:
    from sklearn.ensemble import HistGradientBoostingRegressor  # loads OpenMP
    from threadpoolctl import threadpool_info

    from powerops.model.forecasting import compute_threads

    assert HistGradientBoostingRegressor is not None
    two = PARAMS.model_copy(update={"train": PARAMS.train.model_copy(update={"threads": 2})})
    for params, expected in ((PARAMS, 1), (two, 2)):
        with compute_threads(params):
            openmp = [p for p in threadpool_info() if p["user_api"] == "openmp"]
            assert openmp and all(p["num_threads"] == expected for p in openmp)


def test_gate_settings_name_baselines_and_allow_switching_the_test_off() -> None:
    data = yaml.safe_load((REPO / "params.yaml").read_text())
    assert PARAMS.gate.baselines == ("seasonal_naive", "persistence")
    assert PARAMS.gate.significance == 0.05
    data["gate"] |= {"baselines": ["year_ago"], "significance": None}
    parsed = parse_params(data, REPO)
    assert parsed.gate.baselines == ("year_ago",) and parsed.gate.significance is None
    for bad, says in (
        ({"baselines": ["last_year"]}, r"gate\.baselines\.0: .*'year_ago'"),
        ({"baselines": []}, r"gate\.baselines: "),
        ({"significance": 0}, r"gate\.significance: "),
        (
            {"min_improvement_vs_seasonal_naive": 0.05},
            r"min_improvement_vs_seasonal_naive: unknown",
        ),
    ):
        shipped = yaml.safe_load((REPO / "params.yaml").read_text())
        shipped["gate"] |= bad
        with pytest.raises(ConfigError, match=says):
            parse_params(shipped, REPO)

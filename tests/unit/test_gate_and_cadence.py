"""The promotion gate and the training cadence, as pure functions."""

from pathlib import Path

from powerops.core.config import load_params
from powerops.data.catalog import BatchRef, DatasetRecord, VersionRecord
from powerops.model.forecasting import Evaluation
from powerops.model.training import config_hash, due_versions, gate_verdict

REPO = Path(__file__).resolve().parents[2]
PARAMS = load_params(REPO / "params.yaml")


def scores(wape: float, naive: float = 0.60) -> Evaluation:
    return Evaluation(
        model={"wape": wape, "mae": wape, "rmse": wape},
        baselines={
            "seasonal_naive": {"wape": naive, "mae": naive, "rmse": naive},
            "persistence": {"wape": 0.7, "mae": 0.7, "rmse": 0.7},
        },
        rows=100,
    )


def test_gate_needs_margin_over_seasonal_naive_budget_and_champion() -> None:
    assert gate_verdict(PARAMS, scores(0.44), None)[0]
    ok, reasons = gate_verdict(
        PARAMS, scores(0.58), None
    )  # within 5% of seasonal naive (0.57 needed)
    assert not ok and reasons[0].startswith("FAIL: wape 0.5800 vs seasonal naive")
    ok, reasons = gate_verdict(PARAMS, scores(0.52, naive=0.90), None)  # beats naive, over budget
    assert not ok and reasons[1].startswith("FAIL: wape 0.5200 within the error budget")
    assert gate_verdict(PARAMS, scores(0.43), scores(0.44))[0]
    ok, reasons = gate_verdict(
        PARAMS, scores(0.44), scores(0.44)
    )  # a tie does not replace the champion
    assert not ok and reasons[2].startswith("FAIL: wape 0.4400 vs champion")


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

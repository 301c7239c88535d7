"""The baselines a model must beat, and how `evaluate` scores them: on synthetic hourly tables
whose value encodes the hour it belongs to, so a baseline's value tells where it was read."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from powerops.core.config import Params, load_params
from powerops.model import forecasting
from powerops.model.forecasting import Evaluation, ForecastError, baselines, evaluate
from powerops.model.training import EVALUATION_TAG_LIMIT, evaluation_tag

REPO = Path(__file__).resolve().parents[2]
PARAMS = load_params(REPO / "params.yaml")
START = pd.Timestamp("2007-01-01")


def hourly(days: int, start: pd.Timestamp = START) -> pd.DataFrame:
    """`days` days of hours; the value is the hour's number since START."""
    timestamps = pd.date_range(start, periods=days * 24, freq="1h")
    hours = (timestamps - START) / pd.Timedelta(hours=1)
    return pd.DataFrame({"timestamp": timestamps, "load_kw": np.asarray(hours, dtype="float64")})


def with_gate(params: Params, **gate: object) -> Params:
    return params.model_copy(update={"gate": params.gate.model_copy(update=gate)})


def test_year_ago_is_the_same_hour_52_weeks_earlier() -> None:
    frame = hourly(400)
    year_ago = baselines(frame, PARAMS)["year_ago"]
    late = frame["timestamp"] >= START + pd.Timedelta(days=364)
    np.testing.assert_array_equal(year_ago[late], frame.loc[late, "load_kw"] - 364 * 24)
    assert year_ago[~late].isna().all()  # no data a year before
    weekday = frame.loc[late, "timestamp"] - pd.Timedelta(days=364)
    assert (weekday.dt.day_of_week == frame.loc[late, "timestamp"].dt.day_of_week).all()


def test_no_baseline_reads_past_the_forecast_origin() -> None:
    frame = hourly(400)
    before = baselines(frame, PARAMS)
    for day in pd.date_range("2007-12-31", periods=5, freq="7D"):
        future = frame["timestamp"] >= day
        changed = frame.assign(load_kw=frame["load_kw"].where(~future, 99.0))
        blanked = frame.assign(load_kw=frame["load_kw"].where(~future, np.nan))
        rows = (frame["timestamp"] >= day) & (frame["timestamp"] < day + pd.Timedelta(days=1))
        assert before.loc[rows, "year_ago"].notna().all()
        for other in (changed, blanked):
            pd.testing.assert_frame_equal(baselines(other, PARAMS)[rows], before[rows])


def test_year_ago_past_the_origin_is_missing_not_read() -> None:
    # 400-day blocks: late in a block, 364 days back is still after the block's origin.
    daily = PARAMS.model_copy(
        update={
            "table": PARAMS.table.model_copy(update={"frequency": "1D"}),
            "forecast": PARAMS.forecast.model_copy(update={"horizon": 400}),
        }
    )
    timestamps = pd.date_range("1970-01-01", periods=800, freq="1D")
    frame = pd.DataFrame({"timestamp": timestamps, "load_kw": np.arange(800.0)})
    year_ago = baselines(frame, daily)["year_ago"]
    since_origin = np.arange(800) % 400
    reads_the_future = since_origin >= 364
    assert year_ago[reads_the_future].isna().all()
    allowed = ~reads_the_future & (np.arange(800) >= 364)
    np.testing.assert_array_equal(year_ago[allowed], np.arange(800)[allowed] - 364)


def pinned_like(history_days: int, params: Params) -> pd.DataFrame:
    """Two target weeks after `history_days` days of history, a daily and weekly pattern."""
    frame = hourly(history_days + 14)
    hour = frame["timestamp"].dt.hour
    weekday = frame["timestamp"].dt.day_of_week
    noise = np.random.default_rng(0).normal(0, 0.2, len(frame))
    frame["load_kw"] = 1 + np.sin(hour / 24 * 2 * np.pi) + 0.3 * (weekday >= 5) + noise
    cut = START + pd.Timedelta(days=history_days)
    frame["role"] = np.where(frame["timestamp"] >= cut, "target", "history")
    return frame


def fitted(params: Params) -> object:
    """A real pipeline, quickly fitted on eight weeks of the same pattern."""
    small = params.train.model_copy(update={"estimator_params": {"max_iter": 10}})
    params = params.model_copy(update={"train": small})
    frame = pinned_like(56, params)
    return forecasting.fit(forecasting.make_pipeline(params), frame, frame["role"] == "history")


def test_evaluate_scores_the_configured_baselines_on_the_same_rows() -> None:
    frame = pinned_like(7, PARAMS)  # what the pinned test set stores: a week of history
    evaluation = evaluate(fitted(PARAMS), frame, PARAMS)
    assert evaluation.rows == 14 * 24
    assert set(evaluation.baselines) == {"seasonal_naive", "persistence"}
    with_year_ago = with_gate(PARAMS, baselines=("seasonal_naive", "year_ago"))
    with pytest.raises(ForecastError, match="year_ago reads 364 days back"):
        evaluate(fitted(PARAMS), frame, with_year_ago)

    frame = pinned_like(371, PARAMS)  # a year of history: year-ago exists on every target row
    evaluation = evaluate(fitted(PARAMS), frame, with_year_ago)
    assert evaluation.rows == 14 * 24
    assert set(evaluation.baselines) == {"seasonal_naive", "persistence", "year_ago"}
    actual = frame.loc[frame["role"] == "target", "load_kw"]
    expected = forecasting.metrics(actual, baselines(frame, PARAMS).loc[actual.index, "year_ago"])
    assert evaluation.baselines["year_ago"] == pytest.approx(expected)


def test_evaluate_keeps_the_model_daily_losses() -> None:
    frame = pinned_like(7, PARAMS)
    evaluation = evaluate(fitted(PARAMS), frame, PARAMS)
    assert evaluation.days == [f"2007-01-{day:02d}" for day in range(8, 22)]
    absolute, squared = evaluation.losses("wape"), evaluation.losses("rmse")
    assert evaluation.losses("mae") == absolute and len(absolute) == len(squared) == 14
    total = frame.loc[frame["role"] == "target", "load_kw"].abs().sum()
    assert sum(absolute) / total == pytest.approx(evaluation.model["wape"], rel=1e-5)
    assert (sum(squared) / evaluation.rows) ** 0.5 == pytest.approx(
        evaluation.model["rmse"], rel=1e-5
    )


def test_the_evaluation_tag_keeps_84_days_of_losses_within_the_limit() -> None:
    def tagged(days: int) -> dict[str, object]:
        losses = {"absolute": [123.456789] * days, "squared": [1234.56789] * days}
        scores = {"wape": 0.438064, "mae": 0.5, "rmse": 0.7}
        evaluation = Evaluation(
            scores, {"seasonal_naive": scores}, days * 24, ["2007-01-08"] * days, losses
        )
        text = evaluation_tag(asdict(evaluation))
        assert len(text) <= EVALUATION_TAG_LIMIT
        loaded: dict[str, object] = json.loads(text)
        return loaded

    assert len(tagged(84)["days"]) == 84  # type: ignore[arg-type]
    assert tagged(400)["daily_loss"] == {}  # too long: the scores alone

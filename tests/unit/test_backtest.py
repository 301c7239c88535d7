"""The walk-forward backtest (powerops.model.backtest) on a synthetic hourly series: origins,
refit cadence, scores per horizon step, and no forecast that reads past its origin."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from powerops.core.config import Params, load_params
from powerops.model import backtest, forecasting
from tests.conftest import REPO


@pytest.fixture
def params(tmp_path: Path) -> Params:
    loaded = load_params(REPO / "params.yaml")
    estimator = {"max_iter": 30}  # small: the point is the walk, not the model
    train = loaded.train.model_copy(update={"estimator_params": estimator})
    return loaded.model_copy(update={"root": tmp_path, "train": train})


def series(weeks: int = 9) -> pd.DataFrame:
    """Hourly load with a daily and a weekly cycle and noise."""
    hours = pd.date_range("2009-01-05", periods=weeks * 7 * 24, freq="h")
    rng = np.random.default_rng(19)
    daily = 1 + 0.8 * np.sin(2 * np.pi * hours.hour / 24)
    weekly = 1 + 0.3 * (hours.dayofweek >= 5)
    load = daily * weekly + rng.normal(0, 0.1, len(hours))
    return pd.DataFrame(
        {"timestamp": hours.astype("datetime64[us]"), "load_kw": load, "coverage": 1.0}
    )


def walk(
    params: Params, table: pd.DataFrame, refit_every: int, last: str = "2009-03-08"
) -> backtest.Backtest:
    chosen = backtest.overridden(params, refit_every=refit_every)
    start, end = pd.Timestamp("2009-02-23"), pd.Timestamp(last)
    rows = pd.Series(True, index=table.index)
    return backtest.walk_forward(table, rows, chosen, start, end)


def test_origins_refits_and_scores_per_step(params: Params) -> None:
    table = series()
    weekly = walk(params, table, 7)
    assert (weekly.origins, weekly.refits, weekly.rows) == (14, 2, 14 * 24)
    assert list(weekly.steps["step"]) == list(range(1, 25))
    # year_ago would need a year of history: only the gate's baselines are scored here.
    assert set(weekly.overall) == {"model", "seasonal_naive", "persistence"}
    # The cycles are learnable: the model beats "same hour last week" on this series.
    assert weekly.ratios()["rmse"] < 1
    assert walk(params, table, 1, last="2009-02-25").refits == 3
    assert walk(params, table, 0, last="2009-02-25").refits == 1
    with pytest.raises(forecasting.ForecastError, match=r"backtest\.refit_every"):
        backtest.overridden(params, refit_every=-1)


def test_no_forecast_reads_past_its_origin(params: Params) -> None:
    """Whatever happens after an origin, the forecasts made at it do not change: the fit
    before it and its features read only the past."""
    table = series()
    before = walk(params, table, 7).forecasts
    future = table.copy()
    first_origin = pd.Timestamp("2009-02-23")
    later = future["timestamp"] >= first_origin
    future.loc[later, "load_kw"] = future.loc[later, "load_kw"] * 5 + 3
    after = walk(params, future, 7).forecasts
    block = before["timestamp"] < first_origin + pd.Timedelta(days=1)
    assert block.sum() == 24
    assert np.array_equal(before.loc[block, "model"], after.loc[block, "model"])
    assert not np.array_equal(before["model"], after["model"])  # later origins did change


def test_too_little_history_is_an_error_naming_the_setting(params: Params) -> None:
    table = series(weeks=2)
    rows = pd.Series(True, index=table.index)
    with pytest.raises(forecasting.ForecastError, match=r"backtest\.start"):
        backtest.walk_forward(table, rows, params, *table["timestamp"][[10, 200]])


def test_weekly_blocks_start_on_the_configured_day(params: Params) -> None:
    """Daily rows, 7-day blocks from Sundays (forecast.week_start): every origin the walk
    forecasts from is a Sunday, and a block's steps run Sunday to Saturday."""
    hourly = series(weeks=30)
    daily = hourly.set_index("timestamp").resample("1D").mean().reset_index()
    table = params.table.model_copy(update={"frequency": "1D"})
    forecast = params.forecast.model_copy(
        update={"horizon": 7, "lags": (7, 14), "windows": (7,), "week_start": "sunday"}
    )
    weekly = backtest.overridden(
        params.model_copy(update={"table": table, "forecast": forecast}), refit_every=1
    )
    rows = pd.Series(True, index=daily.index)
    start, end = pd.Timestamp("2009-05-01"), pd.Timestamp("2009-07-05")
    result = backtest.walk_forward(daily, rows, weekly, start, end)
    origins = result.forecasts["timestamp"][result.forecasts["timestamp"].dt.dayofweek == 6]
    assert result.origins == 10 and len(origins) == 10
    assert list(result.steps["step"]) == list(range(1, 8))
    first = result.forecasts["timestamp"].min()
    assert first == pd.Timestamp("2009-05-03") and first.day_name() == "Sunday"

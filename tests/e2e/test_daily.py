"""A daily, 7-day-ahead forecaster with Sunday weeks, from params.yaml alone, through the real
stack: six synthetic months ingested, validated and published, trained with the test values
blanked (`test_set.embargo: values`), registered, and `powerops score` forecasting the whole
week of the block that holds the day asked for, and monitoring that does not call 30 daily
rows drift."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from powerops.core.config import load_params
from powerops.data import stages
from powerops.model import training
from powerops.monitor import monitoring
from powerops.serve import scoring
from tests.conftest import make_workspace, minute_readings, set_params

# Through the real stack: `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow


def weekly_readings(start: str, end: str) -> pd.DataFrame:
    """Synthetic minute readings whose days follow a weekly profile (weekends 60% higher)
    with a random level each day: something a daily model can learn and a naive cannot."""
    frame = minute_readings(start, end, noise=True)
    days = frame["date_time"].dt.normalize()
    weekend = (days.dt.day_of_week >= 5).to_numpy()
    level = np.random.default_rng(7).normal(0, 0.08, len(frame) // 1440 + 1)
    day_number = ((days - days.iloc[0]).dt.days).to_numpy()
    factor = (1 + 0.6 * weekend) * (1 + level[day_number])
    power = frame["Global_active_power"] * factor
    intensity = np.sqrt(power**2 + frame["Global_reactive_power"] ** 2) * 1000 / frame["Voltage"]
    return frame.assign(Global_active_power=power, Global_intensity=np.round(intensity / 0.2) * 0.2)


def test_a_daily_week_ahead_model_trains_and_scores_the_whole_week(tmp_path: Path) -> None:
    source = tmp_path / "meter.parquet"
    weekly_readings("2008-01-01", "2008-07-01").to_parquet(source, index=False)
    workspace = make_workspace(
        tmp_path / "ws",
        source,
        start="2008-01",
        through="2008-06",
        validation={"collection_start": None, "collection_end": None},
    )
    set_params(
        workspace,
        table={"frequency": "1D"},
        forecast={"horizon": 7, "lags": [7, 14], "windows": [7, 28], "week_start": "sunday"},
        test_set={"months": 2, "embargo": "values"},
        train={"first_version": 6, "estimator_params": {"max_iter": 50, "random_state": 0}},
        gate={"significance": None, "max_wape": 1.0},
    )
    params = load_params(workspace / "params.yaml")
    stages.ingest(params)
    stages.validate(params)
    assert len(stages.publish(params, push=False)) == 6
    (result,) = training.train(params, by="test")
    assert result.promoted, result.verdict

    # Wednesday 2008-06-25: the block is the week from Sunday the 22nd, seven daily rows.
    batch = scoring.score(params, date(2008, 6, 25))
    forecast = pd.read_parquet(batch.path)
    assert (batch.day, batch.periods) == (date(2008, 6, 22), 7)
    assert batch.path.parent.name == "2008-06-22"
    assert forecast["timestamp"].tolist() == list(pd.date_range("2008-06-22", periods=7))
    assert forecast["load_kw"].between(0.5, 3).all()
    weekend = forecast["load_kw"].iloc[[0, 6]]  # Sunday and Saturday: the weekly profile
    assert weekend.min() > forecast["load_kw"].iloc[1:6].max()
    # Any day of that week gives the same file, written once.
    again = scoring.score(params, date(2008, 6, 28))
    assert not again.written and again.path == batch.path

    # Monitoring April, inside the champion's own training data: 30 daily rows are too few to
    # judge drift (monitor.drift.min_rows), and the report says so instead of alerting.
    report = monitoring.monitor(params, date(2008, 5, 1))
    assert report.drift.drifted == [] and "drift:data" not in report.alerts.firing
    assert "30 days in the window, fewer than monitor.drift.min_rows (100)" in (
        report.drift.note or ""
    )
    assert "window 2008-04-01..2008-05-01, 30 days," in monitoring.summary_lines(report)[0]

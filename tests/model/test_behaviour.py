"""Model behaviour: invariance, direction, minimum functionality and no leakage."""

from __future__ import annotations

import numpy as np
import pandas as pd

from powerops.model import forecasting
from powerops.model.features import forecast_origin
from tests.model.conftest import Trained


def first_test_week(trained: Trained) -> pd.DataFrame:
    frame = trained.test_frame
    week = frame["timestamp"] < frame.loc[
        frame["role"] == "target", "timestamp"
    ].min() + pd.Timedelta(days=7)
    return frame.loc[week, ["timestamp", "load_kw"]].reset_index(drop=True)


def predict(trained: Trained, frame: pd.DataFrame) -> np.ndarray:
    return np.asarray(trained.pipeline.predict(frame))  # type: ignore[attr-defined]


def test_column_order_and_irrelevant_columns_do_not_change_predictions(trained: Trained) -> None:
    frame = first_test_week(trained)
    baseline = predict(trained, frame)
    reordered = frame[["load_kw", "timestamp"]]
    extra = frame.assign(voltage=230.0, note="irrelevant", load_kw_copy=frame["load_kw"] * 2)
    np.testing.assert_array_equal(predict(trained, reordered), baseline)
    np.testing.assert_array_equal(predict(trained, extra), baseline)


def test_row_order_does_not_change_predictions(trained: Trained) -> None:
    frame = first_test_week(trained)
    shuffled = frame.sample(frac=1.0, random_state=3)
    aligned = pd.Series(predict(trained, shuffled), index=shuffled.index).sort_index()
    np.testing.assert_allclose(aligned.to_numpy(), predict(trained, frame))


def test_higher_recent_consumption_raises_the_forecast(trained: Trained) -> None:
    # Each forecast reads only history before its origin, so raising every actual by 20%
    # raises the history behind every forecast of the pinned test set.
    frame = trained.test_frame[["timestamp", "load_kw"]]
    targets = (trained.test_frame["role"] == "target").to_numpy()
    before = predict(trained, frame)[targets].mean()
    after = predict(trained, frame.assign(load_kw=frame["load_kw"] * 1.2))[targets].mean()
    assert after > before * 1.1


def test_predictions_ignore_everything_at_or_after_the_origin(trained: Trained) -> None:
    frame = first_test_week(trained)
    origin = forecast_origin(frame["timestamp"], "1h", 24)
    baseline = predict(trained, frame)
    # Rewrite each day's actuals, then blank them: the forecast for that day must not move.
    for day in origin.unique()[-3:]:
        future = frame["timestamp"] >= day
        changed = frame.assign(load_kw=frame["load_kw"].where(~future, 99.0))
        blanked = frame.assign(load_kw=frame["load_kw"].where(~future, np.nan))
        rows = (origin == day).to_numpy()
        np.testing.assert_array_equal(predict(trained, changed)[rows], baseline[rows])
        np.testing.assert_array_equal(predict(trained, blanked)[rows], baseline[rows])


def test_model_beats_seasonal_naive_on_the_pinned_test_set(trained: Trained) -> None:
    evaluation = forecasting.evaluate(trained.pipeline, trained.test_frame, trained.params)
    margin = trained.params.gate.min_improvement_vs_baseline
    assert evaluation.rows == 12 * 7 * 24
    naive = evaluation.baselines["seasonal_naive"]["wape"]
    assert evaluation.model["wape"] < naive * (1 - margin)
    assert evaluation.model["wape"] < evaluation.baselines["persistence"]["wape"]


def test_training_rows_never_touch_the_test_weeks(trained: Trained) -> None:
    from powerops.model import testset

    manifest = testset.load_manifest(trained.params)
    assert manifest is not None
    used = trained.table.loc[trained.train_rows, "timestamp"]
    testset.assert_no_overlap(used, manifest, trained.params)
    targets = trained.test_frame.loc[trained.test_frame["role"] == "target", "timestamp"]
    assert not set(targets) & set(used)


def test_daily_seven_day_forecast_is_a_configuration_change(trained: Trained) -> None:
    table = trained.table.set_index("timestamp").resample("1D").agg({"load_kw": "mean"})
    daily = table.reset_index().assign(coverage=1.0)
    params = trained.params.model_copy(
        update={
            "table": trained.params.table.model_copy(update={"frequency": "1D"}),
            "forecast": trained.params.forecast.model_copy(
                update={"horizon": 7, "lags": (7, 14), "windows": (7, 28)}
            ),
        }
    )
    rows = pd.Series(True, index=daily.index)
    pipeline = forecasting.fit(forecasting.make_pipeline(params), daily, rows)
    features = pipeline[:-1].transform(daily)
    assert set(features["history__step"].dropna().unique()) == set(range(1, 8))
    assert np.isfinite(pipeline.predict(daily)).all()

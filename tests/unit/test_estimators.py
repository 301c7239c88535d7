"""Any scikit-learn regressor from params.yaml alone: each one fits on a synthetic hourly frame,
is scored on a test week, builds its monitoring reference and is served by the service's own
code (`serving.served_model`, what `serving.load` returns) with the pipeline's predictions.

`train.preprocess` imputes (and scales) the features for estimators that take no NaN; the
features that drift, skew and the prediction log compare stay the raw ones.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from powerops.core.config import ConfigError, Params, parse_params
from powerops.model import forecasting, reference, skew
from powerops.model.forecasting import ForecastError, features_of, predictor_of
from powerops.model.training import config_hash
from powerops.serve import serving

REPO = Path(__file__).resolve().parents[2]
START = pd.Timestamp("2008-01-07")  # a Monday
DAYS = 35
TEST_WEEK = START + pd.Timedelta(days=28)  # the last week is the test week

CASES = {
    "ridge": ("sklearn.linear_model.Ridge", {"alpha": 1.0}, "impute_scale", "ordinal"),
    "lasso": ("sklearn.linear_model.Lasso", {"alpha": 0.001}, "impute_scale", "ordinal"),
    "random_forest": (
        "sklearn.ensemble.RandomForestRegressor",
        {"n_estimators": 10, "min_samples_leaf": 3, "random_state": 0, "n_jobs": 1},
        "none",
        "ordinal",
    ),
    "extra_trees": (
        "sklearn.ensemble.ExtraTreesRegressor",
        {"n_estimators": 10, "min_samples_leaf": 3, "random_state": 0, "n_jobs": 1},
        "impute",
        "ordinal",
    ),
    "hist_gradient_boosting": (
        "sklearn.ensemble.HistGradientBoostingRegressor",
        {"max_iter": 30, "random_state": 0},
        "none",
        "ordinal",
    ),
    "ridge_onehot_calendar": ("sklearn.linear_model.Ridge", {"alpha": 1.0}, "impute", "onehot"),
}


def shipped() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO / "params.yaml").read_text())
    return data


def params_for(estimator: str, arguments: dict[str, Any], preprocess: str, calendar: str) -> Params:
    data = shipped()
    data["train"] |= {
        "estimator": estimator,
        "estimator_params": arguments,
        "preprocess": preprocess,
    }
    data["forecast"]["calendar"] = calendar
    return parse_params(data, REPO)


def hourly_frame() -> pd.DataFrame:
    """Five weeks of hourly load with a daily and a weekly profile, noise and a gap (NaN)."""
    timestamps = pd.Series(pd.date_range(START, periods=24 * DAYS, freq="1h", unit="us"))
    hour = timestamps.dt.hour.to_numpy()
    weekend = (timestamps.dt.day_of_week >= 5).to_numpy()
    noise = np.random.default_rng(3).normal(0, 0.05, len(timestamps))
    load = 1.0 + 0.5 * np.sin(hour / 24 * 2 * np.pi) + 0.4 * weekend + noise
    frame = pd.DataFrame({"timestamp": timestamps, "load_kw": load, "coverage": 1.0})
    frame.loc[100:110, "load_kw"] = np.nan  # a gap in the history
    return frame


def pinned_weeks(frame: pd.DataFrame) -> pd.DataFrame:
    """The last two weeks: a week of history, then the test week."""
    test = frame[frame["timestamp"] >= TEST_WEEK - pd.Timedelta(days=7)].copy()
    test["role"] = np.where(test["timestamp"] >= TEST_WEEK, "target", "history")
    return test


def request_frame(frame: pd.DataFrame, forecast_days: int) -> pd.DataFrame:
    """What a client sends: eight days of history, then days to forecast (load unknown)."""
    end = frame["timestamp"].iloc[-1] + pd.Timedelta(hours=1)
    start = end - pd.Timedelta(days=8 + forecast_days)
    request = frame[frame["timestamp"] >= start].reset_index(drop=True)
    request.loc[request["timestamp"] >= end - pd.Timedelta(days=forecast_days), "load_kw"] = np.nan
    return request


def served_predictions(served: serving.Served, request: pd.DataFrame, rows: np.ndarray) -> Any:
    """The service's path: the request as NumPy columns, its features, the served model."""
    columns = {name: request[name].to_numpy() for name in served.reference.input_schema}
    return served.predict(served.features(columns, rows))


@pytest.mark.parametrize("case", list(CASES))
def test_each_estimator_trains_evaluates_and_serves_what_the_pipeline_predicts(case: str) -> None:
    params = params_for(*CASES[case])
    frame = hourly_frame()
    rows = frame["timestamp"] < TEST_WEEK
    with threadpool_limits(limits=1):
        pipeline = forecasting.fit(forecasting.make_pipeline(params), frame, rows)
        scores = forecasting.evaluate(pipeline, pinned_weeks(frame), params)
        document, detector = reference.build(params, pipeline, frame, rows)
    assert scores.rows == 7 * 24
    # A model that learnt the profile: far better than a constant, and as good as last week.
    assert scores.model["wape"] < 0.1
    assert scores.model["wape"] < 1.5 * scores.baselines["seasonal_naive"]["wape"]

    served = serving.served_model(
        params, "1", pipeline, reference.Reference.from_bytes(document, detector)
    )
    assert served.feature_names == list(features_of(pipeline).get_feature_names_out())
    request = request_frame(frame, forecast_days=2)
    expected = pipeline.predict(request)
    forecast = np.flatnonzero(request["load_kw"].isna().to_numpy())
    assert len(forecast) == 48
    with threadpool_limits(limits=1):
        # 48 rows (the estimator itself) and the last 24 (a FlatForest for HistGradientBoosting).
        for asked in (forecast, forecast[-24:]):
            np.testing.assert_allclose(
                served_predictions(served, request, asked), expected[asked], rtol=1e-12, atol=1e-12
            )
    # A request without history: features missing, still a forecast for every row.
    bare = request.iloc[forecast].reset_index(drop=True)
    bare_predictions = served_predictions(served, bare, np.arange(len(bare)))
    assert np.isfinite(bare_predictions).all()
    np.testing.assert_allclose(bare_predictions, pipeline.predict(bare), rtol=1e-12, atol=1e-12)


def test_the_pipeline_has_the_preprocess_steps_and_only_hgb_gets_a_flat_forest() -> None:
    steps = {
        preprocess: [name for name, _ in forecasting.make_pipeline(params_for(*case)).steps]
        for case in (CASES["ridge"], CASES["extra_trees"], CASES["hist_gradient_boosting"])
        for preprocess in [case[2]]
    }
    assert steps == {
        "impute_scale": ["features", "impute", "scale", "model"],
        "impute": ["features", "impute", "model"],
        "none": ["features", "model"],
    }
    frame = hourly_frame()
    rows = frame["timestamp"] < TEST_WEEK
    for case, forest in (("hist_gradient_boosting", True), ("ridge", False)):
        params = params_for(*CASES[case])
        with threadpool_limits(limits=1):
            pipeline = forecasting.fit(forecasting.make_pipeline(params), frame, rows)
            ref = reference.Reference.from_bytes(*reference.build(params, pipeline, frame, rows))
        assert (serving.served_model(params, "1", pipeline, ref).forest is not None) == forest
    # Anything but features, transformers, an estimator is refused when loaded, not per request.
    unnamed = Pipeline([("union", pipeline.steps[0][1]), ("model", pipeline[-1])])
    for odd in (pipeline[-1], pipeline[1:], unnamed):
        with pytest.raises(ValueError, match="model version 7: serving expects a Pipeline"):
            serving.served_model(params, "7", odd, ref)


def test_an_estimator_that_takes_no_nan_needs_train_preprocess() -> None:
    params = params_for("sklearn.linear_model.Ridge", {}, "none", "ordinal")
    with pytest.raises(ForecastError) as error:
        forecasting.make_pipeline(params)
    message = str(error.value)
    assert "\n" not in message
    assert "train.preprocess 'none'" in message and "sklearn.linear_model.Ridge" in message
    assert "'impute' or 'impute_scale'" in message


def test_monitoring_reads_the_raw_features_not_the_imputed_and_scaled_ones() -> None:
    """Reference profiles, feature skew and the served features are the features step's
    output: NaN where history is missing, in kW, whatever the estimator is given."""
    params = params_for(*CASES["ridge"])
    frame = hourly_frame()
    rows = frame["timestamp"] < TEST_WEEK
    with threadpool_limits(limits=1):
        pipeline = forecasting.fit(forecasting.make_pipeline(params), frame, rows)
        document, detector = reference.build(params, pipeline, frame, rows)
    ref = reference.Reference.from_bytes(document, detector)
    served = serving.served_model(params, "1", pipeline, ref)
    request = request_frame(frame, forecast_days=1).iloc[-30:].reset_index(drop=True)
    forecast = np.flatnonzero(request["load_kw"].isna().to_numpy())
    columns = {name: request[name].to_numpy() for name in ref.input_schema}
    features = pd.DataFrame(
        served.features(columns, forecast), index=forecast, columns=served.feature_names
    )
    assert features["history__lag_168"].isna().all()  # six hours of history: no week-old value
    found = skew.feature_skew(pipeline, request, features, tolerance=1e-9)
    assert found.skewed_rows == 0, found
    # The drift reference profiles the load's own scale (kW), not standardised values.
    used = rows & frame["load_kw"].notna()
    raw = features_of(pipeline).transform(frame).loc[used, "history__lag_24"].dropna()
    profiled = ref.profile.columns["history__lag_24"]
    assert profiled.edges[0] == pytest.approx(raw.min())
    assert profiled.edges[-1] == pytest.approx(raw.max())
    assert predictor_of(pipeline).steps == pipeline.steps[1:]


def test_preprocess_and_calendar_are_checked_when_params_load() -> None:
    for key, allowed in (
        ("train.preprocess", ("'none'", "'impute'", "'impute_scale'")),
        ("forecast.calendar", ("'ordinal'", "'onehot'")),
    ):
        section, name = key.split(".")
        data = shipped()
        data[section][name] = "standardise"
        with pytest.raises(ConfigError) as error:
            parse_params(data, REPO)
        message = str(error.value)
        assert "\n" not in message and key in message and "'standardise'" in message
        assert all(value in message for value in allowed), message


def test_new_keys_at_their_default_keep_the_configuration_fingerprint() -> None:
    """An upgrade that adds keys (train.preprocess, train.candidates, forecast.calendar,
    forecast.week_start...) trains no new challenger; setting one does."""
    import hashlib
    import json

    params = parse_params(shipped(), REPO)
    before = {
        "table": params.table.model_dump(mode="json", exclude={"known", "observed"}),
        "forecast": params.forecast.model_dump(mode="json", exclude={"calendar", "week_start"}),
        "test_set": params.test_set.model_dump(mode="json", exclude={"embargo"}),
        "train": params.train.model_dump(
            mode="json",
            exclude={
                "first_version",
                "every",
                "threads",
                "preprocess",
                "candidates",
                "cv_folds",
                "cv_fold_days",
            },
        ),
        "outlier_contamination": params.monitor.outlier_contamination,
    }
    old = hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()[:16]
    assert config_hash(params) == old
    onehot = params_for(params.train.estimator, params.train.estimator_params, "none", "onehot")
    imputed = params_for(params.train.estimator, params.train.estimator_params, "impute", "ordinal")
    blanked = params.model_copy(
        update={"test_set": params.test_set.model_copy(update={"embargo": "values"})}
    )
    hashes = {config_hash(p) for p in (params, onehot, imputed, blanked)}
    assert len(hashes) == 4


def test_known_and_observed_columns_train_evaluate_and_serve_what_the_pipeline_predicts() -> None:
    """table.known and table.observed reach the model, the pinned test set, the monitoring
    reference and the service's input schema; the service predicts what the pipeline does."""
    data = shipped()
    data["source"]["columns"] += ["workday", "temperature"]
    data["table"] |= {"known": ["workday"], "observed": ["temperature"]}
    params = parse_params(data, REPO)
    frame = hourly_frame()
    frame["workday"] = (frame["timestamp"].dt.day_of_week < 5).astype("float64")
    frame["temperature"] = np.random.default_rng(4).normal(15.0, 5.0, len(frame))
    rows = frame["timestamp"] < TEST_WEEK
    with threadpool_limits(limits=1):
        pipeline = forecasting.fit(forecasting.make_pipeline(params), frame, rows)
        scores = forecasting.evaluate(pipeline, pinned_weeks(frame), params)
        document, detector = reference.build(params, pipeline, frame, rows)
    assert scores.rows == 7 * 24 and scores.model["wape"] < 0.1
    names = list(features_of(pipeline).get_feature_names_out())
    assert "known__workday" in names and "observed_temperature__lag_24" in names
    served = serving.served_model(
        params, "1", pipeline, reference.Reference.from_bytes(document, detector)
    )
    assert sorted(served.reference.input_schema) == [
        "coverage",
        "load_kw",
        "temperature",
        "timestamp",
        "workday",
    ]
    request = request_frame(frame, forecast_days=1)
    request.loc[request["load_kw"].isna(), "temperature"] = np.nan  # not measured yet
    forecast = np.flatnonzero(request["load_kw"].isna().to_numpy())
    with threadpool_limits(limits=1):
        np.testing.assert_allclose(
            served_predictions(served, request, forecast),
            pipeline.predict(request)[forecast],
            rtol=1e-12,
            atol=1e-12,
        )
    columns = {name: request[name].to_numpy() for name in served.reference.input_schema}
    assert not [
        w for w in serving.input_warnings(params, served, columns, forecast)[0] if "null" in w
    ]
    columns["workday"] = np.where(np.isnan(columns["load_kw"]), np.nan, columns["workday"])
    warned = serving.input_warnings(params, served, columns, forecast)[0]
    assert any("workday: null in 24 of the 24 rows forecast; it is known" in w for w in warned)
    # The JSON a client sends names every column; one without the known column is refused.
    body = request.assign(timestamp=request["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S"))
    rows_json = body.replace({np.nan: None}).to_dict(orient="records")
    served.body.model_validate_json(json.dumps({"rows": rows_json}))
    without = [{k: v for k, v in row.items() if k != "workday"} for row in rows_json]
    with pytest.raises(ValueError, match=r"rows\.0\.workday"):
        served.body.model_validate_json(json.dumps({"rows": without}))

"""Schema skew against the training signature, and feature skew against the real transformers,
through the prediction log."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from powerops.core.config import Params, load_params
from powerops.model import forecasting, skew
from powerops.serve import predictionlog
from tests.conftest import REPO

SIGNATURE = {"timestamp": "datetime64[us]", "load_kw": "float64", "coverage": "float64"}


def test_schema_issues_name_missing_extra_and_retyped_fields() -> None:
    found = skew.schema_issues(
        {"timestamp": "datetime64[ns]", "load_kw": "object", "voltage": "float64"}, SIGNATURE
    )
    assert {(i.field, i.problem) for i in found} == {
        ("coverage", "missing"),
        ("load_kw", "retyped"),
        ("voltage", "extra"),
    }
    assert "load_kw: type object, the training signature has float64" in [str(i) for i in found]
    # Widths of the same kind are the same to the model.
    same = {"timestamp": "datetime64[ns]", "load_kw": "float32", "coverage": "float64"}
    assert skew.schema_issues(same, SIGNATURE) == []


@pytest.fixture
def params(tmp_path: Path) -> Params:
    loaded = load_params(REPO / "params.yaml")
    return loaded.model_copy(update={"root": tmp_path})


def history() -> pd.DataFrame:
    hours = pd.date_range("2007-01-01", periods=24 * 10, freq="h")
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {"timestamp": hours, "load_kw": rng.gamma(2.0, 0.6, len(hours)), "coverage": 1.0}
    )


def test_feature_skew_is_counted_per_feature_through_the_prediction_log(params: Params) -> None:
    pipeline = forecasting.make_pipeline(params)
    inputs = history()
    pipeline[:-1].fit(inputs)
    rows = inputs.index[-24:]
    served = pipeline[:-1].transform(inputs).loc[rows]
    tampered = served.copy()
    tampered.iloc[5, tampered.columns.get_loc("history__lag_24")] += 0.5
    at = datetime(2026, 11, 28, 10, tzinfo=UTC)
    predictionlog.append(
        params,
        [
            predictionlog.record("a", at, "online", "3", 200, 12.0, inputs, served, [1.0]),
            predictionlog.record("b", at, "online", "3", 200, 80.0, inputs, tampered, [1.0]),
        ],
    )
    log = predictionlog.read(params, datetime(2026, 11, 28), datetime(2026, 11, 29))
    assert list(log["request_id"]) == ["a", "b"]
    found = [
        skew.feature_skew(
            pipeline,
            predictionlog.frame_of(record.inputs),
            predictionlog.frame_of(record.features),
            1e-6,
        )
        for record in log.itertuples()
    ]
    assert found[0].skewed_rows == 0 and found[0].rows == 24
    assert found[1].skewed_rows == 1 and found[1].by_feature == {"history__lag_24": 1}
    assert found[1].max_difference == pytest.approx(0.5)


def test_an_online_record_reads_back_for_the_feature_skew_check(params: Params) -> None:
    """The service logs the body as received and the features it computed on arrays
    (`transform_arrays`, `split_json`); monitoring reads both back and recomputes the features
    through the Pipeline's DataFrame path: the same values, bit for bit."""
    pipeline = forecasting.make_pipeline(params)
    inputs = history()
    inputs.loc[inputs.index[-24:], "load_kw"] = np.nan  # the day to forecast
    inputs.loc[inputs.index[-30], "load_kw"] = np.nan  # a gap: one lag_24 is unknown (null)
    union = pipeline[:-1].fit(inputs)[0]
    columns = {name: inputs[name].to_numpy() for name in inputs.columns}
    arrays = np.hstack([t.transform_arrays(columns) for _, t in union.transformer_list])
    np.testing.assert_array_equal(arrays, pipeline[:-1].transform(inputs).to_numpy())

    rows = np.flatnonzero(np.isnan(columns["load_kw"]))
    served = arrays[rows]
    assert np.isnan(served).any()
    body = json.dumps(
        {
            "rows": [
                {"timestamp": t.isoformat(), "load_kw": None if np.isnan(v) else v, "coverage": 1}
                for t, v in zip(inputs["timestamp"], inputs["load_kw"], strict=True)
            ]
        }
    )
    names = [str(n) for n in union.get_feature_names_out()]
    at = datetime(2026, 11, 28, 10, tzinfo=UTC)
    predictionlog.append(
        params,
        [
            predictionlog.record(
                "c",
                at,
                "online",
                "3",
                200,
                2.0,
                body,
                predictionlog.split_json(names, rows.tolist(), served),
                [1.0] * len(rows),
                rows=len(inputs),
            )
        ],
    )
    (record,) = predictionlog.read(params, at, datetime(2026, 11, 29)).itertuples()
    assert record.rows == len(inputs)
    logged_inputs = predictionlog.frame_of(record.inputs)
    assert logged_inputs["timestamp"].dtype.kind == "M"
    logged_features = predictionlog.frame_of(record.features)
    assert list(logged_features.index) == rows.tolist()
    np.testing.assert_array_equal(logged_features.to_numpy(), served)
    found = skew.feature_skew(pipeline, logged_inputs, logged_features, 0.0)
    assert (found.rows, found.skewed_rows, found.max_difference) == (len(rows), 0, 0.0)

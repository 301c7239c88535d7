"""Schema skew against the training signature, and feature skew against the real transformers,
through the prediction log."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from powerops import forecasting, predictionlog, skew
from powerops.config import Params, load_params
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

"""A ridge regression on one-hot calendar features, from params.yaml alone, through the real
stack: trained on real data, registered in a real MLflow registry, served by the real app.
The test values are blanked rather than their readers dropped (`test_set.embargo: values`):
the imputer fills what the rows after a test week cannot read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest

from powerops.core.config import load_params
from powerops.data import stages
from powerops.model import registry, testset, training
from powerops.model.reference import load_pipeline
from tests.conftest import set_params

# Through the real stack: `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow


def request_rows() -> list[dict[str, Any]]:
    """Eight days of history (with a gap), then the 24 hours of 2007-03-10 to forecast."""
    history = pd.date_range("2007-03-02", periods=192, freq="h")
    rows: list[dict[str, Any]] = [
        {"timestamp": t.isoformat(), "load_kw": 1.0 + (t.hour % 12) / 10, "coverage": 1.0}
        for n, t in enumerate(history)
        if not 20 <= n < 30  # missing history: NaN features the imputer fills
    ]
    rows += [
        {"timestamp": t.isoformat(), "load_kw": None, "coverage": 1.0}
        for t in pd.date_range("2007-03-10", periods=24, freq="h")
    ]
    return rows


def test_ridge_on_onehot_calendar_trains_registers_and_serves(training_workspace: Path) -> None:
    from fastapi.testclient import TestClient

    from powerops.serve import serving

    set_params(
        training_workspace,
        forecast={"calendar": "onehot"},
        train={
            "estimator": "sklearn.linear_model.Ridge",
            "estimator_params": {"alpha": 1.0},
            "preprocess": "impute_scale",
            "first_version": 4,  # one training, on the latest version
        },
        test_set={"embargo": "values"},
    )
    params = load_params(training_workspace / "params.yaml")
    stages.ingest(params)
    stages.validate(params)
    stages.publish(params)
    (result,) = training.train(params, by="test")
    assert result.promoted, result.verdict
    champion = registry.alias_version(params, registry.CHAMPION)
    assert champion is not None and str(champion.version) == result.model_version
    run = mlflow.MlflowClient(params.tracking_uri).get_run(champion.run_id)
    job = training.Job(4, training.config_hash(params))
    table = pd.read_parquet(job.directory(params) / training.TABLE_FILE)
    weeks = [pd.Timestamp(w) for w in testset.load_manifest(params).weeks]
    outside = ~testset.week_mask(table["timestamp"], weeks)
    # Every row outside the test weeks trains, the hours after a test week included.
    assert run.data.params["embargo"] == "values"
    assert int(run.data.params["train_rows"]) == int(outside.sum()) < len(table)

    pipeline = load_pipeline(params, champion)
    assert [name for name, _ in pipeline.steps] == ["features", "impute", "scale", "model"]
    assert type(pipeline.named_steps["model"]).__name__ == "Ridge"
    rows = request_rows()
    frame = pd.DataFrame(rows).astype({"timestamp": "datetime64[us]", "load_kw": "float64"})
    expected = pipeline.predict(frame)[frame["load_kw"].isna().to_numpy()]

    with TestClient(serving.create_app(params)) as client:
        answer = client.post("/predict", json={"rows": rows})
    assert answer.status_code == 200, answer.text
    served = answer.json()
    assert served["model_version"] == result.model_version
    forecasts = [p["load_kw"] for p in served["predictions"]]
    assert len(forecasts) == 24
    np.testing.assert_allclose(forecasts, expected, rtol=1e-9)
    assert min(forecasts) > 0 and max(forecasts) < 10

"""Batch forecasts: the champion's hourly forecast of the next day, as a versioned output.

`powerops score --date D` (and the daily power_score DAG) forecasts day D from the readings
before it, with the same Pipeline the service uses, and writes

    data/forecasts/<D>/model-v<version>.parquet    timestamp, load_kw, model_version, made_at

An existing file for the same day and model version is left as it is, so a re-run changes
nothing; a new champion adds its own file beside it. Each forecast is also appended to the
prediction log (source `batch`, with its inputs and features), so monitoring can score it
against the actuals once they arrive. When D is past the end of the data (a replay of old
months), the day after the latest reading is forecast instead.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from powerops.core.config import Params
from powerops.core.errors import PowerOpsError
from powerops.core.storage import atomic_path
from powerops.data.table import TARGET
from powerops.model import registry
from powerops.serve import predictionlog


class ScoringError(PowerOpsError):
    """No champion, or no history to forecast from."""


@dataclass(frozen=True)
class BatchForecast:
    day: date
    model_version: str
    path: Path
    hours: int
    written: bool  # False when this day's forecast by this version existed already


def score(params: Params, day: date) -> BatchForecast:
    import pandas as pd

    from powerops.data.datasets import day_after_latest, read_window
    from powerops.data.table import table_for
    from powerops.model import forecasting
    from powerops.model.reference import load_pipeline

    champion = registry.alias_version(params, registry.CHAMPION)
    if champion is None:
        raise ScoringError(f"{params.mlflow.model_name} has no champion yet: nothing to score")
    day = min(day, day_after_latest(params))
    version = str(champion.version)
    path = params.forecasts_dir / day.isoformat() / f"model-v{version}.parquet"
    if path.is_file():
        return BatchForecast(day, version, path, len(pd.read_parquet(path)), written=False)

    started = time.perf_counter()
    midnight = datetime(day.year, day.month, day.day)
    readings = read_window(params, midnight - forecasting.history_span(params), midnight)
    if readings.empty:
        raise ScoringError(f"no readings before {day}: nothing to forecast from")
    history = table_for(params, readings)
    period = pd.Timedelta(params.table.frequency)
    hours = pd.date_range(midnight, midnight + timedelta(days=1), freq=period, inclusive="left")
    ahead = pd.DataFrame({"timestamp": hours, TARGET: float("nan"), "coverage": 1.0})
    frame = pd.concat([history, ahead.astype(history.dtypes.to_dict())], ignore_index=True)
    pipeline = load_pipeline(params, champion)
    with forecasting.compute_threads(params):
        features = forecasting.features_of(pipeline).transform(frame).iloc[len(history) :]
        values = forecasting.predictor_of(pipeline).predict(features)
    made_at = datetime.now(UTC)
    out = pd.DataFrame(
        {
            "timestamp": hours,
            TARGET: values,
            "model_version": version,
            "made_at": made_at.isoformat(timespec="seconds"),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        out.to_parquet(tmp, index=False)
    predictionlog.append(
        params,
        [
            predictionlog.record(
                f"batch-{day.isoformat()}-v{version}-{uuid.uuid4().hex[:8]}",
                made_at,
                "batch",
                version,
                200,
                (time.perf_counter() - started) * 1000,
                frame,
                features,
                [float(v) for v in values],
            )
        ],
    )
    return BatchForecast(day, version, path, len(out), written=True)


def summary(result: BatchForecast) -> dict[str, Any]:
    return {
        "day": result.day.isoformat(),
        "model_version": result.model_version,
        "path": str(result.path),
        "hours": result.hours,
        "written": result.written,
    }

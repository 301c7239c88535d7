"""Batch forecasts: the champion's forecast of the next block, as a versioned output.

`powerops score --date D` (and the daily power_score DAG) forecasts the block that holds day
D: the `forecast.horizon` periods from its origin (day D itself for hourly day-ahead; the
week from the `forecast.week_start` day for a daily 7-day horizon), from the readings before
the origin, with the same Pipeline the service uses, and writes

    data/forecasts/<origin day>/model-v<version>.parquet  timestamp, load_kw, model_version, made_at

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
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from powerops.core.config import Params
from powerops.core.errors import PowerOpsError
from powerops.core.storage import atomic_path
from powerops.data.table import TARGET
from powerops.model import registry
from powerops.serve import predictionlog

if TYPE_CHECKING:
    import pandas as pd


class ScoringError(PowerOpsError):
    """No champion, or no history to forecast from."""


@dataclass(frozen=True)
class BatchForecast:
    day: date
    model_version: str
    path: Path
    periods: int  # forecast.horizon rows
    written: bool  # False when this day's forecast by this version existed already


def score(params: Params, day: date, known_file: Path | None = None) -> BatchForecast:
    """Forecast the block that holds `day` (see the module's docstring); `known_file` gives
    the table.known columns for the periods forecast (`known_ahead`)."""
    import pandas as pd

    from powerops.data.datasets import day_after_latest, read_window
    from powerops.data.table import table_for
    from powerops.model import forecasting
    from powerops.model.reference import load_pipeline

    if (champion := registry.alias_version(params, registry.CHAMPION)) is None:
        raise ScoringError(f"{params.mlflow.model_name} has no champion yet: nothing to score")
    day = min(day, day_after_latest(params))
    origin = block_origin(params, day)
    version = str(champion.version)
    path = params.forecasts_dir / f"{origin:%Y-%m-%d}" / f"model-v{version}.parquet"
    if path.is_file():
        return BatchForecast(origin.date(), version, path, len(pd.read_parquet(path)), False)

    started = time.perf_counter()
    readings = read_window(params, origin - forecasting.history_span(params), origin)
    if readings.empty:
        raise ScoringError(f"no readings before {origin:%Y-%m-%d %H:%M}: nothing to forecast from")
    history = table_for(params, readings)
    frame, periods = with_block(params, history, origin, known_file)
    pipeline = load_pipeline(params, champion)
    with forecasting.compute_threads(params):
        features = forecasting.features_of(pipeline).transform(frame).iloc[len(history) :]
        values = forecasting.predictor_of(pipeline).predict(features)
    made_at = datetime.now(UTC)
    out = pd.DataFrame(
        {
            "timestamp": periods,
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
    return BatchForecast(origin.date(), version, path, len(out), written=True)


def with_block(
    params: Params, history: pd.DataFrame, origin: datetime, known_file: Path | None
) -> tuple[pd.DataFrame, pd.DatetimeIndex]:
    """The history table followed by the block's rows to forecast (no target, the known
    columns filled in), and the block's periods."""
    import pandas as pd

    period = pd.Timedelta(params.table.frequency)
    periods = pd.date_range(origin, periods=params.forecast.horizon, freq=period)
    ahead = pd.DataFrame({"timestamp": periods, TARGET: float("nan"), "coverage": 1.0})
    ahead = ahead.assign(**known_ahead(params, periods, known_file))
    dtypes = {name: history[name].dtype for name in ahead.columns}
    # table.observed columns are unknown ahead: missing, as the target is.
    frame = pd.concat([history, ahead.astype(dtypes)], ignore_index=True)
    return frame, periods


def known_ahead(
    params: Params, periods: pd.DatetimeIndex, known_file: Path | None
) -> dict[str, Any]:
    """The `table.known` columns for the periods forecast: from `known_file` (a CSV or Parquet
    file with `timestamp` and those columns, one row per period), else from the source file
    when it holds them (a replay of old months). A missing value is an error, never a
    forecast made without it."""
    import pandas as pd

    from powerops.data.source import read_source
    from powerops.data.table import modelling_table

    known = params.table.known
    if not known:
        return {}
    if known_file is not None:
        read = pd.read_parquet if known_file.suffix == ".parquet" else pd.read_csv
        given = read(known_file)
        if "timestamp" not in given or any(name not in given for name in known):
            raise ScoringError(
                f"{known_file}: needs the columns timestamp, {', '.join(known)} (table.known)"
            )
        frame = given.assign(timestamp=pd.to_datetime(given["timestamp"])).set_index("timestamp")
        where = str(known_file)
    else:
        source = read_source(params.source_path(), params.source)
        stamp = params.source.timestamp_column
        end = periods[-1] + pd.Timedelta(params.table.frequency)
        span = source[(source[stamp] >= periods[0]) & (source[stamp] < end)]
        frame = modelling_table(
            span,
            stamp,
            params.table.target_column,
            params.table.frequency,
            params.source.frequency,
            known,
        ).set_index("timestamp")
        where = f"the source file {params.source_path()}"
    values = frame.reindex(periods)[list(known)]
    if values.isna().any().any():
        missing = values.index[values.isna().any(axis=1)]
        raise ScoringError(
            f"table.known {', '.join(known)}: no value for {len(missing)} of the "
            f"{len(periods)} periods forecast (first {missing[0]:%Y-%m-%d %H:%M}) in {where}; "
            "pass them with `powerops score --known FILE` (timestamp and those columns)"
        )
    return {name: values[name].to_numpy(dtype="float64") for name in known}


def block_origin(params: Params, day: date) -> datetime:
    """The forecast origin of the block that holds `day`'s first instant, as served."""
    import pandas as pd

    from powerops.model.features import forecast_origin

    midnight = pd.Series([pd.Timestamp(day)])
    forecast = params.forecast
    origin = forecast_origin(
        midnight, params.table.frequency, forecast.horizon, forecast.week_start
    )
    found: datetime = origin.iloc[0].to_pydatetime()
    return found


def summary(result: BatchForecast) -> dict[str, Any]:
    return {
        "day": result.day.isoformat(),
        "model_version": result.model_version,
        "path": str(result.path),
        "periods": result.periods,
        "written": result.written,
    }

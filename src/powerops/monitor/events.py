"""SLI events, recorded per day in `reports/monitor/events.json`: what the data and the
prediction log showed each day (live error, outliers, schema, latency, feature skew) and what
each monitor run saw (data age). The SLOs and the plots read them; reports never rewrite them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from powerops.core.config import Params
from powerops.core.storage import atomic_write_text
from powerops.data.table import TARGET
from powerops.monitor.result import LogDay

if TYPE_CHECKING:
    from datetime import datetime

    import pandas as pd

EVENTS_FILE = "events.json"


def load_json(path: Path, default: Any) -> Any:
    """A JSON file's content, or `default` when the file is not there."""
    return json.loads(path.read_text()) if path.is_file() else default


def load(params: Params) -> dict[str, Any]:
    empty: dict[str, Any] = {"data_days": {}, "log_days": {}, "runs": {}}
    recorded: dict[str, Any] = load_json(params.monitor_reports_dir / EVENTS_FILE, empty)
    return recorded


def save(params: Params, events: dict[str, Any]) -> None:
    path = params.monitor_reports_dir / EVENTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(events, indent=1, sort_keys=True))


def add_data_days(events: dict[str, Any], days: dict[str, dict[str, Any]]) -> None:
    """Record each day the first time it is seen, or again once it has actuals: a day keeps
    the champion that served it, so a later rollback does not rewrite history."""
    for day, record in days.items():
        known = events["data_days"].get(day)
        if known is None or ("live" not in known and "live" in record):
            events["data_days"][day] = record


def day_events(
    table: pd.DataFrame,
    in_window: pd.Series,
    predictions: pd.Series,
    naive: pd.Series,
    outliers: pd.Series,
    schema_bad: bool,
    training_end: pd.Timestamp,
    champion: str,
    kwh_per_value: float,
) -> dict[str, dict[str, Any]]:
    """Per day of the window with readings: live error (out of sample only), outliers, schema.
    Energies are in kWh: each value times `kwh_per_value` (config.kwh_per_value)."""
    days: dict[str, dict[str, Any]] = {}
    frame = table.loc[in_window, ["timestamp", TARGET]].assign(
        prediction=predictions, naive=naive, outlier=outliers
    )
    for day, part in frame.groupby(frame["timestamp"].dt.date):
        record: dict[str, Any] = {
            "model_version": champion,
            "rows": len(part),
            "outliers": {
                "rows": int(part["outlier"].notna().sum()),
                "bad": int((part["outlier"] == 1).sum()),
            },
            "schema": {"rows": len(part), "bad": len(part) if schema_bad else 0},
        }
        live = _live_day(part, training_end, kwh_per_value)
        if live is not None:
            record["live"] = live
        days[str(day)] = record
    return days


def _live_day(
    part: pd.DataFrame, training_end: pd.Timestamp, kwh_per_value: float
) -> dict[str, Any] | None:
    """One day's error and benefit, in kWh, on the periods the champion never trained on."""
    import numpy as np

    actual = part[TARGET]
    scored = part[actual.notna() & part["prediction"].notna()]
    scored = scored[scored["timestamp"] > training_end]
    if not len(scored):
        return None
    error = np.abs(scored["prediction"] - scored[TARGET]) * kwh_per_value
    both = scored["naive"].notna()
    naive_error = np.abs(scored.loc[both, "naive"] - scored.loc[both, TARGET]) * kwh_per_value
    actual_kwh = float(scored[TARGET].abs().sum()) * kwh_per_value
    return {
        "hours": len(scored),
        "actual_kwh": actual_kwh,
        "abs_error_kwh": float(error.sum()),
        "wape": float(error.sum() / actual_kwh) if actual_kwh > 0 else None,
        "naive_abs_error_kwh": float(naive_error.sum()),
        "benefit_kwh": float(naive_error.sum() - error[both].sum()),
    }


def log_indicators(
    params: Params, start: datetime, end: datetime, pipeline: Any
) -> dict[str, LogDay]:
    """Per day of the prediction log: latency and schema rejections over every request,
    feature skew over a sample of the served ones (`monitor.skew_sample_rate`). Journals no
    server holds any more (a day over, a worker stopped) are compacted first."""
    from powerops.serve import predictionlog

    predictionlog.compact(params)
    records = predictionlog.read(params, start, end, predictionlog.SLI_COLUMNS)
    bulk = ("at", "status", "inputs", "features")
    rate = params.monitor.skew_sample_rate
    sample = predictionlog.read(params, start, end, bulk, sample=rate, ordered=False)
    sample = sample[sample["status"] == 200]
    threshold = next((s.threshold for s in params.monitor.slos if s.indicator == "latency"), None)
    samples = dict(list(sample.groupby(sample["at"].dt.date))) if len(sample) else {}
    return {
        str(day): _log_day(params, part, samples.get(day, sample[:0]), threshold, pipeline)
        for day, part in (records.groupby(records["at"].dt.date) if len(records) else [])
    }


def _log_day(
    params: Params,
    part: pd.DataFrame,
    sample: pd.DataFrame,
    threshold: float | None,
    pipeline: Any,
) -> LogDay:
    import numpy as np

    from powerops.model import skew
    from powerops.serve import predictionlog

    served = part[part["status"] == 200]
    rejected = part["schema_issues"].map(lambda text: bool(json.loads(text or "[]")))
    fields: dict[str, int] = {}
    for text in part.loc[rejected, "schema_issues"]:
        for issue in json.loads(text):
            name = str(issue).split(":")[0]
            fields[name] = fields.get(name, 0) + 1
    latency = served["latency_ms"].to_numpy(dtype=np.float64)
    skewed = compared = 0
    for inputs, features in zip(sample["inputs"], sample["features"], strict=True):
        if inputs and features:
            found = skew.feature_skew(
                pipeline,
                predictionlog.frame_of(inputs),
                predictionlog.frame_of(features),
                params.monitor.feature_skew_tolerance,
            )
            compared += found.rows
            skewed += found.skewed_rows
    return LogDay.model_validate(
        {
            "requests": len(part),
            "latency": {
                "events": len(latency),
                "bad": int((latency > threshold).sum()) if threshold else 0,
                "p95_ms": float(np.percentile(latency, 95)) if len(latency) else None,
            },
            "schema": {"events": len(part), "bad": int(rejected.sum()), "fields": fields},
            "feature_skew": {"rows": compared, "bad": skewed},
        }
    )

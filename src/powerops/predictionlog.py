"""The prediction log: every served or scheduled prediction, one Parquet file per UTC day under
`paths.predictions`, read by monitoring for latency, schema skew, feature skew and live error.

One record per request:

    request_id, at (UTC), source ("online" | "batch"), model_version, status (HTTP-like code),
    latency_ms, rows, inputs, features, outputs (JSON text: row lists as the model saw them),
    schema_issues (JSON list of field problems when the request was rejected)
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from powerops.config import Params
from powerops.storage import atomic_path

if TYPE_CHECKING:
    import pandas as pd

COLUMNS = (
    "request_id",
    "at",
    "source",
    "model_version",
    "status",
    "latency_ms",
    "rows",
    "inputs",
    "features",
    "outputs",
    "schema_issues",
)


def directory(params: Params) -> Path:
    return params.resolve(params.paths.predictions)


def day_file(params: Params, day: date) -> Path:
    return directory(params) / f"{day.isoformat()}.parquet"


def record(
    request_id: str,
    at: datetime,
    source: str,
    model_version: str,
    status: int,
    latency_ms: float,
    inputs: pd.DataFrame | None = None,
    features: pd.DataFrame | None = None,
    outputs: list[float] | None = None,
    schema_issues: list[str] | None = None,
) -> dict[str, Any]:
    """One log record; frames are stored as JSON in `split` orientation."""

    def frame(value: pd.DataFrame | None) -> str:
        return "" if value is None else value.to_json(orient="split", date_format="iso")

    return {
        "request_id": request_id,
        "at": at,
        "source": source,
        "model_version": model_version,
        "status": int(status),
        "latency_ms": float(latency_ms),
        "rows": 0 if inputs is None else len(inputs),
        "inputs": frame(inputs),
        "features": frame(features),
        "outputs": json.dumps(outputs or []),
        "schema_issues": json.dumps(schema_issues or []),
    }


def append(params: Params, records: list[dict[str, Any]]) -> None:
    """Add records to their days' files (written whole, atomically)."""
    import pandas as pd

    frame = pd.DataFrame(records, columns=list(COLUMNS))
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    for day, part in frame.groupby(frame["at"].dt.date):
        path = day_file(params, day)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_file():
            part = pd.concat([pd.read_parquet(path), part], ignore_index=True)
        with atomic_path(path) as tmp:
            part.to_parquet(tmp, index=False)


def read(params: Params, start: datetime, end: datetime) -> pd.DataFrame:
    """Records with `start <= at < end` (UTC), oldest first; empty if there are none."""
    import pandas as pd

    start_ts, end_ts = _utc(start), _utc(end)
    frames = []
    day = start_ts.date()
    while day <= end_ts.date():
        path = day_file(params, day)
        if path.is_file():
            frames.append(pd.read_parquet(path))
        day += timedelta(days=1)
    if not frames:
        return pd.DataFrame(columns=list(COLUMNS))
    log = pd.concat(frames, ignore_index=True)
    log = log[(log["at"] >= start_ts) & (log["at"] < end_ts)]
    return log.sort_values("at", ignore_index=True)


def _utc(moment: datetime) -> pd.Timestamp:
    """A naive moment is taken as UTC."""
    import pandas as pd

    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tz is None else stamp.tz_convert("UTC")


def frame_of(text: str) -> pd.DataFrame:
    """A frame stored by `record`."""
    import io

    import pandas as pd

    return pd.read_json(io.StringIO(text), orient="split")

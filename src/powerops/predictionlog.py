"""The prediction log: every served or scheduled prediction, under `paths.predictions`, one
folder per UTC day (the rotation), holding append-only Parquet part files: a writer never
rewrites what is there, so concurrent writers and crashes cannot lose earlier records.
Monitoring reads it for latency, schema skew, feature skew and live error.

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


def day_folder(params: Params, day: date) -> Path:
    return directory(params) / day.isoformat()


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


def append(params: Params, records: list[dict[str, Any]]) -> list[Path]:
    """Write records as a new part file in each of their days' folders; return the files."""
    import os
    import uuid

    import pandas as pd

    if not records:
        return []
    frame = pd.DataFrame(records, columns=list(COLUMNS))
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    written = []
    for day, part in frame.groupby(frame["at"].dt.date):
        folder = day_folder(params, day)
        folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now().strftime("%H%M%S%f")
        path = folder / f"part-{stamp}-{os.getpid()}-{uuid.uuid4().hex[:8]}.parquet"
        with atomic_path(path) as tmp:
            part.to_parquet(tmp, index=False)
        written.append(path)
    return written


def read(params: Params, start: datetime, end: datetime) -> pd.DataFrame:
    """Records with `start <= at < end` (UTC), oldest first; empty if there are none."""
    import pandas as pd

    start_ts, end_ts = _utc(start), _utc(end)
    frames = []
    day = start_ts.date()
    while day <= end_ts.date():
        frames += [
            pd.read_parquet(path) for path in sorted(day_folder(params, day).glob("*.parquet"))
        ]
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

"""The prediction log: every served or scheduled prediction, under `paths.predictions`, one
folder per UTC day (the rotation), holding append-only Parquet part files: a writer never
rewrites what is there, so concurrent writers and crashes cannot lose earlier records.
Monitoring reads it for latency, schema skew, feature skew and live error.

One record per request:

    request_id, at (UTC), source ("online" | "batch"), model_version, status (HTTP-like code),
    latency_ms, rows, inputs, features, outputs (JSON text: row lists as the model saw them;
    an online request's inputs are its body as received, once it passed validation),
    schema_issues (JSON list of field problems when the request was rejected)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from powerops.core.config import Params
from powerops.core.storage import atomic_path

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

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


def day_folder(params: Params, day: date) -> Path:
    return params.predictions_dir / day.isoformat()


def record(
    request_id: str,
    at: datetime,
    source: str,
    model_version: str,
    status: int,
    latency_ms: float,
    inputs: pd.DataFrame | str | None = None,
    features: pd.DataFrame | str | None = None,
    outputs: list[float] | None = None,
    schema_issues: list[str] | None = None,
    rows: int | None = None,
) -> dict[str, Any]:
    """One log record; frames are stored as JSON in `split` orientation. Text is stored as it
    is (the service passes the body it received and `split_json` features), and then `rows`
    counts the inputs."""

    def frame(value: pd.DataFrame | str | None) -> str:
        if value is None or isinstance(value, str):
            return value or ""
        return value.to_json(orient="split", date_format="iso")

    if rows is None:
        rows = 0 if inputs is None or isinstance(inputs, str) else len(inputs)
    return {
        "request_id": request_id,
        "at": at,
        "source": source,
        "model_version": model_version,
        "status": int(status),
        "latency_ms": float(latency_ms),
        "rows": rows,
        "inputs": frame(inputs),
        "features": frame(features),
        "outputs": json.dumps(outputs or []),
        "schema_issues": json.dumps(schema_issues or []),
    }


def split_json(columns: Sequence[str], index: Sequence[int], values: np.ndarray) -> str:
    """A 2-D float array as the JSON `record` stores a frame in (pandas' `split` orientation,
    which `frame_of` reads), NaN as null."""
    data = [[None if v != v else v for v in row] for row in values.tolist()]  # NaN != NaN
    return json.dumps({"columns": list(columns), "index": list(index), "data": data})


def _schema() -> pa.Schema:
    import pyarrow as pa

    text = ("request_id", "source", "model_version", "inputs", "features", "outputs")
    types = {name: pa.string() for name in (*text, "schema_issues")}
    types |= {"at": pa.timestamp("us", tz="UTC"), "status": pa.int64(), "rows": pa.int64()}
    types["latency_ms"] = pa.float64()
    return pa.schema([(name, types[name]) for name in COLUMNS])


def by_day(records: list[dict[str, Any]]) -> list[tuple[date, list[dict[str, Any]]]]:
    """Records grouped by their UTC day (a naive `at` is UTC), oldest day first."""
    days: dict[date, list[dict[str, Any]]] = {}
    for item in records:
        at = item["at"]
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
        days.setdefault(at.date(), []).append(item | {"at": at})
    return sorted(days.items())


def append(params: Params, records: list[dict[str, Any]]) -> list[Path]:
    """Write records as a new part file in each of their days' folders; return the files.

    Straight to Arrow, without a pandas frame: the service flushes from a thread beside the
    requests, and 250 records take ~2.5 ms this way against ~12 ms through pandas."""
    import os
    import uuid

    import pyarrow as pa
    import pyarrow.parquet as pq

    written = []
    for day, part in by_day(records):
        folder = day_folder(params, day)
        folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now().strftime("%H%M%S%f")
        path = folder / f"part-{stamp}-{os.getpid()}-{uuid.uuid4().hex[:8]}.parquet"
        with atomic_path(path) as tmp:
            pq.write_table(pa.Table.from_pylist(part, schema=_schema()), tmp)
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
    """A frame stored by `record`: a frame in `split` orientation, or an online request's
    body as it was received (`{"rows": [...]}`), which holds the inputs row by row."""
    import io

    import pandas as pd

    document = json.loads(text)
    if "rows" in document:
        return pd.read_json(
            io.StringIO(json.dumps(document["rows"])), orient="records", precise_float=True
        )
    return pd.read_json(io.StringIO(text), orient="split", precise_float=True)

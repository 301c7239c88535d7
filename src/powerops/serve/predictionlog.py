"""The prediction log: every served or scheduled prediction, under `paths.predictions`, one
folder per UTC day. Monitoring reads it for latency, schema skew, feature skew and live error.

Each serving worker appends its records to a journal of its own, `journal-<id>.jsonl` (a JSON
line per record, written to the OS before the answer leaves: `powerops.serve.journal`), which
it holds locked (flock) while it writes. A journal no live writer holds (its day is over, or
its process died) is compacted into `journal-<id>.parquet` (zstd, row groups of BLOCK_ROWS
records, oldest first) and removed. The batch forecasts write `part-*.parquet` files directly.
Nothing here rewrites a record: a reader sees every Parquet file, and every journal that has
no Parquet twin yet.

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
from powerops.core.faults import crash_point
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
# What the SLIs read of every request; the rest (inputs, features, outputs) is the bulk.
SLI_COLUMNS: tuple[str, ...] = ("request_id", "at", "source", "model_version", "status")
SLI_COLUMNS += ("latency_ms", "rows", "schema_issues")
BLOCK_ROWS = 256  # records per row group of a compacted journal: the skew sample's unit
JOURNAL = "journal-"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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


def _schema(columns: Sequence[str] = COLUMNS) -> pa.Schema:
    import pyarrow as pa

    text = ("request_id", "source", "model_version", "inputs", "features", "outputs")
    types = {name: pa.string() for name in (*text, "schema_issues")}
    types |= {"at": pa.timestamp("us", tz="UTC"), "status": pa.int64(), "rows": pa.int64()}
    types["latency_ms"] = pa.float64()
    return pa.schema([(name, types[name]) for name in columns])


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


def read(
    params: Params,
    start: datetime,
    end: datetime,
    columns: Sequence[str] = COLUMNS,
    sample: float | None = None,
    ordered: bool = True,
) -> pd.DataFrame:
    """Records with `start <= at < end` (UTC), oldest first unless not `ordered`; empty if
    there are none.

    Only `columns` are read: a compacted day of 100,000 requests takes ~0.1 s for SLI_COLUMNS
    and ~3 s with the bulk (inputs, features), of which sorting the bulk is a third
    (docs/benchmarks.md). With `sample`, each file gives that share of its blocks of
    BLOCK_ROWS records, evenly spaced, and at least one."""
    import pandas as pd
    import pyarrow as pa

    wanted = [name for name in COLUMNS if name in {*columns, "at"}]
    start_ts, end_ts = _utc(start), _utc(end)
    tables = []
    day = start_ts.date()
    while day <= end_ts.date():
        tables += [_table(path, wanted, sample) for path in files(day_folder(params, day))]
        day += timedelta(days=1)
    if not tables:
        return pd.DataFrame(columns=list(columns))
    log = pa.concat_tables(tables).to_pandas()
    inside = (log["at"] >= start_ts) & (log["at"] < end_ts)
    if not inside.all():  # a copy of the bulk only when some record is outside
        log = log[inside]
    if ordered and not log["at"].is_monotonic_increasing:
        log = log.sort_values("at", kind="stable")
    selected: pd.DataFrame = log.reset_index(drop=True)[list(columns)]
    return selected


def files(folder: Path) -> list[Path]:
    """The folder's Parquet files, then its journals not compacted yet. The journals are
    listed first: one compacted meanwhile has its twin in the second listing."""
    journals = sorted(folder.glob(f"{JOURNAL}*.jsonl"))
    parquet = sorted(folder.glob("*.parquet"))
    twins = {path.stem for path in parquet}
    return parquet + [path for path in journals if path.stem not in twins]


def _table(path: Path, columns: list[str], sample: float | None) -> pa.Table:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.suffix == ".parquet":
        handle = pq.ParquetFile(path)
        groups = _evenly(handle.num_row_groups, sample)
        return handle.read_row_groups(groups, columns=columns).cast(_schema(columns))
    try:
        table = read_journal(path, columns)
    except FileNotFoundError:  # compacted since the folder was listed
        twin = path.with_suffix(".parquet")  # none if the journal held no record
        return _table(twin, columns, sample) if twin.exists() else _schema(columns).empty_table()
    blocks = -(-table.num_rows // BLOCK_ROWS)
    chosen = [table.slice(n * BLOCK_ROWS, BLOCK_ROWS) for n in _evenly(blocks, sample)]
    return pa.concat_tables(chosen) if chosen else table


def _evenly(count: int, share: float | None) -> list[int]:
    """`share` of range(count), evenly spaced and at least one; all of it without a share."""
    if share is None or count == 0:
        return list(range(count))
    chosen = max(1, round(share * count))
    return sorted({number * count // chosen for number in range(chosen)})


def journal_line(record: dict[str, Any]) -> bytes:
    """A record as one line of a journal; `at` as microseconds since the epoch (UTC)."""
    at = record["at"]
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at
    micros = (at - _EPOCH) // timedelta(microseconds=1)
    return (json.dumps(record | {"at": micros}, separators=(",", ":")) + "\n").encode()


def read_journal(path: Path, columns: Sequence[str] = COLUMNS) -> pa.Table:
    """A journal's complete lines (a line cut short by a crash or a full disk is left out),
    with only `columns` (in COLUMNS order): the parser skips the others' text."""
    import io

    import pyarrow as pa
    import pyarrow.json as pj

    wanted = [name for name in COLUMNS if name in columns]
    data = path.read_bytes()
    data = data[: data.rfind(b"\n") + 1]
    if not data:
        return _schema(wanted).empty_table()
    fields = [pa.field("at", pa.int64()) if f.name == "at" else f for f in _schema(wanted)]
    options = pj.ParseOptions(explicit_schema=pa.schema(fields), unexpected_field_behavior="ignore")
    # Blocks of 16 MiB: a line holds a request's body (~14 KB for a day of history), and
    # pyarrow's default 1 MiB blocks parse these lines half as fast.
    blocks = pj.ReadOptions(block_size=16 << 20)
    table = pj.read_json(io.BytesIO(data), read_options=blocks, parse_options=options)
    table = table.select(wanted)
    if "at" not in wanted:
        return table
    at = table["at"].cast(pa.timestamp("us", tz="UTC"))
    return table.set_column(wanted.index("at"), "at", at)


def open_journal(params: Params, day: date) -> tuple[int, Path]:
    """A new journal for `day`, and its file descriptor, open for appending and locked: it
    is created under a name compaction does not look at and renamed once locked, so no
    compaction ever takes a journal its writer is about to write."""
    import fcntl
    import os
    import uuid

    folder = day_folder(params, day)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{JOURNAL}{datetime.now(UTC):%H%M%S}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
    fresh = folder / f".{name}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
    fd = os.open(fresh, flags, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(fresh, folder / name)
    except BaseException:
        os.close(fd)
        fresh.unlink(missing_ok=True)
        raise
    return fd, folder / name


def compact(params: Params, before: date | None = None) -> list[Path]:
    """Compact every journal no live writer holds (of the days before `before`, if given)
    into its Parquet twin; return the twins written. Safe beside live writers and other
    compactions; a rerun finishes what a killed one began."""
    written: list[Path] = []
    root = params.predictions_dir
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if not folder.is_dir() or (before is not None and folder.name >= before.isoformat()):
            continue
        for stray in folder.glob(f".{JOURNAL}*.jsonl.tmp"):  # a writer died before its rename
            _compact_one(stray, remove_only=True)
        for journal in sorted(folder.glob(f"{JOURNAL}*.jsonl")):
            if (twin := _compact_one(journal)) is not None:
                written.append(twin)
    return written


def _compact_one(journal: Path, remove_only: bool = False) -> Path | None:
    import fcntl
    import os

    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        fd = os.open(journal, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:  # another compaction took it
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # its writer is alive
            return None
        if os.fstat(fd).st_nlink == 0:  # compacted while this one waited to open it
            return None
        if remove_only:  # a writer's journal before its rename holds no record yet
            journal.unlink()
            return None
        twin = journal.with_suffix(".parquet")
        table = None if twin.exists() else read_journal(journal)  # else: a rerun's cleanup
        if table is not None and table.num_rows:
            table = table.take(pc.sort_indices(table, [("at", "ascending")]))
            with atomic_path(twin) as tmp:
                pq.write_table(table, tmp, compression="zstd", row_group_size=BLOCK_ROWS)
        crash_point("predictionlog.compact")
        journal.unlink()
        return twin if table is not None and table.num_rows else None
    finally:
        os.close(fd)


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

"""The source feed: one file of timestamped readings, delivered one calendar month at a time.

`SourceFeed` reads the configured CSV or Parquet file once (with a progress bar on a
terminal) and then serves any number of months from memory, so ingesting 48 months costs
one read of the file, not 48.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from powerops.core.config import SourceConfig
from powerops.core.errors import PowerOpsError
from powerops.core.months import Month, MonthError
from powerops.core.text import looks_binary, printable

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

log = logging.getLogger(__name__)

# A CSV header must fit in this much of the file; a binary file is judged by its first bytes.
_HEAD_BYTES = 64 * 1024
_SNIFF_BYTES = 4096
_UTF8_BOM = b"\xef\xbb\xbf"


class SourceError(PowerOpsError):
    """The source file is missing, unreadable or lacks the configured columns."""


class _ProgressReader:
    """A read-only file wrapper that reports bytes consumed to a tqdm bar."""

    def __init__(self, handle: IO[bytes], bar: Any) -> None:
        self._handle = handle
        self._bar = bar
        self.closed = False

    def read(self, size: int = -1) -> bytes:
        chunk = self._handle.read(size)
        self._bar.update(len(chunk))
        return chunk

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True


def _format(path: Path, configured: str) -> str:
    if configured != "auto":
        return configured
    suffix = path.suffix.lower()
    if suffix in {".csv", ".txt"}:
        return "csv"
    if suffix in {".parquet", ".pq"}:
        return "parquet"
    raise SourceError(f"{path}: cannot tell the format from the suffix; set source.format")


def read_source(path: Path, config: SourceConfig, progress: bool | None = None) -> pd.DataFrame:
    """Read the whole source: the timestamp column plus the configured columns, sorted by time."""
    import pyarrow as pa

    if not path.is_file():
        raise SourceError(f"{path}: source file not found (check source.path in params.yaml)")
    size = path.stat().st_size
    show = sys.stderr.isatty() if progress is None else progress
    started = time.perf_counter()
    try:
        if _format(path, config.format) == "parquet":
            table = _read_parquet(path, config)
        else:
            table = _read_csv(path, config, show)
    except (pa.ArrowInvalid, OSError) as exc:
        # Arrow's parse errors quote the offending row, which may be binary.
        raise SourceError(f"{path}: cannot read the source: {printable(str(exc))}") from None
    frame: pd.DataFrame = table.to_pandas()
    frame[config.timestamp_column] = _timestamps(frame[config.timestamp_column], path, config)
    if not frame[config.timestamp_column].is_monotonic_increasing:
        frame = frame.sort_values(config.timestamp_column, kind="stable", ignore_index=True)
    log.info(
        "read %s rows from %s (%.0f MB) in %.1f s",
        f"{len(frame):,}",
        path,
        size / 1e6,
        time.perf_counter() - started,
    )
    return frame


def _read_parquet(path: Path, config: SourceConfig) -> pa.Table:
    import pyarrow.parquet as pq

    wanted = [config.timestamp_column, *config.columns]
    _check_columns(path, pq.read_schema(path).names, wanted, "schema")
    return pq.read_table(path, columns=wanted)


def _read_csv(path: Path, config: SourceConfig, show: bool) -> pa.Table:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    from tqdm import tqdm

    wanted = [config.timestamp_column, *config.columns]
    timestamp_type = pa.string() if config.timestamp_format else pa.timestamp("s")
    convert = pacsv.ConvertOptions(
        column_types={config.timestamp_column: timestamp_type}
        | {column: pa.float64() for column in config.columns},
        include_columns=wanted,
        null_values=list(config.na_values),
    )
    with (
        open(path, "rb") as handle,
        tqdm(
            total=path.stat().st_size,
            unit="B",
            unit_scale=True,
            desc=f"reading {path.name}",
            disable=not show,
        ) as bar,
    ):
        _check_columns(path, _csv_header(handle, path, config.delimiter), wanted, "header")
        reader = pacsv.open_csv(
            _ProgressReader(handle, bar),
            parse_options=pacsv.ParseOptions(delimiter=config.delimiter),
            convert_options=convert,
        )
        return reader.read_all()


def _csv_header(handle: IO[bytes], path: Path, delimiter: str) -> list[str]:
    """The column names in a CSV file's first line, leaving `handle` at the start of the file."""
    head = handle.read(_HEAD_BYTES)
    handle.seek(0)
    if looks_binary(head[:_SNIFF_BYTES]):
        raise SourceError(
            f"{path}: does not look like a text CSV file (binary content at its start); "
            "check source.path and source.format"
        )
    line, newline, _ = head.partition(b"\n")
    if not newline and len(head) == _HEAD_BYTES:
        raise SourceError(
            f"{path}: the first line is longer than {_HEAD_BYTES // 1024} KiB, so it is not a "
            "CSV header; check source.path, source.format and source.delimiter"
        )
    try:
        text = line.removeprefix(_UTF8_BOM).decode("utf-8").rstrip("\r")
    except UnicodeDecodeError:
        raise SourceError(
            f"{path}: the header is not UTF-8 text ({printable(line)}); "
            "save the file as UTF-8, or check source.path and source.format"
        ) from None
    return [name.strip('"') for name in text.split(delimiter)]


def _timestamps(column: pd.Series, path: Path, config: SourceConfig) -> pd.Series:
    """Parse the timestamp column to the one dtype every batch uses: naive datetime64[us]."""
    import pandas as pd

    try:
        parsed = pd.to_datetime(column, format=config.timestamp_format)
    except (ValueError, TypeError) as exc:
        raise SourceError(
            f"{path}: column {config.timestamp_column} is not a timestamp: "
            f"{printable(str(exc), limit=300)} (check source.timestamp_format)"
        ) from None
    if parsed.isna().any():
        first = int(parsed.isna().to_numpy().argmax())
        raise SourceError(
            f"{path}: column {config.timestamp_column} is empty in data row {first + 1}"
        )
    typed: pd.Series = parsed.astype("datetime64[us]")
    return typed


def _check_columns(path: Path, available: list[str], wanted: list[str], where: str) -> None:
    """Every wanted column present exactly once in the file's `where` (header or schema)."""
    missing = [column for column in wanted if column not in available]
    if missing:
        raise SourceError(
            f"{path}: missing column(s) {', '.join(missing)}; it has "
            f"{printable(', '.join(available), limit=500)} "
            f"({_delimiter_hint(available) or 'check source.timestamp_column and source.columns'})"
        )
    for column in wanted:
        # Arrow would silently keep the first of two same-named columns.
        if (count := available.count(column)) > 1:
            raise SourceError(
                f"{path}: column `{column}` appears {count} times in the {where}; "
                "a repeated column is ambiguous: fix the file"
            )


def _delimiter_hint(header: list[str]) -> str:
    """A hint when the header came out as one column that holds another delimiter: the file
    is split by something else than source.delimiter."""
    if len(header) != 1:
        return ""
    for other, name in ((";", "';'"), ("\t", "'\\t' (a tab)"), (",", "','"), ("|", "'|'")):
        if other in header[0]:
            return f"the header holds {name}: set source.delimiter to it"
    return ""


def slice_month(frame: pd.DataFrame, month: Month, timestamp_column: str) -> pd.DataFrame:
    """The rows of `frame` whose timestamp lies in `month`: [first instant, next month)."""
    timestamps = frame[timestamp_column]
    lo = timestamps.searchsorted(month.start, side="left")
    hi = timestamps.searchsorted(month.end, side="left")
    return frame.iloc[lo:hi].reset_index(drop=True)


class SourceFeed:
    """A configured source, read lazily once and served one month at a time."""

    def __init__(self, path: Path, config: SourceConfig, progress: bool | None = None) -> None:
        self.path = path
        self.config = config
        self._progress = progress
        self._frame: pd.DataFrame | None = None

    @property
    def frame(self) -> pd.DataFrame:
        if self._frame is None:
            self._frame = read_source(self.path, self.config, self._progress)
        return self._frame

    def months(self) -> list[Month]:
        """Every calendar month the source has data for, first to last."""
        timestamps = self.frame[self.config.timestamp_column]
        if timestamps.empty:
            return []
        return Month.of(timestamps.iloc[0]).range_to(Month.of(timestamps.iloc[-1]))

    def month(self, month: Month) -> pd.DataFrame:
        """The batch for one month; a month outside the source's range raises `MonthError`."""
        available = self.months()
        if not available or not available[0] <= month <= available[-1]:
            span = f"{available[0]}..{available[-1]}" if available else "nothing"
            raise MonthError(
                f"month {month} is outside the source's range {span} ({self.path.name})"
            )
        return slice_month(self.frame, month, self.config.timestamp_column)

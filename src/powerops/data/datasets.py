"""Dataset versions: version N+1 is version N plus one accepted monthly batch.

A dataset is a directory of monthly Parquet batches. Its content hash is the SHA-256 of its
manifest (file name and file hash, sorted), so the hash depends on the bytes alone, not on
when or where the version was built.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from powerops.core.config import Params
from powerops.core.months import Month, parse_month
from powerops.core.storage import sha256_file, sha256_text
from powerops.data.catalog import (
    BatchRef,
    Catalog,
    CatalogError,
    ColumnSchema,
    DatasetRecord,
    VersionRecord,
)

if TYPE_CHECKING:
    import pandas as pd

BATCH_SUFFIX = ".parquet"


def batch_path(directory: Path, month: str) -> Path:
    return directory / f"{month}{BATCH_SUFFIX}"


def batch_files(directory: Path) -> dict[str, Path]:
    """Monthly batches in `directory`, keyed by month, oldest first."""
    if not directory.is_dir():
        return {}
    found = {}
    for path in sorted(directory.glob(f"*{BATCH_SUFFIX}")):
        month = path.name.removesuffix(BATCH_SUFFIX)
        parse_month(month)  # a stray file name is an error, not silently ignored
        found[month] = path
    return found


def manifest(directory: Path) -> dict[str, str]:
    """File name -> SHA-256 for every batch in the directory."""
    return {path.name: sha256_file(path) for path in batch_files(directory).values()}


def content_hash(entries: dict[str, str]) -> str:
    """The dataset's identity: SHA-256 over its sorted manifest lines."""
    return sha256_text("".join(f"{name} {digest}\n" for name, digest in sorted(entries.items())))


def new_record(params: Params) -> DatasetRecord:
    """The catalog entry of a dataset before its first version, documented from params.yaml."""
    doc = params.dataset
    source = params.source
    location = (
        source.path
        if source.path is not None
        else f"package {source.package}: {source.package_file}"
    )
    return DatasetRecord(
        name=doc.name,
        description=doc.description,
        owner=doc.owner,
        tags=list(doc.tags),
        license=doc.license,
        source={
            "description": doc.source_description,
            "location": str(location),
            "timestamp_column": source.timestamp_column,
            "frequency": source.frequency,
        },
    )


def schema_of(batch: Any, params: Params) -> list[ColumnSchema]:
    """Column names and dtypes of a batch frame, with units and descriptions from params."""
    docs = {column.name: column for column in params.dataset.columns}
    schema = []
    for name, dtype in batch.dtypes.items():
        doc = docs.get(str(name))
        schema.append(
            ColumnSchema(
                name=str(name),
                dtype=str(dtype),
                unit=doc.unit if doc else "",
                description=doc.description if doc else "",
            )
        )
    return schema


def next_version(
    record: DatasetRecord,
    added: BatchRef,
    entries: dict[str, str],
    dvc_md5: str,
    rows: int,
    validation: dict[str, Any] | None = None,
) -> VersionRecord:
    """The record of version N+1 = the latest version plus `added`."""
    latest = record.latest
    months = sorted(name.removesuffix(BATCH_SUFFIX) for name in entries)
    return VersionRecord(
        version=(latest.version + 1) if latest else 1,
        content_hash=content_hash(entries),
        dvc_md5=dvc_md5,
        parent=latest.version if latest else None,
        added=added,
        first_month=months[0],
        last_month=months[-1],
        month_count=len(months),
        rows=rows,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        validation=validation,
    )


def months_in(record: DatasetRecord) -> dict[str, str]:
    """Month -> raw batch SHA-256 for every batch the dataset's versions have added."""
    return {version.added.month: version.added.raw_sha256 for version in record.versions}


def day_after_latest(params: Params) -> date:
    """The first day after the dataset's latest month: "now", as far as the data goes."""
    catalog = Catalog(params.catalog_dir)
    name = params.dataset.name
    latest = catalog.load(name).latest if catalog.exists(name) else None
    if latest is None:
        raise CatalogError(f"no version of {name} is published yet")
    end = parse_month(latest.last_month).end
    return date(end.year, end.month, end.day)


def read_window(params: Params, start: datetime, end: datetime) -> pd.DataFrame:
    """Readings of the working copy's version with start <= timestamp < end."""
    import pandas as pd

    column = params.source.timestamp_column
    wanted = {str(m) for m in Month.of(start).range_to(Month.of(end - timedelta(seconds=1)))}
    files = [path for month, path in batch_files(params.dataset_dir).items() if month in wanted]
    if not files:
        return pd.DataFrame(columns=[column, *params.source.columns])
    readings = pd.concat([pd.read_parquet(path) for path in files], ignore_index=True)
    inside = (readings[column] >= start) & (readings[column] < end)
    return readings[inside].sort_values(column, ignore_index=True)

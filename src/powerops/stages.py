"""Stage entry points: the functions `dvc.yaml` (through the CLI) and Airflow tasks both call.

Each stage takes the validated `Params` plus plain values, returns small JSON-able results
(paths, hashes, counts) and is idempotent: running it twice leaves the same state.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from powerops import dvcstore
from powerops.catalog import BatchRef, Catalog, CatalogError, DatasetRecord, VersionRecord
from powerops.config import Params
from powerops.datasets import (
    batch_files,
    batch_path,
    content_hash,
    manifest,
    months_in,
    new_record,
    next_version,
    schema_of,
)
from powerops.months import Month, MonthError
from powerops.source import SourceFeed
from powerops.storage import atomic_path, parquet_bytes, sha256_bytes, sha256_file

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


class BatchConflictError(RuntimeError):
    """A month already has a raw batch or dataset entry with different content."""


@dataclass(frozen=True)
class IngestResult:
    month: str
    path: str
    sha256: str
    rows: int
    changed: bool


def ingest(
    params: Params, months: list[Month] | None = None, feed: SourceFeed | None = None
) -> list[IngestResult]:
    """Write each month of the source as an immutable raw batch in `paths.raw`.

    Re-ingesting a month whose batch exists with the same bytes is a no-op; different bytes
    for an existing month are refused, because raw batches are immutable.
    """
    months = months if months is not None else params.ingest.months
    feed = feed or SourceFeed(params.source_path(), params.source)
    results = []
    for month in months:
        frame = feed.month(month)
        if frame.empty:
            raise MonthError(f"month {month}: the source has no rows for it")
        results.append(write_raw_batch(frame, params.raw_dir, str(month)))
    return results


def write_raw_batch(frame: pd.DataFrame, directory: Path, month: str) -> IngestResult:
    """Write one raw batch atomically and read-only; identical bytes make it a no-op."""
    target = batch_path(directory, month)
    data = parquet_bytes(frame)
    digest = sha256_bytes(data)
    if target.exists():
        existing = sha256_file(target)
        if existing == digest:
            log.info(
                "batch %s unchanged (%s rows, sha256 %s)", month, f"{len(frame):,}", digest[:12]
            )
            return IngestResult(month, str(target), digest, len(frame), changed=False)
        raise BatchConflictError(
            f"batch {month}: {target} already exists with different content "
            f"(sha256 {existing[:12]} on disk, {digest[:12]} from the source); raw batches are "
            "immutable: move the old file away deliberately if the source was corrected"
        )
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
        os.chmod(tmp, 0o444)
    log.info("batch %s written: %s rows, sha256 %s", month, f"{len(frame):,}", digest[:12])
    return IngestResult(month, str(target), digest, len(frame), changed=True)


def publish(
    params: Params, months: list[Month] | None = None, push: bool = True
) -> list[VersionRecord]:
    """Accept raw batches into new dataset versions, one version per batch, oldest month first.

    For each batch not yet in the dataset: copy it into `paths.dataset`, snapshot the
    directory into DVC (and push it to the remote), then append the version to the catalog.
    A month already in the dataset with the same bytes is skipped; with other bytes, refused.
    """
    import pandas as pd

    catalog = Catalog(params.catalog_dir)
    name = params.dataset.name
    record = catalog.load(name) if catalog.exists(name) else new_record(params)
    _ensure_latest(params, record)
    raw = batch_files(params.raw_dir)
    wanted = [str(month) for month in months] if months is not None else list(raw)
    missing = [month for month in wanted if month not in raw]
    if missing:
        raise MonthError(
            f"no raw batch for {', '.join(missing)} in {params.raw_dir}: ingest it first"
        )
    published = []
    for month in sorted(wanted):
        source = raw[month]
        digest = sha256_file(source)
        known = months_in(record)
        if month in known:
            if known[month] != digest:
                raise BatchConflictError(
                    f"batch {month}: dataset {name} already holds a different batch for this "
                    f"month (sha256 {known[month][:12]}, raw {digest[:12]}); "
                    "versions are append-only"
                )
            continue
        target = batch_path(params.dataset_dir, month)
        with atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)
        entries = manifest(params.dataset_dir)
        dvc_md5 = dvcstore.snapshot(params.root, params.dataset_dir)
        if push:
            dvcstore.push(params.root, dvc_md5)
        rows = _rows(source)
        if not record.columns:
            record.columns = schema_of(pd.read_parquet(source), params)
        total = (record.latest.rows if record.latest else 0) + rows
        added = BatchRef(month=month, file=target.name, sha256=digest, rows=rows)
        version = next_version(record, added, entries, dvc_md5, total)
        record.versions.append(version)
        catalog.save(record)  # after every version: a crash later keeps this one recorded
        published.append(version)
        log.info(
            "%s version %d: +%s (%s rows), %d months, content %s",
            name,
            version.version,
            month,
            f"{rows:,}",
            version.month_count,
            version.content_hash[:12],
        )
    if not catalog.exists(name):
        catalog.save(record)
    return published


def _rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)


def _ensure_latest(params: Params, record: DatasetRecord) -> None:
    """Bring the working dataset directory to the catalog's latest version before appending.

    The directory may be missing (data/ deleted, fresh clone), checked out at an older version,
    or hold a batch left by a crash between copy and catalog update.
    """
    latest = record.latest
    if latest is None:
        return
    if content_hash(manifest(params.dataset_dir)) == latest.content_hash:
        return
    log.info(
        "%s does not hold version %d; restoring it from DVC", params.dataset_dir, latest.version
    )
    dvcstore.restore(params.root, latest.dvc_md5, params.dataset_dir)


def checkout(
    params: Params, version: int | None = None, dataset: str | None = None
) -> VersionRecord:
    """Restore the working dataset directory to a version (default: the latest), byte for byte."""
    catalog = Catalog(params.catalog_dir)
    record = catalog.load(dataset or params.dataset.name)
    if record.latest is None:
        raise CatalogError(
            f"dataset {record.name} has no versions yet: run `powerops publish` first"
        )
    chosen = record.version(version) if version is not None else record.latest
    dvcstore.restore(params.root, chosen.dvc_md5, params.dataset_dir)
    restored = content_hash(manifest(params.dataset_dir))
    if restored != chosen.content_hash:
        raise dvcstore.VersionStoreError(
            f"{record.name}@{chosen.version}: restored content hash {restored[:12]} does not "
            f"match the catalog's {chosen.content_hash[:12]}"
        )
    return chosen

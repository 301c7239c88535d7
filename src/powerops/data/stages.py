"""Stage entry points: the functions `dvc.yaml` (through the CLI) and Airflow tasks both call.

Each stage takes the validated `Params` plus plain values, returns small JSON-able results
(paths, hashes, counts) and is idempotent: running it twice leaves the same state.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from powerops.core import alerts
from powerops.core.config import Params
from powerops.core.errors import PowerOpsError
from powerops.core.faults import crash_point
from powerops.core.months import Month, MonthError, parse_month
from powerops.core.storage import atomic_path, parquet_bytes, sha256_bytes, sha256_file
from powerops.data import dvcstore
from powerops.data.catalog import BatchRef, Catalog, CatalogError, DatasetRecord, VersionRecord
from powerops.data.datasets import (
    batch_files,
    batch_path,
    content_hash,
    manifest,
    months_in,
    new_record,
    next_version,
    schema_of,
)
from powerops.data.quarantine import (
    Quarantine,
    QuarantineError,
    Verdict,
    load_verdict,
    save_verdict,
)
from powerops.data.source import SourceError, SourceFeed

if TYPE_CHECKING:
    import pandas as pd

    from powerops.data.validation import ValidationReport

log = logging.getLogger(__name__)


class BatchConflictError(PowerOpsError):
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
    for an existing month are refused, because raw batches are immutable. A source file that
    cannot be used emits a critical alert, then raises `SourceError`.
    """
    months = months if months is not None else params.ingest.months
    feed = feed or SourceFeed(params.source_path(), params.source)
    results = []
    for month in months:
        try:
            frame = feed.month(month)
        except SourceError as exc:
            _source_alert(params, feed, months, exc)
            raise
        if frame.empty:
            raise MonthError(f"month {month}: the source has no rows for it")
        results.append(write_raw_batch(frame, params.raw_dir, str(month)))
    return results


def _source_alert(
    params: Params, feed: SourceFeed, months: list[Month], error: SourceError
) -> None:
    """Alert that ingest cannot use the source file: from the CLI and DVC, not only Airflow."""
    alerts.emit(
        alerts.Alert(
            # The feed is read whole, so a bad file fails every month: one key per dataset.
            key=f"ingest/{params.dataset.name}",
            severity="critical",
            source="ingest",
            summary=str(error),
            details={"source": str(feed.path), "months": [str(month) for month in months]},
        ),
        params,
    )


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
        crash_point("ingest.writing")
    log.info("batch %s written: %s rows, sha256 %s", month, f"{len(frame):,}", digest[:12])
    return IngestResult(month, str(target), digest, len(frame), changed=True)


class ValidationFailedError(PowerOpsError):
    """One or more batches failed validation and wait in quarantine for a decision."""


class HeldBackError(ValidationFailedError):
    """A batch waits behind an earlier month that is neither published nor rejected."""


def _raw_batches(params: Params, months: list[Month] | None) -> dict[str, Path]:
    """The raw batches asked for (default: all), oldest first; an absent month is an error."""
    raw = batch_files(params.raw_dir)
    if months is None:
        return raw
    wanted = sorted(str(month) for month in months)
    missing = [month for month in wanted if month not in raw]
    if missing:
        raise MonthError(
            f"no raw batch for {', '.join(missing)} in {params.raw_dir}: ingest it first"
        )
    return {month: raw[month] for month in wanted}


def _dataset_record(params: Params) -> DatasetRecord:
    catalog = Catalog(params.catalog_dir)
    name = params.dataset.name
    return catalog.load(name) if catalog.exists(name) else new_record(params)


def _check_batch(
    params: Params,
    month: str,
    path: Path,
    raw_sha256: str,
    now: datetime | None,
) -> ValidationReport:
    """Validate one batch file: Great Expectations on its rows, or a read failure as the report."""
    from powerops.data.validation import (
        BatchReadError,
        Failure,
        ValidationReport,
        read_batch,
        validate_frame,
    )

    suite = params.validation.raw_suite
    file_sha256 = sha256_file(path)
    try:
        frame = read_batch(path)
    except BatchReadError as exc:
        failure = Failure(
            "readable_parquet_file", None, "the batch file must be readable Parquet", str(exc)
        )
        return ValidationReport(
            suite,
            month,
            file_sha256,
            False,
            1,
            [failure],
            validated_at=(now or datetime.now(UTC)).isoformat(timespec="seconds"),
        )
    return validate_frame(frame, params, suite, parse_month(month), file_sha256, now=now)


def _record_verdict(
    params: Params, month: str, path: Path, raw_sha256: str, report: ValidationReport
) -> None:
    verdict = Verdict(
        month=month,
        raw_sha256=raw_sha256,
        file=os.path.relpath(path, params.root),
        file_sha256=report.file_sha256,
        success=report.success,
        summary=report.summary(),
    )
    save_verdict(params.validation_dir, verdict)
    if report.notes:
        alerts.emit(
            alerts.Alert(
                key=f"validation/{params.validation.raw_suite}/{month}/clock_change",
                severity="warning",
                source="validate",
                summary=f"batch {month}: " + "; ".join(report.notes),
                details=report.summary(),
            ),
            params,
        )
    if not report.success:
        Quarantine(params.quarantine_dir).admit(month, path, raw_sha256, report)
        _batch_alert(
            params,
            month,
            "validate",
            f"batch {month} failed validation and is quarantined "
            f"({len(report.failures)} expectation(s) failed)",
            details=report.summary(),
        )


def _batch_alert(
    params: Params,
    month: str,
    source: str,
    summary: str,
    details: dict[str, Any] | None = None,
    resolved: bool = False,
) -> None:
    """The alert of one batch's validation: firing when it fails, resolved when decided."""
    alerts.emit(
        alerts.Alert(
            key=f"validation/{params.validation.raw_suite}/{month}",
            severity="info" if resolved else "critical",
            source=source,
            summary=summary,
            details=details or {},
            status="resolved" if resolved else "firing",
        ),
        params,
    )


def validate(
    params: Params,
    months: list[Month] | None = None,
    now: datetime | None = None,
) -> list[ValidationReport]:
    """Run the raw-batch suite on every raw batch that has no verdict yet.

    A batch that passes gets a verdict `publish` will accept. A batch that fails is copied to
    quarantine with its report, an alert is emitted, and `ValidationFailedError` is raised after
    every batch was checked, naming each failed expectation. A quarantined batch keeps failing
    the stage until it is re-validated or rejected; the dataset never sees it.
    """
    published = months_in(_dataset_record(params))
    quarantine = Quarantine(params.quarantine_dir)
    reports, blocking = [], []
    for month, path in _raw_batches(params, months).items():
        raw_sha256 = sha256_file(path)
        if published.get(month) == raw_sha256:
            if months is not None:  # asked for by name: say why nothing happened
                log.info("batch %s is already published; not validated again", month)
            continue
        held = quarantine.load(month)
        if held and held.raw_sha256 == raw_sha256 and held.status != "released":
            if held.status == "quarantined":
                blocking.append(held.reason)
            log.info("batch %s is %s; skipping", month, held.status)
            continue
        verdict = load_verdict(params.validation_dir, month)
        if verdict and verdict.raw_sha256 == raw_sha256 and verdict.success:
            log.info("batch %s already passed validation; not validated again", month)
            continue
        report = _check_batch(params, month, path, raw_sha256, now)
        _record_verdict(params, month, path, raw_sha256, report)
        reports.append(report)
        if report.success:
            log.info(
                "batch %s passed %d expectations of `%s`", month, report.evaluated, report.suite
            )
        else:
            blocking.append(report.message())
    if blocking:
        raise ValidationFailedError(
            f"{len(blocking)} batch(es) in quarantine ({params.quarantine_dir}); fix and "
            "`powerops quarantine revalidate MONTH`, or `powerops quarantine reject MONTH`:\n"
            + "\n".join(blocking)
        )
    return reports


def revalidate(params: Params, month: Month, now: datetime | None = None) -> ValidationReport:
    """Validate a quarantined batch again (after fixing its copy there, or the suite).

    On success the fixed copy becomes the batch `publish` accepts for that month.
    """
    quarantine = Quarantine(params.quarantine_dir)
    held = quarantine.load(str(month))
    if held is None:
        raise QuarantineError(f"batch {month} is not in quarantine")
    if held.status == "released":
        raise QuarantineError(f"batch {month} was already released from quarantine")
    path = quarantine.batch(str(month))
    report = _check_batch(params, str(month), path, held.raw_sha256, now)
    _record_verdict(params, str(month), path, held.raw_sha256, report)
    if not report.success:
        raise ValidationFailedError(report.message())
    quarantine.set_status(str(month), "released", f"passed `{report.suite}` after a fix")
    _batch_alert(
        params,
        str(month),
        "revalidate",
        f"batch {month} passed after a fix",
        details=report.summary(),
        resolved=True,
    )
    return report


def reject(params: Params, month: Month, reason: str) -> None:
    """Reject a quarantined batch for good: it never enters the dataset and stops blocking."""
    Quarantine(params.quarantine_dir).set_status(str(month), "rejected", reason)
    _batch_alert(params, str(month), "reject", f"batch {month} rejected: {reason}", resolved=True)


def publish(
    params: Params, months: list[Month] | None = None, push: bool = True, by: str = ""
) -> list[VersionRecord]:
    """Accept validated batches into new dataset versions, one version per batch, oldest first.

    Only a batch whose verdict passed, for exactly the bytes now on disk, is accepted: copied
    into `paths.dataset`, snapshotted into DVC (and pushed to the remote), then appended to
    the catalog with its validation summary. A month already in the dataset is skipped if it
    came from the same raw bytes and refused otherwise (versions are append-only). `by` says
    who published, in each new version's record.
    """
    catalog = Catalog(params.catalog_dir)
    record = _dataset_record(params)
    _ensure_latest(params, record)
    published = []
    for month, raw_path in _raw_batches(params, months).items():
        verdict = _acceptable(params, record, month, raw_path, strict=months is not None)
        if verdict is None:
            continue
        if waiting := _waiting_before(params, record, month):
            held = f"batch {month} is held back: {waiting} (no version skips a month)"
            if months is not None:
                raise HeldBackError(held)
            log.warning("%s", held)
            break
        version = _add_version(params, record, month, verdict, push, by)
        catalog.save(record)  # after every version: a crash later keeps this one recorded
        crash_point("publish.after_catalog")
        published.append(version)
    if not catalog.exists(record.name):
        catalog.save(record)
    return published


def _waiting_before(params: Params, record: DatasetRecord, month: str) -> str | None:
    """Why `month` may not be published yet: an ingested month after the dataset's last one
    and before `month` that is neither published nor rejected. Both paths, Airflow's month by
    month and `dvc repro`'s all at once, keep this one rule, so a version never lacks a
    month silently: a rejected month is the only gap, and a deliberate one."""
    published = months_in(record)
    last = max(published, default="")
    quarantine = Quarantine(params.quarantine_dir)
    for earlier in sorted(batch_files(params.raw_dir)):
        if not last < earlier < month or earlier in published:
            continue
        held = quarantine.load(earlier)
        if held is not None and held.status == "rejected":
            continue
        if held is not None and held.status == "quarantined":
            return (
                f"{earlier} waits in quarantine: decide it first (`powerops quarantine "
                f"revalidate {earlier}` after a fix, or `powerops quarantine reject {earlier} "
                "--reason ...`)"
            )
        return f"{earlier} is not published yet: validate and publish it first"
    return None


def published_by(params: Params, month: Month, by: str) -> VersionRecord | None:
    """The version that added `month`, if `by` published it (an earlier try of the same run,
    killed after the catalog recorded it, whose news is still to be told)."""
    versions = _dataset_record(params).versions
    return next(
        (v for v in versions if v.added.month == str(month) and by and v.created_by == by), None
    )


def _acceptable(
    params: Params, record: DatasetRecord, month: str, raw_path: Path, strict: bool
) -> Verdict | None:
    """The passing verdict of a batch to publish; None for a month already published (from
    the same bytes) or, unless `strict`, not validated yet. A conflict is an error."""
    raw_sha256 = sha256_file(raw_path)
    known = months_in(record)
    if month in known:
        if known[month] != raw_sha256:
            raise BatchConflictError(
                f"batch {month}: dataset {record.name} already holds a different batch for this "
                f"month (raw sha256 {known[month][:12]}, now {raw_sha256[:12]}); "
                "versions are append-only"
            )
        return None
    verdict = load_verdict(params.validation_dir, month)
    if verdict is None or verdict.raw_sha256 != raw_sha256 or not verdict.success:
        if strict:
            raise ValidationFailedError(
                f"batch {month} has not passed validation: run `powerops validate` first"
            )
        log.info("batch %s has not passed validation; not published", month)
        return None
    return verdict


def _add_version(
    params: Params, record: DatasetRecord, month: str, verdict: Verdict, push: bool, by: str
) -> VersionRecord:
    """Copy the validated bytes into the working copy, snapshot (and push) it, and append the
    version to `record`."""
    import pandas as pd

    source = params.resolve(verdict.file)
    digest = sha256_file(source)
    if digest != verdict.file_sha256:
        raise BatchConflictError(f"batch {month}: {source} changed after it was validated")
    target = batch_path(params.dataset_dir, month)
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
        crash_point("publish.copying")
    crash_point("publish.after_copy")
    entries = manifest(params.dataset_dir)
    dvc_md5 = dvcstore.snapshot(params.root, params.dataset_dir)
    if push:
        dvcstore.push(params.root, dvc_md5)
    crash_point("publish.before_catalog")
    rows = _rows(source)
    if not record.columns:
        record.columns = schema_of(pd.read_parquet(source), params)
    total = (record.latest.rows if record.latest else 0) + rows
    added = BatchRef(
        month=month, file=target.name, sha256=digest, raw_sha256=verdict.raw_sha256, rows=rows
    )
    version = next_version(record, added, entries, dvc_md5, total, verdict.summary)
    version.created_by = by
    record.versions.append(version)
    log.info(
        "%s version %d: +%s (%s rows), %d months, content %s",
        record.name,
        version.version,
        month,
        f"{rows:,}",
        version.month_count,
        version.content_hash[:12],
    )
    return version


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

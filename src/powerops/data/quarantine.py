"""Validation records and the quarantine: where a batch's verdict is kept between stages.

`data/validation/<month>.json` holds the latest verdict on each raw batch, keyed by the raw
file's hash, so `publish` only ever accepts the exact bytes that passed. A batch that fails
is copied to `data/quarantine/<month>/` with its report and waits for a decision: re-validate
(after fixing the copy there or the suite) or reject for good.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from powerops.core.errors import PowerOpsError
from powerops.core.storage import atomic_path, atomic_write_text

if TYPE_CHECKING:
    from powerops.data.validation import ValidationReport

QUARANTINED_FILE = "batch.parquet"
RECORD_FILE = "quarantine.json"

Status = Literal["quarantined", "rejected", "released"]


class QuarantineError(PowerOpsError, LookupError):
    """A quarantine command names a batch that is not in quarantine."""


class Verdict(BaseModel):
    """The outcome of validating one raw batch (or its fixed copy from quarantine)."""

    month: str
    raw_sha256: str
    file: str  # the validated file, relative to the workspace root
    file_sha256: str
    success: bool
    summary: dict[str, Any]


class QuarantineRecord(BaseModel):
    month: str
    status: Status
    raw_sha256: str
    reason: str
    summary: dict[str, Any]
    history: list[dict[str, str]] = []


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def verdict_path(directory: Path, month: str) -> Path:
    return directory / f"{month}.json"


def load_verdict(directory: Path, month: str) -> Verdict | None:
    path = verdict_path(directory, month)
    return Verdict.model_validate_json(path.read_text()) if path.is_file() else None


def save_verdict(directory: Path, verdict: Verdict) -> None:
    atomic_write_text(verdict_path(directory, verdict.month), verdict.model_dump_json(indent=2))


class Quarantine:
    """`<root>/<month>/`: the batch as it failed, and a record of its status and history."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, month: str) -> Path:
        return self.root / month

    def batch(self, month: str) -> Path:
        return self.folder(month) / QUARANTINED_FILE

    def load(self, month: str) -> QuarantineRecord | None:
        path = self.folder(month) / RECORD_FILE
        return QuarantineRecord.model_validate_json(path.read_text()) if path.is_file() else None

    def save(self, record: QuarantineRecord) -> None:
        atomic_write_text(self.folder(record.month) / RECORD_FILE, record.model_dump_json(indent=2))

    def months(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / RECORD_FILE).is_file())

    def admit(self, month: str, batch: Path, raw_sha256: str, report: ValidationReport) -> None:
        """Keep a failed batch here with its full report; its status becomes `quarantined`."""
        folder = self.folder(month)
        if batch != self.batch(month):
            with atomic_path(self.batch(month)) as tmp:
                shutil.copyfile(batch, tmp)
        atomic_write_text(folder / "validation.json", report.to_json())
        previous = self.load(month)
        history = previous.history if previous and previous.raw_sha256 == raw_sha256 else []
        detail = f"{len(report.failures)} of {report.evaluated} expectations failed"
        history.append({"at": _now(), "event": "quarantined", "detail": detail})
        self.save(
            QuarantineRecord(
                month=month,
                status="quarantined",
                raw_sha256=raw_sha256,
                reason=report.message(),
                summary=report.summary(),
                history=history,
            )
        )

    def set_status(self, month: str, status: Status, reason: str) -> QuarantineRecord:
        record = self.load(month)
        if record is None:
            known = ", ".join(self.months()) or "none"
            raise QuarantineError(f"batch {month} is not in quarantine (quarantined: {known})")
        record.status = status
        record.reason = reason
        record.history.append({"at": _now(), "event": status, "detail": reason})
        self.save(record)
        return record

"""The dataset catalog: one reviewable YAML file per dataset under `catalog/`.

Each file documents a dataset (description, owner, tags, source, schema with units) and lists
every version of it: content hash, DVC hash, months covered, rows, creation time and the
validation summary. It is plain YAML so it can be read, diffed and reviewed without the CLI.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from powerops.core.errors import PowerOpsError
from powerops.core.storage import atomic_write_text


class CatalogError(PowerOpsError, LookupError):
    """A dataset or version is not in the catalog, or a catalog file is malformed."""


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ColumnSchema(_Record):
    name: str
    dtype: str
    unit: str = ""
    description: str = ""


class BatchRef(_Record):
    """The batch a version added: one month of raw data, identified by its file hash."""

    month: str
    file: str
    sha256: str
    raw_sha256: (
        str  # the landed raw batch; differs from sha256 only for a batch fixed in quarantine
    )
    rows: int


class VersionRecord(_Record):
    version: int
    content_hash: str
    dvc_md5: str
    parent: int | None
    added: BatchRef
    first_month: str
    last_month: str
    month_count: int
    rows: int
    created_at: str
    validation: dict[str, Any] | None = None
    # Who published it: `airflow:power_ingest/<run id>`, or empty (the CLI, `dvc repro`).
    created_by: str = ""


class DatasetRecord(_Record):
    name: str
    description: str
    owner: str
    tags: list[str] = []
    license: str = ""
    source: dict[str, str] = {}
    columns: list[ColumnSchema] = []
    versions: list[VersionRecord] = []

    @property
    def latest(self) -> VersionRecord | None:
        return self.versions[-1] if self.versions else None

    def version(self, number: int) -> VersionRecord:
        for record in self.versions:
            if record.version == number:
                return record
        known = f"1..{len(self.versions)}" if self.versions else "none yet"
        raise CatalogError(f"dataset {self.name} has no version {number} (versions: {known})")

    def matches(self, text: str) -> bool:
        """Case-insensitive match on name, description, tags and column names or docs."""
        needle = text.lower()
        haystack = [self.name, self.description, *self.tags]
        haystack += [f"{c.name} {c.description} {c.unit}" for c in self.columns]
        return any(needle in item.lower() for item in haystack)


class Catalog:
    """The catalog directory: `<root>/<dataset name>.yaml`, one file per dataset."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, name: str) -> Path:
        return self.root / f"{name}.yaml"

    def names(self) -> list[str]:
        return sorted(path.stem for path in self.root.glob("*.yaml"))

    def exists(self, name: str) -> bool:
        return self.path(name).is_file()

    def load(self, name: str) -> DatasetRecord:
        path = self.path(name)
        if not path.is_file():
            known = ", ".join(self.names()) or "none yet"
            raise CatalogError(f"no dataset named {name!r} in {self.root} (datasets: {known})")
        try:
            return DatasetRecord.model_validate(yaml.safe_load(path.read_text()))
        except (yaml.YAMLError, ValidationError) as exc:
            raise CatalogError(f"{path}: malformed catalog file: {exc}") from None

    def save(self, record: DatasetRecord) -> None:
        text = yaml.safe_dump(
            record.model_dump(mode="json"), sort_keys=False, allow_unicode=True, width=100
        )
        atomic_write_text(self.path(record.name), text)

    def all(self) -> list[DatasetRecord]:
        return [self.load(name) for name in self.names()]

    def search(self, text: str = "", tags: Iterable[str] = ()) -> list[DatasetRecord]:
        """Datasets matching `text` (if given) that carry every tag in `tags`."""
        wanted = {tag.lower() for tag in tags}
        return [
            record
            for record in self.all()
            if (not text or record.matches(text)) and wanted <= {t.lower() for t in record.tags}
        ]


def parse_ref(ref: str) -> tuple[str, int | None]:
    """Split `NAME[@VERSION]` into its parts; `household_power@5` -> ("household_power", 5)."""
    name, _, version = ref.partition("@")
    if not version:
        return name, None
    if not version.lstrip("v").isdigit():
        raise CatalogError(f"{ref!r}: version must be a number, e.g. {name}@5")
    return name, int(version.lstrip("v"))

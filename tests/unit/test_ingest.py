"""Raw batches and dataset versions, on small synthetic data in a throwaway DVC workspace."""

import gzip
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from powerops.core.alerts import read_log
from powerops.core.config import Params, load_params
from powerops.core.months import Month
from powerops.core.storage import sha256_file
from powerops.data import stages
from powerops.data.catalog import Catalog
from powerops.data.datasets import batch_files, content_hash, manifest
from powerops.data.source import SourceError
from tests.conftest import make_workspace, run

Frame = Callable[[str, str], pd.DataFrame]


@pytest.fixture
def params(tmp_path: Path, minute_frame: Frame) -> Params:
    source = tmp_path / "source.csv"
    minute_frame("2008-01-15", "2008-04-10").to_csv(source, index=False)
    root = make_workspace(
        tmp_path / "ws",
        source,
        start="2008-01",
        through="2008-03",
        validation={"collection_start": "2008-01-15 00:00:00", "collection_end": None},
    )
    return load_params(root / "params.yaml")


def test_reingest_is_idempotent_same_bytes_no_duplicates(params: Params) -> None:
    first = stages.ingest(params, [Month(2008, 2)])
    second = stages.ingest(params, [Month(2008, 2)])
    assert first[0].changed and not second[0].changed
    assert first[0].sha256 == second[0].sha256 == sha256_file(Path(first[0].path))
    batch = pd.read_parquet(first[0].path)
    assert len(batch) == 29 * 24 * 60 and batch["date_time"].is_unique
    assert list(batch_files(params.raw_dir)) == ["2008-02"]


def test_changed_source_for_an_ingested_month_is_refused(params: Params) -> None:
    stages.ingest(params, [Month(2008, 2)])
    original = sha256_file(stages.batch_path(params.raw_dir, "2008-02"))
    source = params.source_path()
    frame = pd.read_csv(source)
    frame.loc[frame["date_time"] == "2008-02-10 12:00:00", "Voltage"] = 250.0
    frame.to_csv(source, index=False)
    with pytest.raises(stages.BatchConflictError, match=r"batch 2008-02: .* different content"):
        stages.ingest(params, [Month(2008, 2)])
    assert sha256_file(stages.batch_path(params.raw_dir, "2008-02")) == original


def test_each_batch_makes_the_next_version(params: Params) -> None:
    stages.ingest(params)
    stages.validate(params)
    versions = stages.publish(params, push=False)
    assert [v.version for v in versions] == [1, 2, 3]
    assert [v.added.month for v in versions] == ["2008-01", "2008-02", "2008-03"]
    assert [v.parent for v in versions] == [None, 1, 2]
    assert versions[-1].rows == sum(v.added.rows for v in versions)
    assert versions[-1].content_hash == content_hash(manifest(params.dataset_dir))
    # Publishing again adds nothing: every raw batch is already in the dataset.
    assert stages.publish(params, push=False) == []
    record = Catalog(params.catalog_dir).load("household_power")
    assert [v.version for v in record.versions] == [1, 2, 3]
    assert [c.name for c in record.columns][:2] == ["date_time", "Global_active_power"]
    assert record.columns[1].unit == "kW"


def test_publish_refuses_a_different_batch_for_a_published_month(params: Params) -> None:
    stages.ingest(params, [Month(2008, 1)])
    stages.validate(params)
    stages.publish(params, push=False)
    raw = stages.batch_path(params.raw_dir, "2008-01")
    raw.chmod(0o644)
    pd.read_parquet(raw).iloc[:-1].to_parquet(raw)
    with pytest.raises(stages.BatchConflictError, match="append-only"):
        stages.publish(params, push=False)
    assert len(Catalog(params.catalog_dir).load("household_power").versions) == 1


def test_month_outside_source_range_names_the_range(params: Params) -> None:
    with pytest.raises(stages.MonthError, match=r"2008-05 is outside .* 2008-01\.\.2008-04"):
        stages.ingest(params, [Month(2008, 5)])
    assert not params.raw_dir.exists()


def test_unusable_source_alerts_then_raises(params: Params) -> None:
    params.source_path().write_bytes(gzip.compress(params.source_path().read_bytes()))
    with pytest.raises(SourceError) as refused:
        stages.ingest(params)
    assert "does not look like a text CSV file" in str(refused.value)
    [alert] = read_log(params.resolve(params.alerts.log))
    assert alert["key"] == "ingest/household_power"
    assert (alert["severity"], alert["status"], alert["source"]) == ("critical", "firing", "ingest")
    assert alert["summary"] == str(refused.value)
    assert alert["details"]["months"] == ["2008-01", "2008-02", "2008-03"]
    assert not params.raw_dir.exists()


def test_cli_ingest_of_a_file_with_a_repeated_column_exits_1_with_one_error_line(
    params: Params,
) -> None:
    frame = pd.read_csv(params.source_path())
    frame.insert(3, "Voltage", 0.0, allow_duplicates=True)  # the first `Voltage` is wrong
    frame.to_csv(params.source_path(), index=False)
    failed = run(["powerops", "-q", "ingest"], params.root, check=False)
    assert failed.returncode == 1
    error = (
        f"{params.source_path()}: column `Voltage` appears 2 times in the header; "
        "a repeated column is ambiguous: fix the file"
    )
    # The error's one line, after the log record every alert writes.
    *logged, last = failed.stderr.strip().splitlines()
    assert last == f"powerops: error: {error}"
    assert len(logged) == 1 and logged[0].endswith(
        f"ALERT [critical] ingest/household_power: {error}"
    )
    [alert] = read_log(params.resolve(params.alerts.log))
    assert alert["summary"] == error
    assert not params.raw_dir.exists()

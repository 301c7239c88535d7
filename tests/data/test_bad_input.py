"""The bad-input battery: corruptions of a real monthly batch, each rejected by the right rule.

Every case lands a corrupted 2007-03 batch in a workspace whose dataset already holds three
good versions (2006-12..2007-02), validates it, and checks that the named expectation failed,
the batch sits in quarantine with its report, an alert was logged, and the dataset version and
catalog are exactly as before.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from powerops.core.alerts import read_log
from powerops.core.config import Params, load_params
from powerops.core.months import Month
from powerops.core.storage import parquet_bytes, sha256_file
from powerops.data import stages
from powerops.data.catalog import Catalog
from powerops.data.datasets import batch_path, content_hash, manifest
from powerops.data.quarantine import Quarantine, load_verdict
from tests.conftest import make_workspace

MONTH = Month(2007, 3)
NOW = datetime(2026, 11, 28, tzinfo=UTC)


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory, real_source_csv: Path) -> Params:
    """A workspace with versions 1-3 published and the real 2007-03 batch ingested."""
    root = make_workspace(tmp_path_factory.mktemp("battery") / "ws", real_source_csv, "2007-03")
    params = load_params(root / "params.yaml")
    stages.ingest(params)
    stages.validate(params, [Month(2006, 12), Month(2007, 1), Month(2007, 2)], now=NOW)
    assert len(stages.publish(params, push=False)) == 3
    return params


@pytest.fixture
def fresh(tmp_path: Path, real_source_csv: Path) -> Params:
    """A workspace of its own: 2007-02 published as version 1, the real 2007-03 ingested."""
    root = make_workspace(tmp_path / "ws", real_source_csv, start="2007-02", through="2007-03")
    params = load_params(root / "params.yaml")
    stages.ingest(params)
    stages.validate(params, [Month(2007, 2)], now=NOW)
    assert len(stages.publish(params, push=False)) == 1
    return params


@pytest.fixture(scope="module")
def clean_batch(good: Params) -> pd.DataFrame:
    return pd.read_parquet(batch_path(good.raw_dir, str(MONTH)))


@pytest.fixture
def params(good: Params, clean_batch: pd.DataFrame) -> Params:
    """Reset 2007-03 to 'not yet validated' before each case, leaving versions 1-3 alone."""
    shutil.rmtree(good.quarantine_dir / str(MONTH), ignore_errors=True)
    (good.validation_dir / f"{MONTH}.json").unlink(missing_ok=True)
    land(good, parquet_bytes(clean_batch))
    return good


def land(params: Params, data: bytes) -> Path:
    """Replace the raw 2007-03 batch with these bytes (the test plays a misbehaving feed)."""
    path = batch_path(params.raw_dir, str(MONTH))
    if path.exists():
        path.chmod(0o644)
    path.write_bytes(data)
    return path


def shift(frame: pd.DataFrame, rows: slice, by: str) -> pd.DataFrame:
    out = frame.copy()
    out.loc[out.index[rows], "date_time"] += pd.Timedelta(by)
    return out


def assign(column: str, rows: slice, value: object) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def corrupt(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.copy()
        if not isinstance(value, float | int) or out[column].dtype == object:
            out[column] = out[column].astype(object)
        out.loc[out.index[rows], column] = value
        return out

    return corrupt


def parquet_table_bytes(table: pa.Table) -> bytes:
    """Parquet bytes of an Arrow table (pandas refuses to write repeated column names)."""
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


Corruption = Callable[[pd.DataFrame], "pd.DataFrame | bytes"]

# name -> (corruption, expectation that must fail, its column or None for table-level)
BATTERY: dict[str, tuple[Corruption, str, str | None]] = {
    "missing column": (
        lambda f: f.drop(columns=["Voltage"]),
        "expect_table_columns_to_match_ordered_list",
        None,
    ),
    "extra column": (
        lambda f: f.assign(Sub_metering_4=0.0),
        "expect_table_columns_to_match_ordered_list",
        None,
    ),
    "renamed column": (
        lambda f: f.rename(columns={"Voltage": "voltage"}),
        "expect_table_columns_to_match_ordered_list",
        None,
    ),
    "reordered columns": (
        lambda f: f[[f.columns[0], *reversed(f.columns[1:])]],
        "expect_table_columns_to_match_ordered_list",
        None,
    ),
    "text in a numeric column": (
        lambda f: f.assign(Voltage=f["Voltage"].astype(str).where(f.index != 10, "n/a")),
        "expect_column_values_to_be_of_type",
        "Voltage",
    ),
    "timestamps as text": (
        lambda f: f.assign(date_time=f["date_time"].dt.strftime("%Y-%m-%d %H:%M:%S")),
        "expect_column_values_to_be_of_type",
        "date_time",
    ),
    "nulls": (
        assign("Global_active_power", slice(100, 110), np.nan),
        "expect_column_values_to_not_be_null",
        "Global_active_power",
    ),
    "negative power": (
        assign("Global_active_power", slice(5, 6), -0.5),
        "expect_column_values_to_be_between",
        "Global_active_power",
    ),
    "voltage out of range": (
        assign("Voltage", slice(0, 30), 300.0),
        "expect_column_values_to_be_between",
        "Voltage",
    ),
    "duplicate timestamps": (
        lambda f: pd.concat([f, f.iloc[200:210]]).sort_values("date_time", kind="stable"),
        "expect_column_values_to_be_unique",
        "date_time",
    ),
    "timestamps from another month": (
        lambda f: shift(f, slice(-60, None), "31D"),
        "expect_column_values_to_be_between",
        "date_time",
    ),
    "unsorted rows": (
        lambda f: f.sample(frac=1.0, random_state=7),
        "expect_column_values_to_be_increasing",
        "date_time",
    ),
    "empty batch": (
        lambda f: f.iloc[0:0],
        "expect_table_row_count_to_be_between",
        None,
    ),
    "too few rows": (
        lambda f: f[f["date_time"] < "2007-03-11"],
        "expect_table_row_count_to_be_between",
        None,
    ),
    "truncated file": (
        lambda f: parquet_bytes(f)[: len(parquet_bytes(f)) // 2],
        "readable_parquet_file",
        None,
    ),
    "not a parquet file": (
        lambda f: f.to_csv(index=False).encode(),
        "readable_parquet_file",
        None,
    ),
    "repeated column": (
        lambda f: parquet_table_bytes(
            pa.Table.from_pandas(f, preserve_index=False).add_column(3, "Voltage", pa.nulls(len(f)))
        ),
        "readable_parquet_file",
        None,
    ),
    "stuck sensor": (
        lambda f: f.assign(Voltage=240.0),
        "expect_column_unique_value_count_to_be_between",
        "Voltage",
    ),
    "unit change, W instead of kW": (
        lambda f: f.assign(Global_active_power=f["Global_active_power"] * 1000),
        "expect_column_values_to_be_between",
        "Global_active_power",
    ),
    "sub-meters exceed the total": (
        lambda f: f.assign(Sub_metering_3=f["Sub_metering_3"] + 120.0),
        "expect_column_values_to_be_between",
        "derived__unmetered_wh",
    ),
    "zero voltage: the intensity check divides by zero": (
        assign("Voltage", slice(50, 52), 0.0),
        "expect_column_values_to_not_be_null",
        "derived__intensity_error_a",
    ),
    "intensity inconsistent with power and voltage": (
        lambda f: f.assign(Global_intensity=f["Global_intensity"] * 3 + 5),
        "expect_column_values_to_be_between",
        "derived__intensity_error_a",
    ),
}


def dataset_state(params: Params) -> tuple[str, bytes]:
    catalog = Catalog(params.catalog_dir)
    return content_hash(manifest(params.dataset_dir)), catalog.path("household_power").read_bytes()


@pytest.mark.parametrize("name", list(BATTERY))
def test_corruption_is_quarantined_and_named(
    name: str, params: Params, clean_batch: pd.DataFrame
) -> None:
    corrupt, expectation, column = BATTERY[name]
    corrupted = corrupt(clean_batch)
    raw = land(params, corrupted if isinstance(corrupted, bytes) else parquet_bytes(corrupted))
    before = dataset_state(params)
    alerts_before = len(read_log(params.resolve(params.alerts.log)))

    with pytest.raises(stages.ValidationFailedError) as failed:
        stages.validate(params, [MONTH], now=NOW)

    message = str(failed.value)
    assert f"batch {MONTH}:" in message
    where = f"column `{column}`" if column else "table"
    assert f"{where}: {expectation}" in message, message
    # Quarantined with the exact bytes that failed and the report.
    record = Quarantine(params.quarantine_dir).load(str(MONTH))
    assert record is not None and record.status == "quarantined"
    assert record.raw_sha256 == sha256_file(raw)
    assert sha256_file(Quarantine(params.quarantine_dir).batch(str(MONTH))) == sha256_file(raw)
    assert (params.quarantine_dir / str(MONTH) / "validation.json").is_file()
    verdict = load_verdict(params.validation_dir, str(MONTH))
    assert verdict is not None and not verdict.success
    # One alert, naming the batch.
    alerts = read_log(params.resolve(params.alerts.log))
    assert len(alerts) == alerts_before + 1
    assert alerts[-1]["key"] == f"validation/raw_batch/{MONTH}"
    assert alerts[-1]["severity"] == "critical"
    # Publishing afterwards changes nothing: the dataset version and the catalog stand.
    assert stages.publish(params, push=False) == []
    assert dataset_state(params) == before
    # Running validation again still fails (the batch waits for a decision) without re-alerting.
    with pytest.raises(stages.ValidationFailedError, match=expectation):
        stages.validate(params, [MONTH], now=NOW)
    assert len(read_log(params.resolve(params.alerts.log))) == alerts_before + 1


def test_future_timestamps_are_rejected(params: Params) -> None:
    # The batch is 2007-03; the validation clock says it is 2007-03-20.
    with pytest.raises(stages.ValidationFailedError) as failed:
        stages.validate(params, [MONTH], now=datetime(2007, 3, 20, tzinfo=UTC))
    assert "column `date_time`: expect_column_max_to_be_between" in str(failed.value)


def test_battery_is_large_and_distinct() -> None:
    assert len(BATTERY) + 1 >= 16  # plus future timestamps above
    assert len({name.lower() for name in BATTERY}) == len(BATTERY)


def test_clean_real_month_passes_and_is_published(fresh: Params) -> None:
    reports = stages.validate(fresh, [MONTH], now=NOW)
    assert [r.success for r in reports] == [True]
    assert reports[0].evaluated == 38 + 2  # the suite, and not-null on each derived column
    docs = fresh.resolve(str(reports[0].data_docs))
    assert docs.is_file() and "raw_batch" in docs.read_text()
    versions = stages.publish(fresh, push=False)
    assert [v.added.month for v in versions] == [str(MONTH)]
    assert versions[0].validation is not None and versions[0].validation["success"] is True
    assert versions[0].validation["data_docs"] == reports[0].data_docs


def test_fixed_batch_is_revalidated_and_published(fresh: Params, clean_batch: pd.DataFrame) -> None:
    raw = land(fresh, parquet_bytes(assign("Voltage", slice(0, 5), 400.0)(clean_batch)))
    with pytest.raises(stages.ValidationFailedError):
        stages.validate(fresh, [MONTH], now=NOW)
    quarantine = Quarantine(fresh.quarantine_dir)
    # A person fixes the quarantined copy, then asks for re-validation.
    fixed = quarantine.batch(str(MONTH))
    fixed.write_bytes(parquet_bytes(clean_batch))
    report = stages.revalidate(fresh, MONTH, now=NOW)
    assert report.success
    record = quarantine.load(str(MONTH))
    assert record is not None and record.status == "released"
    version = stages.publish(fresh, push=False)[0]
    assert version.version == 2
    assert version.added.raw_sha256 == sha256_file(raw)
    assert version.added.sha256 == sha256_file(fixed) != version.added.raw_sha256
    assert stages.validate(fresh, [MONTH], now=NOW) == []  # published: nothing left to check
    # The landed raw batch is still the one the catalog traces the fix back to: no conflict.
    assert stages.publish(fresh, push=False) == []


def test_failed_revalidation_keeps_the_batch_quarantined(
    fresh: Params, clean_batch: pd.DataFrame
) -> None:
    land(fresh, parquet_bytes(clean_batch.assign(Voltage=240.0)))
    with pytest.raises(stages.ValidationFailedError):
        stages.validate(fresh, [MONTH], now=NOW)
    with pytest.raises(stages.ValidationFailedError, match="expect_column_unique_value_count"):
        stages.revalidate(fresh, MONTH, now=NOW)
    record = Quarantine(fresh.quarantine_dir).load(str(MONTH))
    assert record is not None and record.status == "quarantined"
    assert len(record.history) == 2


def test_rejected_batch_stops_blocking_and_never_enters(
    fresh: Params, clean_batch: pd.DataFrame
) -> None:
    land(fresh, parquet_bytes(clean_batch.iloc[:100]))
    with pytest.raises(stages.ValidationFailedError):
        stages.validate(fresh, [MONTH], now=NOW)
    before = dataset_state(fresh)
    stages.reject(fresh, MONTH, "meter replaced; month lost")
    assert stages.validate(fresh, [MONTH], now=NOW) == []
    assert stages.publish(fresh, push=False) == []
    assert dataset_state(fresh) == before
    record = Quarantine(fresh.quarantine_dir).load(str(MONTH))
    assert record is not None and record.status == "rejected"
    assert read_log(fresh.resolve(fresh.alerts.log))[-1]["status"] == "resolved"


def test_suite_file_is_reviewable_json_with_notes() -> None:
    import json

    path = Path(__file__).resolve().parents[2] / "expectations" / "raw_batch.json"
    suite = json.loads(path.read_text())
    assert suite["name"] == "raw_batch"
    assert all(e["meta"].get("notes") for e in suite["expectations"])


def test_a_month_in_quarantine_holds_back_the_later_ones(
    tmp_path: Path, real_source_csv: Path
) -> None:
    """One rule for Airflow (a month at a time) and `dvc repro` (all at once): no version skips
    a month that waits for a decision; a rejected month is the only gap, and training refuses
    a version with one, in words."""
    from powerops.model import training

    root = make_workspace(tmp_path / "ws", real_source_csv, through="2007-03")
    params = load_params(root / "params.yaml")
    stages.ingest(params)
    raw = batch_path(params.raw_dir, "2007-01")
    raw.chmod(0o644)
    raw.write_bytes(parquet_bytes(assign("Voltage", slice(0, 5), 400.0)(pd.read_parquet(raw))))
    with pytest.raises(stages.ValidationFailedError):
        stages.validate(params, now=NOW)  # 2007-01 goes to quarantine; the others pass

    # Airflow, a month at a time: 2007-02 before 2006-12 is published, then before 2007-01 is
    # decided, is refused naming the month to publish or decide; the dataset does not move.
    with pytest.raises(stages.HeldBackError, match=r"2006-12 is not published yet"):
        stages.publish(params, [Month(2007, 2)], push=False)
    assert [v.added.month for v in stages.publish(params, [Month(2006, 12)], push=False)] == [
        "2006-12"
    ]
    with pytest.raises(stages.HeldBackError, match=r"batch 2007-02 is held back: 2007-01 waits"):
        stages.publish(params, [Month(2007, 2)], push=False)
    # `dvc repro`, every month at once: nothing past the quarantined month either.
    assert stages.publish(params, push=False) == []
    assert len(Catalog(params.catalog_dir).load(params.dataset.name).versions) == 1

    stages.reject(params, Month(2007, 1), "meter replaced; month lost")
    versions = stages.publish(params, push=False)
    assert [(v.version, v.added.month) for v in versions] == [(2, "2007-02"), (3, "2007-03")]
    record = Catalog(params.catalog_dir).load(params.dataset.name)
    with pytest.raises(training.TableCheckError, match=r"household_power@3 lacks 2007-01 \("):
        training.checked_table(
            params, training.read_version(params, record.version(3)), "household_power@3"
        )
    first = training.checked_table(params, training.read_version(params, record.version(1)), "v1")
    assert len(first) > 0

"""The modelling table and its `training_table` suite, on real readings."""

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from powerops.core.config import Params, load_params
from powerops.data.source import read_source
from powerops.data.table import TABLE_COLUMNS, modelling_table
from powerops.data.validation import validate_table
from tests.conftest import REPO

NOW = datetime(2026, 11, 28, tzinfo=UTC)


@pytest.fixture(scope="module")
def params() -> Params:
    params = load_params(REPO / "params.yaml")
    return params.model_copy(
        update={"validation": params.validation.model_copy(update={"data_docs": None})}
    )


@pytest.fixture(scope="module")
def readings(params: Params, real_source_csv: Path) -> pd.DataFrame:
    return read_source(real_source_csv, params.source, progress=False)


def build(readings: pd.DataFrame, frequency: str = "1h") -> pd.DataFrame:
    return modelling_table(readings, "date_time", "Global_active_power", frequency, "1min")


def check(table: pd.DataFrame, readings: pd.DataFrame, params: Params) -> list[str]:
    first, last = readings["date_time"].iloc[0], readings["date_time"].iloc[-1]
    report = validate_table(table, params, first, last, "test", now=NOW)
    return [f"{f.expectation} {f.column}" for f in report.failures]


def test_hourly_table_of_real_readings_passes(readings: pd.DataFrame, params: Params) -> None:
    table = build(readings)
    assert tuple(table.columns) == TABLE_COLUMNS
    assert table["timestamp"].iloc[0] == pd.Timestamp("2006-12-16 17:00")
    # The first hour holds readings from 17:24 only: 36 of 60 minutes.
    assert table["coverage"].iloc[0] == pytest.approx(36 / 60)
    assert table["load_kw"].iloc[1] == pytest.approx(
        readings.set_index("date_time")
        .loc["2006-12-16 18:00":"2006-12-16 18:59", "Global_active_power"]
        .mean()
    )
    assert check(table, readings, params) == []


def test_daily_table_is_a_configuration_change(readings: pd.DataFrame, params: Params) -> None:
    table = build(readings, "1D")
    daily = params.model_copy(update={"table": params.table.model_copy(update={"frequency": "1D"})})
    assert len(table) == (pd.Timestamp("2007-03-31") - pd.Timestamp("2006-12-16")).days + 1
    assert check(table, readings, daily) == []


def test_table_faults_are_named(readings: pd.DataFrame, params: Params) -> None:
    table = build(readings)
    gap = table.drop(index=range(100, 110))
    assert "expect_table_row_count_to_equal None" in check(gap, readings, params)
    missing = table.assign(load_kw=table["load_kw"].where(table.index != 50, np.nan))
    assert "expect_column_values_to_not_be_null load_kw" in check(missing, readings, params)
    late = table.iloc[24:]
    assert "expect_column_min_to_be_between timestamp" in check(late, readings, params)
    watts = table.assign(load_kw=table["load_kw"] * 1000)
    assert "expect_column_values_to_be_between load_kw" in check(watts, readings, params)


def test_exogenous_columns_are_averaged_per_period_under_their_own_names(
    readings: pd.DataFrame,
) -> None:
    table = modelling_table(
        readings, "date_time", "Global_active_power", "1h", "1min", ("Voltage", "Sub_metering_3")
    )
    assert tuple(table.columns) == (*TABLE_COLUMNS, "Voltage", "Sub_metering_3")
    hour = readings.set_index("date_time").loc["2006-12-16 18:00":"2006-12-16 18:59"]
    assert table["Voltage"].iloc[1] == pytest.approx(hour["Voltage"].mean())
    assert table["Sub_metering_3"].iloc[1] == pytest.approx(hour["Sub_metering_3"].mean())

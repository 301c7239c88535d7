"""Reading batches and derived columns: the parts of the validation gate outside GE."""

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from powerops.core.config import DERIVED_FUNCTIONS, expression_problem, load_params
from powerops.core.months import Month
from powerops.data.validation import (
    BatchReadError,
    read_batch,
    validate_frame,
    with_derived_columns,
    with_derived_not_null,
)
from tests.conftest import make_workspace, set_params

Frame = Callable[[str, str], pd.DataFrame]


def test_batch_with_a_repeated_column_is_unreadable_naming_it(
    minute_frame: Frame, tmp_path: Path
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = minute_frame("2008-01-01", "2008-01-01 00:10")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table.add_column(3, "Voltage", pa.array([0.0] * len(frame))), tmp_path / "b.pq")
    with pytest.raises(BatchReadError) as refused:
        read_batch(tmp_path / "b.pq")
    assert str(refused.value) == (
        "b.pq: column `Voltage` appears 2 times in the schema; "
        "a repeated column is ambiguous: fix the batch"
    )


DERIVED = {
    "unmetered_wh": "Global_active_power * 1000 / 60 - Sub_metering_1 - Sub_metering_2 "
    "- Sub_metering_3",
    "intensity_error_a": "abs(Global_intensity - sqrt(Global_active_power ** 2 "
    "+ Global_reactive_power ** 2) * 1000 / Voltage)",
}


def test_derived_value_is_nan_where_its_input_is_absent_bad_or_the_result_infinite(
    minute_frame: Frame,
) -> None:
    frame = minute_frame("2008-01-01", "2008-01-01 00:10").astype({"Sub_metering_1": object})
    frame.loc[2, "Voltage"] = 0.0  # a division by zero: inf
    frame.loc[4, "Sub_metering_1"] = "n/a"
    derived = with_derived_columns(frame, DERIVED)
    intensity = derived["derived__intensity_error_a"]
    assert intensity.isna().tolist() == [i == 2 for i in range(10)]
    assert derived["derived__unmetered_wh"].isna().tolist() == [i == 4 for i in range(10)]
    absent = with_derived_columns(frame.drop(columns=["Voltage"]), DERIVED)
    assert absent["derived__intensity_error_a"].isna().all()
    assert absent["derived__unmetered_wh"].equals(derived["derived__unmetered_wh"])


def test_derived_expression_pandas_cannot_evaluate_raises(minute_frame: Frame) -> None:
    frame = minute_frame("2008-01-01", "2008-01-01 00:10")
    with pytest.raises(TypeError, match="arctan2"):
        with_derived_columns(frame, {"bad": "arctan2(Voltage)"})


@pytest.mark.parametrize("function", list(DERIVED_FUNCTIONS))
def test_every_allowed_function_is_one_pandas_evaluates(function: str, minute_frame: Frame) -> None:
    frame = minute_frame("2008-01-01", "2008-01-01 00:10")
    argument = frame["Voltage"] / 1000  # 0.238 to 0.241: inside every function's domain but one
    if function == "arctan2":
        expected = np.arctan2(argument, 2.0)
        expression = "arctan2(Voltage / 1000, 2.0)"
    else:
        expected = getattr(np, function)(argument + (1 if function == "arccosh" else 0))
        expression = f"{function}(Voltage / 1000{' + 1' if function == 'arccosh' else ''})"
    assert expression_problem(expression, list(frame.columns)) is None
    derived = with_derived_columns(frame, {"f": expression})["derived__f"]
    pd.testing.assert_series_equal(derived, expected, check_names=False)


def test_run_adds_one_not_null_check_per_derived_column_deterministically() -> None:
    suite = {
        "name": "s",
        "expectations": [
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "derived__a"}}
        ],
    }
    extended = with_derived_not_null(suite, ["a", "b", "c"])
    assert [e["kwargs"]["column"] for e in extended["expectations"]] == [
        "derived__a",
        "derived__b",
        "derived__c",
    ]
    assert {e["type"] for e in extended["expectations"]} == {"expect_column_values_to_not_be_null"}
    assert json.dumps(extended) == json.dumps(with_derived_not_null(suite, ["a", "b", "c"]))
    assert len(suite["expectations"]) == 1  # the loaded suite is not changed


def test_nan_derived_value_fails_validation_naming_the_column(
    minute_frame: Frame, tmp_path: Path
) -> None:
    root = make_workspace(tmp_path / "ws", tmp_path / "source.csv", through="2008-02")
    set_params(root, validation={"data_docs": None})
    params = load_params(root / "params.yaml")
    month = minute_frame("2008-02-01", "2008-03-01")
    now = datetime(2026, 11, 28, tzinfo=UTC)
    passed = validate_frame(month, params, "raw_batch", Month(2008, 2), "-", now=now)
    assert passed.success and passed.evaluated == 38 + 2
    # An intensity the meter could not parse: the physics check on it must not pass silently.
    month["Global_intensity"] = month["Global_intensity"].astype(object)
    month.loc[100, "Global_intensity"] = "--"
    failed = validate_frame(month, params, "raw_batch", Month(2008, 2), "-", now=now)
    message = failed.message()
    assert "column `derived__intensity_error_a`: expect_column_values_to_not_be_null" in message
    assert "derived__unmetered_wh" not in message


def test_data_docs_keep_the_pages_of_earlier_processes(
    minute_frame: Frame, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from powerops.data import validation

    root = make_workspace(tmp_path / "ws", tmp_path / "source.csv", through="2008-03")
    params = load_params(root / "params.yaml")
    now = datetime(2026, 11, 28, tzinfo=UTC)
    pages = []
    for month, (start, end) in (
        (Month(2008, 2), ("2008-02-01", "2008-03-01")),
        (Month(2008, 3), ("2008-03-01", "2008-04-01")),
    ):
        validation._runner.cache_clear()  # a fresh context, as in the next task's process
        report = validate_frame(minute_frame(start, end), params, "raw_batch", month, "-", now=now)
        assert report.data_docs is not None
        pages.append(root / report.data_docs)
    # February's page outlives March's validation: the catalog's link to it still resolves.
    assert all(page.is_file() for page in pages), pages
    # ... quietly: the index's complaint about the other process's page is dropped.
    assert "Validation result not found" not in caplog.text

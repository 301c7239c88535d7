"""`powerops suite draft` on a real meter it was never written for (examples/victoria): the
drafted suites pass the file they came from, refuse what lies outside it, never overwrite a
reviewed suite, and a draft killed between its two files is finished by running it again."""

from __future__ import annotations

import json
import signal
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from powerops.core.config import Params, load_params
from powerops.core.months import Month
from powerops.data import suitedraft
from powerops.data.source import read_source, slice_month
from powerops.data.table import TARGET, table_for
from powerops.data.validation import validate_frame, validate_table
from tests.conftest import make_example_workspace, run, set_params

NOW = datetime(2026, 12, 1, tzinfo=UTC)
JANUARY = Month(2014, 1)


@pytest.fixture(scope="module")
def drafted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Victoria example's workspace with both suites drafted into `drafted/` by the CLI."""
    workspace = make_example_workspace(tmp_path_factory.mktemp("draft") / "ws", "victoria")
    set_params(workspace, validation={"expectations_dir": "drafted"})
    out = run(["powerops", "suite", "draft"], workspace).stdout
    assert "drafted " in out and "victoria_raw.json (20 expectations)" in out
    assert "most common step 30min (source.frequency is 30min)" in out
    assert "lowest completeness of a full month: 100.0%" in out
    assert '- {name: Demand, unit: "", description: "observed 2.858 .. 9.345"}' in out
    return workspace


def january(params: Params) -> pd.DataFrame:
    frame = read_source(params.source_path(), params.source, progress=False)
    return slice_month(frame, JANUARY, params.source.timestamp_column)


def failed_columns(frame: pd.DataFrame, params: Params) -> set[str | None]:
    report = validate_frame(frame, params, params.validation.raw_suite, JANUARY, "", now=NOW)
    return {failure.column for failure in report.failures}


def test_the_drafted_suites_pass_the_file_and_refuse_what_lies_outside_it(drafted: Path) -> None:
    params = load_params(drafted / "params.yaml")
    run(["powerops", "ingest", "--month", "2014-01", "--month", "2014-02"], drafted)
    assert "all passed `victoria_raw`" in run(["powerops", "validate"], drafted).stdout

    frame = january(params)
    assert failed_columns(frame, params) == set()
    bad = frame.copy()
    bad.loc[10, "Demand"] = 40.0  # 40 GW: four times the state's record
    bad.loc[20, "WorkDay"] = 2.0  # a flag is 0 or 1
    bad.loc[30, "Temperature"] = None
    bad.loc[40, "time"] = bad.loc[39, "time"]  # a repeated half-hour
    assert failed_columns(bad, params) == {"Demand", "WorkDay", "Temperature", "time"}

    table = table_for(params, frame)
    first, last = frame["time"].min(), frame["time"].max()
    assert validate_table(table, params, first, last, "jan", now=NOW).success
    table.loc[5, TARGET] = 0.5  # half a gigawatt: below anything the file shows
    failed = validate_table(table, params, first, last, "jan", now=NOW).failures
    assert [f.column for f in failed] == [TARGET]


def test_ranges_widen_by_the_margin_and_stay_non_negative() -> None:
    assert suitedraft._bounds(pd.Series([2.0, 12.0]), 0.2) == (0.0, 14.0)
    assert suitedraft._bounds(pd.Series([-5.0, 5.0]), 0.1) == (-6.0, 6.0)
    assert suitedraft._bounds(pd.Series([230.0, 230.0]), 0.2) == (184.0, 276.0)
    # Four significant digits, rounded outwards: never narrower than the file.
    assert suitedraft._bounds(pd.Series([1.23456, 9.345004]), 0.0) == (1.234, 9.346)
    assert suitedraft._bounds(pd.Series([-0.012345, 1234567.0]), 0.0) == (-0.01235, 1235000.0)


def test_a_reviewed_suite_is_never_overwritten_unless_forced(drafted: Path) -> None:
    raw, _ = suitedraft.suite_paths(load_params(drafted / "params.yaml"))
    drafted_text = raw.read_text()
    assert run(["powerops", "suite", "draft"], drafted).returncode == 0  # the same draft again
    reviewed = json.loads(drafted_text)
    reviewed["meta"]["notes"] = "reviewed by the grid team"
    raw.write_text(json.dumps(reviewed))
    refused = run(["powerops", "suite", "draft"], drafted, check=False)
    assert refused.returncode == 1
    assert f"powerops: error: {raw}: already exists; review it, or pass --force" in refused.stderr
    assert "reviewed by the grid team" in raw.read_text()
    run(["powerops", "suite", "draft", "--force"], drafted)
    assert raw.read_text() == drafted_text


def test_a_draft_killed_between_its_files_is_finished_by_a_rerun(drafted: Path) -> None:
    raw, table = suitedraft.suite_paths(load_params(drafted / "params.yaml"))
    expected = (raw.read_text(), table.read_text())
    raw.unlink()
    table.unlink()
    crash = {"POWEROPS_CRASH_AT": "suite_draft.write@2"}  # after the raw suite, in a subprocess
    killed = run(["powerops", "suite", "draft"], drafted, check=False, env=crash)
    assert killed.returncode == -signal.SIGKILL
    assert raw.read_text() == expected[0] and not table.exists()
    run(["powerops", "suite", "draft"], drafted)
    assert (raw.read_text(), table.read_text()) == expected

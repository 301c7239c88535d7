"""`powerops score` for a model with table.known columns: their values for the periods forecast
come from `--known FILE`, else from the source file when it holds them (a replay); a missing
value is an error naming `--known`, never a forecast made without it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from powerops.core.config import Params, load_params
from powerops.serve.scoring import ScoringError, known_ahead
from tests.conftest import make_example_workspace


@pytest.fixture(scope="module")
def params(tmp_path_factory: pytest.TempPathFactory) -> Params:
    workspace = make_example_workspace(tmp_path_factory.mktemp("known") / "ws", "victoria")
    return load_params(workspace / "params.yaml")


def day(when: str) -> pd.DatetimeIndex:
    return pd.date_range(when, periods=24, freq="1h")


def test_a_replay_reads_the_known_columns_from_the_source(params: Params) -> None:
    # Friday 2 May 2014, a working day, then Saturday 3 May.
    assert known_ahead(params, day("2014-05-02"), None)["WorkDay"].tolist() == [1.0] * 24
    assert known_ahead(params, day("2014-05-03"), None)["WorkDay"].tolist() == [0.0] * 24


def test_past_the_source_the_known_values_must_be_given(params: Params, tmp_path: Path) -> None:
    with pytest.raises(ScoringError) as error:
        known_ahead(params, day("2015-01-05"), None)
    assert "table.known WorkDay: no value for 24 of the 24 periods forecast" in str(error.value)
    assert "powerops score --known FILE" in str(error.value)

    given = tmp_path / "calendar.csv"
    pd.DataFrame({"timestamp": day("2015-01-05"), "WorkDay": 1.0}).to_csv(given, index=False)
    np.testing.assert_array_equal(known_ahead(params, day("2015-01-05"), given)["WorkDay"], 1.0)
    short = tmp_path / "short.csv"
    pd.DataFrame({"timestamp": day("2015-01-05")[:20], "WorkDay": 1.0}).to_csv(short, index=False)
    with pytest.raises(ScoringError, match="no value for 4 of the 24 periods"):
        known_ahead(params, day("2015-01-05"), short)
    wrong = tmp_path / "wrong.csv"
    pd.DataFrame({"timestamp": day("2015-01-05"), "workday": 1.0}).to_csv(wrong, index=False)
    with pytest.raises(ScoringError, match="needs the columns timestamp, WorkDay"):
        known_ahead(params, day("2015-01-05"), wrong)

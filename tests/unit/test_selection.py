"""Model selection (powerops.model.selection): candidates scored by rolling-origin
cross-validation inside the training rows, never the held-out rows nor the backtest period."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from powerops.core.config import CandidateConfig, Params, load_params
from powerops.model import selection
from tests.conftest import REPO
from tests.unit.test_backtest import series

HGB = "sklearn.ensemble.HistGradientBoostingRegressor"
CUT = pd.Timestamp("2009-03-16")  # backtest.start: selection never looks at or after it


@pytest.fixture
def params(tmp_path: Path) -> Params:
    loaded = load_params(REPO / "params.yaml")
    candidate = CandidateConfig(estimator=HGB, grid={"max_iter": [2, 40]})
    train = loaded.train.model_copy(
        update={"candidates": (candidate,), "cv_folds": 2, "cv_fold_days": 14}
    )
    walk = loaded.backtest.model_copy(update={"start": CUT.date()})
    return loaded.model_copy(update={"root": tmp_path, "train": train, "backtest": walk})


def held_out(table: pd.DataFrame) -> pd.Series:
    """A test week and two weeks after it (its embargo: more than its features' reach)."""
    start = pd.Timestamp("2009-02-02")
    return table["timestamp"].between(start, start + pd.Timedelta(days=21), inclusive="left")


def test_the_best_candidate_by_cross_validation_is_chosen(params: Params) -> None:
    table = series(weeks=12)
    rows = ~held_out(table)
    assert selection.folds(params, table, rows) == [
        (pd.Timestamp("2009-02-15"), pd.Timestamp("2009-02-28 23:00")),
        (pd.Timestamp("2009-03-01"), pd.Timestamp("2009-03-14 23:00")),
    ]
    chosen, trials = selection.select(params, table, rows)
    assert [t["estimator_params"]["max_iter"] for t in trials] == [2, 40]
    assert len(trials[0]["folds"]) == 2 and trials[1]["score"] < trials[0]["score"]
    assert chosen.train.estimator == HGB and chosen.train.estimator_params == {"max_iter": 40}
    assert [t["chosen"] for t in trials] == [False, True]

    # Nothing held out, nothing at or after backtest.start, changes a score.
    other = table.copy()
    other.loc[other["timestamp"] >= CUT, "load_kw"] *= 7
    test_week = other["timestamp"].between("2009-02-02", "2009-02-09", inclusive="left")
    other.loc[test_week, "load_kw"] += 50
    assert selection.select(params, other, rows)[1] == trials
    # ...while the training rows do.
    other.loc[other["timestamp"].between("2009-03-02", "2009-03-09"), "load_kw"] += 5
    assert selection.select(params, other, rows)[1] != trials


def test_without_candidates_the_configured_estimator_is_trained(params: Params) -> None:
    plain = params.model_copy(update={"train": params.train.model_copy(update={"candidates": ()})})
    chosen, trials = selection.select(plain, series(), pd.Series(True, index=range(1512)))
    assert chosen is plain and trials == []

"""Model selection without peeking: `train.candidates` scored by rolling-origin cross-validation
inside the training rows only.

Each candidate (an estimator and one combination of its `grid`) is fitted on the training rows
before each of `train.cv_folds` folds of `train.cv_fold_days` days and forecasts the fold's
origins, as the walk-forward backtest does with no refit; only the fold's training rows are
scored (`gate.metric`), so the pinned test set and its embargo never are. The folds end
where the training data ends, or at `backtest.start` if that is set: the backtest period is
never looked at. The candidate with the lowest mean score is the one trained; every candidate's
scores go to the job record and, as child runs, to MLflow.
"""

from __future__ import annotations

import itertools
import logging
from typing import TYPE_CHECKING, Any

from powerops.core.config import Params
from powerops.model import forecasting
from powerops.model.walkforward import walk_forward

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


def options(params: Params) -> list[dict[str, Any]]:
    """Every candidate: an estimator and its parameters, one per combination of its grid."""
    found = []
    for candidate in params.train.candidates:
        names = list(candidate.grid)
        for values in itertools.product(*(candidate.grid[name] for name in names)):
            chosen = candidate.estimator_params | dict(zip(names, values, strict=True))
            option = {"estimator": candidate.estimator, "estimator_params": chosen}
            preprocess = candidate.preprocess or params.train.preprocess
            found.append(option | {"preprocess": preprocess})
    return found


def variant(params: Params, option: dict[str, Any]) -> Params:
    """`params` training `option` instead of `train.estimator` and its parameters."""
    train = params.train.model_copy(update=option)
    return params.model_copy(update={"train": train})


def folds(
    params: Params, table: pd.DataFrame, rows: pd.Series
) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """First and last origin of each fold, oldest first: consecutive blocks of
    `train.cv_fold_days` days ending with the training rows (or at `backtest.start`)."""
    import pandas as pd

    from powerops.model.features import forecast_origin

    stamps = table.loc[rows, "timestamp"]
    if params.backtest.start is not None:
        stamps = stamps[stamps < pd.Timestamp(params.backtest.start)]
    if stamps.empty:
        raise forecasting.ForecastError(
            "no training row before backtest.start: train.candidates have nothing to be scored on"
        )
    length = pd.Timedelta(days=params.train.cv_fold_days)
    frequency, horizon = params.table.frequency, params.forecast.horizon
    # The last row's block may be cut short: the folds end before its origin.
    last = pd.Series([stamps.max()])
    end = forecast_origin(last, frequency, horizon, params.forecast.week_start).iloc[0]
    step = pd.Timedelta(frequency)
    return [
        (end - number * length, end - (number - 1) * length - step)
        for number in range(params.train.cv_folds, 0, -1)
    ]


def select(
    params: Params, table: pd.DataFrame, rows: pd.Series
) -> tuple[Params, list[dict[str, Any]]]:
    """The params of the best candidate (`params` itself when there are none) and every
    candidate's cross-validation scores."""
    import numpy as np

    candidates = options(params)
    if not candidates:
        return params, []
    metric, windows = params.gate.metric, folds(params, table, rows)
    trials = []
    for number, option in enumerate(candidates, 1):
        never = params.backtest.model_copy(update={"refit_every": 0})  # one fit per fold
        chosen = variant(params, option).model_copy(update={"backtest": never})
        scores = [
            walk_forward(table, rows, chosen, first, last, scored=rows).overall["model"]
            for first, last in windows
        ]
        mean = float(np.mean([s[metric] for s in scores]))
        trials.append(option | {"score": mean, "folds": [s[metric] for s in scores]})
        log.info("candidate %d of %d: %s %s", number, len(candidates), metric, f"{mean:.4f}")
    best = min(trials, key=lambda trial: trial["score"])
    for trial in trials:
        trial["chosen"] = trial is best
    winner = {k: best[k] for k in ("estimator", "estimator_params", "preprocess")}
    return variant(params, winner), trials

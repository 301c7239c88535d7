"""The walk-forward engine: forecast every origin of a period from models fitted only on the
rows before it, and score the model and every baseline on the same rows. Pure: frames in,
scores out. `powerops.model.backtest` runs it on a dataset version and reports it;
`powerops.model.selection` runs it on folds of the training rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from powerops.core.config import Params
from powerops.data.table import TARGET
from powerops.model import forecasting

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backtest:
    """What a walk-forward evaluation found: scores overall and per horizon step, for the
    model and every baseline, on the rows all of them forecast."""

    start: str  # first origin
    end: str  # last origin
    refit_every: int
    refits: int
    origins: int
    rows: int
    overall: dict[str, dict[str, float]]  # "model" and each baseline -> rmse, mae, wape
    steps: pd.DataFrame  # step, rows, then <name>_<metric> for the model and each baseline
    forecasts: pd.DataFrame  # the scored rows: timestamp, actual, model and each baseline

    def ratios(self, baseline: str = "seasonal_naive") -> dict[str, float]:
        """The model's scores over a baseline's: below 1 beats it."""
        return {k: v / self.overall[baseline][k] for k, v in self.overall["model"].items()}


def walk_forward(
    table: pd.DataFrame,
    train_rows: pd.Series,
    params: Params,
    start: pd.Timestamp,
    end: pd.Timestamp,
    scored: pd.Series | None = None,
) -> Backtest:
    """Forecast every origin in [start, end] from models fitted on `train_rows` before it;
    score the rows in `scored` only, if given (model selection keeps the test set out)."""
    import numpy as np
    import pandas as pd

    from powerops.model.features import forecast_origin

    horizon, frequency = params.forecast.horizon, params.table.frequency
    origin = forecast_origin(table["timestamp"], frequency, horizon, params.forecast.week_start)
    chosen = sorted(origin[(origin >= start) & (origin <= end)].unique())
    if not chosen:
        raise forecasting.ForecastError(
            f"no forecast origin between {start:%Y-%m-%d} and {end:%Y-%m-%d} in the data: "
            "check backtest.start and backtest.end"
        )
    every = params.backtest.refit_every
    refits = chosen[::every] if every else chosen[:1]
    template = forecasting.make_pipeline(params)
    features = forecasting.features_of(template).fit(table).transform(table)  # stateless: once
    predictions = pd.Series(np.nan, index=table.index)
    for number, first in enumerate(refits):
        until = refits[number + 1] if number + 1 < len(refits) else None
        segment = (origin >= first) & ((origin < until) if until is not None else (origin <= end))
        estimator = _fitted(template, features, table, train_rows & (table["timestamp"] < first))
        predictions[segment] = estimator.predict(features[segment])
        log.info("backtest: fit %d of %d, origin %s", number + 1, len(refits), f"{first:%Y-%m-%d}")
    length = pd.Timedelta(frequency).total_seconds()
    steps = ((table["timestamp"] - origin).dt.total_seconds() // length).astype(int) + 1
    if scored is not None:
        predictions = predictions.where(scored)
    return _scored(params, table, predictions, steps, (chosen, refits, every))


def last_months_start(table: pd.DataFrame, months: int) -> pd.Timestamp:
    """The first day of the last `months` calendar months of the table."""
    import pandas as pd

    last = table["timestamp"].max()
    first: pd.Timestamp = pd.Timestamp(last.year, last.month, 1) - pd.DateOffset(months=months - 1)
    return first


def last_months(table: pd.DataFrame, train_rows: pd.Series, params: Params) -> Backtest:
    """Training's backtest: one fit on `train_rows` before the last `train.backtest_months`
    months of the table, then every origin of those months forecast by it."""
    start = last_months_start(table, params.train.backtest_months)
    once = params.model_copy(
        update={"backtest": params.backtest.model_copy(update={"refit_every": 0})}
    )
    return walk_forward(table, train_rows, once, start, table["timestamp"].max())


def _fitted(template: Any, features: pd.DataFrame, table: pd.DataFrame, rows: pd.Series) -> Any:
    """A fresh copy of everything after the features, fitted on `rows` with a target."""
    from sklearn.base import clone

    use = rows & table[TARGET].notna()
    if int(use.sum()) < forecasting.MIN_TRAINING_ROWS:
        raise forecasting.ForecastError(
            f"only {int(use.sum())} training rows before the backtest's first origin: "
            "start it later (backtest.start, backtest.months)"
        )
    estimator = clone(forecasting.predictor_of(template))  # preprocessing, then the model
    return estimator.fit(features[use], table.loc[use, TARGET])


def _scored(
    params: Params,
    table: pd.DataFrame,
    predictions: pd.Series,
    steps: pd.Series,
    plan: tuple[list[Any], list[Any], int],
) -> Backtest:
    """The scores of the model and the baselines on the rows all of them forecast."""
    import pandas as pd

    chosen, refits, every = plan
    forecasts = forecasting.baselines(table, params)
    forecasts.insert(0, "model", predictions)
    wanted = ["model", *params.gate.baselines]
    rows = forecasts[wanted].notna().all(axis=1) & table[TARGET].notna()
    if not rows.any():
        raise forecasting.ForecastError(
            f"no backtest row has the model and every baseline of gate.baselines {wanted[1:]}"
        )
    # Other baselines are scored too where they cover every one of those rows (year_ago
    # needs a year of history before the period).
    covering = [str(name) for name in forecasts if forecasts[name][rows].notna().all()]
    forecasts = forecasts[covering]
    actual = table.loc[rows, TARGET]
    names = [str(name) for name in forecasts.columns]
    overall = {name: forecasting.metrics(actual, forecasts[name][rows]) for name in names}
    per_step = []
    for step, group in actual.groupby(steps[rows]):
        scores: dict[str, Any] = {"step": int(step), "rows": len(group)}
        for name in names:
            found = forecasting.metrics(group, forecasts[name][group.index])
            scores |= {f"{name}_{metric}": value for metric, value in found.items()}
        per_step.append(scores)
    return Backtest(
        start=f"{chosen[0]:%Y-%m-%d %H:%M}",
        end=f"{chosen[-1]:%Y-%m-%d %H:%M}",
        refit_every=every,
        refits=len(refits),
        origins=len(chosen),
        rows=int(rows.sum()),
        overall=overall,
        steps=pd.DataFrame(per_step),
        forecasts=pd.concat(
            [table.loc[rows, ["timestamp"]], actual.rename("actual"), forecasts[rows]], axis=1
        ),
    )

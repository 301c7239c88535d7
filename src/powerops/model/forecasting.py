"""The forecaster: a scikit-learn Pipeline of the shared transformers plus an estimator, the
baselines it must beat, error metrics and the rolling-origin backtest.

Everything here takes and returns DataFrames and plain values; nothing reads or writes files.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from powerops.core.config import Params
from powerops.core.errors import PowerOpsError
from powerops.data.table import TARGET

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from sklearn.pipeline import Pipeline

BASELINES = ("seasonal_naive", "persistence", "year_ago")
# 52 weeks: the same weekday a year earlier.
YEAR_AGO_DAYS = 364
# The daily loss each gate metric is the mean (or a ratio of sums) of.
LOSS_OF_METRIC = {"wape": "absolute", "mae": "absolute", "rmse": "squared"}
FEATURES_STEP = "features"
MIN_TRAINING_ROWS = 100


class ForecastError(PowerOpsError, ValueError):
    """The estimator setting is wrong, or there is too little data to fit or score."""


def make_pipeline(params: Params) -> Pipeline:
    """The shared feature transformers, the `train.preprocess` steps, then the configured
    estimator: steps `features`, [`impute`, [`scale`]], `model`."""
    from sklearn.pipeline import FeatureUnion, Pipeline

    from powerops.model.features import CalendarFeatures, KnownFeatures, OriginLagFeatures

    estimator = _estimator(params)
    forecast = params.forecast
    holidays: bool | tuple[str, ...] = (
        forecast.holidays  # a list of days is stored with the model as ISO dates
        if isinstance(forecast.holidays, bool)
        else tuple(day.isoformat() for day in forecast.holidays)
    )
    history: dict[str, Any] = {
        "frequency": params.table.frequency,
        "horizon": forecast.horizon,
        "lags": forecast.lags,
        "windows": forecast.windows,
        "week_start": forecast.week_start,
    }
    steps: list[tuple[str, Any]] = [
        ("calendar", CalendarFeatures(holidays=holidays, encoding=forecast.calendar)),
        ("history", OriginLagFeatures(**history)),
    ]
    if params.table.known:
        steps.append(("known", KnownFeatures(known=params.table.known)))
    # A measured column's history, exactly as the target's (without a second step column).
    steps += [
        (f"observed_{name}", OriginLagFeatures(target_column=name, step=False, **history))
        for name in params.table.observed
    ]
    features = FeatureUnion(steps).set_output(transform="pandas")
    return Pipeline([(FEATURES_STEP, features), *_preprocess_steps(params), ("model", estimator)])


def _estimator(params: Params) -> Any:
    """`train.estimator` built with `train.estimator_params`; one that cannot take missing
    values is refused unless `train.preprocess` imputes them (lags and windows have NaN)."""
    from sklearn.utils import get_tags

    train = params.train
    module_name, _, class_name = train.estimator.rpartition(".")
    try:
        estimator_class = getattr(importlib.import_module(module_name), class_name)
        estimator = estimator_class(**train.estimator_params)
        allow_nan = get_tags(estimator).input_tags.allow_nan
    except (ImportError, AttributeError, ValueError, TypeError) as exc:
        raise ForecastError(
            f"train.estimator {train.estimator!r} with train.estimator_params "
            f"{train.estimator_params}: {exc}"
        ) from None
    if train.preprocess == "none" and not allow_nan:
        raise ForecastError(
            f"train.preprocess 'none' with train.estimator {train.estimator!r}, which cannot "
            "take missing values (the first lags and windows, gaps in the history): set "
            "train.preprocess to 'impute' or 'impute_scale'"
        )
    return estimator


def _preprocess_steps(params: Params) -> list[tuple[str, Any]]:
    """The `train.preprocess` steps: a median imputer that keeps a column with no value (as
    0, so training and serving see the same columns), then a standard scaler."""
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import StandardScaler

    steps: list[tuple[str, Any]] = []
    if params.train.preprocess in ("impute", "impute_scale"):
        imputer = SimpleImputer(strategy="median", keep_empty_features=True)
        steps.append(("impute", imputer.set_output(transform="pandas")))
    if params.train.preprocess == "impute_scale":
        steps.append(("scale", StandardScaler().set_output(transform="pandas")))
    return steps


def fit(pipeline: Pipeline, history: pd.DataFrame, rows: pd.Series) -> Pipeline:
    """Fit on the selected rows, with features computed over the whole history frame.

    Features of a row read earlier rows of `history` (lags, windows); the preprocessing steps
    and the estimator only learn from `rows`. The transformers are stateless, so the fitted
    Pipeline predicts from any frame that carries the history its rows need.
    """
    features = features_of(pipeline).fit(history).transform(history)
    target = history[TARGET]
    use = rows & target.notna()
    if int(use.sum()) < MIN_TRAINING_ROWS:
        raise ForecastError(f"only {int(use.sum())} training rows: too little data to fit")
    predictor_of(pipeline).fit(features[use], target[use])
    return pipeline


def features_of(pipeline: Any) -> Any:
    """The pipeline's feature step, the FeatureUnion of the powerops transformers: the raw
    features that drift, skew, outliers and the prediction log read, never the imputed or
    scaled values the estimator gets."""
    name, step = pipeline.steps[0]
    if name != FEATURES_STEP:
        raise ForecastError(f"the pipeline's first step is {name!r}, not {FEATURES_STEP!r}")
    return step


def predictor_of(pipeline: Any) -> Any:
    """What turns features into forecasts: the steps after the features (preprocessing, then
    the estimator) as one Pipeline sharing the fitted steps."""
    features_of(pipeline)
    return pipeline[1:]


def baselines(frame: pd.DataFrame, params: Params) -> pd.DataFrame:
    """Seasonal naive (same period a week earlier), persistence (same period on the last day
    known at the origin) and year-ago (same period 52 weeks, 364 days, earlier: the same
    weekday), from the frame's own history, never reading past the origin."""
    import pandas as pd

    from powerops.model.features import forecast_origin

    series = frame.set_index("timestamp")[TARGET]
    timestamps = frame["timestamp"]
    origin = forecast_origin(
        timestamps, params.table.frequency, params.forecast.horizon, params.forecast.week_start
    )
    day = pd.Timedelta(days=1)
    week_ago = timestamps - 7 * day
    days_back = (timestamps - origin).dt.days + 1
    last_day = timestamps - days_back * day

    def lookup(when: pd.Series) -> pd.Series:
        values = series.reindex(when.to_numpy()).to_numpy()
        return pd.Series(values, index=frame.index).where(when < origin)

    return pd.DataFrame(
        {
            "seasonal_naive": lookup(week_ago),
            "persistence": lookup(last_day),
            "year_ago": lookup(timestamps - YEAR_AGO_DAYS * day),
        },
        index=frame.index,
    )


def metrics(actual: pd.Series | np.ndarray, forecast: pd.Series | np.ndarray) -> dict[str, float]:
    """RMSE, MAE and WAPE (sum of absolute errors over sum of actuals)."""
    import numpy as np

    y = np.asarray(actual, dtype="float64")
    f = np.asarray(forecast, dtype="float64")
    error = f - y
    return {
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mae": float(np.mean(np.abs(error))),
        "wape": float(np.sum(np.abs(error)) / np.sum(np.abs(y))),
    }


@dataclass(frozen=True)
class Evaluation:
    """Scores of the model and the baselines on the same rows of the pinned test set, and the
    model's loss on each day of them (what the gate's paired test compares)."""

    model: dict[str, float]
    baselines: dict[str, dict[str, float]]
    rows: int
    # The scored days (ISO dates) and, per day, the model's sum of absolute errors
    # ("absolute": wape, mae) and of squared errors ("squared": rmse).
    days: list[str] = field(default_factory=list)
    daily_loss: dict[str, list[float]] = field(default_factory=dict)

    def flat(self, prefix: str = "test") -> dict[str, float]:
        out = {f"{prefix}_{name}": value for name, value in self.model.items()}
        for baseline, scores in self.baselines.items():
            out |= {f"{prefix}_{baseline}_{name}": value for name, value in scores.items()}
        out[f"{prefix}_rows"] = float(self.rows)
        return out

    def losses(self, metric: str) -> list[float]:
        """The model's daily losses behind `metric` (empty if they were not recorded)."""
        return self.daily_loss.get(LOSS_OF_METRIC[metric], [])


def scored_rows(test_set: pd.DataFrame, reference: pd.DataFrame, params: Params) -> pd.Series:
    """The test set's target rows that every baseline of `gate.baselines` can forecast."""
    wanted = list(params.gate.baselines)
    target = (test_set["role"] == "target") & test_set[TARGET].notna()
    rows: pd.Series = target & reference[wanted].notna().all(axis=1)
    if not rows.any():
        raise ForecastError(
            f"no test row has every baseline of gate.baselines {wanted}: the test set lacks "
            "the history they read (year_ago reads 364 days back; the pinned test set stores "
            "forecast.lookback periods before each week)"
        )
    return rows


def daily_losses(
    timestamps: pd.Series, actual: pd.Series, forecast: pd.Series | np.ndarray
) -> tuple[list[str], dict[str, list[float]]]:
    """The days and, per day, the sums of absolute and of squared errors (6 significant
    digits: they travel in a registry tag)."""
    import numpy as np
    import pandas as pd

    error = np.asarray(forecast, dtype="float64") - np.asarray(actual, dtype="float64")
    frame = pd.DataFrame(
        {"absolute": np.abs(error), "squared": error**2},
        index=pd.DatetimeIndex(timestamps.to_numpy()).normalize(),
    )
    per_day = frame.groupby(level=0).sum()
    days = [f"{day:%Y-%m-%d}" for day in per_day.index]
    return days, {name: [float(f"{v:.6g}") for v in per_day[name]] for name in per_day.columns}


def evaluate(pipeline: Any, test_set: pd.DataFrame, params: Params) -> Evaluation:
    """Score the model and the baselines on the test set's target rows that every baseline of
    `gate.baselines` can forecast; other baselines are scored where they cover all those rows."""
    predictions = pipeline.predict(test_set)
    reference = baselines(test_set, params)
    rows = scored_rows(test_set, reference, params)
    actual = test_set.loc[rows, TARGET]
    forecast = predictions[rows.to_numpy()]
    covering = [name for name in BASELINES if reference.loc[rows, name].notna().all()]
    days, losses = daily_losses(test_set.loc[rows, "timestamp"], actual, forecast)
    return Evaluation(
        model=metrics(actual, forecast),
        baselines={name: metrics(actual, reference.loc[rows, name]) for name in covering},
        rows=int(rows.sum()),
        days=days,
        daily_loss=losses,
    )


def history_periods(params: Params) -> int:
    """How many periods before the first forecast row the features read: the longest lag or
    window, plus a block."""
    forecast = params.forecast
    return max((*forecast.lags, *forecast.windows)) + forecast.horizon


def history_span(params: Params) -> pd.Timedelta:
    """`history_periods` as a duration."""
    import pandas as pd

    return pd.Timedelta(params.table.frequency) * history_periods(params)


def compute_threads(params: Params) -> Any:
    """Cap OpenMP/BLAS threads for fitting and scoring at `train.threads`: OpenMP threads spin
    while they wait, so tasks side by side on few cores slow each other down many times over
    (docs/benchmarks.md)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=params.train.threads)

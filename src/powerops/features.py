"""scikit-learn transformers that turn the modelling table into forecasting features.

Forecasts are issued in non-overlapping blocks of `horizon` periods. Every row belongs to one
block; the block's start is the row's *forecast origin*, `timestamp.floor(horizon * frequency)`
(for hourly data and a 24-period horizon: midnight of the row's day, i.e. the day-ahead forecast
is made at the end of the previous day), and the row's *step* is its position in the block,
1..horizon.

Every history feature of a row is computed only from target values strictly before the row's
origin. This is the design, for two reasons:

* no leakage: a model trained on these features never sees a value it would not have had when
  the forecast was made, so validation scores are honest;
* training and serving are identical: at serving time the rows to forecast have an unknown
  (NaN) target and the history stops at the origin, which is exactly the situation every
  training row was built in. The same code, with the same parameters, produces both.

A lag shorter than the step would reach into the block being forecast, so it is NaN for those
steps; the model learns from `step` how far ahead each row is. The transformers use the rows of
X itself as history and learn nothing in `fit`, so at serving time X must contain the history
(at least the longest lag or window before the origin) together with the rows to forecast.

Timestamps are naive local clock time on a regular grid: arithmetic is clock arithmetic, so a
day always has 24 hourly periods and daylight-saving changes are neither detected nor adjusted.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import numpy.typing as npt
import pandas as pd
from pandas.tseries.frequencies import to_offset
from pandas.tseries.offsets import Day, Tick
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

__all__ = [
    "CalendarFeatures",
    "OriginLagFeatures",
    "easter_sunday",
    "forecast_origin",
    "french_holidays",
]

_FloatArray = npt.NDArray[np.float64]


def easter_sunday(year: int) -> datetime.date:
    """Gregorian Easter Sunday of `year` (the anonymous Gregorian, or Meeus/Jones/Butcher,
    algorithm)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    el = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * el) // 451
    month, day = divmod(h + el - 7 * m + 114, 31)
    return datetime.date(year, month, day + 1)


def french_holidays(year: int) -> set[datetime.date]:
    """The eleven French public holidays of `year` (fewer dates when two coincide)."""
    easter = easter_sunday(year)
    fixed = [(1, 1), (5, 1), (5, 8), (7, 14), (8, 15), (11, 1), (11, 11), (12, 25)]
    movable = [1, 39, 50]  # Easter Monday, Ascension Thursday, Whit Monday
    return {datetime.date(year, month, day) for month, day in fixed} | {
        easter + datetime.timedelta(days=offset) for offset in movable
    }


def _period(frequency: str) -> pd.Timedelta:
    """The fixed length of one period; calendar frequencies (months, weeks) are rejected."""
    try:
        offset = to_offset(frequency)
    except ValueError as exc:
        raise ValueError(f"frequency {frequency!r} is not a valid frequency: {exc}") from None
    # Day is not a Tick in pandas 3 (it is a calendar day for aware times), but on naive
    # timestamps it is exactly 24 hours.
    if isinstance(offset, Day):
        period = pd.Timedelta(days=offset.n)
    elif isinstance(offset, Tick):
        period = pd.Timedelta(offset)
    else:
        raise ValueError(
            f"frequency {frequency!r} is not a fixed-length frequency such as '1h' or '1D'"
        )
    if period <= pd.Timedelta(0):
        raise ValueError(f"frequency {frequency!r} must be positive")
    return period


def _check_horizon(horizon: object) -> int:
    if not isinstance(horizon, int | np.integer) or isinstance(horizon, bool):
        raise ValueError(f"horizon must be an integer, got {horizon!r}")
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    return int(horizon)


def forecast_origin(timestamps: pd.Series, frequency: str, horizon: int) -> pd.Series:
    """The forecast origin of each timestamp: its floor to a block of `horizon` periods."""
    block = _period(frequency) * _check_horizon(horizon)
    # Blocks are aligned on the Unix epoch (pandas floor semantics): whole days for any block
    # that divides a day, but a 7-day block starts on Thursdays (1970-01-01 was a Thursday).
    origins: pd.Series = timestamps.dt.floor(block)
    return origins


def _timestamps(X: pd.DataFrame, column: str) -> pd.Series:
    """The timestamp column of X, checked to be naive datetime64 without missing values."""
    if not isinstance(X, pd.DataFrame):
        raise TypeError(f"X must be a pandas DataFrame, got {type(X).__name__}")
    if column not in X.columns:
        raise ValueError(f"X has no column {column!r} (columns: {list(X.columns)})")
    timestamps = X[column]
    if isinstance(timestamps.dtype, pd.DatetimeTZDtype):
        raise ValueError(
            f"column {column!r} must be naive local time; it is timezone-aware ({timestamps.dtype})"
        )
    if not pd.api.types.is_datetime64_dtype(timestamps.dtype):
        raise ValueError(f"column {column!r} must be datetime64, got {timestamps.dtype}")
    if timestamps.isna().any():
        raise ValueError(f"column {column!r} has missing timestamps (NaT)")
    return timestamps


def _check_column_name(name: object, parameter: str) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(f"{parameter} must be a non-empty column name, got {name!r}")
    return name


class CalendarFeatures(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Calendar features of each row's timestamp: hour, weekday, month, day of year, flags."""

    def __init__(self, timestamp_column: str = "timestamp", holidays: bool = True) -> None:
        self.timestamp_column = timestamp_column
        self.holidays = holidays

    def fit(self, X: pd.DataFrame, y: Any = None) -> Self:
        """Validate the parameters; nothing is learnt from the data."""
        self._columns()
        self.fitted_ = True
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """One float64 row of calendar features per row of X, with X's index and order."""
        check_is_fitted(self)
        columns = self._columns()
        timestamps = _timestamps(X, self.timestamp_column).dt
        dayofweek = timestamps.day_of_week.to_numpy()
        features: dict[str, npt.ArrayLike] = {
            "hour": timestamps.hour.to_numpy(),
            "dayofweek": dayofweek,
            "month": timestamps.month.to_numpy(),
            "dayofyear": timestamps.day_of_year.to_numpy(),
            "is_weekend": dayofweek >= 5,
        }
        if self.holidays:
            years = np.unique(timestamps.year.to_numpy()).tolist()
            dates = sorted(day for year in years for day in french_holidays(int(year)))
            holidays = pd.DatetimeIndex(dates)
            features["is_holiday"] = timestamps.normalize().isin(holidays).to_numpy()
        return pd.DataFrame(features, index=X.index, columns=columns, dtype="float64")

    def get_feature_names_out(self, input_features: Any = None) -> npt.NDArray[np.object_]:
        """The output column names; they depend only on the parameters, not on the input."""
        return np.asarray(self._columns(), dtype=object)

    def _columns(self) -> list[str]:
        _check_column_name(self.timestamp_column, "timestamp_column")
        if not isinstance(self.holidays, bool | np.bool_):
            raise ValueError(f"holidays must be True or False, got {self.holidays!r}")
        columns = ["hour", "dayofweek", "month", "dayofyear", "is_weekend"]
        return [*columns, "is_holiday"] if self.holidays else columns


@dataclass(frozen=True)
class _LagConfig:
    """The validated parameters of an OriginLagFeatures."""

    timestamp_column: str
    target_column: str
    frequency: str
    period: pd.Timedelta
    horizon: int
    lags: tuple[int, ...]
    windows: tuple[int, ...]

    @property
    def columns(self) -> list[str]:
        windowed = [f"rolling_{stat}_{w}" for w in self.windows for stat in ("mean", "max")]
        return ["step", *(f"lag_{k}" for k in self.lags), "last_value", *windowed]


def _check_periods(values: object, parameter: str) -> tuple[int, ...]:
    """A non-empty tuple of distinct positive integers (a number of periods each)."""
    if isinstance(values, str) or not isinstance(values, Sequence | np.ndarray):
        raise ValueError(f"{parameter} must be a sequence of positive integers, got {values!r}")
    checked: list[int] = []
    for value in values:
        if not isinstance(value, int | np.integer) or isinstance(value, bool):
            raise ValueError(f"{parameter} must contain integers, got {value!r}")
        if value < 1:
            raise ValueError(f"{parameter} must be positive, got {value}")
        checked.append(int(value))
    if not checked:
        raise ValueError(f"{parameter} must not be empty")
    if len(set(checked)) != len(checked):
        raise ValueError(f"{parameter} must not repeat a value, got {checked}")
    return tuple(checked)


class OriginLagFeatures(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Step, lags, last value and rolling statistics of the target, all known at the origin."""

    def __init__(
        self,
        timestamp_column: str = "timestamp",
        target_column: str = "load_kw",
        frequency: str = "1h",
        horizon: int = 24,
        lags: Sequence[int] = (24, 48, 168),
        windows: Sequence[int] = (24, 168),
    ) -> None:
        self.timestamp_column = timestamp_column
        self.target_column = target_column
        self.frequency = frequency
        self.horizon = horizon
        self.lags = lags
        self.windows = windows

    def fit(self, X: pd.DataFrame, y: Any = None) -> Self:
        """Validate the parameters; nothing is learnt from the data (X is the history)."""
        self._config()
        self.fitted_ = True
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """One float64 row of features per row of X, with X's index and order.

        The history is the target column of X itself: rows whose target is NaN, and periods
        that have no row, are missing values.
        """
        check_is_fitted(self)
        config = self._config()
        timestamps = _timestamps(X, config.timestamp_column)
        if config.target_column not in X.columns:
            raise ValueError(
                f"X has no column {config.target_column!r} (columns: {list(X.columns)})"
            )
        if len(X) == 0:
            return pd.DataFrame(index=X.index, columns=config.columns, dtype="float64")
        duplicated = timestamps.duplicated(keep=False)
        if duplicated.any():
            examples = sorted(timestamps[duplicated].unique())[:3]
            raise ValueError(
                f"X has duplicate timestamps in column {config.timestamp_column!r} "
                f"({int(duplicated.sum())} rows, e.g. {', '.join(str(t) for t in examples)}); "
                "the history must have one row per period"
            )
        target = X[config.target_column].to_numpy(dtype="float64", na_value=np.nan)

        origins = forecast_origin(timestamps, config.frequency, config.horizon)
        if (timestamps.dt.floor(config.period) != timestamps).any():
            raise ValueError(
                f"column {config.timestamp_column!r} has timestamps that are not on the "
                f"{config.frequency} grid"
            )
        # Positions on a regular grid from the first timestamp make a missing period a NaN in
        # the grid, so lags and windows count periods, not rows.
        start = timestamps.min()
        position = ((timestamps - start) // config.period).to_numpy(dtype=np.int64)
        origin_position = ((origins - start) // config.period).to_numpy(dtype=np.int64)
        step = position - origin_position + 1
        grid = np.full(int(position.max()) + 1, np.nan)
        grid[position] = target

        before_origin = origin_position - 1
        features: dict[str, _FloatArray] = {"step": step.astype(np.float64)}
        for lag in config.lags:
            values = _take(grid, position - lag)
            # lag >= step is the same as (t - lag periods) < origin: only then is it known.
            values[lag < step] = np.nan
            features[f"lag_{lag}"] = values
        features["last_value"] = _take(grid, before_origin)
        series = pd.Series(grid)
        for window in config.windows:
            rolling = series.rolling(window, min_periods=math.ceil(window / 2))
            # The window ending at origin - 1 period covers [origin - window, origin).
            features[f"rolling_mean_{window}"] = _take(rolling.mean().to_numpy(), before_origin)
            features[f"rolling_max_{window}"] = _take(rolling.max().to_numpy(), before_origin)
        return pd.DataFrame(features, index=X.index, columns=config.columns, dtype="float64")

    def get_feature_names_out(self, input_features: Any = None) -> npt.NDArray[np.object_]:
        """The output column names; they depend only on the parameters, not on the input."""
        return np.asarray(self._config().columns, dtype=object)

    def _config(self) -> _LagConfig:
        timestamp_column = _check_column_name(self.timestamp_column, "timestamp_column")
        target_column = _check_column_name(self.target_column, "target_column")
        if timestamp_column == target_column:
            raise ValueError("timestamp_column and target_column must differ")
        if not isinstance(self.frequency, str):
            raise ValueError(f"frequency must be a string such as '1h', got {self.frequency!r}")
        return _LagConfig(
            timestamp_column=timestamp_column,
            target_column=target_column,
            frequency=self.frequency,
            period=_period(self.frequency),
            horizon=_check_horizon(self.horizon),
            lags=_check_periods(self.lags, "lags"),
            windows=_check_periods(self.windows, "windows"),
        )


def _take(values: _FloatArray, positions: npt.NDArray[np.int64]) -> _FloatArray:
    """values[positions], NaN where a position falls outside the grid."""
    inside = (positions >= 0) & (positions < len(values))
    out = np.full(len(positions), np.nan)
    out[inside] = values[positions[inside]]
    return out

"""scikit-learn transformers that turn the modelling table into forecasting features.

Forecasts are issued in non-overlapping blocks of `horizon` periods. Every row belongs to one
block; the block's start is the row's *forecast origin*, `timestamp.floor(horizon * frequency)`
(for hourly data and a 24-period horizon: midnight of the row's day, i.e. the day-ahead forecast
is made at the end of the previous day), and the row's *step* is its position in the block,
1..horizon. Blocks are floored on the Unix epoch (a Thursday), or, with `week_start`, on a
midnight of that weekday: then a 7-day block runs from that day to the day before it.

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

Each transformer's `transform_arrays` computes the features from plain NumPy columns
(`{name: array}`); `transform` checks a DataFrame, hands its columns to `transform_arrays` and
wraps the result. The online service calls `transform_arrays` directly (a pandas frame costs
more than the arithmetic on a one-day request), so training and serving still run one body of
feature code.

Timestamps are naive local clock time on a regular grid: arithmetic is clock arithmetic, so a
day always has 24 hourly periods and daylight-saving changes are neither detected nor adjusted.
"""

from __future__ import annotations

import datetime
import functools
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

import dateutil.easter
import numpy as np
import numpy.typing as npt
import pandas as pd
from pandas.tseries.frequencies import to_offset
from pandas.tseries.offsets import Day, Tick
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from powerops.core.config import WEEKDAYS
from powerops.data.table import TARGET

__all__ = [
    "NO_READ",
    "CalendarFeatures",
    "HistoryReads",
    "KnownFeatures",
    "OriginLagFeatures",
    "forecast_origin",
    "french_holidays",
]

_FloatArray = npt.NDArray[np.float64]
_NS_PER_HOUR = 3_600_000_000_000
_NS_PER_DAY = 24 * _NS_PER_HOUR


def french_holidays(year: int) -> set[datetime.date]:
    """The eleven French public holidays of `year` (fewer dates when two coincide)."""
    easter = dateutil.easter.easter(year)
    fixed = [(1, 1), (5, 1), (5, 8), (7, 14), (8, 15), (11, 1), (11, 11), (12, 25)]
    movable = [1, 39, 50]  # Easter Monday, Ascension Thursday, Whit Monday
    return {datetime.date(year, month, day) for month, day in fixed} | {
        easter + datetime.timedelta(days=offset) for offset in movable
    }


# Bounded: serving calls it with the year span of a client's rows, which a client chooses.
@functools.lru_cache(maxsize=64)
def _holidays_between(first_year: int, last_year: int) -> npt.NDArray[np.datetime64]:
    """The French public holidays of the years first_year..last_year (a read-only array)."""
    days = sorted(day for year in range(first_year, last_year + 1) for day in french_holidays(year))
    holidays = np.array(days, dtype="datetime64[D]")
    holidays.flags.writeable = False
    return holidays


@functools.lru_cache(maxsize=8)
def _listed_days(days: tuple[str, ...]) -> npt.NDArray[np.datetime64]:
    """An explicit holiday list (ISO dates), as a sorted read-only array."""
    listed = np.unique(np.array(days, dtype="datetime64[D]"))
    listed.flags.writeable = False
    return listed


@functools.cache
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


def _anchor(frequency: str, horizon: int, week_start: object) -> int:
    """Nanoseconds since 1970 of one block start: a midnight of `week_start`, or the epoch."""
    period = _period(frequency)
    if week_start is None:
        return 0
    if week_start not in WEEKDAYS:
        raise ValueError(
            f"week_start must be None or one of {', '.join(WEEKDAYS)}, got {week_start!r}"
        )
    block = int(period.value) * horizon
    if block % _NS_PER_DAY and _NS_PER_DAY % block:
        raise ValueError(
            f"week_start {week_start!r} anchors blocks of whole days; {horizon} periods of "
            f"{frequency} make {pd.Timedelta(block)}"
        )
    anchor = (WEEKDAYS.index(week_start) - 3) % 7 * _NS_PER_DAY  # 1970-01-01 was a Thursday
    if anchor % int(period.value):
        raise ValueError(f"week_start {week_start!r}: midnight is not on the {frequency} grid")
    return anchor


def forecast_origin(
    timestamps: pd.Series, frequency: str, horizon: int, week_start: str | None = None
) -> pd.Series:
    """The forecast origin of each timestamp: its floor to a block of `horizon` periods."""
    period, horizon = _period(frequency), _check_horizon(horizon)
    # Without week_start, blocks are aligned on the Unix epoch (pandas floor semantics): whole
    # days for any block that divides a day, but a 7-day block starts on Thursdays (1970-01-01
    # was a Thursday). With it, on a midnight of that weekday.
    anchor = pd.Timedelta(_anchor(frequency, horizon, week_start)).as_unit(timestamps.dt.unit)
    origins: pd.Series = (timestamps - anchor).dt.floor(period * horizon) + anchor
    return origins


def _timestamps(X: pd.DataFrame, column: str) -> pd.Series:
    """The timestamp column of X, checked to be naive datetime64."""
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
    return timestamps


def _nanoseconds(columns: Mapping[str, np.ndarray], column: str) -> npt.NDArray[np.int64]:
    """A naive datetime64 column (any unit) as int64 nanoseconds since 1970, without NaT."""
    if column not in columns:
        raise ValueError(f"X has no column {column!r} (columns: {list(columns)})")
    values = np.asarray(columns[column])
    if values.dtype.kind != "M":
        raise ValueError(f"column {column!r} must be datetime64, got {values.dtype}")
    if np.isnat(values).any():
        raise ValueError(f"column {column!r} has missing timestamps (NaT)")
    nanoseconds: npt.NDArray[np.int64] = values.astype("datetime64[ns]").view(np.int64)
    return nanoseconds


def _columns_of(X: pd.DataFrame, names: Sequence[str]) -> dict[str, np.ndarray]:
    """The named columns of X as NumPy arrays (float64 for the target, NaN for missing)."""
    columns = {}
    for name in names:
        if name not in X.columns:
            raise ValueError(f"X has no column {name!r} (columns: {list(X.columns)})")
        column = X[name]
        columns[name] = (
            column.to_numpy()
            if pd.api.types.is_datetime64_dtype(column.dtype)
            else column.to_numpy(dtype="float64", na_value=np.nan)
        )
    return columns


def _check_column_name(name: object, parameter: str) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(f"{parameter} must be a non-empty column name, got {name!r}")
    return name


CALENDAR_ENCODINGS = ("ordinal", "onehot")
# The one-hot encoding's columns: one indicator per value of each of these ordinal features.
_ONEHOT_VALUES = {"hour": range(24), "dayofweek": range(7), "month": range(1, 13)}


class CalendarFeatures(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Calendar features of each row's timestamp: hour, weekday, month, day of year, flags.
    `holidays`: True flags the French public holidays, a tuple of ISO dates those days, False
    leaves the holiday flag out.

    `encoding="ordinal"` gives each as one number (what trees split on); `"onehot"` gives one
    0/1 column per hour of the day, day of the week and month (what a linear model needs to
    learn a daily and weekly profile), plus the holiday flag; day of year and the weekend
    flag are left out (the months and weekdays already carry them).
    """

    def __init__(
        self,
        timestamp_column: str = "timestamp",
        holidays: bool | tuple[str, ...] = True,
        encoding: str = "ordinal",
    ) -> None:
        self.timestamp_column = timestamp_column
        self.holidays = holidays
        self.encoding = encoding

    def fit(self, X: pd.DataFrame, y: Any = None) -> Self:
        """Validate the parameters; nothing is learnt from the data."""
        self._columns()
        self.fitted_ = True
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """One float64 row of calendar features per row of X, with X's index and order."""
        check_is_fitted(self)
        _timestamps(X, self.timestamp_column)
        features = self.transform_arrays(_columns_of(X, [self.timestamp_column]))
        return pd.DataFrame(features, index=X.index, columns=self._columns())

    def transform_arrays(
        self, columns: Mapping[str, np.ndarray], rows: npt.NDArray[np.intp] | None = None
    ) -> _FloatArray:
        """The features of NumPy columns, as an (n, features) float64 array; of the `rows`
        positions only when given."""
        check_is_fitted(self)
        self._columns()
        nanoseconds = _nanoseconds(columns, self.timestamp_column)
        if rows is not None:
            nanoseconds = nanoseconds[rows]
        ordinal = _ordinal_calendar(nanoseconds, _holiday_setting(self.holidays))
        if self.encoding == "ordinal":
            return ordinal if self.holidays else np.ascontiguousarray(ordinal[:, :5])
        indicators = [
            ordinal[:, [column]] == np.asarray(values, dtype=np.float64)
            for column, values in enumerate(_ONEHOT_VALUES.values())
        ]
        if self.holidays:
            indicators.append(ordinal[:, 5:] == 1.0)
        return np.hstack(indicators).astype(np.float64)

    def get_feature_names_out(self, input_features: Any = None) -> npt.NDArray[np.object_]:
        """The output column names; they depend only on the parameters, not on the input."""
        return np.asarray(self._columns(), dtype=object)

    def _columns(self) -> list[str]:
        _check_column_name(self.timestamp_column, "timestamp_column")
        _holiday_setting(self.holidays)
        if self.encoding not in CALENDAR_ENCODINGS:
            raise ValueError(
                f"encoding must be one of {', '.join(CALENDAR_ENCODINGS)}, got {self.encoding!r}"
            )
        if self.encoding == "onehot":
            columns = [f"{name}_{v}" for name, values in _ONEHOT_VALUES.items() for v in values]
        else:
            columns = ["hour", "dayofweek", "month", "dayofyear", "is_weekend"]
        return [*columns, "is_holiday"] if self.holidays else columns


# A lag that reads nothing (masked at the origin), in HistoryReads.lags: before any time.
NO_READ = np.iinfo(np.int64).min


@dataclass(frozen=True)
class HistoryReads:
    """The target times the history features of some rows read, as int64 nanoseconds since
    1970, one row each: the time each lag reads (`NO_READ` where the lag is masked), and the
    span [first, origin) the windows and the last value read."""

    lags: npt.NDArray[np.int64]  # (rows, lags)
    first: npt.NDArray[np.int64]
    origin: npt.NDArray[np.int64]


def _holiday_setting(holidays: object) -> bool | tuple[str, ...]:
    """`holidays` checked: True (the French public holidays), False (none), or a tuple of ISO
    dates (exactly those days; an empty one is False)."""
    if isinstance(holidays, bool | np.bool_):
        return bool(holidays)
    if isinstance(holidays, tuple | list) and all(isinstance(d, str) for d in holidays):
        try:
            _listed_days(tuple(holidays))
        except ValueError as exc:
            raise ValueError(f"holidays must be ISO dates (YYYY-MM-DD): {exc}") from None
        return tuple(holidays)
    raise ValueError(
        f"holidays must be True (French public holidays), False or a tuple of ISO dates, got "
        f"{holidays!r}"
    )


def _ordinal_calendar(
    nanoseconds: npt.NDArray[np.int64], holidays: bool | tuple[str, ...]
) -> _FloatArray:
    """Hour, weekday, month, day of year, weekend and holiday flags of naive timestamps (int64
    nanoseconds since 1970), as an (n, 6) float64 array; the holiday flag is 0 unless asked:
    True marks the French public holidays, a tuple of ISO dates those days."""
    days = nanoseconds // _NS_PER_DAY  # floor: days since 1970-01-01, a Thursday
    dates = days.astype("datetime64[D]")
    features = np.zeros((len(days), 6), dtype=np.float64)
    features[:, 0] = (nanoseconds - days * _NS_PER_DAY) // _NS_PER_HOUR
    features[:, 1] = (days + 3) % 7  # Monday 0 .. Sunday 6
    features[:, 2] = dates.astype("datetime64[M]").astype(np.int64) % 12 + 1
    features[:, 3] = (dates - dates.astype("datetime64[Y]")).astype(np.int64) + 1
    features[:, 4] = features[:, 1] >= 5
    if isinstance(holidays, tuple) and holidays and len(dates):
        features[:, 5] = np.isin(dates, _listed_days(holidays))
    elif holidays is True and len(dates):
        years = dates.astype("datetime64[Y]").astype(np.int64) + 1970
        days_off = _holidays_between(int(years.min()), int(years.max()))
        features[:, 5] = np.isin(dates, days_off)
    return features


def _check_grid(nanoseconds: npt.NDArray[np.int64], config: _LagConfig) -> None:
    """One row per period, each on the frequency's grid: the history lags and windows read."""
    ordered = np.sort(nanoseconds)
    repeated = ordered[1:][ordered[1:] == ordered[:-1]]
    if len(repeated):
        examples = np.unique(repeated)[:3].astype("datetime64[ns]")
        raise ValueError(
            f"X has duplicate timestamps in column {config.timestamp_column!r} "
            f"({int(np.isin(nanoseconds, repeated).sum())} rows, e.g. "
            f"{', '.join(str(pd.Timestamp(t)) for t in examples)}); "
            "the history must have one row per period"
        )
    if (nanoseconds % int(config.period.value)).any():
        raise ValueError(
            f"column {config.timestamp_column!r} has timestamps that are not on the "
            f"{config.frequency} grid"
        )


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
    anchor: int  # nanoseconds since 1970 of one block start (forecast_origin)
    step: bool = True  # the step column comes first (False: another column's history only)

    def origins(self, nanoseconds: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """The forecast origin of each time (int64 nanoseconds), as forecast_origin floors."""
        block = int(self.period.value) * self.horizon
        origins: npt.NDArray[np.int64] = (nanoseconds - self.anchor) // block * block + self.anchor
        return origins

    @property
    def columns(self) -> list[str]:
        windowed = [f"rolling_{stat}_{w}" for w in self.windows for stat in ("mean", "max")]
        history = [*(f"lag_{k}" for k in self.lags), "last_value", *windowed]
        return ["step", *history] if self.step else history


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
        target_column: str = TARGET,
        frequency: str = "1h",
        horizon: int = 24,
        lags: Sequence[int] = (24, 48, 168),
        windows: Sequence[int] = (24, 168),
        week_start: str | None = None,
        step: bool = True,
    ) -> None:
        self.timestamp_column = timestamp_column
        self.target_column = target_column
        self.frequency = frequency
        self.horizon = horizon
        self.lags = lags
        self.windows = windows
        self.week_start = week_start
        self.step = step

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A model pickled before `week_start` existed floored its blocks on the epoch; one
        # pickled before `step` existed had the step column.
        super().__setstate__({"week_start": None, "step": True, **state})

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
        _timestamps(X, config.timestamp_column)
        columns = _columns_of(X, [config.timestamp_column, config.target_column])
        features = self.transform_arrays(columns)
        return pd.DataFrame(features, index=X.index, columns=config.columns)

    def transform_arrays(
        self, columns: Mapping[str, np.ndarray], rows: npt.NDArray[np.intp] | None = None
    ) -> _FloatArray:
        """The features of NumPy columns (the target as float64, NaN for missing), as an
        (n, features) float64 array; of the `rows` positions only when given (the service
        asks for the rows it forecasts: every row is still history)."""
        check_is_fitted(self)
        config = self._config()
        nanoseconds = _nanoseconds(columns, config.timestamp_column)
        if config.target_column not in columns:
            raise ValueError(f"X has no column {config.target_column!r} (columns: {list(columns)})")
        target = np.asarray(columns[config.target_column], dtype=np.float64)
        if len(nanoseconds) == 0:
            return np.empty((0, len(config.columns)), dtype=np.float64)
        _check_grid(nanoseconds, config)
        # Positions on a regular grid from the first timestamp make a missing period a NaN in
        # the grid, so lags and windows count periods, not rows.
        period = int(config.period.value)  # nanoseconds
        start = int(nanoseconds.min())
        position = (nanoseconds - start) // period
        grid = np.full(int(position.max()) + 1, np.nan)
        grid[position] = target

        if rows is not None:
            nanoseconds, position = nanoseconds[rows], position[rows]
        origins = config.origins(nanoseconds)  # as forecast_origin floors them
        origin_position = (origins - start) // period
        step = position - origin_position + 1
        before_origin = origin_position - 1
        width = 2 + len(config.lags) + 2 * len(config.windows)
        features = np.empty((len(position), width), dtype=np.float64)
        features[:, 0] = step
        for column, lag in enumerate(config.lags, start=1):
            values = _take(grid, position - lag)
            # lag >= step is the same as (t - lag periods) < origin: only then is it known.
            values[lag < step] = np.nan
            features[:, column] = values
        column = len(config.lags) + 1
        features[:, column] = _take(grid, before_origin)
        # Windows end at the period before each origin, and many rows share an origin: each
        # distinct window is computed once.
        ends, window_of_row = np.unique(before_origin, return_inverse=True)
        for window in config.windows:
            mean, largest = _window_stats(grid, ends, window, math.ceil(window / 2))
            features[:, column + 1] = mean[window_of_row]
            features[:, column + 2] = largest[window_of_row]
            column += 2
        return features if config.step else np.ascontiguousarray(features[:, 1:])

    def get_feature_names_out(self, input_features: Any = None) -> npt.NDArray[np.object_]:
        """The output column names; they depend only on the parameters, not on the input."""
        return np.asarray(self._config().columns, dtype=object)

    def history_reads(self, timestamps: np.ndarray) -> HistoryReads:
        """Which target times the features of a row at each of `timestamps` (datetime64) read,
        besides the row's own target; from the parameters alone (no fit needed)."""
        config = self._config()
        nanoseconds = _nanoseconds({"timestamp": timestamps}, "timestamp")
        origins = config.origins(nanoseconds)
        period = int(config.period.value)
        step = (nanoseconds - origins) // period + 1
        lags = np.empty((len(nanoseconds), len(config.lags)), dtype=np.int64)
        for column, lag in enumerate(config.lags):
            # As transform_arrays masks them: a lag is read only when lag >= step.
            lags[:, column] = np.where(lag >= step, nanoseconds - lag * period, NO_READ)
        # last_value reads the period before the origin, inside every window (windows >= 1).
        first = origins - max(config.windows) * period
        return HistoryReads(lags=lags, first=first, origin=origins)

    def _config(self) -> _LagConfig:
        timestamp_column = _check_column_name(self.timestamp_column, "timestamp_column")
        target_column = _check_column_name(self.target_column, "target_column")
        if timestamp_column == target_column:
            raise ValueError("timestamp_column and target_column must differ")
        if not isinstance(self.frequency, str):
            raise ValueError(f"frequency must be a string such as '1h', got {self.frequency!r}")
        period, horizon = _period(self.frequency), _check_horizon(self.horizon)
        return _LagConfig(
            timestamp_column=timestamp_column,
            target_column=target_column,
            frequency=self.frequency,
            period=period,
            horizon=horizon,
            lags=_check_periods(self.lags, "lags"),
            windows=_check_periods(self.windows, "windows"),
            anchor=_anchor(self.frequency, horizon, self.week_start),
            step=bool(self.step),
        )


class KnownFeatures(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Columns known in advance for the periods forecast (a working-day flag, a supplied
    weather forecast), read at each row's own period; a value missing at a row to forecast is
    a missing feature. A column known only once measured goes through OriginLagFeatures with
    `step=False` instead: masked at the origin like the target."""

    def __init__(self, known: Sequence[str] = ()) -> None:
        self.known = known

    def fit(self, X: pd.DataFrame, y: Any = None) -> Self:
        """Validate the parameters; nothing is learnt from the data."""
        self._names()
        self.fitted_ = True
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """The known columns of X as float64, with X's index and order."""
        check_is_fitted(self)
        features = self.transform_arrays(_columns_of(X, self._names()))
        return pd.DataFrame(features, index=X.index, columns=self._names())

    def transform_arrays(
        self, columns: Mapping[str, np.ndarray], rows: npt.NDArray[np.intp] | None = None
    ) -> _FloatArray:
        """The known columns as an (n, known) float64 array; of the `rows` positions only
        when given."""
        check_is_fitted(self)
        blocks = []
        for name in self._names():
            if name not in columns:
                raise ValueError(f"X has no column {name!r} (columns: {list(columns)})")
            values = np.asarray(columns[name], dtype=np.float64)
            blocks.append(values if rows is None else values[rows])
        return np.column_stack(blocks)

    def get_feature_names_out(self, input_features: Any = None) -> npt.NDArray[np.object_]:
        return np.asarray(self._names(), dtype=object)

    def _names(self) -> list[str]:
        if isinstance(self.known, str) or not self.known:
            raise ValueError(f"known must be a non-empty list of column names, got {self.known!r}")
        return [_check_column_name(name, "known") for name in self.known]


def _take(values: _FloatArray, positions: npt.NDArray[np.int64]) -> _FloatArray:
    """values[positions], NaN where a position falls outside the grid."""
    inside = (positions >= 0) & (positions < len(values))
    out = np.full(len(positions), np.nan)
    out[inside] = values[positions[inside]]
    return out


def _window_stats(
    grid: _FloatArray, ends: npt.NDArray[np.int64], window: int, min_periods: int
) -> tuple[_FloatArray, _FloatArray]:
    """Mean and max of the `window` grid values ending at each of `ends` (inclusive), NaN
    where fewer than `min_periods` of them are known."""
    values = _take(grid, (ends[:, None] + np.arange(1 - window, 1)).ravel())
    values = values.reshape(len(ends), window)
    known = ~np.isnan(values)
    count = known.sum(axis=1)
    enough = count >= min_periods
    total = np.where(known, values, 0.0).sum(axis=1)
    mean = np.full(len(ends), np.nan)
    mean[enough] = total[enough] / count[enough]
    largest = np.where(known, values, -np.inf).max(axis=1, initial=-np.inf)
    largest[~enough] = np.nan
    return mean, largest


def accept_old_pickles() -> None:
    """Let a model pickled before powerops had subpackages load: its transformers are stored
    by reference to `powerops.features`, now `powerops.model.features`."""
    sys.modules.setdefault("powerops.features", sys.modules[__name__])

"""Behaviour of the forecasting feature transformers, on small synthetic tables.

Many tests encode each period's timestamp in its target value (hours since an epoch), so a lag
can be decoded back to the timestamp it was read from.
"""

from __future__ import annotations

import math
import pickle
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import FeatureUnion, Pipeline
from threadpoolctl import threadpool_limits

from powerops.model.features import (
    NO_READ,
    CalendarFeatures,
    KnownFeatures,
    OriginLagFeatures,
    forecast_origin,
    french_holidays,
)

EPOCH = pd.Timestamp("2000-01-01")
LAG_COLUMNS = [
    "step",
    "lag_24",
    "lag_48",
    "lag_168",
    "last_value",
    "rolling_mean_24",
    "rolling_max_24",
    "rolling_mean_168",
    "rolling_max_168",
]
CALENDAR_COLUMNS = ["hour", "dayofweek", "month", "dayofyear", "is_weekend", "is_holiday"]


def table(start: str, periods: int, frequency: str = "1h") -> pd.DataFrame:
    """A regular table whose load_kw is the timestamp in hours since EPOCH (never 0)."""
    timestamps = pd.Series(pd.date_range(start, periods=periods, freq=frequency, unit="us"))
    return pd.DataFrame({"timestamp": timestamps, "load_kw": encode(timestamps)})


def encode(timestamps: pd.Series) -> np.ndarray:
    return ((timestamps - EPOCH) / pd.Timedelta("1h")).to_numpy(dtype="float64")


def decode(value: float) -> pd.Timestamp:
    return EPOCH + pd.Timedelta(hours=value)


def lags(X: pd.DataFrame, **params: Any) -> pd.DataFrame:
    features: pd.DataFrame = OriginLagFeatures(**params).fit(X).transform(X)
    return features


def calendar(X: pd.DataFrame, **params: Any) -> pd.DataFrame:
    features: pd.DataFrame = CalendarFeatures(**params).fit(X).transform(X)
    return features


def rows_on(X: pd.DataFrame, day: str) -> pd.Series:
    on_day: pd.Series = X["timestamp"].dt.normalize() == pd.Timestamp(day)
    return on_day


def reference_features(
    X: pd.DataFrame,
    frequency: str,
    horizon: int,
    lag_list: tuple[int, ...],
    window_list: tuple[int, ...],
    week_start: str | None = None,
) -> pd.DataFrame:
    """The features computed row by row from their definition, to check the vectorised code.

    Times are integers (microseconds since 1970) to keep the loop fast; origins are floored on
    the epoch like pandas does, or on the first `week_start` day of 1970.
    """
    period = pd.Timedelta(frequency) // pd.Timedelta("1us")
    first_days = pd.Series(pd.date_range("1970-01-01", periods=7, freq="1D", unit="us"))
    anchor = 0
    if week_start is not None:
        first = first_days[first_days.dt.day_name().str.lower() == week_start].iloc[0]
        anchor = (first - first_days[0]) // pd.Timedelta("1us")
    times = X["timestamp"].astype("datetime64[us]").astype("int64").tolist()
    known = {t: v for t, v in zip(times, X["load_kw"], strict=True) if not math.isnan(v)}
    rows = []
    for t in times:
        origin = t - (t - anchor) % (period * horizon)
        row: dict[str, float] = {"step": (t - origin) / period + 1}
        for k in lag_list:
            source = t - k * period
            row[f"lag_{k}"] = known.get(source, np.nan) if source < origin else np.nan
        row["last_value"] = known.get(origin - period, np.nan)
        for w in window_list:
            window = range(origin - w * period, origin, period)
            values = [known[p] for p in window if p in known]
            enough = len(values) >= w / 2
            row[f"rolling_mean_{w}"] = sum(values) / len(values) if enough else np.nan
            row[f"rolling_max_{w}"] = max(values) if enough else np.nan
        rows.append(row)
    return pd.DataFrame(rows, index=X.index)


# --- calendar ---------------------------------------------------------------------------------


def test_calendar_values_for_known_dates() -> None:
    X = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(
                [
                    "2008-03-24 13:00",  # Easter Monday, a Monday
                    "2008-03-29 00:00",  # Saturday
                    "2008-03-30 23:00",  # Sunday
                    "2008-12-31 23:00",  # last day of a leap year
                    "2007-07-14 08:00",  # Bastille Day on a Saturday
                    "2007-01-02 05:00",  # an ordinary Tuesday
                ]
            ).as_unit("us")
        }
    )
    expected = pd.DataFrame(
        [
            [13, 0, 3, 84, 0, 1],
            [0, 5, 3, 89, 1, 0],
            [23, 6, 3, 90, 1, 0],
            [23, 2, 12, 366, 0, 0],
            [8, 5, 7, 195, 1, 1],
            [5, 1, 1, 2, 0, 0],
        ],
        columns=CALENDAR_COLUMNS,
        dtype="float64",
    )
    pd.testing.assert_frame_equal(calendar(X), expected)


def test_weekend_flag_is_saturday_and_sunday_only() -> None:
    X = table("2008-03-24", 14, frequency="1D")  # Monday to Sunday, twice
    features = calendar(X)
    assert features["dayofweek"].tolist() == [0, 1, 2, 3, 4, 5, 6] * 2
    assert features["is_weekend"].tolist() == [0, 0, 0, 0, 0, 1, 1] * 2


@pytest.mark.parametrize(
    ("year", "easter"),
    [
        (1818, date(1818, 3, 22)),  # earliest possible date
        (1943, date(1943, 4, 25)),  # latest possible date
        (2000, date(2000, 4, 23)),
        (2007, date(2007, 4, 8)),
        (2008, date(2008, 3, 23)),
        (2019, date(2019, 4, 21)),
        (2024, date(2024, 3, 31)),
        (2025, date(2025, 4, 20)),
    ],
)
def test_easter_monday_is_a_holiday(year: int, easter: date) -> None:
    assert easter + timedelta(days=1) in french_holidays(year)
    assert easter not in french_holidays(year)  # Easter Sunday is no public holiday


def test_french_holidays_2008_where_ascension_is_labour_day() -> None:
    holidays = french_holidays(2008)
    assert holidays == {
        date(2008, 1, 1),
        date(2008, 3, 24),  # Easter Monday
        date(2008, 5, 1),  # Labour Day and Ascension Thursday
        date(2008, 5, 8),
        date(2008, 5, 12),  # Whit Monday
        date(2008, 7, 14),
        date(2008, 8, 15),
        date(2008, 11, 1),
        date(2008, 11, 11),
        date(2008, 12, 25),
    }


def test_french_holidays_2007() -> None:
    assert french_holidays(2007) == {
        date(2007, 1, 1),
        date(2007, 4, 9),  # Easter Monday
        date(2007, 5, 1),
        date(2007, 5, 8),
        date(2007, 5, 17),  # Ascension Thursday
        date(2007, 5, 28),  # Whit Monday
        date(2007, 7, 14),
        date(2007, 8, 15),
        date(2007, 11, 1),
        date(2007, 11, 11),
        date(2007, 12, 25),
    }


def test_holiday_flag_covers_every_hour_of_the_day_and_every_year_in_the_data() -> None:
    X = table("2007-12-24", 24 * 10)  # crosses into 2008
    features = calendar(X)
    flagged = set(X.loc[features["is_holiday"] == 1.0, "timestamp"].dt.date)
    assert flagged == {date(2007, 12, 25), date(2008, 1, 1)}
    assert features.loc[rows_on(X, "2007-12-25"), "is_holiday"].tolist() == [1.0] * 24
    assert features.loc[rows_on(X, "2007-12-26"), "is_holiday"].tolist() == [0.0] * 24


def test_holidays_can_be_switched_off() -> None:
    X = table("2008-05-01", 24)
    features = calendar(X, holidays=False)
    assert list(features.columns) == CALENDAR_COLUMNS[:-1]
    assert list(CalendarFeatures(holidays=False).get_feature_names_out()) == CALENDAR_COLUMNS[:-1]


ONEHOT_COLUMNS = [
    *(f"hour_{h}" for h in range(24)),
    *(f"dayofweek_{d}" for d in range(7)),
    *(f"month_{m}" for m in range(1, 13)),
    "is_holiday",
]


def test_onehot_calendar_has_one_indicator_per_hour_weekday_and_month() -> None:
    X = table("2008-03-23", 48)  # a Sunday, then Easter Monday
    ordinal = calendar(X)
    onehot = calendar(X, encoding="onehot")
    assert list(onehot.columns) == ONEHOT_COLUMNS
    assert list(CalendarFeatures(encoding="onehot").get_feature_names_out()) == ONEHOT_COLUMNS
    assert set(np.unique(onehot.to_numpy())) == {0.0, 1.0}
    for name, width in (("hour", 24), ("dayofweek", 7), ("month", 12)):
        block = onehot[[c for c in ONEHOT_COLUMNS if c.startswith(f"{name}_")]]
        assert len(block.columns) == width
        assert (block.sum(axis=1) == 1.0).all()  # exactly one indicator per row
        # The indicator set is the one named by the ordinal value.
        hot = block.to_numpy().argmax(axis=1)
        offset = 1 if name == "month" else 0
        np.testing.assert_array_equal(hot + offset, ordinal[name].to_numpy())
    pd.testing.assert_series_equal(onehot["is_holiday"], ordinal["is_holiday"])
    assert onehot.loc[rows_on(X, "2008-03-24"), "dayofweek_0"].tolist() == [1.0] * 24
    no_holidays = calendar(X, encoding="onehot", holidays=False)
    assert list(no_holidays.columns) == ONEHOT_COLUMNS[:-1]


def test_calendar_encoding_must_be_ordinal_or_onehot() -> None:
    with pytest.raises(ValueError, match="encoding must be one of ordinal, onehot, got 'dummy'"):
        CalendarFeatures(encoding="dummy").fit(table("2008-03-01", 24))


# --- calendar anomalies: leap day and daylight saving -------------------------------------------


def test_leap_day_has_day_of_year_60_and_lag_168_reaches_back_across_it() -> None:
    X = table("2008-02-20", 24 * 12)
    cal = calendar(X)
    assert set(cal.loc[rows_on(X, "2008-02-29"), "dayofyear"]) == {60.0}
    assert set(cal.loc[rows_on(X, "2008-03-01"), "dayofyear"]) == {61.0}

    features = lags(X)
    march_first = X.loc[rows_on(X, "2008-03-01"), "timestamp"]
    sources = [decode(v) for v in features.loc[march_first.index, "lag_168"]]
    assert sources == list(march_first - pd.Timedelta(days=7))
    assert sources[0] == pd.Timestamp("2008-02-23 00:00")
    assert sources[-1] == pd.Timestamp("2008-02-23 23:00")


@pytest.mark.parametrize("dst_sunday", ["2008-03-30", "2008-10-26"])
def test_dst_sundays_are_ordinary_24_hour_days_in_naive_local_time(dst_sunday: str) -> None:
    # The table is naive local time with 24 hourly rows on every day, including the days the
    # clocks change: the transformers do clock arithmetic and never look at DST. A lag of 24
    # periods is therefore "same clock hour yesterday".
    day = pd.Timestamp(dst_sunday)
    X = table(str(day - pd.Timedelta(days=2)), 24 * 5)
    sunday = rows_on(X, dst_sunday)
    monday = rows_on(X, str(day + pd.Timedelta(days=1)))
    assert sunday.sum() == 24

    cal = calendar(X)
    assert cal.loc[sunday, "hour"].tolist() == [float(h) for h in range(24)]
    assert set(cal.loc[sunday, "dayofweek"]) == {6.0}

    features = lags(X)
    assert features.loc[sunday, "step"].tolist() == [float(s) for s in range(1, 25)]
    assert features.loc[sunday, "lag_24"].notna().all()
    assert features.loc[monday, "lag_24"].tolist() == X.loc[sunday, "load_kw"].tolist()
    assert features.loc[monday, "last_value"].tolist() == [X.loc[sunday, "load_kw"].iloc[-1]] * 24
    assert features.loc[monday, "rolling_mean_24"].iloc[0] == pytest.approx(
        X.loc[sunday, "load_kw"].mean()
    )


# --- origin and step ----------------------------------------------------------------------------


def test_hourly_day_ahead_origin_is_midnight_and_steps_run_1_to_24() -> None:
    X = table("2008-03-01", 48)
    origins = forecast_origin(X["timestamp"], "1h", 24)
    assert origins.index.equals(X.index)
    assert origins.iloc[0] == origins.iloc[23] == pd.Timestamp("2008-03-01")
    assert origins.iloc[24] == pd.Timestamp("2008-03-02")
    steps = lags(X)["step"]
    assert steps.iloc[0] == 1.0
    assert steps.iloc[23] == 24.0
    assert steps.tolist() == [float(s) for s in range(1, 25)] * 2


def test_daily_frequency_with_a_weekly_horizon_is_a_configuration_change() -> None:
    X = table("2008-01-03", 28, frequency="1D")  # 2008-01-03 is a Thursday
    params = {"frequency": "1D", "horizon": 7, "lags": (1, 7, 14), "windows": (7, 14)}
    features = lags(X, **params)
    # pandas floors on the Unix epoch, a Thursday, so 7-day blocks run Thursday to Wednesday.
    origins = forecast_origin(X["timestamp"], "1D", 7)
    assert set(origins.dt.day_of_week) == {3}
    assert origins.iloc[0] == pd.Timestamp("2008-01-03")
    assert features["step"].tolist() == [float(s) for s in range(1, 8)] * 4

    second_week = X.index[7:14]
    values = X["load_kw"]
    assert features.loc[second_week, "lag_7"].tolist() == values.iloc[0:7].tolist()
    # lag 1 is only known for the first day of the block; the others would leak.
    assert features.loc[second_week, "lag_1"].iloc[0] == values.iloc[6]
    assert features.loc[second_week, "lag_1"].iloc[1:].isna().all()
    assert features.loc[second_week, "last_value"].tolist() == [values.iloc[6]] * 7
    assert features.loc[second_week, "rolling_mean_7"].tolist() == [values.iloc[0:7].mean()] * 7
    assert features.loc[second_week, "rolling_max_14"].tolist() == [values.iloc[6]] * 7
    # 7 of 14 days is exactly half: enough for the 14-day window.
    assert features.loc[second_week, "rolling_mean_14"].notna().all()
    assert features.loc[X.index[:7], "rolling_mean_7"].isna().all()


@pytest.mark.parametrize("week_start", ["monday", "sunday", "wednesday"])
@pytest.mark.parametrize("horizon", [7, 14])
def test_week_start_anchors_blocks_of_whole_weeks_on_that_day(
    week_start: str, horizon: int
) -> None:
    rng = np.random.default_rng(5)
    X = table("2008-02-25", 120, frequency="1D")
    X["load_kw"] = rng.gamma(2.0, 0.5, len(X))
    X.loc[rng.random(len(X)) < 0.15, "load_kw"] = np.nan
    X = X.loc[rng.random(len(X)) > 0.15]
    lag_list, window_list = (1, 7, 14), (7, 28)
    params = {"horizon": horizon, "lags": lag_list, "windows": window_list}
    features = lags(X, frequency="1D", week_start=week_start, **params)
    expected = reference_features(X, "1D", horizon, lag_list, window_list, week_start)
    np.testing.assert_allclose(features.to_numpy(), expected.to_numpy(), rtol=1e-12)
    origins = forecast_origin(X["timestamp"], "1D", horizon, week_start)
    assert set(origins.dt.day_name().str.lower()) == {week_start}
    starts = X.loc[features["step"] == 1, "timestamp"]
    assert set(starts.dt.day_name().str.lower()) == {week_start}
    assert (features["step"] == (X["timestamp"] - origins).dt.days + 1).all()


@pytest.mark.parametrize(
    "frequency, horizon", [("1h", 24), ("1h", 12), ("15min", 96), ("1D", 1), ("1h", 48)]
)
def test_week_start_leaves_blocks_that_divide_a_day_and_day_pairs_from_monday_alone(
    frequency: str, horizon: int
) -> None:
    # Every midnight starts a block that divides a day, whatever the anchor; 1970-01-05, the
    # first Monday, is 4 days (two 48-hour blocks) after the epoch.
    X = table("2008-02-25", 24 * 9 if frequency != "1D" else 40, frequency=frequency)
    params = {"frequency": frequency, "horizon": horizon, "lags": (1, 2 * horizon), "windows": (3,)}
    anchored = lags(X, week_start="monday", **params)
    pd.testing.assert_frame_equal(anchored, lags(X, **params))


def test_history_reads_are_the_lags_known_at_the_origin_and_the_windows_before_it() -> None:
    X = table("2008-03-02", 21, frequency="1D")  # a Sunday
    transformer = OriginLagFeatures(
        frequency="1D", horizon=7, lags=(1, 7, 14), windows=(7, 28), week_start="sunday"
    )
    reads = transformer.history_reads(X["timestamp"].to_numpy())
    times = X["timestamp"].to_numpy().astype("datetime64[ns]").view(np.int64)
    day = pd.Timedelta(days=1).value
    tuesday = 9  # 2008-03-11, step 3 of the block from Sunday 2008-03-09
    assert reads.origin[tuesday] == times[7]
    assert reads.first[tuesday] == times[7] - 28 * day
    assert reads.lags[tuesday].tolist() == [
        NO_READ,
        times[tuesday] - 7 * day,
        times[tuesday] - 14 * day,
    ]
    assert reads.lags[7].tolist() == [times[6], times[0], times[7] - 14 * day]


def test_lags_shorter_than_the_horizon_are_defined_only_for_steps_they_do_not_leak_into() -> None:
    X = table("2008-03-02", 24 * 6)  # 2008-03-02 starts an epoch-aligned 48-hour block
    origins = forecast_origin(X["timestamp"], "1h", 48)
    assert origins.iloc[0] == pd.Timestamp("2008-03-02")
    features = lags(X, horizon=48, lags=(1, 24, 48), windows=(24,))
    block = features.index[48:96]
    assert features.loc[block, "step"].tolist() == [float(s) for s in range(1, 49)]

    lag_24 = features.loc[block, "lag_24"]
    sources = X.loc[block, "timestamp"] - pd.Timedelta(hours=24)
    assert lag_24.iloc[:24].tolist() == encode(sources.iloc[:24]).tolist()
    assert lag_24.iloc[24:].isna().all()
    assert features.loc[block, "lag_48"].notna().all()
    assert features.loc[block, "lag_1"].iloc[0] == X.loc[block[0] - 1, "load_kw"]
    assert features.loc[block, "lag_1"].iloc[1:].isna().all()


# --- gaps and the start of the history ----------------------------------------------------------


def test_first_periods_without_history_are_nan_not_zero() -> None:
    X = table("2008-03-01", 24 * 9)
    X["load_kw"] = 5.0  # a constant, so any zero would be invented
    features = lags(X)
    day = {n: rows_on(X, f"2008-03-{n:02d}") for n in range(1, 10)}

    history = [c for c in LAG_COLUMNS if c != "step"]
    assert features.loc[day[1], history].isna().all().all()
    assert features.loc[day[1], "step"].notna().all()
    assert features.loc[day[2], ["lag_24", "last_value", "rolling_mean_24"]].eq(5.0).all().all()
    assert features.loc[day[2], ["lag_48", "lag_168", "rolling_mean_168"]].isna().all().all()
    # 72 of 168 hours is less than half; 96 is more.
    assert features.loc[day[4], "rolling_mean_168"].isna().all()
    assert features.loc[day[5], ["rolling_mean_168", "rolling_max_168"]].eq(5.0).all().all()
    assert features.loc[day[7], "lag_168"].isna().all()
    assert features.loc[day[8], "lag_168"].eq(5.0).all()
    assert not (features == 0.0).any().any()


def test_a_gap_makes_exactly_the_lags_that_need_it_nan() -> None:
    full = table("2008-03-01", 24 * 10)
    gap = rows_on(full, "2008-03-05") & (full["timestamp"].dt.hour < 10)
    X = full.loc[~gap]
    features = lags(X)
    full_features = lags(full).loc[X.index]
    hour = X["timestamp"].dt.hour

    def nan_rows(column: str) -> set[pd.Timestamp]:
        return set(X.loc[features[column].isna() & full_features[column].notna(), "timestamp"])

    def hours_of(day: str, hours: range) -> set[pd.Timestamp]:
        return {pd.Timestamp(day) + pd.Timedelta(hours=h) for h in hours}

    assert nan_rows("lag_24") == hours_of("2008-03-06", range(10))
    assert nan_rows("lag_48") == hours_of("2008-03-07", range(10))
    assert nan_rows("lag_168") == set()  # the gap is reached on 2008-03-12, beyond the data
    # 14 of 24 hours present: the windows are the statistics of the present hours.
    assert nan_rows("rolling_mean_24") == set()
    march_6 = rows_on(X, "2008-03-06")
    present = X.loc[rows_on(X, "2008-03-05"), "load_kw"]
    assert len(present) == 14
    assert features.loc[march_6, "rolling_mean_24"].tolist() == [present.mean()] * 24
    assert features.loc[march_6, "rolling_max_24"].tolist() == [present.max()] * 24
    assert features.loc[march_6, "last_value"].notna().all()
    # Rows untouched by the gap keep the features of the full table.
    unaffected = ~(march_6 | rows_on(X, "2008-03-07")) | (hour >= 10)
    pd.testing.assert_frame_equal(
        features.loc[unaffected, ["lag_24", "lag_48", "lag_168"]],
        full_features.loc[unaffected, ["lag_24", "lag_48", "lag_168"]],
    )


@pytest.mark.parametrize(("missing", "defined"), [(12, True), (13, False)])
def test_a_window_needs_at_least_half_of_its_periods(missing: int, defined: bool) -> None:
    X = table("2008-03-01", 24 * 3)
    X = X.loc[~(rows_on(X, "2008-03-02") & (X["timestamp"].dt.hour < missing))]
    features = lags(X)
    march_3 = rows_on(X, "2008-03-03")
    assert features.loc[march_3, "rolling_mean_24"].notna().all() == defined
    assert features.loc[march_3, "rolling_max_24"].notna().all() == defined
    if defined:
        expected = X.loc[rows_on(X, "2008-03-02"), "load_kw"].mean()
        assert features.loc[march_3, "rolling_mean_24"].iloc[0] == pytest.approx(expected)


def test_a_nan_target_is_the_same_as_a_missing_row() -> None:
    X = table("2008-03-01", 24 * 9)
    rng = np.random.default_rng(0)
    holes = rng.random(len(X)) < 0.3
    with_nan = X.assign(load_kw=X["load_kw"].mask(holes))
    last_value_hole = X.index[rows_on(X, "2008-03-04")][0] - 1  # 2008-03-03 23:00
    with_nan.loc[last_value_hole, "load_kw"] = np.nan
    dropped = with_nan.dropna(subset=["load_kw"])
    # Rows to forecast keep their NaN target; the features must not depend on it.
    keep = dropped.index
    pd.testing.assert_frame_equal(lags(with_nan).loc[keep], lags(dropped))
    assert lags(with_nan).loc[rows_on(X, "2008-03-04"), "last_value"].isna().all()


@pytest.mark.parametrize(
    ("frequency", "horizon", "lag_list", "window_list", "periods"),
    [
        ("1h", 24, (24, 48, 168), (24, 168), 24 * 12),
        ("1h", 48, (1, 5, 24, 47, 48, 72), (3, 24), 24 * 16),
        ("1D", 7, (1, 7, 14), (7, 28), 90),
        ("15min", 96, (1, 96, 672), (4, 96), 96 * 9),
    ],
)
def test_matches_a_row_by_row_reference_with_random_gaps_and_nans(
    frequency: str,
    horizon: int,
    lag_list: tuple[int, ...],
    window_list: tuple[int, ...],
    periods: int,
) -> None:
    rng = np.random.default_rng(42)
    X = table("2008-02-25 00:00", periods, frequency=frequency)
    X["load_kw"] = rng.gamma(2.0, 0.5, len(X))
    X.loc[rng.random(len(X)) < 0.15, "load_kw"] = np.nan
    X = X.loc[rng.random(len(X)) > 0.15]
    params = {"frequency": frequency, "horizon": horizon, "lags": lag_list, "windows": window_list}
    features = lags(X, **params)
    expected = reference_features(X, frequency, horizon, lag_list, window_list)
    assert list(features.columns) == list(expected.columns)
    np.testing.assert_allclose(features.to_numpy(), expected.to_numpy(), rtol=1e-12)
    assert features.notna().any().all()  # the test data exercises every column


# --- leakage ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"horizon": 48, "lags": (1, 24, 47, 48, 168), "windows": (1, 24, 168)},
        {"frequency": "1D", "horizon": 7, "lags": (1, 3, 7, 14), "windows": (7, 14)},
        {
            "frequency": "1D",
            "horizon": 7,
            "lags": (1, 3, 7, 14),
            "windows": (7, 14),
            "week_start": "sunday",
        },
    ],
)
def test_values_at_or_after_the_origin_never_change_a_rows_features(
    params: dict[str, Any],
) -> None:
    rng = np.random.default_rng(7)
    frequency = params.get("frequency", "1h")
    X = table("2008-02-25", 24 * 14 if frequency == "1h" else 120, frequency=frequency)
    X["load_kw"] = rng.gamma(2.0, 0.5, len(X))
    baseline = lags(X, **params)
    horizon = params.get("horizon", 24)
    origins = forecast_origin(X["timestamp"], frequency, horizon, params.get("week_start"))
    assert origins.nunique() > 5
    for origin in origins.unique():
        after = X["timestamp"] >= origin
        # New values, huge values and unknown (NaN) values, mixed.
        changed = X.copy()
        changed.loc[after, "load_kw"] = rng.gamma(9.0, 9.0, after.sum())
        draw = rng.random(len(X))
        changed.loc[after & (draw < 0.4), "load_kw"] = np.nan
        changed.loc[after & (draw > 0.8), "load_kw"] = 1e6
        rows = origins == origin
        pd.testing.assert_frame_equal(lags(changed, **params)[rows], baseline[rows])


def test_features_of_a_serving_block_are_those_of_training() -> None:
    # At serving time the day to forecast has no target yet and nothing after it exists.
    training = table("2008-03-01", 24 * 12)
    serving = training.iloc[: 24 * 10].copy()
    tomorrow = serving.index[24 * 9 :]
    serving.loc[tomorrow, "load_kw"] = np.nan
    pd.testing.assert_frame_equal(lags(serving).loc[tomorrow], lags(training).loc[tomorrow])


# --- invariance ---------------------------------------------------------------------------------


def test_row_order_does_not_matter_and_output_follows_the_input_index() -> None:
    X = table("2008-03-01", 24 * 9)
    X.index = pd.Index([f"row{i}" for i in range(len(X))])
    shuffled = X.sample(frac=1.0, random_state=3)
    for transformer in (OriginLagFeatures(), CalendarFeatures()):
        expected = transformer.fit(X).transform(X)
        features = transformer.fit(shuffled).transform(shuffled)
        assert features.index.equals(shuffled.index)
        pd.testing.assert_frame_equal(features, expected.loc[shuffled.index])


def test_column_order_and_extra_columns_do_not_matter() -> None:
    X = table("2008-03-01", 24 * 9)
    other = X.assign(coverage=1.0, lag_24=-1.0, hour=99)[
        ["lag_24", "load_kw", "coverage", "hour", "timestamp"]
    ]
    for transformer in (OriginLagFeatures(), CalendarFeatures()):
        pd.testing.assert_frame_equal(
            transformer.fit(other).transform(other), transformer.fit(X).transform(X)
        )


def test_custom_column_names_and_timestamp_resolution() -> None:
    X = table("2008-03-01", 24 * 9)
    renamed = X.rename(columns={"timestamp": "period", "load_kw": "kw"})
    renamed["period"] = renamed["period"].astype("datetime64[ns]")
    features = lags(renamed, timestamp_column="period", target_column="kw")
    pd.testing.assert_frame_equal(features, lags(X))
    pd.testing.assert_frame_equal(calendar(renamed, timestamp_column="period"), calendar(X))


def test_output_is_float64_with_the_declared_columns() -> None:
    X = table("2008-03-01", 24 * 9)
    X["load_kw"] = X["load_kw"].astype("Float64")  # nullable input is accepted
    X.loc[5, "load_kw"] = pd.NA
    for transformer, columns in ((OriginLagFeatures(), LAG_COLUMNS), (CalendarFeatures(), None)):
        features = transformer.fit(X).transform(X)
        assert list(features.columns) == list(transformer.get_feature_names_out())
        assert (features.dtypes == "float64").all()
        if columns is not None:
            assert list(features.columns) == columns
    assert list(CalendarFeatures().get_feature_names_out()) == CALENDAR_COLUMNS


def test_feature_names_follow_the_parameters() -> None:
    names = OriginLagFeatures(lags=(2, 1), windows=(3,)).get_feature_names_out()
    assert isinstance(names, np.ndarray)
    assert list(names) == [
        "step",
        "lag_2",
        "lag_1",
        "last_value",
        "rolling_mean_3",
        "rolling_max_3",
    ]


def test_empty_input_gives_an_empty_frame_with_the_columns() -> None:
    X = table("2008-03-01", 0)
    assert list(lags(X).columns) == LAG_COLUMNS
    assert list(calendar(X).columns) == CALENDAR_COLUMNS
    assert len(lags(X)) == len(calendar(X)) == 0


# --- input and parameter validation -------------------------------------------------------------


def test_duplicate_timestamps_are_rejected() -> None:
    X = table("2008-03-01", 48)
    X = pd.concat([X, X.iloc[[5]]], ignore_index=True)
    with pytest.raises(ValueError, match=r"duplicate timestamps.*2008-03-01 05:00"):
        lags(X)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda X: X.drop(columns="load_kw"), "no column 'load_kw'"),
        (lambda X: X.drop(columns="timestamp"), "no column 'timestamp'"),
        (lambda X: X.assign(timestamp=X["timestamp"].astype(str)), "must be datetime64"),
        (lambda X: X.assign(timestamp=X["timestamp"].dt.tz_localize("UTC")), "naive"),
        (lambda X: X.assign(timestamp=X["timestamp"].mask(X.index == 3)), "NaT"),
        (lambda X: X.assign(timestamp=X["timestamp"] + pd.Timedelta("30min")), "not on the 1h"),
    ],
)
def test_bad_input_is_rejected(change: Any, message: str) -> None:
    X = change(table("2008-03-01", 48))
    with pytest.raises(ValueError, match=message):
        lags(X)


def test_calendar_rejects_a_missing_or_non_datetime_column() -> None:
    X = table("2008-03-01", 24)
    with pytest.raises(ValueError, match="no column 'ts'"):
        calendar(X, timestamp_column="ts")
    with pytest.raises(ValueError, match="must be datetime64"):
        calendar(X, timestamp_column="load_kw")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"horizon": 0}, "horizon must be >= 1"),
        ({"horizon": -24}, "horizon must be >= 1"),
        ({"horizon": 1.5}, "horizon must be an integer"),
        ({"horizon": True}, "horizon must be an integer"),
        ({"lags": ()}, "lags must not be empty"),
        ({"windows": ()}, "windows must not be empty"),
        ({"lags": (24, 0)}, "lags must be positive"),
        ({"lags": (-24,)}, "lags must be positive"),
        ({"windows": (0,)}, "windows must be positive"),
        ({"windows": (-1, 24)}, "windows must be positive"),
        ({"lags": (24, 24)}, "lags must not repeat"),
        ({"lags": (24.0,)}, "lags must contain integers"),
        ({"lags": 24}, "lags must be a sequence"),
        ({"frequency": "1MS"}, "not a fixed-length frequency"),
        ({"frequency": "0h"}, "must be positive"),
        ({"frequency": "hourly"}, "not a valid frequency"),
        ({"target_column": "timestamp"}, "must differ"),
        ({"timestamp_column": ""}, "non-empty column name"),
        ({"week_start": "Sunday"}, "week_start must be None or one of monday, tuesday"),
        ({"horizon": 36, "week_start": "monday"}, "anchors blocks of whole days; 36 periods"),
        ({"frequency": "7h", "week_start": "monday"}, "midnight is not on the 7h grid"),
    ],
)
def test_fit_rejects_bad_parameters(params: dict[str, Any], message: str) -> None:
    X = table("2008-03-01", 24)
    transformer = OriginLagFeatures(**params)  # the constructor only stores
    assert transformer.get_params()[next(iter(params))] == next(iter(params.values()))
    with pytest.raises(ValueError, match=message):
        transformer.fit(X)


def test_calendar_fit_rejects_bad_parameters() -> None:
    X = table("2008-03-01", 24)
    with pytest.raises(ValueError, match=r"holidays must be True \(French public holidays\)"):
        CalendarFeatures(holidays="yes").fit(X)
    with pytest.raises(ValueError, match="non-empty column name"):
        CalendarFeatures(timestamp_column=None).fit(X)


def test_forecast_origin_rejects_bad_parameters() -> None:
    timestamps = table("2008-03-01", 24)["timestamp"]
    with pytest.raises(ValueError, match="horizon must be >= 1"):
        forecast_origin(timestamps, "1h", 0)
    with pytest.raises(ValueError, match="not a fixed-length frequency"):
        forecast_origin(timestamps, "1MS", 24)
    with pytest.raises(ValueError, match="anchors blocks of whole days"):
        forecast_origin(timestamps, "1h", 36, "sunday")


def test_transform_before_fit_raises() -> None:
    X = table("2008-03-01", 24)
    for transformer in (OriginLagFeatures(), CalendarFeatures()):
        with pytest.raises(NotFittedError):
            transformer.transform(X)


# --- scikit-learn integration -------------------------------------------------------------------


def test_clone_keeps_the_parameters() -> None:
    original = OriginLagFeatures(frequency="1D", horizon=7, lags=(7, 14), windows=(7,))
    copy = clone(original)
    assert copy is not original
    assert copy.get_params() == original.get_params()
    assert clone(CalendarFeatures(holidays=False, encoding="onehot")).get_params() == {
        "encoding": "onehot",
        "holidays": False,
        "timestamp_column": "timestamp",
    }
    fitted = OriginLagFeatures().fit(table("2008-03-01", 24))
    assert not hasattr(clone(fitted), "fitted_")


def test_feature_union_and_pipeline_fit_and_predict() -> None:
    rng = np.random.default_rng(1)
    X = table("2008-01-01", 24 * 40)
    hour = X["timestamp"].dt.hour.to_numpy()
    X["load_kw"] = 1.0 + np.sin(hour / 24 * 2 * np.pi) + rng.normal(0, 0.1, len(X))
    X["coverage"] = 1.0
    X.index = X.index + 1000
    X.loc[X.index[-24:], "load_kw"] = np.nan  # tomorrow, to be forecast

    union = FeatureUnion(
        [("calendar", CalendarFeatures()), ("lags", OriginLagFeatures())]
    ).set_output(transform="pandas")
    features = union.fit_transform(X)
    assert list(features.columns) == list(union.get_feature_names_out())
    assert list(features.columns) == [f"calendar__{c}" for c in CALENDAR_COLUMNS] + [
        f"lags__{c}" for c in LAG_COLUMNS
    ]
    assert features.index.equals(X.index)

    model = Pipeline(
        [("features", clone(union)), ("model", HistGradientBoostingRegressor(max_iter=30))]
    )
    known = X["load_kw"].notna()
    # Fit on all rows so the features see the full history, with weight 0 on unknown targets.
    # One OpenMP thread: on a busy CI machine, spinning worker threads can make a tiny fit slow.
    with threadpool_limits(limits=1):
        model.fit(X, X["load_kw"].fillna(0.0), model__sample_weight=known.astype(float))
        predictions = model.predict(X)
    assert predictions.shape == (len(X),)
    assert np.isfinite(predictions).all()
    tomorrow = predictions[-24:]
    assert np.corrcoef(tomorrow, np.sin(np.arange(24) / 24 * 2 * np.pi))[0, 1] > 0.9


@pytest.mark.parametrize(
    "frequency, horizon, week_start",
    [
        ("1h", 24, None),
        ("15min", 96, None),
        ("1D", 7, None),
        ("1D", 7, "sunday"),
        ("1h", 24 * 14, "monday"),
    ],
)
def test_arrays_of_some_rows_are_those_rows_of_the_frame(
    frequency: str, horizon: int, week_start: str | None
) -> None:
    """`transform_arrays` is what `transform` runs; given `rows`, it returns those rows' features
    (the service asks for the rows it forecasts) with every row still read as history."""
    rng = np.random.default_rng(7)
    X = table("2008-02-20", 24 * 30, frequency).sample(frac=0.9, random_state=1)  # gaps, shuffled
    X.loc[X.sample(frac=0.05, random_state=2).index, "load_kw"] = np.nan
    columns = {name: X[name].to_numpy() for name in X.columns}
    rows = rng.choice(len(X), size=40, replace=False)
    transformers = [
        OriginLagFeatures(
            frequency=frequency,
            horizon=horizon,
            lags=(1, horizon),
            windows=(3,),
            week_start=week_start,
        ),
        CalendarFeatures(),
        CalendarFeatures(holidays=False),
        CalendarFeatures(encoding="onehot"),
        CalendarFeatures(encoding="onehot", holidays=False),
    ]
    for transformer in transformers:
        transformer.fit(X)
        every = transformer.transform(X).to_numpy()
        np.testing.assert_array_equal(transformer.transform_arrays(columns), every)
        np.testing.assert_array_equal(transformer.transform_arrays(columns, rows), every[rows])


def test_a_model_pickled_before_week_start_existed_keeps_its_epoch_blocks() -> None:
    X = table("2008-01-03", 42, frequency="1D")
    params = {"frequency": "1D", "horizon": 7, "lags": (1, 7), "windows": (7,)}
    old = OriginLagFeatures(**params).fit(X)
    del old.__dict__["week_start"]  # what the previous release pickled
    loaded = pickle.loads(pickle.dumps(old))
    assert loaded.week_start is None
    assert loaded.get_params()["week_start"] is None
    pd.testing.assert_frame_equal(loaded.transform(X), lags(X, **params))
    assert loaded.transform(X)["step"].iloc[0] == 1.0  # 2008-01-03, a Thursday


def test_a_model_pickled_before_the_subpackages_still_loads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Models registered before the move name `powerops.features`; they must load."""
    import pickle
    import sys

    from powerops.model import features

    old = pickle.dumps(features.CalendarFeatures(), protocol=0).replace(
        b"powerops.model.features", b"powerops.features"
    )
    monkeypatch.delitem(sys.modules, "powerops.features", raising=False)
    with pytest.raises(ModuleNotFoundError):
        pickle.loads(old)
    features.accept_old_pickles()
    assert isinstance(pickle.loads(old), features.CalendarFeatures)


def test_the_holiday_cache_stays_bounded_whatever_spans_clients_send() -> None:
    from powerops.model import features

    for first in range(1700, 2000):  # a serving client chooses the years its rows span
        features._holidays_between(first, 2007)
    assert features._holidays_between.cache_info().currsize <= 64


def test_an_explicit_holiday_list_marks_exactly_those_days() -> None:
    X = table("2007-04-08", 24 * 3)  # Easter Sunday 2007, Easter Monday, the Tuesday
    listed = CalendarFeatures(holidays=("2007-04-10",)).fit(X).transform(X)
    french = CalendarFeatures(holidays=True).fit(X).transform(X)
    off = CalendarFeatures(holidays=False).fit(X).transform(X)
    days = X["timestamp"].dt.day
    assert listed.loc[listed["is_holiday"] == 1, "hour"].size == 24
    assert (days[listed["is_holiday"] == 1] == 10).all()  # the listed Tuesday only
    assert (days[french["is_holiday"] == 1] == 9).all()  # Easter Monday, a French holiday
    assert "is_holiday" not in off
    with pytest.raises(ValueError, match=r"holidays must be ISO dates"):
        CalendarFeatures(holidays=("2007-13-01",)).fit(X)


def exogenous(frame: pd.DataFrame) -> pd.DataFrame:
    """The features `make_pipeline` adds for table.known [workday] and table.observed
    [temperature], through the FeatureUnion it builds."""
    import yaml

    from powerops.core.config import parse_params
    from powerops.model.forecasting import features_of, make_pipeline
    from tests.conftest import REPO

    data = yaml.safe_load((REPO / "params.yaml").read_text())
    data["source"]["columns"] += ["workday", "temperature"]
    data["table"] |= {"known": ["workday"], "observed": ["temperature"]}
    union = features_of(make_pipeline(parse_params(data, REPO)))
    features = union.fit(frame).transform(frame)
    return features[[c for c in features.columns if c.startswith(("known__", "observed_"))]]


def weather_table(periods: int = 24 * 14) -> pd.DataFrame:
    rng = np.random.default_rng(11)
    frame = table("2014-03-03", periods)
    frame["load_kw"] = rng.gamma(2.0, 0.5, periods)
    frame["workday"] = (frame["timestamp"].dt.dayofweek < 5).astype("float64")
    frame["temperature"] = rng.normal(15.0, 5.0, periods)
    return frame


def test_known_columns_are_read_at_the_row_and_observed_ones_as_the_target_is() -> None:
    frame = weather_table()
    features = exogenous(frame)
    history = [
        "lag_24",
        "lag_48",
        "lag_168",
        "last_value",
        "rolling_mean_24",
        "rolling_max_24",
        "rolling_mean_168",
        "rolling_max_168",
    ]
    observed = [f"observed_temperature__{name}" for name in history]
    assert list(features.columns) == ["known__workday", *observed]
    np.testing.assert_array_equal(features["known__workday"], frame["workday"])
    # The observed column's history is the target's, by the same transformer.
    as_target = frame.drop(columns="load_kw").rename(columns={"temperature": "load_kw"})
    expected = lags(as_target).drop(columns="step")
    np.testing.assert_array_equal(features[observed].to_numpy(), expected.to_numpy())


def test_observed_values_at_or_after_the_origin_never_change_a_rows_features() -> None:
    """The leakage test for exogenous columns: an observed value from the origin on never
    reaches a row's features; a known value reaches only its own row."""
    rng = np.random.default_rng(5)
    frame = weather_table()
    baseline = exogenous(frame)
    origins = forecast_origin(frame["timestamp"], "1h", 24, None)
    for origin in origins.unique()[1:]:
        after = frame["timestamp"] >= origin
        changed = frame.copy()
        changed.loc[after, "temperature"] = rng.normal(40.0, 20.0, after.sum())
        changed.loc[after & (rng.random(len(frame)) < 0.3), "temperature"] = np.nan
        rows = origins == origin
        pd.testing.assert_frame_equal(exogenous(changed)[rows], baseline[rows])
    one = frame.copy()
    one.loc[100, "workday"] = 7.0
    after_change = exogenous(one)
    same = (after_change == baseline) | (after_change.isna() & baseline.isna())
    moved = ~same.all(axis=1)
    assert moved[moved].index.tolist() == [100]


def test_known_and_stepless_arrays_of_some_rows_are_those_rows_of_the_frame() -> None:
    """The service computes features from arrays for the rows it forecasts only."""
    frame = weather_table()
    columns = {name: frame[name].to_numpy() for name in frame.columns}
    rows = np.arange(len(frame) - 24, len(frame))
    for transformer in (
        KnownFeatures(known=("workday",)).fit(frame),
        OriginLagFeatures(target_column="temperature", step=False).fit(frame),
    ):
        np.testing.assert_array_equal(
            transformer.transform_arrays(columns, rows), transformer.transform(frame).iloc[rows]
        )
    with pytest.raises(ValueError, match="known must be a non-empty list"):
        KnownFeatures().fit(frame)
    with pytest.raises(ValueError, match="X has no column 'workday'"):
        KnownFeatures(known=("workday",)).fit(frame).transform_arrays({})

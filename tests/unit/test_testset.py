"""The pinned test set's weeks and the exact training embargo, on synthetic tables with the
real data's span (2006-12-16 17:00 onwards) and the real feature transformers.

The leakage proof does not use the embargo's own reasoning: it perturbs every test-week value
of a table, recomputes the features of every row with the shipped Pipeline's transformers, and
checks that the rows the mask keeps did not change, and that every row it drops did.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from powerops.core.config import Params, load_params
from powerops.data.table import TARGET
from powerops.model import forecasting, testset, walkforward

REPO = Path(__file__).resolve().parents[2]
PARAMS = load_params(REPO / "params.yaml")
START = "2006-12-16 17:00"  # the UCI data's first hour
MONDAYS_2007 = [
    f"2007-{month:02d}-{day:02d}"
    for month, day in enumerate((8, 12, 12, 9, 14, 11, 9, 13, 10, 8, 12, 10), start=1)
]


def configured(
    frequency: str = "1h", root: Path | None = None, months: int = 12, **forecast: Any
) -> Params:
    return PARAMS.model_copy(
        update={
            "table": PARAMS.table.model_copy(update={"frequency": frequency}),
            "forecast": PARAMS.forecast.model_copy(update=forecast),
            "test_set": PARAMS.test_set.model_copy(update={"months": months}),
            "root": root or PARAMS.root,
        }
    )


def table(frequency: str, end: str, start: str = START) -> pd.DataFrame:
    """A complete table with positive random loads (none missing), timestamps in microseconds."""
    timestamps = pd.Series(pd.date_range(start, end, freq=frequency, unit="us"))
    if frequency == "1D":
        timestamps = timestamps.dt.normalize()
    loads = np.random.default_rng(3).gamma(2.0, 0.5, len(timestamps))
    return pd.DataFrame({"timestamp": timestamps, TARGET: loads, "coverage": 1.0})


def manifest_for(frame: pd.DataFrame, params: Params) -> testset.TestSetManifest:
    weeks = testset.test_weeks(frame, 12, 2, params.forecast.test_week_start)
    return testset.TestSetManifest(
        version=1,
        sha256="",
        weeks=[f"{week:%Y-%m-%d}" for week in weeks],
        target_rows=0,
        lookback=params.forecast.lookback,
        frequency=params.table.frequency,
        design="",
        created_at="",
    )


def features(frame: pd.DataFrame, params: Params) -> pd.DataFrame:
    """Every feature of every row, as the shipped Pipeline computes them."""
    transformers = forecasting.make_pipeline(params)[:-1]
    computed: pd.DataFrame = transformers.fit(frame).transform(frame)
    return computed


# --- which weeks -------------------------------------------------------------------------------


def test_default_weeks_are_the_second_mondays_of_the_first_twelve_full_months() -> None:
    frame = table("1h", "2008-01-31")
    assert [f"{week:%Y-%m-%d}" for week in testset.test_weeks(frame, 12, 2)] == MONDAYS_2007
    assert manifest_for(frame, PARAMS).weeks == MONDAYS_2007


@pytest.mark.parametrize(("week_start", "weekday"), [("sunday", 6), ("thursday", 3)])
def test_week_start_makes_test_weeks_start_on_its_nth_occurrence(
    week_start: str, weekday: int
) -> None:
    weeks = testset.test_weeks(table("1h", "2008-01-31"), 12, 2, week_start)
    assert [week.day_of_week for week in weeks] == [weekday] * 12
    # The second such day of each month: 8 to 14 days into it.
    assert [week.month for week in weeks] == list(range(1, 13))
    assert all(8 <= week.day <= 14 for week in weeks)


def test_the_default_test_set_is_the_weeks_with_168_hours_of_history_before_each() -> None:
    frame = table("1h", "2008-01-31")
    built, weeks = testset.build(frame, PARAMS)
    expected = pd.Series(False, index=frame.index)
    for week in weeks:
        expected |= frame["timestamp"].between(
            week - pd.Timedelta(hours=168), week + pd.Timedelta(days=7), inclusive="left"
        )
    pd.testing.assert_frame_equal(
        built.drop(columns="role"), frame[expected].reset_index(drop=True)
    )
    assert (built["role"] == "target").sum() == 12 * 7 * 24
    assert testset._design(PARAMS) == (
        "one Monday-to-Sunday week from each of the first 12 full calendar months, "
        "starting on Monday #2 of the month"
    )


def test_epoch_blocks_store_history_from_the_origin_of_the_weeks_first_day() -> None:
    # 7-day blocks floored on the epoch start on Thursdays: a Monday test week's first four
    # days forecast from the Thursday before it, and their windows read 28 days before that.
    frame = table("1D", "2006-12-31", start="2006-09-02")
    forecast: dict[str, Any] = {"horizon": 7, "lags": (7, 14), "windows": (7, 28)}
    built, weeks = testset.build(frame, configured("1D", months=1, **forecast))
    assert weeks == [pd.Timestamp("2006-10-09")]
    assert built["timestamp"].min() == pd.Timestamp("2006-10-05") - pd.Timedelta(days=28)
    assert (built["role"] == "target").sum() == 7
    # Blocks from the week's first day: the history is the 28 days before it.
    sunday = configured("1D", months=1, week_start="sunday", **forecast)
    built, weeks = testset.build(frame, sunday)
    assert weeks == [pd.Timestamp("2006-10-08")]
    assert built["timestamp"].min() == weeks[0] - pd.Timedelta(days=28)
    assert testset._design(sunday) == (
        "one Sunday-to-Saturday week from each of the first 1 full calendar months, "
        "starting on Sunday #2 of the month"
    )


def test_a_pinned_test_set_of_other_weekdays_is_refused(tmp_path: Path) -> None:
    frame = table("1h", "2008-01-31")
    params = configured(root=tmp_path)
    testset.pin(frame, params, created_at="2026-12-02T00:00:00+00:00")
    assert testset.load(configured(root=tmp_path, week_start="monday"))[1].weeks == MONDAYS_2007
    with pytest.raises(testset.TestSetError, match=r"weeks start on monday; forecast\.week_start"):
        testset.load(configured(root=tmp_path, week_start="sunday"))


# --- the exact embargo -------------------------------------------------------------------------

CONFIGURATIONS = {
    "hourly day-ahead (shipped)": ("1h", {}),
    "hourly 48 h, short lags": (
        "1h",
        {"horizon": 48, "lags": (1, 24, 47, 48, 168), "windows": (1, 24, 168)},
    ),
    "daily 7 days on the epoch": ("1D", {"horizon": 7, "lags": (7, 14), "windows": (7, 28)}),
    "daily 7 days from Sundays, a yearly lag": (
        "1D",
        {"horizon": 7, "lags": (1, 7, 14, 364), "windows": (7, 14), "week_start": "sunday"},
    ),
    "daily day-ahead": ("1D", {"horizon": 1, "lags": (1, 7), "windows": (7,)}),
    # Blocks longer than a week: a lag into a test week inside the row's own block is masked,
    # so the rows after a test week that fills a block's first half read nothing of it.
    "daily 14 days from Mondays": (
        "1D",
        {"horizon": 14, "lags": (1, 7, 14), "windows": (7,), "week_start": "monday"},
    ),
}


@pytest.mark.parametrize("name", CONFIGURATIONS)
def test_kept_rows_read_no_test_value_and_dropped_rows_read_one(name: str) -> None:
    frequency, forecast = CONFIGURATIONS[name]
    params = configured(frequency, **forecast)
    frame = table(frequency, "2008-03-31" if frequency == "1h" else "2008-11-30")
    manifest = manifest_for(frame, params)
    kept = testset.training_mask(frame["timestamp"], manifest, params)
    in_test = testset.week_mask(frame["timestamp"], [pd.Timestamp(w) for w in manifest.weeks])
    assert kept.index.equals(frame.index)
    assert not (kept & in_test).any()

    before = features(frame, params)
    rng = np.random.default_rng(11)
    huge = frame.copy()
    huge.loc[in_test, TARGET] = 1e6 + rng.random(int(in_test.sum()))
    unknown = frame.copy()
    unknown.loc[in_test, TARGET] = np.nan
    after_huge, after_unknown = features(huge, params), features(unknown, params)
    # No kept row's features move, whatever the test values are (and its target is no test value).
    pd.testing.assert_frame_equal(after_huge[kept], before[kept])
    pd.testing.assert_frame_equal(after_unknown[kept], before[kept])
    # Exact: every dropped row outside the test weeks reads a test value.
    moved = ((after_huge != before) & ~(after_huge.isna() & before.isna())).any(axis=1)
    dropped = ~kept & ~in_test
    assert dropped.any()
    assert moved[dropped].all(), frame.loc[dropped & ~moved, "timestamp"].head().tolist()
    assert not moved[kept].any()
    testset.assert_no_overlap(frame.loc[kept, "timestamp"], manifest, params)


def test_hourly_day_ahead_drops_each_test_week_and_the_seven_days_after_it() -> None:
    # lag 168 and the 168-hour window read a test week for exactly the 7 days after it; the
    # old blanket embargo (lookback + horizon = 192 hours after) dropped 8.
    frame = table("1h", "2008-03-31")
    manifest = manifest_for(frame, PARAMS)
    kept = testset.training_mask(frame["timestamp"], manifest, PARAMS)
    weeks = [pd.Timestamp(week) for week in manifest.weeks]
    pd.testing.assert_series_equal(
        kept, ~testset.week_mask(frame["timestamp"], weeks, after="7D"), check_names=False
    )
    first_year = frame["timestamp"] < "2008-01-01"
    assert int(first_year.sum()) == 9127
    assert int((kept & first_year).sum()) == 9127 - 12 * 14 * 24  # the old rule kept 4,807


def test_daily_weeks_from_monday_keep_every_row_that_reads_no_test_week() -> None:
    params = configured("1D", horizon=7, lags=(7, 14), windows=(7, 14), week_start="monday")
    frame = table("1D", "2008-11-30")
    manifest = manifest_for(frame, params)
    kept = testset.training_mask(frame["timestamp"], manifest, params)
    weeks = [pd.Timestamp(week) for week in manifest.weeks]
    # Blocks are the test weeks' own Monday-to-Sunday weeks: lag 14 and the 14-day window
    # reach two weeks after each test week, no further.
    expected = ~testset.week_mask(frame["timestamp"], weeks, after="14D")
    pd.testing.assert_series_equal(kept, expected, check_names=False)
    first_year = frame["timestamp"] < "2008-01-01"
    # 381 days before 2008, 84 of them tested: 129 train (the blanket embargo left 51).
    assert (int(first_year.sum()), int((kept & first_year).sum())) == (381, 129)


def test_blanking_test_values_keeps_the_daily_first_year_and_learns_nothing_from_them() -> None:
    # The daily configuration: Sunday weeks, a 28-day window. The exact row embargo
    # keeps 29 of 381 first-year rows (each monthly test week is read for the 35 days after it
    # starts); blanking the test values keeps every first-year row outside the test weeks.
    params = configured(
        "1D", horizon=7, lags=(7, 14), windows=(7, 28), week_start="sunday", holidays=False
    )
    train = params.train.model_copy(
        update={"estimator_params": {"max_iter": 30, "random_state": 0}}
    )
    params = params.model_copy(update={"train": train})
    frame = table("1D", "2008-11-30")
    manifest = manifest_for(frame, params)
    in_test = testset.week_mask(frame["timestamp"], [pd.Timestamp(w) for w in manifest.weeks])
    first_year = frame["timestamp"] < "2008-01-01"
    _, by_rows = testset.training_view(frame, manifest, params)
    blank = params.model_copy(
        update={"test_set": params.test_set.model_copy(update={"embargo": "values"})}
    )
    history, rows = testset.training_view(frame, manifest, blank)
    assert int((by_rows & first_year).sum()) == 29
    assert int((rows & first_year).sum()) == int(first_year.sum()) - 84 == 297
    pd.testing.assert_series_equal(rows, ~in_test, check_names=False)
    assert history.loc[in_test, TARGET].isna().all()
    assert history.loc[~in_test, TARGET].equals(frame.loc[~in_test, TARGET])

    # Leak-free through the real fit: whatever the test values are, the fitted model is the
    # same (a row after a test week reads a missing period there, never the value).
    huge = frame.copy()
    huge.loc[in_test, TARGET] = 1e6 + np.random.default_rng(5).random(int(in_test.sum()))
    fitted = []
    for source in (frame, huge):
        history, rows = testset.training_view(source, manifest, blank)
        fitted.append(forecasting.fit(forecasting.make_pipeline(blank), history, rows))
    np.testing.assert_array_equal(fitted[0].predict(frame), fitted[1].predict(frame))
    # ... while the same fit on the unblanked table learns from them (the test can fail).
    leaky = forecasting.fit(forecasting.make_pipeline(blank), huge, ~in_test)
    assert not np.array_equal(fitted[0].predict(frame), leaky.predict(frame))


def test_too_few_rows_to_train_names_the_settings_that_decide_it() -> None:
    from powerops.model import training

    params = configured("1D", horizon=7, lags=(7, 14), windows=(7, 28), week_start="sunday")
    frame = table("1D", "2007-12-31")  # the first year alone
    manifest = manifest_for(frame, params)
    history, rows = testset.training_view(frame, manifest, params)
    with pytest.raises(training.TableCheckError) as error:
        training._check_enough_rows(params, "household_power@13", frame, history, rows)
    message = str(error.value)
    assert message.startswith("household_power@13: only 29 of its 380 rows may train"), message
    assert "remove 351" in message and "train.first_version, now 13" in message
    assert message.endswith("or set test_set.embargo: values")
    blank = params.model_copy(
        update={"test_set": params.test_set.model_copy(update={"embargo": "values"})}
    )
    history, rows = testset.training_view(frame, manifest, blank)
    training._check_enough_rows(blank, "household_power@13", frame, history, rows)  # 297 rows


def test_assert_no_overlap_names_a_row_that_reads_a_test_week_through_a_lag_only() -> None:
    params = configured("1D", horizon=1, lags=(364,), windows=(1,))
    frame = table("1D", "2008-11-30")
    manifest = manifest_for(frame, params)
    kept = testset.training_mask(frame["timestamp"], manifest, params)
    a_year_later = pd.Timestamp(manifest.weeks[3]) + pd.Timedelta(days=364 + 2)
    assert not kept[frame["timestamp"] == a_year_later].any()
    assert kept[frame["timestamp"] == a_year_later + pd.Timedelta(days=7)].all()
    testset.assert_no_overlap(frame.loc[kept, "timestamp"], manifest, params)
    with pytest.raises(testset.TestSetError, match="training row 2008-04-09 00:00:00 overlaps"):
        testset.assert_no_overlap(pd.Series([a_year_later]), manifest, params)


# --- the same anchor for the baselines and the backtest -----------------------------------------


def test_baselines_backtest_and_pipeline_all_use_the_configured_week_start() -> None:
    params = configured("1D", horizon=7, lags=(7, 14), windows=(7, 28), week_start="sunday")
    params = params.model_copy(
        update={"train": params.train.model_copy(update={"estimator_params": {"max_iter": 20}})}
    )
    frame = table("1D", "2008-11-30")
    timestamps = frame["timestamp"]
    sunday_step = (timestamps.dt.day_of_week + 1) % 7 + 1  # Sunday 1 .. Saturday 7
    steps = features(frame, params)["history__step"]
    pd.testing.assert_series_equal(steps, sunday_step.astype("float64"), check_names=False)

    # Persistence: the last day known at the origin, the Saturday before the row's week.
    persistence = forecasting.baselines(frame, params)["persistence"]
    saturday = timestamps - pd.to_timedelta(sunday_step, unit="D")
    known = saturday >= timestamps.min()
    expected = frame.set_index("timestamp")[TARGET].reindex(saturday[known]).to_numpy()
    np.testing.assert_array_equal(persistence[known].to_numpy(), expected)

    manifest = manifest_for(frame, params)
    rows = testset.training_mask(timestamps, manifest, params)
    with forecasting.compute_threads(params):
        walked = walkforward.last_months(frame, rows, params)
    # Training's backtest of October and November 2008 (the table ends on Saturday the 29th)
    # forecasts from the Sundays: 8 whole weeks, from 2008-10-05 to 2008-11-23.
    assert (walked.start, walked.end) == ("2008-10-05 00:00", "2008-11-23 00:00")
    scored = walked.forecasts["timestamp"]
    counts = sunday_step[timestamps.isin(scored)].value_counts().sort_index()
    assert walked.steps["step"].tolist() == counts.index.tolist() == list(range(1, 8))
    assert walked.steps["rows"].tolist() == counts.tolist() == [8] * 7

"""The pinned test set: created once, frozen, its hash asserted before every evaluation.

Design: one whole week (Monday to Sunday) from each of the first `test_set.months` full
calendar months of the data, the week starting on the month's `test_set.monday`-th Monday.
For the UCI data that is twelve weeks of 2007, one per month: every season, every weekday,
and some public holidays, in 2,016 hourly rows. Each week is stored with the `lookback`
periods of history its features need, so an evaluation reads nothing but this artifact. With
`forecast.week_start` set, weeks start on that day instead (its n-th occurrence in the month).

Training never sees a test value, in two ways (`test_set.embargo`):

- `rows` (the default), an exact embargo: a row is dropped when it is in a test week, when one
  of its lags reads a test value (a lag is read only when it reaches before the row's forecast
  origin), or when its windows (the `max(windows)` periods before the origin, the last value
  among them) overlap a test week. Everything else trains, so a test week costs the rows after
  it that read it and no more: for hourly day-ahead, the 7 days after each test week.
- `values`: the test values are blanked in the history training's features are computed
  from, so the rows after a test week read a missing period there and still train. Only the
  test weeks' rows are dropped: with monthly test weeks and a 28-day window, a daily
  configuration keeps its first year, which `rows` would drop almost whole.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from powerops.core.config import WEEKDAYS, Params
from powerops.core.errors import PowerOpsError
from powerops.core.storage import atomic_write_text, parquet_bytes, sha256_bytes, sha256_file
from powerops.data.table import exogenous_columns

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd

TEST_SET_FILE = "pinned_test_set.parquet"
MANIFEST_FILE = "pinned_test_set.json"


class TestSetError(PowerOpsError):
    """The pinned test set is missing, changed, or cannot be built from the data yet."""

    __test__ = False  # not a pytest test class


@dataclass(frozen=True)
class TestSetManifest:
    """What the pinned test set is: its hash, weeks, design and the lookback it stores."""

    __test__ = False

    version: int
    sha256: str
    weeks: list[str]  # the first day of each test week (a Monday by default), ISO dates
    target_rows: int
    lookback: int
    frequency: str
    design: str
    created_at: str
    replaced_reason: str = ""


def test_weeks(
    table: pd.DataFrame, months: int, monday: int, week_start: str = "monday"
) -> list[pd.Timestamp]:
    """00:00 of the first day of each test week: the n-th `week_start` day (by default the
    n-th Monday) of each of the first full months."""
    import pandas as pd

    first = table["timestamp"].min()
    month = pd.Timestamp(first.year, first.month, 1)
    if first > month:  # the data starts mid-month: the first full month is the next one
        month += pd.DateOffset(months=1)
    weekday = WEEKDAYS.index(week_start)
    weeks = []
    for offset in range(months):
        month_start = month + pd.DateOffset(months=offset)
        first_day = month_start + pd.Timedelta(days=(weekday - month_start.day_of_week) % 7)
        weeks.append(first_day + pd.Timedelta(weeks=monday - 1))
    return weeks


def week_mask(
    timestamps: pd.Series, weeks: list[pd.Timestamp], before: str = "0h", after: str = "0h"
) -> pd.Series:
    """True for timestamps inside any week, widened by `before` and `after`."""
    import pandas as pd

    mask = pd.Series(False, index=timestamps.index)
    for week in weeks:
        start = week - pd.Timedelta(before)
        end = week + pd.Timedelta(days=7) + pd.Timedelta(after)
        mask |= (timestamps >= start) & (timestamps < end)
    return mask


def build(table: pd.DataFrame, params: Params) -> tuple[pd.DataFrame, list[pd.Timestamp]]:
    """The test-set frame: test weeks (`role` target) plus the history they need (`history`)."""
    import pandas as pd

    weeks = test_weeks(
        table, params.test_set.months, params.test_set.monday, params.forecast.test_week_start
    )
    last_needed = weeks[-1] + pd.Timedelta(days=7) - pd.Timedelta(params.table.frequency)
    if table["timestamp"].max() < last_needed:
        raise TestSetError(
            f"the pinned test set needs data through {last_needed:%Y-%m-%d %H:%M} "
            f"(the weeks of {weeks[0]:%Y-%m} to {weeks[-1]:%Y-%m}); the dataset ends at "
            f"{table['timestamp'].max():%Y-%m-%d %H:%M}"
        )
    timestamps = table["timestamp"]
    target = week_mask(timestamps, weeks)
    wanted = target.copy()
    for week, first in zip(weeks, _history_starts(weeks, params), strict=True):
        wanted |= (timestamps >= first) & (timestamps < week)
    frame = table.loc[wanted].copy()
    frame["role"] = target[wanted].map({True: "target", False: "history"}).astype("str")
    return frame.reset_index(drop=True), weeks


def _history_starts(weeks: list[pd.Timestamp], params: Params) -> list[pd.Timestamp]:
    """Where each week's stored history starts: `lookback` periods before the origin of the
    week's first row. That origin is the week's start, unless blocks do not start on the
    week's first day (7-day blocks floored on the epoch start on Thursdays)."""
    import pandas as pd

    from powerops.model.features import forecast_origin

    frequency, forecast = params.table.frequency, params.forecast
    origins = forecast_origin(pd.Series(weeks), frequency, forecast.horizon, forecast.week_start)
    lookback = pd.Timedelta(frequency) * forecast.lookback
    return [origin - lookback for origin in origins]


def paths(params: Params) -> tuple[Path, Path]:
    return params.test_set_dir / TEST_SET_FILE, params.test_set_dir / MANIFEST_FILE


def load_manifest(params: Params) -> TestSetManifest | None:
    _, manifest_path = paths(params)
    if not manifest_path.is_file():
        return None
    return TestSetManifest(**json.loads(manifest_path.read_text()))


def pin(
    table: pd.DataFrame, params: Params, created_at: str, reason: str = "", replace: bool = False
) -> TestSetManifest:
    """Create the pinned test set once; with `replace`, deliberately make a new version."""
    from powerops.core.storage import atomic_path

    data_path, manifest_path = paths(params)
    existing = load_manifest(params)
    if existing is not None and not replace:
        return existing
    frame, weeks = build(table, params)
    data = parquet_bytes(frame)
    manifest = TestSetManifest(
        version=(existing.version + 1) if existing else 1,
        sha256=sha256_bytes(data),
        weeks=[f"{week:%Y-%m-%d}" for week in weeks],
        target_rows=int((frame["role"] == "target").sum()),
        lookback=params.forecast.lookback,
        frequency=params.table.frequency,
        design=_design(params),
        created_at=created_at,
        replaced_reason=reason,
    )
    with atomic_path(data_path) as tmp:
        tmp.write_bytes(data)
    atomic_write_text(manifest_path, json.dumps(asdict(manifest), indent=2))
    return manifest


def _design(params: Params) -> str:
    start = WEEKDAYS.index(params.forecast.test_week_start)
    first, last = WEEKDAYS[start].capitalize(), WEEKDAYS[(start + 6) % 7].capitalize()
    return (
        f"one {first}-to-{last} week from each of the first {params.test_set.months} full "
        f"calendar months, starting on {first} #{params.test_set.monday} of the month"
    )


def load(params: Params) -> tuple[pd.DataFrame, TestSetManifest]:
    """Read the pinned test set, asserting its hash and that it still fits the features."""
    import pandas as pd

    data_path, _ = paths(params)
    manifest = load_manifest(params)
    if manifest is None or not data_path.is_file():
        raise TestSetError(
            f"no pinned test set in {params.test_set_dir}: run `powerops testset pin`"
        )
    digest = sha256_file(data_path)
    if digest != manifest.sha256:
        raise TestSetError(
            f"{data_path} changed: sha256 {digest[:12]}, pinned {manifest.sha256[:12]}; restore it "
            "(`dvc checkout`) or replace it deliberately (`powerops testset replace`)"
        )
    if manifest.lookback < params.forecast.lookback or manifest.frequency != params.table.frequency:
        raise TestSetError(
            f"the pinned test set stores {manifest.lookback} periods of {manifest.frequency} "
            "history; "
            f"the features now need {params.forecast.lookback} of {params.table.frequency}: "
            "replace it deliberately (`powerops testset replace --reason ...`)"
        )
    starts = {WEEKDAYS[pd.Timestamp(week).day_of_week] for week in manifest.weeks}
    if starts != {params.forecast.test_week_start}:
        raise TestSetError(
            f"the pinned test set's weeks start on {', '.join(sorted(starts))}; forecast."
            f"week_start makes weeks start on {params.forecast.test_week_start}: replace it "
            "deliberately (`powerops testset replace --reason ...`)"
        )
    frame = pd.read_parquet(data_path)
    if missing := [name for name in exogenous_columns(params) if name not in frame.columns]:
        raise TestSetError(
            f"the pinned test set has no column {', '.join(missing)} (table.known, "
            "table.observed: added after it was pinned): replace it deliberately "
            "(`powerops testset replace --reason ...`)"
        )
    return frame, manifest


def training_view(
    table: pd.DataFrame, manifest: TestSetManifest, params: Params
) -> tuple[pd.DataFrame, pd.Series]:
    """The history training computes features from, and the rows it fits on.

    `test_set.embargo: rows`: the table itself, and the rows the exact embargo keeps
    (`training_mask`). `values`: the table with every test-week value blanked (NaN, a
    missing period to the lags and windows), and every row outside the test weeks: no
    training row reads a test value, and none is dropped for reading one.
    """
    import pandas as pd

    from powerops.data.table import TARGET

    if params.test_set.embargo == "rows":
        rows = training_mask(table["timestamp"], manifest, params)
        assert_no_overlap(table.loc[rows, "timestamp"], manifest, params)
        return table, rows
    times = table["timestamp"].to_numpy(dtype="datetime64[ns]").view("int64")
    starts, ends = _week_bounds(manifest)
    in_test = pd.Series(_in_weeks(times, starts, ends), index=table.index)
    history = table.assign(**{TARGET: table[TARGET].mask(in_test)})
    return history, ~in_test


def training_mask(timestamps: pd.Series, manifest: TestSetManifest, params: Params) -> pd.Series:
    """True for rows training may use: not in a test week, and reading no test value through
    their features (exactly what they read, see the module's docstring)."""
    import pandas as pd

    return pd.Series(~_reads_test_weeks(timestamps, manifest, params), index=timestamps.index)


def assert_no_overlap(
    train_timestamps: pd.Series, manifest: TestSetManifest, params: Params
) -> None:
    """Fail if any training row is a test row or reads one through its lags or windows."""
    import pandas as pd

    touching = _reads_test_weeks(train_timestamps, manifest, params)
    if touching.any():
        first = pd.Timestamp(train_timestamps.to_numpy()[touching.argmax()])
        raise TestSetError(
            f"training row {first} overlaps the pinned test set (directly or through the "
            f"lags {list(params.forecast.lags)} or windows {list(params.forecast.windows)} "
            "its features read)"
        )


def _reads_test_weeks(
    timestamps: pd.Series, manifest: TestSetManifest, params: Params
) -> npt.NDArray[np.bool_]:
    """For each timestamp: is the row in a test week, or does one of its features read one?"""
    import numpy as np

    from powerops.model.features import OriginLagFeatures

    forecast = params.forecast
    features = OriginLagFeatures(
        frequency=params.table.frequency,
        horizon=forecast.horizon,
        lags=forecast.lags,
        windows=forecast.windows,
        week_start=forecast.week_start,
    )
    times = timestamps.to_numpy(dtype="datetime64[ns]")
    reads = features.history_reads(times)
    starts, ends = _week_bounds(manifest)
    touching = _in_weeks(times.view(np.int64), starts, ends)
    for lag in reads.lags.T:
        touching |= _in_weeks(lag, starts, ends)
    # The windows read [first, origin): they overlap a week [s, e) when s < origin and
    # first < e. Weeks are sorted and disjoint, so the last week starting before the origin
    # has the latest end of all candidates: checking it alone is exact. Likewise for a time.
    last = np.searchsorted(starts, reads.origin, side="left") - 1
    touching |= (last >= 0) & (reads.first < ends[np.clip(last, 0, None)])
    return touching


def _week_bounds(
    manifest: TestSetManifest,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The test weeks' starts and ends, sorted, as int64 nanoseconds since 1970."""
    import numpy as np
    import pandas as pd

    weeks = np.sort(np.array([pd.Timestamp(week) for week in manifest.weeks], "datetime64[ns]"))
    starts = weeks.view(np.int64)
    return starts, starts + pd.Timedelta(days=7).value


def _in_weeks(
    times: npt.NDArray[np.int64], starts: npt.NDArray[np.int64], ends: npt.NDArray[np.int64]
) -> npt.NDArray[np.bool_]:
    """For each time (int64 nanoseconds): does it fall in one of the sorted, disjoint weeks?"""
    import numpy as np

    last = np.searchsorted(starts, times, side="right") - 1
    inside: npt.NDArray[np.bool_] = (last >= 0) & (times < ends[np.clip(last, 0, None)])
    return inside

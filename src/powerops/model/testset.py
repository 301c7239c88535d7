"""The pinned test set: created once, frozen, its hash asserted before every evaluation.

Design: one whole week (Monday to Sunday) from each of the first `test_set.months` full
calendar months of the data, the week starting on the month's `test_set.monday`-th Monday.
For the UCI data that is twelve weeks of 2007, one per month: every season, every weekday,
and some public holidays, in 2,016 hourly rows. Each week is stored with the `lookback`
periods of history its features need, so an evaluation reads nothing but this artifact.

Training never sees a test week, nor any row whose features could read one: rows from the
start of a test week up to `lookback + horizon` periods after its end are embargoed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from powerops.core.config import Params
from powerops.core.errors import PowerOpsError
from powerops.core.storage import atomic_write_text, parquet_bytes, sha256_bytes, sha256_file

if TYPE_CHECKING:
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
    weeks: list[str]  # Monday of each test week, ISO dates
    target_rows: int
    lookback: int
    frequency: str
    design: str
    created_at: str
    replaced_reason: str = ""


def test_weeks(table: pd.DataFrame, months: int, monday: int) -> list[pd.Timestamp]:
    """Monday 00:00 of each test week: the n-th Monday of each of the first full months."""
    import pandas as pd

    first = table["timestamp"].min()
    month = pd.Timestamp(first.year, first.month, 1)
    if first > month:  # the data starts mid-month: the first full month is the next one
        month += pd.DateOffset(months=1)
    weeks = []
    for offset in range(months):
        month_start = month + pd.DateOffset(months=offset)
        first_monday = month_start + pd.Timedelta(days=(7 - month_start.day_of_week) % 7)
        weeks.append(first_monday + pd.Timedelta(weeks=monday - 1))
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

    weeks = test_weeks(table, params.test_set.months, params.test_set.monday)
    last_needed = weeks[-1] + pd.Timedelta(days=7) - pd.Timedelta(params.table.frequency)
    if table["timestamp"].max() < last_needed:
        raise TestSetError(
            f"the pinned test set needs data through {last_needed:%Y-%m-%d %H:%M} "
            f"(the weeks of {weeks[0]:%Y-%m} to {weeks[-1]:%Y-%m}); the dataset ends at "
            f"{table['timestamp'].max():%Y-%m-%d %H:%M}"
        )
    lookback = pd.Timedelta(params.table.frequency) * params.forecast.lookback
    target = week_mask(table["timestamp"], weeks)
    wanted = week_mask(table["timestamp"], weeks, before=str(lookback))
    frame = table.loc[wanted].copy()
    frame["role"] = target[wanted].map({True: "target", False: "history"}).astype("str")
    return frame.reset_index(drop=True), weeks


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
        design=(
            f"one Monday-to-Sunday week from each of the first {params.test_set.months} full "
            f"calendar months, starting on Monday #{params.test_set.monday} of the month"
        ),
        created_at=created_at,
        replaced_reason=reason,
    )
    with atomic_path(data_path) as tmp:
        tmp.write_bytes(data)
    atomic_write_text(manifest_path, json.dumps(asdict(manifest), indent=2))
    return manifest


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
    return pd.read_parquet(data_path), manifest


def training_mask(timestamps: pd.Series, manifest: TestSetManifest, params: Params) -> pd.Series:
    """True for rows training may use: no test week, and no features that could read one."""
    import pandas as pd

    weeks = [pd.Timestamp(week) for week in manifest.weeks]
    reach = pd.Timedelta(params.table.frequency) * (
        params.forecast.lookback + params.forecast.horizon
    )
    return ~week_mask(timestamps, weeks, after=str(reach))


def assert_no_overlap(
    train_timestamps: pd.Series, manifest: TestSetManifest, params: Params
) -> None:
    """Fail if any training row is a test row or could read one through its feature windows."""
    import numpy as np
    import pandas as pd

    step = pd.Timedelta(params.table.frequency)
    reach = step * (params.forecast.lookback + params.forecast.horizon)
    starts = np.array([pd.Timestamp(week) for week in manifest.weeks], dtype="datetime64[us]")
    ends = starts + np.timedelta64(7, "D")
    t = train_timestamps.to_numpy(dtype="datetime64[us]")
    # A row at t reads back to t - reach at most: it touches week [s, e) if s <= t and
    # t - reach < e. Weeks are sorted and disjoint, so the last week starting at or before t
    # has the latest end of all candidates: checking it alone is exact.
    index = np.searchsorted(starts, t, side="right") - 1
    valid = index >= 0
    touching = valid & (t - reach.to_timedelta64() < ends[np.clip(index, 0, None)])
    if touching.any():
        first = pd.Timestamp(t[touching.argmax()])
        raise TestSetError(
            f"training row {first} overlaps the pinned test set (directly or "
            f"through its {params.forecast.lookback}-period feature window)"
        )

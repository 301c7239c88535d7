"""Daylight saving in local-time meters: the clock changes inside a batch, named by the hour.

A meter that writes wall-clock time in a zone with daylight saving cannot be right at a clock
change: the spring hour that did not happen should hold no readings, and the autumn hour that
happened twice is either written twice (duplicate timestamps) or once (one pass lost or
merged; a meter that sums energy writes two hours' worth). powerops does not guess a repair;
with `source.timezone` set, validation finds each change in the batch's month and says which
hour and what it holds. `source.dst` decides: `flag` (a warning alert and a note in the verdict)
or `quarantine` (the batch fails validation). Without a time zone nothing is checked: the
timestamps are taken as a clock without daylight saving (the UCI and Victoria data are).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from powerops.core.config import Params
    from powerops.core.months import Month


@dataclass(frozen=True)
class ClockChange:
    """One clock change as naive wall-clock times: [start, end) did not happen (`forward`)
    or happened twice (`back`)."""

    kind: str  # forward | back
    start: datetime
    end: datetime

    def __str__(self) -> str:
        what = "did not happen" if self.kind == "forward" else "happened twice"
        went = "forward" if self.kind == "forward" else "back"
        return f"{self.start:%Y-%m-%d %H:%M}-{self.end:%H:%M} {what} (clocks went {went})"


def clock_changes(month: Month, zone: str) -> list[ClockChange]:
    """The clock changes of `zone` whose wall-clock interval starts in `month`."""
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(zone)
    utc = ZoneInfo("UTC")
    instant = month.start.replace(tzinfo=utc) - timedelta(days=1)
    stop = month.end.replace(tzinfo=utc) + timedelta(days=1)
    changes = []
    before = instant.astimezone(tz).utcoffset()
    while instant < stop:
        instant += timedelta(minutes=15)  # every zone changes on a quarter hour
        after = instant.astimezone(tz).utcoffset()
        if before is not None and after is not None and after != before:
            naive = instant.replace(tzinfo=None)
            low, high = sorted((naive + before, naive + after))
            change = ClockChange("forward" if after > before else "back", low, high)
            if month.start <= change.start < month.end:
                changes.append(change)
        before = after
    return changes


def findings(frame: pd.DataFrame, params: Params, month: Month) -> list[str]:
    """What the batch's readings hold at each clock change of its month, in words."""
    import pandas as pd

    zone = params.source.timezone
    if zone is None:
        return []
    stamp = frame[params.source.timestamp_column]
    target = params.table.target_column
    per_pass = pd.Timedelta(hours=1) / pd.Timedelta(params.source.frequency)
    found = []
    for change in clock_changes(month, zone):
        inside = (stamp >= change.start) & (stamp < change.end)
        held = int(inside.sum())
        if change.kind == "forward" and held == 0:
            continue  # a meter that follows the clock wrote nothing: right
        around = (
            (stamp >= change.start - timedelta(hours=1))
            & (stamp < change.end + timedelta(hours=1))
            & ~inside
        )
        level = (
            f"; {target} {frame.loc[inside, target].mean():.4g} inside against "
            f"{frame.loc[around, target].mean():.4g} in the hours around it"
            if held
            else ""
        )
        repeated = int(stamp[inside].duplicated().sum())
        passes = f", {repeated} timestamps written twice" if repeated else ""
        found.append(
            f"{change} in {zone}: {held} readings ({held / per_pass:.1f} hours' worth)"
            f"{passes}{level}"
        )
    return found

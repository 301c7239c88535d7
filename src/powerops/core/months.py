"""Calendar months, the unit in which the source feed delivers data."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

from powerops.core.errors import UsageError

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


class MonthError(UsageError, ValueError):
    """A month string is malformed or outside the range the source covers."""


@dataclass(frozen=True, order=True)
class Month:
    """One calendar month, e.g. `Month(2008, 3)`, written `2008-03`."""

    year: int
    month: int

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def start(self) -> datetime:
        """First instant of the month (inclusive)."""
        return datetime(self.year, self.month, 1)

    @property
    def end(self) -> datetime:
        """First instant of the next month (exclusive)."""
        return self.next().start

    def next(self) -> Month:
        return Month(self.year + self.month // 12, self.month % 12 + 1)

    def range_to(self, last: Month) -> list[Month]:
        """Every month from this one through `last`, inclusive."""
        months = []
        current = self
        while current <= last:
            months.append(current)
            current = current.next()
        return months

    @classmethod
    def of(cls, moment: datetime) -> Month:
        return cls(moment.year, moment.month)


def parse_month(text: str) -> Month:
    """Parse `YYYY-MM`; anything else raises `MonthError` with the expected form."""
    match = _MONTH.match(str(text).strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise MonthError(f"{text!r} is not a month: expected YYYY-MM, e.g. 2008-03")
    return Month(int(match.group(1)), int(match.group(2)))


def parse_day(text: str) -> date:
    """A YYYY-MM-DD day (`--date`); anything else is a `MonthError` naming what is expected."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise MonthError(f"date {text!r}: expected YYYY-MM-DD") from None

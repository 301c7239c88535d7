"""Monitoring's energy and benefit follow the target's unit and the table's period: a day of a
daily kW series is 24 kWh per kW, an hour of the household's series is 1."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from powerops.core.config import energy_text, kwh_per_value, parse_params
from powerops.data.table import TARGET
from powerops.monitor import events
from tests.conftest import REPO


def live_days(frequency: str, periods: int, target_unit: str) -> dict[str, dict[str, float]]:
    """`day_events` on a constant 2.0 load forecast as 1.5 (seasonal naive says 1.0)."""
    timestamps = pd.Series(pd.date_range("2010-03-01", periods=periods, freq=frequency))
    table = pd.DataFrame({"timestamp": timestamps, TARGET: 2.0})
    rows = pd.Series(True, index=table.index)
    days = events.day_events(
        table,
        rows,
        pd.Series(1.5, index=table.index),
        pd.Series(1.0, index=table.index),
        pd.Series(np.nan, index=table.index),
        False,
        pd.Timestamp("2010-01-01"),
        "3",
        kwh_per_value(target_unit, frequency),
    )
    return {day: record["live"] for day, record in days.items()}


@pytest.mark.parametrize(
    ("frequency", "periods", "unit", "actual_kwh"),
    [
        ("1h", 24, "kW", 48.0),  # 24 hours at 2 kW
        ("1D", 1, "kW", 48.0),  # the same day as one daily mean of 2 kW
        ("1D", 1, "MWh", 2000.0),  # 2 MWh delivered that day
    ],
)
def test_a_day_s_energy_and_benefit_in_kwh(
    frequency: str, periods: int, unit: str, actual_kwh: float
) -> None:
    (live,) = live_days(frequency, periods, unit).values()
    assert live["actual_kwh"] == pytest.approx(actual_kwh)
    assert live["abs_error_kwh"] == pytest.approx(actual_kwh / 4)  # 0.5 of 2.0
    assert live["benefit_kwh"] == pytest.approx(actual_kwh / 4)  # naive errs by 1.0
    assert live["wape"] == pytest.approx(0.25)  # a ratio: the unit cancels


@pytest.mark.parametrize(
    ("kwh", "unit", "text"),
    [
        (-2498.4, "kWh", "-2,498.4 kWh"),
        (-2498.4, "MWh", "-2.5 MWh"),  # a grid's error avoided reads in MWh or GWh
        (3.2e6, "GWh", "3.2 GWh"),
        (1.5, "Wh", "1,500.0 Wh"),
    ],
)
def test_reports_show_energy_in_monitor_energy_unit(kwh: float, unit: str, text: str) -> None:
    assert energy_text(kwh, unit) == text


def test_monitor_energy_unit_is_checked_at_load() -> None:
    with pytest.raises(ValueError, match="energy_unit"):
        parse_params({"monitor": {"energy_unit": "GJ"}}, REPO)

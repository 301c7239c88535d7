"""Daylight saving: with `source.timezone`, validation names each clock change in a batch's
month and what the readings hold there; `source.dst` flags it or quarantines the batch.

The real Victoria series (examples/victoria) is in standard time: read as Melbourne wall-clock
time, its April batch holds one pass of the hour that happened twice and its October batch
holds readings in the hour that did not happen, which is what the check must say."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from powerops.core.alerts import read_log
from powerops.core.config import load_params
from powerops.core.months import Month
from powerops.data import dst
from powerops.data.quarantine import Quarantine
from powerops.data.source import read_source, slice_month
from tests.conftest import make_example_workspace, run, set_params

MELBOURNE = "Australia/Melbourne"


@pytest.mark.parametrize(
    ("month", "zone", "changes"),
    [
        (
            (2007, 3),
            "Europe/Paris",
            ["2007-03-25 02:00-03:00 did not happen (clocks went forward)"],
        ),
        ((2007, 10), "Europe/Paris", ["2007-10-28 02:00-03:00 happened twice (clocks went back)"]),
        ((2007, 6), "Europe/Paris", []),
        ((2014, 4), MELBOURNE, ["2014-04-06 02:00-03:00 happened twice (clocks went back)"]),
        ((2014, 10), MELBOURNE, ["2014-10-05 02:00-03:00 did not happen (clocks went forward)"]),
        ((2014, 1), MELBOURNE, []),
        (
            (2014, 3),
            "America/New_York",
            ["2014-03-09 02:00-03:00 did not happen (clocks went forward)"],
        ),
        ((2014, 7), "UTC", []),
    ],
)
def test_clock_changes_of_a_month(month: tuple[int, int], zone: str, changes: list[str]) -> None:
    assert [str(c) for c in dst.clock_changes(Month(*month), zone)] == changes


@pytest.fixture(scope="module")
def victoria(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workspace = make_example_workspace(tmp_path_factory.mktemp("dst") / "ws", "victoria")
    set_params(workspace, source={"timezone": MELBOURNE, "dst": "quarantine"})
    return workspace


def test_a_standard_time_series_read_as_wall_clock_time_is_named(victoria: Path) -> None:
    params = load_params(victoria / "params.yaml")
    frame = read_source(params.source_path(), params.source, progress=False)
    april = slice_month(frame, Month(2014, 4), "time").set_index("time")["Demand"]
    inside = april["2014-04-06 02:00":"2014-04-06 02:59"].mean()
    around = april["2014-04-06 01:00":"2014-04-06 03:59"].drop(
        pd.date_range("2014-04-06 02:00", periods=2, freq="30min")
    )
    assert dst.findings(april.reset_index(), params, Month(2014, 4)) == [
        "2014-04-06 02:00-03:00 happened twice (clocks went back) in Australia/Melbourne: "
        f"2 readings (1.0 hours' worth); Demand {inside:.4g} inside against "
        f"{around.mean():.4g} in the hours around it"
    ]
    october = dst.findings(slice_month(frame, Month(2014, 10), "time"), params, Month(2014, 10))
    assert len(october) == 1 and october[0].startswith(
        "2014-10-05 02:00-03:00 did not happen (clocks went forward) in Australia/Melbourne: "
        "2 readings (1.0 hours' worth)"
    )
    assert dst.findings(slice_month(frame, Month(2014, 5), "time"), params, Month(2014, 5)) == []


def test_a_meter_that_follows_the_clock(victoria: Path) -> None:
    """Wall-clock readings from a meter that follows daylight saving: no reading in the spring
    hour (right, nothing to say), both passes of the autumn hour (named, written twice)."""
    params = load_params(victoria / "params.yaml")
    spring = pd.date_range("2014-10-05 00:00", "2014-10-05 06:00", freq="30min", inclusive="left")
    spring = spring[(spring.hour != 2)]
    autumn = pd.date_range("2014-04-06 00:00", "2014-04-06 06:00", freq="30min", inclusive="left")
    autumn = autumn.append(pd.DatetimeIndex(["2014-04-06 02:00", "2014-04-06 02:30"])).sort_values()

    def readings(stamps: pd.DatetimeIndex) -> pd.DataFrame:
        return pd.DataFrame({"time": stamps, "Demand": np.full(len(stamps), 4.0)})

    assert dst.findings(readings(spring), params, Month(2014, 10)) == []
    (found,) = dst.findings(readings(autumn), params, Month(2014, 4))
    assert "4 readings (2.0 hours' worth), 2 timestamps written twice" in found


def test_quarantine_names_the_hour_and_flag_releases_it_with_a_warning(victoria: Path) -> None:
    run(["powerops", "ingest", "--month", "2014-04", "--month", "2014-05"], victoria)
    refused = run(["powerops", "validate"], victoria, check=False)
    assert refused.returncode == 1
    assert "2014-04-06 02:00-03:00 happened twice (clocks went back)" in refused.stderr
    params = load_params(victoria / "params.yaml")
    assert Quarantine(params.quarantine_dir).months() == ["2014-04"]  # May has no clock change

    # The owner reads the note, decides the series is standard time, and accepts the month.
    set_params(victoria, source={"dst": "flag"})
    run(["powerops", "quarantine", "revalidate", "2014-04"], victoria)
    params = load_params(victoria / "params.yaml")
    verdict = json.loads((params.validation_dir / "2014-04.json").read_text())
    assert verdict["success"] is True
    assert verdict["summary"]["notes"][0].startswith("2014-04-06 02:00-03:00 happened twice")
    logged = read_log(params.resolve(params.alerts.log))
    warnings = [a["key"] for a in logged if a["severity"] == "warning"]
    assert warnings == ["validation/victoria_raw/2014-04/clock_change"]


def test_an_unknown_zone_is_a_configuration_error(victoria: Path) -> None:
    set_params(victoria, source={"timezone": "Australia/Melburne"})
    try:
        failed = run(["powerops", "validate"], victoria, check=False)
    finally:
        set_params(victoria, source={"timezone": MELBOURNE})
    assert failed.returncode == 2
    assert "source.timezone: unknown time zone 'Australia/Melburne'" in failed.stderr

"""The modelling table: accepted minute readings aggregated to one row per period.

One row per period on a regular grid (hourly by default): the mean of the target column over
the period, the share of the period's readings that were present, and the mean of each
exogenous column (`table.known`, `table.observed`) under its own name. Checked by the
`training_table` suite before anything trains on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from powerops.core.config import Params

# The target column every later step reads: the mean load of each period, in kW.
TARGET = "load_kw"
TABLE_COLUMNS = ("timestamp", TARGET, "coverage")


def modelling_table(
    readings: pd.DataFrame,
    timestamp_column: str,
    target_column: str,
    frequency: str,
    reading_frequency: str,
    exogenous: tuple[str, ...] = (),
) -> pd.DataFrame:
    """Aggregate readings to `frequency`: period start, mean target, coverage in [0, 1], then
    the mean of each `exogenous` column under its own name."""
    import pandas as pd

    indexed = readings.set_index(timestamp_column).sort_index()
    resampled = indexed[target_column].resample(frequency, label="left", closed="left")
    per_period = pd.Timedelta(frequency) / pd.Timedelta(reading_frequency)
    table = pd.DataFrame(
        {
            TARGET: resampled.mean(),
            "coverage": resampled.count() / per_period,
        }
    )
    for name in exogenous:
        table[name] = (
            indexed[name].astype("float64").resample(frequency, label="left", closed="left").mean()
        )
    table.index = table.index.astype("datetime64[us]")
    return table.rename_axis("timestamp").reset_index()


def table_for(params: Params, readings: pd.DataFrame) -> pd.DataFrame:
    """The modelling table of readings as params.yaml configures it (training, monitoring and
    batch scoring all build it this way)."""
    return modelling_table(
        readings,
        params.source.timestamp_column,
        params.table.target_column,
        params.table.frequency,
        params.source.frequency,
        exogenous_columns(params),
    )


def exogenous_columns(params: Params) -> tuple[str, ...]:
    """The other columns the modelling table carries: table.known, then table.observed."""
    return (*params.table.known, *params.table.observed)

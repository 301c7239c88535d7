"""What one monitoring run found, as a typed model: written as `report.json`, read by the HTML
report, the Airflow view, the power_monitor task and the CLI, so none reads it by string keys.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class _Part(BaseModel):
    # `schema` is a field name in the JSON but a method of BaseModel: fields use aliases.
    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)


class Window(_Part):
    start: str
    end: str  # exclusive
    frequency: str = "1h"  # table.frequency: what the counts of periods below count


class ChampionInfo(_Part):
    version: str
    data_version: str
    test_wape: str
    training_end: str
    age_days: float  # model aging: from the last hour it learnt from to the window's end


class DataInfo(_Part):
    hours: int  # periods of window.frequency (hours by default)
    latest_reading: str
    age_days: float
    quarantined: list[str]


class DriftColumn(_Part):
    column: str
    group: str  # "features" | "target" | "prediction"
    psi: float
    wasserstein: float
    drifted: bool
    reference_rows: int
    current_rows: int
    reference_mean: float
    current_mean: float


class Distribution(_Part):
    edges: list[float]
    reference: list[float]
    current: list[float]


class Drift(_Part):
    seasons: list[int]
    note: str | None
    columns: list[DriftColumn]
    drifted: list[str]
    feature_share: float
    distributions: dict[str, Distribution]


class Outliers(_Part):
    hours: int  # periods of window.frequency
    outliers: int
    rate: float
    training_rate: float


class Schema(_Part):
    issues: list[str]


class Counted(_Part):
    """Events of one SLI on one day, and how many were bad."""

    events: int
    bad: int


class LatencyDay(Counted):
    p95_ms: float | None


class SchemaDay(Counted):
    fields: dict[str, int]


class SkewDay(_Part):
    rows: int
    bad: int


class LogDay(_Part):
    """One day of the prediction log."""

    requests: int
    latency: LatencyDay
    schema_: SchemaDay = Field(alias="schema")
    feature_skew: SkewDay


class LiveDay(_Part):
    day: str
    hours: int  # periods of window.frequency; energies in kWh (dataset.target_unit)
    actual_kwh: float
    abs_error_kwh: float
    wape: float | None
    naive_abs_error_kwh: float
    benefit_kwh: float
    model_version: str


class Live(_Part):
    days: list[LiveDay]
    out_of_sample_after: str
    wape: float | None
    naive_wape: float | None
    benefit_kwh: float
    benefit_money: float
    currency: str
    energy_unit: str = "kWh"  # monitor.energy_unit: how reports show the kWh above


class BatchForecastScore(_Part):
    day: str
    model_version: str
    hours: int
    wape: float | None


class Burn(_Part):
    rule: str
    severity: str
    threshold: float
    long_days: int
    short_days: int
    long_burn: float | None
    short_burn: float | None
    firing: bool


class SloStatus(_Part):
    name: str
    indicator: str
    description: str
    objective: float
    threshold: float | None
    events: int
    bad: int
    sli: float | None
    budget_remaining: float | None
    burn: list[Burn]


class AlertChanges(_Part):
    firing: list[str]
    raised: list[str]
    resolved: list[str]


class MonitorReport(_Part):
    """One monitoring run: the window, the champion, and every indicator it judged."""

    date: str
    window: Window
    champion: ChampionInfo
    data: DataInfo
    drift: Drift
    outliers: Outliers
    schema_: Schema = Field(alias="schema")
    log: dict[str, LogDay]
    live: Live
    batch_forecasts: list[BatchForecastScore]
    slos: list[SloStatus]
    alerts: AlertChanges
    seconds: float = 0.0
    by: str = ""  # who ran it: `airflow:power_monitor/<run id>`, or empty (CLI, `dvc repro`)

    def to_json(self) -> str:
        return self.model_dump_json(indent=1)

    @classmethod
    def read(cls, path: Path) -> MonitorReport:
        return cls.model_validate_json(path.read_text())

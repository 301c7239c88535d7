"""Typed, validated configuration loaded from `params.yaml`, the one source of settings.

`load_params` returns a `Params` object; every path in it is resolved against the directory
that holds the params file, so the same file works from the CLI, `dvc repro` and Airflow.
A bad value raises `ConfigError` naming the key, the value and what is allowed.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from collections.abc import Collection, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from powerops.core.errors import UsageError
from powerops.core.months import Month, parse_month

DEFAULT_PARAMS_FILE = "params.yaml"


class ConfigError(UsageError, ValueError):
    """A setting in params.yaml (or an override of it) is missing or invalid."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnDoc(_Strict):
    """Documentation of one column of a dataset, recorded in the catalog."""

    name: str
    unit: str = ""
    description: str = ""


class SourceConfig(_Strict):
    """Where the raw feed comes from and what it must contain."""

    # A file path (absolute, or relative to the params file). When null, `package` and
    # `package_file` locate a file shipped inside an installed Python package.
    path: str | None = None
    package: str | None = "EnergyData"
    package_file: str | None = "data/householdpower.csv"
    format: Literal["auto", "csv", "parquet"] = "auto"
    timestamp_column: str = "date_time"
    # strptime format of the timestamp column in a CSV; null reads ISO 8601 (fastest).
    timestamp_format: str | None = None
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    # Value columns every batch must carry, in this order (the timestamp column comes first).
    columns: tuple[str, ...] = Field(min_length=1)
    frequency: str = "1min"
    na_values: tuple[str, ...] = ("?", "")
    # The meter's local time zone (IANA, e.g. Europe/Paris) when its timestamps are wall-clock
    # time that follows daylight saving; null: timestamps without daylight saving (docs/data.md).
    timezone: str | None = None
    # What a batch whose readings fall on a clock change gets: flag (a warning alert and a note
    # in its verdict) or quarantine (the batch fails validation, naming the hour).
    dst: Literal["flag", "quarantine"] = "flag"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(
                    f"unknown time zone {value!r}: an IANA name such as Europe/Paris"
                ) from None
        return value

    @model_validator(mode="after")
    def _one_location(self) -> SourceConfig:
        if self.path is None and not (self.package and self.package_file):
            raise ValueError("set either `path` or both `package` and `package_file`")
        if self.timestamp_column in self.columns:
            raise ValueError(
                f"`columns` must not repeat the timestamp column {self.timestamp_column!r}"
            )
        return self


class DatasetConfig(_Strict):
    """Catalog documentation of the dataset built from accepted batches."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str
    owner: str
    tags: tuple[str, ...] = ()
    license: str = ""
    source_description: str = ""
    columns: tuple[ColumnDoc, ...] = ()
    # The unit of the table's target: a power (W, kW, MW, GW; a period's energy is the value
    # times the period's length) or an energy per period (Wh, kWh, MWh, GWh). Monitoring's
    # energy and money figures follow from it.
    target_unit: Literal["W", "kW", "MW", "GW", "Wh", "kWh", "MWh", "GWh"] = "kW"


class IngestConfig(_Strict):
    """Which months `dvc repro` ingests: every month from `start` through `through`."""

    start: str
    through: str

    @field_validator("start", "through")
    @classmethod
    def _is_month(cls, value: str) -> str:
        parse_month(value)
        return value

    @model_validator(mode="after")
    def _ordered(self) -> IngestConfig:
        if parse_month(self.start) > parse_month(self.through):
            raise ValueError(f"start {self.start} is after through {self.through}")
        return self

    @property
    def months(self) -> list[Month]:
        return parse_month(self.start).range_to(parse_month(self.through))


# The functions pandas `eval` evaluates, with the number of arguments each takes.
DERIVED_FUNCTIONS: dict[str, int] = {
    **dict.fromkeys(("abs", "sqrt", "exp", "log", "log10", "log1p", "expm1", "floor", "ceil"), 1),
    **dict.fromkeys(("sin", "cos", "tan", "arcsin", "arccos", "arctan"), 1),
    **dict.fromkeys(("sinh", "cosh", "tanh", "arcsinh", "arccosh", "arctanh"), 1),
    "arctan2": 2,
}
_ARITHMETIC = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow)


def expression_problem(expression: str, columns: Collection[str]) -> str | None:
    """Why a derived-column expression is not arithmetic over `columns`, or None if it is."""
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        return f"not a valid expression ({exc.msg}): {expression!r}"
    return _node_problem(tree.body, columns)


def expression_columns(expression: str) -> set[str]:
    """The column names a derived-column expression reads (function names excluded)."""
    tree = ast.parse(expression.strip(), mode="eval")
    called = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    return {
        node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and id(node) not in called
    }


def _node_problem(node: ast.expr, columns: Collection[str]) -> str | None:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return None
    if isinstance(node, ast.Name):
        if node.id in columns:
            return None
        return f"unknown column `{node.id}` (columns: {', '.join(columns)})"
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd | ast.USub):
        return _node_problem(node.operand, columns)
    if isinstance(node, ast.BinOp) and isinstance(node.op, _ARITHMETIC):
        return _node_problem(node.left, columns) or _node_problem(node.right, columns)
    if isinstance(node, ast.Call):
        return _call_problem(node, columns)
    return (
        f"`{ast.unparse(node)}` is not allowed: use numbers, source.columns, + - * / // % ** "
        "and the functions " + ", ".join(DERIVED_FUNCTIONS)
    )


def _call_problem(node: ast.Call, columns: Collection[str]) -> str | None:
    name = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
    if name not in DERIVED_FUNCTIONS:
        return f"unknown function `{name}` (functions: {', '.join(DERIVED_FUNCTIONS)})"
    arity = DERIVED_FUNCTIONS[name]
    if node.keywords or len(node.args) != arity:
        return f"`{name}` takes {arity} argument(s): `{ast.unparse(node)}`"
    problems = (_node_problem(arg, columns) for arg in node.args)
    return next((problem for problem in problems if problem), None)


# A fixed-length frequency, as params.yaml may write one: a count and a unit pandas reads.
_FIXED_FREQUENCY = re.compile(r"^([1-9][0-9]*)?(s|min|h|D)$")
_UNIT_SECONDS = {"s": 1, "min": 60, "h": 3600, "D": 86400}


def frequency_seconds(text: str) -> int | None:
    """The length in seconds of a fixed-length frequency such as `1min`, `15min`, `1h` or
    `1D`; None for anything else (calendar frequencies such as `1W` or `MS` included)."""
    found = _FIXED_FREQUENCY.match(text)
    if found is None:
        return None
    return int(found.group(1) or 1) * _UNIT_SECONDS[found.group(2)]


_KILO = {"": 0.001, "k": 1.0, "M": 1e3, "G": 1e6}  # W or Wh per kW or kWh


def kwh_per_value(target_unit: str, frequency: str) -> float:
    """The kWh one period's target value stands for: value x period hours for a power unit,
    the value itself for an energy unit (each scaled to kilo)."""
    prefix, _, energy = target_unit.partition("W")
    scale = _KILO[prefix]
    if energy == "h":
        return scale
    seconds = frequency_seconds(frequency)
    if seconds is None:
        raise ValueError(f"frequency {frequency!r} is not a fixed-length frequency")
    return scale * seconds / 3600


def energy_in(kwh: float, unit: str) -> float:
    """An energy in kWh expressed in `unit` (Wh, kWh, MWh or GWh: monitor.energy_unit)."""
    return kwh / _KILO[unit.partition("W")[0]]


def energy_text(kwh: float, unit: str) -> str:
    """An energy in kWh shown in `unit`: `2.5 MWh`, `1,234.5 kWh`."""
    return f"{energy_in(kwh, unit):,.1f} {unit}"


def periods_text(count: int, frequency: str) -> str:
    """`count` periods of `frequency` in words: `30 days`, `720 hours`, `96 periods of 15min`."""
    names = {"1h": "hour", "h": "hour", "1D": "day", "D": "day", "1min": "minute"}
    name = names.get(frequency)
    if name is None:
        return f"{count} periods of {frequency}"
    return f"{count} {name}" + ("" if count == 1 else "s")


def _frequency_problems(source: SourceConfig, table: TableConfig) -> list[tuple[str, str]]:
    """Both frequencies fixed-length, the table's a whole multiple of the source's, and the
    target among the source's columns."""
    problems: list[tuple[str, str]] = []
    lengths = {}
    for key, value in (
        ("source.frequency", source.frequency),
        ("table.frequency", table.frequency),
    ):
        lengths[key] = frequency_seconds(value)
        if lengths[key] is None:
            problems.append(
                (
                    key,
                    f"{value!r} is not a fixed-length frequency: write a count and one of "
                    "s, min, h or D (e.g. 1min, 15min, 1h, 1D, 7D)",
                )
            )
    every, period = lengths["source.frequency"], lengths["table.frequency"]
    if every and period and period % every:
        problems.append(
            (
                "table.frequency",
                f"{table.frequency} is not a whole number of source.frequency "
                f"({source.frequency}) readings: each table period averages whole readings",
            )
        )
    if table.target_column not in source.columns:
        problems.append(
            (
                "table.target_column",
                f"{table.target_column!r} is not among source.columns "
                f"({', '.join(source.columns)})",
            )
        )
    return problems + _exogenous_problems(source, table)


def _exogenous_problems(source: SourceConfig, table: TableConfig) -> list[tuple[str, str]]:
    """table.known and table.observed: other source columns, each in one list, at most once."""
    problems: list[tuple[str, str]] = []
    for key, names in (("table.known", table.known), ("table.observed", table.observed)):
        for name in names:
            if name == table.target_column:
                problem = "is the target: its history enters as lags already"
            elif name not in source.columns:
                problem = f"is not among source.columns ({', '.join(source.columns)})"
            elif names.count(name) > 1 or (key == "table.observed" and name in table.known):
                problem = "is listed twice: a column is either known in advance or observed"
            elif "__" in name:
                problem = "holds `__`, which scikit-learn keeps for its own names: rename it"
            else:
                continue
            problems.append((key, f"{name!r} {problem}"))
    return problems


class _KeyProblems(ValueError):
    """Problems a cross-field check found, each under the full key it belongs to."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{key}: {problem}" for key, problem in problems))


class ValidationConfig(_Strict):
    """The Great Expectations gate every batch passes before it enters a dataset version."""

    expectations_dir: str = "expectations"
    raw_suite: str = "raw_batch"
    # Share of the minutes a month should hold (inside the collection period) that must be present.
    min_completeness: float = Field(default=0.99, ge=0, le=1)
    # The feed's collection period: months at its edges are measured against their covered part.
    collection_start: datetime | None = None
    collection_end: datetime | None = None
    # Columns computed before validation, named derived__<key>: arithmetic over source.columns
    # and DERIVED_FUNCTIONS, evaluated by pandas; checked against source.columns by `Params`.
    derived_columns: dict[str, str] = {}
    # Where Great Expectations writes Data Docs; null switches them off.
    data_docs: str | None = "reports/data_docs"


class TableConfig(_Strict):
    """The modelling table built from an accepted dataset version."""

    target_column: str = "Global_active_power"
    frequency: str = "1h"
    suite: str = "training_table"
    # Other source columns the model reads, averaged per period into the table under their own
    # names. known: known in advance for the periods forecast (a working-day flag, a weather
    # forecast the user supplies), read at the row's own period. observed: known only once
    # measured (a measured temperature), read lagged and masked at the origin like the target.
    known: tuple[str, ...] = ()
    observed: tuple[str, ...] = ()


Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
WEEKDAYS: tuple[str, ...] = get_args(Weekday)


class ForecastConfig(_Strict):
    """The forecasting task: `horizon` periods of `table.frequency` from each origin."""

    horizon: int = Field(default=24, ge=1)
    lags: tuple[int, ...] = Field(default=(24, 48, 168), min_length=1)
    windows: tuple[int, ...] = Field(default=(24, 168), min_length=1)
    # true: the French public holidays (built in); a list of dates: exactly those days; false
    # or unset: no holiday feature.
    holidays: bool | tuple[date, ...] = False
    # The day weeks start on: forecast blocks of whole days start on it (a 7-day block runs
    # from it) and so do the pinned test set's weeks. null: blocks are floored on the Unix
    # epoch as before (7-day blocks start on Thursdays) and test weeks start on Mondays.
    week_start: Weekday | None = None
    # Calendar features as numbers (trees) or one 0/1 column per hour, weekday, month (linear).
    calendar: Literal["ordinal", "onehot"] = "ordinal"

    @property
    def lookback(self) -> int:
        """Periods of history before an origin that features may read."""
        return max(*self.lags, *self.windows)

    @property
    def test_week_start(self) -> str:
        """The weekday the pinned test set's weeks start on."""
        return self.week_start or "monday"


class PinnedTestSetConfig(_Strict):
    """The pinned test set: one week per calendar month of the first year of data."""

    months: int = Field(default=12, ge=1)
    # The week that starts on this Monday of each month (2 = the second Monday); with
    # forecast.week_start set, on this occurrence of that day.
    monday: int = Field(default=2, ge=1, le=4)
    # How training keeps clear of the test weeks: `rows` drops every row whose features read a
    # test value; `values` blanks the test values in training's history instead (a missing
    # period to lags and windows) and drops only the test weeks' own rows.
    embargo: Literal["rows", "values"] = "rows"


class CandidateConfig(_Strict):
    """One estimator model selection may choose, with the values of its parameters to try
    (every combination of the `grid` lists is one candidate)."""

    estimator: str
    estimator_params: dict[str, Any] = {}  # fixed for every combination
    grid: dict[str, list[Any]] = {}
    preprocess: Literal["none", "impute", "impute_scale"] | None = None  # null: train.preprocess


class TrainConfig(_Strict):
    """The estimator and when to train."""

    estimator: str = "sklearn.ensemble.HistGradientBoostingRegressor"
    estimator_params: dict[str, Any] = {}
    # Between the features and the estimator: nothing, median imputation of missing features,
    # or imputation then standardisation (for estimators that take no NaN, such as Ridge).
    preprocess: Literal["none", "impute", "impute_scale"] = "none"
    # Train on dataset versions first_version, first_version + every, ... and always the latest.
    first_version: int = Field(default=13, ge=1)
    every: int = Field(default=3, ge=1)
    backtest_months: int = Field(default=2, ge=1)
    # Model selection (powerops.model.selection): empty trains `estimator` as configured;
    # otherwise the candidate with the best rolling-origin cross-validation score inside the
    # training rows (cv_folds folds of cv_fold_days, before backtest.start if set) is trained.
    candidates: tuple[CandidateConfig, ...] = ()
    cv_folds: int = Field(default=3, ge=1)
    cv_fold_days: int = Field(default=28, ge=1)
    # OpenMP/BLAS threads per training (see powerops.model.forecasting.compute_threads).
    threads: int = Field(default=1, ge=1)


class BacktestConfig(_Strict):
    """`powerops backtest`: a walk-forward evaluation over a fixed period. Each origin of the
    period is forecast by a model fitted only on data before it; the model is refitted every
    `refit_every` origins (1: every origin; 0: never, one fit before `start`)."""

    start: date | None = None  # first origin; null: the first of the last `months` months
    end: date | None = None  # last origin (inclusive); null: the last one in the data
    months: int = Field(default=2, ge=1)  # the period when `start` is null
    refit_every: int = Field(default=7, ge=0)


class GateConfig(_Strict):
    """Promotion rules: the error budget and the margins a challenger must clear."""

    metric: Literal["wape", "mae", "rmse"] = "wape"
    # The challenger must beat the best of these (on the pinned test set) by the margin; each
    # must have the history it reads there (year_ago reads 364 days back: the pinned test set
    # stores only forecast.lookback periods before each week).
    baselines: tuple[Literal["seasonal_naive", "persistence", "year_ago"], ...] = Field(
        default=("seasonal_naive", "persistence"), min_length=1
    )
    min_improvement_vs_baseline: float = Field(default=0.05, ge=0, lt=1)
    min_improvement_vs_champion: float = Field(default=0.0, ge=0, lt=1)
    # One-sided Diebold-Mariano level for the gain over the champion; null: no test.
    significance: float | None = Field(default=0.05, gt=0, lt=1)
    max_wape: float = Field(default=0.50, gt=0)


class MlflowConfig(_Strict):
    """Where runs and the model registry live; null means SQLite in the workspace. The names,
    when null or left out, are `<dataset.name>_forecast` and `<dataset.name>_forecaster`
    (Params fills them in)."""

    tracking_uri: str | None = None
    experiment: str = Field(min_length=1)
    model_name: str = Field(min_length=1)


class StateConfig(_Strict):
    """Where the workspace's state lives between Airflow tasks (powerops.ops.shared)."""

    # false (the embedded profile): every task runs in this one workspace.
    # true (the cluster profile): workers on other hosts; each task pulls the shared state from
    # the default DVC remote first and pushes what it changed after.
    shared: bool = False
    # One writer at a time changes a workspace (powerops.ops.lock): how long a second writer waits
    # for the first before it gives up and names the holder.
    lock_wait_seconds: float = Field(default=300.0, ge=0)


class StackConfig(_Strict):
    """`make up`: the embedded Airflow and MLflow UIs on 127.0.0.1."""

    airflow_port: int = Field(default=8080, ge=1, le=65535)
    mlflow_port: int = Field(default=5000, ge=1, le=65535)
    parallelism: int = Field(default=4, ge=1, le=32)


class AlertsConfig(_Strict):
    """The one alerting interface: a JSONL log, plus an optional webhook."""

    log: str = "reports/alerts.jsonl"
    webhook_url: str | None = Field(default=None, pattern=r"^https?://")
    webhook_timeout_s: float = Field(default=5.0, gt=0)


class DriftConfig(_Strict):
    """When a column counts as drifted: both effect sizes at or above their thresholds."""

    psi: float = Field(default=0.2, gt=0)  # population stability index over deciles
    wasserstein: float = Field(default=0.4, gt=0)  # earth mover's distance / reference std
    # Calendar months on each side of the window's months that form its seasonal reference.
    season_spread: int = Field(default=1, ge=0, le=6)
    # The history features all derive from the load and move together when it really
    # changes; one alone (a weekly peak) moves from year to year. `drift:data` fires when the
    # load drifted or at least this share of the features did.
    feature_share: float = Field(default=0.5, gt=0, le=1)
    # Fewer rows in the window than this and no column is called drifted: on a few rows the
    # decile PSI is noise (30 daily rows leave deciles empty and score 1.8 to 6.9 in-sample).
    min_rows: int = Field(default=100, ge=1)


class BurnRule(_Strict):
    """A multi-window burn-rate rule: fires when both windows burn budget this fast."""

    name: str
    long_days: int = Field(ge=1)
    short_days: int = Field(ge=1)
    burn_rate: float = Field(gt=0)
    severity: Literal["critical", "warning"] = "warning"

    @model_validator(mode="after")
    def _short_is_shorter(self) -> BurnRule:
        if self.short_days >= self.long_days:
            raise ValueError(f"short_days {self.short_days} must be below long_days")
        return self


class SloConfig(_Strict):
    """One service level objective: the share of good events over `window_days`."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    indicator: Literal["live_wape", "outlier_rate", "schema_skew", "freshness", "latency"]
    objective: float = Field(gt=0, lt=1)  # e.g. 0.9: 90% of events must be good
    # What makes one event good: the largest daily WAPE (live_wape), data age in days
    # (freshness), latency in ms (latency). Outlier and schema-skew events are good or bad.
    threshold: float | None = Field(default=None, gt=0)
    description: str = ""

    @model_validator(mode="after")
    def _threshold_when_needed(self) -> SloConfig:
        needs = self.indicator in ("live_wape", "freshness", "latency")
        if needs and self.threshold is None:
            raise ValueError(f"indicator {self.indicator} needs a threshold")
        return self


class MonitorConfig(_Strict):
    """`powerops monitor`: drift, outliers, skew, live error, SLOs and the error budget."""

    window_days: int = Field(default=30, ge=1)
    drift: DriftConfig = DriftConfig()
    # Outlier detector (IsolationForest) fitted at training time on the model's history
    # features; this share of training rows scores as outliers.
    outlier_contamination: float = Field(default=0.01, gt=0, lt=0.5)
    feature_skew_tolerance: float = Field(default=1e-6, ge=0)
    # Share of the prediction log's blocks of served requests whose features are recomputed
    # (at least one block per file): the skew check's cost, not the log's, follows traffic.
    skew_sample_rate: float = Field(default=0.02, gt=0, le=1)
    slo_window_days: int = Field(default=30, ge=1)
    slos: tuple[SloConfig, ...] = ()
    burn_rules: tuple[BurnRule, ...] = ()
    cost_per_kwh: float = Field(default=0.25, ge=0)  # energy in kWh via dataset.target_unit
    currency: str = "EUR"
    energy_unit: Literal["Wh", "kWh", "MWh", "GWh"] = "kWh"  # the unit reports show energy in


class ServeConfig(_Strict):
    """`powerops serve`: the champion behind HTTP, on loopback unless told otherwise."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    poll_seconds: float = Field(default=5.0, gt=0)  # how often the champion alias is checked
    max_rows: int = Field(default=2000, ge=1)  # rows per request, history included
    max_bytes: int = Field(default=1_000_000, ge=1024)  # request body size
    api_key_env: str = "POWEROPS_API_KEY"  # if this variable is set, /predict requires it
    # The prediction log: each record goes to the OS before its answer leaves; `log_fsync`
    # says when it reaches the disk (always: before the answer; interval: every
    # log_flush_seconds, which is also how often a failed write is retried; never: the OS).
    log_fsync: Literal["always", "interval", "never"] = "interval"
    log_flush_seconds: float = Field(default=1.0, gt=0)
    # records kept while the log cannot be written; beyond, the oldest are dropped and counted
    log_max_buffered: int = Field(default=200_000, ge=1)
    workers: int = Field(default=2, ge=1)  # processes: one per core


class PathsConfig(_Strict):
    """Workspace layout, relative to the params file."""

    raw: str = "data/raw"
    validation: str = "data/validation"
    quarantine: str = "data/quarantine"
    dataset: str = "data/dataset"
    test_set: str = "data/test_set"
    training: str = "data/training"
    predictions: str = "data/predictions"
    forecasts: str = "data/forecasts"
    monitor_reports: str = "reports/monitor"
    backtest: str = "reports/backtest"
    catalog: str = "catalog"
    registry: str = "registry"
    mlflow: str = "mlflow"


class Params(_Strict):
    """Everything params.yaml configures."""

    source: SourceConfig
    dataset: DatasetConfig
    ingest: IngestConfig
    validation: ValidationConfig = ValidationConfig()
    table: TableConfig = TableConfig()
    forecast: ForecastConfig = ForecastConfig()
    test_set: PinnedTestSetConfig = PinnedTestSetConfig()
    train: TrainConfig = TrainConfig()
    gate: GateConfig = GateConfig()
    backtest: BacktestConfig = BacktestConfig()
    mlflow: MlflowConfig
    state: StateConfig = StateConfig()
    stack: StackConfig = StackConfig()
    alerts: AlertsConfig = AlertsConfig()
    monitor: MonitorConfig = MonitorConfig()
    serve: ServeConfig = ServeConfig()
    paths: PathsConfig = PathsConfig()
    # Directory holding params.yaml; relative paths resolve against it. Not read from the file.
    root: Path = Path(".")

    @model_validator(mode="before")
    @classmethod
    def _mlflow_names_from_the_dataset(cls, data: Any) -> Any:
        """mlflow.experiment and mlflow.model_name, when null or left out, from dataset.name."""
        if not isinstance(data, Mapping):
            return data
        dataset, mlflow = data.get("dataset"), data.get("mlflow") or {}
        if not isinstance(dataset, Mapping) or not isinstance(mlflow, Mapping):
            return data  # the section's own validation names the problem
        name = dataset.get("name")
        if not isinstance(name, str):
            return data
        named = {"experiment": f"{name}_forecast", "model_name": f"{name}_forecaster"}
        mlflow = {**mlflow, **{k: v for k, v in named.items() if mlflow.get(k) is None}}
        return {**data, "mlflow": mlflow}

    @model_validator(mode="after")
    def _frequencies_and_target_fit(self) -> Params:
        if problems := _frequency_problems(self.source, self.table):
            raise _KeyProblems(problems)
        period = frequency_seconds(self.table.frequency) or 0
        span = self.forecast.horizon * period
        if span > 7 * 86400:
            most = 7 * 86400 // period
            raise _KeyProblems(
                [
                    (
                        "forecast.horizon",
                        f"{self.forecast.horizon} periods of {self.table.frequency} reach "
                        f"{span / 86400:g} days ahead; the seasonal-naive baseline every model "
                        f"is gated against reads the same period a week earlier, so at most "
                        f"{most} (were the hourly defaults kept for another table.frequency?)",
                    )
                ]
            )
        return self

    @model_validator(mode="after")
    def _derived_columns_evaluate(self) -> Params:
        # A typo here once filled the column with NaN, which range checks skip: checks off.
        problems = [
            (f"validation.derived_columns.{name}", problem)
            for name, expression in self.validation.derived_columns.items()
            if (problem := expression_problem(expression, self.source.columns))
        ]
        if problems:
            raise _KeyProblems(problems)
        return self

    @model_validator(mode="after")
    def _week_start_fits_the_block(self) -> Params:
        # After _frequencies_and_target_fit, seconds is None only when that already failed.
        seconds = frequency_seconds(self.table.frequency)
        if self.forecast.week_start is None or seconds is None:
            return self
        block, day = seconds * self.forecast.horizon, _UNIT_SECONDS["D"]
        if block % day and day % block:
            raise _KeyProblems(
                [
                    (
                        "forecast.week_start",
                        f"{self.forecast.week_start} can only anchor blocks of whole days, but "
                        f"forecast.horizon {self.forecast.horizon} x table.frequency "
                        f"{self.table.frequency} is {block / 3600:g} hours: use a block of "
                        "whole days or null",
                    )
                ]
            )
        return self

    def resolve(self, relative: str) -> Path:
        path = Path(relative)
        return path if path.is_absolute() else self.root / path

    @property
    def raw_dir(self) -> Path:
        return self.resolve(self.paths.raw)

    @property
    def dataset_dir(self) -> Path:
        return self.resolve(self.paths.dataset)

    @property
    def validation_dir(self) -> Path:
        return self.resolve(self.paths.validation)

    @property
    def quarantine_dir(self) -> Path:
        return self.resolve(self.paths.quarantine)

    @property
    def test_set_dir(self) -> Path:
        return self.resolve(self.paths.test_set)

    @property
    def training_dir(self) -> Path:
        return self.resolve(self.paths.training)

    @property
    def registry_dir(self) -> Path:
        return self.resolve(self.paths.registry)

    @property
    def tracking_uri(self) -> str:
        """The MLflow tracking URI: configured, or SQLite in the workspace's mlflow/ folder."""
        if self.mlflow.tracking_uri:
            return self.mlflow.tracking_uri
        return f"sqlite:///{self.resolve(self.paths.mlflow) / 'mlflow.db'}"

    @property
    def catalog_dir(self) -> Path:
        return self.resolve(self.paths.catalog)

    @property
    def predictions_dir(self) -> Path:
        return self.resolve(self.paths.predictions)

    @property
    def forecasts_dir(self) -> Path:
        return self.resolve(self.paths.forecasts)

    @property
    def monitor_reports_dir(self) -> Path:
        return self.resolve(self.paths.monitor_reports)

    @property
    def backtest_dir(self) -> Path:
        return self.resolve(self.paths.backtest)

    @property
    def mlflow_dir(self) -> Path:
        """The embedded MLflow store: SQLite database and artifacts."""
        return self.resolve(self.paths.mlflow)

    @property
    def run_dir(self) -> Path:
        """Runtime state that is no data: the workspace lock, `make up`'s servers and logs."""
        return self.root / ".run"

    def source_path(self) -> Path:
        """The source file: `source.path`, or the file shipped inside `source.package`."""
        if self.source.path is not None:
            return self.resolve(self.source.path)
        assert self.source.package and self.source.package_file
        spec = importlib.util.find_spec(self.source.package)
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(
                f"source.package: package {self.source.package!r} is not installed "
                "(run `make demo` or `make test` to create the environment)"
            )
        return Path(next(iter(spec.submodule_search_locations))) / self.source.package_file


def _format_error(error: Mapping[str, Any]) -> str:
    if isinstance((error.get("ctx") or {}).get("error"), _KeyProblems):
        return str(error["ctx"]["error"])  # names its keys; the input is all of params.yaml
    key = ".".join(str(part) for part in error["loc"]) or "(top level)"
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key (check the spelling against params.yaml's documented keys)"
    if error["type"] == "missing":
        return f"{key}: required key is missing"
    return f"{key}: {message} (got {error.get('input')!r})"


def _unquoted_dates(data: Any, key: str = "") -> list[tuple[str, date]]:
    """Every value YAML read as a date or datetime (an unquoted 2014-01-01), with its key."""
    if isinstance(data, Mapping):
        items: Any = data.items()
    elif isinstance(data, list):
        items = enumerate(data)
    else:
        return [(key, data)] if isinstance(data, date) else []
    return [found for k, v in items for found in _unquoted_dates(v, f"{key}.{k}".lstrip("."))]


def parse_params(data: Mapping[str, Any], root: Path, origin: str = DEFAULT_PARAMS_FILE) -> Params:
    """Validate a params mapping; raise `ConfigError` listing every bad key."""
    try:
        return Params.model_validate({**data, "root": root})
    except ValidationError as exc:
        problems = "; ".join(_format_error(e) for e in exc.errors())
        raise ConfigError(f"{origin}: {problems}") from None


def load_params(path: str | Path = DEFAULT_PARAMS_FILE) -> Params:
    """Read and validate params.yaml; relative paths in it resolve against its directory."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"{path}: params file not found (run from the repository root or pass --params)"
        )
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if dates := _unquoted_dates(data):
        key, value = dates[0]
        raise ConfigError(
            f"{path}: {key}: {value} is a YAML date, which `dvc repro` cannot read from "
            f'params.yaml; quote it: "{value}"'
        )
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return parse_params(data, path.resolve().parent, origin=str(path))

